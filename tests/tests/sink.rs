//! The lake sink on a real broker: killed with SIGKILL mid-stream and restarted, it writes every
//! record exactly once, into a local lake and into one on S3 (a real S3-protocol server); and a
//! lake it wrote from a live pipeline replays to the features the enricher served.

use clap::Parser;
use e2e_tests::s3::S3Server;
use e2e_tests::setup::{Process, baseline_registry, send_in_chunks, start_services, traffic};
use e2e_tests::stack::Stack;
use lake::Lake;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Every event id in the lake's events table, with how many rows it has.
fn lake_event_counts(lake: &Lake) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for (_, files) in lake.partitions(lake::EVENTS).unwrap_or_default() {
        // A file can vanish between listing and reading (a restart removing an incomplete roll).
        let Ok((events, _)) = lake.read_events(&files) else { continue };
        for e in events {
            *out.entry(e.event_id).or_default() += 1;
        }
    }
    out
}

fn label_count(lake: &Lake) -> usize {
    lake.read_labels().map(|l| l.len()).unwrap_or(0)
}

/// Polls until `done` holds or `timeout` passes.
async fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    done()
}

fn sink_args(stack: &Stack, lake: &str) -> Vec<String> {
    [
        "trainer",
        "sink",
        "--brokers",
        &stack.brokers(),
        "--lake",
        lake,
        "--roll-records",
        "150",
        "--roll-seconds",
        "0.3",
        "--http-addr",
        "127.0.0.1:0",
    ]
    .map(String::from)
    .to_vec()
}

