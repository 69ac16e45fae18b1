//! How late fraud labels arrive, per source, measured on the lake itself.
//!
//! A label's delay is its `ts` minus the time of what it names: the last event of its session,
//! or the event it names. Customers report in days, analysts within a week, chargebacks take
//! weeks; a session younger than the usual delay that carries no label is not yet known to be
//! legitimate. Training weighs such sessions by the share of fraud labels that arrive within
//! their age ([`LabelDelays::arrived_by`]), so the newest unlabelled traffic counts less as
//! legitimate than old traffic does, and the report shows the distribution beside the
//! maturity window (`--label-delay-days`) so an operator sees what that window leaves out.

use models::{ClickEvent, Label, LabelSource};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Measured delays (days), by label source.
#[derive(Debug, Clone, Default)]
pub struct LabelDelays {
    by_source: BTreeMap<&'static str, Vec<f64>>,
}

/// One source's distribution.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DelaySummary {
    pub source: String,
    pub labels: usize,
    pub median_days: f64,
    pub p90_days: f64,
    pub max_days: f64,
    /// Share of this source's labels that arrived later than the maturity window.
    pub after_maturity: f64,
}

/// Fewer measured delays than this and no weighting is done: the estimate would be noise.
const MIN_DELAYS: usize = 20;

fn source_name(s: Option<LabelSource>) -> &'static str {
    s.map_or("other", LabelSource::as_str)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0)
}

impl LabelDelays {
    /// A fraud label of `source` arrived `delay_ms` after what it names (negative delays, a
    /// label filed while its session still ran, count as 0).
    pub fn observe(&mut self, source: Option<LabelSource>, delay_ms: i64) {
        self.by_source.entry(source_name(source)).or_default().push(delay_ms.max(0) as f64 / 86_400_000.0);
    }

    pub fn len(&self) -> usize {
        self.by_source.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Per source, then all sources together (`all`).
    pub fn summary(&self, maturity_days: f64) -> Vec<DelaySummary> {
        let all: Vec<f64> = self.by_source.values().flatten().copied().collect();
        self.by_source
            .iter()
            .map(|(s, d)| (s.to_string(), d.clone()))
            .chain((self.by_source.len() > 1).then(|| ("all".to_string(), all)))
            .map(|(source, mut d)| {
                d.sort_by(f64::total_cmp);
                DelaySummary {
                    source,
                    labels: d.len(),
                    median_days: quantile(&d, 0.5),
                    p90_days: quantile(&d, 0.9),
                    max_days: d.last().copied().unwrap_or(0.0),
                    after_maturity: d.iter().filter(|x| **x > maturity_days).count() as f64 / d.len().max(1) as f64,
                }
            })
            .collect()
    }

    /// The share of fraud labels that arrive within `age_days` of what they name: how sure an
    /// unlabelled session of that age is to be legitimate. 1 when too few delays were measured.
    pub fn arrived_by(&self) -> impl Fn(f64) -> f64 + use<> {
        let mut all: Vec<f64> = self.by_source.values().flatten().copied().collect();
        all.sort_by(f64::total_cmp);
        move |age_days: f64| {
            if all.len() < MIN_DELAYS {
                return 1.0;
            }
            all.partition_point(|d| *d <= age_days) as f64 / all.len() as f64
        }
    }
}

/// Matches the fraud labels known at the cut-off with the events they name, as the replay
/// goes by (two map lookups an event, none when no label names a session or an event).
#[derive(Default)]
pub struct DelayProbe {
    /// Session id → (label ts, source, its last event's ts so far).
    sessions: HashMap<String, (i64, Option<LabelSource>, Option<i64>)>,
    events: HashMap<String, (i64, Option<LabelSource>)>,
    delays: LabelDelays,
}

impl DelayProbe {
    pub fn new(labels: &[Label], cutoff: i64) -> DelayProbe {
        let mut p = DelayProbe::default();
        for l in labels.iter().filter(|l| l.is_fraud && l.ts <= cutoff) {
            match (&l.session_id, &l.event_id) {
                (Some(s), _) => {
                    p.sessions.insert(s.clone(), (l.ts, l.source, None));
                }
                (None, Some(e)) => {
                    p.events.insert(e.clone(), (l.ts, l.source));
                }
                (None, None) => {}
            }
        }
        p
    }

    pub fn see(&mut self, ev: &ClickEvent) {
        if let Some((_, _, last)) = self.sessions.get_mut(&ev.session_id) {
            *last = Some(last.map_or(ev.ts, |t| t.max(ev.ts)));
        }
        if !self.events.is_empty()
            && let Some((ts, source)) = self.events.remove(&ev.event_id)
        {
            self.delays.observe(source, ts - ev.ts);
        }
    }

