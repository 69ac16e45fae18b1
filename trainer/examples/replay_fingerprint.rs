//! Replays the `feature_replay` benchmark's stream (3 days, 3000 customers) and prints a
//! fingerprint of every feature vector and the best and median passes' throughput. A change
//! meant only to make replay faster must leave the fingerprint as it was; alternate the old and
//! new binaries a few times to compare speed on a noisy machine.
//!
//! `cargo run --release -p trainer --example replay_fingerprint -- [PASSES] [DAYS] [CUSTOMERS]`

use fixtures::sim::{SimConfig, World};
use models::features::{DAY_MS, Replayer};
use models::history::MemoryHistory;
use std::time::Instant;

// The allocator the trainer binary uses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The benchmark's start: a day boundary.
const START: i64 = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS;

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    fixtures::positional_arg(n, default, "replay_fingerprint [PASSES] [DAYS] [CUSTOMERS] (whole numbers)")
}

fn main() {
    let (passes, days, customers) = (arg(1, 10_usize).max(1), arg(2, 3_i64), arg(3, 3000_usize));
    let world = World::new(SimConfig { customers, ..SimConfig::default() });
    let events = world.simulate(START, START + days * DAY_MS, None).events;
    let mut fingerprint = 0;
    let mut secs = Vec::with_capacity(passes);
    for _ in 0..passes {
        // Timed as the benchmark times it: a new history, every event, the history dropped.
        let started = Instant::now();
        let mut replay = Replayer::new(MemoryHistory::expiring());
        // FNV-1a over the bits of every feature of every event, in order.
        fingerprint = 0xcbf2_9ce4_8422_2325_u64;
        for (_, features) in replay.replay_all(&events) {
            for x in features.0.iter() {
                fingerprint = (fingerprint ^ x.to_bits()).wrapping_mul(0x100_0000_01b3);
            }
        }
        drop(replay);
        secs.push(started.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    let rate = |s: f64| events.len() as f64 / s / 1e3;
    println!(
        "{} events, fingerprint {fingerprint:016x}, {passes} passes: best {:.0} k events/s, median {:.0} k",
        events.len(),
        rate(secs[0]),
        rate(secs[secs.len() / 2])
    );
}
