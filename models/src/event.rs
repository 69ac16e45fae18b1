//! The click event (`clickstream-event.schema.json`), decoded and validated.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::IpAddr;

/// Known event types; any other lower-case type is accepted as a generic event.
pub mod kind {
    pub const PAGE_VIEW: &str = "page_view";
    pub const LOGIN: &str = "login";
    pub const LOGOUT: &str = "logout";
    pub const SIGNUP: &str = "signup";
    pub const PASSWORD_RESET: &str = "password_reset";
    pub const PASSWORD_CHANGE: &str = "password_change";
    pub const MFA: &str = "mfa";
    pub const PROFILE_CHANGE: &str = "profile_change";
    pub const ADD_PAYEE: &str = "add_payee";
    pub const TRANSFER: &str = "transfer";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

/// One website event. `ts` is event time in epoch milliseconds (RFC 3339 on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickEvent {
    pub event_id: String,
    #[serde(with = "crate::ts_millis")]
    pub ts: i64,
    pub session_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(rename = "type")]
    pub event_type: String,
    pub ip: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payee_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs: Option<Map<String, Value>>,
}

/// Why an input could not be accepted. Each variant has a stable, low-cardinality reason code
/// used for the dead-letter topic and metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("event is {len} bytes, larger than the limit of {max}")]
    Oversize { len: usize, max: usize },
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("schema violation: {0}")]
    Schema(String),
    #[error(
        "ts is {ahead_s} s ahead of the time its record entered Kafka, more than the {max_s} s \
         allowed (--max-ts-ahead-secs): a time in the future would cut short every window the \
         event touches; fix the sender's clock or raise the limit"
    )]
    AheadOfRecord { ahead_s: i64, max_s: u64 },
}

impl DecodeError {
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Oversize { .. } => "oversize",
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::Schema(_) => "schema_violation",
            DecodeError::AheadOfRecord { .. } => "ts_ahead_of_record",
        }
    }
}

/// Default upper bound on one event's encoded size.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 64 * 1024;

/// Default for how far, in seconds, an event's `ts` may run ahead of the time its record
/// entered Kafka. Generous for clocks that drift; far too short to empty a day's windows.
pub const DEFAULT_MAX_TS_AHEAD_SECS: u64 = 900;

impl ClickEvent {
    /// An event with the required fields only; the optional ones are `None`.
    pub fn new(event_id: &str, ts: i64, session_id: &str, event_type: &str, ip: std::net::IpAddr) -> Self {
        ClickEvent {
            event_id: event_id.into(),
            ts,
            session_id: session_id.into(),
            user_id: None,
            event_type: event_type.into(),
            ip,
            device_id: None,
            user_agent: None,
            path: None,
            method: None,
            status: None,
            referrer: None,
            country: None,
            outcome: None,
            amount: None,
            currency: None,
            payee_id: None,
            attrs: None,
        }
    }

    /// Decodes and validates one event against the contract schema.
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<ClickEvent, DecodeError> {
        if bytes.len() > max_bytes {
            return Err(DecodeError::Oversize { len: bytes.len(), max: max_bytes });
        }
        let ev: ClickEvent = serde_json::from_slice(bytes).map_err(|e| {
            if e.classify() == serde_json::error::Category::Data {
                DecodeError::Schema(e.to_string())
            } else {
                DecodeError::InvalidJson(e.to_string())
            }
        })?;
        ev.validate()?;
        Ok(ev)
    }

