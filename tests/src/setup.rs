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
    pub lake: PathBuf,
    pub registry: PathBuf,
    pub outcome: trainer::run::Outcome,
}

/// Ten days of a 400-customer bank with every fraud family, written to `dir/lake`, and a
/// model trained from it into `dir/registry` (promoted: it is the first).
pub fn train_bank(dir: &Path, seed: u64) -> Trained {
    let (lake, registry) = (dir.join("lake"), dir.join("registry"));
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
        lake: lake.clone(),
        registry: registry.clone(),
        label_delay_days: 2.0,
        min_improvement: 0.0,
        alpha: 1.0,
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
/// `at` of the stream) moved onto `ip`. Returns the events and that session's id.
pub fn live_traffic(world: &World, ip: &str, at: f64) -> (Vec<models::ClickEvent>, String) {
    let now = platform::now_ms();
    let mut live = world.simulate(now, now + 600_000, Some(400)).events;
    let victim = live[(live.len() as f64 * at) as usize].session_id.clone();
    for e in live.iter_mut().filter(|e| e.session_id == victim) {
        e.ip = ip.parse().expect("an IP address");
    }
    (live, victim)
}
