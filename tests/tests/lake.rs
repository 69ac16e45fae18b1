//! The lake on a local directory and on S3 (a real S3-protocol server, moto): one contract body
//! run against both, and the operator's path end to end: `fixtures lake` and `trainer train`
//! given an `s3://` URL and the standard `AWS_*` settings.

use e2e_tests::s3::S3Server;
use e2e_tests::stack::repo_root;
use fixtures::sim::{SimConfig, World};
use lake::{Durability, Lake, LakeFile};
use std::process::Command;

const DAY_MS: i64 = 86_400_000;
/// 2026-11-01T00:00:00Z.
const START: i64 = 1_793_491_200_000;

fn world() -> World {
    World::new(SimConfig { seed: 9, customers: 150, rate_ato: 0.02, rate_bot: 0.02, ..SimConfig::default() })
}

/// What every lake must do, whatever holds its files.
fn lake_contract(lake: &Lake) {
    // Files: whole writes, reads of what is there, `None` for what is not, idempotent removes.
    let a = LakeFile::new("misc/dir/a.json");
    assert_eq!(lake.get(&a).unwrap(), None);
    lake.put(&a, b"one".to_vec(), Durability::Fsync).unwrap();
    lake.put(&a, b"two".to_vec(), Durability::Fsync).unwrap();
    assert_eq!(lake.get(&a).unwrap().as_deref(), Some(&b"two"[..]), "a write replaces the file");
    lake.put(&a.sibling("b.json"), b"b".to_vec(), Durability::Buffered).unwrap();
    let listed: Vec<String> = lake.list("misc").unwrap().iter().map(|f| f.rel().to_string()).collect();
    assert_eq!(listed, ["misc/dir/a.json", "misc/dir/b.json"]);
    assert!(lake.list("nothing-here").unwrap().is_empty());
    lake.remove(&a).unwrap();
    lake.remove(&a).unwrap();
    assert_eq!(lake.get(&a).unwrap(), None);

    // A lake without events says what to do.
    let err = format!("{:#}", lake.event_partitions().unwrap_err());
    assert!(err.contains("fixtures lake"), "{err}");

    // Tables: partitioned by date, read back in (ts, event_id) order, counted from footers.
    let out = fixtures::write_lake(&world(), lake, START + 3 * DAY_MS, 3).unwrap();
    let parts = lake.event_partitions().unwrap();
    let dates: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(dates, ["2026-11-01", "2026-11-02", "2026-11-03"]);
    let mut read = Vec::new();
    for (_, files) in &parts {
        let (events, rejected) = lake.read_events(files).unwrap();
        assert_eq!((rejected, lake.row_count(files).unwrap()), (0, events.len()));
        read.extend(events);
    }
    let mut written = out.events.clone();
    written.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.event_id.cmp(&b.event_id)));
    assert_eq!(read, written, "every event back, once, in order");
    let known = out.labels.iter().filter(|l| l.ts < START + 3 * DAY_MS).count();
    assert_eq!(lake.read_labels().unwrap().len(), known);

    // Merging a partition's files into one keeps every row.
    let (_, day) = &parts[1];
    let half = day[0].sibling("extra.parquet");
    let (day_events, _) = lake.read_events(day).unwrap();
    lake.write_partitioned(lake::EVENTS, "extra", &day_events[..10], |e| e.ts, lake::events_batch, Durability::Fsync)
        .unwrap();
    let inputs = [day[0].clone(), half.clone()];
    let merged = day[0].sibling("merged.parquet");
    lake.merge(&inputs, &merged).unwrap();
    assert_eq!(lake.row_count(std::slice::from_ref(&merged)).unwrap(), day_events.len() + 10);
}

#[test]
fn a_local_lake_keeps_the_lake_contract() {
    let dir = tempfile::tempdir().unwrap();
    lake_contract(&Lake::dir(dir.path().join("lake")));
}

#[test]
fn a_lake_on_s3_keeps_the_lake_contract() {
    let s3 = S3Server::start();
    lake_contract(&s3.lake("contract"));
}

