//! The model artifact: what the trainer writes into the registry and the scorer loads.
//!
//! Inference lives here (not in linfa) so that the scorer needs no training dependencies and
//! scoring one event is a dot product.

use crate::features::{FEATURES, FeatureVector, feature_schema_hash};
use serde::{Deserialize, Serialize};

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
        let Model::Logistic { mean, scale, coef, .. } = &self.model;
        if mean.len() != n || scale.len() != n || coef.len() != n || self.feature_names.len() != n {
            return Err(ArtifactError::Invalid {
                version: self.version.clone(),
                detail: format!("expected {n} features"),
            });
        }
        if scale.iter().any(|s| !s.is_finite() || *s <= 0.0) || coef.iter().any(|c| !c.is_finite()) {
            return Err(ArtifactError::Invalid {
                version: self.version.clone(),
                detail: "non-finite coefficient or non-positive scale".into(),
            });
        }
        Ok(())
    }

    /// The uncalibrated margin and per-feature contributions.
    pub fn margin(&self, f: &FeatureVector) -> (f64, Vec<f64>) {
        let Model::Logistic { mean, scale, coef, intercept } = &self.model;
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

    /// Calibrated probability of fraud.
    pub fn probability(&self, margin: f64) -> f64 {
        let p = match self.calibration {
            Some(Platt { a, b }) => sigmoid(a * margin + b),
            None => sigmoid(margin),
        };
        if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.5 }
    }

    /// The session score above which `share` of sessions fell on the trainer's validation
    /// window (`meta.session_score_top_shares`, pairs of `[share, score]`), interpolated.
    pub fn score_at_top_share(&self, share: f64) -> Option<f64> {
        let pts: Vec<(f64, f64)> = self
            .meta
            .get("session_score_top_shares")?
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

    #[test]
    fn an_artifact_from_another_feature_schema_is_refused_with_advice() {
        let mut a = artifact(1.0);
        a.feature_schema = "fs0-deadbeef".into();
        let err = a.check().unwrap_err().to_string();
        assert!(err.contains("fs0-deadbeef") && err.contains("retrain"), "{err}");
    }
}
