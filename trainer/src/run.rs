//! `trainer train` end to end: dataset → fit → calibrate → evaluate → register → promote?

use crate::budget::{self, FlagBudgets};
use crate::dataset::{self, Row, Split};
use crate::eval::{self, Metrics};
use crate::train::{self, Params};
use crate::{gbdt, plots};
use anyhow::Context;
use models::ModelArtifact;
use models::artifact::Model;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Lake holding events/ and labels/ (contract layout): a directory, or `s3://BUCKET/PREFIX`
    /// (credentials and endpoint from the `AWS_*` environment variables).
    #[arg(long, env = "LAKE_URL", default_value = "data/lake", value_parser = lake::Lake::parse_arg)]
    pub lake: lake::Lake,
    /// Model registry directory.
    #[arg(long, env = "MODEL_REGISTRY", default_value = "data/registry")]
    pub registry: PathBuf,
    /// Events younger than this (before the cut-off) are left out: their labels may not be in yet.
    /// Older unlabelled sessions weigh as legitimate by the share of fraud labels that arrive
    /// within their age, measured on the lake (the report shows the delays per source).
    #[arg(long, env = "LABEL_DELAY_DAYS", default_value_t = 3.0)]
    pub label_delay_days: f64,
    /// Promote only if average precision beats the champion's on the same test window by this.
    #[arg(long, env = "PROMOTION_MARGIN", default_value_t = 0.0)]
    pub min_improvement: f64,
    /// L2 regularisation of the logistic regression.
    #[arg(long, env = "LOGISTIC_ALPHA", default_value_t = 1.0)]
    pub alpha: f64,
    /// Model families to fit; `auto` fits both and keeps the one with the better validation AP.
    #[arg(long, env = "MODEL_KIND", value_enum, default_value_t = ModelChoice::Auto)]
    pub model: ModelChoice,
    /// Most trees in the boosted ensemble (early stopping on validation usually ends sooner).
    #[arg(long, env = "BOOSTED_TREES", default_value_t = gbdt::Params::default().trees)]
    pub trees: usize,
    /// Depth of each boosted tree.
    #[arg(long, env = "BOOSTED_DEPTH", default_value_t = gbdt::Params::default().depth)]
    pub depth: usize,
    /// Shrinkage of each boosted tree's values.
    #[arg(long, env = "BOOSTED_LEARNING_RATE", default_value_t = gbdt::Params::default().learning_rate)]
    pub learning_rate: f64,
    /// Smallest hessian sum a boosted tree's leaf may hold.
    #[arg(long, env = "BOOSTED_MIN_CHILD_WEIGHT", default_value_t = gbdt::Params::default().min_child_weight)]
    pub min_child_weight: f64,
    /// Boosting stops after this many trees without a better validation average precision
    /// (session level), and keeps the best prefix.
    #[arg(long, env = "BOOSTED_PATIENCE", default_value_t = gbdt::Params::default().patience)]
    pub patience: usize,
    /// Bounds memory and fit time: at most about this many training rows (0: all). Legitimate
    /// sessions are sampled whole, fraudulent ones always kept; validation and test are not
    /// sampled. Memory is about 300 bytes a kept row plus the replay's history (see README).
    #[arg(long, env = "MAX_TRAIN_ROWS", default_value_t = 1_500_000)]
    pub max_train_rows: usize,
    /// Share of legitimate sessions each action may flag (`action=share,...`). The trainer
    /// records the scores that meet them on validation; policy bands with `legit_share` use them.
    #[arg(long, env = "FLAG_BUDGETS", default_value = "challenge=0.02,restrict=0.005,block=0.001", value_parser = FlagBudgets::parse)]
    pub flag_budgets: FlagBudgets,
    /// The scorer's policy, whose feature rules the report measures on the validation window
    /// (hits, precision against the restrict band's). Left out of the report if the file is absent.
    #[arg(long, env = "POLICY_FILE", default_value = "config/policy.toml")]
    pub policy: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub version: String,
    pub events_read: usize,
    pub promoted: bool,
    pub why: String,
    pub test: Metrics,
    pub champion_test: Option<Metrics>,
    pub dir: PathBuf,
}

fn score_rows(m: &ModelArtifact, rows: &[&Row]) -> Vec<f64> {
    rows.iter().map(|r| m.score(&train::features_of(r)).score).collect()
}

