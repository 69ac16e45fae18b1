//! The scorer against a real broker and Redis: policy entry kinds, escalation and expiry,
//! operator lift, alert de-duplication, hot model reload mid-stream, shadow scoring, labels.

use clap::Parser;
use e2e_tests::http::request;
use e2e_tests::kafka::consume_until;
use e2e_tests::stack::{Stack, repo_root};
use fixtures::sim::{SimConfig, World};
use models::ClickEvent;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "ops-token";

fn schema(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo_root().join("contract").join(name)).expect("contract schema");
    jsonschema::options().should_validate_formats(true).build(&serde_json::from_str(&text).unwrap()).unwrap()
}

const POLICY: &str = r#"
alert_at = "restrict"
restriction_ttl_secs = 600

[[band]]
min_score = 0.999
action = "block"

[[rule]]
code = "blacklist_ip"
when = "blacklist_ip"
action = "block"

[[rule]]
code = "whitelist_user"
when = "whitelist_user"
action = "allow"
overrides = true

[[rule]]
code = "failed_login"
when = "is_login_failure == 1"
action = "challenge"
ttl_secs = 2
"#;

fn event(id: &str, session: &str, user: &str, kind: &str, ip: &str, failed: bool) -> ClickEvent {
    let json = serde_json::json!({
        "event_id": id, "ts": models::format_ts(platform::now_ms()), "session_id": session, "user_id": user,
        "type": kind, "ip": ip, "device_id": "dev-test", "outcome": if failed { "failure" } else { "success" }
    });
    serde_json::from_value(json).unwrap()
}

async fn send(stack: &Stack, events: &[ClickEvent]) {
    let producer: rdkafka::producer::FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", stack.brokers()).create().unwrap();
    fixtures::send_events(&producer, "clickstream", &fixtures::encode(events), false).await.unwrap();
}

/// Waits for the verdicts of `ids`, returning them by event id (all copies).
async fn verdicts_for(stack: &Stack, ids: &[&str]) -> HashMap<String, Vec<serde_json::Value>> {
    let want: HashSet<&str> = ids.iter().copied().collect();
    let records = consume_until(&stack.brokers(), "fraud.verdicts", Duration::from_secs(60), |rs| {
        let seen = e2e_tests::kafka::event_ids(rs);
        want.iter().all(|id| seen.contains(*id))
    })
    .await;
    let mut out: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for r in records {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        out.entry(v["event_id"].as_str().unwrap().to_string()).or_default().push(v);
    }
    out
}

