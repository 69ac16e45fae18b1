//! Fitting: logistic regression (linfa) on transformed, standardized features; positives are
//! oversampled to balance the classes and Platt scaling on the validation window turns the
//! margin back into a calibrated probability.

use crate::dataset::Row;
use linfa::Dataset;
use linfa::traits::{Fit, Predict};
use linfa_logistic::LogisticRegression;
use models::artifact::{Model, ModelArtifact, Platt, sigmoid};
use models::features::{FEATURES, FeatureVector, feature_schema_hash};
use ndarray::{Array1, Array2, ShapeBuilder};

#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// L2 penalty.
    pub alpha: f64,
    pub max_iterations: u64,
    /// Oversample positives up to this share of the training rows.
    pub positive_share: f64,
    /// Most rows linfa fits on. Its solver makes a matrix product and a matrix–vector product
    /// over every row per evaluation, for up to `max_iterations` L-BFGS steps: memory-bandwidth
    /// bound, 3 s at 200 k rows but over 2 minutes at 1 M here. A linear model on 59 features
    /// needs far fewer rows than that; legitimate rows are thinned (by weight) to fit, fraud is kept.
    pub max_rows: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params { alpha: 1.0, max_iterations: 200, positive_share: 0.2, max_rows: 250_000 }
    }
}

fn transformed(r: &Row) -> impl Iterator<Item = f64> + '_ {
    r.x.iter().zip(FEATURES).map(|(v, f)| f.transform.apply(f64::from(*v)))
}

/// A fitted logistic model on the transformed, standardized feature space.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub coef: Vec<f64>,
    pub intercept: f64,
    /// Rows linfa fitted on (after thinning and oversampling).
    pub rows: usize,
}

/// Fits the logistic model. linfa takes no sample weights, so each row's `weights` entry (the
/// trainer's: every session the same whatever its length, a young unlabelled row by the share
/// of labels in by its age) decides how often it is drawn into the matrix: systematic sampling,
/// within each class, in proportion to weight.
pub fn fit_logistic(rows: &[&Row], weights: &[f64], p: Params) -> anyhow::Result<Fitted> {
    let n_f = FEATURES.len();
    let pos = rows.iter().filter(|r| r.fraud).count();
    let neg = rows.len() - pos;
    if pos == 0 || neg == 0 {
        anyhow::bail!(
            "the training window has {pos} fraudulent and {neg} legitimate events; both classes are needed (more history or labels)"
        );
    }
    let mut mean = vec![0.0; n_f];
    let mut sq = vec![0.0; n_f];
    for r in rows {
        for (j, v) in transformed(r).enumerate() {
            mean[j] += v;
            sq[j] += v * v;
        }
    }
    let n = rows.len() as f64;
    let scale: Vec<f64> = (0..n_f)
        .map(|j| {
            mean[j] /= n;
            let var = sq[j] / n - mean[j] * mean[j];
            if var > 1e-12 { var.sqrt() } else { 1.0 }
        })
        .collect();
    // Legitimate rows thinned to the budget, fraudulent ones repeated to the share: as many draws
    // per class as unweighted rows would take, spread over the rows by weight.
    let neg_budget = ((p.max_rows as f64 * (1.0 - p.positive_share)) as usize).max(1);
    let neg_kept = neg.min(neg_budget);
    let repeat =
        ((p.positive_share * neg_kept as f64) / ((1.0 - p.positive_share) * pos as f64)).floor().max(1.0) as usize;
    let class_weight = |fraud: bool| {
        rows.iter().zip(weights).filter(|(r, _)| r.fraud == fraud).map(|(_, w)| w.max(0.0)).sum::<f64>().max(1e-12)
    };
    // Draws per unit of weight, by class.
    let rate = [neg_kept as f64 / class_weight(false), (pos * repeat) as f64 / class_weight(true)];
    // Rounding may draw one more than planned per class.
    let total = neg_kept + pos * repeat + 2;
    // Column-major: linfa's gradient is `x.t().dot(..)`, which on a row-major matrix walks memory with a
    // stride per feature (minutes at a million rows); column-major makes it contiguous.
    let mut x = Array2::<f64>::zeros((total, n_f).f());
    let mut y = Array1::from_elem(total, false);
    let (mut i, mut due, mut drawn) = (0, [0.0f64; 2], [0usize; 2]);
    for (r, w) in rows.iter().zip(weights) {
        // A row is drawn as often as the class's running total of weight × rate has passed a
        // whole number since the row before it.
        let c = usize::from(r.fraud);
        due[c] += w.max(0.0) * rate[c];
        let copies = ((due[c] + 1e-9).floor() as usize).saturating_sub(drawn[c]).min(total - i);
        drawn[c] += copies;
        for _ in 0..copies {
            for (j, v) in transformed(r).enumerate() {
                x[[i, j]] = (v - mean[j]) / scale[j];
            }
            y[i] = r.fraud;
            i += 1;
        }
    }
    // Rounding may draw a row fewer than planned.
    let (x, y) = (x.slice_move(ndarray::s![..i, ..]), y.slice_move(ndarray::s![..i]));
    let first = x.slice(ndarray::s![0..1, ..]).to_owned();
    let fitted = LogisticRegression::default()
        .alpha(p.alpha)
        .max_iterations(p.max_iterations)
        .fit(&Dataset::new(x, y))
        .map_err(|e| anyhow::anyhow!("logistic regression did not fit: {e}"))?;
    // linfa's probabilities are for its "positive" class, which is the *majority* class by
    // count (not the larger label), so with fraud in the minority they are P(legitimate).
    // Ask linfa itself which class a probability ≥ 0.5 means, and orient the model on fraud.
    let prob = fitted.predict_probabilities(&first)[0];
    let class: Array1<bool> = fitted.predict(&first);
    let class = class[0];
    let probabilities_are_fraud = (prob >= 0.5) == class;
    let sign = if probabilities_are_fraud { 1.0 } else { -1.0 };
    let coef = fitted.params().iter().map(|c| sign * c).collect();
    Ok(Fitted { mean, scale, coef, intercept: sign * fitted.intercept(), rows: i })
}

