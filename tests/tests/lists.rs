//! Blacklists across two enricher instances on a real broker and Redis: a change made through
//! one instance reaches the other within a second, entries expire on their own, and every
//! change is audited with the token's name.

use clap::Parser;
use e2e_tests::http::request;
use e2e_tests::kafka::consume_until;
use e2e_tests::stack::Stack;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "lists-token";
const IP: &str = "203.0.113.9";
/// How long the test's blacklist entry lives (wall clock, as list expiry is).
const LIFETIME_MS: i64 = 6000;

async fn blacklist_size(addr: std::net::SocketAddr) -> Option<i64> {
    let (_, text) = request(addr, "GET", "/metrics", None, None).await.ok()?;
    text.lines()
        .find(|l| l.starts_with("fraud_list_entries{") && l.contains("list=\"blacklist\""))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// How long until `addr`'s cache holds `n` blacklist entries (None if not within 3 s).
async fn time_until_size(addr: std::net::SocketAddr, n: i64, since: Instant) -> Option<Duration> {
    while since.elapsed() < Duration::from_secs(3) {
        if blacklist_size(addr).await == Some(n) {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

fn event(id: &str, session: &str) -> models::ClickEvent {
    serde_json::from_value(serde_json::json!({
        "event_id": id, "ts": models::format_ts(platform::now_ms()), "session_id": session, "type": "login", "ip": IP
    }))
    .unwrap()
}

/// The list hits on the enriched copies of `id` (one per instance).
async fn hits(stack: &Stack, id: &str) -> Vec<usize> {
    let records = consume_until(&stack.brokers(), "clickstream.enriched", Duration::from_secs(30), |rs| {
        rs.iter()
            .filter(|r| {
                serde_json::from_slice::<serde_json::Value>(&r.payload).is_ok_and(|v| v["event"]["event_id"] == id)
            })
            .count()
            >= 2
    })
    .await;
    records
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.payload).ok())
        .filter(|v| v["event"]["event_id"] == id)
        .map(|v| v["list_hits"].as_array().map_or(0, Vec::len))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_changes_reach_every_instance_within_a_second_and_expire_on_their_own() {
    let stack = Stack::start();
    let shutdown = CancellationToken::new();
    let start = |group: &str| {
        let mut args = stack.service_args("enricher", TOKEN);
        args.extend(["--group-id".into(), group.into()]);
        enricher::start(enricher::Config::try_parse_from(args).unwrap(), shutdown.clone())
    };
    let a = start("enricher-a").await.unwrap();
    let b = start("enricher-b").await.unwrap();
    let producer: rdkafka::producer::FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", stack.brokers()).create().unwrap();
    // Both instances must be consuming before the entry's clock starts: a fresh consumer group's
    // first join can take seconds on a loaded machine, longer than the entry lives.
    fixtures::send_events(&producer, "clickstream", &fixtures::encode(&[event("warmup", "s0")]), false).await.unwrap();
    assert_eq!(hits(&stack, "warmup").await, vec![0, 0]);

    // Added through A, seen by B.
    let expires = models::format_ts(platform::now_ms() + LIFETIME_MS);
    let body = format!(r#"{{"value":"{IP}","reason":"proxy","expires_at":"{expires}"}}"#);
    let added = Instant::now();
    let (status, text) =
        request(a.http_addr, "POST", "/v1/lists/blacklist/ip", Some(TOKEN), Some(&body)).await.unwrap();
    assert_eq!(status, 200, "{text}");
    let took = time_until_size(b.http_addr, 1, added).await;
    assert!(took.is_some_and(|t| t < Duration::from_secs(1)), "instance B saw the entry after {took:?}");

    // Both instances flag an event from the IP while the entry lives…
    fixtures::send_events(&producer, "clickstream", &fixtures::encode(&[event("before", "s1")]), false).await.unwrap();
    assert_eq!(hits(&stack, "before").await, vec![1, 1]);
    // …and neither after it expired.
    tokio::time::sleep(Duration::from_millis(
        (LIFETIME_MS as u64 + 500).saturating_sub(added.elapsed().as_millis() as u64),
    ))
    .await;
    fixtures::send_events(&producer, "clickstream", &fixtures::encode(&[event("after", "s2")]), false).await.unwrap();
    assert_eq!(hits(&stack, "after").await, vec![0, 0]);

    // Removal through B reaches A; the audit trail names the token for both changes.
    let body = format!(r#"{{"value":"{IP}","reason":"again"}}"#);
    request(b.http_addr, "POST", "/v1/lists/blacklist/ip", Some(TOKEN), Some(&body)).await.unwrap();
    assert!(time_until_size(a.http_addr, 1, Instant::now()).await.is_some());
    let removed = Instant::now();
    let (status, _) =
        request(b.http_addr, "DELETE", &format!("/v1/lists/blacklist/ip/{IP}"), Some(TOKEN), None).await.unwrap();
    assert_eq!(status, 200);
    let took = time_until_size(a.http_addr, 0, removed).await;
    assert!(took.is_some_and(|t| t < Duration::from_secs(1)), "instance A saw the removal after {took:?}");
    let (_, audit) = request(a.http_addr, "GET", "/v1/lists/audit", Some(TOKEN), None).await.unwrap();
    let audit: Vec<serde_json::Value> = serde_json::from_str(&audit).unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["remove", "add", "add"], "newest first");
    assert!(audit.iter().all(|r| r["actor"] == "tests"));
    // Reading the lists needs the token too.
    assert_eq!(request(a.http_addr, "GET", "/v1/lists", None, None).await.unwrap().0, 401);

    shutdown.cancel();
    a.wait().await.unwrap();
    b.wait().await.unwrap();
}
