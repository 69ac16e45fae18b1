//! Flag budgets: how many legitimate sessions each action may touch, turned into score
//! thresholds on the validation window and checked on the test window.
//!
//! A fixed score threshold drifts with every retrain and every site: the same 0.5 flags 0.2 %
//! of one bank's customers and 3 % of another's. A budget ("restrict at most 0.5 % of
//! legitimate sessions") is what an operator means, so the trainer records the validation
//! window's legitimate score distribution with the model and the policy's bands name a share
//! (`legit_share`) that the scorer resolves against whichever model is the champion.

use crate::eval::Session;
use models::Action;
use serde::Serialize;

/// Budgets per action, as shares of legitimate sessions (`challenge=0.02,restrict=0.005,block=0.001`).
#[derive(Debug, Clone, PartialEq)]
pub struct FlagBudgets(pub Vec<(Action, f64)>);

impl Default for FlagBudgets {
    fn default() -> Self {
        FlagBudgets(vec![(Action::Challenge, 0.02), (Action::Restrict, 0.005), (Action::Block, 0.001)])
    }
}

impl FlagBudgets {
    /// Parses `action=share,...` (clap's value parser): every action other than allow at most
    /// once, shares within (0, 1), a more severe action never given a larger share.
    pub fn parse(s: &str) -> Result<FlagBudgets, String> {
        let mut out: Vec<(Action, f64)> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (a, v) = part.split_once('=').ok_or_else(|| format!("{part:?} is not action=share"))?;
            let action = Action::FLAGS
                .into_iter()
                .find(|x| x.as_str() == a.trim())
                .ok_or_else(|| format!("{a:?} is not challenge, restrict or block"))?;
            let share: f64 = v.trim().parse().map_err(|_| format!("{v:?} in {part:?} is not a number"))?;
            if !(share > 0.0 && share < 1.0) {
                return Err(format!("{part:?}: the share must be within (0, 1), e.g. 0.005 for 0.5 %"));
            }
            if out.iter().any(|(x, _)| *x == action) {
                return Err(format!("{a} is given twice"));
            }
            out.push((action, share));
        }
        out.sort_by_key(|(a, _)| *a);
        if let Some(w) = out.windows(2).find(|w| w[1].1 > w[0].1) {
            return Err(format!(
                "{} would flag more sessions ({}) than the milder {} ({})",
                w[1].0.as_str(),
                w[1].1,
                w[0].0.as_str(),
                w[0].1
            ));
        }
        Ok(FlagBudgets(out))
    }

    pub fn shares(&self) -> impl Iterator<Item = f64> + '_ {
        self.0.iter().map(|(_, s)| *s)
    }

    /// As recorded in a model's `meta.flag_budgets` (`{"restrict": 0.005, ...}`).
    pub fn to_json(&self) -> serde_json::Value {
        self.0.iter().map(|(a, s)| (a.as_str().to_string(), serde_json::json!(s))).collect()
    }

    /// The budgets a model was trained with, if it recorded them.
    pub fn recorded(model: &models::ModelArtifact) -> Option<FlagBudgets> {
        let m = model.meta.get("flag_budgets")?.as_object()?;
        let text: Vec<String> = m.iter().filter_map(|(a, v)| Some(format!("{a}={}", v.as_f64()?))).collect();
        FlagBudgets::parse(&text.join(",")).ok()
    }

    /// Each budget checked on `sessions` at the thresholds `model` recorded for it; empty for a
    /// model that recorded none.
    pub fn check_model(model: &models::ModelArtifact, sessions: &[Session]) -> Vec<BudgetCheck> {
        let Some(budgets) = FlagBudgets::recorded(model) else { return Vec::new() };
        check(sessions, &budgets, |b| model.score_at_legit_share(b).unwrap_or(f64::INFINITY))
    }
}

/// `[share, score]` pairs over the legitimate sessions of `sessions` (highest score first, as
/// [`crate::eval::sessions`] returns them), on the shared grid plus the budgets, so a policy
/// naming one of them reads its own point rather than an interpolation.
pub fn legit_shares(sessions: &[Session], budgets: &FlagBudgets) -> Vec<[f64; 2]> {
    let legit: Vec<f64> = sessions.iter().filter(|s| !s.fraud).map(|s| s.score).collect();
    crate::eval::score_at_shares(&legit, budgets.shares())
}

/// One budget measured on a window: how many legitimate sessions the threshold really flagged,
/// and what it caught.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BudgetCheck {
    pub action: String,
    pub budget: f64,
    pub threshold: f64,
    pub legit_flagged: f64,
    pub recall: f64,
    /// Of the sessions flagged, the share labelled fraudulent.
    pub precision: f64,
    /// Fraudulent sessions with a transfer that were flagged by their first transfer's verdict
    /// or earlier: the money never left.
    pub stopped_before_first_transfer: f64,
    pub value_stopped: f64,
}

