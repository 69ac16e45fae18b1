//! The offline side's hot loops on one core: replaying events through the one feature
//! definition (in-memory history), and scoring one event with each model kind the trainer
//! produces. `cargo bench -p trainer --bench replay`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fixtures::sim::{SimConfig, World};
use models::features::{DAY_MS, Replayer};
use models::history::MemoryHistory;
use std::hint::black_box;
use std::sync::OnceLock;

// The allocator the trainer binary uses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const START: i64 = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS;

fn replay(c: &mut Criterion) {
    let world = World::new(SimConfig { customers: 3000, ..SimConfig::default() });
    let events = world.simulate(START, START + 3 * DAY_MS, None).events;
    let mut g = c.benchmark_group("feature_replay");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.sample_size(10);
    g.bench_function("three_days_3000_customers", |b| {
        b.iter(|| {
            let mut replay = Replayer::new(MemoryHistory::expiring());
            for (_, features) in replay.replay_all(&events) {
                black_box(features);
            }
        })
    });
    g.finish();
}

/// Two trained models and a thousand feature vectors to score. Built on first use, so that
/// `-- feature_replay` does not pay for training.
fn trained() -> &'static (Vec<models::artifact::ModelArtifact>, Vec<models::features::FeatureVector>) {
    static TRAINED: OnceLock<(Vec<models::artifact::ModelArtifact>, Vec<models::features::FeatureVector>)> =
        OnceLock::new();
    TRAINED.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let world =
            World::new(SimConfig { seed: 5, customers: 600, rate_ato: 0.01, rate_bot: 0.01, ..SimConfig::default() });
        let lake = lake::Lake::dir(dir.path());
        fixtures::write_lake(&world, &lake, START + 12 * DAY_MS, 12).expect("a lake");
        let ds = trainer::dataset::build(&lake, &Default::default(), |_, _| {}).expect("replay");
        let split = trainer::dataset::Split::by_time(ds.first_ts, ds.cutoff, 2.0).expect("a split");
        let (train, valid) = (split.rows(&ds, split.train), split.rows(&ds, split.valid));
        let w = trainer::dataset::session_weights(&train);
        let logistic =
            trainer::train::fit_logistic(&train, &w, trainer::train::Params::default()).expect("fits").into_model();
        let boosted = trainer::gbdt::fit(&train, &w, &valid, &trainer::gbdt::Params::default(), |_| {}).expect("fits");
        let boosted = models::artifact::Model::Boosted { base: boosted.base, trees: boosted.trees };
        let vectors = valid.iter().take(1000).map(|r| trainer::train::features_of(r)).collect();
        let arts = [logistic, boosted]
            .into_iter()
            .map(|m| trainer::train::artifact("bench", m, serde_json::Value::Null))
            .collect();
        (arts, vectors)
    })
}

fn inference(c: &mut Criterion) {
    let mut g = c.benchmark_group("inference");
    g.throughput(Throughput::Elements(1000));
    for kind in ["logistic", "boosted_trees"] {
        g.bench_function(kind, |b| {
            let (arts, vectors) = trained();
            let art = arts.iter().find(|a| a.kind() == kind).expect("both kinds trained");
            if let models::artifact::Model::Boosted { trees, .. } = &art.model {
                eprintln!("boosted model: {} trees", trees.len());
            }
            b.iter(|| {
                for v in vectors {
                    black_box(art.score(v));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, replay, inference);
criterion_main!(benches);