    pub fn finish(mut self) -> LabelDelays {
        for (ts, source, last) in self.sessions.into_values() {
            if let Some(last) = last {
                self.delays.observe(source, ts - last);
            }
        }
        self.delays
    }
}

/// The report's section.
pub fn section(summary: &[DelaySummary], maturity_days: f64) -> String {
    let mut s = format!(
        "\n## Label delays\n\nFrom a fraud label's time back to the last event of the session it names (or the \
         event). The maturity window leaves out the newest {maturity_days} days; older unlabelled sessions weigh as \
         legitimate in proportion to the labels that would have arrived by their age.\n\n"
    );
    if summary.is_empty() {
        return s + "No fraud label could be matched to its session in the replayed history.\n";
    }
    s += "| source | labels | median (days) | p90 (days) | max (days) | arrived after the maturity window |\n\
          |---|---|---|---|---|---|\n";
    for d in summary {
        s += &format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} % |\n",
            d.source,
            d.labels,
            d.median_days,
            d.p90_days,
            d.max_days,
            d.after_maturity * 100.0
        );
    }
    if let Some(all) = summary.last().filter(|a| a.p90_days > maturity_days) {
        s += &format!(
            "\n{:.0} % of fraud labels arrive after {maturity_days} days: the validation and test windows hold fraud \
             not labelled yet, which counts as legitimate there (their rates are upper bounds on false positives). \
             `--label-delay-days {:.0}` would wait for nine in ten.\n",
            all.after_maturity * 100.0,
            all.p90_days.ceil()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn delays_summarise_per_source_and_say_how_many_the_maturity_window_misses() {
        let mut d = LabelDelays::default();
        for i in 0..10 {
            d.observe(Some(LabelSource::Chargeback), (10 + i) * DAY);
            d.observe(Some(LabelSource::CustomerReport), DAY);
        }
        d.observe(None, -5);
        let s = d.summary(3.0);
        let names: Vec<&str> = s.iter().map(|x| x.source.as_str()).collect();
        assert_eq!(names, ["chargeback", "customer_report", "other", "all"]);
        assert_eq!((s[0].labels, s[0].median_days, s[0].max_days, s[0].after_maturity), (10, 15.0, 19.0, 1.0));
        assert_eq!((s[1].p90_days, s[1].after_maturity), (1.0, 0.0));
        assert_eq!(s[2].max_days, 0.0, "a label filed during its session has no delay");
        assert!((s[3].after_maturity - 10.0 / 21.0).abs() < 1e-12);
        let text = section(&s, 3.0);
        assert!(text.contains("| chargeback | 10 | 15.0 | 18.0 | 19.0 | 100.0 % |"), "{text}");
        assert!(text.contains("`--label-delay-days 17`"), "{text}");
    }

    #[test]
    fn a_young_session_weighs_by_the_share_of_labels_in_by_its_age_once_enough_are_measured() {
        let mut d = LabelDelays::default();
        for i in 0..MIN_DELAYS as i64 - 1 {
            d.observe(Some(LabelSource::Analyst), i * DAY);
        }
        assert_eq!(d.arrived_by()(0.5), 1.0, "too few delays: no weighting");
        d.observe(Some(LabelSource::Analyst), 100 * DAY);
        let f = d.arrived_by();
        assert_eq!(f(0.5), 1.0 / 20.0, "only the same-day label is in by half a day");
        assert_eq!(f(9.5), 10.0 / 20.0);
        assert_eq!(f(1000.0), 1.0);
    }

    #[test]
    fn a_label_is_timed_from_its_sessions_last_event_or_from_the_event_it_names() {
        let t0 = 1_780_000_000_000;
        let label = |id: &str, ts: i64, session: Option<&str>, event: Option<&str>, fraud: bool| Label {
            label_id: id.into(),
            ts,
            user_id: "u".into(),
            session_id: session.map(Into::into),
            event_id: event.map(Into::into),
            is_fraud: fraud,
            kind: None,
            source: Some(LabelSource::Chargeback),
        };
        let labels = [
            label("a", t0 + 5 * DAY, Some("s1"), None, true),
            label("b", t0 + 2 * DAY, None, Some("e9"), true),
            label("c", t0 + 2 * DAY, Some("s2"), None, false),
            label("late", t0 + 50 * DAY, Some("s3"), None, true),
        ];
        let mut p = DelayProbe::new(&labels, t0 + 10 * DAY);
        for (id, session, ts) in
            [("e1", "s1", t0), ("e2", "s1", t0 + DAY), ("e9", "s9", t0 + DAY / 2), ("e3", "s3", t0)]
        {
            p.see(&ClickEvent::new(id, ts, session, "page_view", [10, 0, 0, 1].into()));
        }
        let s = p.finish().summary(3.0);
        assert_eq!(s.len(), 1, "legitimate labels and labels after the cut-off are not timed: {s:?}");
        assert_eq!((s[0].labels, s[0].median_days, s[0].max_days), (2, 4.0, 4.0), "{s:?}");
        assert_eq!(s[0].p90_days, 4.0);
    }
}
