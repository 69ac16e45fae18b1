//! `trainer evaluate`: a registered model scored on a lake's newest window whose labels are in.
//!
//! What an operator asks before trusting a model on new traffic: how does the champion do on
//! last week (drift), how does a model trained on one site's history do on another's, how does
//! it compare with an older version on the same sessions. The lake is replayed through the one
//! feature definition exactly as `trainer train` replays it; only the window's rows are kept.

use crate::dataset;
use crate::eval::Metrics;
use crate::run::{self, day};
use anyhow::Context;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct EvaluateArgs {
    /// Lake holding events/ and labels/: a directory, or `s3://BUCKET/PREFIX`.
    #[arg(long, env = "LAKE_URL", default_value = "data/lake", value_parser = lake::Lake::parse_arg)]
    pub lake: lake::Lake,
    /// Model registry directory.
    #[arg(long, env = "MODEL_REGISTRY", default_value = "data/registry")]
    pub registry: PathBuf,
    /// Version to evaluate (a directory name in the registry); the current champion if not given.
    #[arg(long, env = "EVAL_MODEL")]
    pub model: Option<String>,
    /// Another version scored on the same sessions, side by side (`current` for the champion).
    #[arg(long, env = "EVAL_AGAINST")]
    pub against: Option<String>,
    /// Days of events before the label delay to evaluate on (the newest window whose labels
    /// are in; all of the lake's history before it is replayed for the features).
    #[arg(long, env = "EVAL_DAYS", default_value_t = 7.0)]
    pub days: f64,
    /// Events younger than this (before the newest event) are left out: their labels may not be in.
    #[arg(long, env = "LABEL_DELAY_DAYS", default_value_t = 3.0)]
    pub label_delay_days: f64,
    /// Directory to write the report into (report.md, metrics.json and figures); none if not given.
    #[arg(long, env = "EVAL_OUT")]
    pub out: Option<PathBuf>,
    /// Ground truth of a simulated lake (`fixtures lake --truth FILE`): also count the flagged
    /// sessions by what really happened (legitimate look-alikes, fraud never labelled).
    #[arg(long, env = "EVAL_TRUTH")]
    pub truth: Option<PathBuf>,
}

/// What an evaluation measured.
#[derive(Debug)]
pub struct Evaluation {
    pub version: String,
    pub metrics: Metrics,
    /// The `--against` version and its metrics on the same sessions.
    pub against: Option<(String, Metrics)>,
    /// The evaluated window, epoch milliseconds.
    pub window: (i64, i64),
    pub events_read: usize,
    /// The flag budgets' thresholds against the ground truth, when `--truth` was given.
    pub truth: Vec<crate::truth::TruthCheck>,
}

/// A version named on the command line: `current` (or nothing) is the champion.
fn resolve(registry: &std::path::Path, version: Option<&str>) -> anyhow::Result<String> {
    match version {
        Some(v) if v != "current" => Ok(v.to_string()),
        _ => platform::registry::current_version(registry)?.with_context(|| {
            format!(
                "no promoted model in registry {}; name one with --model, or train one with `trainer train`",
                registry.display()
            )
        }),
    }
}

