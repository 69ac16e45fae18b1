//! From lake to labelled feature rows.

use lake::Lake;
use models::features::{FEATURES, Replayer};
use models::history::MemoryHistory;
use models::{ClickEvent, Label, LabelKind};
use std::collections::HashMap;

pub const DAY_MS: i64 = 86_400_000;

/// Features per row.
pub const N_FEATURES: usize = FEATURES.len();

/// One labelled event. The features are inline (no allocation per row): at 10 M events, a
/// `Vec` per row cost ~40 bytes of header and allocator overhead each.
#[derive(Debug, Clone)]
pub struct Row {
    pub ts: i64,
    /// The session, as a 64-bit hash of its id (rows group by it; ids themselves are not kept).
    pub session: u64,
    pub fraud: bool,
    /// What kind of fraud the label said, when it said.
    pub kind: Option<LabelKind>,
    pub transfer_value: f64,
    pub x: [f32; N_FEATURES],
}

/// What to keep of a replay. The default keeps every event up to the newest as a row.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Labels known after this are not used; the default is the newest event's time.
    pub cutoff: Option<i64>,
    /// Split the lake by time (see [`Split::by_time`]) and keep only rows in its windows.
    pub label_delay_days: Option<f64>,
    /// At most about this many training-window rows (0: all). Legitimate sessions are sampled
    /// whole (by a hash of their id); every session with a fraud label is kept. Validation and
    /// test are never sampled, so calibration and evaluation see the real class balance.
    pub max_train_rows: usize,
    /// With `label_delay_days`: instead of a split, keep only the rows of this many days before
    /// the label delay (the newest window whose labels are in), as `trainer evaluate` scores.
    pub recent_days: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Dataset {
    pub rows: Vec<Row>,
    /// The windows, when the options asked for a split.
    pub split: Option<Split>,
    /// The recent window, when the options asked for one instead of a split.
    pub window: Option<(i64, i64)>,
    /// Share of legitimate training sessions kept (1: all).
    pub train_sample_rate: f64,
    pub first_ts: i64,
    pub last_ts: i64,
    pub cutoff: i64,
    pub events_read: usize,
    pub events_rejected: usize,
    /// Events replayed (their history counts) but not kept as rows: outside the windows, or
    /// sampled out of the training window.
    pub rows_dropped: usize,
    pub labels_used: usize,
    pub labels_late: usize,
    /// Keys the replay's history held at the end (memory accounting).
    pub history_keys: usize,
    /// Date partitions left out as strays (see [`without_strays`]), with their rows.
    pub strays: Vec<(String, usize)>,
    /// How late the fraud labels known at the cut-off arrived.
    pub label_delays: crate::delays::LabelDelays,
}

/// What the labels known at `cutoff` say: fraudulent sessions, and accounts labelled
/// fraudulent from a time on. A later label about the same session overrides an earlier one.
/// A fraud label that names an event but no session (a chargeback names the transfer) speaks
/// of the account from then on, as the contract says, and also of the event's own session,
/// which the replay finds ([`Truth::fraud_named_by_event`]).
pub struct Truth {
    sessions: HashMap<String, (bool, Option<LabelKind>)>,
    accounts: HashMap<String, (i64, Option<LabelKind>)>,
    events: HashMap<String, Option<LabelKind>>,
}

impl Truth {
    pub fn known_at(labels: &[Label], cutoff: i64) -> (Truth, usize, usize) {
        let mut t = Truth { sessions: HashMap::new(), accounts: HashMap::new(), events: HashMap::new() };
        let (mut used, mut late) = (0, 0);
        for l in labels {
            if l.ts > cutoff {
                late += 1;
                continue;
            }
            used += 1;
            match &l.session_id {
                Some(s) => {
                    t.sessions.insert(s.clone(), (l.is_fraud, l.kind));
                }
                None if l.is_fraud => {
                    if let Some(event) = &l.event_id {
                        t.events.insert(event.clone(), l.kind);
                    }
                    let e = t.accounts.entry(l.user_id.clone()).or_insert((l.ts, l.kind));
                    if l.ts < e.0 {
                        *e = (l.ts, l.kind.or(e.1));
                    }
                }
                None => {
                    t.accounts.remove(&l.user_id);
                }
            }
        }
        (t, used, late)
    }

