//! Evaluation at the session level: a session's score is its highest event score, and it is
//! fraudulent if any of its events is labelled so.

use crate::dataset::Row;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The alert rate (share of legitimate sessions flagged) the headline operating point uses.
pub const OPERATING_FPR: f64 = 0.01;

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
    pub precision_at_1000: f64,
    pub expected_calibration_error: f64,
    /// Session score above which 0.5 % / 1 % / 5 % of legitimate sessions would be flagged:
    /// the numbers to put in the policy for a target alert rate.
    pub threshold_at_0_5pct_fpr: f64,
    pub threshold_at_1pct_fpr: f64,
    pub threshold_at_5pct_fpr: f64,
    /// Transfer value in fraudulent sessions, and the share of it whose session was flagged (at
    /// 1 % FPR) by the transfer itself or an earlier event: money a restriction would have held.
    pub fraud_transfer_value: f64,
    pub fraud_value_stopped_at_1pct_fpr: f64,
    /// Recall at 1 % FPR per fraud kind (label `kind`; `other` when a label named none).
    pub recall_by_kind: BTreeMap<String, KindRecall>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KindRecall {
    pub sessions: usize,
    pub recall_at_1pct_fpr: f64,
}

/// One session's outcome: its score, truth, and each transfer with the session's highest score
/// up to and including it.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The session's id, hashed as rows carry it.
    pub id: u64,
    pub score: f64,
    pub fraud: bool,
    pub kind: Option<models::LabelKind>,
    pub transfers: Vec<(f64, f64)>,
}

/// Sessions of `rows` (in event-time order) scored by `scores`, highest score first.
pub fn sessions(rows: &[&Row], scores: &[f64]) -> Vec<Session> {
    let mut m: HashMap<u64, Session> = HashMap::new();
    for (r, s) in rows.iter().zip(scores) {
        let e = m.entry(r.session).or_insert(Session {
            id: r.session,
            score: 0.0,
            fraud: false,
            kind: None,
            transfers: Vec::new(),
        });
        e.score = e.score.max(*s);
        e.fraud |= r.fraud;
        e.kind = e.kind.or(r.kind);
        if r.transfer_value > 0.0 {
            e.transfers.push((e.score, r.transfer_value));
        }
    }
    let mut v: Vec<_> = m.into_values().collect();
    v.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.fraud.cmp(&b.fraud)));
    v
}

/// The shares of sessions at which a model records its score distribution.
const SHARE_GRID: [f64; 12] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5];

/// `[share, score]` pairs over `scores` (descending), for each share of [`SHARE_GRID`] and of
/// `extra`: a score at or above `score` is reached by at most `share` of them (the scorer
/// flags a score at or above its threshold, so the threshold sits one step above the first
/// score that must stay unflagged).
pub fn score_at_shares(scores: &[f64], extra: impl IntoIterator<Item = f64>) -> Vec<[f64; 2]> {
    if scores.is_empty() {
        return Vec::new();
    }
    let mut shares: Vec<f64> = SHARE_GRID.into_iter().chain(extra).collect();
    shares.sort_by(f64::total_cmp);
    shares.dedup();
    shares
        .into_iter()
        .map(|s| {
            let i = ((s * scores.len() as f64) as usize).min(scores.len() - 1);
            [s, scores[i].next_up().min(1.0)]
        })
        .collect()
}

/// The score distribution over all sessions (as [`sessions`] returns them, highest first):
/// thresholds by alert volume (`top_share`).
pub fn top_shares(sessions: &[Session]) -> Vec<[f64; 2]> {
    let scores: Vec<f64> = sessions.iter().map(|s| s.score).collect();
    score_at_shares(&scores, [])
}

/// Precision–recall points along the ranking (one per fraudulent session reached).
pub fn pr_curve(sessions: &[Session]) -> Vec<(f64, f64)> {
    let pos = sessions.iter().filter(|s| s.fraud).count().max(1) as f64;
    let mut tp = 0.0;
    let mut out = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        if s.fraud {
            tp += 1.0;
            out.push((tp / pos, tp / (i + 1) as f64));
        }
    }
    out
}

/// ROC points `(false positive rate, true positive rate)` along the ranking.
pub fn roc_curve(sessions: &[Session]) -> Vec<(f64, f64)> {
    let pos = sessions.iter().filter(|s| s.fraud).count().max(1) as f64;
    let neg = sessions.iter().filter(|s| !s.fraud).count().max(1) as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut out = vec![(0.0, 0.0)];
    for s in sessions {
        if s.fraud {
            tp += 1.0
        } else {
            fp += 1.0
        }
        out.push((fp / neg, tp / pos));
    }
    out
}

