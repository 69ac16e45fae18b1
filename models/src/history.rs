//! History operations: the only way feature code touches state.
//!
//! Feature code does not call a store. It *plans* a list of [`Op`]s per event, a store executes
//! a whole micro-batch of plans in order (Redis: one pipelined round trip), and feature code
//! computes the vector from the [`OpResult`]s. Because every store must give these operations
//! the same meaning, live features (Redis) and replayed features ([`MemoryHistory`]) agree.
//!
//! All times are event times in epoch milliseconds. Sets are ordered by `(score, member)`, as in
//! a Redis sorted set.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A history key (`fd:family:id`, see [`key`]). Shared, because one event's plan names the same
/// key in several ops (a count per window, then the write).
pub type Key = Arc<str>;

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Number of members of sorted set `key` with a score in `[from, to]`.
    Count { key: Key, from: i64, to: i64 },
    /// Members and scores of `key` with a score in `[from, to]`, in ascending order.
    Range { key: Key, from: i64, to: i64 },
    /// Only the scores of [`Op::Range`]: what a window of event times needs, without copying
    /// members.
    Times { key: Key, from: i64, to: i64 },
    /// Put `member` at `ts` unless it is already at a later time; then drop members older than
    /// `keep_after`, keep only the newest `max_len`, and let the key expire after `ttl_s`
    /// of wall-clock inactivity (a memory bound only; windows are enforced by event time).
    Add { key: Key, member: String, ts: i64, keep_after: i64, max_len: usize, ttl_s: u64 },
    /// First-seen time of `member` in map `key`, recording `ts` if it was not seen. The key's
    /// wall-clock expiry is set to `ttl_s` if it has none, and otherwise only ever extended.
    FirstSeen { key: Key, member: String, ts: i64, ttl_s: u64 },
    /// First-seen time of `member` in map `key`, without recording anything.
    Lookup { key: Key, member: String },
    /// Sets string `key` to `value` and returns the previous value.
    Swap { key: Key, value: String, ttl_s: u64 },
    /// Reads string `key`.
    Get { key: Key },
}

impl Op {
    /// Whether the op returns something a feature reads (writes-only ops return nothing).
    pub fn has_result(&self) -> bool {
        !matches!(self, Op::Add { .. })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    Count(u64),
    Range(Vec<(String, i64)>),
    Times(Vec<i64>),
    Time(Option<i64>),
    Value(Option<String>),
    Done,
}

impl OpResult {
    pub fn count(&self) -> u64 {
        match self {
            OpResult::Count(n) => *n,
            OpResult::Range(v) => v.len() as u64,
            OpResult::Times(v) => v.len() as u64,
            _ => 0,
        }
    }
    pub fn range(&self) -> &[(String, i64)] {
        match self {
            OpResult::Range(v) => v,
            _ => &[],
        }
    }
    pub fn times(&self) -> &[i64] {
        match self {
            OpResult::Times(v) => v,
            _ => &[],
        }
    }
    pub fn time(&self) -> Option<i64> {
        match self {
            OpResult::Time(t) => *t,
            _ => None,
        }
    }
    pub fn value(&self) -> Option<&str> {
        match self {
            OpResult::Value(v) => v.as_deref(),
            _ => None,
        }
    }
}

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A key or member as its 128-bit XXH3 hash: replay holds millions of keys and looks up ~30 per
/// event, and hashing, comparing and storing their text was a third of replay time. Two distinct
/// texts share a hash with probability about 2⁻¹²⁸ per pair, far below any lake's worth of keys
/// (keys here come from our own lake, not from someone crafting collisions).
type Id = u128;

fn id(text: &str) -> Id {
    xxhash_rust::xxh3::xxh3_128(text.as_bytes())
}

/// Maps keyed by an [`Id`], which is already a hash: its low half is the table hash.
type IdMap<V> = HashMap<Id, V, std::hash::BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; this keeps any other use correct, if slower.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A sorted set as a time-ordered deque: replay adds mostly at the back and trims at the front,
/// and a window count is two binary searches (Redis `ZCOUNT` is logarithmic too).
#[derive(Debug, Default, Clone)]
struct SortedSet {
    by_order: VecDeque<(i64, Arc<str>)>,
    score: Map<Arc<str>, i64>,
}

impl SortedSet {
    /// Index of the first entry at or after `(ts, member)` in `(score, member)` order.
    fn position(&self, ts: i64, member: &str) -> usize {
        self.by_order.partition_point(|(s, m)| (*s, &**m) < (ts, member))
    }