/// `model`'s sessions over `rows` (a session scored by its highest event) and their metrics.
pub(crate) fn measure(model: &ModelArtifact, rows: &[&Row]) -> (Vec<eval::Session>, Metrics) {
    let sessions = eval::sessions(rows, &score_rows(model, rows));
    let metrics = eval::metrics(&sessions);
    (sessions, metrics)
}

/// Replays `lake` through the feature definition ([`dataset::build`]), with a progress bar on a
/// terminal and a log line per partition.
pub(crate) fn replay_lake(lake: &lake::Lake, opts: &dataset::Options) -> anyhow::Result<dataset::Dataset> {
    let parts = lake.partitions(lake::EVENTS).unwrap_or_default().len();
    let bar = progress_bar(parts as u64, "replay");
    let ds = dataset::build(lake, opts, |date, n| {
        bar.inc(1);
        tracing::info!(date, events = n, "replayed partition");
    })?;
    bar.finish_and_clear();
    Ok(ds)
}

fn new_version(registry: &Path) -> String {
    let base = format!("m{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    let mut v = base.clone();
    let mut n = 1;
    while registry.join(&v).exists() {
        n += 1;
        v = format!("{base}-{n}");
    }
    v
}

impl TrainArgs {
    /// The command line's defaults (and environment), for `lake` and `registry`: what a test
    /// or a tool starts from before it overrides a setting.
    pub fn defaults(lake: lake::Lake, registry: std::path::PathBuf) -> TrainArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: TrainArgs,
        }
        let args = <Cli as clap::Parser>::try_parse_from(["trainer"]).expect("every setting has a default").args;
        TrainArgs { lake, registry, ..args }
    }
}

/// Trains once and records the run (whatever its outcome) in the registry's trainer status,
/// which the scorer exports as metrics.
pub fn train(args: &TrainArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let result = train_once(args);
    let (outcome, version, events_read, test_metrics, why) = match &result {
        Ok(o) => {
            let metrics = serde_json::to_value(&o.test)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| v.as_f64().map(|v| (k, v)))
                .collect();
            let outcome = if o.promoted { "promoted" } else { "challenger" };
            (outcome, Some(o.version.clone()), o.events_read as u64, metrics, o.why.clone())
        }
        Err(e) => ("failed", None, 0, Default::default(), format!("{e:#}")),
    };
    let run = platform::trainer_status::LastRun {
        finished_at_ms: platform::now_ms(),
        duration_seconds: started.elapsed().as_secs_f64(),
        outcome: outcome.to_string(),
        version,
        events_read,
        test_metrics,
        why,
    };
    if let Err(e) = platform::trainer_status::record(&args.registry, run) {
        tracing::warn!(error = format!("{e:#}"), "could not record the run in the trainer status");
    }
    result
}

/// Which model families to fit; `auto` fits both and keeps the better on the validation window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelChoice {
    Auto,
    Logistic,
    Boosted,
}

/// A fitted, calibrated candidate and its session-level scores on the validation window.
struct Candidate {
    model: ModelArtifact,
    valid: Metrics,
    valid_sessions: Vec<eval::Session>,
    secs: f64,
}

fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    // On stderr, hidden when it is not a terminal (CI, logs): the tracing lines say the same.
    indicatif::ProgressBar::new(len)
        .with_style(
            indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed_precise} eta {eta}")
                .expect("static template")
                .progress_chars("=> "),
        )
        .with_message(what.to_string())
}

/// Calibrates `model` on the validation rows and measures it there (its sessions and metrics).
fn calibrate(
    mut model: ModelArtifact,
    valid_rows: &[&Row],
    budgets: &FlagBudgets,
) -> (ModelArtifact, Vec<eval::Session>, Metrics) {
    let margins: Vec<f64> = valid_rows.iter().map(|r| model.margin(&train::features_of(r)).0).collect();
    let labels: Vec<bool> = valid_rows.iter().map(|r| r.fraud).collect();
    if labels.iter().any(|y| *y) {
        model.calibration = Some(train::fit_platt(&margins, &labels));
    }
    let (sessions, metrics) = measure(&model, valid_rows);
    // The validation window's session score distribution lets a policy set thresholds by
    // target alert rate (`top_share`) or by legitimate sessions flagged (`legit_share`)
    // instead of by raw score.
    model.meta[models::artifact::TOP_SHARES] = serde_json::json!(eval::top_shares(&sessions));
    model.meta[models::artifact::LEGIT_SHARES] = serde_json::json!(budget::legit_shares(&sessions, budgets));
    model.meta["flag_budgets"] = budgets.to_json();
    (model, sessions, metrics)
}

