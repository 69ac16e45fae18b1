//! Gradient-boosted trees for the logistic loss, histogram-based (the LightGBM/XGBoost-hist
//! recipe), in plain Rust: linfa has forests and AdaBoost but no gradient boosting, and the
//! scorer's inference for these trees is a few lines in `models::artifact`.
//!
//! Each feature is cut into at most `bins` quantile bins once; a tree grows depth-first to
//! `depth`, choosing at every node the split with the best second-order gain from per-bin
//! gradient sums. Rows are subsampled per tree; training stops early when the validation
//! window's session-level average precision has not improved for `patience` trees, and keeps
//! the best prefix.

use crate::dataset::Row;
use models::artifact::{Node, Tree, sigmoid};
use models::features::FEATURES;

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub trees: usize,
    pub depth: usize,
    pub learning_rate: f64,
    /// L2 penalty on leaf values.
    pub lambda: f64,
    /// Smallest hessian sum a child may have (guards against leaves fitted to a handful of rows).
    pub min_child_weight: f64,
    pub bins: usize,
    /// Share of rows each tree sees.
    pub subsample: f64,
    /// Weight of a fraudulent row relative to a legitimate one (class imbalance).
    pub positive_weight: Option<f64>,
    pub patience: usize,
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            // Measured on the baseline lake against scikit-learn's HistGradientBoostingClassifier
            // and live on a differently configured bank (docs/detection.md): deeper or slower
            // trees won on the training site's validation window and lost on the other site.
            trees: 300,
            depth: 5,
            learning_rate: 0.1,
            lambda: 1.0,
            min_child_weight: 2.0,
            bins: 64,
            subsample: 0.8,
            positive_weight: None,
            patience: 100,
            seed: 7,
        }
    }
}

/// The fitted ensemble: `base` margin plus one value per tree.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub base: f64,
    pub trees: Vec<Tree>,
    /// Validation log loss after each tree (empty without a validation set).
    pub valid_loss: Vec<f64>,
}

/// Per-feature cut points: a value's bin is the number of cut points ≤ it, so "bin ≤ k" is
/// exactly "x < cuts[k]", the test inference does.
struct Bins {
    cuts: Vec<Vec<f64>>,
}

impl Bins {
    fn new(rows: &[&Row], max_bins: usize) -> Bins {
        let step = (rows.len() / 200_000).max(1);
        let cuts = (0..FEATURES.len())
            .map(|j| {
                let mut v: Vec<f64> = rows.iter().step_by(step).map(|r| f64::from(r.x[j])).collect();
                v.sort_by(f64::total_cmp);
                v.dedup();
                if v.len() <= 1 {
                    return Vec::new();
                }
                if v.len() <= max_bins {
                    // Few distinct values (flags, small counts): cut between each pair.
                    return v.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
                }
                let mut c: Vec<f64> = (1..max_bins).map(|k| v[k * v.len() / max_bins]).filter(|x| *x > v[0]).collect();
                c.dedup();
                c
            })
            .collect();
        Bins { cuts }
    }

    fn bin(&self, j: usize, x: f64) -> u8 {
        self.cuts[j].partition_point(|c| *c <= x) as u8
    }
}

struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Weighted log loss of margins against labels (`w`: each row's weight before the class's).
fn log_loss(margins: &[f64], y: &[bool], w: &[f64], w_pos: f64) -> f64 {
    let (mut loss, mut wsum) = (0.0, 0.0);
    for ((m, y), w) in margins.iter().zip(y).zip(w) {
        let p = sigmoid(*m).clamp(1e-12, 1.0 - 1e-12);
        let w = w * if *y { w_pos } else { 1.0 };
        loss -= w * if *y { p.ln() } else { (1.0 - p).ln() };
        wsum += w;
    }
    loss / wsum.max(1e-12)
}

/// Per-feature `(gradient, hessian)` sums by bin, `stride` slots a feature: packed to the
/// bins in use (64 × 59 × 16 bytes = 60 KB stays in cache; 256 slots a feature did not).
type Hist = Vec<(f64, f64)>;

struct Grower<'a> {
    /// Row-major bins: row `r`'s bins are `binned[r * n_f..][..n_f]`, one cache line a row, so a
    /// histogram pass reads each row once instead of once per feature.
    binned: &'a [u8],
    n_f: usize,
    n_bins: &'a [usize],
    /// Histogram slots a feature: the most bins any feature has.
    stride: usize,
    bins: &'a Bins,
    g: &'a [f64],
    h: &'a [f64],
    p: &'a Params,
    nodes: Vec<Node>,
    /// Spare rows for the stable partition.
    scratch: Vec<u32>,
}

