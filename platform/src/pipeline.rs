//! The at-least-once consume → process → produce → commit loop.
//!
//! A micro-batch is read from the input topics, handed to a [`Processor`], and every output
//! record is produced in input order. Only when the broker has acknowledged all of them are the
//! input offsets committed. A crash at any point therefore re-delivers, never loses. A processor
//! error (a dependency down) retries the same batch with backoff: the consumer stops polling, so
//! lag grows while memory does not.

use crate::config::KafkaArgs;
use crate::http::Readiness;
use crate::metrics::PipelineMetrics;
use anyhow::Context;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One consumed record, detached from the consumer.
#[derive(Debug, Clone)]
pub struct InRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// The record's broker timestamp: when the event entered the pipeline.
    pub timestamp_ms: Option<i64>,
}

/// The most of a bad record's payload a dead letter carries.
pub const DLQ_MAX_PAYLOAD: usize = 256 * 1024;

/// One record to produce.
#[derive(Debug, Clone)]
pub struct OutRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    /// Set for dead letters, counted by reason.
    pub dlq_reason: Option<&'static str>,
}

impl OutRecord {
    pub fn new(topic: &str, key: Option<Vec<u8>>, payload: Vec<u8>) -> Self {
        OutRecord { topic: topic.to_string(), key, payload, headers: Vec::new(), dlq_reason: None }
    }

    /// The original bytes and key, with the reason and the source position as headers. A
    /// payload over [`DLQ_MAX_PAYLOAD`] keeps its head only (and says so in a header), so a dead
    /// letter can always be produced within a broker's record size limit.
    pub fn dead_letter(dlq_topic: &str, input: &InRecord, reason: &'static str, error: &str) -> Self {
        let mut error = error.to_string();
        let mut cut = error.len().min(1024);
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
        let keep = input.payload.len().min(DLQ_MAX_PAYLOAD);
        let mut record = OutRecord {
            topic: dlq_topic.to_string(),
            key: input.key.clone(),
            payload: input.payload[..keep].to_vec(),
            headers: vec![
                ("dlq.reason", reason.as_bytes().to_vec()),
                ("dlq.error", error.into_bytes()),
                ("dlq.source.topic", input.topic.as_bytes().to_vec()),
                ("dlq.source.partition", input.partition.to_string().into_bytes()),
                ("dlq.source.offset", input.offset.to_string().into_bytes()),
            ],
            dlq_reason: Some(reason),
        };
        if keep < input.payload.len() {
            record.headers.push(("dlq.truncated_from", input.payload.len().to_string().into_bytes()));
        }
        record
    }
}

/// A service's work on one micro-batch. Expected per-record failures (bad input) become
/// dead-letter records; an `Err` means "could not process now" and the batch is retried.
pub trait Processor: Send {
    fn process(&mut self, batch: &[InRecord]) -> impl Future<Output = anyhow::Result<Vec<OutRecord>>> + Send;
}

