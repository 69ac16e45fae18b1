//! The common start of an end-to-end test: a simulated bank's history in a lake, a model
//! trained from it, and the enricher and scorer started in-process on port 0.

use crate::stack::{Stack, repo_root};
use clap::Parser;
use fixtures::sim::{SimConfig, World};
use platform::Running;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

pub struct Trained {
    pub world: World,
    pub lake: lake::Lake,
    pub registry: PathBuf,
    pub outcome: trainer::run::Outcome,
}

/// Ten days of a 400-customer bank with every fraud family, written to `dir/lake`, and a
/// model trained from it into `dir/registry` (promoted: it is the first).
pub fn train_bank(dir: &Path, seed: u64) -> Trained {
    train_bank_on(lake::Lake::dir(dir.join("lake")), dir.join("registry"), seed)
}

/// [`train_bank`] with the lake in `lake` (a directory or an object store).
pub fn train_bank_on(lake: lake::Lake, registry: PathBuf, seed: u64) -> Trained {
    let world = World::new(SimConfig {
        seed,
        customers: 400,
        rate_ato: 0.01,
        rate_bot: 0.01,
        rate_hijack: 0.005,
        rate_scam: 0.005,
        ..SimConfig::default()
    });
    fixtures::write_lake(&world, &lake, platform::now_ms(), 10).expect("writing the lake");
    let outcome = trainer::run::train(&trainer::run::TrainArgs {
        label_delay_days: 2.0,
        min_improvement: 0.0,
        policy: repo_root().join("config/policy.toml"),
        ..trainer::run::TrainArgs::defaults(lake.clone(), registry.clone())
    })
    .expect("training on the lake");
    assert!(outcome.promoted, "the first model is promoted");
    Trained { world, lake, registry, outcome }
}

