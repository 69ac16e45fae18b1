//! The event decoder on arbitrary input: an event that passes validation, or an error with a
//! reason; never a panic. Valid events survive an encode/decode round trip.

use models::ClickEvent;
use proptest::prelude::*;

const VALID: &str = r#"{"event_id":"e1","ts":"2026-11-01T10:00:00Z","session_id":"s1","type":"transfer","ip":"10.1.2.3","user_id":"u1","amount":12.5,"currency":"EUR","payee_id":"p1","attrs":{"k":"v","n":1,"b":true}}"#;

fn check(bytes: &[u8], max: usize) -> Result<(), TestCaseError> {
    match ClickEvent::decode(bytes, max) {
        Ok(e) => prop_assert!(e.validate().is_ok(), "a decoded event validates"),
        Err(e) => prop_assert!(["invalid_json", "schema_violation", "oversize"].contains(&e.reason()), "{e}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_are_an_event_or_a_reason(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes, 1024)?;
    }

    #[test]
    fn a_valid_event_with_one_byte_changed_is_an_event_or_a_reason(at in 0..VALID.len(), byte in any::<u8>()) {
        let mut b = VALID.as_bytes().to_vec();
        b[at] = byte;
        check(&b, 64 * 1024)?;
    }

    #[test]
    fn a_valid_event_cut_anywhere_is_an_event_or_a_reason(at in 0..VALID.len()) {
        check(&VALID.as_bytes()[..at], 64 * 1024)?;
    }

    #[test]
    fn valid_events_survive_an_encode_decode_round_trip(
        id in "[a-zA-Z0-9_-]{1,128}",
        ts in 0i64..4_000_000_000_000,
        session in "\\PC{1,40}",
        kind in "[a-z][a-z0-9_]{0,63}",
        ip in any::<std::net::IpAddr>(),
        amount in proptest::option::of(0.0f64..1e12),
        country in proptest::option::of("[A-Z]{2}"),
        user_agent in proptest::option::of("\\PC{0,200}"),
    ) {
        let e = ClickEvent { amount, country, user_agent, ..ClickEvent::new(&id, ts, &session, &kind, ip) };
        let bytes = serde_json::to_vec(&e).unwrap();
        let back = ClickEvent::decode(&bytes, 64 * 1024).map_err(|err| TestCaseError::fail(format!("{err}: {}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(back, e);
    }
}