/// Turns librdkafka's periodic statistics into the consumer-lag gauge.
pub struct LagContext {
    lag: prometheus::IntGaugeVec,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        // Partitions this instance no longer owns (a rebalance) must not keep a stale lag.
        self.lag.reset();
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1 is librdkafka's internal "unassigned" partition; a negative lag is unknown.
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                self.lag.with_label_values(&[topic, &partition.to_string()]).set(p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for LagContext {}

pub struct Pipeline {
    consumer: StreamConsumer<LagContext>,
    producer: FutureProducer,
    metrics: PipelineMetrics,
    batch_max: usize,
    linger: Duration,
    lanes: usize,
}

impl Pipeline {
    pub fn new(kafka: &KafkaArgs, group_id: &str, topics: &[&str], metrics: PipelineMetrics) -> anyhow::Result<Self> {
        let consumer: StreamConsumer<LagContext> = kafka
            .consumer_config(group_id)?
            .create_with_context(LagContext { lag: metrics.consumer_lag.clone() })
            .context("creating the Kafka consumer (check --brokers / KAFKA_BROKERS)")?;
        consumer.subscribe(topics).with_context(|| format!("subscribing to {topics:?}"))?;
        let producer: FutureProducer = kafka.producer_config()?.create().context("creating the Kafka producer")?;
        Ok(Pipeline {
            consumer,
            producer,
            metrics,
            batch_max: kafka.batch_max.max(1),
            linger: Duration::from_millis(kafka.batch_linger_ms),
            lanes: kafka.lanes.max(1),
        })
    }

    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Runs until `shutdown`; returns an error (so the process exits non-zero) if output cannot
    /// be delivered. Offsets are committed only for batches whose output was acknowledged.
    pub async fn run<P: Processor + Clone + 'static>(
        self,
        processor: P,
        ready: Readiness,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut lanes: Vec<Option<P>> = (0..self.lanes).map(|_| Some(processor.clone())).collect();
        ready.set(true);
        let mut committed: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let result = loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                b = self.next_batch() => b,
            };
            if batch.is_empty() {
                continue;
            }
            self.metrics.batch_size.observe(batch.len() as f64);
            self.metrics.inflight.set(batch.len() as i64);
            for r in &batch {
                self.metrics.consumed.with_label_values(&[&r.topic]).inc();
            }
            // Where each input partition ends in this batch: committed once the output is acked.
            let mut ends: Vec<(String, i32, i64)> = Vec::new();
            for r in &batch {
                match ends.iter_mut().find(|(t, p, _)| *p == r.partition && *t == r.topic) {
                    Some(e) => e.2 = e.2.max(r.offset + 1),
                    None => ends.push((r.topic.clone(), r.partition, r.offset + 1)),
                }
            }
            let started = Instant::now();
            let Some(out) = self.process_in_lanes(&mut lanes, batch, &shutdown).await else {
                // Shut down while a dependency was failing: leave the batch uncommitted.
                break Ok(());
            };
            self.metrics.batch_seconds.with_label_values(&["process"]).observe(started.elapsed().as_secs_f64());
            let produced_at = Instant::now();
            if let Err(e) = self.produce_all(&out).await {
                break Err(e);
            }
            self.metrics.batch_seconds.with_label_values(&["produce"]).observe(produced_at.elapsed().as_secs_f64());
            for (topic, partition, end) in ends {
                let e = committed.entry((topic, partition)).or_insert(-1);
                *e = (*e).max(end);
            }
            self.commit(&committed, CommitMode::Async);
            self.metrics.inflight.set(0);
        };
        ready.set(false);
        let _ = self.producer.flush(Duration::from_secs(10));
        if !committed.is_empty() {
            self.commit(&committed, CommitMode::Sync);
        }
        result
    }

    async fn next_batch(&self) -> Vec<InRecord> {
        let mut batch = Vec::new();
        match self.consumer.recv().await {
            Ok(m) => batch.push(detach(&m)),
            Err(e) => {
                tracing::warn!(error = %e, "kafka consume error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                return batch;
            }
        }
        let deadline = tokio::time::Instant::now() + self.linger;
        while batch.len() < self.batch_max {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(m)) => batch.push(detach(&m)),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consume error");
                    break;
                }
                Err(_) => break,
            }
        }
        batch
    }

    /// Splits `batch` by input partition into lanes and processes them concurrently, each
    /// lane retried on its own until it succeeds. The output is the lanes' outputs in lane
    /// order; within a lane, in input order (so per partition, in offset order). `None` when
    /// shut down while a dependency was failing.
    async fn process_in_lanes<P: Processor + 'static>(
        &self,
        lanes: &mut [Option<P>],
        batch: Vec<InRecord>,
        shutdown: &CancellationToken,
    ) -> Option<Vec<OutRecord>> {
        let n = lanes.len();
        let lane = |r: &InRecord| r.partition.unsigned_abs() as usize % n;
        let first = batch.first().map(lane).unwrap_or(0);
        if batch.iter().all(|r| lane(r) == first) {
            // One lane: no split, no task, no hand-over.
            let p = lanes[first].as_mut().expect("processors are returned after every batch");
            return process_with_retry(p, &batch, &self.metrics, shutdown).await;
        }
        let capacity = batch.len();
        let mut groups: Vec<Vec<InRecord>> = vec![Vec::new(); n];
        for r in batch {
            groups[lane(&r)].push(r);
        }
        let busy: Vec<usize> = (0..n).filter(|i| !groups[*i].is_empty()).collect();
        let mut tasks = Vec::with_capacity(busy.len());
        for i in busy {
            let mut p = lanes[i].take().expect("processors are returned after every batch");
            let group = std::mem::take(&mut groups[i]);
            let (metrics, token) = (self.metrics.clone(), shutdown.clone());
            tasks.push((
                i,
                tokio::spawn(async move {
                    let out = process_with_retry(&mut p, &group, &metrics, &token).await;
                    (p, out)
                }),
            ));
        }
        let mut out = Vec::with_capacity(capacity);
        let mut complete = true;
        for (i, task) in tasks {
            match task.await {
                Ok((p, lane_out)) => {
                    lanes[i] = Some(p);
                    match lane_out {
                        Some(o) => out.extend(o),
                        None => complete = false,
                    }
                }
                // A panicking processor is a bug: take the service down rather than skip input.
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        complete.then_some(out)
    }

    /// Enqueues every record in order (waiting while librdkafka's queue is full), then waits
    /// for every acknowledgement.
    pub async fn produce_all(&self, out: &[OutRecord]) -> anyhow::Result<()> {
        produce_all(&self.producer, out, &self.metrics).await
    }

    fn commit(&self, offsets: &BTreeMap<(String, i32), i64>, mode: CommitMode) {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in offsets {
            if tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset)).is_err() {
                continue;
            }
        }
        match self.consumer.commit(&tpl, mode) {
            Ok(()) => self.metrics.commits.with_label_values(&["ok"]).inc(),
            Err(e) => {
                // After a rebalance the new owner re-processes: duplicates, never loss.
                self.metrics.commits.with_label_values(&["error"]).inc();
                tracing::warn!(error = %e, "offset commit failed");
            }
        }
    }
}

