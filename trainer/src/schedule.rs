//! `trainer schedule`: compaction and retraining on a cron expression, one run at a time.
//!
//! Runs never overlap (a run that outlasts the interval delays the next one, it does not start
//! a second), so the registry's trainer status has one writer.

use crate::run::{self, TrainArgs};
use anyhow::Context;
use chrono::{DateTime, Utc};
use lake::{Lake, LakeFile};
use std::str::FromStr;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, clap::Args)]
pub struct ScheduleArgs {
    /// When to run, as a cron expression in UTC: five fields (`min hour day month weekday`,
    /// as crontab) or six/seven with seconds first (and a year last).
    #[arg(
        long,
        visible_alias = "schedule",
        env = "TRAIN_SCHEDULE",
        default_value = "0 3 * * *",
        value_parser = cron_arg
    )]
    pub cron: String,
    /// Also run once right away, then on the schedule.
    #[arg(long, env = "RUN_AT_START", default_value_t = false)]
    pub run_now: bool,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// Parses a crontab-style (5 fields) or `cron`-crate (6–7 fields, seconds first) expression.
pub fn parse(expr: &str) -> anyhow::Result<cron::Schedule> {
    let fields = expr.split_whitespace().count();
    let full = if fields == 5 { format!("0 {expr}") } else { expr.to_string() };
    cron::Schedule::from_str(&full).with_context(|| {
        format!(
            "{expr:?} is not a cron expression; use five fields as in crontab, e.g. \"0 3 * * *\" for 03:00 UTC daily"
        )
    })
}

/// A cron expression argument, checked when the command line is parsed.
pub fn cron_arg(expr: &str) -> Result<String, String> {
    parse(expr).map(|_| expr.to_string()).map_err(|e| format!("{e:#}"))
}

/// The next `n` times the schedule fires after `after`.
pub fn next_runs(s: &cron::Schedule, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    s.after(&after).take(n).collect()
}

/// Merges each date partition's sink files of one table into one file per source partition.
/// Only files of rolls the sink has completed (below the source's manifest offset) are merged:
/// a roll being written, or one a crash left half-done, is the sink's to finish or remove. The
/// merged file's name covers the whole range, and the inputs are deleted after it is durable; a
/// crash in between leaves inputs beside a file whose range contains theirs, and the next
/// compaction deletes those first.
pub fn compact(lake: &Lake, table: &str) -> anyhow::Result<usize> {
    use crate::sink::{manifest_next, parse_roll_stem, roll_stem};
    use std::collections::BTreeMap;
    let mut merged = 0;
    let mut next: BTreeMap<String, i64> = BTreeMap::new();
    for (_, files) in lake.partitions(table)? {
        let mut groups: BTreeMap<String, Vec<(i64, i64, LakeFile)>> = BTreeMap::new();
        for f in files {
            let Some((source, first, last)) = parse_roll_stem(f.stem()) else { continue };
            let done = match next.get(source) {
                Some(n) => *n,
                None => *next.entry(source.to_string()).or_insert(manifest_next(lake, source)?),
            };
            if last < done {
                groups.entry(source.to_string()).or_default().push((first, last, f.clone()));
            }
        }
        for (source, mut ranges) in groups {
            // By first offset, the wider range first: a file inside another's range (left by an
            // interrupted compaction) then always comes after the one containing it.
            ranges.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            let mut kept: Vec<(i64, i64, LakeFile)> = Vec::new();
            for r in ranges {
                if kept.iter().any(|k| k.0 <= r.0 && r.1 <= k.1) {
                    lake.remove(&r.2)?;
                } else {
                    kept.push(r);
                }
            }
            if kept.len() < 2 {
                continue;
            }
            let (first, last) = (kept[0].0, kept.iter().map(|k| k.1).max().unwrap_or(kept[0].1));
            let out = kept[0].2.sibling(&format!("{}.parquet", roll_stem(&source, first, last)));
            let paths: Vec<_> = kept.into_iter().map(|k| k.2).collect();
            lake.merge(&paths, &out)?;
            for p in paths.iter().filter(|p| **p != out) {
                lake.remove(p)?;
            }
            merged += paths.len();
        }
    }
    Ok(merged)
}

