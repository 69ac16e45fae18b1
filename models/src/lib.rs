//! Shared, I/O-free core of the fraud pipeline.
//!
//! - [`agent`]: a user agent's browser family and operating system, without versions.
//! - [`event`]: the click event from the contract, its decoding and validation.
//! - [`enriched`]: the event plus its features and list hits, as the enricher publishes it.
//! - [`verdict`], [`label`]: the scorer's output and the delayed ground truth.
//! - [`history`]: a tiny language of history operations (counts, first-seen, swaps) and an
//!   in-memory executor. The Redis executor in `enricher` implements the same semantics, so
//!   live features and offline replay agree by construction.
//! - [`features`]: the one feature definition: which history an event reads and writes, and
//!   how the feature vector is computed from what was read; `Replayer` runs it event by event
//!   against the in-memory history (offline replay).
//! - [`feedback`]: labels fed back into the history (the entities of a confirmed fraudulent
//!   session marked for later events to see), point in time.
//! - [`artifact`]: the model artifact written by the trainer and its inference.
//! - [`ranking`]: average precision, ROC AUC, recall at a false-positive rate, calibration
//!   error: one meaning for the trainer's evaluation and the simulator's live report.

pub mod agent;
pub mod artifact;
pub mod enriched;
pub mod event;
pub mod features;
pub mod feedback;
pub mod history;
pub mod label;
pub mod ranking;
pub mod verdict;

pub use artifact::{ModelArtifact, Scored};
pub use enriched::{EnrichedEvent, ListHit};
pub use event::{ClickEvent, DecodeError, Outcome};
pub use features::{FEATURES, FeatureVector, feature_schema_hash};
pub use label::{Label, LabelKind, LabelSource};
pub use verdict::{Action, Reason, Verdict};

/// Timestamps in the contract are RFC 3339; internally we count milliseconds since the epoch.
pub fn format_ts(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_ts(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| d.timestamp_millis())
}

/// Serde adapter: an epoch-millisecond `i64` field that is an RFC 3339 string on the wire.
pub mod ts_millis {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_ts(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::parse_ts(&s).ok_or_else(|| D::Error::custom(format!("not an RFC 3339 date-time: {s:?}")))
    }

    /// The same for `Option<i64>` (null on the wire when absent).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer, de::Error};

        pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => s.serialize_str(&super::super::format_ts(*ms)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
            let s = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
            s.map(|s| {
                super::super::parse_ts(&s).ok_or_else(|| D::Error::custom(format!("not an RFC 3339 date-time: {s:?}")))
            })
            .transpose()
        }
    }
}