/// The report's rules section: the policy's feature rules on the validation window, against
/// the precision of the restrict band (the least severe band a hard rule can outrank), from the
/// model's validation `sessions`.
fn rules_section(policy: &Path, model: &ModelArtifact, valid_rows: &[&Row], sessions: &[eval::Session]) -> String {
    let policy = match scorer::policy::Policy::load(policy) {
        Ok(p) => p,
        Err(e) => return format!("\n## Rules\n\nNot measured: {e} (set --policy).\n"),
    };
    let restrict = budget::FlagBudgets::check_model(model, sessions).into_iter().find(|c| c.action == "restrict");
    let band_precision = restrict.map_or(0.0, |c| c.precision);
    let checks = crate::rules::check(&policy, valid_rows, band_precision);
    for c in checks.iter().filter(|c| c.demote) {
        tracing::warn!(rule = %c.code, precision = c.precision, band_precision, "a hard rule is less precise than the restrict band; demote it");
    }
    crate::rules::section(
        "validation window",
        &checks,
        band_precision,
        "List rules need the lists and are not measured here.",
    )
}

fn train_once(args: &TrainArgs) -> anyhow::Result<Outcome> {
    let mut steps: Vec<(&str, f64)> = Vec::new();
    let t0 = Instant::now();
    let opts = dataset::Options {
        cutoff: None,
        label_delay_days: Some(args.label_delay_days),
        max_train_rows: args.max_train_rows,
        recent_days: None,
    };
    let ds = replay_lake(&args.lake, &opts)?;
    steps.push(("replay the lake through the feature definition", t0.elapsed().as_secs_f64()));
    tracing::info!(
        events = ds.events_read,
        rejected = ds.events_rejected,
        labels_used = ds.labels_used,
        labels_after_cutoff = ds.labels_late,
        rows_kept = ds.rows.len(),
        rows_dropped = ds.rows_dropped,
        train_sample_rate = ds.train_sample_rate,
        history_keys = ds.history_keys,
        secs = t0.elapsed().as_secs_f64(),
        "lake replayed through the feature definition"
    );
    let split = match &ds.split {
        Some(s) => s.clone(),
        None => anyhow::bail!("the lake at {} has no events; nothing to train on", args.lake),
    };
    let (train_rows, valid_rows, test_rows) =
        (split.rows(&ds, split.train), split.rows(&ds, split.valid), split.rows(&ds, split.test));
    let version = new_version(&args.registry);
    let delays = ds.label_delays.summary(args.label_delay_days);
    let meta = serde_json::json!({
        "split": &split,
        "rows": {"train": train_rows.len(), "valid": valid_rows.len(), "test": test_rows.len()},
        "train_sample_rate": ds.train_sample_rate,
        "label_delay_days": args.label_delay_days,
        "cutoff": models::format_ts(ds.cutoff),
        "label_delays": &delays,
    });

    let mut candidates: Vec<Candidate> = Vec::new();
    // Every session weighs the same whatever its length, a young unlabelled row by the share
    // of fraud labels in by its age: both families fit with these.
    let train_w = dataset::train_weights(&train_rows, ds.cutoff, ds.label_delays.arrived_by());
    if args.model != ModelChoice::Boosted {
        let t = Instant::now();
        let fit = train::fit_logistic(&train_rows, &train_w, Params { alpha: args.alpha, ..Params::default() })?;
        tracing::info!(rows = fit.rows, secs = t.elapsed().as_secs_f64(), "logistic regression fitted");
        let (model, valid_sessions, valid) =
            calibrate(train::artifact(&version, fit.into_model(), meta.clone()), &valid_rows, &args.flag_budgets);
        candidates.push(Candidate { model, valid, valid_sessions, secs: t.elapsed().as_secs_f64() });
    }
    if args.model != ModelChoice::Logistic {
        let t = Instant::now();
        let p = gbdt::Params {
            trees: args.trees,
            depth: args.depth,
            learning_rate: args.learning_rate,
            min_child_weight: args.min_child_weight,
            patience: args.patience,
            ..gbdt::Params::default()
        };
        let bar = progress_bar(p.trees as u64, "trees");
        let fit = gbdt::fit(&train_rows, &train_w, &valid_rows, &p, |n| {
            bar.set_position(n as u64);
            if n % 50 == 0 {
                tracing::info!(trees = n, secs = t.elapsed().as_secs_f64(), "boosting");
            }
        })?;
        bar.finish_and_clear();
        tracing::info!(trees = fit.trees.len(), secs = t.elapsed().as_secs_f64(), "boosted trees fitted");
        let model = Model::Boosted { base: fit.base, trees: fit.trees };
        let (model, valid_sessions, valid) =
            calibrate(train::artifact(&version, model, meta.clone()), &valid_rows, &args.flag_budgets);
        candidates.push(Candidate { model, valid, valid_sessions, secs: t.elapsed().as_secs_f64() });
    }
    for c in &candidates {
        steps
            .push((if c.model.kind() == "logistic" { "fit logistic regression" } else { "fit boosted trees" }, c.secs));
        tracing::info!(kind = c.model.kind(), valid_ap = c.valid.average_precision, "candidate measured on validation");
    }
    // Chosen on validation, never on test: the test window stays a fair comparison with the
    // champion.
    let chosen = candidates
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.valid.average_precision.total_cmp(&b.1.valid.average_precision))
        .map(|(i, _)| i)
        .expect("at least one model family is fitted");
    let t2 = Instant::now();
    let mut tested: Vec<(Vec<eval::Session>, Metrics)> =
        candidates.iter().map(|c| measure(&c.model, &test_rows)).collect();
    let selection: Vec<(String, f64, Metrics)> = candidates
        .iter()
        .zip(&tested)
        .map(|(c, (_, test))| (c.model.kind().to_string(), c.valid.average_precision, test.clone()))
        .collect();
    let Candidate { mut model, valid_sessions, .. } = candidates.swap_remove(chosen);
    let (test_sessions, test) = tested.swap_remove(chosen);
    model.meta["model_selection"] = serde_json::json!(
        selection
            .iter()
            .map(|(k, v, t)| serde_json::json!({"kind": k, "valid_ap": v, "test_ap": t.average_precision}))
            .collect::<Vec<_>>()
    );

    let champion = platform::registry::current_version(&args.registry)?;
    let champion_model = champion.as_ref().map(|v| platform::registry::load(&args.registry, v));
    let (promote, why, champion_test, champion_sessions) = match champion_model {
        None => (true, "no champion yet".to_string(), None, None),
        Some(Err(e)) => (true, format!("the champion cannot be used by this build ({e:#})"), None, None),
        Some(Ok(c)) => {
            let (cs, ct) = measure(&c, &test_rows);
            let better = test.average_precision >= ct.average_precision + args.min_improvement;
            let why = format!(
                "average precision {:.4} vs champion {} {:.4} on the same test window (margin {})",
                test.average_precision, c.version, ct.average_precision, args.min_improvement
            );
            (better, why, Some(ct), Some((c.version, cs)))
        }
    };
    steps.push(("evaluate on the test window", t2.elapsed().as_secs_f64()));

    let budgets = FlagBudgets::check_model(&model, &test_sessions);
    let rules = rules_section(&args.policy, &model, &valid_rows, &valid_sessions);
    let mut series = vec![(version.as_str(), test_sessions.as_slice())];
    if let Some((v, cs)) = &champion_sessions {
        series.push((v.as_str(), cs.as_slice()));
    }
    let figures = figures(&series, "test")?;
    let ctx = ReportContext {
        version: &version,
        kind: model.kind(),
        events: ds.events_read,
        promoted: promote,
        why: &why,
        selection: &selection,
        steps: &steps,
        split: &split,
        strays: &ds.strays,
        budgets: &budgets,
        rules: &rules,
        delays: &delays,
        maturity_days: args.label_delay_days,
    };
    let report = report(&ctx, &test, champion_test.as_ref());
    let metrics_json = serde_json::to_vec_pretty(&serde_json::json!({
        "kind": model.kind(),
        "test": &test,
        "champion_test": &champion_test,
        "flag_budgets_test": &budgets,
        "model_selection": &model.meta["model_selection"],
        "promoted": promote,
        "why": &why,
        "steps_seconds": steps.iter().map(|(k, v)| (k.to_string(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
    }))?;
    let mut files = vec![("metrics.json", metrics_json), ("report.md", report.into_bytes())];
    files.extend(figures);
    let dir = platform::registry::write_version(&args.registry, &model, &files)
        .context("writing the model into the registry")?;
    if promote {
        platform::registry::promote(&args.registry, &version)?;
    } else {
        platform::registry::set_challenger(&args.registry, &version)?;
    }
    tracing::info!(%version, kind = model.kind(), promoted = promote, %why, ap = test.average_precision, auc = test.roc_auc, "training run finished");
    Ok(Outcome { version, events_read: ds.events_read, promoted: promote, why, test, champion_test, dir })
}

struct ReportContext<'a> {
    version: &'a str,
    kind: &'a str,
    events: usize,
    promoted: bool,
    why: &'a str,
    selection: &'a [(String, f64, Metrics)],
    steps: &'a [(&'a str, f64)],
    split: &'a Split,
    strays: &'a [(String, usize)],
    budgets: &'a [budget::BudgetCheck],
    rules: &'a str,
    delays: &'a [crate::delays::DelaySummary],
    maturity_days: f64,
}