    /// `Some(kind)` when a fraud label names this very event but not its session (kind `Other`
    /// when the label named none); a session label about the session wins over it.
    pub fn fraud_named_by_event(&self, ev: &ClickEvent) -> Option<LabelKind> {
        let kind = self.events.get(&ev.event_id)?;
        (!self.sessions.contains_key(&ev.session_id)).then(|| kind.unwrap_or(LabelKind::Other))
    }

    /// Whether a fraud label speaks of the event's session or account (at any time): such
    /// sessions are never sampled out of training.
    pub fn names_fraud_around(&self, ev: &ClickEvent) -> bool {
        self.sessions.get(&ev.session_id).is_some_and(|(f, _)| *f)
            || ev.user_id.as_ref().is_some_and(|u| self.accounts.contains_key(u))
    }

    /// `Some(kind)` if the event is fraudulent by the labels known (kind `Other` when the
    /// label named none), `None` if legitimate.
    pub fn fraud_kind(&self, ev: &ClickEvent) -> Option<LabelKind> {
        if let Some((f, kind)) = self.sessions.get(&ev.session_id) {
            return f.then(|| kind.unwrap_or(LabelKind::Other));
        }
        // An account label speaks of the account from then on.
        let (since, kind) = self.accounts.get(ev.user_id.as_ref()?)?;
        (ev.ts >= *since).then(|| kind.unwrap_or(LabelKind::Other))
    }
}

/// A number of days, which may be fractional, in milliseconds.
fn days_ms(days: f64) -> i64 {
    (days * DAY_MS as f64) as i64
}

pub fn session_hash(id: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x5e55_1045).hash_one(id)
}