/// Platt scaling: fits `p = sigmoid(a * margin + b)` by Newton's method on the log loss.
pub fn fit_platt(margins: &[f64], labels: &[bool]) -> Platt {
    let (mut a, mut b) = (1.0, 0.0);
    let pos = labels.iter().filter(|y| **y).count() as f64;
    let neg = labels.len() as f64 - pos;
    // Platt's smoothed targets avoid infinite weights on separable data.
    let t_pos = (pos + 1.0) / (pos + 2.0);
    let t_neg = 1.0 / (neg + 2.0);
    for _ in 0..50 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for (m, y) in margins.iter().zip(labels) {
            let p = sigmoid(a * m + b);
            let t = if *y { t_pos } else { t_neg };
            let d = p - t;
            let w = p * (1.0 - p);
            ga += d * m;
            gb += d;
            haa += w * m * m;
            hab += w * m;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-18 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if da.abs() < 1e-9 && db.abs() < 1e-9 {
            break;
        }
    }
    if a.is_finite() && b.is_finite() { Platt { a, b } } else { Platt { a: 1.0, b: 0.0 } }
}

impl Fitted {
    pub fn into_model(self) -> Model {
        let Fitted { mean, scale, coef, intercept, .. } = self;
        Model::Logistic { mean, scale, coef, intercept }
    }
}

pub fn artifact(version: &str, model: Model, meta: serde_json::Value) -> ModelArtifact {
    ModelArtifact {
        version: version.to_string(),
        feature_schema: feature_schema_hash(),
        feature_names: FEATURES.iter().map(|f| f.name.to_string()).collect(),
        created_at: models::format_ts(platform::now_ms()),
        model,
        calibration: None,
        meta,
    }
}