/// The report's figures, as (file name, SVG): precision–recall and ROC curves of each named
/// series of sessions, and the first series' score histogram. `window` names where the
/// sessions come from ("test").
pub(crate) fn figures(
    series: &[(&str, &[eval::Session])],
    window: &str,
) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
    let dir = tempfile::tempdir().context("creating a scratch directory for the report's figures")?;
    let pr: Vec<_> = series.iter().map(|(n, s)| (*n, eval::pr_curve(s))).collect();
    let roc: Vec<_> = series.iter().map(|(n, s)| (*n, eval::roc_curve(s))).collect();
    let (pr_title, roc_title) = (format!("Precision–recall ({window} sessions)"), format!("ROC ({window} sessions)"));
    plots::curves(&dir.path().join("pr.svg"), &pr_title, ("recall", "precision"), &pr)?;
    plots::curves(&dir.path().join("roc.svg"), &roc_title, ("false positive rate", "recall"), &roc)?;
    let first = series.first().map_or(&[][..], |(_, s)| *s);
    plots::score_histogram(&dir.path().join("scores.svg"), &format!("Session scores ({window} window)"), first)?;
    ["pr.svg", "roc.svg", "scores.svg"]
        .into_iter()
        .map(|f| Ok((f, std::fs::read(dir.path().join(f)).with_context(|| format!("reading back {f}"))?)))
        .collect()
}