    /// Index range of entries with a score in `[from, to]`.
    fn window(&self, from: i64, to: i64) -> std::ops::Range<usize> {
        let lo = self.by_order.partition_point(|(s, _)| *s < from);
        let hi = self.by_order.partition_point(|(s, _)| *s <= to);
        lo..hi.max(lo)
    }

    fn add(&mut self, member: &str, ts: i64) {
        let member: Arc<str> = match self.score.get_key_value(member) {
            Some((_, old)) if *old >= ts => return,
            Some((m, old)) => {
                let (m, old) = (m.clone(), *old);
                let at = self.position(old, &m);
                self.by_order.remove(at);
                m
            }
            None => Arc::from(member),
        };
        let at = self.position(ts, &member);
        self.by_order.insert(at, (ts, member.clone()));
        self.score.insert(member, ts);
    }

    fn trim(&mut self, keep_after: i64, max_len: usize) {
        while let Some((sc, _)) = self.by_order.front() {
            if *sc < keep_after || self.by_order.len() > max_len {
                if let Some((_, m)) = self.by_order.pop_front() {
                    self.score.remove(&m);
                }
            } else {
                break;
            }
        }
    }
}

/// Key expiry on event time, for replay: a key's deadline is the replay clock (the newest event
/// time seen) plus its `ttl_s`, set the way the Redis store sets it (`Add` and `Swap` reset it,
/// `FirstSeen` only extends it). Live, Redis expires keys on the wall clock, which runs with
/// event time; replaying without expiry would keep every session ever seen in memory and would
/// answer reads that live Redis no longer could.
#[derive(Debug, Clone, Copy)]
struct Clock {
    now: i64,
    next_sweep: i64,
}

/// How often (in event time) expired keys are dropped from memory. Reads check deadlines
/// themselves, so this only trades sweep work against memory, never changes a result.
const SWEEP_EVERY_MS: i64 = 4 * 3_600_000;

/// In-process executor with the same semantics as the Redis one. Used for offline replay and as
/// the reference in the store contract tests. [`MemoryHistory::new`] ignores `ttl_s` (as a
/// Redis whose wall clock has not moved); [`MemoryHistory::expiring`] expires keys on event
/// time, which is what replaying a long history needs.
///
/// Replay runs every event of the lake through here, so it avoids work per op: keys and map
/// members are held as 128-bit XXH3 hashes, not text; sorted-set members are shared
/// strings.
#[derive(Debug, Default, Clone)]
pub struct MemoryHistory {
    sets: IdMap<Expiring<SortedSet>>,
    maps: IdMap<Expiring<IdMap<i64>>>,
    strings: IdMap<Expiring<Option<String>>>,
    clock: Option<Clock>,
}

/// A value and the event time at which it expires (`i64::MAX`: never).
#[derive(Debug, Default, Clone)]
struct Expiring<T> {
    value: T,
    deadline: i64,
}

/// Deadline after a write that resets the TTL (Redis `EXPIRE`, `SET … EX`).
fn reset(clock: Option<Clock>, ttl_s: u64) -> i64 {
    clock.map_or(i64::MAX, |c| c.now.saturating_add((ttl_s as i64).saturating_mul(1000)))
}

/// The live value of `key`, or `None` if there is none or it has expired.
fn live<'a, T>(map: &'a IdMap<Expiring<T>>, clock: Option<Clock>, key: &str) -> Option<&'a T> {
    map.get(&id(key)).filter(|e| clock.is_none_or(|c| e.deadline > c.now)).map(|e| &e.value)
}