#[test]
fn replaying_a_lake_on_s3_gives_the_rows_of_the_same_lake_on_disk() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (remote, local) = (s3.lake("replay"), Lake::dir(dir.path()));
    let end = START + 6 * DAY_MS;
    fixtures::write_lake(&world(), &remote, end, 6).unwrap();
    fixtures::write_lake(&world(), &local, end, 6).unwrap();
    let opts = trainer::dataset::Options { label_delay_days: Some(1.0), ..Default::default() };
    let a = trainer::dataset::build(&remote, &opts, |_, _| {}).unwrap();
    let b = trainer::dataset::build(&local, &opts, |_, _| {}).unwrap();
    assert!(a.rows.len() > 1000 && a.labels_used > 0, "{} rows, {} labels", a.rows.len(), a.labels_used);
    assert_eq!((a.events_read, a.labels_used, a.cutoff), (b.events_read, b.labels_used, b.cutoff));
    let key = |r: &trainer::dataset::Row| (r.ts, r.session, r.fraud, r.x.map(f32::to_bits));
    assert!(a.rows.iter().map(key).eq(b.rows.iter().map(key)), "the same rows, features bit for bit");
}

/// Runs one of the workspace's binaries with `args` and the S3 server's settings in its
/// environment, as an operator would; returns whether it succeeded, its stdout and its stderr.
fn try_run(s3: &S3Server, bin: &str, args: &[&str]) -> (bool, String, String) {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(std::path::Path::parent).unwrap().join(bin);
    assert!(path.exists(), "{} is missing: run `cargo build --bins` first (scripts/test does)", path.display());
    let out = Command::new(&path)
        .args(args)
        .envs(s3.env())
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .current_dir(repo_root())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn run(s3: &S3Server, bin: &str, args: &[&str]) -> String {
    let (ok, stdout, stderr) = try_run(s3, bin, args);
    assert!(ok, "{bin} {args:?} failed: {stdout}{stderr}");
    stdout
}

#[test]
fn an_operator_generates_a_lake_on_s3_and_trains_from_its_url() {
    let s3 = S3Server::start();
    let work = tempfile::tempdir().unwrap();
    let url = s3.url("bank/lake");
    let truth = work.path().join("truth.jsonl").display().to_string();
    let registry = work.path().join("registry").display().to_string();
    let sim = ["--seed", "4", "--customers", "300", "--rate-ato", "0.02", "--rate-bot", "0.02"];
    let mut args = vec!["lake", "--out", &url, "--days", "8", "--end", "2026-11-09", "--truth", &truth];
    args.extend(sim);
    run(&s3, "fixtures", &args);
    let days = s3.lake("bank/lake").partitions(lake::EVENTS).unwrap().len();
    assert!((8..=9).contains(&days), "eight days of events on S3 (and the last sessions' spill), not {days}");
    let printed = run(
        &s3,
        "trainer",
        &[
            "--http-addr",
            "127.0.0.1:0",
            "train",
            "--lake",
            &url,
            "--registry",
            &registry,
            "--label-delay-days",
            "2",
            "--model",
            "logistic",
        ],
    );
    assert!(printed.contains("promoted: true"), "{printed}");
    let model = platform::registry::load_current(std::path::Path::new(&registry)).unwrap();
    assert_eq!(model.kind(), "logistic");
}

#[test]
fn a_lake_url_that_does_not_answer_fails_with_the_url_and_the_settings_to_check() {
    let s3 = S3Server::start();
    let args =
        ["--http-addr", "127.0.0.1:0", "train", "--lake", "s3://no-such-bucket/lake", "--registry", "/nonexistent"];
    let (ok, _, stderr) = try_run(&s3, "trainer", &args);
    assert!(!ok);
    assert!(stderr.contains("s3://no-such-bucket/lake") && stderr.contains("AWS_ENDPOINT"), "{stderr}");
    let (ok, _, stderr) = try_run(&s3, "trainer", &["train", "--lake", "gs://bucket/lake"]);
    assert!(!ok && stderr.contains("s3://BUCKET/PREFIX"), "{stderr}");
}