/// A day of a timestamp, `YYYY-MM-DD`.
pub(crate) fn day(t: i64) -> String {
    models::format_ts(t).chars().take(10).collect()
}

/// The report's metric tables: `m` beside another model's (its column's name, and its metrics
/// or dashes), then recall by fraud kind. `window` names where the sessions come from.
pub(crate) fn metrics_section(window: &str, m: &Metrics, (other_name, other): (&str, Option<&Metrics>)) -> String {
    let row = |name: &str, f: &dyn Fn(&Metrics) -> f64| {
        format!("| {name} | {:.4} | {} |\n", f(m), other.map(|c| format!("{:.4}", f(c))).unwrap_or_else(|| "–".into()))
    };
    let mut s = format!(
        "## {window}, session level\n\nA session's score is its highest event score.\n\n\
         | metric | this model | {other_name} |\n|---|---|---|\n"
    );
    s += &row("average precision", &|m| m.average_precision);
    s += &row("ROC AUC", &|m| m.roc_auc);
    s += &row("recall at 0.1 % FPR", &|m| m.recall_at_0_1pct_fpr);
    s += &row("recall at 0.5 % FPR", &|m| m.recall_at_0_5pct_fpr);
    s += &row("recall at 1 % FPR", &|m| m.recall_at_1pct_fpr);
    s += &row("precision at 100", &|m| m.precision_at_100);
    s += &row("precision at 1000", &|m| m.precision_at_1000);
    s += &row("fraud transfer value stopped at 1 % FPR", &|m| m.fraud_value_stopped_at_1pct_fpr);
    s += &row("expected calibration error", &|m| m.expected_calibration_error);
    s += &row("score at 0.5 % FPR", &|m| m.threshold_at_0_5pct_fpr);
    s += &row("score at 1 % FPR", &|m| m.threshold_at_1pct_fpr);
    s += &row("score at 5 % FPR", &|m| m.threshold_at_5pct_fpr);
    s += &format!(
        "\n{} sessions, {} labelled fraudulent; {:.0} of fraudulent transfer value in the window. \
         Value stopped counts a transfer when its session was flagged by the transfer's own verdict or an earlier one.\n",
        m.sessions, m.fraud_sessions, m.fraud_transfer_value
    );
    s += "\n## Recall by fraud kind (1 % FPR)\n\n| kind | sessions | recall |\n|---|---|---|\n";
    for (k, r) in &m.recall_by_kind {
        s += &format!("| {k} | {} | {:.3} |\n", r.sessions, r.recall_at_1pct_fpr);
    }
    s
}

