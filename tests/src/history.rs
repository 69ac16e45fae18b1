//! Features the way the enricher computes them live: micro-batches, each one pipelined round
//! trip to a history store.

use enricher::store::HistoryStore;
use models::ClickEvent;
use models::features::{self, FeatureVector};

/// Plans every event of each `batch`-sized chunk, executes the chunk's operations in one call
/// to `store`, and computes each event's features from its share of the results.
pub async fn live_features(store: &impl HistoryStore, events: &[ClickEvent], batch: usize) -> Vec<FeatureVector> {
    let mut out = Vec::with_capacity(events.len());
    for chunk in events.chunks(batch.max(1)) {
        let texts: Vec<_> = chunk.iter().map(features::Texts::of).collect();
        let plans: Vec<_> = chunk.iter().zip(&texts).map(|(e, t)| features::plan(e, t)).collect();
        let ops: Vec<_> = plans.iter().flat_map(|p| p.ops().copied()).collect();
        let results = store.execute(&ops).await.expect("the history store answers");
        let mut at = 0;
        for (e, p) in chunk.iter().zip(&plans) {
            out.push(features::compute(e, p, &results[at..at + p.len()]));
            at += p.len();
        }
    }
    out
}