/// Starts the enricher and the scorer (registry `registry`, the repository's policy) against
/// `stack`, each with `extra` arguments appended, until `shutdown`.
pub async fn start_services(
    stack: &Stack,
    registry: &Path,
    token: &str,
    extra: &[&str],
    shutdown: &CancellationToken,
) -> (Running, Running) {
    let args = |name: &str| {
        let mut a = stack.service_args(name, token);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let enricher = enricher::start(enricher::Config::try_parse_from(args("enricher")).unwrap(), shutdown.clone())
        .await
        .expect("starting the enricher");
    let mut scorer_args = args("scorer");
    scorer_args.extend([
        "--registry".into(),
        registry.display().to_string(),
        "--policy".into(),
        repo_root().join("config/policy.toml").display().to_string(),
    ]);
    let scorer = scorer::start(scorer::Config::try_parse_from(scorer_args).unwrap(), shutdown.clone())
        .await
        .expect("starting the scorer");
    (enricher, scorer)
}

/// Blacklists `ip` through the enricher's authenticated API and waits for the list cache to
/// pick it up.
pub async fn blacklist_ip(enricher: &Running, token: &str, ip: &str) {
    let body = format!(r#"{{"value":"{ip}","reason":"test"}}"#);
    let (status, text) =
        crate::http::request(enricher.http_addr, "POST", "/v1/lists/blacklist/ip", Some(token), Some(&body))
            .await
            .expect("calling the lists API");
    assert_eq!(status, 200, "{text}");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
}

/// Ten minutes of live traffic from `world` starting now, with one session (the one at
/// `at` of the stream) moved onto `ip`. Returns the events and that session's id. Cut at the
/// ten minutes, as [`traffic`] is.
pub fn live_traffic(world: &World, ip: &str, at: f64) -> (Vec<models::ClickEvent>, String) {
    let now = platform::now_ms();
    let mut live = world.simulate(now, now + 600_000, Some(400)).events;
    live.retain(|e| e.ts <= now + 600_000);
    let victim = live[(live.len() as f64 * at) as usize].session_id.clone();
    for e in live.iter_mut().filter(|e| e.session_id == victim) {
        e.ip = ip.parse().expect("an IP address");
    }
    (live, victim)
}

/// A registry holding the checked-in baseline model as the champion (for tests that do not
/// need a model trained on their own data).
pub fn baseline_registry(dir: &Path) -> PathBuf {
    let baseline = repo_root().join("models/baseline");
    let version = platform::registry::current_version(&baseline).unwrap().expect("a baseline model");
    let artifact = platform::registry::load(&baseline, &version).expect("the baseline loads");
    let registry = dir.join("registry");
    platform::registry::write_version(&registry, &artifact, &[]).unwrap();
    platform::registry::promote(&registry, &version).unwrap();
    registry
}

/// At least `n` events of simulated traffic starting now: about one live session per customer,
/// six events each on average, over ten minutes. Sessions still going at the end are cut there:
/// tests send the traffic at once, and the enricher refuses events dated more than
/// `--max-ts-ahead-secs` (15 minutes) after they are sent, which a long session's last events
/// could be.
pub fn traffic(seed: u64, n: usize) -> Vec<models::ClickEvent> {
    let mut sessions = (n / 6).max(50);
    loop {
        let world = World::new(SimConfig { seed, customers: sessions, ..SimConfig::default() });
        let now = platform::now_ms();
        let end = now + 10 * 60_000;
        let mut events = world.simulate(now, end, Some(sessions)).events;
        events.retain(|e| e.ts <= end);
        if events.len() >= n || sessions > 1_000_000 {
            return events;
        }
        sessions = sessions * 3 / 2 + 1;
    }
}

/// Sends `events` to `topic` in `chunks` parts, calling `between(k)` after part `k`, so a test
/// can break something mid-stream.
pub async fn send_in_chunks(
    brokers: &str,
    topic: &str,
    events: &[models::ClickEvent],
    chunks: usize,
    mut between: impl AsyncFnMut(usize),
) {
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "120000")
        .create()
        .expect("a producer");
    let records = fixtures::encode(events);
    let size = records.len().div_ceil(chunks.max(1));
    for (k, part) in records.chunks(size.max(1)).enumerate() {
        fixtures::send_events(&producer, topic, part, false).await.expect("sending events");
        between(k).await;
    }
}

/// Reads verdicts until every id in `want` has one (or `timeout`); returns how many are
/// missing and how many verdicts were duplicates (at-least-once allows those).
pub async fn verdict_tally(
    brokers: &str,
    want: &std::collections::HashSet<String>,
    timeout: std::time::Duration,
) -> (usize, usize) {
    let started = std::time::Instant::now();
    let records = crate::kafka::consume_until(brokers, "fraud.verdicts", timeout, |rs| {
        crate::kafka::event_ids(rs).iter().filter(|id| want.contains(*id)).count() >= want.len()
    })
    .await;
    eprintln!("verdict tally: read {} verdicts in {:?}", records.len(), started.elapsed());
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for r in &records {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).expect("verdict JSON");
        *seen.entry(v["event_id"].as_str().unwrap_or_default().to_string()).or_default() += 1;
    }
    let missing = want.iter().filter(|id| !seen.contains_key(*id)).count();
    let duplicates = seen.values().map(|n| n - 1).sum();
    (missing, duplicates)
}

/// A service run as its own process (so a test can kill -9 it), from the binaries next to the
/// test executable (`cargo build --bins`; `scripts/test` builds them).
pub struct Process {
    child: std::process::Child,
}

impl Process {
    pub fn spawn(name: &str, args: &[String]) -> Process {
        Process::spawn_with_env(name, args, &[])
    }

    /// [`Process::spawn`] with extra environment variables.
    pub fn spawn_with_env(name: &str, args: &[String], env: &[(String, String)]) -> Process {
        let exe = std::env::current_exe().expect("the test executable");
        let bin = exe.parent().and_then(Path::parent).expect("target/<profile>/deps").join(name);
        assert!(bin.exists(), "{} is missing: run `cargo build --bins` first (scripts/test does)", bin.display());
        let child = std::process::Command::new(&bin)
            .args(args.iter().skip(1))
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        Process { child }
    }

    /// SIGKILL: no drain, no flush, no commit.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}
