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

impl Label {
    /// A label from JSON (`label.schema.json`), or why not: the one check the labels API and
    /// the enricher's labels topic share.
    pub fn decode(bytes: &[u8]) -> Result<Label, String> {
        let label: Label =
            serde_json::from_slice(bytes).map_err(|e| format!("not a label (see label.schema.json): {e}"))?;
        if label.label_id.is_empty() || label.user_id.is_empty() {
            return Err("label_id and user_id must not be empty".into());
        }
        Ok(label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_decodes_from_the_contract_json_and_an_empty_id_is_refused_with_the_reason() {
        let ok = br#"{"label_id":"l1","ts":"2026-11-01T10:00:00Z","user_id":"u1","session_id":"s1","is_fraud":true,"kind":"mule","source":"analyst"}"#;
        let l = Label::decode(ok).unwrap();
        assert_eq!(
            (l.kind, l.source, l.session_id.as_deref()),
            (Some(LabelKind::Mule), Some(LabelSource::Analyst), Some("s1"))
        );
        let e = Label::decode(br#"{"label_id":"","ts":"2026-11-01T10:00:00Z","user_id":"u1","is_fraud":true}"#)
            .unwrap_err();
        assert!(e.contains("must not be empty"), "{e}");
        assert!(Label::decode(b"{oops").unwrap_err().contains("label.schema.json"));
    }
}
