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
        let (plans, ops) = features::plan_batch(chunk, &texts);
        let results = store.execute(&ops).await.expect("the history store answers");
        out.extend(features::compute_batch(chunk, &plans, &results));
    }
    out
}
