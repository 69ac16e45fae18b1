//! The lake: Hive-partitioned Parquet tables (contract layout) in a local directory or an object
//! store ([`store`]: `s3://bucket/prefix`).
//!
//! - `events/date=YYYY-MM-DD/*.parquet`: click events, one column per field, `ts` as a UTC
//!   timestamp, `attrs` as a JSON string.
//! - `labels/date=YYYY-MM-DD/*.parquet`: labels, partitioned by the label's `ts`.
//! - `features/date=YYYY-MM-DD/*.parquet` (ours): what the enricher served, one row per enriched
//!   event: `event_id`, `ts`, `session_id`, `user_id`, `feature_schema`, `history_unavailable`,
//!   `list_hits` (JSON), then one Float64 column per feature, named as the feature.
//! - `verdicts/date=YYYY-MM-DD/*.parquet` (ours): one row per verdict, partitioned by the event's
//!   `ts`; scalar fields as columns, `restrictions` and `reasons` as JSON strings.
//!
//! Writers produce exactly that. The readers are tolerant of other writers (another simulator,
//! polars, Spark): timestamps in any unit, large or view strings, any integer width, extra
//! columns ignored, missing optional columns read as null. Events are read one date partition at
//! a time, so replay memory is bounded by a day of events, not by the lake.
//!
//! - [`store`]: [`Lake`] (where the files are) and [`LakeFile`] (a file, by its path below the root).
//! - here: the tables' schemas, record batches from our types and back, and partitioned reads
//!   and writes.

pub mod store;

pub use store::{Durability, Lake, LakeFile};

use anyhow::{Context, bail};
use arrow_array::builder::{BooleanBuilder, Float64Builder, Int32Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use models::{ClickEvent, EnrichedEvent, Label, LabelKind, LabelSource, Outcome, Verdict};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::sync::Arc;

pub const EVENTS: &str = "events";
pub const LABELS: &str = "labels";
pub const FEATURES: &str = "features";
pub const VERDICTS: &str = "verdicts";

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

pub fn events_schema() -> Schema {
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Schema::new(vec![
        s("event_id", false),
        Field::new("ts", ts_type(), false),
        s("session_id", false),
        s("user_id", true),
        s("type", false),
        s("ip", false),
        s("device_id", true),
        s("user_agent", true),
        s("path", true),
        s("method", true),
        Field::new("status", DataType::Int32, true),
        s("referrer", true),
        s("country", true),
        s("outcome", true),
        Field::new("amount", DataType::Float64, true),
        s("currency", true),
        s("payee_id", true),
        s("attrs", true),
    ])
}

pub fn labels_schema() -> Schema {
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Schema::new(vec![
        s("label_id", false),
        Field::new("ts", ts_type(), false),
        s("user_id", false),
        s("session_id", true),
        s("event_id", true),
        Field::new("is_fraud", DataType::Boolean, false),
        s("kind", true),
        s("source", true),
    ])
}

/// `YYYY-MM-DD` of an epoch-millisecond time, in UTC.
pub fn date_of(ts_ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ts_ms).unwrap_or_default().format("%Y-%m-%d").to_string()
}

fn props() -> WriterProperties {
    // Unique-per-row columns gain nothing from dictionary encoding and cost the most to encode.
    let unique = ["event_id", "label_id", "session_id", "attrs"].map(parquet::schema::types::ColumnPath::from);
    unique
        .into_iter()
        .fold(WriterProperties::builder().set_compression(Compression::SNAPPY), |b, c| {
            b.set_column_dictionary_enabled(c, false)
        })
        .build()
}

/// A batch as the bytes of a Parquet file.
fn parquet_bytes(batches: impl IntoIterator<Item = RecordBatch>) -> anyhow::Result<Option<Vec<u8>>> {
    let mut writer: Option<ArrowWriter<Vec<u8>>> = None;
    for batch in batches {
        if writer.is_none() {
            writer = Some(ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props()))?);
        }
        writer.as_mut().expect("set above").write(&batch)?;
    }
    writer.map(|w| w.into_inner().map_err(Into::into)).transpose()
}

