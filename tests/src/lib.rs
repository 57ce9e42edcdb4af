//! Support code for the integration tests in `tests/tests/`: real programs started by the
//! tests themselves (an sshd and an SMTP server on loopback with throw-away keys, network
//! namespaces).
//! Test support starts those programs directly, not through `cias_core::host`.
#![allow(clippy::disallowed_methods, clippy::print_stdout, clippy::print_stderr)]

pub mod cluster_probe;
pub mod lab_support;
pub mod netns;
pub mod smtpd;
pub mod sshd;
