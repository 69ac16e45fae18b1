//! History stores: execute a micro-batch of [`Op`]s in order and return one result per op.

use models::history::{Key, MemoryHistory, Op, OpResult, Starts, Text, write_addr};
use redis::Value;
use redis::aio::ConnectionManager;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply from redis for {op}: {reply}")]
    Reply { op: &'static str, reply: String },
}

/// A place where feature history lives. Implementations must give [`Op`]s the semantics that
/// [`MemoryHistory`] defines; `contract_tests` checks that for every implementation.
pub trait HistoryStore: Send + Sync {
    fn execute(&self, ops: &[Op<'_>]) -> impl Future<Output = Result<Vec<OpResult>, StoreError>> + Send;
}

/// Feeds fraud labels back into the history ([`models::feedback`]): one round trip reads the
/// entities of the sessions they name, a second marks them. Nothing when no label needs it.
pub async fn apply_labels<S: HistoryStore>(store: &S, labels: &[&models::Label]) -> Result<(), StoreError> {
    let reads: Vec<Vec<Op>> = labels.iter().map(|l| models::feedback::reads(l)).collect();
    let flat: Vec<Op> = reads.iter().flatten().copied().collect();
    let results = if flat.is_empty() { Vec::new() } else { store.execute(&flat).await? };
    let mut at = 0;
    let mut writes = Vec::new();
    for (label, ops) in labels.iter().zip(&reads) {
        writes.extend(models::feedback::writes(label, &results[at..at + ops.len()]));
        at += ops.len();
    }
    if !writes.is_empty() {
        store.execute(&writes).await?;
    }
    Ok(())
}

/// In-process store (offline replay, tests).
#[derive(Default)]
pub struct MemoryStore(pub Mutex<MemoryHistory>);

impl HistoryStore for MemoryStore {
    async fn execute(&self, ops: &[Op<'_>]) -> Result<Vec<OpResult>, StoreError> {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Ok(ops.iter().map(|op| h.apply(op)).collect())
    }
}

/// Redis store: a whole batch of ops becomes one pipeline, so one round trip.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
}

impl RedisStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let conn = platform::config::redis_connection(url).await?;
        Ok(RedisStore { conn })
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Count { .. } => "count",
        Op::Range { .. } => "range",
        Op::Times { .. } => "times",
        Op::Add { .. } => "add",
        Op::FirstSeen { .. } => "first_seen",
        Op::Lookup { .. } => "lookup",
        Op::Swap { .. } => "swap",
        Op::Get { .. } => "get",
    }
}

fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Double(d) => Some(d.to_string().into_bytes()),
        _ => None,
    }
}

