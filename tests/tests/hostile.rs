//! Ten thousand bad inputs through the real pipeline: malformed, oversize, wrongly typed,
//! badly encoded and hostile (huge numbers, deep nesting, 100 k attributes), on both input
//! topics, among valid events. Nothing crashes, no partition stalls, every bad input is in the
//! dead-letter topic with a reason, and every valid event is still scored.

use e2e_tests::kafka::{committed_vs_end, consume_until, event_ids};
use e2e_tests::setup::{baseline_registry, start_services, traffic};
use e2e_tests::stack::Stack;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "test-admin-token";

/// One bad JSON input of kind `i % 12`, varied by `i`.
fn bad_event(i: usize) -> Vec<u8> {
    let ok = |extra: &str| {
        format!(
            r#"{{"event_id":"bad-{i}","ts":"2026-11-01T10:00:00Z","session_id":"s{i}","type":"login","ip":"10.0.0.1"{extra}}}"#
        )
        .into_bytes()
    };
    match i % 12 {
        0 => format!("{{\"event_id\":\"bad-{i}\",").into_bytes(),
        1 => (0..(i % 97 + 1)).map(|k| ((k * 31 + i) % 256) as u8).collect(),
        // Oversize now and then (they are big); otherwise a field over its length limit.
        2 if i % 120 == 2 => ok(&format!(r#","user_agent":"{}""#, "A".repeat(70 * 1024))),
        2 => ok(&format!(r#","user_agent":"{}""#, "A".repeat(1025 + i % 100))),
        3 => ok(r#","amount":1e400"#),
        4 => ok(r#","amount":-5"#),
        5 => ok(&format!(r#","status":{}"#, 10_u64.pow(12) + i as u64)),
        6 => {
            format!(r#"{{"event_id":{i},"ts":"2026-11-01T10:00:00Z","session_id":"s","type":"login","ip":"10.0.0.1"}}"#)
                .into_bytes()
        }
        7 => {
            let mut v = ok("");
            v.splice(10..10, [0xff, 0xfe, 0xc3]);
            v
        }
        8 => ok(&format!(r#","attrs":{{"a":{}1{}}}"#, "[".repeat(5000), "]".repeat(5000))),
        9 => {
            let n = if i % 1200 == 9 { 100_000 } else { 65 + i % 50 };
            let attrs: Vec<String> = (0..n).map(|k| format!("\"k{k}\":1")).collect();
            ok(&format!(r#","attrs":{{{}}}"#, attrs.join(",")))
        }
        10 => ok(r#","ip":"300.1.1.1""#),
        _ => ok(r#","ts":"not a time""#),
    }
}

/// One bad access-log line of kind `i % 4`.
fn bad_line(i: usize) -> Vec<u8> {
    match i % 4 {
        0 => format!("garbage line {i}").into_bytes(),
        1 => vec![0xff; i % 50 + 1],
        2 => vec![b'x'; 20 * 1024],
        _ => format!(r#"1.2.3.4 - - [01/Nov/2026:09:05:03 +0000] "GET /{i} HTTP/1.1" 200 1 "-" "unterminated"#)
            .into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_bad_inputs_are_dead_lettered_with_reasons_and_valid_events_still_scored() {
    let stack = Stack::start();
    let work = tempfile::tempdir().unwrap();
    let registry = baseline_registry(work.path());
    let shutdown = CancellationToken::new();
    let (enricher, scorer) = start_services(&stack, &registry, TOKEN, &[], &shutdown).await;

    // Valid events with bad ones between them, keyed like real traffic so they share partitions.
    let good = traffic(41, 1500);
    let (n_bad_events, n_bad_lines) = (9_000, 1_000);
    let mut records: Vec<(String, Vec<u8>, i64)> = Vec::new();
    let mut next_good = good.iter();
    for i in 0..n_bad_events {
        records.push((format!("s{}", i % 50), bad_event(i), 0));
        if i % 6 == 0
            && let Some(e) = next_good.next()
        {
            records.push((e.session_id.clone(), serde_json::to_vec(e).unwrap(), e.ts));
        }
    }
    records.extend(next_good.map(|e| (e.session_id.clone(), serde_json::to_vec(e).unwrap(), e.ts)));
    let lines: Vec<(String, Vec<u8>, i64)> =
        (0..n_bad_lines).map(|i| (format!("log{}", i % 10), bad_line(i), 0)).collect();
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", stack.brokers())
        .set("message.max.bytes", "2000000")
        .create()
        .unwrap();
    fixtures::send_events(&producer, "clickstream", &records, false).await.unwrap();
    fixtures::send_events(&producer, "weblogs", &lines, false).await.unwrap();

    // Every valid event is scored.
    let want: HashSet<String> = good.iter().map(|e| e.event_id.clone()).collect();
    let verdicts = consume_until(&stack.brokers(), "fraud.verdicts", Duration::from_secs(180), |rs| {
        event_ids(rs).len() >= want.len()
    })
    .await;
    let scored = event_ids(&verdicts);
    assert_eq!(scored.intersection(&want).count(), want.len(), "every valid event among the bad ones is scored");
    assert!(scored.iter().all(|id| want.contains(id)), "no bad input was scored");

    // Every bad input is dead-lettered once, with a reason and its source position.
    let total_bad = n_bad_events + n_bad_lines;
    let dlq =
        consume_until(&stack.brokers(), "clickstream.dlq", Duration::from_secs(120), |rs| rs.len() >= total_bad).await;
    assert_eq!(dlq.len(), total_bad, "one dead letter per bad input");
    let mut reasons: HashMap<(String, String), usize> = HashMap::new();
    let mut positions = HashSet::new();
    for r in &dlq {
        let reason = r.headers.get("dlq.reason").cloned().unwrap_or_default();
        assert!(!reason.is_empty(), "a dead letter without a reason: {:?}", r.headers);
        assert!(!r.headers.get("dlq.error").is_none_or(String::is_empty), "a dead letter without an error text");
        let topic = r.headers["dlq.source.topic"].clone();
        positions.insert((
            topic.clone(),
            r.headers["dlq.source.partition"].clone(),
            r.headers["dlq.source.offset"].clone(),
        ));
        *reasons.entry((topic, reason)).or_default() += 1;
    }
    assert_eq!(positions.len(), total_bad, "dead letters name distinct source positions");
    eprintln!("dead letters by topic and reason: {reasons:?}");
    for expected in ["invalid_json", "oversize", "schema_violation"] {
        assert!(reasons.keys().any(|(t, r)| t == "clickstream" && r == expected), "{expected}: {reasons:?}");
    }
    for expected in ["invalid_log_line", "invalid_encoding", "oversize"] {
        assert!(reasons.keys().any(|(t, r)| t == "weblogs" && r == expected), "{expected}: {reasons:?}");
    }

    // No partition stalled: the enricher's committed offsets reach the end of both inputs.
    let mut caught_up = false;
    for _ in 0..60 {
        let offsets = [
            committed_vs_end(&stack.brokers(), "enricher", "clickstream"),
            committed_vs_end(&stack.brokers(), "enricher", "weblogs"),
        ]
        .concat();
        if offsets.iter().all(|(_, committed, end)| committed == end) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(caught_up, "offsets: {:?}", committed_vs_end(&stack.brokers(), "enricher", "clickstream"));

    // And both services are still up.
    for addr in [enricher.http_addr, scorer.http_addr] {
        let (status, _) = e2e_tests::http::request(addr, "GET", "/healthz", None, None).await.unwrap();
        assert_eq!(status, 200);
    }
    shutdown.cancel();
    enricher.wait().await.unwrap();
    scorer.wait().await.unwrap();
}
