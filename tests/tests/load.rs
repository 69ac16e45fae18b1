//! The load harness against the passthrough baseline on a real broker: every event sent on
//! schedule is answered and measured, and the figures are consistent with each other; a hop
//! told to size its outputs like another topic does so, and the padded JSON still reads.

use clap::Parser;
use e2e_tests::stack::Stack;
use fixtures::load::{LoadArgs, mean_size, passthrough, pool, run_step};
use platform::config::KafkaArgs;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Larger than any simulated click, so every output is padded to exactly this.
const SIZE: usize = 3000;

#[derive(Parser)]
struct Load {
    #[command(flatten)]
    args: LoadArgs,
}

#[derive(Parser)]
struct Kafka {
    #[command(flatten)]
    args: KafkaArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_harness_measures_every_event_through_two_chained_passthrough_hops() {
    let stack = Stack::start();
    let brokers = stack.brokers();
    let admin: AdminClient<DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let topics: Vec<NewTopic> = ["lt.in", "lt.mid", "lt.out", "lt.sizes"]
        .iter()
        .map(|t| NewTopic::new(t, 2, TopicReplication::Fixed(1)))
        .collect();
    for r in admin.create_topics(&topics, &AdminOptions::new()).await.unwrap() {
        r.unwrap();
    }

    // The second hop sizes its outputs like this topic's records (as it would like verdicts).
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    for i in 0..10 {
        let payload = vec![b' '; SIZE];
        let key = i.to_string();
        producer.send(FutureRecord::to("lt.sizes").key(&key).payload(&payload), Duration::from_secs(10)).await.unwrap();
    }

    let kafka = Kafka::parse_from(["hop", "--brokers", &brokers]).args;
    let shutdown = CancellationToken::new();
    let hops = [("lt.in", "lt.mid", "lt-hop1", None), ("lt.mid", "lt.out", "lt-hop2", Some("lt.sizes"))].map(
        |(from, to, group, size_like)| {
            let (kafka, token) = (kafka.clone(), shutdown.clone());
            tokio::spawn(async move { passthrough(&kafka, from, to, group, size_like, token).await })
        },
    );

    let me = format!("harness={}", std::process::id());
    let args = Load::parse_from([
        "load",
        "--brokers",
        &brokers,
        "--input",
        "lt.in",
        "--output",
        "lt.out",
        "--duration-secs",
        "6",
        "--warmup-secs",
        "1",
        "--drain-secs",
        "60",
        "--service",
        &me,
    ])
    .args;
    let events = pool(1500, 300, platform::now_ms());
    let step = tokio::task::spawn_blocking(move || run_step(&args, &events, 200.0, 1)).await.unwrap().unwrap();

    assert_eq!(step.sent, 1200, "200 events/s for 6 s");
    assert_eq!(step.measured, 1000, "the first second is warm-up");
    assert_eq!(step.answered, step.measured, "every measured event came back: {step:?}");
    assert!(step.sustained, "a passthrough keeps up with 200 events/s: {step:?}");
    assert!(
        0.0 < step.p50_ms && step.p50_ms <= step.p99_ms && step.p99_ms <= step.p999_ms && step.p999_ms <= step.max_ms,
        "percentiles are ordered: {step:?}"
    );
    assert!((step.throughput - 200.0).abs() < 20.0, "answers arrive at the offered rate: {}", step.throughput);
    let me = &step.processes[0];
    assert!(me.service && me.cpu_seconds > 0.0 && me.cpu_seconds_per_million > 0.0, "{me:?}");
    assert!(me.peak_rss_mib > 1.0, "{me:?}");
    let out = mean_size(&brokers, "lt.out", 1000).unwrap();
    assert_eq!(out, SIZE, "the second hop's outputs are padded to the size of lt.sizes' records");

    shutdown.cancel();
    for h in hops {
        h.await.unwrap().unwrap();
    }
}
