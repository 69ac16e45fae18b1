//! Reading topics and consumer-group offsets in tests.

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A consumed record with its headers.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// Reads `topic` from the beginning until `done(records)` or `timeout`.
pub async fn consume_until(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    mut done: impl FnMut(&[Record]) -> bool,
) -> Vec<Record> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-reader-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("a test consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    // `done` usually scans every record so far; calling it per record made long reads
    // quadratic (minutes for a few thousand verdicts in a debug build). Ask it every 256
    // records and whenever the topic goes quiet.
    while Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
            let mut headers = HashMap::new();
            if let Some(h) = m.headers() {
                for hd in h.iter() {
                    headers
                        .insert(hd.key.to_string(), String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned());
                }
            }
            out.push(Record {
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
            if out.len() % 256 != 0 {
                continue;
            }
        }
        if done(&out) {
            break;
        }
    }
    out
}

/// For each partition of `topic`: (committed offset of `group`, log end offset).
pub fn committed_vs_end(brokers: &str, group: &str, topic: &str) -> Vec<(i32, i64, i64)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("an offsets consumer");
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(5)).expect("metadata");
    let parts: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition(topic, *p);
    }
    let committed = c.committed_offsets(tpl, Duration::from_secs(5)).expect("committed offsets");
    parts
        .iter()
        .map(|p| {
            let (_, high) = c.fetch_watermarks(topic, *p, Duration::from_secs(5)).expect("watermarks");
            let off = match committed.find_partition(topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => 0,
            };
            (*p, off, high)
        })
        .collect()
}

/// The `event_id`s of the JSON records among `records` (verdicts, alerts).
pub fn event_ids(records: &[Record]) -> std::collections::HashSet<String> {
    records
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.payload).ok())
        .filter_map(|v| v["event_id"].as_str().map(str::to_string))
        .collect()
}