fn string_of(v: &Value) -> Option<String> {
    bytes_of(v).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn shared_of(v: &Value) -> Option<Arc<str>> {
    string_of(v).map(Arc::from)
}

/// The op's result from its replies: one per window for a count, none for an add, one for
/// every other op.
fn to_result(op: &Op, replies: &mut impl Iterator<Item = Value>) -> Result<OpResult, StoreError> {
    let bad = |v: &Value| StoreError::Reply { op: op_name(op), reply: format!("{v:?}") };
    let mut next = || replies.next().ok_or(StoreError::Reply { op: op_name(op), reply: "missing".into() });
    Ok(match op {
        Op::Count { from, .. } => {
            let mut counts = [0; models::history::MAX_WINDOWS];
            for n in counts.iter_mut().take(from.as_slice().len()) {
                *n = match next()? {
                    Value::Int(v) => v.max(0) as u64,
                    other => return Err(bad(&other)),
                };
            }
            OpResult::Count(counts)
        }
        Op::Range { .. } | Op::Times { .. } => {
            let items = match next()? {
                Value::Array(items) => items,
                Value::Nil => Vec::new(),
                other => return Err(bad(&other)),
            };
            // Member, score, member, score, …; `Times` reads only the scores.
            let score =
                |s: &Value| string_of(s).and_then(|s| s.parse::<f64>().ok()).map(|f| f as i64).ok_or_else(|| bad(s));
            let pairs = items.chunks_exact(2);
            if matches!(op, Op::Times { .. }) {
                OpResult::Times(pairs.map(|p| score(&p[1])).collect::<Result<_, _>>()?)
            } else {
                let pair = |p: &[Value]| Ok((shared_of(&p[0]).ok_or_else(|| bad(&p[0]))?, score(&p[1])?));
                OpResult::Range(pairs.map(pair).collect::<Result<_, StoreError>>()?)
            }
        }
        Op::FirstSeen { .. } | Op::Lookup { .. } => match next()? {
            Value::Nil => OpResult::Time(None),
            other => OpResult::Time(Some(string_of(&other).and_then(|s| s.parse().ok()).ok_or_else(|| bad(&other))?)),
        },
        Op::Swap { .. } | Op::Get { .. } => match next()? {
            Value::Nil => OpResult::Value(None),
            other => {
                let previous = shared_of(&other).ok_or_else(|| bad(&other))?;
                match op {
                    Op::Swap { value, .. } if value.is(&previous) => OpResult::Same,
                    _ => OpResult::Value(Some(previous)),
                }
            }
        },
        Op::Add { .. } => OpResult::Done,
    })
}

impl HistoryStore for RedisStore {
    async fn execute(&self, ops: &[Op<'_>]) -> Result<Vec<OpResult>, StoreError> {
        // A batch of nothing but bad input has no ops; Redis refuses an empty pipeline, and
        // retrying that would stall the partition forever (found by tests/tests/hostile.rs).
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for op in ops {
            match op {
                Op::Count { key, from, to } => {
                    let key = key.to_string();
                    for from in from.as_slice() {
                        pipe.cmd("ZCOUNT").arg(&key).arg(*from).arg(*to);
                    }
                }
                Op::Range { key, from, to } | Op::Times { key, from, to } => {
                    pipe.cmd("ZRANGEBYSCORE").arg(key.to_string()).arg(*from).arg(*to).arg("WITHSCORES");
                }
                Op::Add { key, member, ts, keep_after, max_len, ttl_s } => {
                    let key = key.to_string();
                    pipe.cmd("ZADD").arg(&key).arg("GT").arg(*ts).arg(member.to_string()).ignore();
                    pipe.cmd("ZREMRANGEBYSCORE").arg(&key).arg("-inf").arg(format!("({keep_after}")).ignore();
                    pipe.cmd("ZREMRANGEBYRANK").arg(&key).arg(0).arg(-(*max_len as i64) - 1).ignore();
                    pipe.cmd("EXPIRE").arg(&key).arg(*ttl_s).ignore();
                }
                Op::FirstSeen { key, member, ts, ttl_s } => {
                    let (key, member) = (key.to_string(), member.to_string());
                    pipe.cmd("HGET").arg(&key).arg(&member);
                    pipe.cmd("HSETNX").arg(&key).arg(&member).arg(*ts).ignore();
                    // Set when new, extend when longer, never shorten (Redis ≥ 7).
                    pipe.cmd("EXPIRE").arg(&key).arg(*ttl_s).arg("NX").ignore();
                    pipe.cmd("EXPIRE").arg(&key).arg(*ttl_s).arg("GT").ignore();
                }
                Op::Lookup { key, member } => {
                    pipe.cmd("HGET").arg(key.to_string()).arg(member.to_string());
                }
                Op::Swap { key, value, ttl_s } => {
                    pipe.cmd("SET").arg(key.to_string()).arg(value.to_string()).arg("EX").arg(*ttl_s).arg("GET");
                }
                Op::Get { key } => {
                    pipe.cmd("GET").arg(key.to_string());
                }
            }
        }
        let mut conn = self.conn.clone();
        let values: Vec<Value> = pipe.query_async(&mut conn).await?;
        let mut values = values.into_iter();
        ops.iter().map(|op| to_result(op, &mut values)).collect()
    }
}

/// One body of assertions run against every [`HistoryStore`] (memory and Redis): the store
/// must give each op exactly the meaning [`MemoryHistory`] defines.
pub mod contract_tests {
    use super::*;

    fn add(key: Key<'static>, member: &'static str, ts: i64, keep_after: i64, max_len: u32) -> Op<'static> {
        Op::Add { key, member: member.into(), ts, keep_after, max_len, ttl_s: 3600 }
    }

    /// Runs the contract against `store`; keys are prefixed with `ns` so runs do not collide.
    pub async fn run<S: HistoryStore>(store: &S, ns: &str) {
        // A batch with nothing to do is answered, not refused.
        assert_eq!(store.execute(&[]).await.unwrap(), Vec::<OpResult>::new());
        // Ids and addresses live as long as the test (ops borrow their text).
        let k = |s: &str| Key::new("ct", &*format!("{ns}:{s}").leak());
        let addr = |s: &str| {
            let mut text = String::new();
            write_addr(&mut text, s.parse().expect("an address"));
            Text::from(&*text.leak())
        };
        // A family of this run's own, for a key whose id is an address (families are static
        // names; leaking one per run is fine in a test).
        let family: &'static str = Box::leak(format!("ct:{ns}").into_boxed_str());
        let ops = vec![
            add(k("z"), "a", 10, 0, 10),
            add(k("z"), "a", 5, 0, 10),
            add(k("z"), "b", 20, 0, 10),
            add(k("z"), "c", 20, 0, 10),
            Op::Range { key: k("z"), from: 0, to: 100 },
            Op::Count { key: k("z"), from: 10.into(), to: 19 },
            add(k("z"), "d", 40, 15, 2),
            Op::Range { key: k("z"), from: i64::MIN / 2, to: i64::MAX / 2 },
            Op::Count { key: k("missing"), from: 0.into(), to: 10 },
            Op::FirstSeen { key: k("h"), member: "x:y".into(), ts: 7, ttl_s: 60 },
            Op::FirstSeen { key: k("h"), member: "x:y".into(), ts: 9, ttl_s: 60 },
            Op::Lookup { key: k("h"), member: "x:y".into() },
            Op::Lookup { key: k("h"), member: "nope".into() },
            Op::Swap { key: k("s"), value: "1".into(), ttl_s: 60 },
            Op::Swap { key: k("s"), value: "2".into(), ttl_s: 60 },
            Op::Get { key: k("s") },
            Op::Get { key: k("nothing") },
            add(k("big"), "m1", 1_764_000_000_123, 1_763_000_000_000, 10),
            Op::Range { key: k("big"), from: 1_764_000_000_000, to: 1_764_000_000_123 },
            Op::Times { key: k("z"), from: 0, to: 100 },
            Op::Times { key: k("missing"), from: 0, to: 100 },
            // Texts made of parts name what their whole text names.
            Op::Lookup { key: k("h"), member: Text::from("y").prefixed("x:") },
            Op::Swap { key: k("a"), value: addr("2001:db8::1"), ttl_s: 60 },
            Op::Get { key: k("a") },
            Op::Swap { key: Key::new(family, addr("192.0.2.7")), value: addr("192.0.2.7").prefixed("i:"), ttl_s: 60 },
            Op::Get { key: Key::new(family, "192.0.2.7") },
            // Several windows of one set in one count.
            Op::Count { key: k("z"), from: Starts::new(&[0, 15, 21]), to: 40 },
            // A value swapped for itself, as text made of parts.
            Op::Swap { key: k("a"), value: Text::from("db8::1").prefixed("2001:"), ttl_s: 60 },
        ];
        let got = store.execute(&ops).await.expect("store executes the contract ops");
        let mut reference = MemoryHistory::new();
        let want: Vec<OpResult> = ops.iter().map(|op| reference.apply(op)).collect();
        assert_eq!(got, want, "store disagrees with the reference semantics");
        // And the reference itself says what we mean (guards against a wrong reference).
        assert_eq!(want[4], OpResult::Range(vec![("a".into(), 10), ("b".into(), 20), ("c".into(), 20)]));
        assert_eq!(want[5], OpResult::Count([1, 0, 0]));
        assert_eq!(want[7], OpResult::Range(vec![("c".into(), 20), ("d".into(), 40)]));
        assert_eq!(want[9], OpResult::Time(None));
        assert_eq!(want[10], OpResult::Time(Some(7)));
        assert_eq!(want[14], OpResult::Value(Some("1".into())));
        assert_eq!(want[18], OpResult::Range(vec![("m1".into(), 1_764_000_000_123)]));
        assert_eq!((&want[19], &want[20]), (&OpResult::Times(vec![20, 40]), &OpResult::Times(vec![])));
        assert_eq!(want[21], OpResult::Time(Some(7)));
        assert_eq!(want[23], OpResult::Value(Some("2001:db8::1".into())));
        assert_eq!(want[25], OpResult::Value(Some("i:192.0.2.7".into())));
        assert_eq!(want[26], OpResult::Count([2, 2, 1]));
        assert_eq!(want[27], OpResult::Same);
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_memory_store_meets_the_history_contract() {
        super::contract_tests::run(&super::MemoryStore::default(), "t").await;
    }
}