/// Processes `batch`, retrying with backoff while the processor reports a dependency error.
/// `None` when shut down first.
async fn process_with_retry<P: Processor>(
    processor: &mut P,
    batch: &[InRecord],
    metrics: &PipelineMetrics,
    shutdown: &CancellationToken,
) -> Option<Vec<OutRecord>> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match processor.process(batch).await {
            Ok(out) => return Some(out),
            Err(e) => {
                metrics.retries.inc();
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "processing failed; retrying the batch"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(backoff) => {},
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// See [`Pipeline::produce_all`]; shared with producers that are not pipelines (label API).
pub async fn produce_all(
    producer: &FutureProducer,
    out: &[OutRecord],
    metrics: &PipelineMetrics,
) -> anyhow::Result<()> {
    let mut pending = Vec::with_capacity(out.len());
    for r in out {
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(Header { key: k, value: Some(v.as_slice()) });
        }
        let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&r.topic).payload(&r.payload).headers(headers);
        if let Some(k) = &r.key {
            record = record.key(k);
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => {
                    return Err(anyhow::Error::new(e).context(format!("producing to {}", r.topic)));
                }
            }
        }
    }
    for (delivery, r) in pending.into_iter().zip(out) {
        match delivery.await {
            Ok(Ok(_)) => {
                metrics.produced.with_label_values(&[&r.topic]).inc();
                if let Some(reason) = r.dlq_reason {
                    metrics.dlq.with_label_values(&[reason]).inc();
                }
            }
            Ok(Err((e, _))) => {
                return Err(
                    anyhow::Error::new(e).context(format!("broker did not acknowledge a record for {}", r.topic))
                );
            }
            Err(_) => anyhow::bail!("producer was shut down before acknowledging a record for {}", r.topic),
        }
    }
    Ok(())
}

fn detach(m: &BorrowedMessage<'_>) -> InRecord {
    InRecord {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        timestamp_ms: m.timestamp().to_millis(),
    }
}
