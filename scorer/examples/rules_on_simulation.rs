//! How often each rule of a policy fires on simulated traffic, by fraud family: the rules alone
//! (no model score), on every event of a simulated bank replayed through the feature
//! definition at the simulator's real pace (the live demo packs a day into a minute, which
//! dilutes site-wide signals). Events of the first week only warm the history (every
//! customer's device and address is new on an empty one) and are not counted.
//!
//! `cargo run --release -p scorer --example rules_on_simulation -- [SEED] [CUSTOMERS] [DAYS] [POLICY] [SITE]`
//! (defaults: 7, 3000, 28, config/policy.toml, `usual`). SITE is how the simulated site
//! reports: `usual`, or `no-device-ids` (no event has a device id) and/or `user-after-login`
//! (no user id before a session's successful login), joined by a comma.

use fixtures::sim::{Family, SimConfig, World};
use models::features::{DAY_MS, Replayer};
use models::history::MemoryHistory;
use scorer::policy::Policy;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

const START: i64 = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS;
const WARM_UP_DAYS: i64 = 7;

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    fixtures::positional_arg(n, default, "rules_on_simulation [SEED] [CUSTOMERS] [DAYS] [POLICY] [SITE]")
}

fn main() -> anyhow::Result<()> {
    let (seed, customers, days) = (arg(1, 7_u64), arg(2, 3000_usize), arg(3, 28_i64));
    let path: PathBuf = arg(4, PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/policy.toml")));
    let site: String = arg(5, "usual".to_string());
    let variants: Vec<&str> = site.split(',').collect();
    if let Some(v) = variants.iter().find(|v| !["usual", "no-device-ids", "user-after-login"].contains(v)) {
        anyhow::bail!("unknown SITE variant {v:?}: use usual, no-device-ids, user-after-login (comma-joined)");
    }
    let without_device_ids = variants.contains(&"no-device-ids");
    let user_id_after_login_only = variants.contains(&"user-after-login");
    let policy = Policy::load(&path)?;
    // Bands need a model's scores; with a score of 0 only the rules act.
    let thresholds = vec![1.0; policy.bands.len()];
    let cfg = SimConfig { customers, seed, without_device_ids, user_id_after_login_only, ..SimConfig::default() };
    let out = World::new(cfg).simulate(START, START + days * DAY_MS, None);
    let family: HashMap<&str, Family> = out.truth.iter().map(|t| (t.session_id.as_str(), t.family)).collect();
    // Per family: events, and events each rule fired on.
    let mut fired: BTreeMap<String, (usize, BTreeMap<String, usize>)> = BTreeMap::new();
    let mut replay = Replayer::new(MemoryHistory::expiring());
    for (ev, features) in replay.replay_all(&out.events) {
        if ev.ts < START + WARM_UP_DAYS * DAY_MS {
            continue;
        }
        let fam = family.get(ev.session_id.as_str()).copied().unwrap_or(Family::Legit);
        let row = fired.entry(format!("{fam:?}")).or_default();
        row.0 += 1;
        for rule in policy.decide(&thresholds, 0.0, &[], &features.0).rules {
            *row.1.entry(rule).or_default() += 1;
        }
    }
    let counted: usize = fired.values().map(|(n, _)| n).sum();
    println!(
        "{counted} events of {customers} customers after a {WARM_UP_DAYS}-day warm-up, {days} days in all (seed {seed}, site {site}); policy {}",
        path.display()
    );
    for (fam, (events, rules)) in &fired {
        let rules: Vec<String> = rules.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!(
            "{fam:<20} {events:>9} events; rules fired: {}",
            if rules.is_empty() { "none".into() } else { rules.join(", ") }
        );
    }
    Ok(())
}
