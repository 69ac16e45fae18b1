//! The policy file (TOML): how scores and rule hits become actions.
//!
//! ```toml
//! alert_at = "restrict"          # a session alerts the first time it reaches this action
//! restriction_ttl_secs = 3600    # default lifetime of a challenge/restrict/block
//!
//! [[band]]                       # the most severe band whose threshold the score reaches
//! min_score = 0.9
//! action = "block"
//!
//! [[band]]                       # or by flag budget: at most 0.5 % of legitimate sessions,
//! legit_share = 0.005            # by the champion's validation window
//! action = "restrict"
//! restrictions = ["transfer_funds", "add_payee"]
//!
//! [[band]]                       # or by alert volume: the top 2 % of all sessions
//! top_share = 0.02
//! action = "challenge"
//!
//! [[rule]]                       # list hits and hard rules, by code
//! code = "blacklist_ip"
//! when = "blacklist_ip"          # a list hit code, or a feature condition (see Condition)
//! action = "block"
//! ```

use models::Action;
use models::features::FEATURES;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("policy file {path} is not valid: {err}")]
    Parse { path: String, err: String },
    #[error("policy is not valid: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    /// A fixed score threshold…
    #[serde(default)]
    pub min_score: Option<f64>,
    /// …or a target share of sessions (0.01 = the top 1 %), turned into a threshold with the
    /// champion's score distribution, so a retrained model keeps the alert volume.
    #[serde(default)]
    pub top_share: Option<f64>,
    /// …or a flag budget: the share of *legitimate* sessions this band may reach (0.005 = 0.5 %),
    /// from the champion's validation window. Unlike `top_share` it does not move with the
    /// amount of fraud, so it is what a budget of bothered customers means.
    #[serde(default)]
    pub legit_share: Option<f64>,
    pub action: Action,
    #[serde(default)]
    pub restrictions: Vec<String>,
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// What a rule matches: a list hit code such as `blacklist_ip`, or `feature OP number` such as
/// `session_secs_since_payee_add < 600` (several joined by ` and `).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    ListHit(String),
    Features(Vec<(usize, Cmp, f64)>),
}