    /// Refuses an event whose `ts` is more than `max_ahead_secs` ahead of `record_ms`, the
    /// time its record entered Kafka (the producer's or the broker's clock, which the sender of
    /// the event does not set). Windows are trimmed by the newest event time a key sees, so one
    /// event from the future would empty the counters it touches (an attacker's reset, or a
    /// client whose clock is a year ahead). The enricher dead-letters such events and the lake
    /// sink leaves them out, so that replay sees what the live path saw. No check without a
    /// record time or with a limit of 0.
    pub fn check_clock(&self, record_ms: Option<i64>, max_ahead_secs: u64) -> Result<(), DecodeError> {
        let Some(record_ms) = record_ms.filter(|t| *t > 0 && max_ahead_secs > 0) else { return Ok(()) };
        let ahead_ms = self.ts.saturating_sub(record_ms);
        let max_ms = i64::try_from(max_ahead_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        if ahead_ms > max_ms {
            return Err(DecodeError::AheadOfRecord { ahead_s: ahead_ms / 1000, max_s: max_ahead_secs });
        }
        Ok(())
    }

    /// The checks of the schema that serde's types do not already enforce.
    pub fn validate(&self) -> Result<(), DecodeError> {
        fn bad(msg: String) -> Result<(), DecodeError> {
            Err(DecodeError::Schema(msg))
        }
        fn len_ok(field: &str, v: &str, min: usize, max: usize) -> Result<(), DecodeError> {
            let n = v.chars().count();
            if n < min || n > max {
                return bad(format!("{field} must have {min}..={max} characters, has {n}"));
            }
            Ok(())
        }
        fn opt_len(field: &str, v: &Option<String>, max: usize) -> Result<(), DecodeError> {
            match v {
                Some(v) => len_ok(field, v, 0, max),
                None => Ok(()),
            }
        }
        len_ok("event_id", &self.event_id, 1, 128)?;
        len_ok("session_id", &self.session_id, 1, 128)?;
        if let Some(u) = &self.user_id {
            len_ok("user_id", u, 1, 128)?;
        }
        if !is_type_name(&self.event_type) {
            return bad(format!("type {:?} must match ^[a-z][a-z0-9_]{{0,63}}$", self.event_type));
        }
        opt_len("device_id", &self.device_id, 256)?;
        opt_len("user_agent", &self.user_agent, 1024)?;
        opt_len("path", &self.path, 2048)?;
        opt_len("method", &self.method, 16)?;
        opt_len("referrer", &self.referrer, 2048)?;
        opt_len("payee_id", &self.payee_id, 128)?;
        if let Some(s) = self.status
            && !(100..=599).contains(&s)
        {
            return bad(format!("status {s} must be within 100..=599"));
        }
        if let Some(c) = &self.country
            && (c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return bad(format!("country {c:?} must be two upper-case letters"));
        }
        if let Some(c) = &self.currency
            && (c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return bad(format!("currency {c:?} must be three upper-case letters"));
        }
        if let Some(a) = self.amount
            && (!a.is_finite() || a < 0.0)
        {
            return bad(format!("amount {a} must be a finite number >= 0"));
        }
        if let Some(attrs) = &self.attrs {
            if attrs.len() > 64 {
                return bad(format!("attrs has {} properties, at most 64 allowed", attrs.len()));
            }
            if let Some((k, _)) = attrs.iter().find(|(_, v)| !(v.is_string() || v.is_number() || v.is_boolean())) {
                return bad(format!("attrs.{k} must be a string, number or boolean"));
            }
        }
        Ok(())
    }

    pub fn is(&self, kind: &str) -> bool {
        self.event_type == kind
    }

    /// Whether the action failed: as its `outcome` says, or, when a site sends no outcome, as its
    /// HTTP `status` says (4xx and 5xx). A site whose tracker only records the response code of
    /// `POST /login` still shows its failed logins this way, as its access log does.
    pub fn failed(&self) -> bool {
        match self.outcome {
            Some(o) => o == Outcome::Failure,
            None => self.status.is_some_and(|s| s >= 400),
        }
    }

    pub fn succeeded(&self) -> bool {
        // An event without an outcome or an error status (a page view, a transfer) counts as
        // having happened.
        !self.failed()
    }
}

fn is_type_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> &'static str {
        r#"{"event_id":"e1","ts":"2026-11-01T10:00:00Z","session_id":"s1","type":"login","ip":"10.1.2.3"}"#
    }

    #[test]
    fn a_minimal_event_decodes_with_ts_in_milliseconds() {
        let ev = ClickEvent::decode(minimal().as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap();
        assert_eq!(ev.ts, 1_793_527_200_000);
        assert_eq!(ev.user_id, None);
        assert_eq!(ev.event_type, "login");
    }

    #[test]
    fn an_event_too_far_ahead_of_its_records_time_is_refused_with_how_far() {
        let ev = ClickEvent::decode(minimal().as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap();
        let at = |secs: i64| Some(ev.ts - secs * 1000);
        assert_eq!(ev.check_clock(at(900), 900), Ok(()), "exactly the limit ahead is allowed");
        assert_eq!(ev.check_clock(at(-3600), 900), Ok(()), "late events are normal");
        let e = ev.check_clock(at(901), 900).unwrap_err();
        assert_eq!(
            (e.reason(), e.clone()),
            ("ts_ahead_of_record", DecodeError::AheadOfRecord { ahead_s: 901, max_s: 900 })
        );
        assert!(e.to_string().contains("901 s ahead"), "{e}");
        assert_eq!(ev.check_clock(at(86_400 * 365), 0), Ok(()), "a limit of 0 turns the check off");
        assert_eq!(ev.check_clock(None, 900), Ok(()), "no record time, no check");
    }

    #[test]
    fn malformed_json_oversize_and_schema_violations_have_distinct_reasons() {
        let e = ClickEvent::decode(b"{not json", 1000).unwrap_err();
        assert_eq!(e.reason(), "invalid_json");
        let e = ClickEvent::decode(minimal().as_bytes(), 10).unwrap_err();
        assert_eq!(e.reason(), "oversize");
        let wrong_type = minimal().replace("\"login\"", "\"Login\"");
        assert_eq!(ClickEvent::decode(wrong_type.as_bytes(), 1000).unwrap_err().reason(), "schema_violation");
        let bad_ip = minimal().replace("10.1.2.3", "999.1.2.3");
        assert_eq!(ClickEvent::decode(bad_ip.as_bytes(), 1000).unwrap_err().reason(), "schema_violation");
        let no_ts = r#"{"event_id":"e1","session_id":"s1","type":"login","ip":"10.1.2.3"}"#;
        assert_eq!(ClickEvent::decode(no_ts.as_bytes(), 1000).unwrap_err().reason(), "schema_violation");
        let neg = minimal().replace("}", r#","amount":-1}"#);
        assert_eq!(ClickEvent::decode(neg.as_bytes(), 1000).unwrap_err().reason(), "schema_violation");
        let nested = minimal().replace("}", r#","attrs":{"a":{"b":1}}}"#);
        assert_eq!(ClickEvent::decode(nested.as_bytes(), 1000).unwrap_err().reason(), "schema_violation");
    }

    #[test]
    fn an_outcome_decides_success_and_without_one_an_error_status_is_a_failure() {
        let ev = |extra: &str| ClickEvent::decode(minimal().replace("}", extra).as_bytes(), 1000).unwrap();
        let judged = |e: ClickEvent| (e.succeeded(), e.failed());
        assert_eq!(judged(ev("}")), (true, false), "no outcome, no status: it happened");
        assert_eq!(judged(ev(r#","status":302}"#)), (true, false));
        for code in [401, 403, 429, 500] {
            assert_eq!(judged(ev(&format!(r#","status":{code}}}"#))), (false, true), "status {code}");
        }
        assert_eq!(judged(ev(r#","status":401,"outcome":"success"}"#)), (true, false), "the outcome wins");
        assert_eq!(judged(ev(r#","status":200,"outcome":"failure"}"#)), (false, true), "the outcome wins");
    }

    #[test]
    fn an_event_survives_an_encode_decode_round_trip() {
        let full = r#"{"event_id":"e2","ts":"2026-11-01T10:00:00.250Z","session_id":"s1","user_id":"u1",
            "type":"transfer","ip":"2001:db8::1","device_id":"d1","country":"GB","amount":12.5,
            "currency":"GBP","payee_id":"p1","outcome":"success","attrs":{"k":"v","n":1}}"#;
        let ev = ClickEvent::decode(full.as_bytes(), 10_000).unwrap();
        let again = ClickEvent::decode(&serde_json::to_vec(&ev).unwrap(), 10_000).unwrap();
        assert_eq!(ev, again);
        assert_eq!(again.ts % 1000, 250);
    }
}
