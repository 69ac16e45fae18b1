//! The model artifact: what the trainer writes into the registry and the scorer loads.
//!
//! Inference lives here (not in linfa) so that the scorer needs no training dependencies:
//! scoring one event is a dot product (logistic) or a walk down each tree (boosted trees).

use crate::features::{FEATURES, FeatureVector, feature_schema_hash};
use serde::{Deserialize, Serialize};

/// `meta` keys under which the trainer records the validation window's session score
/// distribution, over all sessions and over the legitimate ones (pairs of `[share, score]`).
pub const TOP_SHARES: &str = "session_score_top_shares";
pub const LEGIT_SHARES: &str = "session_score_legit_shares";

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error(
        "model {version} was trained on feature schema {artifact} but this build computes {ours}; \
         retrain the model with this build (`trainer train`) or deploy the matching enricher/scorer"
    )]
    SchemaMismatch { version: String, artifact: String, ours: String },
    #[error("model {version} is inconsistent: {detail}")]
    Invalid { version: String, detail: String },
}

/// Platt scaling of the raw margin: `p = sigmoid(a * margin + b)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Model {
    /// Logistic regression on standardized, transformed features.
    Logistic { mean: Vec<f64>, scale: Vec<f64>, coef: Vec<f64>, intercept: f64 },
    /// Gradient-boosted regression trees on the raw feature values (trees need no scaling);
    /// the margin is `base` plus one leaf value per tree.
    Boosted { base: f64, trees: Vec<Tree> },
}

/// One tree as a flat node array; node 0 is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// A split (`left` > 0: go left when `x[feature] < threshold`) or a leaf (`left` == 0). Every
/// node keeps its own value (the leaf value it would have had) so a prediction can be explained
/// split by split: each split's contribution is the change in value it caused.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node {
    #[serde(rename = "f")]
    pub feature: u32,
    #[serde(rename = "t")]
    pub threshold: f64,
    #[serde(rename = "l")]
    pub left: u32,
    #[serde(rename = "r")]
    pub right: u32,
    #[serde(rename = "v")]
    pub value: f64,
}

impl Tree {
    /// The leaf value for the features `x(j)`, calling `step(split, child)` on the way down.
    fn descend(&self, x: impl Fn(usize) -> f64, mut step: impl FnMut(&Node, &Node)) -> f64 {
        let mut n = &self.nodes[0];
        while n.left != 0 {
            let next = &self.nodes[if x(n.feature as usize) < n.threshold { n.left } else { n.right } as usize];
            step(n, next);
            n = next;
        }
        n.value
    }

    /// The tree's value for the features `x(j)` (the trainer's rows are `f32`).
    pub fn value(&self, x: impl Fn(usize) -> f64) -> f64 {
        self.descend(x, |_, _| {})
    }

    /// The tree's value for `x`, adding each split's change in value to its feature.
    fn walk(&self, x: &[f64], contributions: &mut [f64]) -> f64 {
        self.descend(|j| x[j], |split, child| contributions[split.feature as usize] += child.value - split.value)
    }

