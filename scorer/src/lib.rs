//! The scorer: enriched events in, exactly one verdict per event out (plus alerts).
//!
//! - [`policy`]: the policy file: score bands, list and hard rules, restrictions, alert level.
//! - [`registry`]: the model registry on disk and the watcher that hot-swaps the champion.
//! - [`session`]: per-session state in Redis (escalate-only action, restrictions, expiry).
//! - [`app`]: configuration, the batch processor, the session HTTP API, wiring.

pub mod app;
pub mod policy;
pub mod registry;
pub mod session;

pub use app::{Config, start};