/// The headline metrics; `sessions` as [`sessions`] returns them (highest score first).
pub fn metrics(sessions: &[Session]) -> Metrics {
    let flat: Vec<(f64, bool)> = sessions.iter().map(|s| (s.score, s.fraud)).collect();
    let mut m = ranking_metrics(&flat);
    let cut = m.threshold_at_1pct_fpr;
    let flagged = |score: f64| score > cut;
    let value = |f: &dyn Fn(&(f64, f64)) -> bool| -> f64 {
        sessions.iter().filter(|s| s.fraud).flat_map(|s| &s.transfers).filter(|t| f(t)).map(|t| t.1).sum()
    };
    m.fraud_transfer_value = value(&|_| true);
    m.fraud_value_stopped_at_1pct_fpr =
        if m.fraud_transfer_value > 0.0 { value(&|t| flagged(t.0)) / m.fraud_transfer_value } else { 0.0 };
    let mut kinds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for s in sessions.iter().filter(|s| s.fraud) {
        let e = kinds.entry(s.kind.unwrap_or(models::LabelKind::Other).as_str().to_string()).or_default();
        e.0 += 1;
        e.1 += usize::from(flagged(s.score));
    }
    m.recall_by_kind = kinds
        .into_iter()
        .map(|(k, (n, hit))| (k, KindRecall { sessions: n, recall_at_1pct_fpr: hit as f64 / n as f64 }))
        .collect();
    m
}

fn ranking_metrics(sessions: &[(f64, bool)]) -> Metrics {
    use models::ranking;
    let pos = sessions.iter().filter(|s| s.1).count();
    let precision_at = |k: usize| {
        let k = sessions.len().min(k);
        if k > 0 { sessions[..k].iter().filter(|s| s.1).count() as f64 / k as f64 } else { 0.0 }
    };
    let mut legit: Vec<f64> = sessions.iter().filter(|s| !s.1).map(|s| s.0).collect();
    legit.sort_by(|a, b| b.total_cmp(a));
    let threshold = |fpr: f64| legit.get((fpr * legit.len() as f64) as usize).copied().unwrap_or(1.0);
    Metrics {
        threshold_at_0_5pct_fpr: threshold(0.005),
        threshold_at_1pct_fpr: threshold(0.01),
        threshold_at_5pct_fpr: threshold(0.05),
        sessions: sessions.len(),
        fraud_sessions: pos,
        average_precision: ranking::average_precision(sessions),
        roc_auc: ranking::roc_auc(sessions),
        recall_at_0_1pct_fpr: ranking::recall_at_fpr(sessions, 0.001),
        recall_at_0_5pct_fpr: ranking::recall_at_fpr(sessions, 0.005),
        recall_at_1pct_fpr: ranking::recall_at_fpr(sessions, 0.01),
        precision_at_100: precision_at(100),
        precision_at_1000: precision_at(1000),
        expected_calibration_error: ranking::calibration_error(sessions),
        fraud_transfer_value: 0.0,
        fraud_value_stopped_at_1pct_fpr: 0.0,
        recall_by_kind: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(session: u64, fraud: bool, kind: Option<models::LabelKind>, transfer: f64) -> Row {
        Row { ts: 0, session, fraud, kind, transfer_value: transfer, x: [0.0; crate::dataset::N_FEATURES] }
    }

    #[test]
    fn value_is_stopped_only_when_the_session_was_flagged_by_the_transfer_or_before_it() {
        use models::LabelKind::*;
        // 200 legitimate sessions scored 0.0..0.199: the 1 % FPR cut is the third highest.
        let mut rows: Vec<Row> = (0..200).map(|i| row(i, false, None, 0.0)).collect();
        let mut scores: Vec<f64> = (0..200).map(|i| f64::from(i) / 1000.0).collect();
        // Session 1000 transfers 100 before it looks bad and 50 after; session 1001 (a bot,
        // never flagged) transfers 10.
        for (r, s) in [
            (row(1000, true, Some(AccountTakeover), 100.0), 0.05),
            (row(1000, true, None, 0.0), 0.9),
            (row(1000, true, None, 50.0), 0.1),
            (row(1001, true, Some(Bot), 10.0), 0.01),
        ] {
            rows.push(r);
            scores.push(s);
        }
        let refs: Vec<&Row> = rows.iter().collect();
        let m = metrics(&sessions(&refs, &scores));
        assert_eq!(m.fraud_transfer_value, 160.0);
        assert!((m.fraud_value_stopped_at_1pct_fpr - 50.0 / 160.0).abs() < 1e-12, "{m:?}");
        assert_eq!(m.recall_by_kind["account_takeover"], KindRecall { sessions: 1, recall_at_1pct_fpr: 1.0 });
        assert_eq!(m.recall_by_kind["bot"], KindRecall { sessions: 1, recall_at_1pct_fpr: 0.0 });
        assert_eq!(m.recall_at_1pct_fpr, 0.5);
        let pr = pr_curve(&sessions(&refs, &scores));
        assert_eq!(pr.first(), Some(&(0.5, 1.0)));
        let roc = roc_curve(&sessions(&refs, &scores));
        assert_eq!(roc.last(), Some(&(1.0, 1.0)));
    }
}
