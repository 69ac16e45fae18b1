//! Evaluation at the session level: a session's score is its highest event score, and it is
//! fraudulent if any of its events is labelled so.

use crate::dataset::Row;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metrics {
    pub sessions: usize,
    pub fraud_sessions: usize,
    pub average_precision: f64,
    pub roc_auc: f64,
    pub recall_at_0_1pct_fpr: f64,
    pub recall_at_0_5pct_fpr: f64,
    pub recall_at_1pct_fpr: f64,
    pub precision_at_100: f64,
    pub expected_calibration_error: f64,
    /// Session score above which 0.5 % / 1 % / 5 % of legitimate sessions would be flagged:
    /// the numbers to put in the policy for a target alert rate.
    pub threshold_at_0_5pct_fpr: f64,
    pub threshold_at_1pct_fpr: f64,
    pub threshold_at_5pct_fpr: f64,
}

/// `(score, is_fraud)` per session.
pub fn by_session(rows: &[&Row], scores: &[f64]) -> Vec<(f64, bool)> {
    let mut m: HashMap<u32, (f64, bool)> = HashMap::new();
    for (r, s) in rows.iter().zip(scores) {
        let e = m.entry(r.session).or_insert((0.0, false));
        e.0 = e.0.max(*s);
        e.1 |= r.fraud;
    }
    let mut v: Vec<_> = m.into_values().collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    v
}

/// `[share, score]` pairs: the score above which `share` of the sessions fall (sessions sorted
/// by score, descending, as [`by_session`] returns them).
pub fn top_shares(sessions: &[(f64, bool)]) -> Vec<[f64; 2]> {
    const SHARES: [f64; 12] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5];
    if sessions.is_empty() {
        return Vec::new();
    }
    SHARES
        .iter()
        .map(|s| {
            let i = ((s * sessions.len() as f64) as usize).min(sessions.len() - 1);
            [*s, sessions[i].0]
        })
        .collect()
}

pub fn metrics(sessions: &[(f64, bool)]) -> Metrics {
    let pos = sessions.iter().filter(|s| s.1).count();
    let neg = sessions.len() - pos;
    // Average precision over the ranking (sorted by score, descending).
    let (mut tp, mut ap) = (0usize, 0.0);
    for (i, (_, y)) in sessions.iter().enumerate() {
        if *y {
            tp += 1;
            ap += tp as f64 / (i + 1) as f64;
        }
    }
    let ap = if pos > 0 { ap / pos as f64 } else { 0.0 };
    // ROC AUC by rank sum, ties averaged.
    let mut asc: Vec<_> = sessions.to_vec();
    asc.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < asc.len() {
        let mut j = i;
        while j < asc.len() && asc[j].0 == asc[i].0 {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0;
        rank_sum += avg * asc[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    let auc = if pos > 0 && neg > 0 { (rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64 } else { 0.0 };
    let recall_at = |fpr: f64| {
        let allowed = (fpr * neg as f64).floor() as usize;
        let (mut fp, mut tp) = (0, 0);
        for (_, y) in sessions {
            if *y {
                tp += 1;
            } else {
                fp += 1;
                if fp > allowed {
                    break;
                }
            }
        }
        if pos > 0 { tp as f64 / pos as f64 } else { 0.0 }
    };
    let k = sessions.len().min(100);
    let p_at_k = if k > 0 { sessions[..k].iter().filter(|s| s.1).count() as f64 / k as f64 } else { 0.0 };
    // Calibration: mean |predicted − observed| over ten score bins, weighted by bin size.
    let mut bins = [(0usize, 0.0f64, 0usize); 10];
    for (s, y) in sessions {
        let b = ((s * 10.0) as usize).min(9);
        bins[b].0 += 1;
        bins[b].1 += s;
        bins[b].2 += usize::from(*y);
    }
    let n = sessions.len().max(1) as f64;
    let ece = bins
        .iter()
        .filter(|b| b.0 > 0)
        .map(|b| (b.1 / b.0 as f64 - b.2 as f64 / b.0 as f64).abs() * b.0 as f64 / n)
        .sum();
    let mut legit: Vec<f64> = sessions.iter().filter(|s| !s.1).map(|s| s.0).collect();
    legit.sort_by(|a, b| b.total_cmp(a));
    let threshold = |fpr: f64| legit.get((fpr * legit.len() as f64) as usize).copied().unwrap_or(1.0);
    Metrics {
        threshold_at_0_5pct_fpr: threshold(0.005),
        threshold_at_1pct_fpr: threshold(0.01),
        threshold_at_5pct_fpr: threshold(0.05),
        sessions: sessions.len(),
        fraud_sessions: pos,
        average_precision: ap,
        roc_auc: auc,
        recall_at_0_1pct_fpr: recall_at(0.001),
        recall_at_0_5pct_fpr: recall_at(0.005),
        recall_at_1pct_fpr: recall_at(0.01),
        precision_at_100: p_at_k,
        expected_calibration_error: ece,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_ranking_scores_one_and_a_reversed_one_scores_zero_auc() {
        let good = vec![(0.9, true), (0.8, true), (0.2, false), (0.1, false)];
        let m = metrics(&good);
        assert_eq!((m.average_precision, m.roc_auc), (1.0, 1.0));
        let bad: Vec<(f64, bool)> = vec![(0.9, false), (0.8, false), (0.2, true), (0.1, true)];
        let mut sorted = bad.clone();
        sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
        let m = metrics(&sorted);
        assert_eq!(m.roc_auc, 0.0);
        assert!((m.average_precision - (1.0 / 3.0 + 2.0 / 4.0) / 2.0).abs() < 1e-12);
    }
}