impl Lake {
    /// Rewrites the rows of `inputs` (files of one table, same schema) as the one file `out`,
    /// durably and atomically. One date partition's rows are held in memory meanwhile.
    pub fn merge(&self, inputs: &[LakeFile], out: &LakeFile) -> anyhow::Result<()> {
        let mut batches = Vec::new();
        for f in inputs {
            batches.extend(self.read_batches(f)?);
        }
        match parquet_bytes(batches).with_context(|| format!("merging into {}", self.describe(out)))? {
            Some(bytes) => self.put(out, bytes, Durability::Fsync),
            None => Ok(()),
        }
    }
}

/// Date runs of `items` sorted by time, as index ranges (no copies).
fn date_runs<T>(items: &[T], ts: impl Fn(&T) -> i64) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let date = date_of(ts(&items[start]));
        let mut end = start + 1;
        while end < items.len() && date_of(ts(&items[end])) == date {
            end += 1;
        }
        out.push((date, start..end));
        start = end;
    }
    out
}

/// `items` in time order, borrowed when they already are.
fn time_ordered<T: Clone>(items: &[T], ts: impl Fn(&T) -> i64) -> std::borrow::Cow<'_, [T]> {
    if items.windows(2).all(|w| ts(&w[0]) <= ts(&w[1])) {
        std::borrow::Cow::Borrowed(items)
    } else {
        let mut v = items.to_vec();
        v.sort_by_key(|x| ts(x));
        std::borrow::Cow::Owned(v)
    }
}

fn opt_str(b: &mut StringBuilder, v: Option<&str>) {
    match v {
        Some(v) => b.append_value(v),
        None => b.append_null(),
    }
}

pub fn events_batch(events: &[ClickEvent]) -> anyhow::Result<RecordBatch> {
    let n = events.len();
    let mut cols: Vec<StringBuilder> = (0..15).map(|_| StringBuilder::with_capacity(n, n * 16)).collect();
    let mut ts = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut status = Int32Builder::with_capacity(n);
    let mut amount = Float64Builder::with_capacity(n);
    for e in events {
        cols[0].append_value(&e.event_id);
        ts.append_value(e.ts);
        cols[1].append_value(&e.session_id);
        opt_str(&mut cols[2], e.user_id.as_deref());
        cols[3].append_value(&e.event_type);
        cols[4].append_value(e.ip.to_string());
        opt_str(&mut cols[5], e.device_id.as_deref());
        opt_str(&mut cols[6], e.user_agent.as_deref());
        opt_str(&mut cols[7], e.path.as_deref());
        opt_str(&mut cols[8], e.method.as_deref());
        status.append_option(e.status.map(i32::from));
        opt_str(&mut cols[9], e.referrer.as_deref());
        opt_str(&mut cols[10], e.country.as_deref());
        opt_str(&mut cols[11], e.outcome.map(|o| if o == Outcome::Success { "success" } else { "failure" }));
        amount.append_option(e.amount);
        opt_str(&mut cols[12], e.currency.as_deref());
        opt_str(&mut cols[13], e.payee_id.as_deref());
        let attrs = e.attrs.as_ref().map(|a| serde_json::to_string(a).unwrap_or_default());
        opt_str(&mut cols[14], attrs.as_deref());
    }
    let mut c = cols.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut next = || c.next().expect("15 string columns");
    let arrays: Vec<ArrayRef> = vec![
        next(),
        Arc::new(ts.finish()),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        Arc::new(status.finish()),
        next(),
        next(),
        next(),
        Arc::new(amount.finish()),
        next(),
        next(),
        next(),
    ];
    Ok(RecordBatch::try_new(Arc::new(events_schema()), arrays)?)
}

pub fn labels_batch(labels: &[Label]) -> anyhow::Result<RecordBatch> {
    let n = labels.len();
    let mut s: Vec<StringBuilder> = (0..6).map(|_| StringBuilder::with_capacity(n, n * 16)).collect();
    let mut ts = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut fraud = BooleanBuilder::with_capacity(n);
    for l in labels {
        s[0].append_value(&l.label_id);
        ts.append_value(l.ts);
        s[1].append_value(&l.user_id);
        opt_str(&mut s[2], l.session_id.as_deref());
        opt_str(&mut s[3], l.event_id.as_deref());
        fraud.append_value(l.is_fraud);
        opt_str(&mut s[4], l.kind.map(LabelKind::as_str));
        opt_str(&mut s[5], l.source.map(LabelSource::as_str));
    }
    let mut c = s.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut next = || c.next().expect("6 string columns");
    let arrays: Vec<ArrayRef> =
        vec![next(), Arc::new(ts.finish()), next(), next(), next(), Arc::new(fraud.finish()), next(), next()];
    Ok(RecordBatch::try_new(Arc::new(labels_schema()), arrays)?)
}

