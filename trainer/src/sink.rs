//! `trainer sink`: topics into the lake, exactly once per record.
//!
//! Each input partition is buffered on its own and rolled into Parquet files by record count or
//! age. A roll's files are named after the partition's offset range
//! (`{topic}-p{partition}-{first}-{last}.parquet`, one per date), written atomically and durably
//! (locally: beside, fsynced and renamed; on S3: one acknowledged `PUT`); then the partition's
//! manifest (`_sink/{topic}-p{partition}.json`, the next offset to write) is replaced the same
//! way, and only then is the offset committed to Kafka.
//!
//! The manifest, not the Kafka commit, decides what is in the lake: on restart a partition skips
//! records below its manifest offset (written, commit lost) and deletes files whose range starts
//! at or after it (a roll that crashed half-way; its records come again). So a restart never
//! duplicates or loses a record.

use anyhow::Context;
use lake::{Lake, LakeFile};
use models::{ClickEvent, EnrichedEvent, Label, Verdict};
use platform::config::EventLimits;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub const RECORDS: &str = "fraud_sink_records_total";
pub const FILES: &str = "fraud_sink_files_total";
pub const ROLL_SECONDS: &str = "fraud_sink_roll_seconds";
/// The outcome of a record the sink could not read.
const UNDECODABLE: &str = "undecodable";
const MANIFESTS: &str = "_sink";

#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    #[command(flatten)]
    pub kafka: platform::config::KafkaArgs,
    #[command(flatten)]
    pub topics: platform::config::TopicArgs,
    /// Lake the tables are written into: a directory, or `s3://BUCKET/PREFIX` (credentials and
    /// endpoint from the `AWS_*` environment variables).
    #[arg(long, env = "LAKE_URL", default_value = "data/lake", value_parser = lake::Lake::parse_arg)]
    pub lake: lake::Lake,
    /// Consumer group of the sink.
    #[arg(long, env = "SINK_GROUP_ID", default_value = "lake-sink")]
    pub group_id: String,
    /// Roll a partition's file after this many records…
    #[arg(long, env = "SINK_ROLL_RECORDS", default_value_t = 100_000)]
    pub roll_records: usize,
    /// …or once its oldest buffered record has waited this long (seconds).
    #[arg(long, env = "SINK_ROLL_SECONDS", default_value_t = 60.0)]
    pub roll_seconds: f64,
    /// The enricher's limits too: an event it dead-letters must not be replayed from the lake,
    /// and one it takes in must be there.
    #[command(flatten)]
    pub limits: EventLimits,
}

#[derive(Clone)]
pub struct SinkMetrics {
    records: IntCounterVec,
    files: IntCounterVec,
    roll: HistogramVec,
}

impl SinkMetrics {
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        let m = SinkMetrics {
            records: IntCounterVec::new(
                Opts::new(
                    RECORDS,
                    "Records the lake sink consumed, by topic and outcome (written, undecodable, ts_ahead_of_record, already_in_lake)",
                ),
                &["topic", "outcome"],
            )?,
            files: IntCounterVec::new(Opts::new(FILES, "Parquet files the lake sink wrote, by table"), &["table"])?,
            roll: HistogramVec::new(
                HistogramOpts::new(ROLL_SECONDS, "Time to write, fsync and record one roll of a partition")
                    .buckets(platform::metrics::latency_buckets()),
                &["table"],
            )?,
        };
        r.register(Box::new(m.records.clone()))?;
        r.register(Box::new(m.files.clone()))?;
        r.register(Box::new(m.roll.clone()))?;
        Ok(m)
    }
}

/// What a topic becomes in the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Events,
    Features,
    Verdicts,
    Labels,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Events => lake::EVENTS,
            Table::Features => lake::FEATURES,
            Table::Verdicts => lake::VERDICTS,
            Table::Labels => lake::LABELS,
        }
    }
}

enum Items {
    Events(Vec<ClickEvent>),
    Features(Vec<EnrichedEvent>),
    Verdicts(Vec<Verdict>),
    Labels(Vec<Label>),
}

impl Items {
    fn new(t: Table) -> Items {
        match t {
            Table::Events => Items::Events(Vec::new()),
            Table::Features => Items::Features(Vec::new()),
            Table::Verdicts => Items::Verdicts(Vec::new()),
            Table::Labels => Items::Labels(Vec::new()),
        }
    }

