//! Faults against the real broker and Redis: every event still gets a verdict (at least once;
//! duplicates are counted and reported, losses fail the test).
//!
//! Short form by default (a few thousand events per test, as CI runs it); set `FAULT_EVENTS`
//! (for example 50000) for the long form.

use e2e_tests::setup::{Process, baseline_registry, send_in_chunks, start_services, traffic, verdict_tally};
use e2e_tests::stack::{Stack, repo_root};
use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "test-admin-token";

fn events_per_test() -> usize {
    std::env::var("FAULT_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2500)
}

/// At most two fault scenarios at a time: each runs its own broker, Redis and services, and
/// more than two on a 2-core machine measures contention rather than recovery.
static RUNNING: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(2));

/// Consumer settings that notice a killed group member in seconds, not librdkafka's 45 s.
const FAST_GROUP: [&str; 4] = ["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"];

fn ids(events: &[models::ClickEvent]) -> HashSet<String> {
    events.iter().map(|e| e.event_id.clone()).collect()
}

fn report(what: &str, sent: usize, missing: usize, duplicates: usize) {
    eprintln!("{what}: {sent} events, lost {missing}, duplicated {duplicates}");
    assert_eq!(missing, 0, "{what}: {missing} of {sent} events had no verdict within the tally's timeout");
}

/// Streams traffic through in-process services on a fresh stack, calling `fault(stack, k)`
/// after each of six parts, then checks that every event got a verdict.
async fn survives(what: &str, seed: u64, mut fault: impl AsyncFnMut(&Stack, usize)) {
    let _turn = RUNNING.acquire().await.unwrap();
    let stack = Stack::start();
    let work = tempfile::tempdir().unwrap();
    let registry = baseline_registry(work.path());
    let shutdown = CancellationToken::new();
    let (enricher, scorer) = start_services(&stack, &registry, TOKEN, &FAST_GROUP, &shutdown).await;
    let events = traffic(seed, events_per_test());
    send_in_chunks(&stack.brokers(), "clickstream", &events, 6, async |k| fault(&stack, k).await).await;
    let (missing, duplicates) = verdict_tally(&stack.brokers(), &ids(&events), Duration::from_secs(300)).await;
    report(what, events.len(), missing, duplicates);
    shutdown.cancel();
    enricher.wait().await.unwrap();
    scorer.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_for_ten_seconds_delays_verdicts_but_loses_none() {
    survives("redis outage", 31, async |stack: &Stack, k| {
        if k == 1 {
            stack.stop_redis();
            tokio::time::sleep(Duration::from_secs(10)).await;
            stack.restart_missing();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_degrade_a_redis_outage_is_decided_without_history_and_says_so() {
    let _turn = RUNNING.acquire().await.unwrap();
    let stack = Stack::start();
    let work = tempfile::tempdir().unwrap();
    let registry = baseline_registry(work.path());
    let shutdown = CancellationToken::new();
    let (enricher, scorer) =
        start_services(&stack, &registry, TOKEN, &["--on-redis-error", "degrade"], &shutdown).await;
    stack.stop_redis();
    let mut events = traffic(32, 300);
    events.truncate(300);
    send_in_chunks(&stack.brokers(), "clickstream", &events, 1, async |_| {}).await;
    let records = e2e_tests::kafka::consume_until(&stack.brokers(), "fraud.verdicts", Duration::from_secs(60), |rs| {
        e2e_tests::kafka::event_ids(rs).len() >= events.len()
    })
    .await;
    let decided = e2e_tests::kafka::event_ids(&records);
    let missing = ids(&events).difference(&decided).count();
    assert_eq!(missing, 0, "{missing} of {} events not decided while Redis is down", events.len());
    for r in &records {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        let codes: Vec<&str> = v["reasons"].as_array().unwrap().iter().filter_map(|r| r["code"].as_str()).collect();
        assert!(
            codes.contains(&"history_unavailable") && codes.contains(&"session_state_unavailable"),
            "a degraded verdict says why: {v}"
        );
    }
    stack.restart_missing();
    shutdown.cancel();
    enricher.wait().await.unwrap();
    scorer.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_killed_and_restarted_mid_stream_loses_nothing() {
    survives("broker restart", 33, async |stack: &Stack, k| {
        if k == 2 {
            stack.kill_broker();
            tokio::time::sleep(Duration::from_secs(3)).await;
            stack.restart_missing();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enricher_and_scorer_killed_with_sigkill_mid_stream_lose_nothing() {
    let _turn = RUNNING.acquire().await.unwrap();
    let stack = Stack::start();
    let work = tempfile::tempdir().unwrap();
    let registry = baseline_registry(work.path());
    let args = |name: &str| {
        let mut a = stack.service_args(name, TOKEN);
        a.extend(FAST_GROUP.iter().map(|s| s.to_string()));
        if name == "scorer" {
            a.extend([
                "--registry".into(),
                registry.display().to_string(),
                "--policy".into(),
                repo_root().join("config/policy.toml").display().to_string(),
            ]);
        }
        a
    };
    let mut enricher = Process::spawn("enricher", &args("enricher"));
    let mut scorer = Process::spawn("scorer", &args("scorer"));
    let events = traffic(34, events_per_test());
    send_in_chunks(&stack.brokers(), "clickstream", &events, 8, async |k| {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if k == 2 {
            enricher.kill9();
            enricher = Process::spawn("enricher", &args("enricher"));
        }
        if k == 4 {
            scorer.kill9();
            scorer = Process::spawn("scorer", &args("scorer"));
        }
    })
    .await;
    let (missing, duplicates) = verdict_tally(&stack.brokers(), &ids(&events), Duration::from_secs(300)).await;
    report("kill -9 of enricher and scorer", events.len(), missing, duplicates);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_of_each_service_in_one_group_with_one_leaving_mid_stream_lose_nothing() {
    let _turn = RUNNING.acquire().await.unwrap();
    let stack = Stack::start();
    let work = tempfile::tempdir().unwrap();
    let registry = baseline_registry(work.path());
    let (stay, leave) = (CancellationToken::new(), CancellationToken::new());
    let (e1, s1) = start_services(&stack, &registry, TOKEN, &FAST_GROUP, &stay).await;
    let (e2, s2) = start_services(&stack, &registry, TOKEN, &FAST_GROUP, &leave).await;
    let events = traffic(35, events_per_test());
    send_in_chunks(&stack.brokers(), "clickstream", &events, 6, async |k| {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if k == 2 {
            leave.cancel();
        }
    })
    .await;
    e2.wait().await.unwrap();
    s2.wait().await.unwrap();
    let (missing, duplicates) = verdict_tally(&stack.brokers(), &ids(&events), Duration::from_secs(300)).await;
    report("rebalance", events.len(), missing, duplicates);
    stay.cancel();
    e1.wait().await.unwrap();
    s1.wait().await.unwrap();
}