impl Lake {
    /// Writes `items` into `{table}/date=…/{stem}.parquet`, one file per date of `ts`.
    /// Returns the files.
    pub fn write_partitioned<T: Clone>(
        &self,
        table: &str,
        stem: &str,
        items: &[T],
        ts: impl Fn(&T) -> i64 + Copy,
        to_batch: impl Fn(&[T]) -> anyhow::Result<RecordBatch>,
        durability: Durability,
    ) -> anyhow::Result<Vec<LakeFile>> {
        let items = time_ordered(items, ts);
        let mut files = Vec::new();
        for (date, run) in date_runs(&items, ts) {
            let file = LakeFile::new(format!("{table}/date={date}/{stem}.parquet"));
            let bytes = parquet_bytes([to_batch(&items[run])?])?.expect("a date run is never empty");
            self.put(&file, bytes, durability)?;
            files.push(file);
        }
        Ok(files)
    }

    /// Writes events into `events/date=…/{stem}.parquet`, one file per date. Returns the files.
    pub fn write_events(
        &self,
        stem: &str,
        events: &[ClickEvent],
        durability: Durability,
    ) -> anyhow::Result<Vec<LakeFile>> {
        self.write_partitioned(EVENTS, stem, events, |e| e.ts, events_batch, durability)
    }

    /// Writes labels into `labels/date=…/{stem}.parquet`, partitioned by the label's `ts`.
    pub fn write_labels(&self, stem: &str, labels: &[Label], durability: Durability) -> anyhow::Result<Vec<LakeFile>> {
        self.write_partitioned(LABELS, stem, labels, |l| l.ts, labels_batch, durability)
    }
}

pub fn features_schema() -> Schema {
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    let mut fields = vec![
        s("event_id", false),
        Field::new("ts", ts_type(), false),
        s("session_id", false),
        s("user_id", true),
        s("feature_schema", false),
        Field::new("history_unavailable", DataType::Boolean, false),
        s("list_hits", false),
    ];
    fields.extend(models::features::FEATURES.iter().map(|f| Field::new(f.name, DataType::Float64, false)));
    Schema::new(fields)
}

pub fn features_batch(items: &[EnrichedEvent]) -> anyhow::Result<RecordBatch> {
    let n = items.len();
    let mut s: Vec<StringBuilder> = (0..5).map(|_| StringBuilder::with_capacity(n, n * 16)).collect();
    let mut ts = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut degraded = BooleanBuilder::with_capacity(n);
    let width = models::features::FEATURES.len();
    let mut f: Vec<Float64Builder> = (0..width).map(|_| Float64Builder::with_capacity(n)).collect();
    for e in items {
        if e.features.0.len() != width {
            bail!("event {} carries {} features, this build defines {width}", e.event.event_id, e.features.0.len());
        }
        s[0].append_value(&e.event.event_id);
        ts.append_value(e.event.ts);
        s[1].append_value(&e.event.session_id);
        opt_str(&mut s[2], e.event.user_id.as_deref());
        s[3].append_value(&e.feature_schema);
        degraded.append_value(e.history_unavailable);
        s[4].append_value(serde_json::to_string(&e.list_hits)?);
        for (b, v) in f.iter_mut().zip(&e.features.0) {
            b.append_value(*v);
        }
    }
    let mut c = s.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut next = || c.next().expect("5 string columns");
    let mut arrays: Vec<ArrayRef> =
        vec![next(), Arc::new(ts.finish()), next(), next(), next(), Arc::new(degraded.finish()), next()];
    arrays.extend(f.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef));
    Ok(RecordBatch::try_new(Arc::new(features_schema()), arrays)?)
}

pub fn verdicts_schema() -> Schema {
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Schema::new(vec![
        s("event_id", false),
        s("session_id", false),
        s("user_id", true),
        Field::new("ts", ts_type(), false),
        Field::new("decided_at", ts_type(), false),
        Field::new("score", DataType::Float64, false),
        s("action", false),
        s("restrictions", false),
        Field::new("expires_at", ts_type(), true),
        s("reasons", false),
        s("model_version", false),
        Field::new("alert", DataType::Boolean, false),
    ])
}

