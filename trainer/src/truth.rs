//! Ground truth from a simulator (`fixtures lake --truth FILE`), for what labels cannot tell:
//! how many of the sessions a threshold flags are really legitimate (unlabelled fraud is not),
//! which legitimate look-alikes it bothers, and which fraud families it misses although they
//! were never labelled. `trainer evaluate --truth` adds it to the evaluation's report.

use crate::eval::Session;
use anyhow::Context;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Per session (by the hash rows carry): its family (`legit` or a fraud family), look-alike
/// and id.
#[derive(Debug)]
pub struct GroundTruth(HashMap<u64, (String, Option<String>, String)>);

impl GroundTruth {
    /// Reads a truth file: one JSON object per line with `session_id`, `family` (`legit`, a
    /// fraud family, or `mule_account` for a money mule's ordinary sessions: blocking a
    /// confirmed mule is right) and `lookalike`.
    pub fn read(path: &Path) -> anyhow::Result<GroundTruth> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut m = HashMap::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let at = || format!("{} line {}", path.display(), i + 1);
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}: not JSON (a truth file from `fixtures lake --truth`?)", at()))?;
            let sid = v["session_id"].as_str().with_context(|| format!("{}: no session_id", at()))?;
            let family = v["family"].as_str().unwrap_or("legit").to_string();
            let lookalike = v["lookalike"].as_str().map(str::to_string);
            m.insert(crate::dataset::session_hash(sid), (family, lookalike, sid.to_string()));
        }
        Ok(GroundTruth(m))
    }
}

/// One threshold measured against the truth.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TruthCheck {
    pub action: String,
    pub threshold: f64,
    /// Legitimate sessions (by the truth) flagged, over all legitimate sessions.
    pub legit_flagged: f64,
    /// Per look-alike of legitimate sessions, and per fraud family: (flagged, sessions).
    pub lookalikes: BTreeMap<String, (usize, usize)>,
    pub families: BTreeMap<String, (usize, usize)>,
    /// The highest-scoring legitimate sessions this threshold flags (id, score), at most ten:
    /// where to look first.
    pub worst_legit: Vec<(String, f64)>,
}

/// Each `(action, threshold)` applied to `sessions`, counted by the truth. Sessions the truth
/// does not know are left out.
pub fn check(sessions: &[Session], truth: &GroundTruth, thresholds: &[(String, f64)]) -> Vec<TruthCheck> {
    thresholds
        .iter()
        .map(|(action, t)| {
            let (mut legit, mut legit_hit) = (0usize, 0usize);
            let (mut lookalikes, mut families) = (BTreeMap::new(), BTreeMap::new());
            for s in sessions {
                let Some((family, lookalike, _)) = truth.0.get(&s.id) else { continue };
                let hit = usize::from(s.score >= *t);
                if family == "legit" {
                    legit += 1;
                    legit_hit += hit;
                    if let Some(l) = lookalike {
                        let e: &mut (usize, usize) = lookalikes.entry(l.clone()).or_default();
                        (e.0, e.1) = (e.0 + hit, e.1 + 1);
                    }
                } else {
                    let e: &mut (usize, usize) = families.entry(family.clone()).or_default();
                    (e.0, e.1) = (e.0 + hit, e.1 + 1);
                }
            }
            let legit_flagged = if legit > 0 { legit_hit as f64 / legit as f64 } else { 0.0 };
            let mut worst: Vec<(String, f64)> = sessions
                .iter()
                .filter(|s| s.score >= *t)
                .filter_map(|s| {
                    truth.0.get(&s.id).filter(|(f, _, _)| f == "legit").map(|(_, _, id)| (id.clone(), s.score))
                })
                .collect();
            worst.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            worst.truncate(10);
            TruthCheck {
                action: action.clone(),
                threshold: *t,
                legit_flagged,
                lookalikes,
                families,
                worst_legit: worst,
            }
        })
        .collect()
}