/// Each budget's threshold (`threshold_of`, the model's recorded point) applied to `sessions`.
pub fn check(sessions: &[Session], budgets: &FlagBudgets, threshold_of: impl Fn(f64) -> f64) -> Vec<BudgetCheck> {
    let share = |n: usize, d: usize| if d > 0 { n as f64 / d as f64 } else { 0.0 };
    let (legit, fraud): (Vec<&Session>, Vec<&Session>) = sessions.iter().partition(|s| !s.fraud);
    let paying: Vec<&Session> = fraud.iter().copied().filter(|s| !s.transfers.is_empty()).collect();
    let value: f64 = fraud.iter().flat_map(|s| &s.transfers).map(|t| t.1).sum();
    budgets
        .0
        .iter()
        .map(|(action, budget)| {
            let t = threshold_of(*budget);
            let reached = |v: &[&Session]| v.iter().filter(|s| s.score >= t).count();
            let held: f64 = fraud.iter().flat_map(|s| &s.transfers).filter(|x| x.0 >= t).map(|x| x.1).sum();
            BudgetCheck {
                action: action.as_str().to_string(),
                budget: *budget,
                threshold: t,
                legit_flagged: share(reached(&legit), legit.len()),
                recall: share(reached(&fraud), fraud.len()),
                precision: share(reached(&fraud), reached(&legit) + reached(&fraud)),
                stopped_before_first_transfer: share(
                    paying.iter().filter(|s| s.transfers[0].0 >= t).count(),
                    paying.len(),
                ),
                value_stopped: if value > 0.0 { held / value } else { 0.0 },
            }
        })
        .collect()
}

/// The report's section: each budget on `window`, beside the share it was set to.
pub fn section(window: &str, checks: &[BudgetCheck]) -> String {
    let mut s = format!(
        "\n## Flag budgets ({window})\n\nThresholds set on the validation window so that each action flags at most its \
         budget of legitimate sessions (policy bands with `legit_share`); here they meet newer traffic. \
         Stopped: fraudulent sessions flagged by their first transfer's verdict or earlier.\n\n\
         | action | budget | threshold | legitimate flagged | recall | precision | stopped before first transfer | value stopped |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    for c in checks {
        s += &format!(
            "| {} | {:.2} % | {:.4} | {:.2} % | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            c.action,
            c.budget * 100.0,
            c.threshold,
            c.legit_flagged * 100.0,
            c.recall,
            c.precision,
            c.stopped_before_first_transfer,
            c.value_stopped
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(score: f64, fraud: bool, transfers: Vec<(f64, f64)>) -> Session {
        Session { id: 0, score, fraud, kind: None, transfers }
    }

    #[test]
    fn budgets_parse_in_severity_order_and_refuse_what_cannot_be_meant() {
        let b = FlagBudgets::parse("block=0.001, challenge=0.02,restrict=0.005").unwrap();
        assert_eq!(b, FlagBudgets::default());
        for (bad, says) in [
            ("restrict", "action=share"),
            ("allow=0.1", "not challenge"),
            ("block=1.5", "within (0, 1)"),
            ("block=0.001,block=0.002", "twice"),
            ("challenge=0.001,block=0.01", "more sessions"),
        ] {
            let e = FlagBudgets::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_budgets_threshold_flags_at_most_that_share_of_legitimate_sessions_whatever_the_fraud() {
        // 1000 legitimate sessions scored 0.000..0.999 (highest first) and 50 fraudulent ones
        // above them all: the fraud must not eat into the legitimate budget.
        let mut s: Vec<Session> = (0..50).map(|_| session(0.9995, true, vec![])).collect();
        s.extend((0..1000).rev().map(|i| session(f64::from(i) / 1000.0, false, vec![])));
        let budgets = FlagBudgets::default();
        let pts = legit_shares(&s, &budgets);
        let at = |share: f64| pts.iter().find(|p| p[0] == share).map(|p| p[1]).unwrap();
        for (share, flagged) in [(0.001, 1), (0.005, 5), (0.02, 20)] {
            let t = at(share);
            assert_eq!(s.iter().filter(|x| !x.fraud && x.score >= t).count(), flagged, "share {share}: {t}");
        }
        let checks = check(&s, &budgets, at);
        assert_eq!(checks.iter().map(|c| c.legit_flagged).collect::<Vec<_>>(), vec![0.02, 0.005, 0.001]);
        assert!(checks.iter().all(|c| c.recall == 1.0));
    }

    #[test]
    fn money_counts_as_stopped_only_when_the_flag_came_by_the_first_transfer() {
        // Scores so far at each transfer: flagged at the first (0.9), only at the second (0.2
        // then 0.95), never (0.1).
        let s = vec![
            session(0.9, true, vec![(0.9, 100.0)]),
            session(0.95, true, vec![(0.2, 50.0), (0.95, 30.0)]),
            session(0.1, true, vec![(0.1, 20.0)]),
            session(0.0, false, vec![]),
        ];
        let only = FlagBudgets(vec![(Action::Restrict, 0.5)]);
        let c = &check(&s, &only, |_| 0.5)[0];
        assert!((c.stopped_before_first_transfer - 1.0 / 3.0).abs() < 1e-12, "{c:?}");
        assert!((c.value_stopped - 130.0 / 200.0).abs() < 1e-12, "{c:?}");
        assert!((c.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.precision - 1.0).abs() < 1e-12, "the two flagged sessions are both fraud");
        assert!(section("test window", std::slice::from_ref(c)).contains("| restrict | 50.00 % | 0.5000 |"));
    }
}