fn train(
    lake: &lake::Lake,
    registry: &Path,
    model: trainer::run::ModelChoice,
    min_improvement: f64,
) -> trainer::run::Outcome {
    trainer::run::train(&trainer::run::TrainArgs {
        label_delay_days: 2.0,
        min_improvement,
        model,
        trees: 100,
        depth: 4,
        policy: repo_root().join("config/policy.toml"),
        ..trainer::run::TrainArgs::defaults(lake.clone(), registry.to_path_buf())
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scorer_applies_policy_session_state_reloads_shadows_and_publishes_labels() {
    platform::init_tracing();
    let stack = Stack::start();
    let work = tempfile::tempdir().unwrap();
    let (lake, registry, policy) =
        (lake::Lake::dir(work.path().join("lake")), work.path().join("registry"), work.path().join("policy.toml"));
    let world =
        World::new(SimConfig { seed: 21, customers: 300, rate_ato: 0.02, rate_bot: 0.02, ..SimConfig::default() });
    fixtures::write_lake(&world, &lake, platform::now_ms(), 8).unwrap();
    // The champion is linear and the challenger boosted trees, so the scorer runs both kinds of
    // model trained here: one acting, one shadowed.
    let champion = train(&lake, &registry, trainer::run::ModelChoice::Logistic, 0.0);
    assert!(champion.promoted);
    // A candidate that must beat the champion by an impossible margin stays a challenger.
    let challenger = train(&lake, &registry, trainer::run::ModelChoice::Boosted, 1.0);
    let kind = |v: &str| platform::registry::load(&registry, v).unwrap().kind();
    assert_eq!((kind(&champion.version), kind(&challenger.version)), ("logistic", "boosted_trees"));
    assert!(!challenger.promoted, "{}", challenger.why);
    assert_eq!(
        platform::registry::challenger_version(&registry).unwrap().as_deref(),
        Some(challenger.version.as_str())
    );
    std::fs::write(&policy, POLICY).unwrap();

    let shutdown = CancellationToken::new();
    let args = |name: &str| {
        let mut a = stack.service_args(name, TOKEN);
        if name == "scorer" {
            a.extend([
                "--registry".into(),
                registry.display().to_string(),
                "--policy".into(),
                policy.display().to_string(),
            ]);
            a.extend(["--reload-interval-ms".into(), "200".into()]);
        }
        a
    };
    let enricher =
        enricher::start(enricher::Config::try_parse_from(args("enricher")).unwrap(), shutdown.clone()).await.unwrap();
    let scorer =
        scorer::start(scorer::Config::try_parse_from(args("scorer")).unwrap(), shutdown.clone()).await.unwrap();
    for (list, kind, value) in [("blacklist", "ip", "198.51.100.9"), ("whitelist", "user", "u-trusted")] {
        let body = format!(r#"{{"value":"{value}","reason":"test"}}"#);
        let (status, text) =
            request(enricher.http_addr, "POST", &format!("/v1/lists/{list}/{kind}"), Some(TOKEN), Some(&body))
                .await
                .unwrap();
        assert_eq!(status, 200, "{text}");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Phase 1: list rule, override, feature rule, escalation and alert de-duplication.
    send(
        &stack,
        &[
            event("b1", "s-block", "u-1", "login", "198.51.100.9", false),
            event("b2", "s-block", "u-1", "page_view", "192.0.2.1", false),
            event("w1", "s-white", "u-trusted", "login", "198.51.100.9", false),
            event("f1", "s-fail", "u-2", "login", "192.0.2.2", true),
        ],
    )
    .await;
    let v = verdicts_for(&stack, &["b1", "b2", "w1", "f1"]).await;
    let first = |id: &str| v[id][0].clone();
    assert_eq!(first("b1")["action"], "block");
    assert_eq!(first("b1")["alert"], true);
    assert_eq!(first("b2")["action"], "block", "escalate-only within a session");
    assert_eq!(first("b2")["alert"], false, "one alert per session");
    assert!(first("b2")["reasons"].as_array().unwrap().iter().any(|r| r["code"] == "session_escalated"));
    assert_eq!(first("w1")["action"], "allow", "a whitelist overrides a blacklist hit");
    assert_eq!(first("f1")["action"], "challenge");
    assert!(first("f1")["reasons"].as_array().unwrap().iter().any(|r| r["code"] == "failed_login"));
    assert_eq!(first("b1")["shadow_model_version"], challenger.version.as_str(), "the challenger is shadowed");
    assert!(first("b1")["shadow_score"].is_number());
    // The sessions-with-an-action gauge counts them (in Redis, across instances).
    let conn = redis::aio::ConnectionManager::new(redis::Client::open(stack.redis_url()).unwrap()).await.unwrap();
    let sessions = scorer::session::SessionStore::new(conn);
    let active = |counts: Vec<(models::Action, u64)>, a: models::Action| {
        counts.into_iter().find(|(x, _)| *x == a).map(|(_, n)| n).unwrap()
    };
    let counts = sessions.count_active(platform::now_ms()).await.unwrap();
    assert_eq!(active(counts.clone(), models::Action::Block), 1, "{counts:?}");
    assert_eq!(active(counts.clone(), models::Action::Challenge), 1, "{counts:?}");
    // The live flag rate's parts: three sessions started; s-block reached every level once
    // (its second event does not count it again), s-fail reached a challenge.
    let (_, text) = request(scorer.http_addr, "GET", "/metrics", None, None).await.unwrap();
    let series = |name: &str, label: &str| -> Option<f64> {
        text.lines().find(|l| l.starts_with(name) && l.contains(label))?.split_whitespace().last()?.parse().ok()
    };
    assert_eq!(series("fraud_sessions_started_total", ""), Some(3.0), "{text}");
    for (action, n) in [("challenge", 2.0), ("restrict", 1.0), ("block", 1.0)] {
        assert_eq!(series("fraud_session_actions_total{", &format!("action=\"{action}\"")), Some(n), "{action}");
    }

    // Expiry: the challenge lasts two seconds.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, text) = request(scorer.http_addr, "GET", "/v1/sessions/s-fail", None, None).await.unwrap();
    assert!(text.contains("\"action\":\"allow\""), "expired: {text}");
    let counts = sessions.count_active(platform::now_ms()).await.unwrap();
    assert_eq!(active(counts.clone(), models::Action::Challenge), 0, "an expired challenge is not counted: {counts:?}");

    // Operator lift: needs the token; afterwards the session is allowed until it escalates again.
    let (status, _) = request(scorer.http_addr, "POST", "/v1/sessions/s-block/lift", None, Some("{}")).await.unwrap();
    assert_eq!(status, 401);
    let (status, text) = request(
        scorer.http_addr,
        "POST",
        "/v1/sessions/s-block/lift",
        Some(TOKEN),
        Some(r#"{"reason":"customer verified"}"#),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{text}");
    let (_, text) = request(scorer.http_addr, "GET", "/v1/sessions/s-block", None, None).await.unwrap();
    assert!(text.contains("\"action\":\"allow\""), "{text}");
    let counts = sessions.count_active(platform::now_ms()).await.unwrap();
    assert_eq!(active(counts.clone(), models::Action::Block), 0, "a lifted session is not counted: {counts:?}");
    send(&stack, &[event("b3", "s-block", "u-1", "page_view", "192.0.2.1", false)]).await;
    let v3 = verdicts_for(&stack, &["b3"]).await;
    assert_eq!(v3["b3"][0]["action"], "allow", "lifted");

    // Alerts: valid verdicts, one per session, carrying the session's recent events.
    let alerts = consume_until(&stack.brokers(), "fraud.alerts", Duration::from_secs(20), |rs| !rs.is_empty()).await;
    let verdict_schema = schema("verdict.schema.json");
    let mut per_session: HashMap<String, usize> = HashMap::new();
    for a in &alerts {
        let a: serde_json::Value = serde_json::from_slice(&a.payload).unwrap();
        assert!(verdict_schema.is_valid(&a), "an alert is a valid verdict: {a}");
        *per_session.entry(a["session_id"].as_str().unwrap().to_string()).or_default() += 1;
        if a["session_id"] == "s-block" {
            assert!(!a["recent_events"].as_array().unwrap().is_empty());
            assert!(a["features"].is_object());
        }
    }
    assert_eq!(per_session.get("s-block"), Some(&1), "{per_session:?}");

    // Phase 2: promote the challenger mid-stream; no event lost or scored twice.
    let now = platform::now_ms();
    let live = world.simulate(now, now + 300_000, Some(300)).events;
    let (a, b) = live.split_at(live.len() / 2);
    send(&stack, a).await;
    // The first half is scored by the champion before the promotion…
    let first_half: Vec<&str> = a.iter().map(|e| e.event_id.as_str()).collect();
    assert!(verdicts_for(&stack, &first_half).await.len() >= first_half.len());
    platform::registry::promote(&registry, &challenger.version).unwrap();
    // …and events keep flowing while the scorer notices it (it polls every 200 ms), so the
    // swap happens mid-stream; the last chunks go out well after it.
    for chunk in b.chunks(b.len() / 6 + 1) {
        send(&stack, chunk).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ids: Vec<&str> = live.iter().map(|e| e.event_id.as_str()).collect();
    let v = verdicts_for(&stack, &ids).await;
    let missing = ids.iter().filter(|id| !v.contains_key(**id)).count();
    let doubled = ids.iter().filter(|id| v.get(**id).is_some_and(|x| x.len() > 1)).count();
    assert_eq!((missing, doubled), (0, 0), "every event scored exactly once across the reload");
    let versions: HashSet<&str> = ids.iter().map(|id| v[*id][0]["model_version"].as_str().unwrap()).collect();
    assert!(
        versions.contains(champion.version.as_str()) && versions.contains(challenger.version.as_str()),
        "{versions:?}"
    );
    for id in &ids {
        assert!(verdict_schema.is_valid(&v[*id][0]), "{}", v[*id][0]);
    }

    // Phase 3: a policy edit takes effect without a restart (a score band for everything).
    std::fs::write(&policy, format!("{POLICY}\n[[band]]\nmin_score = 0.0\naction = \"challenge\"\n")).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    send(&stack, &[event("p1", "s-policy", "u-3", "page_view", "192.0.2.3", false)]).await;
    assert_eq!(verdicts_for(&stack, &["p1"]).await["p1"][0]["action"], "challenge");
    // An invalid edit is refused and the last good policy stays.
    std::fs::write(&policy, "[[band]]\nmin_score = 7\naction = \"block\"\n").unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    send(&stack, &[event("p2", "s-policy2", "u-3", "page_view", "192.0.2.3", false)]).await;
    assert_eq!(verdicts_for(&stack, &["p2"]).await["p2"][0]["action"], "challenge");

    // Labels: authenticated, validated, published to fraud.labels, keyed by user.
    let label = r#"{"label_id":"l-1","ts":"2026-11-20T10:00:00Z","user_id":"u-1","session_id":"s-block","is_fraud":true,"kind":"account_takeover","source":"analyst"}"#;
    assert_eq!(request(scorer.http_addr, "POST", "/v1/labels", None, Some(label)).await.unwrap().0, 401);
    assert_eq!(
        request(scorer.http_addr, "POST", "/v1/labels", Some(TOKEN), Some("{\"label_id\":1}")).await.unwrap().0,
        400
    );
    let (status, text) = request(scorer.http_addr, "POST", "/v1/labels", Some(TOKEN), Some(label)).await.unwrap();
    assert_eq!(status, 202, "{text}");
    let labels = consume_until(&stack.brokers(), "fraud.labels", Duration::from_secs(20), |rs| !rs.is_empty()).await;
    assert_eq!(labels.len(), 1);
    let published: serde_json::Value = serde_json::from_slice(&labels[0].payload).unwrap();
    assert!(schema("label.schema.json").is_valid(&published), "{published}");
    assert_eq!(published["label_id"], "l-1");
    assert_eq!(labels[0].key.as_deref(), Some(&b"u-1"[..]));

    shutdown.cancel();
    enricher.wait().await.unwrap();
    scorer.wait().await.unwrap();
}
