//! The walking skeleton end to end: simulated traffic → enricher → scorer → verdicts, on a real
//! tansu broker and a real redis-server, with a model trained from a real Parquet lake.

use e2e_tests::kafka::{committed_vs_end, consume_until};
use e2e_tests::setup::{blacklist_ip, live_traffic, start_services, train_bank};
use e2e_tests::stack::{Stack, repo_root};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "test-admin-token";
const BLOCKED_IP: &str = "203.0.113.66";

fn schema(name: &str) -> jsonschema::Validator {
    let path = repo_root().join("contract").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema JSON");
    jsonschema::options().should_validate_formats(true).build(&schema).expect("a valid schema")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_gets_one_valid_verdict_and_blacklisted_ips_are_blocked() {
    let stack = Stack::start();
    let work = tempfile::tempdir().unwrap();
    // History, a model trained from it, and the services in-process on port 0.
    let trained = train_bank(work.path(), 11);
    let (world, trained) = (trained.world, trained.outcome);
    let shutdown = CancellationToken::new();
    let (enricher, scorer) = start_services(&stack, &work.path().join("registry"), TOKEN, &[], &shutdown).await;

    // Blacklist an IP through the authenticated API (and check that the API wants the token).
    let body = format!(r#"{{"value":"{BLOCKED_IP}","reason":"known proxy"}}"#);
    let (status, _) = e2e_tests::http::request(enricher.http_addr, "POST", "/v1/lists/blacklist/ip", None, Some(&body))
        .await
        .unwrap();
    assert_eq!(status, 401);
    blacklist_ip(&enricher, TOKEN, BLOCKED_IP).await;

    // Live traffic: a few thousand events, one session moved onto the blacklisted IP.
    let (live, victim) = live_traffic(&world, BLOCKED_IP, 0.5);
    assert!(live.len() > 2000, "{} events", live.len());
    let mut records = fixtures::encode(&live);
    // Bad input in the middle of good input.
    let bad: Vec<(String, Vec<u8>, i64)> = vec![
        ("bad".into(), b"{not json".to_vec(), 0),
        (
            "bad".into(),
            br#"{"event_id":"x","ts":"yesterday","session_id":"s","type":"login","ip":"1.2.3.4"}"#.to_vec(),
            0,
        ),
        ("bad".into(), vec![0xff, 0xfe, 0x00], 0),
    ];
    records.splice(100..100, bad);
    let producer: rdkafka::producer::FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", stack.brokers()).create().unwrap();
    fixtures::send_events(&producer, "clickstream", &records, false).await.unwrap();
    // Raw access-log lines on the weblogs topic: 200 good ones from the sample, two broken.
    let sample = std::fs::read_to_string(repo_root().join("fixtures/sample/access.log")).unwrap();
    let mut lines: Vec<(String, Vec<u8>, i64)> =
        sample.lines().take(200).map(|l| ("log".to_string(), l.as_bytes().to_vec(), 0)).collect();
    lines.push(("log".into(), b"not a log line".to_vec(), 0));
    lines.push((
        "log".into(),
        br#"1.2.3.4 - - [01/Nov/2026:09:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "unterminated"#.to_vec(),
        0,
    ));
    fixtures::send_events(&producer, "weblogs", &lines, false).await.unwrap();

    // Every event gets a verdict.
    let want: HashSet<String> = live.iter().map(|e| e.event_id.clone()).collect();
    let verdicts = consume_until(&stack.brokers(), "fraud.verdicts", Duration::from_secs(120), |rs| {
        e2e_tests::kafka::event_ids(rs).len() >= want.len() + 200
    })
    .await;
    let validator = schema("verdict.schema.json");
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut actions: HashMap<String, usize> = HashMap::new();
    for r in &verdicts {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).expect("verdicts are JSON");
        if let Err(e) = validator.validate(&v) {
            panic!("verdict does not match the contract schema: {e}\n{v}");
        }
        let id = v["event_id"].as_str().unwrap().to_string();
        *seen.entry(id.clone()).or_default() += 1;
        *actions.entry(v["action"].as_str().unwrap().to_string()).or_default() += 1;
        if v["session_id"] == victim.as_str() {
            assert_eq!(v["action"], "block", "blacklisted IP must be blocked: {v}");
            assert!(v["reasons"].as_array().unwrap().iter().any(|r| r["code"] == "blacklist_ip"), "{v}");
        }
        assert_eq!(v["model_version"], trained.version.as_str());
    }
    // Per-partition order holds through both services (and the enricher's partition lanes):
    // each session's verdicts come in the order its events were sent.
    let mut sent: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in &live {
        sent.entry(e.session_id.as_str()).or_default().push(e.event_id.as_str());
    }
    let mut decided: HashMap<String, Vec<String>> = HashMap::new();
    for r in &verdicts {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        let (session, id) = (v["session_id"].as_str().unwrap(), v["event_id"].as_str().unwrap());
        if sent.contains_key(session) {
            decided.entry(session.to_string()).or_default().push(id.to_string());
        }
    }
    for (session, ids) in &sent {
        assert_eq!(
            decided.get(*session).map(|d| d.iter().map(String::as_str).collect::<Vec<_>>()).as_ref(),
            Some(ids),
            "order of session {session}"
        );
    }
    let from_logs = seen.keys().filter(|id| id.starts_with("wl-")).count();
    assert_eq!(from_logs, 200, "every good access-log line gets one verdict");
    seen.retain(|id, _| !id.starts_with("wl-"));
    let missing: Vec<_> = want.iter().filter(|id| !seen.contains_key(*id)).collect();
    let duplicates = seen.values().filter(|n| **n > 1).count();
    assert!(missing.is_empty(), "{} of {} events have no verdict", missing.len(), want.len());
    assert_eq!(seen.len(), want.len(), "verdicts only for input events");
    eprintln!("verdicts: {} for {} events, {duplicates} duplicated; actions {actions:?}", verdicts.len(), want.len());
    assert!(actions.get("allow").copied().unwrap_or(0) > want.len() / 2, "most traffic is legitimate: {actions:?}");

    // Bad input went to the dead-letter topic with its reason and position.
    let dlq = consume_until(&stack.brokers(), "clickstream.dlq", Duration::from_secs(30), |rs| rs.len() >= 5).await;
    let reasons: HashSet<&str> = dlq.iter().map(|r| r.headers["dlq.reason"].as_str()).collect();
    assert_eq!(dlq.len(), 5, "{dlq:?}");
    assert!(reasons.contains("invalid_json") && reasons.contains("schema_violation"), "{reasons:?}");
    assert!(reasons.contains("invalid_log_line"), "{reasons:?}");
    assert!(dlq.iter().all(|r| r.headers.contains_key("dlq.source.offset")));
    assert_eq!(dlq.iter().filter(|r| r.headers["dlq.source.topic"] == "weblogs").count(), 2);

    // Committed offsets reach the end of the input for both consumer groups.
    let mut caught_up = false;
    for _ in 0..40 {
        let e = [
            committed_vs_end(&stack.brokers(), "enricher", "clickstream"),
            committed_vs_end(&stack.brokers(), "enricher", "weblogs"),
        ]
        .concat();
        let s = committed_vs_end(&stack.brokers(), "scorer", "clickstream.enriched");
        if e.iter().chain(&s).all(|(_, c, end)| c == end) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        caught_up,
        "offsets: enricher {:?}, scorer {:?}",
        committed_vs_end(&stack.brokers(), "enricher", "clickstream"),
        committed_vs_end(&stack.brokers(), "scorer", "clickstream.enriched")
    );

    // The website can ask about the blocked session.
    let (status, text) =
        e2e_tests::http::request(scorer.http_addr, "GET", &format!("/v1/sessions/{victim}"), None, None).await.unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("\"action\":\"block\""), "{text}");

    // Metrics are served.
    let (status, text) = e2e_tests::http::request(scorer.http_addr, "GET", "/metrics", None, None).await.unwrap();
    assert_eq!(status, 200);
    let blocks = text.lines().find(|l| l.starts_with("fraud_verdicts_total{") && l.contains("action=\"block\""));
    assert!(blocks.is_some_and(|l| l.contains("service=\"scorer\"")), "{text}");

    shutdown.cancel();
    enricher.wait().await.unwrap();
    scorer.wait().await.unwrap();
}