/// The report's section.
pub fn section(checks: &[TruthCheck]) -> String {
    let mut s = "\n## Against the simulator's ground truth\n\nThe same thresholds, with sessions counted by what \
                 really happened (unlabelled fraud is fraud here): legitimate sessions flagged, per legitimate \
                 look-alike, and recall per fraud family (flagged / sessions); a mule account's sessions other than its \
                 cash-outs count as `mule_account` (the simulator's truth says so), not as a customer's.\n\n"
        .to_string();
    let heads: Vec<String> = checks.iter().map(|c| format!("{} (≥ {:.4})", c.action, c.threshold)).collect();
    s += &format!("| | {} |\n|---|{}\n", heads.join(" | "), "---|".repeat(checks.len()));
    s += &format!(
        "| legitimate sessions flagged | {} |\n",
        checks.iter().map(|c| format!("{:.2} %", c.legit_flagged * 100.0)).collect::<Vec<_>>().join(" | ")
    );
    let mut row = |name: &str, get: &dyn Fn(&TruthCheck) -> Option<(usize, usize)>| {
        let cells: Vec<String> =
            checks.iter().map(|c| get(c).map_or("–".into(), |(h, n)| format!("{h}/{n}"))).collect();
        s += &format!("| {name} | {} |\n", cells.join(" | "));
    };
    let first = checks.first();
    for l in first.map(|c| c.lookalikes.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
        row(&format!("look-alike {l}"), &|c| c.lookalikes.get(&l).copied());
    }
    for f in first.map(|c| c.families.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
        row(&format!("fraud {f}"), &|c| c.families.get(&f).copied());
    }
    if let Some(c) = checks.iter().find(|c| !c.worst_legit.is_empty()) {
        let list: Vec<String> = c.worst_legit.iter().map(|(id, score)| format!("`{id}` ({score:.4})")).collect();
        s += &format!("\nHighest-scoring legitimate sessions at {}: {}.\n", c.action, list.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_truth_counts_unlabelled_fraud_as_fraud_and_legitimate_look_alikes_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("truth.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"session_id":"a","family":"legit","lookalike":"new_device"}"#,
                "\n",
                r#"{"session_id":"b","family":"legit"}"#,
                "\n",
                r#"{"session_id":"c","family":"credential_stuffing"}"#,
                "\n",
                r#"{"session_id":"m1","user_id":"mule","family":"mule_cashout"}"#,
                "\n",
                r#"{"session_id":"m2","user_id":"mule","family":"mule_account"}"#,
                "\n",
            ),
        )
        .unwrap();
        let truth = GroundTruth::read(&path).unwrap();
        let h = crate::dataset::session_hash;
        // c is unlabelled (fraud: false) but the truth knows better; d is not in the truth.
        let s = |id: &str, score: f64| Session { id: h(id), score, fraud: false, kind: None, transfers: vec![] };
        let sessions = [s("a", 0.9), s("b", 0.1), s("c", 0.8), s("d", 0.99), s("m2", 0.95)];
        let c = &check(&sessions, &truth, &[("restrict".into(), 0.5)])[0];
        assert_eq!(c.legit_flagged, 0.5, "a of a and b");
        assert_eq!(c.lookalikes["new_device"], (1, 1));
        assert_eq!(c.families["credential_stuffing"], (1, 1));
        assert_eq!(c.families["mule_account"], (1, 1), "a mule's other sessions are not legitimate");
        assert_eq!(c.worst_legit, vec![("a".to_string(), 0.9)], "d is flagged but unknown to the truth");
        let text = section(std::slice::from_ref(c));
        assert!(
            text.contains("| legitimate sessions flagged | 50.00 % |")
                && text.contains("| fraud credential_stuffing | 1/1 |"),
            "{text}"
        );
        assert!(GroundTruth::read(&dir.path().join("none")).unwrap_err().to_string().contains("reading"));
    }
}