/// Start of a `date=YYYY-MM-DD` partition, in epoch milliseconds.
fn day_start(date: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// Rows the lake holds in `window`, from the Parquet footers: whole days, and a share of the
/// days the window cuts (events spread over a day well enough for sizing a sample).
fn rows_in(counts: &[(Option<i64>, usize)], window: (i64, i64)) -> f64 {
    counts
        .iter()
        .map(|(start, n)| match start {
            Some(s) => {
                let overlap = (window.1.min(s + DAY_MS) - window.0.max(*s)).max(0);
                *n as f64 * overlap as f64 / DAY_MS as f64
            }
            None => 0.0,
        })
        .sum()
}

/// Replays the whole lake, oldest partition first, through one in-memory history that expires
/// keys on event time as Redis does live, so every event's features see exactly the history
/// before it. Every event is replayed; only the rows `opts` asks for are kept.
pub fn build(lake: &Lake, opts: &Options, mut progress: impl FnMut(&str, usize)) -> anyhow::Result<Dataset> {
    let (parts, strays) = without_strays(lake, lake.event_partitions()?)?;
    for (date, rows) in &strays {
        tracing::warn!(partition = %date, rows, "left out as a stray ({})", strays_rule());
    }
    let labels = lake.read_labels()?;
    let mut replay = Replayer::new(MemoryHistory::expiring());
    let mut ds = Dataset { first_ts: i64::MAX, last_ts: i64::MIN, train_sample_rate: 1.0, ..Dataset::default() };
    // The cut-off defaults to the newest event, found in the newest partition, which is then
    // kept until its turn to be replayed instead of being read twice.
    let mut newest = None;
    ds.cutoff = match (opts.cutoff, parts.last()) {
        (Some(c), _) => c,
        (None, Some((_, files))) => {
            let read = lake.read_events(files)?;
            let cutoff = read.0.last().map(|e| e.ts).unwrap_or(0);
            newest = Some(read);
            cutoff
        }
        (None, None) => 0,
    };
    let (truth, used, late) = Truth::known_at(&labels, ds.cutoff);
    let mut named_by_event: HashMap<u64, LabelKind> = HashMap::new();
    let mut delays = crate::delays::DelayProbe::new(&labels, ds.cutoff);
    // The labels known at the cut-off, fed back into the history at their own time, as the
    // enricher feeds the labels topic live.
    let mut known_labels: Vec<&Label> = labels.iter().filter(|l| l.ts <= ds.cutoff).collect();
    known_labels.sort_by_key(|l| l.ts);
    let mut feed = known_labels.into_iter().peekable();
    ds.labels_used = used;
    ds.labels_late = late;
    let counts = if opts.label_delay_days.is_some() && opts.max_train_rows > 0 {
        parts.iter().map(|(d, f)| Ok((day_start(d), lake.row_count(f)?))).collect::<anyhow::Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    ds.window = match (opts.recent_days, opts.label_delay_days) {
        (Some(days), Some(delay)) => {
            let mature = ds.cutoff - days_ms(delay);
            Some((mature - days_ms(days), mature))
        }
        _ => None,
    };
    // Date partitions hold disjoint, ordered days: replaying them one at a time in date order is
    // replaying the whole lake in event-time order, with one day in memory.
    for (i, (date, files)) in parts.iter().enumerate() {
        let (events, rejected) = match newest.take_if(|_| i + 1 == parts.len()) {
            Some(read) => read,
            None => lake.read_events(files)?,
        };
        ds.events_rejected += rejected;
        ds.events_read += events.len();
        progress(date, events.len());
        if let (None, None, Some(delay), Some(first)) = (&ds.window, &ds.split, opts.label_delay_days, events.first()) {
            let split = Split::by_time(first.ts, ds.cutoff, delay)?;
            let expected = rows_in(&counts, split.train);
            if opts.max_train_rows > 0 && expected > opts.max_train_rows as f64 {
                ds.train_sample_rate = opts.max_train_rows as f64 / expected;
            }
            ds.split = Some(split);
        }
        // Events come sorted by time; those after the cut-off are not replayed.
        let known = &events[..events.partition_point(|e| e.ts <= ds.cutoff)];
        for (ev, f) in replay.replay_labelled(known, &mut feed) {
            ds.first_ts = ds.first_ts.min(ev.ts);
            ds.last_ts = ds.last_ts.max(ev.ts);
            let session = session_hash(&ev.session_id);
            delays.see(ev);
            if let Some(kind) = truth.fraud_named_by_event(ev) {
                named_by_event.insert(session, kind);
            }
            let keep = match (&ds.window, &ds.split) {
                (Some((from, to)), _) => (*from..*to).contains(&ev.ts),
                (None, None) => true,
                (None, Some(s)) if s.contains(s.train, ev.ts) => {
                    ds.train_sample_rate >= 1.0
                        || (session as f64) < ds.train_sample_rate * u64::MAX as f64
                        || truth.names_fraud_around(ev)
                        || named_by_event.contains_key(&session)
                }
                (None, Some(s)) => s.contains(s.valid, ev.ts) || s.contains(s.test, ev.ts),
            };
            if !keep {
                ds.rows_dropped += 1;
                continue;
            }
            let kind = truth.fraud_kind(ev);
            ds.rows.push(Row {
                ts: ev.ts,
                session,
                fraud: kind.is_some(),
                kind,
                transfer_value: if ev.is(models::event::kind::TRANSFER) { ev.amount.unwrap_or(0.0) } else { 0.0 },
                x: std::array::from_fn(|j| f.0[j] as f32),
            });
        }
    }
    // The whole session of an event that a fraud label names, its rows before that event too.
    if !named_by_event.is_empty() {
        for row in ds.rows.iter_mut().filter(|r| !r.fraud) {
            if let Some(kind) = named_by_event.get(&row.session) {
                (row.fraud, row.kind) = (true, Some(*kind));
            }
        }
    }
    ds.history_keys = replay.history().len();
    ds.strays = strays;
    ds.label_delays = delays.finish();
    Ok(ds)
}

/// Each row's weight such that every session weighs the same in training whatever its length
/// (a long legitimate browsing session would otherwise count as much as dozens of short ones,
/// while a verdict is judged per session), scaled to a mean of 1 so that weights in hessian
/// units (a tree's minimum child weight) keep their meaning.
pub fn session_weights(rows: &[&Row]) -> Vec<f64> {
    let mut lengths: HashMap<u64, u32> = HashMap::new();
    for r in rows {
        *lengths.entry(r.session).or_default() += 1;
    }
    let mean = rows.len() as f64 / lengths.len().max(1) as f64;
    rows.iter().map(|r| mean / f64::from(lengths[&r.session])).collect()
}

/// Training weights: every session weighs the same ([`session_weights`]), and a legitimate
/// row weighs as much as it is sure to be legitimate: the share of fraud labels that would
/// have arrived by its age at the cut-off (`arrived_by`, from [`crate::delays`]). Old
/// unlabelled traffic counts fully; the newest counts as far as its silence means something.
pub fn train_weights(rows: &[&Row], cutoff: i64, arrived_by: impl Fn(f64) -> f64) -> Vec<f64> {
    session_weights(rows)
        .into_iter()
        .zip(rows)
        .map(|(w, r)| if r.fraud { w } else { w * arrived_by((cutoff - r.ts) as f64 / DAY_MS as f64) })
        .collect()
}

/// Days between date partitions beyond which a small group of them is taken for a stray.
const STRAY_GAP_DAYS: i64 = 30;
/// Share of the lake's rows under which a group of partitions that far from the rest is a stray.
const STRAY_SHARE: f64 = 0.01;
/// What a stray is, for the log and the report.
pub fn strays_rule() -> String {
    format!(
        "date partitions more than {STRAY_GAP_DAYS} days from the rest of the lake with under {} % of its rows: \
         a client clock that is wrong?",
        STRAY_SHARE * 100.0
    )
}

type Partitions = Vec<(String, Vec<lake::LakeFile>)>;

/// The partitions to replay, and the strays left out with their rows. A stray is a group of
/// date partitions more than [`STRAY_GAP_DAYS`] from any other that holds under
/// [`STRAY_SHARE`] of the lake's rows (and is not its largest group): the events of a client
/// whose clock is years off. Kept, such an event would set the default cut-off (the newest
/// event) or stretch the split (from the oldest) and leave training an empty window; a real
/// gap in the lake (a sink that was down for a month) leaves groups of real size, all kept.
/// Row counts come from the Parquet footers, read only when the lake has such a gap.
fn without_strays(lake: &Lake, parts: Partitions) -> anyhow::Result<(Partitions, Vec<(String, usize)>)> {
    let mut groups: Vec<Partitions> = Vec::new();
    let mut last_start: Option<i64> = None;
    for part in parts {
        let start = day_start(&part.0);
        let far = matches!((last_start, start), (Some(a), Some(b)) if b - a > STRAY_GAP_DAYS * DAY_MS);
        last_start = start.or(last_start);
        match groups.last_mut() {
            Some(g) if !far => g.push(part),
            _ => groups.push(vec![part]),
        }
    }
    if groups.len() < 2 {
        return Ok((groups.pop().unwrap_or_default(), Vec::new()));
    }
    let rows: Vec<Vec<usize>> =
        groups.iter().map(|g| g.iter().map(|(_, f)| lake.row_count(f)).collect()).collect::<anyhow::Result<_>>()?;
    let totals: Vec<usize> = rows.iter().map(|r| r.iter().sum()).collect();
    let all: usize = totals.iter().sum();
    let largest = totals.iter().enumerate().max_by_key(|(_, n)| **n).map_or(0, |(i, _)| i);
    let (mut kept, mut strays) = (Vec::new(), Vec::new());
    for (i, (group, rows)) in groups.into_iter().zip(rows).enumerate() {
        if i != largest && (totals[i] as f64) < STRAY_SHARE * all as f64 {
            strays.extend(group.into_iter().map(|(date, _)| date).zip(rows));
        } else {
            kept.extend(group);
        }
    }
    Ok((kept, strays))
}

/// Row indices of the train, validation and test windows. Events younger than the label
/// delay are left out (their labels may not have arrived), and a gap separates the windows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Split {
    pub train: (i64, i64),
    pub valid: (i64, i64),
    pub test: (i64, i64),
}

impl Split {
    pub fn by_time(first: i64, cutoff: i64, label_delay_days: f64) -> anyhow::Result<Split> {
        let mature = cutoff - days_ms(label_delay_days);
        let span = mature - first;
        if span < DAY_MS {
            anyhow::bail!(
                "the lake has {:.1} days of events older than the {label_delay_days}-day label delay; \
                 at least 1 is needed (generate more history or lower --label-delay-days)",
                span as f64 / DAY_MS as f64
            );
        }
        let at = |f: f64| first + (span as f64 * f) as i64;
        Ok(Split { train: (first, at(0.6)), valid: (at(0.6), at(0.75)), test: (at(0.78), mature) })
    }

    pub fn contains(&self, window: (i64, i64), ts: i64) -> bool {
        ts >= window.0 && ts < window.1
    }

    pub fn rows<'a>(&self, ds: &'a Dataset, window: (i64, i64)) -> Vec<&'a Row> {
        ds.rows.iter().filter(|r| self.contains(window, r.ts)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{LabelKind, LabelSource};

    #[test]
    fn every_session_weighs_the_same_and_a_young_unlabelled_one_weighs_what_its_silence_says() {
        let row =
            |session, fraud, ts| Row { ts, session, fraud, kind: None, transfer_value: 0.0, x: [0.0; N_FEATURES] };
        let cutoff = 100 * DAY_MS;
        // Session 1: three old legitimate rows; 2: an old fraudulent row; 3: a legitimate row a
        // day before the cut-off, 4: a fraudulent one as young.
        let rows = [
            row(1, false, 0),
            row(1, false, 0),
            row(1, false, 0),
            row(2, true, 0),
            row(3, false, cutoff - DAY_MS),
            row(4, true, cutoff - DAY_MS),
        ];
        let refs: Vec<&Row> = rows.iter().collect();
        let w = train_weights(&refs, cutoff, |age| if age < 2.0 { 0.25 } else { 1.0 });
        let mean = 6.0 / 4.0;
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(w[0] + w[1] + w[2], mean) && close(w[0], w[2]), "{w:?}");
        assert!(close(w[3], mean), "{w:?}");
        assert!(close(w[4], mean * 0.25), "a day-old unlabelled session is unsure: {w:?}");
        assert!(close(w[5], mean), "a label, however young, is sure: {w:?}");
    }

    fn event(id: &str, session: &str, user: &str, ts: i64) -> ClickEvent {
        let json = format!(
            r#"{{"event_id":"{id}","ts":"{}","session_id":"{session}","user_id":"{user}","type":"login","ip":"10.0.0.1"}}"#,
            models::format_ts(ts)
        );
        ClickEvent::decode(json.as_bytes(), 10_000).unwrap()
    }

    fn label(id: &str, ts: i64, user: &str, session: Option<&str>, kind: LabelKind) -> Label {
        Label {
            label_id: id.into(),
            ts,
            user_id: user.into(),
            session_id: session.map(str::to_string),
            event_id: None,
            is_fraud: true,
            kind: Some(kind),
            source: Some(LabelSource::Chargeback),
        }
    }

    /// A day boundary for the hand-made lakes below.
    const T0: i64 = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS;

    /// A lake holding `events` and `labels` (the directory lives as long as the guard).
    fn lake_with(events: &[ClickEvent], labels: &[Label]) -> (tempfile::TempDir, Lake) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::dir(dir.path());
        lake.write_events("t", events, lake::Durability::Buffered).unwrap();
        lake.write_labels("t", labels, lake::Durability::Buffered).unwrap();
        (dir, lake)
    }

    #[test]
    fn a_label_that_arrives_after_the_cutoff_is_not_used_and_account_labels_count_from_their_time() {
        let t0 = T0;
        let events = [
            event("a1", "sa", "ua", t0),
            event("b1", "sb", "ub", t0 + 1000),
            event("m1", "sm1", "um", t0 + 2000),
            event("m2", "sm2", "um", t0 + 2 * DAY_MS),
        ];
        let cutoff = t0 + 3 * DAY_MS;
        let labels = [
            label("known", t0 + DAY_MS, "ua", Some("sa"), LabelKind::Scam),
            // Known only after the cut-off: at training time nobody knew sb was fraud.
            label("late", cutoff + 1, "ub", Some("sb"), LabelKind::Bot),
            // The mule account is labelled on day 1: its day-2 session is fraud, day-0 is not.
            label("account", t0 + DAY_MS, "um", None, LabelKind::Mule),
        ];
        let (_dir, lake) = lake_with(&events, &labels);
        let ds = build(&lake, &Options { cutoff: Some(cutoff), ..Options::default() }, |_, _| {}).unwrap();
        let by_id: HashMap<&str, &Row> = events.iter().map(|e| e.event_id.as_str()).zip(&ds.rows).collect();
        assert_eq!((ds.labels_used, ds.labels_late), (2, 1));
        assert_eq!((by_id["a1"].fraud, by_id["a1"].kind), (true, Some(LabelKind::Scam)));
        assert!(!by_id["b1"].fraud, "the late label is not used");
        assert!(!by_id["m1"].fraud, "before the account label's time");
        assert_eq!((by_id["m2"].fraud, by_id["m2"].kind), (true, Some(LabelKind::Mule)));
        // With a later cut-off the late label counts.
        let later = build(&lake, &Options { cutoff: Some(cutoff + 2), ..Options::default() }, |_, _| {}).unwrap();
        assert!(later.rows[1].fraud);
    }

    #[test]
    fn a_fraud_label_that_names_an_event_marks_its_whole_session_unless_a_session_label_says_otherwise() {
        let t0 = T0;
        // Three events of a's session, two of b's, one of c's, a second apart.
        let ids = ["a1", "a2", "a3", "b1", "b2", "c1"];
        let events: Vec<ClickEvent> = (0..)
            .zip(ids)
            .map(|(i, id)| event(id, &format!("s{}", &id[..1]), &format!("u{}", &id[..1]), t0 + i * 1000))
            .collect();
        let on_event = |id: &str, user: &str, event: &str| Label {
            event_id: Some(event.into()),
            ..label(id, t0 + DAY_MS, user, None, LabelKind::AccountTakeover)
        };
        // A chargeback names a's second event; b's event is named too, but an analyst cleared b.
        let mut cleared = label("l3", t0 + DAY_MS, "ub", Some("sb"), LabelKind::Other);
        cleared.is_fraud = false;
        let labels = [on_event("l1", "ua", "a2"), on_event("l2", "ub", "b2"), cleared];
        let (_dir, lake) = lake_with(&events, &labels);
        let ds = build(&lake, &Options { cutoff: Some(t0 + 2 * DAY_MS), ..Options::default() }, |_, _| {}).unwrap();
        let fraud: Vec<(bool, Option<LabelKind>)> = ds.rows.iter().map(|r| (r.fraud, r.kind)).collect();
        let ato = (true, Some(LabelKind::AccountTakeover));
        assert_eq!(fraud, [ato, ato, ato, (false, None), (false, None), (false, None)]);
    }

    #[test]
    fn sampling_keeps_every_fraudulent_session_and_leaves_validation_and_test_whole() {
        use fixtures::sim::{SimConfig, World};
        let dir = tempfile::tempdir().unwrap();
        let world =
            World::new(SimConfig { seed: 3, customers: 400, rate_ato: 0.02, rate_bot: 0.02, ..SimConfig::default() });
        let end = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS;
        let lake = Lake::dir(dir.path());
        let written = fixtures::write_lake(&world, &lake, end, 10).unwrap();
        let whole = Options { label_delay_days: Some(2.0), ..Options::default() };
        let all = build(&lake, &whole, |_, _| {}).unwrap();
        // Every event once, the newest partition (read first for the cut-off) included.
        assert_eq!(all.events_read, written.events.len());
        assert_eq!((all.cutoff, all.last_ts), (written.events.last().unwrap().ts, all.cutoff));
        let split = all.split.clone().unwrap();
        let train_all = split.rows(&all, split.train);
        let cap = train_all.len() / 4;
        let sampled = build(&lake, &Options { max_train_rows: cap, ..whole }, |_, _| {}).unwrap();
        let train = split.rows(&sampled, split.train);

        // Rows outside the windows (the gap, the label delay) are replayed but not kept.
        assert_eq!(all.events_read, all.rows.len() + all.rows_dropped);
        assert!(all.rows_dropped > 0 && all.rows.iter().all(|r| !split.contains((split.valid.1, split.test.0), r.ts)));
        // About the cap, by whole sessions, with every fraudulent row still there.
        assert!(sampled.train_sample_rate < 0.3, "rate {}", sampled.train_sample_rate);
        assert!(train.len() > cap / 2 && train.len() < cap * 2, "{} rows for a cap of {cap}", train.len());
        let frauds = |rows: &[&Row]| rows.iter().filter(|r| r.fraud).count();
        assert!(frauds(&train_all) > 0);
        assert_eq!(frauds(&train), frauds(&train_all));
        let sessions = |rows: &[&Row]| rows.iter().map(|r| r.session).collect::<std::collections::HashSet<_>>();
        let kept = sessions(&train);
        let whole_sessions = train_all.iter().filter(|r| kept.contains(&r.session)).count();
        assert_eq!(whole_sessions, train.len(), "a kept session keeps all its rows");
        // The same features either way: sampling drops rows, never history.
        for w in [split.valid, split.test] {
            let (a, b) = (split.rows(&all, w), split.rows(&sampled, w));
            assert_eq!(a.len(), b.len());
            assert!(a.iter().zip(&b).all(|(x, y)| x.x == y.x && x.fraud == y.fraud));
        }
    }

    #[test]
    fn events_with_a_clock_years_off_are_left_out_instead_of_setting_the_cutoff_and_the_split() {
        use fixtures::sim::{SimConfig, World};
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::dir(dir.path());
        let end = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS;
        let world = World::new(SimConfig { seed: 3, customers: 200, ..SimConfig::default() });
        let written = fixtures::write_lake(&world, &lake, end, 6).unwrap();
        let opts = Options { label_delay_days: Some(1.0), ..Options::default() };
        let clean = build(&lake, &opts, |_, _| {}).unwrap();
        // One client's clock in 2099, another's in 2001.
        let year = 365 * DAY_MS;
        let strays = [event("future", "sf", "uf", end + 73 * year), event("past", "sp", "up", end - 25 * year)];
        lake.write_events("strays", &strays, lake::Durability::Buffered).unwrap();

        let ds = build(&lake, &opts, |_, _| {}).unwrap();
        assert_eq!(ds.strays.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [1, 1], "{:?}", ds.strays);
        assert_eq!(ds.events_read, written.events.len());
        assert_eq!((ds.cutoff, ds.first_ts), (clean.cutoff, clean.first_ts));
        let (a, b) = (clean.split.unwrap(), ds.split.unwrap());
        assert_eq!((a.train, a.valid, a.test), (b.train, b.valid, b.test));
        assert_eq!(ds.rows.len(), clean.rows.len());

        // A month-long hole in a lake is history on both sides, not a stray.
        let later = World::new(SimConfig { seed: 4, customers: 200, ..SimConfig::default() });
        fixtures::write_lake(&later, &lake, end + 60 * DAY_MS, 3).unwrap();
        let gapped = build(&lake, &opts, |_, _| {}).unwrap();
        assert_eq!(gapped.strays.len(), 2, "only the two years-off events: {:?}", gapped.strays);
        assert!(gapped.cutoff > end + 50 * DAY_MS && gapped.first_ts == clean.first_ts);
    }

    #[test]
    fn expiring_history_on_event_time_changes_no_window_and_frees_most_keys() {
        use fixtures::sim::{SimConfig, World};
        use models::features::F;
        let world = World::new(SimConfig { seed: 5, customers: 500, rate_ato: 0.01, ..SimConfig::default() });
        let start = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS;
        let events = world.simulate(start, start + 8 * DAY_MS, None).events;
        let (mut forever, mut expiring) =
            (Replayer::new(MemoryHistory::new()), Replayer::new(MemoryHistory::expiring()));
        // Only first-seen facts outlive a window; they lapse with their key's TTL, as in Redis.
        let first_seen =
            [F::UserKnown, F::UserDeviceNew, F::UserIpNew, F::UserSubnetNew, F::UserCountryNew, F::UserPayeeNew]
                .into_iter()
                .chain([F::UserDeviceAgeDays, F::UserIpAgeDays, F::UserSubnetAgeDays, F::UserCountryAgeDays])
                .chain([F::LoginCountryChanged, F::HoursSinceLastLogin, F::ImpossibleTravel])
                .chain([F::UserAgeDays, F::UserPayeeFirstTransfer, F::UserDeviceFirstTransfer, F::UserAgentFamilyNew])
                .chain([
                    F::UserAsnNew,
                    F::UserCityNew,
                    F::UserHoursSinceCredentialChange,
                    F::DeviceNewSinceCredentialChange,
                ])
                .map(|f| f as usize)
                .collect::<Vec<_>>();
        for e in &events {
            let (a, b) = (forever.replay(e), expiring.replay(e));
            for (j, (x, y)) in a.0.iter().zip(&b.0).enumerate() {
                assert!(
                    x == y || first_seen.contains(&j),
                    "{} differs at {}: {x} vs {y}",
                    FEATURES[j].name,
                    e.event_id
                );
            }
        }
        let (expiring, forever) = (expiring.history().len(), forever.history().len());
        assert!(expiring * 2 < forever, "{expiring} keys vs {forever}");
    }
}
