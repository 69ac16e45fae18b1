//! The enricher: click events in, enriched events (features + list hits) out.
//!
//! - [`store`]: the history store trait, with a Redis implementation (live, one pipelined round
//!   trip per micro-batch) and an in-memory one (replay, tests).
//! - [`lists`]: blacklists and whitelists, held in Redis, cached in-process and refreshed when
//!   their version changes.
//! - [`admin`]: the authenticated HTTP API for the lists.
//! - [`weblog`]: raw access-log lines to click events (combined format, routes file).
//! - [`app`]: configuration, the batch processor, and wiring of the tasks.

pub mod admin;
pub mod app;
pub mod lists;
pub mod store;
pub mod weblog;

pub use app::{Config, Enricher, start};
