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
use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::sync::Arc;

/// Text an op names (a key's id, a member, a value): an optional fixed prefix, then text
/// borrowed from the event or from what was rendered once for its plan (an address, …). Plans
/// run for every event of a lake in replay, so they name what is already there instead of
/// building a string per op, and an op is plain data: copied, never dropped. A store joins
/// prefix and text when it needs the whole ([`fmt::Display`]). The whole text's hash is taken
/// once, when the text is made: the in-memory store finds keys and members by it, and a plan
/// names one session, address or user in many ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Text<'a> {
    prefix: &'static str,
    body: &'a str,
    id: Id,
}

impl<'a> Text<'a> {
    fn new(prefix: &'static str, body: &'a str) -> Self {
        Text { prefix, body, id: whole_id(prefix, body) }
    }

    /// A text fixed in the source (a session mark, `*`), hashed when compiled.
    pub const fn fixed(body: &'static str) -> Text<'static> {
        Text { prefix: "", body, id: xxhash_rust::const_xxh3::xxh3_128(body.as_bytes()) }
    }

    /// The same text after a fixed prefix (`d:` + a device id).
    pub fn prefixed(self, prefix: &'static str) -> Self {
        debug_assert!(self.prefix.is_empty(), "one prefix per text");
        Text::new(prefix, self.body)
    }

    /// Whether `s` is the whole text, without joining prefix and text.
    pub fn is(&self, s: &str) -> bool {
        s.len() == self.prefix.len() + self.body.len() && s.starts_with(self.prefix) && s.ends_with(self.body)
    }

    /// Appends the whole text to `out`.
    fn render(&self, out: &mut String) {
        out.push_str(self.prefix);
        out.push_str(self.body);
    }

    /// The whole text when it has no prefix, which needs no joining.
    fn as_plain(&self) -> Option<&'a str> {
        self.prefix.is_empty().then_some(self.body)
    }
}

/// The hash of prefix and text joined, on the stack when they are short.
fn whole_id(prefix: &str, body: &str) -> Id {
    let (prefix, body) = (prefix.as_bytes(), body.as_bytes());
    if prefix.is_empty() {
        return id(body);
    }
    let n = prefix.len() + body.len();
    let mut buf = [0u8; 96];
    match buf.get_mut(..n) {
        Some(joined) => {
            joined[..prefix.len()].copy_from_slice(prefix);
            joined[prefix.len()..].copy_from_slice(body);
            id(joined)
        }
        None => id([prefix, body].concat().as_slice()),
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Self {
        Text::new("", s)
    }
}

impl<'a> From<&'a String> for Text<'a> {
    fn from(s: &'a String) -> Self {
        Text::new("", s)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.prefix)?;
        f.write_str(self.body)
    }
}

/// Writes an address as `Display` writes it; IPv4 (nearly all traffic) without the formatting
/// machinery, which otherwise costs a tenth of replay's instructions (callgrind).
pub fn write_addr(out: &mut String, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        let _ = write!(out, "{ip}");
        return;
    };
    for (i, o) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_u8(out, o);
    }
}

/// Writes the /24 (IPv4) or /64 (IPv6) network of an address, as `a.b.c.0/24` or
/// `a:b:c:d::/64`.
pub fn write_subnet(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for b in &v4.octets()[..3] {
                push_u8(out, *b);
                out.push('.');
            }
            out.push_str("0/24");
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let _ = write!(out, "{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]);
        }
    }
}

fn push_u8(out: &mut String, n: u8) {
    let digit = |d: u8| char::from(b'0' + d);
    if n >= 100 {
        out.push(digit(n / 100));
    }
    if n >= 10 {
        out.push(digit(n / 10 % 10));
    }
    out.push(digit(n % 10));
}

/// A history key: a family (`u:fl`, …) and the id of the entity it belongs to. Redis sees it
/// as `fd:family:id` ([`key`]: the id escaped so that no input can address another entity's
/// keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key<'a> {
    family: &'static str,
    /// The id's prefix and text, as in its [`Text`] (whose own hash only this key's needs).
    prefix: &'static str,
    body: &'a str,
    /// Its [`Id`], taken from the three above (which is why none of them can be changed).
    hash: Id,
}