/// The report's figures, linked.
pub(crate) const FIGURES_SECTION: &str =
    "\n## Figures\n\n![Precision–recall](pr.svg)\n![ROC](roc.svg)\n![Score histogram](scores.svg)\n";

fn report(c: &ReportContext, m: &Metrics, champion: Option<&Metrics>) -> String {
    let mut s = format!(
        "# Model {} ({})\n\nTrained from {} lake events. Promoted: **{}** ({}).\n\n\
         Windows by event time: train {} – {}, validation {} – {}, test {} – {}.\n\n",
        c.version,
        c.kind,
        c.events,
        c.promoted,
        c.why,
        day(c.split.train.0),
        day(c.split.train.1),
        day(c.split.valid.0),
        day(c.split.valid.1),
        day(c.split.test.0),
        day(c.split.test.1),
    );
    if !c.strays.is_empty() {
        let list: Vec<String> = c.strays.iter().map(|(d, n)| format!("{d} ({n} rows)")).collect();
        s += &format!("Left out as strays ({}): {}.\n\n", dataset::strays_rule(), list.join(", "));
    }
    s += &metrics_section("Test window", m, ("champion", champion));
    s += &budget::section("test window", c.budgets);
    s += c.rules;
    s += &crate::delays::section(c.delays, c.maturity_days);
    s += "\n## Model selection\n\nEach family fitted and calibrated; the one with the higher validation average precision is kept.\n\n| family | validation AP | test AP |\n|---|---|---|\n";
    for (k, v, t) in c.selection {
        s += &format!("| {k}{} | {v:.4} | {:.4} |\n", if k == c.kind { " (kept)" } else { "" }, t.average_precision);
    }
    s += FIGURES_SECTION;
    s += "\n## Steps\n\n| step | seconds |\n|---|---|\n";
    for (k, v) in c.steps {
        s += &format!("| {k} | {v:.1} |\n");
    }
    s
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackfillArgs {
    /// Lake to replay: a directory, or `s3://BUCKET/PREFIX`.
    #[arg(long, env = "LAKE_URL", default_value = "data/lake", value_parser = lake::Lake::parse_arg)]
    pub lake: lake::Lake,
    #[command(flatten)]
    pub redis: platform::config::RedisArgs,
    /// Events per Redis round trip.
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
}

/// Replays the lake into the live history store, so the enricher starts with the history the
/// model was trained with (same feature code, same event-time semantics).
pub async fn backfill(args: &BackfillArgs) -> anyhow::Result<usize> {
    use enricher::store::{HistoryStore, RedisStore};
    let lake = args.lake.clone();
    let parts = tokio::task::spawn_blocking(move || lake.event_partitions()).await??;
    let store = RedisStore::connect(&args.redis.redis_url)
        .await
        .with_context(|| format!("connecting to Redis at {}", platform::config::redact_url(&args.redis.redis_url)))?;
    // The lake's labels go in at their own time among the events, as training replays them.
    let lake = args.lake.clone();
    let mut labels = tokio::task::spawn_blocking(move || lake.read_labels()).await??;
    labels.sort_by_key(|l| l.ts);
    let mut feed = labels.iter().peekable();
    let mut n = 0;
    for (date, files) in parts {
        let lake = args.lake.clone();
        let (events, _) = tokio::task::spawn_blocking(move || lake.read_events(&files)).await??;
        for chunk in events.chunks(args.batch.max(1)) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let due: Vec<&models::Label> = models::feedback::due(&mut feed, rest[0].ts).collect();
                enricher::store::apply_labels(&store, &due).await?;
                let upto = feed.peek().map_or(rest.len(), |l| rest.partition_point(|e| e.ts < l.ts));
                let (now, later) = rest.split_at(upto);
                let texts: Vec<_> = now.iter().map(models::features::Texts::of).collect();
                let (_, ops) = models::features::plan_batch(now, &texts);
                store.execute(&ops).await?;
                rest = later;
            }
        }
        n += events.len();
        tracing::info!(%date, events = events.len(), "partition replayed into Redis");
    }
    let rest: Vec<&models::Label> = feed.collect();
    enricher::store::apply_labels(&store, &rest).await?;
    Ok(n)
}