/// Runs `write` on the entry for `key`: created if missing, emptied if expired (Redis would have
/// deleted it).
fn write<T: Default, R>(
    map: &mut IdMap<Expiring<T>>,
    clock: Option<Clock>,
    key: &str,
    write: impl FnOnce(&mut Expiring<T>) -> R,
) -> R {
    let fresh = || Expiring { value: T::default(), deadline: i64::MAX };
    let e = map.entry(id(key)).or_insert_with(fresh);
    if clock.is_some_and(|c| e.deadline <= c.now) {
        *e = fresh();
    }
    write(e)
}

impl MemoryHistory {
    /// A history whose keys never expire.
    pub fn new() -> Self {
        Self::default()
    }

    /// A history whose keys expire after their `ttl_s` of event time; advance its clock with
    /// [`MemoryHistory::advance_to`] before each event.
    pub fn expiring() -> Self {
        MemoryHistory { clock: Some(Clock { now: i64::MIN, next_sweep: i64::MIN }), ..Self::default() }
    }

    /// Moves the replay clock to `ts` (it never goes back: a late event does not revive keys),
    /// and now and then drops expired keys. No-op on a history that does not expire.
    pub fn advance_to(&mut self, ts: i64) {
        let Some(c) = &mut self.clock else { return };
        c.now = c.now.max(ts);
        if c.now < c.next_sweep {
            return;
        }
        let now = c.now;
        c.next_sweep = now.saturating_add(SWEEP_EVERY_MS);
        self.sets.retain(|_, e| e.deadline > now);
        self.maps.retain(|_, e| e.deadline > now);
        self.strings.retain(|_, e| e.deadline > now);
    }

    pub fn apply(&mut self, op: &Op) -> OpResult {
        let clock = self.clock;
        match op {
            Op::Count { key, from, to } => {
                OpResult::Count(live(&self.sets, clock, key).map_or(0, |s| s.window(*from, *to).len()) as u64)
            }
            Op::Range { key, from, to } => OpResult::Range(
                live(&self.sets, clock, key)
                    .map(|s| s.by_order.range(s.window(*from, *to)).map(|(sc, m)| (m.to_string(), *sc)).collect())
                    .unwrap_or_default(),
            ),
            Op::Times { key, from, to } => OpResult::Times(
                live(&self.sets, clock, key)
                    .map(|s| s.by_order.range(s.window(*from, *to)).map(|(sc, _)| *sc).collect())
                    .unwrap_or_default(),
            ),
            Op::Add { key, member, ts, keep_after, max_len, ttl_s } => {
                let emptied = write(&mut self.sets, clock, key, |e| {
                    e.value.add(member, *ts);
                    e.value.trim(*keep_after, *max_len);
                    e.deadline = reset(clock, *ttl_s);
                    e.value.by_order.is_empty()
                });
                if emptied {
                    self.sets.remove(&id(key));
                }
                OpResult::Done
            }
            Op::FirstSeen { key, member, ts, ttl_s } => write(&mut self.maps, clock, key, |e| {
                // Set when new, extend when longer, never shorten: as `EXPIRE NX` + `EXPIRE GT`.
                let extended = reset(clock, *ttl_s);
                e.deadline = if e.value.is_empty() { extended } else { e.deadline.max(extended) };
                let member = id(member);
                match e.value.get(&member) {
                    Some(t) => OpResult::Time(Some(*t)),
                    None => {
                        e.value.insert(member, *ts);
                        OpResult::Time(None)
                    }
                }
            }),
            Op::Lookup { key, member } => {
                OpResult::Time(live(&self.maps, clock, key).and_then(|m| m.get(&id(member))).copied())
            }
            Op::Swap { key, value, ttl_s } => write(&mut self.strings, clock, key, |e| {
                e.deadline = reset(clock, *ttl_s);
                OpResult::Value(e.value.replace(value.clone()))
            }),
            Op::Get { key } => OpResult::Value(live(&self.strings, clock, key).cloned().flatten()),
        }
    }

