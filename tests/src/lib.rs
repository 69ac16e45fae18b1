//! Helpers for the end-to-end tests: a private stack per test run and small clients.
//!
//! - [`stack`]: starts tansu and redis-server through `scripts/stack` on free ports in a temp dir.
//! - [`history`]: features computed as the enricher does live (micro-batches, one round trip each).
//! - [`http`]: a minimal HTTP/1.1 client for our own loopback endpoints.
//! - [`invariants`]: what must hold for any parser input (fuzz targets and their CI replay).
//! - [`kafka`]: consume a topic until a condition holds; committed offsets vs. the log end.
//! - [`prometheus`]: a real Prometheus scraping in-process services, and its query API.
//! - [`s3`]: a real S3-protocol server (moto) for lakes on object storage.
//! - [`setup`]: a lake, a model trained from it, and the services started on port 0.

pub mod history;
pub mod http;
pub mod invariants;
pub mod kafka;
pub mod prometheus;
pub mod s3;
pub mod setup;
pub mod stack;