pub fn features_of(r: &Row) -> FeatureVector {
    FeatureVector(r.x.iter().map(|v| f64::from(*v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<Row> {
        let mut out = Vec::new();
        let mut state = 12345u64;
        let mut rnd = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        for i in 0..n {
            let fraud = i % 10 == 0;
            let mut x = [0f32; crate::dataset::N_FEATURES];
            x[models::features::F::UserDeviceNew as usize] =
                if fraud { (rnd() < 0.9) as u8 as f32 } else { (rnd() < 0.05) as u8 as f32 };
            x[models::features::F::SessionGapCv as usize] = rnd() as f32;
            out.push(Row { ts: i as i64, session: i as u64, fraud, kind: None, transfer_value: 0.0, x });
        }
        out
    }

    #[test]
    fn fraud_gets_the_high_score_and_inference_matches_linfa() {
        let data = rows(2000);
        let refs: Vec<&Row> = data.iter().collect();
        let fit = fit_logistic(&refs, &vec![1.0; refs.len()], Params::default()).unwrap();
        let art = artifact("t", fit.clone().into_model(), serde_json::Value::Null);
        art.check().unwrap();
        let fraud_row =
            data.iter().find(|r| r.fraud && r.x[models::features::F::UserDeviceNew as usize] == 1.0).unwrap();
        let legit_row =
            data.iter().find(|r| !r.fraud && r.x[models::features::F::UserDeviceNew as usize] == 0.0).unwrap();
        let (sf, sl) = (art.score(&features_of(fraud_row)).score, art.score(&features_of(legit_row)).score);
        assert!(sf > 0.5 && sl < 0.5, "fraud {sf} legit {sl}");
        assert_eq!(art.score(&features_of(fraud_row)).contributions[0].0, models::features::F::UserDeviceNew as usize);

        // Our dot product reproduces the fitted margin exactly (no calibration set here).
        let Fitted { mean, scale, coef, intercept, .. } = fit;
        let x: Vec<f64> = transformed(fraud_row).enumerate().map(|(j, v)| (v - mean[j]) / scale[j]).collect();
        let z: f64 = intercept + x.iter().zip(&coef).map(|(a, b)| a * b).sum::<f64>();
        assert!((art.probability(art.margin(&features_of(fraud_row)).0) - sigmoid(z)).abs() < 1e-9);
    }

    #[test]
    fn the_fraud_orientation_holds_whichever_class_linfa_sees_first_or_counts_more() {
        for positive_share in [0.05, 0.5, 0.8] {
            let mut data = rows(1000);
            data.reverse();
            let refs: Vec<&Row> = data.iter().collect();
            let fit =
                fit_logistic(&refs, &vec![1.0; refs.len()], Params { positive_share, ..Params::default() }).unwrap();
            let dev = models::features::F::UserDeviceNew as usize;
            assert!(
                fit.coef[dev] > 0.0,
                "a new device raises the fraud score (share {positive_share}): {}",
                fit.coef[dev]
            );
        }
    }

    #[test]
    fn a_row_budget_thins_legitimate_rows_evenly_and_keeps_every_fraudulent_one() {
        let data = rows(5000);
        let refs: Vec<&Row> = data.iter().collect();
        let p = Params { max_rows: 1000, ..Params::default() };
        let fit = fit_logistic(&refs, &vec![1.0; refs.len()], p).unwrap();
        // 800 legitimate rows of 4500, and 500 fraudulent ones (already over the 20 % share).
        assert!((1290..=1300).contains(&fit.rows), "{} rows", fit.rows);
        assert!(fit.coef[models::features::F::UserDeviceNew as usize] > 0.0);
        let all = fit_logistic(&refs, &vec![1.0; refs.len()], Params { max_rows: usize::MAX, ..p }).unwrap();
        assert_eq!(all.rows, 5000 + 500 * (0.2f64 * 4500.0 / (0.8 * 500.0)).floor() as usize - 500);
    }

    #[test]
    fn rows_are_drawn_by_weight_so_a_row_of_weight_zero_teaches_nothing() {
        let data = rows(5000);
        let refs: Vec<&Row> = data.iter().collect();
        let dev = models::features::F::UserDeviceNew as usize;
        // Fraud on a new device weighs nothing (as if its labels had not arrived): what remains
        // of fraud is on known devices, so a new device no longer raises the score.
        let weights: Vec<f64> = refs.iter().map(|r| if r.fraud && r.x[dev] == 1.0 { 0.0 } else { 1.0 }).collect();
        let fit = fit_logistic(&refs, &weights, Params::default()).unwrap();
        assert!(fit.coef[dev] < 0.0, "{}", fit.coef[dev]);
        // Half the weight on every row draws the same number of rows: weights are relative.
        let half = fit_logistic(&refs, &vec![0.5; refs.len()], Params::default()).unwrap();
        let one = fit_logistic(&refs, &vec![1.0; refs.len()], Params::default()).unwrap();
        assert!(half.rows.abs_diff(one.rows) <= 2, "{} vs {}", half.rows, one.rows);
    }

    #[test]
    fn platt_scaling_recovers_the_base_rate() {
        let margins: Vec<f64> = (0..1000).map(|i| if i % 20 == 0 { 2.0 } else { -2.0 }).collect();
        let labels: Vec<bool> = (0..1000).map(|i| i % 40 == 0).collect();
        let p = fit_platt(&margins, &labels);
        let high = sigmoid(p.a * 2.0 + p.b);
        assert!((high - 0.5).abs() < 0.05, "{high}");
        assert!(sigmoid(p.a * -2.0 + p.b) < 0.01);
    }
}
