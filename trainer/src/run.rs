//! `trainer train` end to end: dataset → fit → calibrate → evaluate → register → promote?

use crate::dataset::{self, Row, Split};
use crate::eval::{self, Metrics};
use crate::train::{self, Params};
use anyhow::Context;
use models::ModelArtifact;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Lake directory holding events/ and labels/ (contract layout).
    #[arg(long, env = "LAKE_URL", default_value = "data/lake")]
    pub lake: PathBuf,
    /// Model registry directory.
    #[arg(long, env = "MODEL_REGISTRY", default_value = "data/registry")]
    pub registry: PathBuf,
    /// Events younger than this (before the cut-off) are left out: their labels may not be in yet.
    #[arg(long, env = "LABEL_DELAY_DAYS", default_value_t = 3.0)]
    pub label_delay_days: f64,
    /// Promote only if average precision beats the champion's on the same test window by this.
    #[arg(long, env = "PROMOTION_MARGIN", default_value_t = 0.0)]
    pub min_improvement: f64,
    /// L2 regularisation of the logistic regression.
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
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

fn train_once(args: &TrainArgs) -> anyhow::Result<Outcome> {
    let t0 = Instant::now();
    let ds = dataset::build(&args.lake, None, |date, n| tracing::info!(date, events = n, "replayed partition"))?;
    tracing::info!(
        events = ds.events_read,
        rejected = ds.events_rejected,
        labels_used = ds.labels_used,
        labels_after_cutoff = ds.labels_late,
        secs = t0.elapsed().as_secs_f64(),
        "lake replayed through the feature definition"
    );
    let split = Split::by_time(ds.first_ts, ds.cutoff, args.label_delay_days)?;
    let (train_rows, valid_rows, test_rows) =
        (split.rows(&ds, split.train), split.rows(&ds, split.valid), split.rows(&ds, split.test));
    let t1 = Instant::now();
    let fit = train::fit_logistic(&train_rows, Params { alpha: args.alpha, ..Params::default() })?;
    let version = new_version(&args.registry);
    let meta = serde_json::json!({
        "split": &split,
        "rows": {"train": train_rows.len(), "valid": valid_rows.len(), "test": test_rows.len()},
        "label_delay_days": args.label_delay_days,
        "cutoff": models::format_ts(ds.cutoff),
    });
    let mut model = train::artifact(&version, fit, meta);
    let margins: Vec<f64> = valid_rows.iter().map(|r| model.margin(&train::features_of(r)).0).collect();
    let labels: Vec<bool> = valid_rows.iter().map(|r| r.fraud).collect();
    if labels.iter().any(|y| *y) {
        model.calibration = Some(train::fit_platt(&margins, &labels));
    }
    // The validation window's session score distribution lets a policy set thresholds by
    // target alert rate (`top_share`) instead of by raw score.
    let valid_sessions = eval::by_session(&valid_rows, &score_rows(&model, &valid_rows));
    model.meta["session_score_top_shares"] = serde_json::json!(eval::top_shares(&valid_sessions));
    tracing::info!(secs = t1.elapsed().as_secs_f64(), rows = train_rows.len(), "model fitted and calibrated");

    let test = eval::metrics(&eval::by_session(&test_rows, &score_rows(&model, &test_rows)));
    let champion = platform::registry::current_version(&args.registry)?;
    let champion_model = champion.as_ref().map(|v| platform::registry::load(&args.registry, v));
    let (promote, why, champion_test) = match champion_model {
        None => (true, "no champion yet".to_string(), None),
        Some(Err(e)) => (true, format!("the champion cannot be used by this build ({e:#})"), None),
        Some(Ok(c)) => {
            let ct = eval::metrics(&eval::by_session(&test_rows, &score_rows(&c, &test_rows)));
            let better = test.average_precision >= ct.average_precision + args.min_improvement;
            let why = format!(
                "average precision {:.4} vs champion {} {:.4} on the same test window (margin {})",
                test.average_precision, c.version, ct.average_precision, args.min_improvement
            );
            (better, why, Some(ct))
        }
    };
    let report = report(&version, &test, champion_test.as_ref(), &why, promote, ds.events_read);
    let metrics_json = serde_json::to_vec_pretty(
        &serde_json::json!({"test": &test, "champion_test": &champion_test, "promoted": promote, "why": &why}),
    )?;
    let dir = platform::registry::write_version(
        &args.registry,
        &model,
        &[("metrics.json", metrics_json), ("report.md", report.into_bytes())],
    )
    .context("writing the model into the registry")?;
    if promote {
        platform::registry::promote(&args.registry, &version)?;
    } else {
        platform::registry::set_challenger(&args.registry, &version)?;
    }
    tracing::info!(%version, promoted = promote, %why, ap = test.average_precision, auc = test.roc_auc, "training run finished");
    Ok(Outcome { version, events_read: ds.events_read, promoted: promote, why, test, champion_test, dir })
}

fn report(version: &str, m: &Metrics, champion: Option<&Metrics>, why: &str, promoted: bool, events: usize) -> String {
    let row = |name: &str, f: &dyn Fn(&Metrics) -> f64| {
        format!(
            "| {name} | {:.4} | {} |\n",
            f(m),
            champion.map(|c| format!("{:.4}", f(c))).unwrap_or_else(|| "–".into())
        )
    };
    let mut s =
        format!("# Model {version}\n\nTrained from {events} lake events. Promoted: **{promoted}** ({why}).\n\n");
    s += "Test window, session level (a session's score is its highest event score).\n\n| metric | this model | champion |\n|---|---|---|\n";
    s += &row("average precision", &|m| m.average_precision);
    s += &row("ROC AUC", &|m| m.roc_auc);
    s += &row("recall at 0.1 % FPR", &|m| m.recall_at_0_1pct_fpr);
    s += &row("recall at 0.5 % FPR", &|m| m.recall_at_0_5pct_fpr);
    s += &row("recall at 1 % FPR", &|m| m.recall_at_1pct_fpr);
    s += &row("precision at 100", &|m| m.precision_at_100);
    s += &row("expected calibration error", &|m| m.expected_calibration_error);
    s += &row("score at 0.5 % FPR", &|m| m.threshold_at_0_5pct_fpr);
    s += &row("score at 1 % FPR", &|m| m.threshold_at_1pct_fpr);
    s += &row("score at 5 % FPR", &|m| m.threshold_at_5pct_fpr);
    s += &format!("\n{} sessions, {} labelled fraudulent.\n", m.sessions, m.fraud_sessions);
    s
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackfillArgs {
    #[arg(long, env = "LAKE_URL", default_value = "data/lake")]
    pub lake: PathBuf,
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
    lake::check_lake(&args.lake)?;
    let store = RedisStore::connect(&args.redis.redis_url)
        .await
        .with_context(|| format!("connecting to Redis at {}", platform::config::redact_url(&args.redis.redis_url)))?;
    let mut n = 0;
    for (date, files) in lake::partitions(&args.lake, lake::EVENTS)? {
        let (events, _) = lake::read_events(&files)?;
        for chunk in events.chunks(args.batch.max(1)) {
            let ops: Vec<_> = chunk.iter().flat_map(|e| models::features::plan(e).ops).collect();
            store.execute(&ops).await?;
        }
        n += events.len();
        tracing::info!(%date, events = events.len(), "partition replayed into Redis");
    }
    Ok(n)
}
