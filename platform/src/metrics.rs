//! Metric names shared by every pipeline (one place, so dashboards and tests agree).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

pub const EVENTS_CONSUMED: &str = "fraud_events_consumed_total";
pub const EVENTS_PRODUCED: &str = "fraud_events_produced_total";
pub const DLQ_EVENTS: &str = "fraud_dlq_events_total";
pub const BATCH_SECONDS: &str = "fraud_batch_duration_seconds";
pub const BATCH_SIZE: &str = "fraud_batch_size";
pub const PROCESS_RETRIES: &str = "fraud_process_retries_total";
pub const COMMITS: &str = "fraud_offset_commits_total";
pub const INFLIGHT_BATCH: &str = "fraud_inflight_batch_records";
pub const CONSUMER_LAG: &str = "fraud_consumer_lag_records";
pub const REDIS_SECONDS: &str = "fraud_redis_roundtrip_seconds";
pub const REDIS_ERRORS: &str = "fraud_redis_errors_total";

/// A registry whose every metric carries `service="<name>"`, so dashboards and alert rules
/// do not depend on how a user names their scrape jobs.
pub fn service_registry(service: &str) -> Registry {
    let labels = std::collections::HashMap::from([("service".to_string(), service.to_string())]);
    Registry::new_custom(None, Some(labels)).expect("a constant, valid label")
}

/// Latency buckets from 100 µs to 10 s.
pub fn latency_buckets() -> Vec<f64> {
    vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
}

#[derive(Clone)]
pub struct PipelineMetrics {
    pub consumed: IntCounterVec,
    pub produced: IntCounterVec,
    pub dlq: IntCounterVec,
    pub batch_seconds: HistogramVec,
    pub batch_size: Histogram,
    pub retries: IntCounter,
    pub commits: IntCounterVec,
    pub inflight: IntGauge,
    /// Per input partition, from librdkafka's statistics (`statistics.interval.ms`).
    pub consumer_lag: IntGaugeVec,
}

impl PipelineMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = PipelineMetrics {
            consumed: IntCounterVec::new(Opts::new(EVENTS_CONSUMED, "Records consumed, by topic"), &["topic"])?,
            produced: IntCounterVec::new(
                Opts::new(EVENTS_PRODUCED, "Records produced and acknowledged, by topic"),
                &["topic"],
            )?,
            dlq: IntCounterVec::new(
                Opts::new(DLQ_EVENTS, "Records sent to the dead-letter topic, by reason"),
                &["reason"],
            )?,
            batch_seconds: HistogramVec::new(
                HistogramOpts::new(BATCH_SECONDS, "Time per micro-batch stage").buckets(latency_buckets()),
                &["stage"],
            )?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new(BATCH_SIZE, "Records per micro-batch")
                    .buckets(vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0]),
            )?,
            retries: IntCounter::new(PROCESS_RETRIES, "Micro-batches retried after a dependency error")?,
            commits: IntCounterVec::new(Opts::new(COMMITS, "Offset commits, by result"), &["result"])?,
            inflight: IntGauge::new(INFLIGHT_BATCH, "Records in the micro-batch being processed")?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(CONSUMER_LAG, "Records between the partition's end and the group's committed offset"),
                &["topic", "partition"],
            )?,
        };
        registry.register(Box::new(m.consumed.clone()))?;
        registry.register(Box::new(m.produced.clone()))?;
        registry.register(Box::new(m.dlq.clone()))?;
        registry.register(Box::new(m.batch_seconds.clone()))?;
        registry.register(Box::new(m.batch_size.clone()))?;
        registry.register(Box::new(m.retries.clone()))?;
        registry.register(Box::new(m.commits.clone()))?;
        registry.register(Box::new(m.inflight.clone()))?;
        registry.register(Box::new(m.consumer_lag.clone()))?;
        Ok(m)
    }

    /// Creates the series an alert or a dashboard rates over before the first event of that
    /// kind, so that `rate()` reads 0 rather than nothing (Prometheus's advice for counters
    /// with known label values).
    /// (The consumer lag is the exception: its partitions are known only once assigned, and
    /// librdkafka's first statistics, `statistics.interval.ms` after joining, create them.)
    pub fn init_series(&self, inputs: &[&str], outputs: &[&str], dlq_reasons: &[&str]) {
        for t in inputs {
            self.consumed.with_label_values(&[t]);
        }
        for t in outputs {
            self.produced.with_label_values(&[t]);
        }
        for r in dlq_reasons {
            self.dlq.with_label_values(&[r]);
        }
        for r in ["ok", "error"] {
            self.commits.with_label_values(&[r]);
        }
        for s in ["process", "produce"] {
            self.batch_seconds.with_label_values(&[s]);
        }
    }

    /// Metrics for a one-off producer (a tool, a test) that nobody scrapes.
    pub fn standalone() -> Self {
        Self::register(&Registry::new()).expect("a fresh registry has no name clashes")
    }
}

/// Redis round trips of a service, by operation (`history` in the enricher; `sessions_read`,
/// `sessions_write`, `recent_events` in the scorer).
#[derive(Clone)]
pub struct RedisMetrics {
    pub seconds: HistogramVec,
    pub errors: IntCounterVec,
}

impl RedisMetrics {
    pub fn register(registry: &Registry, ops: &[&str]) -> prometheus::Result<Self> {
        let m = RedisMetrics {
            seconds: HistogramVec::new(
                HistogramOpts::new(REDIS_SECONDS, "Redis pipeline round trips").buckets(latency_buckets()),
                &["op"],
            )?,
            errors: IntCounterVec::new(Opts::new(REDIS_ERRORS, "Redis errors, by operation"), &["op"])?,
        };
        registry.register(Box::new(m.seconds.clone()))?;
        registry.register(Box::new(m.errors.clone()))?;
        for op in ops {
            m.seconds.with_label_values(&[op]);
            m.errors.with_label_values(&[op]);
        }
        Ok(m)
    }

    /// Awaits `fut`, observing its duration, or counting its error, under `op`.
    pub async fn time<T, E>(&self, op: &str, fut: impl std::future::Future<Output = Result<T, E>>) -> Result<T, E> {
        let started = std::time::Instant::now();
        let out = fut.await;
        match &out {
            Ok(_) => self.seconds.with_label_values(&[op]).observe(started.elapsed().as_secs_f64()),
            Err(_) => self.errors.with_label_values(&[op]).inc(),
        }
        out
    }
}