impl<'a> Key<'a> {
    /// The key's [`Id`] is its id's hash mixed with its family's, so that `("u", "x")` and
    /// `("u:fl", "x")` stay apart as their Redis keys do. FNV-1a of the family (a literal of a
    /// few bytes, which the compiler folds where this is inlined) is spread over both halves,
    /// so that keys of one entity differ in every bit the table hashes.
    #[inline(always)]
    pub fn new(family: &'static str, id: impl Into<Text<'a>>) -> Self {
        let id = id.into();
        let f = family.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let hash = id.id ^ ((u128::from(f) << 64) | u128::from(f.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        Key { family, prefix: id.prefix, body: id.body, hash }
    }
}

impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write_key(f, self.family, &[self.prefix, self.body])
    }
}

/// The starts of one to three windows that end together, counted by one [`Op::Count`] (a
/// counter's minute, hour and day: one lookup of the set instead of three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Starts {
    at: [i64; MAX_WINDOWS],
    len: u8,
}

/// Most windows one [`Op::Count`] counts.
pub const MAX_WINDOWS: usize = 3;

impl Starts {
    /// The first [`MAX_WINDOWS`] of `from` (a plan never asks for more).
    pub fn new(from: &[i64]) -> Self {
        debug_assert!((1..=MAX_WINDOWS).contains(&from.len()), "one to three windows");
        let mut at = [0; MAX_WINDOWS];
        let len = from.len().min(MAX_WINDOWS);
        at[..len].copy_from_slice(&from[..len]);
        Starts { at, len: len as u8 }
    }

    pub fn as_slice(&self) -> &[i64] {
        &self.at[..usize::from(self.len)]
    }
}

