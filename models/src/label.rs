//! The label (`label.schema.json`): what became known later about a user, session or event.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelKind {
    AccountTakeover,
    Bot,
    Mule,
    Scam,
    Other,
}

impl LabelKind {
    pub const ALL: [LabelKind; 5] =
        [LabelKind::AccountTakeover, LabelKind::Bot, LabelKind::Mule, LabelKind::Scam, LabelKind::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            LabelKind::AccountTakeover => "account_takeover",
            LabelKind::Bot => "bot",
            LabelKind::Mule => "mule",
            LabelKind::Scam => "scam",
            LabelKind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<LabelKind> {
        LabelKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    Analyst,
    Chargeback,
    CustomerReport,
    Other,
}

impl LabelSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LabelSource::Analyst => "analyst",
            LabelSource::Chargeback => "chargeback",
            LabelSource::CustomerReport => "customer_report",
            LabelSource::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<LabelSource> {
        [Self::Analyst, Self::Chargeback, Self::CustomerReport, Self::Other].into_iter().find(|k| k.as_str() == s)
    }
}

/// `ts` is when the label became known, not when the fraud happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub label_id: String,
    #[serde(with = "crate::ts_millis")]
    pub ts: i64,
    pub user_id: String,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub event_id: Option<String>,
    pub is_fraud: bool,
    #[serde(default)]
    pub kind: Option<LabelKind>,
    #[serde(default)]
    pub source: Option<LabelSource>,
}