pub fn verdicts_batch(items: &[Verdict]) -> anyhow::Result<RecordBatch> {
    let n = items.len();
    let mut s: Vec<StringBuilder> = (0..7).map(|_| StringBuilder::with_capacity(n, n * 16)).collect();
    let mut t: Vec<TimestampMillisecondBuilder> =
        (0..3).map(|_| TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC")).collect();
    let mut score = Float64Builder::with_capacity(n);
    let mut alert = BooleanBuilder::with_capacity(n);
    for v in items {
        s[0].append_value(&v.event_id);
        s[1].append_value(&v.session_id);
        opt_str(&mut s[2], v.user_id.as_deref());
        t[0].append_value(v.ts);
        t[1].append_value(v.decided_at);
        score.append_value(v.score);
        s[3].append_value(serde_json::to_value(v.action)?.as_str().unwrap_or_default());
        s[4].append_value(serde_json::to_string(&v.restrictions)?);
        t[2].append_option(v.expires_at);
        s[5].append_value(serde_json::to_string(&v.reasons)?);
        s[6].append_value(&v.model_version);
        alert.append_value(v.alert);
    }
    let mut c = s.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut next = || c.next().expect("7 string columns");
    let mut ts = t.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut next_ts = || ts.next().expect("3 timestamp columns");
    let arrays: Vec<ArrayRef> = vec![
        next(),
        next(),
        next(),
        next_ts(),
        next_ts(),
        Arc::new(score.finish()),
        next(),
        next(),
        next_ts(),
        next(),
        next(),
        Arc::new(alert.finish()),
    ];
    Ok(RecordBatch::try_new(Arc::new(verdicts_schema()), arrays)?)
}

/// One row of the features table.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedFeatures {
    pub event_id: String,
    pub ts: i64,
    pub feature_schema: String,
    pub history_unavailable: bool,
    pub values: Vec<f64>,
}