impl Condition {
    pub fn matches(&self, list_hits: &[String], features: &[f64]) -> bool {
        match self {
            Condition::ListHit(code) => list_hits.iter().any(|h| h == code),
            Condition::Features(conds) => conds.iter().all(|(i, cmp, v)| {
                let x = features.get(*i).copied().unwrap_or(f64::NAN);
                match cmp {
                    Cmp::Lt => x < *v,
                    Cmp::Le => x <= *v,
                    Cmp::Gt => x > *v,
                    Cmp::Ge => x >= *v,
                    Cmp::Eq => x == *v,
                }
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    code: String,
    when: String,
    action: Action,
    #[serde(default)]
    restrictions: Vec<String>,
    #[serde(default)]
    ttl_secs: Option<u64>,
    /// An override rule (a whitelist) sets the action even when the score says otherwise.
    #[serde(default)]
    overrides: bool,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub code: String,
    pub when: Condition,
    pub action: Action,
    pub restrictions: Vec<String>,
    pub ttl_secs: Option<u64>,
    pub overrides: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default = "default_alert")]
    alert_at: Action,
    #[serde(default = "default_ttl")]
    restriction_ttl_secs: u64,
    #[serde(default)]
    band: Vec<Band>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

fn default_alert() -> Action {
    Action::Restrict
}
fn default_ttl() -> u64 {
    3600
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub alert_at: Action,
    pub restriction_ttl_secs: u64,
    pub bands: Vec<Band>,
    pub rules: Vec<Rule>,
}

/// The outcome of the policy for one event, before session escalation.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub action: Action,
    pub restrictions: Vec<String>,
    pub ttl_secs: u64,
    /// Codes of the rules that fired.
    pub rules: Vec<String>,
}

fn is_capability(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

fn parse_condition(s: &str) -> Result<Condition, String> {
    let s = s.trim();
    if !s.contains(' ') {
        return Ok(Condition::ListHit(s.to_string()));
    }
    let mut out = Vec::new();
    for part in s.split(" and ") {
        let toks: Vec<&str> = part.split_whitespace().collect();
        let [name, op, value] = toks[..] else {
            return Err(format!("condition {part:?} must be `feature OP number`"));
        };
        let idx = FEATURES
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| format!("unknown feature {name:?} in condition {part:?}"))?;
        let cmp = match op {
            "<" => Cmp::Lt,
            "<=" => Cmp::Le,
            ">" => Cmp::Gt,
            ">=" => Cmp::Ge,
            "==" => Cmp::Eq,
            other => {
                return Err(format!("unknown comparison {other:?} in {part:?} (use < <= > >= ==)"));
            }
        };
        let v: f64 = value.parse().map_err(|_| format!("{value:?} in {part:?} is not a number"))?;
        out.push((idx, cmp, v));
    }
    Ok(Condition::Features(out))
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text =
            std::fs::read_to_string(path).map_err(|err| PolicyError::Io { path: path.display().to_string(), err })?;
        Policy::parse(&text).map_err(|e| match e {
            PolicyError::Parse { err, .. } => PolicyError::Parse { path: path.display().to_string(), err },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy =
            toml::from_str(text).map_err(|e| PolicyError::Parse { path: String::new(), err: e.to_string() })?;
        let bands = raw.band;
        for b in &bands {
            let what = format!("band {}", b.action.as_str());
            match (b.min_score, b.top_share, b.legit_share) {
                (Some(m), None, None) if (0.0..=1.0).contains(&m) => {}
                (Some(m), None, None) => {
                    return Err(PolicyError::Invalid(format!("{what}: min_score {m} must be within 0..=1")));
                }
                (None, Some(t), None) | (None, None, Some(t)) if t > 0.0 && t < 1.0 => {}
                (None, Some(t), None) | (None, None, Some(t)) => {
                    return Err(PolicyError::Invalid(format!("{what}: share {t} must be within (0, 1)")));
                }
                _ => {
                    return Err(PolicyError::Invalid(format!(
                        "{what}: set exactly one of min_score, top_share and legit_share"
                    )));
                }
            }
            check_restrictions(b.action, &b.restrictions, &what)?;
        }
        let mut rules = Vec::new();
        for r in raw.rule {
            let when = parse_condition(&r.when).map_err(|e| PolicyError::Invalid(format!("rule {}: {e}", r.code)))?;
            check_restrictions(r.action, &r.restrictions, &format!("rule {}", r.code))?;
            rules.push(Rule {
                code: r.code,
                when,
                action: r.action,
                restrictions: r.restrictions,
                ttl_secs: r.ttl_secs,
                overrides: r.overrides,
            });
        }
        Ok(Policy { alert_at: raw.alert_at, restriction_ttl_secs: raw.restriction_ttl_secs, bands, rules })
    }

    /// Each band's score threshold for `model` (resolving `top_share` and `legit_share` bands
    /// with its recorded score distributions). Fails if such a band meets a model that has no
    /// distribution of that kind.
    pub fn thresholds(&self, model: &models::ModelArtifact) -> Result<Vec<f64>, PolicyError> {
        self.bands
            .iter()
            .map(|b| {
                let (resolved, key) = match (b.min_score, b.top_share, b.legit_share) {
                    (Some(m), _, _) => return Ok(m),
                    (None, Some(t), _) => (model.score_at_top_share(t), "top_share"),
                    (None, None, Some(t)) => (model.score_at_legit_share(t), "legit_share"),
                    (None, None, None) => return Ok(1.0),
                };
                resolved.ok_or_else(|| {
                    PolicyError::Invalid(format!(
                        "band {} uses {key} but model {} records no such score distribution; retrain it",
                        b.action.as_str(),
                        model.version
                    ))
                })
            })
            .collect()
    }

    /// The flag budget of each action that a `legit_share` band sets (the share of legitimate
    /// sessions it may reach), for the scorer's live rate to be compared with.
    pub fn budgets(&self) -> Vec<(Action, f64)> {
        self.bands.iter().filter_map(|b| Some((b.action, b.legit_share?))).collect()
    }

    /// Applies rules and bands: the most severe applicable action wins, unless an override
    /// rule (a whitelist) fired, in which case the override's action stands. `thresholds` are
    /// the bands' thresholds from [`Policy::thresholds`].
    pub fn decide(&self, thresholds: &[f64], score: f64, list_hits: &[String], features: &[f64]) -> Decision {
        let mut d = Decision {
            action: Action::Allow,
            restrictions: Vec::new(),
            ttl_secs: self.restriction_ttl_secs,
            rules: Vec::new(),
        };
        let merge = |action: Action, restrictions: &[String], ttl: Option<u64>, d: &mut Decision| {
            if action > d.action {
                d.action = action;
                d.ttl_secs = ttl.unwrap_or(self.restriction_ttl_secs);
            }
            for r in restrictions {
                if !d.restrictions.contains(r) {
                    d.restrictions.push(r.clone());
                }
            }
        };
        // The most severe band the score reaches.
        if let Some(b) =
            self.bands.iter().zip(thresholds).filter(|(_, t)| score >= **t).map(|(b, _)| b).max_by_key(|b| b.action)
        {
            merge(b.action, &b.restrictions, b.ttl_secs, &mut d);
        }
        let mut overridden = None;
        for r in &self.rules {
            if r.when.matches(list_hits, features) {
                d.rules.push(r.code.clone());
                if r.overrides {
                    overridden = Some(r);
                } else {
                    merge(r.action, &r.restrictions, r.ttl_secs, &mut d);
                }
            }
        }
        if let Some(r) = overridden {
            d.action = r.action;
            d.restrictions = r.restrictions.clone();
            d.ttl_secs = r.ttl_secs.unwrap_or(self.restriction_ttl_secs);
        }
        if d.action != Action::Restrict {
            d.restrictions.clear();
        }
        d
    }
}

fn check_restrictions(action: Action, restrictions: &[String], what: &str) -> Result<(), PolicyError> {
    if action == Action::Restrict && restrictions.is_empty() {
        return Err(PolicyError::Invalid(format!("{what}: action restrict needs a non-empty `restrictions` list")));
    }
    if let Some(bad) = restrictions.iter().find(|r| !is_capability(r)) {
        return Err(PolicyError::Invalid(format!("{what}: restriction {bad:?} must match ^[a-z][a-z0-9_]{{0,63}}$")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = r#"
        alert_at = "restrict"
        [[band]]
        min_score = 0.5
        action = "restrict"
        restrictions = ["transfer_funds"]
        [[band]]
        min_score = 0.9
        action = "block"
        [[rule]]
        code = "blacklist_ip"
        when = "blacklist_ip"
        action = "block"
        [[rule]]
        code = "whitelist_user"
        when = "whitelist_user"
        action = "allow"
        overrides = true
        [[rule]]
        code = "fresh_payee_transfer"
        when = "session_payee_added_here == 1 and user_device_new == 1"
        action = "restrict"
        restrictions = ["transfer_funds", "add_payee"]
    "#;

    #[test]
    fn bands_rules_and_overrides_pick_the_expected_action() {
        let p = Policy::parse(P).unwrap();
        let t = [0.5, 0.9];
        let zeros = vec![0.0; FEATURES.len()];
        assert_eq!(p.decide(&t, 0.1, &[], &zeros).action, Action::Allow);
        let d = p.decide(&t, 0.6, &[], &zeros);
        assert_eq!((d.action, d.restrictions.as_slice()), (Action::Restrict, &["transfer_funds".to_string()][..]));
        assert_eq!(p.decide(&t, 0.95, &[], &zeros).action, Action::Block);
        let d = p.decide(&t, 0.1, &["blacklist_ip".into()], &zeros);
        assert_eq!((d.action, d.rules.as_slice()), (Action::Block, &["blacklist_ip".to_string()][..]));
        assert_eq!(p.decide(&t, 0.95, &["whitelist_user".into()], &zeros).action, Action::Allow);
        let mut f = zeros.clone();
        f[models::features::F::SessionPayeeAddedHere as usize] = 1.0;
        f[models::features::F::UserDeviceNew as usize] = 1.0;
        let d = p.decide(&t, 0.0, &[], &f);
        assert_eq!(d.action, Action::Restrict);
        assert_eq!(d.restrictions, vec!["transfer_funds", "add_payee"]);
    }

    #[test]
    fn invalid_policies_are_refused_with_the_reason() {
        let e = Policy::parse("[[band]]\nmin_score = 2.0\naction = \"block\"").unwrap_err().to_string();
        assert!(e.contains("min_score"), "{e}");
        let e = Policy::parse("[[band]]\nmin_score = 0.5\naction = \"restrict\"").unwrap_err().to_string();
        assert!(e.contains("restrictions"), "{e}");
        let e =
            Policy::parse("[[rule]]\ncode = \"x\"\nwhen = \"nope > 1\"\naction = \"block\"").unwrap_err().to_string();
        assert!(e.contains("unknown feature"), "{e}");
        let e = Policy::parse("[[band]]\nmin_score = 0.5\naction = \"explode\"").unwrap_err().to_string();
        assert!(e.contains("explode"), "{e}");
        let e =
            Policy::parse("[[band]]\nmin_score = 0.5\ntop_share = 0.1\naction = \"block\"").unwrap_err().to_string();
        assert!(e.contains("exactly one"), "{e}");
    }

    #[test]
    fn a_top_share_band_takes_its_threshold_from_the_models_score_distribution() {
        let p = Policy::parse("[[band]]\ntop_share = 0.01\naction = \"challenge\"").unwrap();
        let mut model: models::ModelArtifact = serde_json::from_value(serde_json::json!({
            "version": "v", "feature_schema": "x", "feature_names": [], "created_at": "",
            "model": {"kind": "logistic", "mean": [], "scale": [], "coef": [], "intercept": 0.0},
            "meta": {"session_score_top_shares": [[0.005, 0.8], [0.02, 0.4]]}
        }))
        .unwrap();
        let t = p.thresholds(&model).unwrap();
        assert!((t[0] - (0.8 - 0.4 * (0.005 / 0.015))).abs() < 1e-9, "{t:?}");
        let zeros = vec![0.0; FEATURES.len()];
        assert_eq!(p.decide(&t, 0.7, &[], &zeros).action, Action::Challenge);
        assert_eq!(p.decide(&t, 0.6, &[], &zeros).action, Action::Allow);
        model.meta = serde_json::Value::Null;
        assert!(p.thresholds(&model).unwrap_err().to_string().contains("retrain"));
    }

    #[test]
    fn a_legit_share_band_reads_the_legitimate_distribution_not_the_overall_one() {
        let p = Policy::parse(
            "[[band]]\nlegit_share = 0.005\naction = \"restrict\"\nrestrictions = [\"transfer_funds\"]\n\
             [[band]]\nmin_score = 0.99\naction = \"block\"",
        )
        .unwrap();
        assert_eq!(p.budgets(), vec![(Action::Restrict, 0.005)], "only legit_share bands set a budget");
        let mut model: models::ModelArtifact = serde_json::from_value(serde_json::json!({
            "version": "v", "feature_schema": "x", "feature_names": [], "created_at": "",
            "model": {"kind": "logistic", "mean": [], "scale": [], "coef": [], "intercept": 0.0},
            "meta": {"session_score_top_shares": [[0.005, 0.9]]}
        }))
        .unwrap();
        let e = p.thresholds(&model).unwrap_err().to_string();
        assert!(e.contains("legit_share") && e.contains("retrain"), "{e}");
        model.meta[models::artifact::LEGIT_SHARES] = serde_json::json!([[0.001, 0.7], [0.005, 0.55]]);
        assert_eq!(p.thresholds(&model).unwrap(), vec![0.55, 0.99]);
        let e = Policy::parse("[[band]]\nlegit_share = 0.01\ntop_share = 0.01\naction = \"challenge\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("exactly one"), "{e}");
        let e = Policy::parse("[[band]]\nlegit_share = 1.5\naction = \"challenge\"").unwrap_err().to_string();
        assert!(e.contains("(0, 1)"), "{e}");
    }

    /// The repository's policy, and band thresholds a score of 0 never reaches: only the rules act.
    fn shipped_rules_only() -> (Policy, Vec<f64>) {
        let path =
            Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("../config/policy.toml");
        let p = Policy::load(&path).unwrap();
        let t = vec![1.0; p.bands.len()];
        (p, t)
    }

    #[test]
    fn the_shipped_policy_is_valid() {
        let (p, _) = shipped_rules_only();
        assert!(!p.bands.is_empty() && p.rules.iter().any(|r| r.code == "blacklist_ip"));
    }

    #[test]
    fn the_shipped_bands_are_flag_budgets_that_the_baseline_model_resolves_in_severity_order() {
        let (p, _) = shipped_rules_only();
        assert_eq!(p.budgets(), vec![(Action::Block, 0.001), (Action::Restrict, 0.005), (Action::Challenge, 0.02)]);
        let baseline = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/baseline");
        let model = platform::registry::load_current(&baseline).unwrap();
        let t = p.thresholds(&model).unwrap();
        assert!(t[0] >= t[1] && t[1] >= t[2] && t[2] > 0.0, "a stricter budget needs a higher score: {t:?}");
    }

    #[test]
    fn the_shipped_policy_blocks_a_stuffing_wave_on_rotating_addresses_but_not_a_customers_retries() {
        use models::features::Replayer;
        use models::{ClickEvent, Outcome};
        let (p, t) = shipped_rules_only();
        let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0";
        let t0 = 1_780_000_000_000;
        let login = |n: i64, user: &str, ip: [u8; 4], ok: bool| ClickEvent {
            user_id: Some(user.into()),
            user_agent: Some(ua.into()),
            outcome: Some(if ok { Outcome::Success } else { Outcome::Failure }),
            ..ClickEvent::new(&format!("e{n}"), t0 + n * 1_000, &format!("s{n}"), "login", ip.into())
        };
        let mut replay = Replayer::default();
        let mut decide = |ev: &ClickEvent| p.decide(&t, 0.0, &[], &replay.replay(ev).0);
        // A customer who has logged in from home before forgets the password six times.
        assert_eq!(decide(&login(0, "alice", [81, 2, 3, 4], true)).action, Action::Allow);
        for n in 1..=6 {
            assert_eq!(decide(&login(n, "alice", [81, 2, 3, 4], false)).action, Action::Allow, "retry {n}");
        }
        // A wave: each of its addresses tries one user, with the customer's very agent.
        let mut actions = Vec::new();
        for n in 10..20 {
            let d = decide(&login(n, &format!("victim{n}"), [185, 220, n as u8, 1], false));
            actions.push(d.action);
        }
        // Alice counts once among the users who failed, so the wave's fifth attempt sees five.
        assert!(actions[..4].iter().all(|a| *a == Action::Allow), "{actions:?}");
        assert!(actions[4..].iter().all(|a| *a == Action::Block), "{actions:?}");
        let d = decide(&login(20, "victim20", [185, 221, 0, 1], false));
        // victim20 has never been seen here either (as with most names a wave tries).
        assert_eq!(d.rules, vec!["credential_stuffing_agent", "credential_stuffing_agent_unknown_account"]);
        // One of its hits: stepped up, not blocked.
        let d = decide(&login(21, "bob", [185, 221, 1, 1], true));
        assert_eq!(
            (d.action, d.rules.as_slice()),
            (Action::Challenge, &["credential_stuffing_agent_hit".to_string()][..])
        );
        // The customer, from home, during the wave: an address the customer used before.
        assert_eq!(decide(&login(22, "alice", [81, 2, 3, 4], false)).action, Action::Allow);
        assert_eq!(decide(&login(23, "alice", [81, 2, 3, 4], true)).action, Action::Allow);
    }

    #[test]
    fn the_shipped_policy_blocks_a_wave_whose_attempts_name_no_user() {
        use models::features::Replayer;
        use models::{ClickEvent, Outcome};
        let (p, t) = shipped_rules_only();
        let t0 = 1_780_000_000_000;
        // A site that names the user only once logged in; each attempt its own session and address.
        let attempt = |n: i64, ok: bool| ClickEvent {
            user_id: ok.then(|| format!("victim{n}")),
            user_agent: Some("python-requests/2.32".into()),
            outcome: Some(if ok { Outcome::Success } else { Outcome::Failure }),
            ..ClickEvent::new(
                &format!("e{n}"),
                t0 + n * 1_000,
                &format!("s{n}"),
                "login",
                [185, 220, n as u8, 1].into(),
            )
        };
        let mut replay = Replayer::default();
        let actions: Vec<(Action, Vec<String>)> = (0..10)
            .map(|n| {
                let d = p.decide(&t, 0.0, &[], &replay.replay(&attempt(n, false)).0);
                (d.action, d.rules)
            })
            .collect();
        assert!(actions[..5].iter().all(|(a, _)| *a == Action::Allow), "{actions:?}");
        let blocked = (Action::Block, vec!["credential_stuffing_agent_unknown_account".to_string()]);
        assert!(actions[5..].iter().all(|a| *a == blocked), "from the sixth attempt on: {actions:?}");
        // A hit of the wave: a successful login that names its user, from an address new to it.
        let d = p.decide(&t, 0.0, &[], &replay.replay(&attempt(10, true)).0);
        assert_eq!((d.action, d.rules), (Action::Challenge, vec!["credential_stuffing_agent_hit".to_string()]));
    }

    #[test]
    fn the_shipped_policy_challenges_a_fresh_payees_payment_from_a_new_device_but_not_from_no_device() {
        use models::ClickEvent;
        use models::features::Replayer;
        let (p, t) = shipped_rules_only();
        let t0 = 1_780_000_000_000;
        // A session that logs in, adds a payee and pays it within minutes.
        let session = |sid: &str, device: Option<&str>| {
            [("login", 0), ("add_payee", 60), ("transfer", 120)].map(|(kind, secs)| ClickEvent {
                user_id: Some("alice".into()),
                device_id: device.map(Into::into),
                user_agent: Some("Mozilla/5.0 (Macintosh) Safari/605.1".into()),
                payee_id: Some("p-new".into()),
                amount: (kind == "transfer").then_some(900.0),
                ..ClickEvent::new(&format!("{sid}-{kind}"), t0 + secs * 1000, sid, kind, [81, 2, 3, 4].into())
            })
        };
        let actions = |events: [ClickEvent; 3]| {
            let mut replay = Replayer::default();
            events.map(|ev| p.decide(&t, 0.0, &[], &replay.replay(&ev).0))
        };
        let [login, add, pay] = actions(session("s1", Some("d-new-phone")));
        assert_eq!((login.action, add.action), (Action::Allow, Action::Allow));
        assert_eq!(pay.action, Action::Challenge, "a step-up, not a restriction: cold history makes it common {pay:?}");
        assert_eq!(pay.rules, vec!["new_device_fresh_payee_transfer"]);
        // A site that sends no device ids: nothing says the device is new.
        let [_, _, pay] = actions(session("s2", None));
        assert_eq!(pay.action, Action::Allow, "{pay:?}");
    }
}
