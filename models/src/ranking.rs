//! Ranking and calibration measures over scored examples, shared by the trainer's evaluation
//! and the simulator's live report so that both mean the same by "average precision".
//!
//! `ranked` is `(score, positive)` sorted by score, highest first.

/// Average precision: the mean, over positives, of the precision at each one's rank (0 with
/// no positive).
pub fn average_precision(ranked: &[(f64, bool)]) -> f64 {
    let (mut tp, mut ap) = (0usize, 0.0);
    for (i, (_, y)) in ranked.iter().enumerate() {
        if *y {
            tp += 1;
            ap += tp as f64 / (i + 1) as f64;
        }
    }
    if tp > 0 { ap / tp as f64 } else { 0.0 }
}

/// ROC AUC by rank sum, ties averaged (0 without both classes).
pub fn roc_auc(ranked: &[(f64, bool)]) -> f64 {
    let pos = ranked.iter().filter(|s| s.1).count();
    let neg = ranked.len() - pos;
    let mut asc: Vec<_> = ranked.to_vec();
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
    if pos > 0 && neg > 0 { (rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64 } else { 0.0 }
}

/// Share of positives ranked above the point where more than `fpr` of the negatives are
/// (the recall a threshold flagging that share of negatives reaches).
pub fn recall_at_fpr(ranked: &[(f64, bool)], fpr: f64) -> f64 {
    let pos = ranked.iter().filter(|s| s.1).count();
    let allowed = (fpr * (ranked.len() - pos) as f64).floor() as usize;
    let (mut fp, mut tp) = (0, 0);
    for (_, y) in ranked {
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
}

/// Expected calibration error: mean |predicted − observed| over ten equal-width score bins,
/// weighted by bin size (any order).
pub fn calibration_error(scored: &[(f64, bool)]) -> f64 {
    let mut bins = [(0usize, 0.0f64, 0usize); 10];
    for (s, y) in scored {
        let b = ((s * 10.0) as usize).min(9);
        bins[b].0 += 1;
        bins[b].1 += s;
        bins[b].2 += usize::from(*y);
    }
    let n = scored.len().max(1) as f64;
    bins.iter().filter(|b| b.0 > 0).map(|b| (b.1 / b.0 as f64 - b.2 as f64 / b.0 as f64).abs() * b.0 as f64 / n).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_ranking_scores_one_and_a_reversed_one_scores_zero_auc() {
        let good = [(0.9, true), (0.8, true), (0.2, false), (0.1, false)];
        assert_eq!((average_precision(&good), roc_auc(&good)), (1.0, 1.0));
        let bad = [(0.9, false), (0.8, false), (0.2, true), (0.1, true)];
        assert_eq!(roc_auc(&bad), 0.0);
        assert!((average_precision(&bad) - (1.0 / 3.0 + 2.0 / 4.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn recall_at_a_false_positive_rate_counts_positives_before_the_negatives_it_allows() {
        // Ten negatives: 10 % allows one, so the positive after the first negative counts.
        let mut r = vec![(0.99, true), (0.9, false), (0.8, true), (0.7, false), (0.6, true)];
        r.extend((0..8).map(|i| (0.5 - f64::from(i) * 0.01, false)));
        assert_eq!(recall_at_fpr(&r, 0.1), 2.0 / 3.0);
        assert_eq!(recall_at_fpr(&r, 0.0), 1.0 / 3.0);
    }

    #[test]
    fn calibration_error_is_zero_when_each_bin_scores_its_observed_rate() {
        let exact = [(0.25, true), (0.25, false), (0.25, false), (0.25, false), (0.05, false)];
        assert!(calibration_error(&exact) < 0.05 / 5.0 + 1e-12);
        let over = [(0.95, false), (0.95, false)];
        assert!((calibration_error(&over) - 0.95).abs() < 1e-12);
    }
}