/// Runs compaction and training on the schedule until `shutdown`.
pub async fn run(args: ScheduleArgs, shutdown: CancellationToken, mut after_run: impl FnMut()) -> anyhow::Result<()> {
    let schedule = parse(&args.cron)?;
    let mut first = args.run_now;
    loop {
        if !first {
            let Some(next) = next_runs(&schedule, Utc::now(), 1).pop() else {
                tracing::info!("the schedule fires no more; stopping");
                return Ok(());
            };
            tracing::info!(next = %next.to_rfc3339(), cron = %args.cron, "waiting for the next scheduled run");
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
        first = false;
        let a = args.train.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let t = std::time::Instant::now();
            for table in [lake::EVENTS, lake::FEATURES, lake::VERDICTS, lake::LABELS] {
                match compact(&a.lake, table) {
                    Ok(n) if n > 0 => tracing::info!(table, files = n, "compacted"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(table, error = format!("{e:#}"), "compaction failed; training goes on"),
                }
            }
            tracing::info!(secs = t.elapsed().as_secs_f64(), "compaction done");
            run::train(&a)
        })
        .await?;
        match outcome {
            Ok(o) => {
                tracing::info!(version = %o.version, promoted = o.promoted, why = %o.why, "scheduled run finished")
            }
            // A failed run is recorded in the trainer status (and alerted on); the schedule goes on.
            Err(e) => tracing::error!(error = format!("{e:#}"), "scheduled run failed"),
        }
        after_run();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crontab_expressions_fire_when_crontab_would() {
        let s = parse("0 3 * * *").unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().with_timezone(&Utc);
        let next: Vec<String> = next_runs(&s, at, 2).iter().map(|t| t.to_rfc3339()).collect();
        assert_eq!(next, ["2026-11-23T03:00:00+00:00", "2026-11-24T03:00:00+00:00"]);
        let err = format!("{:#}", parse("every night").unwrap_err());
        assert!(err.contains("crontab"), "{err}");
    }

    #[test]
    fn compaction_merges_a_partitions_files_and_finishes_an_interrupted_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = &Lake::dir(dir.path());
        let ev = crate::sink::tests::event;
        let w = |stem: &str, ids: &[&str]| {
            let evs: Vec<_> = ids.iter().enumerate().map(|(i, id)| ev(id, i as i64)).collect();
            root.write_events(stem, &evs, lake::Durability::Fsync).unwrap();
        };
        w("clickstream-p0-00000000000000000000-00000000000000000001", &["a", "b"]);
        w("clickstream-p0-00000000000000000002-00000000000000000002", &["c"]);
        w("clickstream-p1-00000000000000000000-00000000000000000000", &["x"]);
        // A roll past its manifest (being written, or crashed half-way) is the sink's business.
        w("clickstream-p0-00000000000000000003-00000000000000000003", &["d"]);
        crate::sink::record_manifest(root, "clickstream-p0", 3).unwrap();
        crate::sink::record_manifest(root, "clickstream-p1", 1).unwrap();
        assert_eq!(compact(root, lake::EVENTS).unwrap(), 2);
        let read = || {
            let parts = root.partitions(lake::EVENTS).unwrap();
            let names: Vec<String> = parts[0].1.iter().map(|p| p.stem().to_string()).collect();
            let mut ids: Vec<String> =
                root.read_events(&parts[0].1).unwrap().0.into_iter().map(|e| e.event_id).collect();
            ids.sort();
            (names, ids)
        };
        let (names, ids) = read();
        assert_eq!(
            names,
            [
                "clickstream-p0-00000000000000000000-00000000000000000002",
                "clickstream-p0-00000000000000000003-00000000000000000003",
                "clickstream-p1-00000000000000000000-00000000000000000000"
            ]
        );
        assert_eq!(ids, ["a", "b", "c", "d", "x"]);
        // Interrupted compactions: a merged file beside inputs it contains (one sharing its
        // first offset).
        w("clickstream-p0-00000000000000000001-00000000000000000001", &["b"]);
        w("clickstream-p0-00000000000000000000-00000000000000000001", &["a", "b"]);
        compact(root, lake::EVENTS).unwrap();
        assert_eq!(read().1, ["a", "b", "c", "d", "x"], "the contained inputs are gone, nothing doubled");
    }
}