    /// Number of keys held, for memory accounting in replay.
    pub fn len(&self) -> usize {
        self.sets.len() + self.maps.len() + self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Escapes an identifier taken from input before it becomes part of a key, so that no input can
/// address another entity's keys (ids are always the last key component, `:` and `%` escaped).
pub fn key(family: &str, id: &str) -> String {
    let mut k = String::with_capacity(4 + family.len() + id.len());
    key_with(&mut k, family, &KeyId::new(id));
    k
}

/// An id escaped once for every key of an event that names it (a session's id is in six).
pub struct KeyId<'a>(std::borrow::Cow<'a, str>);

impl<'a> KeyId<'a> {
    pub fn new(id: &'a str) -> KeyId<'a> {
        // No early exit: a fold over the bytes vectorises; ids are short and nearly always plain
        // (`0xC2` leads every C1 control).
        let plain =
            !id.bytes().fold(false, |bad, b| bad | (b == b':') | (b == b'%') | (b < 0x20) | (b == 0x7f) | (b == 0xc2));
        if plain {
            return KeyId(std::borrow::Cow::Borrowed(id));
        }
        let mut out = String::with_capacity(id.len() + 8);
        for c in id.chars() {
            match c {
                ':' => out.push_str("%3A"),
                '%' => out.push_str("%25"),
                c if c.is_control() => out.push_str(&format!("%{:02X}", c as u32 & 0xff)),
                c => out.push(c),
            }
        }
        KeyId(std::borrow::Cow::Owned(out))
    }
}

/// The key of `family` for an escaped `id`, written into `out` (cleared first): the planner
/// reuses one buffer for every key of an event, and only the shared [`Key`] it makes from it
/// allocates.
pub fn key_with(out: &mut String, family: &str, id: &KeyId) {
    out.clear();
    out.push_str("fd:");
    out.push_str(family);
    out.push(':');
    out.push_str(&id.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_keeps_the_latest_time_per_member_and_trims_by_time_and_length() {
        let mut h = MemoryHistory::new();
        let add = |m: &str, ts, keep_after, max_len| Op::Add {
            key: "k".into(),
            member: m.into(),
            ts,
            keep_after,
            max_len,
            ttl_s: 0,
        };
        h.apply(&add("a", 10, 0, 10));
        h.apply(&add("a", 5, 0, 10));
        h.apply(&add("b", 20, 0, 10));
        assert_eq!(
            h.apply(&Op::Range { key: "k".into(), from: 0, to: 100 }).range(),
            &[("a".into(), 10), ("b".into(), 20)]
        );
        h.apply(&add("c", 30, 15, 10));
        assert_eq!(h.apply(&Op::Count { key: "k".into(), from: 0, to: 100 }).count(), 2);
        h.apply(&add("d", 40, 0, 2));
        assert_eq!(
            h.apply(&Op::Range { key: "k".into(), from: 0, to: 100 }).range(),
            &[("c".into(), 30), ("d".into(), 40)]
        );
        assert_eq!(h.apply(&Op::Count { key: "k".into(), from: 31, to: 40 }).count(), 1);
    }

    #[test]
    fn first_seen_records_once_and_swap_returns_the_previous_value() {
        let mut h = MemoryHistory::new();
        let fs = |ts| Op::FirstSeen { key: "m".into(), member: "x".into(), ts, ttl_s: 0 };
        assert_eq!(h.apply(&fs(7)), OpResult::Time(None));
        assert_eq!(h.apply(&fs(9)), OpResult::Time(Some(7)));
        assert_eq!(h.apply(&Op::Lookup { key: "m".into(), member: "x".into() }).time(), Some(7));
        let sw = |v: &str| Op::Swap { key: "s".into(), value: v.into(), ttl_s: 0 };
        assert_eq!(h.apply(&sw("1")).value(), None);
        assert_eq!(h.apply(&sw("2")).value(), Some("1"));
        assert_eq!(h.apply(&Op::Get { key: "s".into() }).value(), Some("2"));
    }

    #[test]
    fn an_expiring_history_forgets_a_key_its_ttl_after_the_last_write_in_event_time() {
        let mut h = MemoryHistory::expiring();
        let t0 = 1_000_000_000;
        h.advance_to(t0);
        let add = |ts| Op::Add { key: "k".into(), member: format!("m{ts}"), ts, keep_after: 0, max_len: 10, ttl_s: 10 };
        let count = Op::Count { key: "k".into(), from: 0, to: i64::MAX };
        h.apply(&add(t0));
        h.advance_to(t0 + 9_000);
        h.apply(&add(t0 + 9_000));
        // The second write reset the deadline to t0 + 19 s.
        h.advance_to(t0 + 18_999);
        assert_eq!(h.apply(&count).count(), 2);
        h.advance_to(t0 + 19_000);
        assert_eq!(h.apply(&count).count(), 0, "expired at its deadline");
        // A write after expiry starts from nothing, as on a key Redis deleted.
        h.apply(&add(t0 + 19_000));
        assert_eq!(h.apply(&count).count(), 1);
        // A late event does not move the clock back.
        h.advance_to(t0);
        assert_eq!(h.apply(&count).count(), 1);

        let sw = |v: &str| Op::Swap { key: "s".into(), value: v.into(), ttl_s: 1 };
        assert_eq!(h.apply(&sw("a")).value(), None);
        h.advance_to(t0 + 20_000);
        assert_eq!(h.apply(&Op::Get { key: "s".into() }).value(), None);
        assert_eq!(h.apply(&sw("b")).value(), None, "the expired value is not returned");
        assert_eq!(h.apply(&sw("c")).value(), Some("b"));
    }

    #[test]
    fn first_seen_only_ever_extends_an_expiring_keys_deadline() {
        let mut h = MemoryHistory::expiring();
        let fs = |member: &str, ts, ttl_s| Op::FirstSeen { key: "u".into(), member: member.into(), ts, ttl_s };
        let lookup = Op::Lookup { key: "u".into(), member: "real".into() };
        h.advance_to(0);
        h.apply(&fs("real", 0, 100));
        // A short-lived write (an unproven attempt) does not shorten the customer's history.
        h.advance_to(50_000);
        h.apply(&fs("other", 50_000, 1));
        h.advance_to(99_999);
        assert_eq!(h.apply(&lookup).time(), Some(0));
        h.advance_to(100_000);
        assert_eq!(h.apply(&lookup).time(), None);
        // Sweeps drop expired keys from memory.
        h.advance_to(100_000 + 5 * 3_600_000);
        assert!(h.is_empty());
    }

    #[test]
    fn a_history_without_expiry_ignores_ttls() {
        let mut h = MemoryHistory::new();
        h.apply(&Op::Swap { key: "s".into(), value: "a".into(), ttl_s: 1 });
        h.advance_to(i64::MAX / 2);
        assert_eq!(h.apply(&Op::Get { key: "s".into() }).value(), Some("a"));
    }

    #[test]
    fn keys_escape_separators_so_ids_cannot_collide() {
        assert_ne!(key("u", "a:b"), key("u:a", "b"));
        assert_eq!(key("u", "a:b%"), "fd:u:a%3Ab%25");
        assert_eq!(key("u", "a\nb\u{85}é"), "fd:u:a%0Ab%85é", "C0 and C1 controls are escaped, other text kept");
    }
}
