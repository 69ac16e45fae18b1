//! Helpers for the end-to-end tests: a private stack per test run and small clients.
//!
//! - [`stack`]: starts tansu and redis-server through `scripts/stack` on free ports in a temp dir.
//! - [`http`]: a minimal HTTP/1.1 client for our own loopback endpoints.
//! - [`kafka`]: consume a topic until a condition holds; committed offsets vs. the log end.

pub mod http;
pub mod kafka;
pub mod stack;