    /// Decodes and keeps a record's item; a record left out says why, as the outcome label and
    /// a message.
    fn push(
        &mut self,
        payload: &[u8],
        record_ms: Option<i64>,
        limits: &EventLimits,
    ) -> Result<(), (&'static str, String)> {
        let e = |e: serde_json::Error| (UNDECODABLE, e.to_string());
        match self {
            // Left out as the enricher dead-letters it, so replay sees the events it saw.
            Items::Events(v) => v.push(limits.decode(payload, record_ms).map_err(|e| {
                let outcome = match e {
                    models::event::DecodeError::AheadOfRecord { .. } => e.reason(),
                    _ => UNDECODABLE,
                };
                (outcome, e.to_string())
            })?),
            Items::Features(v) => v.push(serde_json::from_slice(payload).map_err(e)?),
            Items::Verdicts(v) => v.push(serde_json::from_slice(payload).map_err(e)?),
            Items::Labels(v) => v.push(serde_json::from_slice(payload).map_err(e)?),
        }
        Ok(())
    }

    fn write(&self, lake: &Lake, stem: &str) -> anyhow::Result<Vec<LakeFile>> {
        use lake::Durability::Fsync;
        match self {
            Items::Events(v) => lake.write_events(stem, v, Fsync),
            Items::Labels(v) => lake.write_labels(stem, v, Fsync),
            Items::Features(v) => {
                lake.write_partitioned(lake::FEATURES, stem, v, |e| e.event.ts, lake::features_batch, Fsync)
            }
            Items::Verdicts(v) => {
                lake.write_partitioned(lake::VERDICTS, stem, v, |v| v.ts, lake::verdicts_batch, Fsync)
            }
        }
    }
}

/// One partition's unwritten records: offsets `first..=last` (undecodable ones included, so the
/// range is contiguous and the manifest moves past them).
struct Roll {
    first: i64,
    last: i64,
    records: usize,
    items: Items,
    opened: Instant,
}

struct PartitionState {
    table: Table,
    /// The next offset the lake does not hold yet (the manifest).
    next: i64,
    roll: Option<Roll>,
}

/// The name of one input partition in the lake: `{topic}-p{partition}`.
pub fn source(topic: &str, partition: i32) -> String {
    format!("{topic}-p{partition}")
}

/// A roll's file stem: the source and its offset range, `{source}-{first}-{last}`.
pub fn roll_stem(source: &str, first: i64, last: i64) -> String {
    format!("{source}-{first:020}-{last:020}")
}

/// The inverse of [`roll_stem`]: `(source, first, last)`, or `None` for a file the sink did
/// not name (a generator's, another tool's).
pub fn parse_roll_stem(stem: &str) -> Option<(&str, i64, i64)> {
    let mut parts = stem.rsplitn(3, '-');
    let last = parts.next()?.parse().ok()?;
    let first = parts.next()?.parse().ok()?;
    Some((parts.next()?, first, last))
}

fn manifest_file(source: &str) -> LakeFile {
    LakeFile::new(format!("{MANIFESTS}/{source}.json"))
}

/// The next offset of `source` the lake does not hold: everything below it is in the lake, in
/// files of completed rolls (0 when the source has no manifest).
pub fn manifest_next(lake: &Lake, source: &str) -> anyhow::Result<i64> {
    let file = manifest_file(source);
    match lake.get(&file)? {
        Some(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["next_offset"].as_i64())
            .with_context(|| format!("{} is not a sink manifest", lake.describe(&file))),
        None => Ok(0),
    }
}

/// Reads the partition's manifest and deletes files of rolls that did not complete.
fn open_partition(lake: &Lake, table: Table, topic: &str, partition: i32) -> anyhow::Result<PartitionState> {
    let own = source(topic, partition);
    let next = manifest_next(lake, &own)?;
    for (_, files) in lake.partitions(table.name())? {
        for f in files {
            if parse_roll_stem(f.stem()).is_some_and(|(s, first, _)| s == own && first >= next) {
                tracing::warn!(file = %lake.describe(&f), next, "removing a file of a roll that did not complete; its records are read again");
                lake.remove(&f)?;
            }
        }
    }
    Ok(PartitionState { table, next, roll: None })
}

