//! The trainer's run history as Prometheus sees it.
//!
//! The trainer is a batch job: nobody can scrape a process that has exited. Each run therefore
//! leaves its outcome in `<registry>/trainer-status.json` (written atomically), and the scorer,
//! which already follows the registry and is always up, exports that file as the
//! `fraud_trainer_*` metrics. A trainer process serves the same metrics while it runs, so a
//! scheduled trainer (`trainer schedule`) can also be scraped directly; dashboards take the
//! `max` over both sources, which agree.

use crate::registry::write_atomic;
use anyhow::Context;
use prometheus::{Gauge, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const STATUS_FILE: &str = "trainer-status.json";

pub const RUNS: &str = "fraud_trainer_runs_total";
pub const LAST_RUN_TIMESTAMP: &str = "fraud_trainer_last_run_timestamp_seconds";
pub const LAST_RUN_SECONDS: &str = "fraud_trainer_last_run_duration_seconds";
pub const LAST_RUN_OUTCOME: &str = "fraud_trainer_last_run_outcome";
pub const TEST_METRIC: &str = "fraud_trainer_test_metric";
pub const EVENTS_READ: &str = "fraud_trainer_events_read";

/// The outcomes a run can have (the `outcome` label's only values).
pub const OUTCOMES: [&str; 3] = ["promoted", "challenger", "failed"];
/// The test-window metrics that exist (as NaN) before any run is known: those a dashboard shows.
pub const TEST_METRICS: [&str; 4] =
    ["average_precision", "roc_auc", "recall_at_1pct_fpr", "expected_calibration_error"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerStatus {
    /// Runs so far, by outcome.
    pub runs: BTreeMap<String, u64>,
    pub last_run: Option<LastRun>,
    /// Test-window metrics of the newest model a run trained (a failed run trains none, so this
    /// outlives it).
    #[serde(default)]
    pub last_trained_test_metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    pub finished_at_ms: i64,
    pub duration_seconds: f64,
    /// One of [`OUTCOMES`].
    pub outcome: String,
    pub version: Option<String>,
    pub events_read: u64,
    /// Test-window metrics of the model the run trained (empty when it failed).
    pub test_metrics: BTreeMap<String, f64>,
    /// Why it did or did not promote, or the error.
    pub why: String,
}

pub fn path(registry: &Path) -> PathBuf {
    registry.join(STATUS_FILE)
}

/// The status so far (empty when no run has finished yet).
pub fn read(registry: &Path) -> anyhow::Result<TrainerStatus> {
    let p = path(registry);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("{} is not a trainer status", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrainerStatus::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// Adds a finished run to the registry's status file. Runs are expected one at a time (the
/// schedule serialises them); two concurrent runs could lose one count, never corrupt the file.
pub fn record(registry: &Path, run: LastRun) -> anyhow::Result<TrainerStatus> {
    std::fs::create_dir_all(registry).with_context(|| format!("creating {}", registry.display()))?;
    let mut status = read(registry).unwrap_or_default();
    *status.runs.entry(run.outcome.clone()).or_default() += 1;
    if !run.test_metrics.is_empty() {
        status.last_trained_test_metrics = run.test_metrics.clone();
    }
    status.last_run = Some(run);
    write_atomic(&path(registry), &serde_json::to_vec_pretty(&status)?)?;
    Ok(status)
}

#[derive(Clone)]
pub struct TrainerMetrics {
    pub runs: IntCounterVec,
    pub last_run_timestamp: Gauge,
    pub last_run_seconds: Gauge,
    pub last_run_outcome: IntGaugeVec,
    pub test: GaugeVec,
    pub events: Gauge,
}

impl TrainerMetrics {
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        let m = TrainerMetrics {
            runs: IntCounterVec::new(Opts::new(RUNS, "Training runs, by outcome"), &["outcome"])?,
            last_run_timestamp: Gauge::new(LAST_RUN_TIMESTAMP, "When the last training run finished (Unix time)")?,
            last_run_seconds: Gauge::new(LAST_RUN_SECONDS, "Duration of the last training run")?,
            last_run_outcome: IntGaugeVec::new(
                Opts::new(LAST_RUN_OUTCOME, "1 for the last run's outcome, 0 for the others"),
                &["outcome"],
            )?,
            test: GaugeVec::new(Opts::new(TEST_METRIC, "The newest trained model's test-window metrics"), &["metric"])?,
            events: Gauge::new(EVENTS_READ, "Lake events read by the last training run")?,
        };
        r.register(Box::new(m.runs.clone()))?;
        r.register(Box::new(m.last_run_timestamp.clone()))?;
        r.register(Box::new(m.last_run_seconds.clone()))?;
        r.register(Box::new(m.last_run_outcome.clone()))?;
        r.register(Box::new(m.test.clone()))?;
        r.register(Box::new(m.events.clone()))?;
        // Before any run is known: no run of any outcome, no last outcome, and test metrics
        // that are not a number (a 0 would read as a model that catches nothing).
        for outcome in OUTCOMES {
            m.runs.with_label_values(&[outcome]);
            m.last_run_outcome.with_label_values(&[outcome]);
        }
        for name in TEST_METRICS {
            m.test.with_label_values(&[name]).set(f64::NAN);
        }
        Ok(m)
    }

    /// Mirrors `status`: counters move up to the file's counts (a counter never goes down; a
    /// restarted exporter starts from zero and Prometheus reads that as a reset).
    pub fn set(&self, status: &TrainerStatus) {
        for outcome in OUTCOMES {
            let c = self.runs.with_label_values(&[outcome]);
            let want = status.runs.get(outcome).copied().unwrap_or(0);
            if want > c.get() {
                c.inc_by(want - c.get());
            }
        }
        let Some(last) = &status.last_run else { return };
        self.last_run_timestamp.set(last.finished_at_ms as f64 / 1000.0);
        self.last_run_seconds.set(last.duration_seconds);
        for outcome in OUTCOMES {
            self.last_run_outcome.with_label_values(&[outcome]).set(i64::from(last.outcome == outcome));
        }
        self.events.set(last.events_read as f64);
        self.test.reset();
        for (name, v) in &status.last_trained_test_metrics {
            self.test.with_label_values(&[name]).set(*v);
        }
    }
}

/// Keeps `metrics` equal to the registry's status file, polling it every `every`.
pub async fn watch(
    registry: PathBuf,
    metrics: TrainerMetrics,
    every: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stamp = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let file = path(&registry);
    let mut last = None;
    loop {
        let now = stamp(&file);
        if now.is_some() && now != last {
            match read(&registry) {
                Ok(status) => {
                    metrics.set(&status);
                    last = now;
                }
                Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot read the trainer status"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(outcome: &str, auc: Option<f64>) -> LastRun {
        LastRun {
            finished_at_ms: 1_700_000_000_000,
            duration_seconds: 12.5,
            outcome: outcome.into(),
            version: Some("m1".into()),
            events_read: 42,
            test_metrics: auc.map(|a| BTreeMap::from([("roc_auc".to_string(), a)])).unwrap_or_default(),
            why: "because".into(),
        }
    }

    #[test]
    fn runs_accumulate_in_the_status_file_and_the_metrics_follow_it() {
        let dir = std::env::temp_dir().join(format!("trainer-status-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(read(&dir).unwrap(), TrainerStatus::default());
        record(&dir, run("promoted", Some(0.9))).unwrap();
        record(&dir, run("challenger", Some(0.8))).unwrap();
        let status = record(&dir, run("failed", None)).unwrap();
        assert_eq!(read(&dir).unwrap(), status);
        assert_eq!(status.runs.values().sum::<u64>(), 3);

        let m = TrainerMetrics::register(&Registry::new()).unwrap();
        m.set(&status);
        m.set(&status); // idempotent: counts are mirrored, not added
        assert_eq!(m.runs.with_label_values(&["promoted"]).get(), 1);
        assert_eq!(m.runs.with_label_values(&["failed"]).get(), 1);
        assert_eq!(m.last_run_outcome.with_label_values(&["failed"]).get(), 1);
        assert_eq!(m.last_run_outcome.with_label_values(&["promoted"]).get(), 0);
        // A failed run keeps the last trained model's test metrics.
        assert_eq!(m.test.with_label_values(&["roc_auc"]).get(), 0.8);
        assert_eq!(m.last_run_timestamp.get(), 1_700_000_000.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
