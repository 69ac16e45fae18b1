//! The security surface: TLS and SASL through configuration, secrets never echoed, the admin
//! API rate-limited.

use clap::Parser;
use e2e_tests::http::request;
use e2e_tests::stack::Stack;
use std::process::Command;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn librdkafka_is_built_with_tls_and_sasl_so_they_work_through_settings() {
    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        kafka: platform::config::KafkaArgs,
    }
    let kafka = Args::try_parse_from([
        "x",
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        "sasl.mechanism=SCRAM-SHA-512",
        "-X",
        "sasl.username=fraudwall",
        "-X",
        "sasl.password=not-a-real-one",
    ])
    .unwrap()
    .kafka;
    // Creating the client validates every property; a librdkafka built without OpenSSL
    // refuses `SASL_SSL` here.
    let producer: Result<rdkafka::producer::FutureProducer, _> = kafka.producer_config().unwrap().create();
    assert!(producer.is_ok(), "{:?}", producer.err());
    let consumer: Result<rdkafka::consumer::StreamConsumer, _> = kafka.consumer_config("g").unwrap().create();
    assert!(consumer.is_ok(), "{:?}", consumer.err());
}

#[tokio::test]
async fn rediss_urls_connect_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl")
        .status
        .success();
    assert!(ok, "generating a test certificate");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let status = Command::new("redis-server")
        .args(["--port", "0", "--bind", "127.0.0.1", "--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&cert)
        .args(["--save", "", "--daemonize", "yes", "--dir"])
        .arg(dir.path())
        .arg("--pidfile")
        .arg(dir.path().join("redis.pid"))
        .status()
        .expect("redis-server");
    assert!(status.success());
    let mut pong = None;
    for _ in 0..50 {
        // `#insecure`: the test certificate is self-signed; production uses a verified one.
        if let Ok(mut c) = platform::config::redis_connection(&format!("rediss://127.0.0.1:{port}/#insecure")).await {
            pong = redis::cmd("PING").query_async::<String>(&mut c).await.ok();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = std::fs::read_to_string(dir.path().join("redis.pid")).unwrap_or_default();
    let _ = Command::new("kill").arg(pid.trim()).status();
    assert_eq!(pong.as_deref(), Some("PONG"), "PING over TLS");
    let plain = platform::config::redis_connection(&format!("redis://127.0.0.1:{port}")).await;
    assert!(plain.is_err() || pid.is_empty(), "a plain-text client must not get through a TLS port");
}

#[test]
fn help_and_startup_errors_never_print_secrets() {
    let exe = std::env::current_exe().unwrap();
    let bins = exe.parent().and_then(std::path::Path::parent).unwrap().to_path_buf();
    for name in ["enricher", "scorer", "trainer"] {
        let bin = bins.join(name);
        assert!(bin.exists(), "{} is missing: run `cargo build --bins` first (scripts/test does)", bin.display());
        for args in [vec!["--help"], vec!["--http-addr", "127.0.0.1:1", "--brokers", "127.0.0.1:1"]] {
            let out = Command::new(&bin)
                .args(&args)
                .env("ADMIN_TOKENS", "ops:TOKEN-SECRET-1")
                .env("REDIS_URL", "redis://:REDIS-SECRET-2@127.0.0.1:1")
                .env("KAFKA_PROPERTIES", "sasl.password=KAFKA-SECRET-3")
                .env("RUST_LOG", "info")
                .output()
                .unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            for secret in ["TOKEN-SECRET-1", "REDIS-SECRET-2", "KAFKA-SECRET-3"] {
                assert!(!text.contains(secret), "{name} {args:?} printed {secret}:\n{text}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_a_flood_with_429_and_the_session_check_is_not_limited() {
    let stack = Stack::start();
    let work = tempfile::tempdir().unwrap();
    let registry = e2e_tests::setup::baseline_registry(work.path());
    let shutdown = CancellationToken::new();
    let (enricher, scorer) =
        e2e_tests::setup::start_services(&stack, &registry, "tok", &["--admin-rate-limit", "2"], &shutdown).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(request(enricher.http_addr, "GET", "/v1/lists", Some("tok"), None).await.unwrap().0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 4, "a burst of twice the rate: {statuses:?}");
    assert!(statuses[4..].iter().all(|s| *s == 429), "{statuses:?}");
    let mut lifts = Vec::new();
    for _ in 0..10 {
        lifts.push(request(scorer.http_addr, "POST", "/v1/sessions/s1/lift", Some("tok"), Some("{}")).await.unwrap().0);
    }
    assert!(lifts.contains(&429), "operator endpoints are limited: {lifts:?}");
    for _ in 0..50 {
        let (status, _) = request(scorer.http_addr, "GET", "/v1/sessions/s1", None, None).await.unwrap();
        assert_eq!(status, 200, "the website's session check is never rate-limited");
    }
    shutdown.cancel();
    enricher.wait().await.unwrap();
    scorer.wait().await.unwrap();
}
