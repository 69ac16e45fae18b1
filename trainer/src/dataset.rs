//! From lake to labelled feature rows.

use models::features::{FEATURES, replay_one};
use models::history::MemoryHistory;
use models::{ClickEvent, Label, LabelKind};
use std::collections::HashMap;
use std::path::Path;

pub const DAY_MS: i64 = 86_400_000;

/// Features per row.
pub const N_FEATURES: usize = FEATURES.len();

/// One labelled event. The features are inline (no allocation per row): at 10 M events, a
/// `Vec` per row cost ~40 bytes of header and allocator overhead each.
#[derive(Debug, Clone)]
pub struct Row {
    pub ts: i64,
    pub session: u32,
    pub fraud: bool,
    /// What kind of fraud the label said, when it said.
    pub kind: Option<LabelKind>,
    pub transfer_value: f64,
    pub x: [f32; N_FEATURES],
}

#[derive(Debug, Default)]
pub struct Dataset {
    pub rows: Vec<Row>,
    pub sessions: Vec<String>,
    pub first_ts: i64,
    pub last_ts: i64,
    pub cutoff: i64,
    pub events_read: usize,
    pub events_rejected: usize,
    pub labels_used: usize,
    pub labels_late: usize,
}

/// What the labels known at `cutoff` say: fraudulent sessions, and accounts labelled
/// fraudulent from a time on. A later label about the same session overrides an earlier one.
pub struct Truth {
    sessions: HashMap<String, (bool, Option<LabelKind>)>,
    accounts: HashMap<String, (i64, Option<LabelKind>)>,
}

impl Truth {
    pub fn known_at(labels: &[Label], cutoff: i64) -> (Truth, usize, usize) {
        let mut t = Truth { sessions: HashMap::new(), accounts: HashMap::new() };
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

/// Replays the whole lake, oldest partition first, through one in-memory history, so every
/// event's features see exactly the history before it, as live. `cutoff` defaults to the
/// newest event; labels after it are ignored (they were not known yet).
pub fn build(lake: &Path, cutoff: Option<i64>, mut progress: impl FnMut(&str, usize)) -> anyhow::Result<Dataset> {
    lake::check_lake(lake)?;
    let labels = lake::read_labels(lake)?;
    let parts = lake::partitions(lake, lake::EVENTS)?;
    let mut history = MemoryHistory::new();
    let mut ds = Dataset { first_ts: i64::MAX, last_ts: i64::MIN, ..Dataset::default() };
    // The cut-off defaults to the newest event, found in the newest partition.
    ds.cutoff = match (cutoff, parts.last()) {
        (Some(c), _) => c,
        (None, Some((_, files))) => lake::read_events(files)?.0.last().map(|e| e.ts).unwrap_or(0),
        (None, None) => 0,
    };
    let (truth, used, late) = Truth::known_at(&labels, ds.cutoff);
    ds.labels_used = used;
    ds.labels_late = late;
    let mut session_ids: HashMap<String, u32> = HashMap::new();
    // Date partitions hold disjoint, ordered days: replaying them one at a time in date order is
    // replaying the whole lake in event-time order, with one day in memory.
    for (date, files) in &parts {
        let (events, rejected) = lake::read_events(files)?;
        ds.events_rejected += rejected;
        ds.events_read += events.len();
        progress(date, events.len());
        for ev in &events {
            if ev.ts > ds.cutoff {
                break;
            }
            let f = replay_one(&mut history, ev);
            let next = session_ids.len() as u32;
            let session = *session_ids.entry(ev.session_id.clone()).or_insert_with(|| {
                ds.sessions.push(ev.session_id.clone());
                next
            });
            ds.first_ts = ds.first_ts.min(ev.ts);
            ds.last_ts = ds.last_ts.max(ev.ts);
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
    Ok(ds)
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
        let mature = cutoff - (label_delay_days * DAY_MS as f64) as i64;
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

    pub fn rows<'a>(&self, ds: &'a Dataset, window: (i64, i64)) -> Vec<&'a Row> {
        ds.rows.iter().filter(|r| r.ts >= window.0 && r.ts < window.1).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{LabelKind, LabelSource};

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

    #[test]
    fn a_label_that_arrives_after_the_cutoff_is_not_used_and_account_labels_count_from_their_time() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS;
        let events = [
            event("a1", "sa", "ua", t0),
            event("b1", "sb", "ub", t0 + 1000),
            event("m1", "sm1", "um", t0 + 2000),
            event("m2", "sm2", "um", t0 + 2 * DAY_MS),
        ];
        lake::write_events(dir.path(), "t", &events, lake::Durability::Buffered).unwrap();
        let cutoff = t0 + 3 * DAY_MS;
        let labels = [
            label("known", t0 + DAY_MS, "ua", Some("sa"), LabelKind::Scam),
            // Known only after the cut-off: at training time nobody knew sb was fraud.
            label("late", cutoff + 1, "ub", Some("sb"), LabelKind::Bot),
            // The mule account is labelled on day 1: its day-2 session is fraud, day-0 is not.
            label("account", t0 + DAY_MS, "um", None, LabelKind::Mule),
        ];
        lake::write_labels(dir.path(), "t", &labels, lake::Durability::Buffered).unwrap();
        let ds = build(dir.path(), Some(cutoff), |_, _| {}).unwrap();
        let by_id: HashMap<&str, &Row> = events.iter().map(|e| e.event_id.as_str()).zip(&ds.rows).collect();
        assert_eq!((ds.labels_used, ds.labels_late), (2, 1));
        assert_eq!((by_id["a1"].fraud, by_id["a1"].kind), (true, Some(LabelKind::Scam)));
        assert!(!by_id["b1"].fraud, "the late label is not used");
        assert!(!by_id["m1"].fraud, "before the account label's time");
        assert_eq!((by_id["m2"].fraud, by_id["m2"].kind), (true, Some(LabelKind::Mule)));
        // With a later cut-off the late label counts.
        let later = build(dir.path(), Some(cutoff + 2), |_, _| {}).unwrap();
        assert!(later.rows[1].fraud);
    }
}
