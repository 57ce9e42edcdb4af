//! Developer tasks behind `cargo xtask`. Test infrastructure lives here, never in the product
//! crates: the test prerequisites and (see `lab`) the multi-node lab the integration tests use.
//!
//! xtask is a developer tool, so it starts processes directly (the product's one-module rule
//! in ARCHITECTURE.md is about the shipped crates).
#![allow(clippy::disallowed_methods, clippy::print_stdout, clippy::print_stderr)]

pub mod demo;
pub mod dist;
pub mod docs;
pub mod lab;
pub mod prereqs;
pub mod testrun;
