//! What must hold for any input to the parsers, shared by the fuzz targets (`fuzz/`) and the
//! corpus replay that runs in CI (`tests/tests/fuzz_corpus.rs`). Each function panics when the
//! invariant breaks, as a fuzzer expects.

use enricher::weblog::{LogFormat, Routes, parse_line};
use std::sync::LazyLock;

static ROUTES: LazyLock<Routes> =
    LazyLock::new(|| Routes::parse(include_str!("../../config/routes.toml")).expect("the shipped routes"));
static FORMAT: LazyLock<LogFormat> = LazyLock::new(|| "session,device,country".parse().expect("a format"));

/// Bytes on `clickstream`: a valid event or a dead-letter reason.
pub fn event_bytes(data: &[u8]) {
    match models::ClickEvent::decode(data, models::event::DEFAULT_MAX_EVENT_BYTES) {
        Ok(e) => assert!(e.validate().is_ok(), "a decoded event must validate"),
        Err(e) => assert!(["invalid_json", "schema_violation", "oversize"].contains(&e.reason()), "{e}"),
    }
}

/// Bytes on `weblogs`: a valid event or a dead-letter reason the enricher declares.
pub fn log_bytes(data: &[u8]) {
    match parse_line(data, &FORMAT, &ROUTES, "fuzz".into()) {
        Ok(e) => assert!(e.validate().is_ok(), "a parsed line must be a valid event"),
        Err(e) => assert!(enricher::app::DLQ_REASONS.contains(&e.reason()), "{e}"),
    }
}

/// A policy file: validated or refused.
pub fn policy_bytes(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = scorer::policy::Policy::parse(text);
    }
}

/// A routes file: loaded or refused.
pub fn routes_bytes(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Routes::parse(text);
    }
}
