//! Rules earn their place: each feature rule of the policy measured on the validation window.
//!
//! A hard rule acts whatever the model says, so it must be at least as precise as the band it
//! outranks. A rule can look sharp on the site it was written for and fire on everyone
//! elsewhere: "a payee added minutes ago, paid from a device first seen within the hour" is true
//! of every new customer while the history is cold. The report lists each rule's sessions
//! (labelled fraudulent against presumed legitimate) and its precision beside the restrict
//! band's, and says which rules to demote.

use crate::dataset::Row;
use models::Action;
use scorer::policy::{Condition, Policy};
use serde::Serialize;
use std::collections::HashSet;

/// One rule's hits on a window, counted by session.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleCheck {
    pub code: String,
    pub action: String,
    pub fraud_sessions: usize,
    pub legit_sessions: usize,
    pub precision: f64,
    /// Acts at restrict or above with a precision below the restrict band's: demote it.
    pub demote: bool,
}

/// The policy's feature rules (list rules need the lists, which the lake does not hold) on
/// `rows`; `band_precision` is the restrict band's precision on the same window.
pub fn check(policy: &Policy, rows: &[&Row], band_precision: f64) -> Vec<RuleCheck> {
    let rules: Vec<_> =
        policy.rules.iter().filter(|r| !r.overrides && matches!(r.when, Condition::Features(_))).collect();
    let mut hits: Vec<HashSet<u64>> = vec![HashSet::new(); rules.len()];
    let mut x = Vec::with_capacity(crate::dataset::N_FEATURES);
    for row in rows {
        x.clear();
        x.extend(row.x.iter().map(|v| f64::from(*v)));
        for (r, h) in rules.iter().zip(hits.iter_mut()) {
            if r.when.matches(&[], &x) {
                h.insert(row.session);
            }
        }
    }
    // A session is fraudulent if any of its rows is (a rule may fire before the label's event).
    let fraud: HashSet<u64> = rows.iter().filter(|r| r.fraud).map(|r| r.session).collect();
    rules
        .iter()
        .zip(hits)
        .map(|(r, h)| {
            let f = h.iter().filter(|s| fraud.contains(s)).count();
            let l = h.len() - f;
            let precision = if h.is_empty() { 0.0 } else { f as f64 / h.len() as f64 };
            RuleCheck {
                code: r.code.clone(),
                action: r.action.as_str().to_string(),
                fraud_sessions: f,
                legit_sessions: l,
                precision,
                demote: r.action >= Action::Restrict && !h.is_empty() && precision < band_precision,
            }
        })
        .collect()
}

/// The report's section.
pub fn section(window: &str, checks: &[RuleCheck], band_precision: f64, policy_note: &str) -> String {
    let mut s = format!(
        "\n## Rules ({window})\n\n{policy_note} Sessions where each feature rule fired, labelled fraudulent \
         against unlabelled (presumed legitimate); a rule that restricts or blocks should be at least as precise \
         as the restrict band ({band_precision:.3} here), or be demoted to a challenge or left to the model. \
         Unlabelled is not legitimate for a family that is labelled in part (one report for a whole credential \
         stuffing wave): check such a rule against the ground truth of a simulation before demoting it.\n\n"
    );
    if checks.is_empty() {
        return s + "No feature rules in the policy.\n";
    }
    s += "| rule | action | fraudulent sessions | legitimate sessions | precision | verdict |\n|---|---|---|---|---|---|\n";
    for c in checks {
        let verdict = if c.demote {
            "**demote**: less precise than the restrict band on the labels known"
        } else if c.fraud_sessions + c.legit_sessions == 0 {
            "did not fire"
        } else {
            "keeps its place"
        };
        s += &format!(
            "| {} | {} | {} | {} | {:.3} | {verdict} |\n",
            c.code, c.action, c.fraud_sessions, c.legit_sessions, c.precision
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::features::F;

    fn row(session: u64, fraud: bool, set: &[(F, f32)]) -> Row {
        let mut x = [0.0; crate::dataset::N_FEATURES];
        for (f, v) in set {
            x[*f as usize] = *v;
        }
        Row { ts: 0, session, fraud, kind: None, transfer_value: 0.0, x }
    }

    #[test]
    fn a_restricting_rule_less_precise_than_the_band_is_marked_for_demotion() {
        let policy = Policy::parse(
            r#"
            [[rule]]
            code = "loose"
            when = "user_device_new == 1"
            action = "restrict"
            restrictions = ["transfer_funds"]
            [[rule]]
            code = "sharp"
            when = "is_login_failure == 1"
            action = "block"
            [[rule]]
            code = "mild"
            when = "user_device_new == 1"
            action = "challenge"
            [[rule]]
            code = "listed"
            when = "blacklist_ip"
            action = "block"
            "#,
        )
        .unwrap();
        // Sessions 1-4 on new devices (one fraudulent, firing on two of its rows); session 5
        // fails a login and is fraudulent; session 6 does nothing.
        let rows = [
            row(1, true, &[(F::UserDeviceNew, 1.0)]),
            row(1, true, &[(F::UserDeviceNew, 1.0)]),
            row(2, false, &[(F::UserDeviceNew, 1.0)]),
            row(3, false, &[(F::UserDeviceNew, 1.0)]),
            row(4, false, &[(F::UserDeviceNew, 1.0)]),
            row(5, true, &[(F::IsLoginFailure, 1.0)]),
            row(6, false, &[]),
        ];
        let refs: Vec<&Row> = rows.iter().collect();
        let c = check(&policy, &refs, 0.5);
        let codes: Vec<&str> = c.iter().map(|c| c.code.as_str()).collect();
        assert_eq!(codes, ["loose", "sharp", "mild"], "list rules are not measurable offline");
        assert_eq!((c[0].fraud_sessions, c[0].legit_sessions, c[0].precision, c[0].demote), (1, 3, 0.25, true));
        assert_eq!((c[1].fraud_sessions, c[1].legit_sessions, c[1].demote), (1, 0, false));
        assert!(!c[2].demote, "a challenge is what a demoted rule becomes");
        let s = section("validation window", &c, 0.5, "");
        assert!(s.contains("| loose | restrict | 1 | 3 | 0.250 | **demote**"), "{s}");
    }
}
