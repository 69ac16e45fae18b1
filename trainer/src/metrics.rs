//! The trainer's metrics, served on its HTTP address while a command runs (a batch job's
//! numbers; a Prometheus scraping it sees the run in progress and its result).

use crate::run::Outcome;
use prometheus::{Gauge, GaugeVec, IntCounterVec, Opts, Registry};

pub const RUNS: &str = "fraud_trainer_runs_total";
pub const RUN_SECONDS: &str = "fraud_trainer_run_duration_seconds";
pub const TEST_METRIC: &str = "fraud_trainer_test_metric";
pub const EVENTS_READ: &str = "fraud_trainer_events_read";

#[derive(Clone)]
pub struct TrainerMetrics {
    pub runs: IntCounterVec,
    pub seconds: Gauge,
    pub test: GaugeVec,
    pub events: Gauge,
}

impl TrainerMetrics {
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        let m = TrainerMetrics {
            runs: IntCounterVec::new(
                Opts::new(RUNS, "Training runs, by outcome (promoted, challenger, failed)"),
                &["outcome"],
            )?,
            seconds: Gauge::new(RUN_SECONDS, "Duration of the last run")?,
            test: GaugeVec::new(Opts::new(TEST_METRIC, "The last model's test-window metrics"), &["metric"])?,
            events: Gauge::new(EVENTS_READ, "Lake events read by the last run")?,
        };
        r.register(Box::new(m.runs.clone()))?;
        r.register(Box::new(m.seconds.clone()))?;
        r.register(Box::new(m.test.clone()))?;
        r.register(Box::new(m.events.clone()))?;
        Ok(m)
    }

    pub fn record(&self, result: &anyhow::Result<Outcome>, seconds: f64) {
        self.seconds.set(seconds);
        match result {
            Ok(o) => {
                self.runs.with_label_values(&[if o.promoted { "promoted" } else { "challenger" }]).inc();
                self.events.set(o.events_read as f64);
                for (name, v) in [
                    ("average_precision", o.test.average_precision),
                    ("roc_auc", o.test.roc_auc),
                    ("recall_at_1pct_fpr", o.test.recall_at_1pct_fpr),
                    ("expected_calibration_error", o.test.expected_calibration_error),
                ] {
                    self.test.with_label_values(&[name]).set(v);
                }
            }
            Err(_) => self.runs.with_label_values(&["failed"]).inc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_run_is_counted_by_outcome_with_its_test_metrics() {
        let registry = Registry::new();
        let m = TrainerMetrics::register(&registry).unwrap();
        let test = crate::eval::metrics(&[(0.9, true), (0.1, false)]);
        let outcome = Outcome {
            version: "v".into(),
            events_read: 42,
            promoted: false,
            why: "worse".into(),
            test,
            champion_test: None,
            dir: "x".into(),
        };
        m.record(&Ok(outcome), 1.5);
        m.record(&Err(anyhow::anyhow!("no lake")), 0.1);
        assert_eq!(m.runs.with_label_values(&["challenger"]).get(), 1);
        assert_eq!(m.runs.with_label_values(&["failed"]).get(), 1);
        assert_eq!(m.events.get(), 42.0);
        assert_eq!(m.test.with_label_values(&["roc_auc"]).get(), 1.0);
        let names: Vec<String> = registry.gather().iter().map(|f| f.name().to_string()).collect();
        assert!(names.contains(&RUNS.to_string()) && names.contains(&TEST_METRIC.to_string()), "{names:?}");
    }
}