impl Lake {
    /// Reads the features table's rows in `files` (feature columns by this build's names; a file
    /// written by another feature schema fails with the missing column's name).
    pub fn read_features(&self, files: &[LakeFile]) -> anyhow::Result<Vec<ServedFeatures>> {
        let ts_t = DataType::Timestamp(TimeUnit::Millisecond, None);
        let mut out = Vec::new();
        for file in files {
            let path = &self.describe(file);
            for batch in self.read_batches(file)? {
                let str_col =
                    |n: &str| -> anyhow::Result<ArrayRef> { required(column(&batch, n, &DataType::Utf8)?, n, path) };
                let (id, schema) = (str_col("event_id")?, str_col("feature_schema")?);
                let ts = required(column(&batch, "ts", &ts_t)?, "ts", path)?;
                let degraded =
                    required(column(&batch, "history_unavailable", &DataType::Boolean)?, "history_unavailable", path)?;
                let cols = models::features::FEATURES
                    .iter()
                    .map(|f| required(column(&batch, f.name, &DataType::Float64)?, f.name, path))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let cols: Vec<_> = cols.iter().map(|c| c.as_primitive::<Float64Type>()).collect();
                let (id, schema) = (id.as_string::<i32>(), schema.as_string::<i32>());
                let (ts, degraded) = (ts.as_primitive::<TimestampMillisecondType>(), degraded.as_boolean());
                for row in 0..batch.num_rows() {
                    out.push(ServedFeatures {
                        event_id: id.value(row).to_string(),
                        ts: ts.value(row),
                        feature_schema: schema.value(row).to_string(),
                        history_unavailable: degraded.value(row),
                        values: cols.iter().map(|c| c.value(row)).collect(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The date partitions of a table, oldest first, each with its Parquet files.
    pub fn partitions(&self, table: &str) -> anyhow::Result<Vec<(String, Vec<LakeFile>)>> {
        let mut out: Vec<(String, Vec<LakeFile>)> = Vec::new();
        for file in self.list(table)? {
            let rest = &file.rel()[table.len()..];
            let Some(date) = rest.strip_prefix("/date=").and_then(|r| r.split('/').next()) else { continue };
            if !file.name().ends_with(".parquet") {
                continue;
            }
            match out.last_mut() {
                Some((d, files)) if d == date => files.push(file),
                _ => out.push((date.to_string(), vec![file])),
            }
        }
        Ok(out)
    }

    /// Rows in `files`, from the Parquet footers alone (no data read): the trainer sizes its
    /// sample from it before replaying.
    pub fn row_count(&self, files: &[LakeFile]) -> anyhow::Result<usize> {
        let mut n = 0;
        for f in files {
            n += usize::try_from(self.parquet_metadata(f)?.file_metadata().num_rows()).unwrap_or(0);
        }
        Ok(n)
    }

    fn read_batches(&self, file: &LakeFile) -> anyhow::Result<Vec<RecordBatch>> {
        let what = || format!("{} is not a readable Parquet file", self.describe(file));
        let bytes = self.get(file)?.with_context(|| format!("{} is gone", self.describe(file)))?;
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(bytes).with_context(what)?.with_batch_size(8192).build()?;
        reader.collect::<Result<Vec<_>, _>>().with_context(|| format!("reading {}", self.describe(file)))
    }
}

/// A column normalised to the type we read, or `None` if the file does not have it.
fn column(batch: &RecordBatch, name: &str, as_type: &DataType) -> anyhow::Result<Option<ArrayRef>> {
    let Some(col) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let col = if col.data_type() == as_type {
        col.clone()
    } else {
        arrow_cast::cast(col, as_type)
            .with_context(|| format!("column {name} has type {} (wanted {as_type})", col.data_type()))?
    };
    Ok(Some(col))
}

struct Cols {
    strings: Vec<Option<ArrayRef>>,
}

impl Cols {
    fn get(&self, i: usize, row: usize) -> Option<&str> {
        let a = self.strings[i].as_ref()?;
        if a.is_null(row) { None } else { Some(a.as_string::<i32>().value(row)) }
    }
}

fn required(c: Option<ArrayRef>, name: &str, path: &str) -> anyhow::Result<ArrayRef> {
    c.ok_or_else(|| anyhow::anyhow!("{path} has no required column {name}"))
}

impl Lake {
    /// Reads the events of one date partition's files, sorted by `(ts, event_id)`.
    /// Rows that violate the contract are skipped and counted in the returned number.
    pub fn read_events(&self, files: &[LakeFile]) -> anyhow::Result<(Vec<ClickEvent>, usize)> {
        const STR: [&str; 15] = [
            "event_id",
            "session_id",
            "user_id",
            "type",
            "ip",
            "device_id",
            "user_agent",
            "path",
            "method",
            "referrer",
            "country",
            "outcome",
            "currency",
            "payee_id",
            "attrs",
        ];
        let ts_t = DataType::Timestamp(TimeUnit::Millisecond, None);
        let mut out = Vec::new();
        let mut rejected = 0usize;
        for file in files {
            let path = &self.describe(file);
            for batch in self.read_batches(file)? {
                let strings =
                    STR.iter().map(|n| column(&batch, n, &DataType::Utf8)).collect::<anyhow::Result<Vec<_>>>()?;
                let cols = Cols { strings };
                let ts = required(column(&batch, "ts", &ts_t)?, "ts", path)?;
                let ts = ts.as_primitive::<TimestampMillisecondType>();
                let status = column(&batch, "status", &DataType::Int32)?;
                let amount = column(&batch, "amount", &DataType::Float64)?;
                for row in 0..batch.num_rows() {
                    let s = |i: usize| cols.get(i, row).map(str::to_string);
                    let Some(ip) = cols.get(4, row).and_then(|ip| ip.parse().ok()) else {
                        rejected += 1;
                        continue;
                    };
                    if ts.is_null(row) {
                        rejected += 1;
                        continue;
                    }
                    let attrs = cols.get(14, row).and_then(|a| serde_json::from_str(a).ok());
                    let ev = ClickEvent {
                        event_id: s(0).unwrap_or_default(),
                        ts: ts.value(row),
                        session_id: s(1).unwrap_or_default(),
                        user_id: s(2),
                        event_type: s(3).unwrap_or_default(),
                        ip,
                        device_id: s(5),
                        user_agent: s(6),
                        path: s(7),
                        method: s(8),
                        status: status.as_ref().and_then(|a| {
                            let a = a.as_primitive::<Int32Type>();
                            if a.is_null(row) { None } else { u16::try_from(a.value(row)).ok() }
                        }),
                        referrer: s(9),
                        country: s(10),
                        outcome: match cols.get(11, row) {
                            Some("success") => Some(Outcome::Success),
                            Some("failure") => Some(Outcome::Failure),
                            _ => None,
                        },
                        amount: amount.as_ref().and_then(|a| {
                            let a = a.as_primitive::<Float64Type>();
                            if a.is_null(row) { None } else { Some(a.value(row)) }
                        }),
                        currency: s(12),
                        payee_id: s(13),
                        attrs,
                    };
                    if ev.validate().is_err() {
                        rejected += 1;
                        continue;
                    }
                    out.push(ev);
                }
            }
        }
        out.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.event_id.cmp(&b.event_id)));
        Ok((out, rejected))
    }

    /// Reads every label in the lake, sorted by `ts`.
    pub fn read_labels(&self) -> anyhow::Result<Vec<Label>> {
        let ts_t = DataType::Timestamp(TimeUnit::Millisecond, None);
        let mut out = Vec::new();
        for (_, files) in self.partitions(LABELS)? {
            for file in files {
                let path = &self.describe(&file);
                for batch in self.read_batches(&file)? {
                    let str_col = |n: &str| column(&batch, n, &DataType::Utf8);
                    let label_id = required(str_col("label_id")?, "label_id", path)?;
                    let user_id = required(str_col("user_id")?, "user_id", path)?;
                    let ts = required(column(&batch, "ts", &ts_t)?, "ts", path)?;
                    let is_fraud = required(column(&batch, "is_fraud", &DataType::Boolean)?, "is_fraud", path)?;
                    let cols = Cols {
                        strings: vec![
                            str_col("session_id")?,
                            str_col("event_id")?,
                            str_col("kind")?,
                            str_col("source")?,
                        ],
                    };
                    let (label_id, user_id) = (label_id.as_string::<i32>(), user_id.as_string::<i32>());
                    let (ts, is_fraud) = (ts.as_primitive::<TimestampMillisecondType>(), is_fraud.as_boolean());
                    for row in 0..batch.num_rows() {
                        if ts.is_null(row) || is_fraud.is_null(row) || user_id.is_null(row) {
                            continue;
                        }
                        out.push(Label {
                            label_id: label_id.value(row).to_string(),
                            ts: ts.value(row),
                            user_id: user_id.value(row).to_string(),
                            session_id: cols.get(0, row).map(str::to_string),
                            event_id: cols.get(1, row).map(str::to_string),
                            is_fraud: is_fraud.value(row),
                            kind: cols.get(2, row).and_then(LabelKind::parse),
                            source: cols.get(3, row).and_then(LabelSource::parse),
                        });
                    }
                }
            }
        }
        out.sort_by_key(|l| l.ts);
        Ok(out)
    }

    /// The events table's date partitions, or a clear message when the lake has none.
    pub fn event_partitions(&self) -> anyhow::Result<Vec<(String, Vec<LakeFile>)>> {
        let parts = self.partitions(EVENTS)?;
        if parts.is_empty() {
            bail!(
                "{self} has no events/ table; generate one with `fixtures lake --out {self}` or point --lake at a lake"
            );
        }
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_labels_round_trip_through_partitioned_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let json = r#"{"event_id":"e1","ts":"2026-11-01T23:59:59.500Z","session_id":"s1","user_id":"u1",
            "type":"transfer","ip":"2001:db8::1","amount":10.5,"status":200,"outcome":"success","attrs":{"a":1}}"#;
        let e1 = ClickEvent::decode(json.as_bytes(), 10_000).unwrap();
        let mut e2 = e1.clone();
        e2.event_id = "e2".into();
        e2.ts += 1000;
        e2.user_id = None;
        e2.attrs = None;
        let lake = Lake::dir(dir.path());
        lake.write_events("part-0", &[e2.clone(), e1.clone()], Durability::Fsync).unwrap();
        let parts = lake.partitions(EVENTS).unwrap();
        assert_eq!(parts.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["2026-11-01", "2026-11-02"]);
        let mut all = Vec::new();
        for (_, files) in parts {
            all.extend(lake.read_events(&files).unwrap().0);
        }
        assert_eq!(all, vec![e1, e2]);

        let label = Label {
            label_id: "l1".into(),
            ts: 1_762_000_000_000,
            user_id: "u1".into(),
            session_id: Some("s1".into()),
            event_id: None,
            is_fraud: true,
            kind: Some(LabelKind::AccountTakeover),
            source: Some(LabelSource::Chargeback),
        };
        lake.write_labels("labels", std::slice::from_ref(&label), Durability::Fsync).unwrap();
        assert_eq!(lake.read_labels().unwrap(), vec![label]);
    }
}
