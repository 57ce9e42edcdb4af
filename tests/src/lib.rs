//! Support code for the integration tests in `tests/tests/`.
//! Test support starts real programs (sshd, keepalived, `ip netns`) directly.
#![allow(clippy::disallowed_methods, clippy::print_stdout, clippy::print_stderr)]