impl From<i64> for Starts {
    fn from(from: i64) -> Self {
        Starts::new(&[from])
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op<'a> {
    /// Number of members of sorted set `key` with a score in `[from, to]`, for each start in
    /// `from`.
    Count { key: Key<'a>, from: Starts, to: i64 },
    /// Members and scores of `key` with a score in `[from, to]`, in ascending order.
    Range { key: Key<'a>, from: i64, to: i64 },
    /// Only the scores of [`Op::Range`]: what a window of event times needs, without copying
    /// members.
    Times { key: Key<'a>, from: i64, to: i64 },
    /// Put `member` at `ts` unless it is already at a later time; then drop members older than
    /// `keep_after`, keep only the newest `max_len`, and let the key expire after `ttl_s`
    /// of wall-clock inactivity (a memory bound only; windows are enforced by event time).
    Add { key: Key<'a>, member: Text<'a>, ts: i64, keep_after: i64, max_len: u32, ttl_s: u32 },
    /// First-seen time of `member` in map `key`, recording `ts` if it was not seen. The key's
    /// wall-clock expiry is set to `ttl_s` if it has none, and otherwise only ever extended.
    FirstSeen { key: Key<'a>, member: Text<'a>, ts: i64, ttl_s: u32 },
    /// First-seen time of `member` in map `key`, without recording anything.
    Lookup { key: Key<'a>, member: Text<'a> },
    /// Sets string `key` to `value` and returns the previous value, or [`OpResult::Same`] if
    /// that was `value` already (most swaps: a session's address and device rarely change, and
    /// a store then need not hand back a text the caller holds).
    Swap { key: Key<'a>, value: Text<'a>, ttl_s: u32 },
    /// Reads string `key`.
    Get { key: Key<'a> },
}

#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    /// One count per window of the [`Op::Count`], in its order; 0 past its windows.
    Count([u64; MAX_WINDOWS]),
    Range(Vec<(Arc<str>, i64)>),
    Times(Vec<i64>),
    Time(Option<i64>),
    Value(Option<Arc<str>>),
    /// An [`Op::Swap`] whose key held its value already.
    Same,
    Done,
}

impl OpResult {
    /// The count in the first window (the number of members, for a range).
    pub fn count(&self) -> u64 {
        self.count_at(0)
    }
    /// The count in window `window` of an [`Op::Count`].
    pub fn count_at(&self, window: usize) -> u64 {
        match self {
            OpResult::Count(n) => n.get(window).copied().unwrap_or(0),
            OpResult::Range(v) => v.len() as u64,
            OpResult::Times(v) => v.len() as u64,
            _ => 0,
        }
    }
    pub fn range(&self) -> &[(Arc<str>, i64)] {
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
    /// A [`Get`](Op::Get)'s value, or a [`Swap`](Op::Swap)'s previous value when it differed
    /// from the new one (`None` for [`OpResult::Same`], whose value is the swap's own).
    pub fn value(&self) -> Option<&str> {
        match self {
            OpResult::Value(v) => v.as_deref(),
            _ => None,
        }
    }
}

/// A key or member as its 128-bit XXH3 hash: replay holds millions of keys and looks up ~25 per
/// event, and hashing, comparing and storing their text was a third of replay time. Two distinct
/// texts share a hash with probability about 2⁻¹²⁸ per pair, far below any lake's worth of keys
/// (keys here come from our own lake, not from someone crafting collisions).
type Id = u128;

fn id(text: &[u8]) -> Id {
    xxhash_rust::xxh3::xxh3_128(text)
}

/// The whole text, joined into `scratch` only when it has a prefix.
fn whole<'s>(scratch: &'s mut String, text: &'s Text) -> &'s str {
    match text.as_plain() {
        Some(s) => s,
        None => {
            scratch.clear();
            text.render(scratch);
            scratch
        }
    }
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

/// A sorted set. Most sets hold one member for life (a session's failed logins, an address's
/// users: 81 % of the benchmark's), so one member sits in the table slot itself, and only a
/// second one moves the set into a [`Many`] on the heap: no allocation and no pointer to
/// follow for most sets, and the slot stays one 64-byte cache line with its key and deadline.
#[derive(Debug, Clone)]
enum SortedSet {
    One(Entry),
    Many(Box<Many>),
}

/// A set of two or more members as a time-ordered deque: replay adds mostly at the back and
/// trims at the front, and a window count is two binary searches (Redis `ZCOUNT` is
/// logarithmic too). Most such sets are small (a session's events), where a scan for a member
/// beats a hash table and its allocation; an index of members' scores is built once a set
/// grows past [`INDEX_ABOVE`].
#[derive(Debug, Clone)]
struct Many {
    by_order: VecDeque<Entry>,
    index: Option<IdMap<i64>>,
}

#[derive(Debug, Clone)]
struct Entry {
    score: i64,
    /// Owned, not shared: a `Range` (one family) copies it out, while every set's members are
    /// dropped when its key expires or replay ends, where an `Arc` paid an atomic each.
    member: Box<str>,
    /// The member's [`Id`] in two halves, which the scan and the index compare (a `u128`
    /// field would align the entry to 16 bytes and make it 48 instead of 40).
    id: [u64; 2],
}

impl Entry {
    fn new(member: &str, id: Id, score: i64) -> Self {
        Entry { score, member: Box::from(member), id: halves(id) }
    }
}

/// An [`Id`] as an [`Entry`] holds it.
fn halves(id: Id) -> [u64; 2] {
    [id as u64, (id >> 64) as u64]
}

/// Size above which a set indexes its members' scores.
const INDEX_ABOVE: usize = 16;

impl SortedSet {
    /// Number of entries with a score in `[from, to]` for each start.
    fn counts(&self, from: &Starts, to: i64) -> [u64; MAX_WINDOWS] {
        match self {
            SortedSet::One(e) => {
                let mut n = [0; MAX_WINDOWS];
                for (n, from) in n.iter_mut().zip(from.as_slice()) {
                    *n = u64::from(*from <= e.score && e.score <= to);
                }
                n
            }
            SortedSet::Many(m) => m.counts(from, to),
        }
    }

    /// `f` of each entry with a score in `[from, to]`, in order.
    fn window<T>(&self, from: i64, to: i64, f: impl Fn(&Entry) -> T) -> Vec<T> {
        match self {
            SortedSet::One(e) if from <= e.score && e.score <= to => vec![f(e)],
            SortedSet::One(_) => Vec::new(),
            SortedSet::Many(m) => m.by_order.range(m.window(from, to)).map(f).collect(),
        }
    }

    /// Puts `member` at `ts` unless it is already at a later time.
    fn add(&mut self, member: &str, id: Id, ts: i64) {
        match self {
            SortedSet::One(e) if e.id == halves(id) => e.score = e.score.max(ts),
            SortedSet::One(e) => {
                // The empty text of the placeholder allocates nothing.
                let old = std::mem::replace(e, Entry { score: 0, member: Box::default(), id: [0; 2] });
                let new = Entry::new(member, id, ts);
                let in_order = (old.score, &*old.member) < (new.score, &*new.member);
                let by_order = if in_order { VecDeque::from([old, new]) } else { VecDeque::from([new, old]) };
                *self = SortedSet::Many(Box::new(Many { by_order, index: None }));
            }
            SortedSet::Many(m) => m.add(member, id, ts),
        }
    }

    /// Drops entries older than `keep_after` and all but the newest `max_len`; returns whether
    /// the set is empty then (its key is deleted, as in Redis).
    fn trim(&mut self, keep_after: i64, max_len: usize) -> bool {
        match self {
            SortedSet::One(e) => e.score < keep_after || max_len == 0,
            SortedSet::Many(m) => {
                m.trim(keep_after, max_len);
                m.by_order.is_empty()
            }
        }
    }
}

impl Many {
    /// Index of the first entry at or after `(ts, member)` in `(score, member)` order.
    fn position(&self, ts: i64, member: &str) -> usize {
        // Replay adds in time order: after the newest entry, without a search.
        self.count_while(|e| (e.score, &*e.member) < (ts, member))
    }

    /// Number of entries with a score of at most `to`: all of them when `to` is the newest
    /// event's time, as in replay.
    fn up_to(&self, to: i64) -> usize {
        self.count_while(|e| e.score <= to)
    }

    /// Length of the leading run of entries that satisfy `pred` (which holds for a prefix of
    /// the set), without a search when it holds for the newest entry too.
    fn count_while(&self, pred: impl Fn(&Entry) -> bool) -> usize {
        if self.by_order.back().is_none_or(&pred) { self.by_order.len() } else { self.by_order.partition_point(pred) }
    }

    /// Index range of entries with a score in `[from, to]`.
    fn window(&self, from: i64, to: i64) -> std::ops::Range<usize> {
        let lo = self.by_order.partition_point(|e| e.score < from);
        let hi = self.up_to(to);
        lo..hi.max(lo)
    }

    /// Number of entries with a score in `[from, to]` for each start (the window end found once).
    fn counts(&self, from: &Starts, to: i64) -> [u64; MAX_WINDOWS] {
        let hi = self.up_to(to);
        let mut n = [0; MAX_WINDOWS];
        for (n, from) in n.iter_mut().zip(from.as_slice()) {
            *n = hi.saturating_sub(self.by_order.partition_point(|e| e.score < *from)) as u64;
        }
        n
    }

    /// Position and score of `member` (whose [`Id`] is `id`), if it is in the set.
    fn find(&self, member: &str, id: Id) -> Option<(usize, i64)> {
        match &self.index {
            Some(index) => index.get(&id).map(|&score| (self.position(score, member), score)),
            // Newest first: a member added again is usually a recent one.
            None => {
                let id = halves(id);
                self.by_order.iter().rposition(|e| e.id == id).map(|at| (at, self.by_order[at].score))
            }
        }
    }

    fn add(&mut self, member: &str, id: Id, ts: i64) {
        let member: Box<str> = match self.find(member, id) {
            Some((_, old)) if old >= ts => return,
            Some((at, _)) => self.by_order.remove(at).map_or_else(|| Box::from(member), |e| e.member),
            None => Box::from(member),
        };
        let at = self.position(ts, &member);
        self.by_order.insert(at, Entry { score: ts, member, id: halves(id) });
        match &mut self.index {
            Some(index) => {
                index.insert(id, ts);
            }
            None if self.by_order.len() > INDEX_ABOVE => {
                self.index = Some(self.by_order.iter().map(|e| (joined(e.id), e.score)).collect());
            }
            None => {}
        }
    }

    fn trim(&mut self, keep_after: i64, max_len: usize) {
        while let Some(e) = self.by_order.front() {
            if e.score < keep_after || self.by_order.len() > max_len {
                let dropped = self.by_order.pop_front();
                if let (Some(e), Some(index)) = (dropped, &mut self.index) {
                    index.remove(&joined(e.id));
                }
            } else {
                break;
            }
        }
    }
}

/// The [`Id`] of an entry's [`halves`].
fn joined([lo, hi]: [u64; 2]) -> Id {
    u128::from(lo) | (u128::from(hi) << 64)
}

/// A key's first-seen times by member. Most keys hold a few (a session's marks, a user's
/// first sightings of a device, address, network and country), which a scan of a vector of
/// 24-byte entries finds without hashing again or a table's allocation and rehashes; past
/// [`INDEX_ABOVE`] members they move to a hash table.
#[derive(Debug, Clone)]
enum FirstSeen {
    Few(Vec<([u64; 2], i64)>),
    Many(Box<IdMap<i64>>),
}

impl Default for FirstSeen {
    fn default() -> Self {
        FirstSeen::Few(Vec::new())
    }
}

impl FirstSeen {
    fn get(&self, id: Id) -> Option<i64> {
        match self {
            FirstSeen::Few(v) => {
                let id = halves(id);
                v.iter().find(|(m, _)| *m == id).map(|(_, t)| *t)
            }
            FirstSeen::Many(m) => m.get(&id).copied(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            FirstSeen::Few(v) => v.is_empty(),
            FirstSeen::Many(m) => m.is_empty(),
        }
    }

    /// Records `id` at `ts`; `id` is not yet here.
    fn insert(&mut self, id: Id, ts: i64) {
        match self {
            FirstSeen::Few(v) if v.len() < INDEX_ABOVE => v.push((halves(id), ts)),
            FirstSeen::Few(v) => {
                let mut m: IdMap<i64> = v.iter().map(|(m, t)| (joined(*m), *t)).collect();
                m.insert(id, ts);
                *self = FirstSeen::Many(Box::new(m));
            }
            FirstSeen::Many(m) => {
                m.insert(id, ts);
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
/// members are held as 128-bit XXH3 hashes, not text, taken once when the plan names them
/// ([`Text`], [`Key::new`]); a set of one member needs no allocation of its own
/// (`SortedSet`) and a key's first-seen times no table until it has many (`FirstSeen`).
#[derive(Debug, Default, Clone)]
pub struct MemoryHistory {
    sets: IdMap<Expiring<SortedSet>>,
    maps: IdMap<Expiring<FirstSeen>>,
    strings: IdMap<Expiring<Option<Stored>>>,
    clock: Option<Clock>,
    /// Where a member or value with a prefix is joined before it is stored.
    scratch: String,
}

/// A string's value with its [`Id`] (as [`halves`]), which a swap compares without reading
/// the text.
type Stored = ([u64; 2], Arc<str>);

/// A value and the event time at which it expires (`i64::MAX`: never).
#[derive(Debug, Default, Clone)]
struct Expiring<T> {
    value: T,
    deadline: i64,
}

/// Deadline after a write that resets the TTL (Redis `EXPIRE`, `SET … EX`).
fn reset(clock: Option<Clock>, ttl_s: u32) -> i64 {
    clock.map_or(i64::MAX, |c| c.now.saturating_add(i64::from(ttl_s).saturating_mul(1000)))
}

/// The live value of `key`, or `None` if there is none or it has expired.
fn live<T>(map: &IdMap<Expiring<T>>, clock: Option<Clock>, key: Id) -> Option<&T> {
    map.get(&key).filter(|e| clock.is_none_or(|c| e.deadline > c.now)).map(|e| &e.value)
}

/// The entry for `key` to write to: created if missing, emptied if expired (Redis would have
/// deleted it).
fn entry<T: Default>(map: &mut IdMap<Expiring<T>>, clock: Option<Clock>, key: Id) -> &mut Expiring<T> {
    entry_or(map, clock, key, T::default).0
}

/// [`entry`] with the value a missing or expired key starts from made by `fresh`, and whether
/// it did (a set starts with its first member rather than empty).
fn entry_or<T>(
    map: &mut IdMap<Expiring<T>>,
    clock: Option<Clock>,
    key: Id,
    fresh: impl FnOnce() -> T,
) -> (&mut Expiring<T>, bool) {
    use std::collections::hash_map::Entry as Slot;
    match map.entry(key) {
        Slot::Vacant(slot) => (slot.insert(Expiring { value: fresh(), deadline: i64::MAX }), true),
        Slot::Occupied(slot) => {
            let e = slot.into_mut();
            let expired = clock.is_some_and(|c| e.deadline <= c.now);
            if expired {
                *e = Expiring { value: fresh(), deadline: i64::MAX };
            }
            (e, expired)
        }
    }
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
        let scratch = &mut self.scratch;
        match op {
            Op::Count { key, from, to } => {
                OpResult::Count(live(&self.sets, clock, key.hash).map_or([0; MAX_WINDOWS], |s| s.counts(from, *to)))
            }
            Op::Range { key, from, to } => OpResult::Range(
                live(&self.sets, clock, key.hash)
                    .map(|s| s.window(*from, *to, |e| (Arc::from(&*e.member), e.score)))
                    .unwrap_or_default(),
            ),
            Op::Times { key, from, to } => OpResult::Times(
                live(&self.sets, clock, key.hash).map(|s| s.window(*from, *to, |e| e.score)).unwrap_or_default(),
            ),
            Op::Add { key, member, ts, keep_after, max_len, ttl_s } => {
                let (member, id) = (whole(scratch, member), member.id);
                let first = || SortedSet::One(Entry::new(member, id, *ts));
                let (e, fresh) = entry_or(&mut self.sets, clock, key.hash, first);
                if !fresh {
                    e.value.add(member, id, *ts);
                }
                e.deadline = reset(clock, *ttl_s);
                if e.value.trim(*keep_after, *max_len as usize) {
                    self.sets.remove(&key.hash);
                }
                OpResult::Done
            }
            Op::FirstSeen { key, member, ts, ttl_s } => {
                let e = entry(&mut self.maps, clock, key.hash);
                // Set when new, extend when longer, never shorten: as `EXPIRE NX` + `EXPIRE GT`.
                let extended = reset(clock, *ttl_s);
                e.deadline = if e.value.is_empty() { extended } else { e.deadline.max(extended) };
                match e.value.get(member.id) {
                    Some(t) => OpResult::Time(Some(t)),
                    None => {
                        e.value.insert(member.id, *ts);
                        OpResult::Time(None)
                    }
                }
            }
            Op::Lookup { key, member } => {
                let (k, member) = (key.hash, member.id);
                OpResult::Time(live(&self.maps, clock, k).and_then(|m| m.get(member)))
            }
            Op::Swap { key, value, ttl_s } => {
                let id = halves(value.id);
                let e = entry(&mut self.strings, clock, key.hash);
                e.deadline = reset(clock, *ttl_s);
                match &e.value {
                    Some((old, _)) if *old == id => OpResult::Same,
                    _ => OpResult::Value(e.value.replace((id, Arc::from(whole(scratch, value)))).map(|(_, v)| v)),
                }
            }
            Op::Get { key } => {
                OpResult::Value(live(&self.strings, clock, key.hash).and_then(|v| v.as_ref()).map(|(_, v)| v.clone()))
            }
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

/// The Redis key of `family` for `id`. The id is escaped, so that no input can address
/// another entity's keys (ids are always the last key component, `:` and `%` escaped).
pub fn key(family: &str, id: &str) -> String {
    let mut k = String::with_capacity(4 + family.len() + id.len());
    let _ = write_key(&mut k, family, &[id]);
    k
}

/// Writes the key of `family` for the id made of `parts` (escaping is per character, so parts
/// escape as their whole does).
fn write_key(out: &mut impl fmt::Write, family: &str, parts: &[&str]) -> fmt::Result {
    out.write_str("fd:")?;
    out.write_str(family)?;
    out.write_char(':')?;
    for part in parts {
        // Byte scan first: ids are nearly always plain, and `0xC2` leads every C1 control.
        if !part.bytes().any(|b| b == b':' || b == b'%' || b < 0x20 || b == 0x7f || b == 0xc2) {
            out.write_str(part)?;
            continue;
        }
        for c in part.chars() {
            match c {
                ':' => out.write_str("%3A")?,
                '%' => out.write_str("%25")?,
                c if c.is_control() => write!(out, "%{:02X}", c as u32 & 0xff)?,
                c => out.write_char(c)?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(id: &str) -> Key<'_> {
        Key::new("t", id)
    }

    #[test]
    fn add_keeps_the_latest_time_per_member_and_trims_by_time_and_length() {
        let mut h = MemoryHistory::new();
        let add = |m: &'static str, ts, keep_after, max_len| Op::Add {
            key: k("k"),
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
            h.apply(&Op::Range { key: k("k"), from: 0, to: 100 }).range(),
            &[("a".into(), 10), ("b".into(), 20)]
        );
        h.apply(&add("c", 30, 15, 10));
        assert_eq!(h.apply(&Op::Count { key: k("k"), from: 0.into(), to: 100 }).count(), 2);
        h.apply(&add("d", 40, 0, 2));
        assert_eq!(
            h.apply(&Op::Range { key: k("k"), from: 0, to: 100 }).range(),
            &[("c".into(), 30), ("d".into(), 40)]
        );
        assert_eq!(h.apply(&Op::Count { key: k("k"), from: 31.into(), to: 40 }).count(), 1);
    }

    #[test]
    fn a_set_grown_past_its_index_threshold_agrees_with_a_plain_model_of_add_and_trim() {
        // Members come back earlier, later and at equal times, and trims cut by time and length,
        // while the set passes INDEX_ABOVE both ways; a sorted list is the model.
        let mut h = MemoryHistory::new();
        let mut model: Vec<(i64, String)> = Vec::new();
        for i in 0..400_i64 {
            let member = format!("m{}", (i * 7) % 53);
            let ts = 1000 + (i % 17) * 10 + i / 40;
            let keep_after = if i % 97 == 96 { ts - 60 } else { 0 };
            let max_len = if i % 61 == 60 { 5 } else { 40 };
            h.apply(&Op::Add { key: k("k"), member: member.as_str().into(), ts, keep_after, max_len, ttl_s: 0 });
            match model.iter().position(|(_, m)| *m == member) {
                Some(at) if model[at].0 >= ts => {}
                Some(at) => model[at].0 = ts,
                None => model.push((ts, member)),
            }
            model.sort();
            while model.first().is_some_and(|(t, _)| *t < keep_after) || model.len() > max_len as usize {
                model.remove(0);
            }
            let want: Vec<(Arc<str>, i64)> = model.iter().map(|(t, m)| (m.as_str().into(), *t)).collect();
            assert_eq!(
                h.apply(&Op::Range { key: k("k"), from: i64::MIN, to: i64::MAX }).range(),
                want,
                "after add {i}"
            );
        }
        assert!(model.len() > INDEX_ABOVE, "the set ends indexed");
    }

    #[test]
    fn a_set_of_one_member_fills_one_cache_line_with_its_key_and_deadline() {
        // What a lookup of most sets reads: keeping it one line is the point of `SortedSet::One`.
        assert_eq!(std::mem::size_of::<(Id, Expiring<SortedSet>)>(), 64);
    }

    #[test]
    fn first_seen_times_stay_right_as_a_key_grows_past_its_index_threshold() {
        let mut h = MemoryHistory::new();
        let member = |i: i64| format!("m{i}");
        for i in 0..40_i64 {
            let m = member(i);
            let op = Op::FirstSeen { key: k("m"), member: m.as_str().into(), ts: 100 + i, ttl_s: 0 };
            assert_eq!(h.apply(&op), OpResult::Time(None), "{m} is new");
            // Every member so far keeps its first time, whether scanned or indexed.
            for j in 0..=i {
                let (m, seen_again) = (member(j), 1000 + j);
                let again = Op::FirstSeen { key: k("m"), member: m.as_str().into(), ts: seen_again, ttl_s: 0 };
                assert_eq!(h.apply(&again), OpResult::Time(Some(100 + j)), "{m} after {i} members");
                assert_eq!(h.apply(&Op::Lookup { key: k("m"), member: m.as_str().into() }).time(), Some(100 + j));
            }
        }
        assert_eq!(h.apply(&Op::Lookup { key: k("m"), member: "never".into() }).time(), None);
        let indexed = h.maps.values().all(|e| matches!(e.value, FirstSeen::Many(_)));
        assert!(indexed, "the key ends indexed");
    }

    #[test]
    fn first_seen_records_once_and_swap_returns_the_previous_value() {
        let mut h = MemoryHistory::new();
        let fs = |ts| Op::FirstSeen { key: k("m"), member: "x".into(), ts, ttl_s: 0 };
        assert_eq!(h.apply(&fs(7)), OpResult::Time(None));
        assert_eq!(h.apply(&fs(9)), OpResult::Time(Some(7)));
        assert_eq!(h.apply(&Op::Lookup { key: k("m"), member: "x".into() }).time(), Some(7));
        let sw = |v: &'static str| Op::Swap { key: k("s"), value: v.into(), ttl_s: 0 };
        assert_eq!(h.apply(&sw("1")).value(), None);
        assert_eq!(h.apply(&sw("2")).value(), Some("1"));
        assert_eq!(h.apply(&sw("2")), OpResult::Same, "the same value again is answered as such");
        assert_eq!(h.apply(&Op::Get { key: k("s") }).value(), Some("2"));
    }

    #[test]
    fn an_expiring_history_forgets_a_key_its_ttl_after_the_last_write_in_event_time() {
        let mut h = MemoryHistory::expiring();
        let t0 = 1_000_000_000;
        h.advance_to(t0);
        let members: Vec<String> = (0..3).map(|i| format!("m{i}")).collect();
        let add = |i: usize, ts| Op::Add {
            key: k("k"),
            member: members[i].as_str().into(),
            ts,
            keep_after: 0,
            max_len: 10,
            ttl_s: 10,
        };
        let count = Op::Count { key: k("k"), from: 0.into(), to: i64::MAX };
        h.apply(&add(0, t0));
        h.advance_to(t0 + 9_000);
        h.apply(&add(1, t0 + 9_000));
        // The second write reset the deadline to t0 + 19 s.
        h.advance_to(t0 + 18_999);
        assert_eq!(h.apply(&count).count(), 2);
        h.advance_to(t0 + 19_000);
        assert_eq!(h.apply(&count).count(), 0, "expired at its deadline");
        // A write after expiry starts from nothing, as on a key Redis deleted.
        h.apply(&add(2, t0 + 19_000));
        assert_eq!(h.apply(&count).count(), 1);
        // A late event does not move the clock back.
        h.advance_to(t0);
        assert_eq!(h.apply(&count).count(), 1);

        let sw = |v: &'static str| Op::Swap { key: k("s"), value: v.into(), ttl_s: 1 };
        assert_eq!(h.apply(&sw("a")).value(), None);
        h.advance_to(t0 + 20_000);
        assert_eq!(h.apply(&Op::Get { key: k("s") }).value(), None);
        assert_eq!(h.apply(&sw("b")).value(), None, "the expired value is not returned");
        assert_eq!(h.apply(&sw("c")).value(), Some("b"));
    }

    #[test]
    fn first_seen_only_ever_extends_an_expiring_keys_deadline() {
        let mut h = MemoryHistory::expiring();
        let fs = |member: &'static str, ts, ttl_s| Op::FirstSeen { key: k("u"), member: member.into(), ts, ttl_s };
        let lookup = Op::Lookup { key: k("u"), member: "real".into() };
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
        h.apply(&Op::Swap { key: k("s"), value: "a".into(), ttl_s: 1 });
        h.advance_to(i64::MAX / 2);
        assert_eq!(h.apply(&Op::Get { key: k("s") }).value(), Some("a"));
    }

    #[test]
    fn addresses_and_networks_are_written_as_display_writes_them() {
        for b in 0..=255u8 {
            for ip in [[b, 0, 9, 255], [10, b, 1, 2], [1, 99, b, 100], [255, 255, 255, b]] {
                let ip = std::net::Ipv4Addr::from(ip);
                let (mut addr, mut net) = (String::new(), String::new());
                write_addr(&mut addr, ip.into());
                write_subnet(&mut net, ip.into());
                assert_eq!(addr, ip.to_string());
                let [a, b, c, _] = ip.octets();
                assert_eq!(net, format!("{a}.{b}.{c}.0/24"));
            }
        }
    }

    #[test]
    fn texts_and_keys_render_as_redis_sees_them() {
        let v4: IpAddr = "10.20.3.4".parse().unwrap();
        let v6: IpAddr = "2001:db8:a:b:1:2:3:4".parse().unwrap();
        let render = |write: fn(&mut String, IpAddr), ip| {
            let mut s = String::new();
            write(&mut s, ip);
            s
        };
        let (addr, subnet) = (|ip| render(write_addr, ip), |ip| render(write_subnet, ip));
        assert_eq!(addr(v4), "10.20.3.4");
        assert_eq!(addr(v6), v6.to_string());
        assert_eq!(subnet(v4), "10.20.3.0/24");
        assert_eq!(subnet(v6), "2001:db8:a:b::/64");
        for o in [0u8, 7, 10, 99, 100, 255] {
            let ip = IpAddr::from([o, o, o, o]);
            assert_eq!(addr(ip), ip.to_string());
        }
        assert_eq!(Text::from("abc").prefixed("d:").to_string(), "d:abc");
        let t = Text::from("abc").prefixed("d:");
        assert!(t.is("d:abc") && !t.is("d:ab") && !t.is("dabc") && !t.is("d:abcd") && !t.is("x:abc"));
        // A fixed text is the text it names, hash included.
        const FIXED: Text<'static> = Text::fixed("login");
        assert_eq!(FIXED, Text::from("login"));
        assert_eq!(Key::new("u:fl", "a:b%").to_string(), key("u:fl", "a:b%"));
        assert_eq!(Key::new("ip:fl", &addr(v4)).to_string(), "fd:ip:fl:10.20.3.4");
    }

    #[test]
    fn keys_escape_separators_so_ids_cannot_collide() {
        assert_ne!(key("u", "a:b"), key("u:a", "b"));
        assert_eq!(key("u", "a:b%"), "fd:u:a%3Ab%25");
        assert_eq!(key("u", "a\nb\u{85}é"), "fd:u:a%0Ab%85é", "C0 and C1 controls are escaped, other text kept");
    }
}