    /// Structural checks so a hand-edited or corrupt artifact cannot loop or index out of bounds.
    fn check(&self, n_features: usize) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("empty tree".into());
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.value.is_finite() {
                return Err(format!("node {i}: non-finite value"));
            }
            if n.left == 0 {
                continue;
            }
            // Children after their parent: the walk always moves forward, so it ends.
            let ok = |c: u32| (c as usize) > i && (c as usize) < self.nodes.len();
            if !ok(n.left) || !ok(n.right) || n.feature as usize >= n_features || n.threshold.is_nan() {
                return Err(format!("node {i}: bad split"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    pub version: String,
    pub feature_schema: String,
    pub feature_names: Vec<String>,
    pub created_at: String,
    pub model: Model,
    #[serde(default)]
    pub calibration: Option<Platt>,
    /// Training window, row counts and anything else the trainer wants to record.
    #[serde(default)]
    pub meta: serde_json::Value,
}

/// A score with each feature's contribution to the margin (for the linear model,
/// coefficient × standardized value), largest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub score: f64,
    pub contributions: Vec<(usize, f64)>,
}

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl ModelArtifact {
    /// Refuses an artifact whose features are not the ones this build computes.
    pub fn check(&self) -> Result<(), ArtifactError> {
        let ours = feature_schema_hash();
        if self.feature_schema != ours {
            return Err(ArtifactError::SchemaMismatch {
                version: self.version.clone(),
                artifact: self.feature_schema.clone(),
                ours,
            });
        }
        let n = FEATURES.len();
        let invalid = |detail: String| ArtifactError::Invalid { version: self.version.clone(), detail };
        if self.feature_names.len() != n {
            return Err(invalid(format!("expected {n} feature names")));
        }
        match &self.model {
            Model::Logistic { mean, scale, coef, intercept } => {
                if mean.len() != n || scale.len() != n || coef.len() != n {
                    return Err(invalid(format!("expected {n} features")));
                }
                if scale.iter().any(|s| !s.is_finite() || *s <= 0.0)
                    || coef.iter().chain(mean).chain([intercept]).any(|c| !c.is_finite())
                {
                    return Err(invalid("non-finite coefficient or non-positive scale".into()));
                }
            }
            Model::Boosted { base, trees } => {
                if !base.is_finite() || trees.is_empty() {
                    return Err(invalid("no trees or a non-finite base".into()));
                }
                for (i, t) in trees.iter().enumerate() {
                    t.check(n).map_err(|e| invalid(format!("tree {i}: {e}")))?;
                }
            }
        }
        Ok(())
    }

    /// The model family, as metrics and reports name it.
    pub fn kind(&self) -> &'static str {
        match self.model {
            Model::Logistic { .. } => "logistic",
            Model::Boosted { .. } => "boosted_trees",
        }
    }

    /// The uncalibrated margin and per-feature contributions.
    pub fn margin(&self, f: &FeatureVector) -> (f64, Vec<f64>) {
        match &self.model {
            Model::Logistic { mean, scale, coef, intercept } => {
                let mut contributions = Vec::with_capacity(coef.len());
                let mut z = *intercept;
                for (i, def) in FEATURES.iter().enumerate() {
                    let x = (def.transform.apply(f.0[i]) - mean[i]) / scale[i];
                    let c = coef[i] * x;
                    z += c;
                    contributions.push(c);
                }
                (z, contributions)
            }
            Model::Boosted { base, trees } => {
                let mut contributions = vec![0.0; f.0.len()];
                let z = base + trees.iter().map(|t| t.walk(&f.0, &mut contributions)).sum::<f64>();
                (z, contributions)
            }
        }
    }

    /// Calibrated probability of fraud.
    pub fn probability(&self, margin: f64) -> f64 {
        let p = match self.calibration {
            Some(Platt { a, b }) => sigmoid(a * margin + b),
            None => sigmoid(margin),
        };
        if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.5 }
    }

    /// The session score above which `share` of all sessions fell on the trainer's validation
    /// window (`meta.session_score_top_shares`), interpolated: a threshold by alert volume.
    pub fn score_at_top_share(&self, share: f64) -> Option<f64> {
        self.score_at_share(TOP_SHARES, share)
    }

    /// The session score above which `share` of the *legitimate* sessions fell on the trainer's
    /// validation window (`meta.session_score_legit_shares`), interpolated: a threshold by the
    /// share of customers an action may bother, which is what a flag budget is.
    pub fn score_at_legit_share(&self, share: f64) -> Option<f64> {
        self.score_at_share(LEGIT_SHARES, share)
    }

    /// Reads `meta[key]`, pairs of `[share, score]` in ascending share, and interpolates.
    fn score_at_share(&self, key: &str, share: f64) -> Option<f64> {
        let pts: Vec<(f64, f64)> = self
            .meta
            .get(key)?
            .as_array()?
            .iter()
            .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
            .collect();
        let first = *pts.first()?;
        if share <= first.0 {
            return Some(first.1);
        }
        for w in pts.windows(2) {
            let ((s0, v0), (s1, v1)) = (w[0], w[1]);
            if share <= s1 {
                return Some(v0 + (v1 - v0) * (share - s0) / (s1 - s0));
            }
        }
        pts.last().map(|p| p.1)
    }

