//! The enriched event the enricher publishes on `clickstream.enriched`.

use crate::{ClickEvent, FeatureVector};
use serde::{Deserialize, Serialize};

/// A blacklist or whitelist entry that matched the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListHit {
    /// `blacklist` or `whitelist`.
    pub list: String,
    /// What matched: `ip`, `cidr`, `user`, `device`, `payee`.
    pub kind: String,
    pub value: String,
    #[serde(default)]
    pub reason: String,
}

impl ListHit {
    /// Stable code used in verdict reasons and policy rules, for example `blacklist_ip`.
    pub fn code(&self) -> String {
        format!("{}_{}", self.list, self.kind)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichedEvent {
    pub event: ClickEvent,
    pub features: FeatureVector,
    /// Hash of the feature definition the features were computed with.
    pub feature_schema: String,
    #[serde(default)]
    pub list_hits: Vec<ListHit>,
    /// When the raw event reached the broker (the input record's timestamp), epoch ms.
    #[serde(default)]
    pub ingest_ts_ms: Option<i64>,
    /// Redis did not answer and the enricher runs with `--on-redis-error degrade`: the features
    /// describe this event alone, without history.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub history_unavailable: bool,
}
