//! Every valid event gets a score: whatever amounts, times and repetitions a session sends
//! (5e-324, f64::MAX, bursts in one millisecond, gaps of years, times out of order), each
//! feature is finite and within the documented clamp, the vector survives the JSON the
//! enriched event carries, and the shipped baseline model scores it within [0, 1].

use models::features::{FeatureVector, MAX_FEATURE_VALUE, Replayer};
use models::{ClickEvent, ModelArtifact, Outcome};
use proptest::prelude::*;

const TYPES: [&str; 7] = ["login", "page_view", "add_payee", "transfer", "password_reset", "mfa", "logout"];
const EXTREME: [f64; 8] = [0.0, 5e-324, 1e-300, 1.0, 1e12, 1.7e308, f64::MAX, 123.45];
const DAY: i64 = 86_400_000;

fn baseline() -> ModelArtifact {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("baseline");
    let version = std::fs::read_to_string(dir.join("current")).unwrap();
    let text = std::fs::read_to_string(dir.join(version.trim()).join("model.json")).unwrap();
    let model: ModelArtifact = serde_json::from_str(&text).unwrap();
    model.check().unwrap();
    model
}

/// One event: its kind, who, from where, its amount (an extreme one or any non-negative
/// finite number), how far after the previous event it comes (0, a millisecond, minutes,
/// days, years, or back in time), and whether it succeeded.
fn event() -> impl Strategy<Value = (usize, u8, u8, u8, f64, i64, bool, Option<u32>)> {
    let amount = prop_oneof![
        prop::sample::select(EXTREME.to_vec()),
        prop::num::f64::POSITIVE | prop::num::f64::ZERO | prop::num::f64::SUBNORMAL,
    ];
    let gap = prop_oneof![Just(0i64), Just(1), 0..3_600_000i64, 0..90 * DAY, Just(3 * 365 * DAY), -2 * DAY..0,];
    (0..TYPES.len(), 0..3u8, 0..3u8, 0..3u8, amount, gap, any::<bool>(), prop::option::of(0..4u32))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_valid_event_gets_finite_features_and_a_score_in_range(events in prop::collection::vec(event(), 1..60)) {
        let model = baseline();
        let mut replay = Replayer::default();
        let mut ts = 1_700_000_000_000i64;
        for (i, (kind, user, device, ip, amount, gap, ok, asn)) in events.into_iter().enumerate() {
            ts = (ts + gap).max(0);
            let ip = format!("203.0.113.{ip}").parse().unwrap();
            let e = ClickEvent {
                user_id: Some(format!("u{user}")),
                device_id: Some(format!("d{device}")),
                amount: (TYPES[kind] == "transfer").then_some(amount),
                payee_id: matches!(TYPES[kind], "transfer" | "add_payee").then(|| format!("p{}", i % 3)),
                outcome: (TYPES[kind] == "login").then_some(if ok { Outcome::Success } else { Outcome::Failure }),
                path: Some(if i % 2 == 0 { "/accounts".into() } else { "/payees".into() }),
                attrs: asn.and_then(|a| serde_json::json!({ "asn": 64500 + a }).as_object().cloned()),
                ..ClickEvent::new(&format!("e{i}"), ts, &format!("s{}", i % 4), TYPES[kind], ip)
            };
            if e.validate().is_err() {
                continue;
            }
            let f = replay.replay(&e);
            prop_assert!(f.0.iter().all(|x| x.is_finite() && x.abs() <= MAX_FEATURE_VALUE), "{i}: {f:?}");
            let back: FeatureVector = serde_json::from_slice(&serde_json::to_vec(&f).unwrap()).unwrap();
            prop_assert_eq!(&back, &f);
            let s = model.score(&back).score;
            prop_assert!((0.0..=1.0).contains(&s), "{i}: score {s}");
        }
    }
}