struct Split {
    gain: f64,
    feature: usize,
    bin: usize,
}

impl Grower<'_> {
    fn value(&self, g: f64, h: f64) -> f64 {
        -g / (h + self.p.lambda) * self.p.learning_rate
    }

    fn histogram(&self, rows: &[u32]) -> Hist {
        let mut hist = vec![(0.0f64, 0.0f64); self.n_f * self.stride];
        for &r in rows {
            let (g, h) = (self.g[r as usize], self.h[r as usize]);
            let bins = &self.binned[r as usize * self.n_f..][..self.n_f];
            for (j, b) in bins.iter().enumerate() {
                let e = &mut hist[j * self.stride + *b as usize];
                e.0 += g;
                e.1 += h;
            }
        }
        hist
    }

    fn best_split(&self, hist: &Hist, g_sum: f64, h_sum: f64) -> Option<Split> {
        let lambda = self.p.lambda;
        let parent = g_sum * g_sum / (h_sum + lambda);
        let mut best: Option<Split> = None;
        for (j, nb) in self.n_bins.iter().enumerate() {
            if *nb < 2 {
                continue;
            }
            let (mut gl, mut hl) = (0.0, 0.0);
            for (k, (g, h)) in hist[j * self.stride..][..nb - 1].iter().enumerate() {
                gl += g;
                hl += h;
                let (gr, hr) = (g_sum - gl, h_sum - hl);
                if hl < self.p.min_child_weight || hr < self.p.min_child_weight {
                    continue;
                }
                let gain = gl * gl / (hl + lambda) + gr * gr / (hr + lambda) - parent;
                if gain > 1e-9 && best.as_ref().is_none_or(|b| gain > b.gain) {
                    best = Some(Split { gain, feature: j, bin: k });
                }
            }
        }
        best
    }

    /// Grows the subtree for `rows` (ascending) at `index` (already pushed), depth-first.
    /// `hist` is the node's histogram: the caller computes the smaller child's by a pass over
    /// its rows and the larger one's as parent minus smaller (the LightGBM trick), which halves
    /// the passes at least.
    fn grow(&mut self, index: usize, rows: &mut [u32], hist: Hist, depth: usize) {
        let (g_sum, h_sum) =
            rows.iter().fold((0.0, 0.0), |(g, h), &r| (g + self.g[r as usize], h + self.h[r as usize]));
        self.nodes[index].value = self.value(g_sum, h_sum);
        if depth == self.p.depth || rows.len() < 2 {
            return;
        }
        let Some(split) = self.best_split(&hist, g_sum, h_sum) else { return };
        // Stable partition (left rows, bin ≤ k, first) keeps both halves ascending, so the
        // passes below walk memory forwards.
        let (f, n_f) = (split.feature, self.n_f);
        let mut mid = 0;
        self.scratch.clear();
        for i in 0..rows.len() {
            let r = rows[i];
            if (self.binned[r as usize * n_f + f] as usize) <= split.bin {
                rows[mid] = r;
                mid += 1;
            } else {
                self.scratch.push(r);
            }
        }
        rows[mid..].copy_from_slice(&self.scratch);
        let (left_rows, right_rows) = rows.split_at_mut(mid);
        // Build the smaller child's histogram; the larger one's is the parent's minus it.
        let left_smaller = left_rows.len() <= right_rows.len();
        let small = self.histogram(if left_smaller { left_rows } else { right_rows });
        let mut large = hist;
        for (l, s) in large.iter_mut().zip(&small) {
            l.0 -= s.0;
            l.1 -= s.1;
        }
        let (left_hist, right_hist) = if left_smaller { (small, large) } else { (large, small) };
        let left = self.nodes.len();
        self.nodes.push(leaf());
        self.grow(left, left_rows, left_hist, depth + 1);
        let right = self.nodes.len();
        self.nodes.push(leaf());
        self.grow(right, right_rows, right_hist, depth + 1);
        let n = &mut self.nodes[index];
        n.feature = split.feature as u32;
        n.threshold = self.bins.cuts[split.feature][split.bin];
        n.left = left as u32;
        n.right = right as u32;
    }
}

fn leaf() -> Node {
    Node { feature: 0, threshold: 0.0, left: 0, right: 0, value: 0.0 }
}