/// Writes a roll's files, then the manifest. Returns the files.
fn write_roll(lake: &Lake, topic: &str, partition: i32, roll: &Roll) -> anyhow::Result<Vec<LakeFile>> {
    let source = source(topic, partition);
    let files = roll.items.write(lake, &roll_stem(&source, roll.first, roll.last))?;
    record_manifest(lake, &source, roll.last + 1)?;
    Ok(files)
}

/// Durably records that the lake holds every offset of `source` below `next`.
pub(crate) fn record_manifest(lake: &Lake, source: &str, next: i64) -> anyhow::Result<()> {
    let manifest = serde_json::json!({ "next_offset": next }).to_string().into_bytes();
    lake.put(&manifest_file(source), manifest, lake::Durability::Fsync)
}

pub struct Sink {
    args: SinkArgs,
    metrics: SinkMetrics,
    tables: HashMap<String, Table>,
    partitions: HashMap<(String, i32), PartitionState>,
}

impl Sink {
    pub fn new(args: SinkArgs, metrics: SinkMetrics) -> Sink {
        let t = &args.topics;
        let tables = [
            (t.clickstream_topic.clone(), Table::Events),
            (t.enriched_topic.clone(), Table::Features),
            (t.verdicts_topic.clone(), Table::Verdicts),
            (t.labels_topic.clone(), Table::Labels),
        ]
        .into_iter()
        .collect();
        Sink { args, metrics, tables, partitions: HashMap::new() }
    }