/// The kill-and-restart test body: the sink runs as a process on `location` (with `env`), and
/// the test reads the same lake through `lake`.
async fn sink_killed_and_restarted_writes_every_record_once(lake: Lake, location: &str, env: &[(String, String)]) {
    let stack = Stack::start();
    let events = traffic(31, 3000);
    let labels: Vec<models::Label> = events
        .iter()
        .filter_map(|e| e.user_id.clone())
        .take(60)
        .enumerate()
        .map(|(i, user_id)| models::Label {
            label_id: format!("l{i}"),
            ts: platform::now_ms(),
            user_id,
            session_id: None,
            event_id: None,
            is_fraud: i % 2 == 0,
            kind: Some(models::LabelKind::Mule),
            source: Some(models::LabelSource::Analyst),
        })
        .collect();
    let producer: rdkafka::producer::FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", stack.brokers()).create().unwrap();
    let label_records: Vec<_> =
        labels.iter().map(|l| (l.user_id.clone(), serde_json::to_vec(l).unwrap(), l.ts)).collect();

    let spawn = || Process::spawn_with_env("trainer", &sink_args(&stack, location), env);
    let mut sink = Some(spawn());
    let mut killed_with = 0;
    send_in_chunks(&stack.brokers(), "clickstream", &events, 6, async |k| {
        if k == 2 {
            // Let some rolls land, then kill without any chance to flush or commit.
            wait_for(Duration::from_secs(30), || !lake_event_counts(&lake).is_empty()).await;
            killed_with = lake_event_counts(&lake).len();
            sink.take().expect("running").kill9();
            // A roll that crashed after its files but before its manifest: a copy of a written
            // file under a range no manifest has reached. The restart must delete it.
            let (_, files) = lake.partitions(lake::EVENTS).unwrap().pop().expect("a date partition");
            let orphan = files[0].sibling("clickstream-p0-00000000000099999990-00000000000099999999.parquet");
            let bytes = lake.get(&files[0]).unwrap().expect("a written file");
            lake.put(&orphan, bytes.to_vec(), lake::Durability::Fsync).unwrap();
            sink = Some(spawn());
        }
    })
    .await;
    fixtures::send_events(&producer, "fraud.labels", &label_records, false).await.unwrap();
    assert!(
        killed_with > 0 && killed_with < events.len(),
        "the kill landed mid-stream ({killed_with} events in the lake)"
    );

    let complete = wait_for(Duration::from_secs(60), || {
        lake_event_counts(&lake).len() >= events.len() && label_count(&lake) >= labels.len()
    })
    .await;
    let counts = lake_event_counts(&lake);
    let missing = events.iter().filter(|e| !counts.contains_key(&e.event_id)).count();
    let doubled: usize = counts.values().map(|n| n - 1).sum();
    assert!(complete, "the lake did not fill: {} of {} events, {missing} missing", counts.len(), events.len());
    assert_eq!((missing, doubled, counts.len()), (0, 0, events.len()), "(missing, duplicated, distinct)");
    assert_eq!(label_count(&lake), labels.len(), "every label once");
    assert!(!lake.list("_sink").unwrap().is_empty(), "manifests record progress");
    drop(sink);

    // Compaction on the same lake: fewer files, the same records once each.
    let files = |lake: &Lake| lake.partitions(lake::EVENTS).unwrap().iter().map(|p| p.1.len()).sum::<usize>();
    let before = files(&lake);
    let merged = trainer::schedule::compact(&lake, lake::EVENTS).unwrap();
    assert!(merged >= 2 && files(&lake) < before, "compaction merged {merged} of {before} files");
    let counts = lake_event_counts(&lake);
    assert_eq!((counts.len(), counts.values().sum::<usize>()), (events.len(), events.len()), "every event once");
    // The sink stopped with every roll complete: one file per source partition and date is left.
    for (date, files) in lake.partitions(lake::EVENTS).unwrap() {
        let mut sources: Vec<&str> =
            files.iter().map(|f| trainer::sink::parse_roll_stem(f.stem()).expect("a sink file").0).collect();
        let n = sources.len();
        sources.dedup();
        assert_eq!(sources.len(), n, "{date}: more than one file of a source after compaction: {files:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sink_killed_mid_stream_and_restarted_writes_every_record_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lake");
    sink_killed_and_restarted_writes_every_record_once(Lake::dir(&path), &path.display().to_string(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sink_writing_to_s3_killed_and_restarted_writes_every_record_exactly_once() {
    let s3 = S3Server::start();
    sink_killed_and_restarted_writes_every_record_once(s3.lake("sink-test"), &s3.url("sink-test"), &s3.env()).await;
}

#[derive(Parser)]
struct SinkCli {
    #[command(flatten)]
    args: trainer::sink::SinkArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replaying_a_lake_the_sink_wrote_gives_the_features_the_enricher_served() {
    // One partition: the enricher sees events in the order the lake replays them.
    let stack = Stack::with_partitions(1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lake");
    let lake = Lake::dir(&path);
    let shutdown = CancellationToken::new();
    let registry = baseline_registry(dir.path());
    let (enricher, scorer) = start_services(&stack, &registry, "t", &[], &shutdown).await;
    let cli = SinkCli::try_parse_from(
        sink_args(&stack, &path.display().to_string())
            .into_iter()
            .skip(1)
            .filter(|a| a != "--http-addr" && a != "127.0.0.1:0"),
    )
    .unwrap();
    let sink = tokio::spawn(
        trainer::sink::Sink::new(cli.args, trainer::sink::SinkMetrics::register(&prometheus::Registry::new()).unwrap())
            .run(shutdown.clone()),
    );

    let mut events = traffic(41, 1500);
    // The lake reads a day in (ts, event_id) order; send in that order.
    events.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.event_id.cmp(&b.event_id)));
    // One event from two days ahead, early in a long session: taken in, it would trim the
    // session's earlier events from its windows (its own time minus a day) and every later
    // event of the session would count fewer; replay, reading it last, would not. The
    // enricher dead-letters it and the sink leaves it out, so both see the same stream.
    let mut per_session: HashMap<&str, usize> = HashMap::new();
    for e in &events {
        *per_session.entry(&e.session_id).or_default() += 1;
    }
    let at = events.iter().position(|e| per_session[e.session_id.as_str()] >= 5).expect("a long session") + 1;
    let mut future = events[at - 1].clone();
    (future.event_id, future.ts) = ("from-the-future".into(), platform::now_ms() + 2 * 86_400_000);
    let mut sent = events.clone();
    sent.insert(at, future);
    // Mid-stream, fraud labels on sessions that go on afterwards: the enricher feeds them back
    // (their sessions' devices, networks and payees marked), and replay must feed the lake's
    // copies at the same point. The label time falls strictly between the two halves' events.
    let split = (sent.len() / 2..sent.len() - 1)
        .find(|&k| k != at && k != at + 1 && sent[k].ts - sent[k - 1].ts >= 2)
        .expect("a gap of 2 ms between two events");
    let label_ts = sent[split - 1].ts + 1;
    let (before, after) = sent.split_at(split);
    let mut going_on: Vec<&str> = before
        .iter()
        .filter(|e| e.user_id.is_some() && after.iter().any(|a| a.session_id == e.session_id))
        .map(|e| e.session_id.as_str())
        .collect();
    going_on.sort();
    going_on.dedup();
    let labels: Vec<models::Label> = going_on
        .iter()
        .take(5)
        .enumerate()
        .map(|(i, sid)| models::Label {
            label_id: format!("parity-{i}"),
            ts: label_ts,
            user_id: before.iter().find(|e| e.session_id == *sid).and_then(|e| e.user_id.clone()).unwrap(),
            session_id: Some(sid.to_string()),
            event_id: None,
            is_fraud: true,
            kind: Some(models::LabelKind::AccountTakeover),
            source: Some(models::LabelSource::Analyst),
        })
        .collect();
    assert!(labels.len() >= 3, "sessions going on past the split: {going_on:?}");
    send_in_chunks(&stack.brokers(), "clickstream", before, 1, async |_| {}).await;
    let enriched_before = before.len() - usize::from(at < split);
    e2e_tests::kafka::consume_until(&stack.brokers(), "clickstream.enriched", Duration::from_secs(90), |rs| {
        rs.len() >= enriched_before
    })
    .await;
    let producer: rdkafka::producer::FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", stack.brokers()).create().unwrap();
    let records: Vec<(String, Vec<u8>, i64)> =
        labels.iter().map(|l| (l.user_id.clone(), serde_json::to_vec(l).unwrap(), l.ts)).collect();
    fixtures::send_events(&producer, "fraud.labels", &records, false).await.unwrap();
    let mut redis = redis::Client::open(stack.redis_url()).unwrap().get_connection().unwrap();
    let marked = wait_for(Duration::from_secs(30), || {
        redis::cmd("KEYS").arg("fd:lf:*").query::<Vec<String>>(&mut redis).is_ok_and(|k| !k.is_empty())
    })
    .await;
    assert!(marked, "the enricher fed the labels back into Redis");
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_in_chunks(&stack.brokers(), "clickstream", after, 1, async |_| {}).await;
    let features = |lake: &Lake| -> Vec<lake::ServedFeatures> {
        lake.partitions(lake::FEATURES)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(_, f)| lake.read_features(&f).unwrap_or_default())
            .collect()
    };
    let verdicts = |lake: &Lake| lake.partitions(lake::VERDICTS).unwrap_or_default().len();
    let done = wait_for(Duration::from_secs(90), || {
        features(&lake).len() >= events.len()
            && lake_event_counts(&lake).len() >= events.len()
            && verdicts(&lake) > 0
            && label_count(&lake) >= labels.len()
    })
    .await;
    assert!(done, "the sink wrote {} feature rows for {} events", features(&lake).len(), events.len());
    shutdown.cancel();
    sink.await.unwrap().unwrap();
    enricher.wait().await.unwrap();
    scorer.wait().await.unwrap();

    // Replay the lake's events through the one feature definition, in the lake's order.
    // The history the trainer replays with (expiring on event time).
    let mut replay = models::features::Replayer::new(models::history::MemoryHistory::expiring());
    let mut replayed: HashMap<String, Vec<f64>> = HashMap::new();
    let mut lake_labels = lake.read_labels().unwrap();
    lake_labels.sort_by_key(|l| l.ts);
    let mut feed = lake_labels.iter().peekable();
    for (_, files) in lake.partitions(lake::EVENTS).unwrap() {
        let events = lake.read_events(&files).unwrap().0;
        for (e, f) in replay.replay_labelled(&events, &mut feed) {
            replayed.insert(e.event_id.clone(), f.0);
        }
    }
    let served = features(&lake);
    assert_eq!(served.len(), events.len(), "one feature row per event");
    let mut differing = Vec::new();
    for row in &served {
        assert_eq!(row.feature_schema, models::feature_schema_hash());
        assert!(!row.history_unavailable);
        let r = &replayed[&row.event_id];
        for (i, (a, b)) in row.values.iter().zip(r).enumerate() {
            if (a - b).abs() > 1e-9 * a.abs().max(1.0) {
                differing.push(format!("{} {}: served {a} replayed {b}", row.event_id, models::FEATURES[i].name));
            }
        }
    }
    assert!(differing.is_empty(), "{} differences, first: {:?}", differing.len(), &differing[..differing.len().min(5)]);
    // …and the labels did show: the labelled sessions' later events carry them.
    let device = models::features::F::DeviceFraudLabels90d as usize;
    let subnet = models::features::F::SubnetFraudLabels90d as usize;
    let marked = served.iter().filter(|r| r.values[device] > 0.0 || r.values[subnet] > 0.0).count();
    assert!(marked > 0, "no served event carries a fed-back label");
    assert!(!lake_event_counts(&lake).contains_key("from-the-future"), "the sink left the event from the future out");
    let dlq = e2e_tests::kafka::consume_until(&stack.brokers(), "clickstream.dlq", Duration::from_secs(30), |rs| {
        !rs.is_empty()
    })
    .await;
    let reasons: Vec<_> = dlq.iter().map(|r| r.headers.get("dlq.reason").cloned().unwrap_or_default()).collect();
    assert_eq!(reasons, ["ts_ahead_of_record"], "the enricher dead-lettered it, and nothing else");
}