fn tree_value(t: &Tree, x: &[f32]) -> f64 {
    t.value(|j| f64::from(x[j]))
}

/// Fits the ensemble on `train`, each row weighing `train_w` (see
/// [`crate::dataset::train_weights`]); `valid` (if it holds both classes) drives early stopping.
pub fn fit(
    train: &[&Row],
    train_w: &[f64],
    valid: &[&Row],
    p: &Params,
    mut progress: impl FnMut(usize),
) -> anyhow::Result<Fitted> {
    anyhow::ensure!(train_w.len() == train.len(), "one weight per training row");
    let pos = train.iter().filter(|r| r.fraud).count();
    let neg = train.len() - pos;
    if pos == 0 || neg == 0 {
        anyhow::bail!(
            "the training window has {pos} fraudulent and {neg} legitimate events; both classes are needed (more history or labels)"
        );
    }
    // Classes are balanced by the rows' weights, but softened: full balancing over-weights a
    // few hundred positives.
    let w_session = train_w;
    let weight_of =
        |fraud: bool| train.iter().zip(w_session).filter(|(r, _)| r.fraud == fraud).map(|(_, w)| w).sum::<f64>();
    let (pos_w, neg_w) = (weight_of(true), weight_of(false));
    let w_pos = p.positive_weight.unwrap_or_else(|| (neg_w / pos_w).sqrt());
    let bins = Bins::new(train, p.bins.clamp(2, 255));
    let n_f = FEATURES.len();
    let binned: Vec<u8> = train.iter().flat_map(|r| (0..n_f).map(|j| bins.bin(j, f64::from(r.x[j])))).collect();
    let n_bins: Vec<usize> = bins.cuts.iter().map(|c| c.len() + 1).collect();
    let stride = n_bins.iter().copied().max().unwrap_or(1);
    let y: Vec<bool> = train.iter().map(|r| r.fraud).collect();
    let w: Vec<f64> = y.iter().zip(w_session).map(|(y, s)| s * if *y { w_pos } else { 1.0 }).collect();
    let prior = (pos_w * w_pos) / (pos_w * w_pos + neg_w);
    let base = (prior / (1.0 - prior)).ln();
    let mut margin = vec![base; train.len()];
    let valid_y: Vec<bool> = valid.iter().map(|r| r.fraud).collect();
    let valid_w = crate::dataset::session_weights(valid);
    let early = valid_y.iter().any(|y| *y) && valid_y.iter().any(|y| !*y);
    let mut valid_margin = vec![base; valid.len()];
    let (mut g, mut h) = (vec![0.0; train.len()], vec![0.0; train.len()]);
    let mut rng = Rng(p.seed);
    let mut scratch = Vec::new();
    let mut trees = Vec::new();
    let mut valid_loss = Vec::new();
    // Stopping watches what the product is judged by: sessions ranked by their highest event
    // score, by average precision (the log loss per tree stays on `Fitted` as a diagnostic).
    let sessions = SessionIndex::of(valid);
    let (mut best, mut best_at) = (f64::NEG_INFINITY, 0);
    for t in 0..p.trees {
        for i in 0..train.len() {
            let q = sigmoid(margin[i]);
            g[i] = w[i] * (q - f64::from(u8::from(y[i])));
            h[i] = (w[i] * q * (1.0 - q)).max(1e-12);
        }
        let mut rows: Vec<u32> = (0..train.len() as u32).filter(|_| rng.unit() < p.subsample).collect();
        let mut grower = Grower {
            binned: &binned,
            n_f,
            n_bins: &n_bins,
            stride,
            bins: &bins,
            g: &g,
            h: &h,
            p,
            nodes: vec![leaf()],
            scratch,
        };
        let root = grower.histogram(&rows);
        grower.grow(0, &mut rows, root, 0);
        scratch = grower.scratch;
        let tree = Tree { nodes: grower.nodes };
        for (m, r) in margin.iter_mut().zip(train) {
            *m += tree_value(&tree, &r.x);
        }
        trees.push(tree);
        progress(t + 1);
        if early {
            let tree = trees.last().expect("pushed above");
            for (m, r) in valid_margin.iter_mut().zip(valid) {
                *m += tree_value(tree, &r.x);
            }
            valid_loss.push(log_loss(&valid_margin, &valid_y, &valid_w, w_pos));
            let ap = sessions.average_precision(&valid_margin);
            if ap > best + 1e-9 {
                (best, best_at) = (ap, t + 1);
            } else if t + 1 - best_at >= p.patience {
                break;
            }
        }
    }
    if early {
        trees.truncate(best_at.max(1));
    }
    Ok(Fitted { base, trees, valid_loss })
}

