//! History stores against a real redis-server: the shared contract body, and replay/live parity.

use e2e_tests::stack::Stack;
use enricher::store::{HistoryStore, MemoryStore, RedisStore, contract_tests};
use fixtures::sim::{SimConfig, World};
use models::features::{self, FeatureVector};
use models::history::MemoryHistory;

#[tokio::test]
async fn both_history_stores_meet_the_same_contract() {
    let stack = Stack::start();
    let redis = RedisStore::connect(&stack.redis_url()).await.unwrap();
    contract_tests::run(&redis, "contract-redis").await;
    contract_tests::run(&MemoryStore::default(), "contract-memory").await;
}

#[tokio::test]
async fn replaying_a_stream_through_redis_and_memory_gives_identical_features() {
    let cfg = SimConfig {
        seed: 5,
        customers: 150,
        rate_ato: 0.02,
        rate_bot: 0.02,
        rate_hijack: 0.02,
        rate_scam: 0.02,
        ..SimConfig::default()
    };
    // The site as simulated, and one that names users only once logged in and sends no device
    // ids (attempts are then counted by session, devices known by nothing): each on its own Redis.
    let bare = SimConfig { without_device_ids: true, user_id_after_login_only: true, ..cfg.clone() };
    for cfg in [cfg, bare] {
        let stack = Stack::start();
        let redis = RedisStore::connect(&stack.redis_url()).await.unwrap();
        let events = World::new(cfg).simulate(1_760_000_000_000, 1_760_000_000_000 + 3 * 86_400_000, None).events;
        assert!(events.len() > 1000);

        // Offline: one event at a time through the in-memory history (what the trainer does).
        let mut mem = features::Replayer::new(MemoryHistory::new());
        let offline: Vec<FeatureVector> = mem.replay_all(&events).map(|(_, f)| f).collect();

        // Live: micro-batches, one pipelined Redis round trip each (what the enricher does).
        let live = e2e_tests::history::live_features(&redis, &events, 257).await;
        let differing: Vec<_> =
            offline.iter().zip(&live).enumerate().filter(|(_, (a, b))| a != b).map(|(i, _)| i).collect();
        assert!(
            differing.is_empty(),
            "{} of {} vectors differ, first at event {:?}",
            differing.len(),
            events.len(),
            differing.first()
        );
        // The stream exercised the history: not every vector is the same trivial one.
        let distinct_users_seen = offline.iter().filter(|f| f.get(features::F::UserKnown) == 1.0).count();
        assert!(distinct_users_seen > events.len() / 3);
        let attempts_counted = offline.iter().filter(|f| f.get(features::F::IpDistinctUsers24h) > 0.0).count();
        assert!(attempts_counted > 100, "{attempts_counted}");
    }
}

#[tokio::test]
async fn failed_logins_for_unknown_users_expire_soon_and_never_shorten_a_customers_history() {
    let stack = Stack::start();
    let redis = RedisStore::connect(&stack.redis_url()).await.unwrap();
    let login = |id: &str, user: &str, ok: bool| -> models::ClickEvent {
        serde_json::from_value(serde_json::json!({"event_id": id, "ts": "2026-11-01T10:00:00Z", "session_id": id,
            "user_id": user, "type": "login", "ip": "10.0.0.1", "outcome": if ok { "success" } else { "failure" }}))
        .unwrap()
    };
    for e in [login("a", "real", true), login("b", "invented", false), login("c", "real", false)] {
        let texts = features::Texts::of(&e);
        let ops: Vec<_> = features::plan(&e, &texts).ops().copied().collect();
        redis.execute(&ops).await.unwrap();
    }
    let c = redis.connection();
    let ttl = |key: String| {
        let mut c = c.clone();
        async move { redis::cmd("TTL").arg(key).query_async::<i64>(&mut c).await.unwrap() }
    };
    let real = ttl(models::history::key("u:seen", "real")).await;
    let invented = ttl(models::history::key("u:seen", "invented")).await;
    assert!(real > 170 * 86_400, "a failed attempt must not shorten a customer's history: {real}");
    assert!(invented > 0 && invented <= 2 * 86_400, "an invented username expires soon: {invented}");
}