    pub fn score(&self, f: &FeatureVector) -> Scored {
        let (z, contributions) = self.margin(f);
        let mut contributions: Vec<(usize, f64)> = contributions.into_iter().enumerate().collect();
        contributions.sort_by(|a, b| b.1.total_cmp(&a.1));
        Scored { score: self.probability(z), contributions }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(coef0: f64) -> ModelArtifact {
        let n = FEATURES.len();
        let mut coef = vec![0.0; n];
        coef[0] = coef0;
        ModelArtifact {
            version: "t".into(),
            feature_schema: feature_schema_hash(),
            feature_names: FEATURES.iter().map(|f| f.name.to_string()).collect(),
            created_at: String::new(),
            model: Model::Logistic { mean: vec![0.0; n], scale: vec![1.0; n], coef, intercept: -1.0 },
            calibration: None,
            meta: serde_json::Value::Null,
        }
    }

    #[test]
    fn the_score_rises_with_a_positive_coefficient_and_reports_its_contribution() {
        let a = artifact(3.0);
        a.check().unwrap();
        let mut x = vec![0.0; FEATURES.len()];
        let low = a.score(&FeatureVector(x.clone()));
        x[0] = 1.0;
        let high = a.score(&FeatureVector(x));
        assert!((low.score - sigmoid(-1.0)).abs() < 1e-12);
        assert!((high.score - sigmoid(2.0)).abs() < 1e-12);
        assert_eq!(high.contributions[0], (0, 3.0));
    }

    fn leaf(value: f64) -> Node {
        Node { feature: 0, threshold: 0.0, left: 0, right: 0, value }
    }

    fn boosted(trees: Vec<Tree>) -> ModelArtifact {
        ModelArtifact { model: Model::Boosted { base: -2.0, trees }, ..artifact(0.0) }
    }

    #[test]
    fn a_boosted_model_sums_its_leaves_and_explains_each_split() {
        let split = |f: u32, t: f64, lo: f64, hi: f64, v: f64| Tree {
            nodes: vec![Node { feature: f, threshold: t, left: 1, right: 2, value: v }, leaf(lo), leaf(hi)],
        };
        let a = boosted(vec![split(3, 0.5, -0.5, 1.5, 0.1), split(7, 10.0, 0.0, 0.8, 0.2)]);
        a.check().unwrap();
        assert_eq!(a.kind(), "boosted_trees");
        let mut x = vec![0.0; FEATURES.len()];
        x[3] = 1.0;
        x[7] = 3.0;
        let (z, c) = a.margin(&FeatureVector(x));
        assert!((z - (-2.0 + 1.5 + 0.0)).abs() < 1e-12);
        assert!((c[3] - 1.4).abs() < 1e-12 && (c[7] + 0.2).abs() < 1e-12);
        // Base, the trees' root values and the contributions add up to the margin.
        assert!((-2.0 + 0.1 + 0.2 + c.iter().sum::<f64>() - z).abs() < 1e-12);
    }

    #[test]
    fn a_tree_that_could_loop_or_read_past_the_features_is_refused() {
        assert!(boosted(vec![Tree { nodes: vec![leaf(1.0)] }]).check().is_ok(), "a single leaf is a valid tree");
        // A child pointing back up the tree would loop forever.
        let split = |left: u32, right: u32| Node { feature: 0, threshold: 1.0, left, right, value: 0.0 };
        let back = Tree { nodes: vec![split(1, 2), leaf(0.0), split(1, 0)] };
        let far = Tree {
            nodes: vec![Node { feature: 10_000, threshold: 1.0, left: 1, right: 2, value: 0.0 }, leaf(0.0), leaf(1.0)],
        };
        for t in [back, far] {
            let err =
                boosted(vec![Tree { nodes: vec![Node { left: 1, right: 2, ..leaf(0.0) }, leaf(0.0), leaf(0.0)] }, t])
                    .check()
                    .unwrap_err()
                    .to_string();
            assert!(err.contains("tree 1"), "{err}");
        }
        assert!(boosted(vec![]).check().is_err());
    }

    #[test]
    fn an_artifact_from_another_feature_schema_is_refused_with_advice() {
        let mut a = artifact(1.0);
        a.feature_schema = "fs0-deadbeef".into();
        let err = a.check().unwrap_err().to_string();
        assert!(err.contains("fs0-deadbeef") && err.contains("retrain"), "{err}");
    }

    #[test]
    fn a_legitimate_share_reads_its_own_distribution_and_interpolates_between_points() {
        let mut a = artifact(1.0);
        assert_eq!(a.score_at_legit_share(0.01), None, "no distribution recorded: no threshold");
        a.meta = serde_json::json!({
            TOP_SHARES: [[0.01, 0.9]],
            LEGIT_SHARES: [[0.001, 0.8], [0.005, 0.6], [0.02, 0.3]],
        });
        assert_eq!(a.score_at_legit_share(0.0001), Some(0.8), "below the first point: the first");
        assert!((a.score_at_legit_share(0.003).unwrap() - 0.7).abs() < 1e-12);
        assert_eq!(a.score_at_legit_share(0.5), Some(0.3), "past the last point: the last");
        assert_eq!(a.score_at_top_share(0.01), Some(0.9));
    }
}