/// Validation rows grouped by session, to rank sessions by their highest margin.
struct SessionIndex {
    of_row: Vec<usize>,
    fraud: Vec<bool>,
}

impl SessionIndex {
    fn of(rows: &[&Row]) -> Self {
        let mut ids = std::collections::HashMap::new();
        let mut fraud = Vec::new();
        let of_row = rows
            .iter()
            .map(|r| {
                let i = *ids.entry(r.session).or_insert_with(|| {
                    fraud.push(false);
                    fraud.len() - 1
                });
                fraud[i] |= r.fraud;
                i
            })
            .collect();
        SessionIndex { of_row, fraud }
    }

    /// Session-level average precision of `margins` (one per row).
    fn average_precision(&self, margins: &[f64]) -> f64 {
        let mut top = vec![f64::NEG_INFINITY; self.fraud.len()];
        for (m, &i) in margins.iter().zip(&self.of_row) {
            top[i] = top[i].max(*m);
        }
        let mut ranked: Vec<(f64, bool)> = top.into_iter().zip(self.fraud.iter().copied()).collect();
        // Ties rank legitimate sessions first: the first trees give few distinct margins, and
        // an order that happened to put fraud first among equals would stop boosting there.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        models::ranking::average_precision(&ranked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::features::F;

    fn rows(n: usize, seed: u64) -> Vec<Row> {
        let mut rng = Rng(seed);
        (0..n)
            .map(|i| {
                let mut x = [0f32; crate::dataset::N_FEATURES];
                x[F::UserDeviceNew as usize] = (rng.unit() < 0.3) as u8 as f32;
                x[F::SessionGapCv as usize] = rng.unit() as f32;
                // Fraud only where both hold: an interaction a linear model cannot express.
                let fraud =
                    x[F::UserDeviceNew as usize] == 1.0 && x[F::SessionGapCv as usize] < 0.2 && rng.unit() < 0.9;
                Row { ts: i as i64, session: i as u64, fraud, transfer_value: 0.0, kind: None, x }
            })
            .collect()
    }

    fn margin(f: &Fitted, r: &Row) -> f64 {
        f.base + f.trees.iter().map(|t| tree_value(t, &r.x)).sum::<f64>()
    }

    #[test]
    fn boosting_learns_an_interaction_and_the_artifact_scores_like_training() {
        let (train, valid) = (rows(4000, 1), rows(2000, 2));
        let (tr, va): (Vec<&Row>, Vec<&Row>) = (train.iter().collect(), valid.iter().collect());
        let mut seen = 0;
        let fit = fit(&tr, &crate::dataset::session_weights(&tr), &va, &Params::default(), |t| seen = t).unwrap();
        assert!(seen >= fit.trees.len() && !fit.trees.is_empty());
        let loss = &fit.valid_loss;
        assert!(loss.iter().cloned().fold(f64::INFINITY, f64::min) < loss[0] * 0.5, "validation loss fell: {loss:?}");
        let (mut fraud, mut legit) = (Vec::new(), Vec::new());
        for r in &valid {
            if r.fraud { &mut fraud } else { &mut legit }.push(margin(&fit, r));
        }
        let min_fraud = fraud.iter().cloned().fold(f64::INFINITY, f64::min);
        let above = legit.iter().filter(|m| **m >= min_fraud).count();
        assert!(above * 20 < legit.len(), "{above} of {} legitimate rows score like fraud", legit.len());

        // The artifact's inference (models crate) gives the same margin as the trainer's walk.
        let model = models::artifact::Model::Boosted { base: fit.base, trees: fit.trees.clone() };
        let art = crate::train::artifact("t", model, serde_json::Value::Null);
        art.check().unwrap();
        for r in valid.iter().take(200) {
            let (z, _) = art.margin(&crate::train::features_of(r));
            assert!((z - margin(&fit, r)).abs() < 1e-9);
        }
    }

    #[test]
    fn a_single_class_is_refused_with_advice() {
        let train: Vec<Row> = rows(100, 3).into_iter().map(|r| Row { fraud: false, ..r }).collect();
        let tr: Vec<&Row> = train.iter().collect();
        let err =
            fit(&tr, &crate::dataset::session_weights(&tr), &[], &Params::default(), |_| {}).unwrap_err().to_string();
        assert!(err.contains("both classes"), "{err}");
    }
}
