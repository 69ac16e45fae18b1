//! The offline side's hot loops on one core: replaying events through the one feature
//! definition (in-memory history), and scoring one event with each model kind the trainer
//! produces. `cargo bench -p trainer --bench replay`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fixtures::sim::{SimConfig, World};
use models::features::replay_one;
use models::history::MemoryHistory;
use std::hint::black_box;

const DAY_MS: i64 = 86_400_000;
const START: i64 = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS;

fn replay(c: &mut Criterion) {
    let world = World::new(SimConfig { customers: 3000, ..SimConfig::default() });
    let events = world.simulate(START, START + 3 * DAY_MS, None).events;
    let mut g = c.benchmark_group("feature_replay");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.sample_size(10);
    g.bench_function("three_days_3000_customers", |b| {
        b.iter(|| {
            let mut h = MemoryHistory::new();
            for e in &events {
                black_box(replay_one(&mut h, e));
            }
        })
    });
    g.finish();
}

fn inference(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let world =
        World::new(SimConfig { seed: 5, customers: 600, rate_ato: 0.01, rate_bot: 0.01, ..SimConfig::default() });
    fixtures::write_lake(&world, dir.path(), START + 12 * DAY_MS, 12).expect("a lake");
    let ds = trainer::dataset::build(dir.path(), None, |_, _| {}).expect("replay");
    let split = trainer::dataset::Split::by_time(ds.first_ts, ds.cutoff, 2.0).expect("a split");
    let (train, valid) = (split.rows(&ds, split.train), split.rows(&ds, split.valid));
    let logistic = trainer::train::fit_logistic(&train, trainer::train::Params::default()).expect("fits").into_model();
    let boosted = trainer::gbdt::fit(&train, &valid, &trainer::gbdt::Params::default(), |_| {}).expect("fits");
    let boosted = models::artifact::Model::Boosted { base: boosted.base, trees: boosted.trees };
    let vectors: Vec<_> = valid.iter().take(1000).map(|r| trainer::train::features_of(r)).collect();
    let mut g = c.benchmark_group("inference");
    g.throughput(Throughput::Elements(vectors.len() as u64));
    for model in [logistic, boosted] {
        let art = trainer::train::artifact("bench", model, serde_json::Value::Null);
        let name = match &art.model {
            models::artifact::Model::Boosted { trees, .. } => format!("boosted_trees_{}", trees.len()),
            _ => "logistic".to_string(),
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                for v in &vectors {
                    black_box(art.score(v));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, replay, inference);
criterion_main!(benches);