    /// Consumes until `shutdown`, then writes what is buffered and commits it.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let lake = self.args.lake.clone();
        tokio::task::spawn_blocking(move || lake.prepare()).await??;
        let consumer: StreamConsumer =
            self.args.kafka.consumer_config(&self.args.group_id)?.create().context("creating the sink's consumer")?;
        let topics: Vec<&str> = self.tables.keys().map(String::as_str).collect();
        consumer.subscribe(&topics).context("subscribing to the sink's topics")?;
        tracing::info!(?topics, lake = %self.args.lake, "lake sink running");
        let tick = Duration::from_millis(250);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                m = tokio::time::timeout(tick, consumer.recv()) => match m {
                    Ok(Ok(msg)) => {
                        let key = (msg.topic().to_string(), msg.partition());
                        let record_ms = msg.timestamp().to_millis();
                        self.accept(&key, msg.offset(), msg.payload().unwrap_or_default(), record_ms).await?;
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "consumer error; retrying"),
                    Err(_) => {}
                },
            }
            self.roll_due(&consumer, false).await?;
        }
        self.roll_due(&consumer, true).await?;
        // Async commits are in flight; a final sync commit of the same positions settles them.
        let _ = consumer.commit_consumer_state(CommitMode::Sync);
        tracing::info!("lake sink stopped; everything consumed is in the lake");
        Ok(())
    }

    async fn accept(
        &mut self,
        key: &(String, i32),
        offset: i64,
        payload: &[u8],
        record_ms: Option<i64>,
    ) -> anyhow::Result<()> {
        let Some(table) = self.tables.get(&key.0).copied() else { return Ok(()) };
        if !self.partitions.contains_key(key) {
            let (root, topic, p) = (self.args.lake.clone(), key.0.clone(), key.1);
            let st = tokio::task::spawn_blocking(move || open_partition(&root, table, &topic, p)).await??;
            self.partitions.insert(key.clone(), st);
        }
        let st = self.partitions.get_mut(key).expect("inserted above");
        if offset < st.next {
            self.metrics.records.with_label_values(&[&key.0, "already_in_lake"]).inc();
            return Ok(());
        }
        let roll = st.roll.get_or_insert_with(|| Roll {
            first: offset,
            last: offset,
            records: 0,
            items: Items::new(st.table),
            opened: Instant::now(),
        });
        roll.last = offset;
        roll.records += 1;
        match roll.items.push(payload, record_ms, &self.args.limits) {
            Ok(()) => self.metrics.records.with_label_values(&[&key.0, "written"]).inc(),
            Err((outcome, reason)) => {
                // The enricher dead-letters bad clickstream records; the sink only counts them.
                tracing::warn!(topic = %key.0, partition = key.1, offset, %reason, "record left out of the lake");
                self.metrics.records.with_label_values(&[&key.0, outcome]).inc();
            }
        }
        Ok(())
    }

    /// Writes every roll that is full or old enough (all of them when `all`), then commits.
    async fn roll_due(&mut self, consumer: &StreamConsumer, all: bool) -> anyhow::Result<()> {
        let max_age = Duration::from_secs_f64(self.args.roll_seconds.max(0.0));
        let due: Vec<(String, i32)> = self
            .partitions
            .iter()
            .filter(|(_, s)| {
                s.roll
                    .as_ref()
                    .is_some_and(|r| all || r.records >= self.args.roll_records || r.opened.elapsed() >= max_age)
            })
            .map(|(k, _)| k.clone())
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let mut commit = rdkafka::TopicPartitionList::new();
        for key in due {
            let st = self.partitions.get_mut(&key).expect("listed above");
            let roll = st.roll.take().expect("due rolls exist");
            let (root, table) = (self.args.lake.clone(), st.table);
            let started = Instant::now();
            let topic = key.0.clone();
            let (roll, files) = tokio::task::spawn_blocking(move || {
                let files = write_roll(&root, &topic, key.1, &roll);
                (roll, files)
            })
            .await?;
            let files = files.with_context(|| format!("writing {} partition {} into the lake", key.0, key.1))?;
            self.metrics.roll.with_label_values(&[table.name()]).observe(started.elapsed().as_secs_f64());
            self.metrics.files.with_label_values(&[table.name()]).inc_by(files.len() as u64);
            st.next = roll.last + 1;
            tracing::debug!(topic = %key.0, partition = key.1, first = roll.first, last = roll.last, files = files.len(), "rolled");
            commit.add_partition_offset(&key.0, key.1, rdkafka::Offset::Offset(st.next))?;
        }
        // The lake already holds these records (the manifests say so); the commit only saves
        // re-reading them after a restart.
        if let Err(e) = consumer.commit(&commit, CommitMode::Async) {
            tracing::warn!(error = %e, "offset commit failed; a restart re-reads and skips what the lake holds");
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal login event at `ts` (also used by the compaction tests).
    pub(crate) fn event(id: &str, ts: i64) -> ClickEvent {
        ClickEvent::decode(
            format!(
                r#"{{"event_id":"{id}","ts":"{}","session_id":"s","type":"login","ip":"10.0.0.1"}}"#,
                models::format_ts(ts)
            )
            .as_bytes(),
            10_000,
        )
        .unwrap()
    }

    #[test]
    fn a_roll_that_crashed_half_way_is_removed_and_a_complete_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = &Lake::dir(dir.path());
        let roll = |first, last, ids: &[(&str, i64)]| Roll {
            first,
            last,
            records: ids.len(),
            items: Items::Events(ids.iter().map(|(id, ts)| event(id, *ts)).collect()),
            opened: Instant::now(),
        };
        const DAY: i64 = 86_400_000;
        write_roll(root, "clickstream", 0, &roll(0, 1, &[("a", 0), ("b", DAY)])).unwrap();
        // A second roll wrote its files but crashed before its manifest: simulate by writing
        // them and putting the first roll's manifest back.
        let manifest = root.get(&manifest_file("clickstream-p0")).unwrap().unwrap();
        write_roll(root, "clickstream", 0, &roll(2, 3, &[("c", 0), ("d", DAY)])).unwrap();
        root.put(&manifest_file("clickstream-p0"), manifest.to_vec(), lake::Durability::Fsync).unwrap();
        // Another partition's files are not touched.
        write_roll(root, "clickstream", 1, &roll(5, 5, &[("e", 0)])).unwrap();

        let st = open_partition(root, Table::Events, "clickstream", 0).unwrap();
        assert_eq!(st.next, 2);
        let mut ids: Vec<String> = root
            .partitions(lake::EVENTS)
            .unwrap()
            .into_iter()
            .flat_map(|(_, f)| root.read_events(&f).unwrap().0)
            .map(|e| e.event_id)
            .collect();
        ids.sort();
        assert_eq!(ids, ["a", "b", "e"]);
        assert_eq!(
            open_partition(root, Table::Events, "clickstream", 7).unwrap().next,
            0,
            "no manifest: from the start"
        );
    }
}
