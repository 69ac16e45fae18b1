//! The verdict (`verdict.schema.json`): exactly one per input event.

use serde::{Deserialize, Serialize};

/// The action ladder, in increasing severity; `Ord` follows severity so escalation is `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Challenge,
    Restrict,
    Block,
}

impl Action {
    pub const ALL: [Action; 4] = [Action::Allow, Action::Challenge, Action::Restrict, Action::Block];
    /// The actions that flag a session (every one but allow), mildest first.
    pub const FLAGS: [Action; 3] = [Action::Challenge, Action::Restrict, Action::Block];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Challenge => "challenge",
            Action::Restrict => "restrict",
            Action::Block => "block",
        }
    }
}

/// One explanation of a decision: a rule or list hit, or a feature's contribution to the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contribution: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub event_id: String,
    pub session_id: String,
    pub user_id: Option<String>,
    #[serde(with = "crate::ts_millis")]
    pub ts: i64,
    #[serde(with = "crate::ts_millis")]
    pub decided_at: i64,
    pub score: f64,
    pub action: Action,
    pub restrictions: Vec<String>,
    #[serde(with = "crate::ts_millis::option")]
    pub expires_at: Option<i64>,
    pub reasons: Vec<Reason>,
    pub model_version: String,
    pub alert: bool,
    /// Extension (optional in the contract): when the event first reached the pipeline, in epoch
    /// milliseconds, so consumers can measure event→verdict latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_ts_ms: Option<i64>,
    /// Extension: the shadowed challenger's score and version (reported, never acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_model_version: Option<String>,
}