pub fn evaluate(args: &EvaluateArgs) -> anyhow::Result<Evaluation> {
    if args.days.is_nan() || args.days <= 0.0 {
        anyhow::bail!("--days must be above 0 (it is {})", args.days);
    }
    let version = resolve(&args.registry, args.model.as_deref())?;
    let model = platform::registry::load(&args.registry, &version)?;
    let against = match &args.against {
        Some(v) => {
            let v = resolve(&args.registry, Some(v))?;
            Some((platform::registry::load(&args.registry, &v)?, v))
        }
        None => None,
    };
    let opts = dataset::Options {
        cutoff: None,
        label_delay_days: Some(args.label_delay_days),
        max_train_rows: 0,
        recent_days: Some(args.days),
    };
    let ds = run::replay_lake(&args.lake, &opts)?;
    let window = ds.window.context("the evaluation window is set when the options ask for one")?;
    if ds.rows.is_empty() {
        anyhow::bail!(
            "the lake at {} has no events between {} and {} (the {} days before the {}-day label delay); \
             lower --label-delay-days or --days, or evaluate a lake with more history",
            args.lake,
            day(window.0),
            day(window.1),
            args.days,
            args.label_delay_days
        );
    }
    let rows: Vec<&dataset::Row> = ds.rows.iter().collect();
    let (sessions, metrics) = run::measure(&model, &rows);
    let against = against.map(|(m, v)| {
        let (sessions, metrics) = run::measure(&m, &rows);
        (v, sessions, metrics)
    });
    tracing::info!(
        %version,
        events = ds.events_read,
        rows = rows.len(),
        sessions = metrics.sessions,
        fraud_sessions = metrics.fraud_sessions,
        ap = metrics.average_precision,
        "evaluated"
    );
    let budgets = crate::budget::FlagBudgets::check_model(&model, &sessions);
    let truth = match &args.truth {
        Some(path) => {
            let t = crate::truth::GroundTruth::read(path)?;
            let thresholds: Vec<(String, f64)> = budgets.iter().map(|b| (b.action.clone(), b.threshold)).collect();
            crate::truth::check(&sessions, &t, &thresholds)
        }
        None => Vec::new(),
    };
    if let Some(out) = &args.out {
        let mut series = vec![(version.as_str(), sessions.as_slice())];
        if let Some((v, s, _)) = &against {
            series.push((v.as_str(), s.as_slice()));
        }
        let against_metrics = against.as_ref().map(|(v, _, m)| (v.as_str(), m));
        let other = against_metrics.map_or(("compared with", None), |(v, m)| (v, Some(m)));
        let mut report = format!(
            "# Model {version} ({}) evaluated on {}\n\n{} lake events replayed; evaluated on the sessions \
             of {} – {} (the {} days before the {}-day label delay), with the labels known at the newest event.\n\n",
            model.kind(),
            args.lake,
            ds.events_read,
            day(window.0),
            day(window.1),
            args.days,
            args.label_delay_days
        );
        report += &run::metrics_section("Evaluation window", &metrics, other);
        if !budgets.is_empty() {
            report += &crate::budget::section("evaluation window", &budgets);
        }
        if !truth.is_empty() {
            report += &crate::truth::section(&truth);
        }
        report += run::FIGURES_SECTION;
        let json = serde_json::json!({
            "version": &version,
            "lake": args.lake.to_string(),
            "window": [models::format_ts(window.0), models::format_ts(window.1)],
            "metrics": &metrics,
            "flag_budgets": &budgets,
            "ground_truth": &truth,
            "against": against_metrics.as_ref().map(|(v, m)| serde_json::json!({"version": v, "metrics": m})),
        });
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let mut files = vec![("report.md", report.into_bytes()), ("metrics.json", serde_json::to_vec_pretty(&json)?)];
        files.extend(run::figures(&series, "evaluation")?);
        for (name, bytes) in files {
            let path = out.join(name);
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(Evaluation {
        version,
        metrics,
        against: against.map(|(v, _, m)| (v, m)),
        window,
        events_read: ds.events_read,
        truth,
    })
}

/// A few lines for the terminal: the headline metrics, and the other version's beside them.
pub fn summary(e: &Evaluation) -> String {
    let line = |v: &str, m: &Metrics| {
        format!(
            "{v}: AP {:.3}, ROC AUC {:.3}, recall at 1 % FPR {:.3}, fraud value stopped {:.3}",
            m.average_precision, m.roc_auc, m.recall_at_1pct_fpr, m.fraud_value_stopped_at_1pct_fpr
        )
    };
    let mut s = format!(
        "{} sessions ({} labelled fraudulent) of {} – {}, {} lake events replayed\n{}",
        e.metrics.sessions,
        e.metrics.fraud_sessions,
        day(e.window.0),
        day(e.window.1),
        e.events_read,
        line(&e.version, &e.metrics)
    );
    if let Some((v, m)) = &e.against {
        s += &format!("\n{}", line(v, m));
    }
    for c in &e.truth {
        s += &format!(
            "\nby the ground truth, {} flags {:.2} % of legitimate sessions",
            c.action,
            c.legit_flagged * 100.0
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{ModelChoice, TrainArgs, train};
    use fixtures::sim::{SimConfig, World};

    #[test]
    fn evaluating_the_champion_on_its_own_test_window_reproduces_its_training_report() {
        let dir = tempfile::tempdir().unwrap();
        let (lake, registry) = (lake::Lake::dir(dir.path().join("lake")), dir.path().join("registry"));
        let world = World::new(SimConfig { seed: 3, customers: 400, rate_ato: 0.01, ..SimConfig::default() });
        fixtures::write_lake(&world, &lake, 1_780_000_000_000, 12).unwrap();
        let trained = train(&TrainArgs {
            label_delay_days: 2.0,
            min_improvement: 0.0,
            model: ModelChoice::Logistic,
            max_train_rows: 0,
            policy: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/policy.toml"),
            ..TrainArgs::defaults(lake.clone(), registry.clone())
        })
        .unwrap();
        let model = platform::registry::load(&registry, &trained.version).unwrap();
        let test: (i64, i64) = serde_json::from_value(model.meta["split"]["test"].clone()).unwrap();

        let out = dir.path().join("eval");
        let args = EvaluateArgs {
            lake,
            registry,
            model: None,
            against: Some("current".into()),
            days: (test.1 - test.0) as f64 / dataset::DAY_MS as f64,
            label_delay_days: 2.0,
            out: Some(out.clone()),
            truth: None,
        };
        let e = evaluate(&args).unwrap();
        assert_eq!(e.version, trained.version, "no --model is the champion");
        assert_eq!(e.window.1, test.1, "the window ends where the label delay starts");
        assert!((e.window.0 - test.0).abs() <= 1, "{:?} vs {test:?}", e.window);
        // Same rows, same features, same labels, same model: the same measurements.
        let (m, t) = (&e.metrics, &trained.test);
        assert!(m.fraud_sessions > 0, "the window holds labelled fraud: {m:?}");
        assert_eq!((m.sessions, m.fraud_sessions), (t.sessions, t.fraud_sessions));
        assert_eq!((m.average_precision, m.roc_auc), (t.average_precision, t.roc_auc));
        let (v, against) = e.against.as_ref().expect("--against was given");
        assert_eq!((v, against.average_precision), (&trained.version, t.average_precision));

        let report = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(
            report
                .contains(&format!("| average precision | {:.4} | {:.4} |", t.average_precision, t.average_precision))
        );
        // The flag budgets, set on validation, check the same on the same window.
        let budget_rows = |r: &str| -> Vec<String> {
            r.lines()
                .filter(|l| ["| challenge |", "| restrict |", "| block |"].iter().any(|a| l.starts_with(a)))
                .map(String::from)
                .collect()
        };
        let trained_report = std::fs::read_to_string(trained.dir.join("report.md")).unwrap();
        assert_eq!(budget_rows(&report).len(), 3, "{report}");
        assert_eq!(budget_rows(&report), budget_rows(&trained_report));
        assert!(trained_report.contains("## Rules (validation window)"), "{trained_report}");
        assert!(trained_report.contains("| credential_stuffing_ip | block |"), "the shipped rules are measured");
        for f in ["metrics.json", "pr.svg", "roc.svg", "scores.svg"] {
            assert!(out.join(f).metadata().unwrap().len() > 0, "{f} written");
        }
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
        assert_eq!(json["metrics"]["sessions"], m.sessions);

        let shifted = evaluate(&EvaluateArgs { days: 1.0, against: None, out: None, ..args }).unwrap();
        assert!(shifted.metrics.sessions < m.sessions, "a shorter window holds fewer sessions");
        assert!(shifted.against.is_none());
    }
}
