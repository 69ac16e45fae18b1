//! The shipped dashboards and alert rules, proven against a real Prometheus scraping a live
//! pipeline: every panel's PromQL and every alert's signal parses and returns series, the
//! shipped Prometheus files pass `promtool`, and the dashboard JSON has what Grafana's import
//! needs.

use e2e_tests::kafka::consume_until;
use e2e_tests::prometheus::Prometheus;
use e2e_tests::setup::{blacklist_ip, live_traffic, start_services, train_bank};
use e2e_tests::stack::{Stack, repo_root};
use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "test-admin-token";
const BLOCKED_IP: &str = "198.51.100.77";

fn dashboards_dir() -> PathBuf {
    repo_root().join("dashboards")
}

fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = dashboards_dir().join("grafana");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Grafana's built-in variables, replaced the way Grafana would for a short time range.
fn substitute_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "15s").replace("$__range", "5m").replace("$__interval", "5s")
}

/// Turns `signal > threshold` into `signal > bool threshold`, so the signal's series come back
/// whether or not the alert fires. Only a comparison outside parentheses, braces, brackets and
/// strings counts; `None` when the expression has none (every shipped rule must have one).
fn with_bool_comparison(expr: &str) -> Option<String> {
    let b = expr.as_bytes();
    let (mut depth, mut in_str, mut last) = (0i32, false, None);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_str {
            in_str = c != b'"' || b[i - 1] == b'\\';
        } else {
            match c {
                b'"' => in_str = true,
                b'(' | b'{' | b'[' => depth += 1,
                b')' | b'}' | b']' => depth -= 1,
                b'>' | b'<' | b'=' | b'!' if depth == 0 => {
                    let two = b.get(i + 1) == Some(&b'=');
                    if c != b'=' || two {
                        let end = if two { i + 2 } else { i + 1 };
                        last = Some(end);
                        i = end;
                        continue;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    last.map(|end| format!("{} bool{}", &expr[..end], &expr[end..]))
}

#[test]
fn the_bool_rewrite_finds_the_top_level_comparison_only() {
    assert_eq!(with_bool_comparison("sum(x{a=\"b\"}) > 10").unwrap(), "sum(x{a=\"b\"}) > bool 10");
    assert_eq!(with_bool_comparison("(sum(x) or vector(0)) == 0").unwrap(), "(sum(x) or vector(0)) == bool 0");
    assert_eq!(with_bool_comparison("up{job=~\"a>b\"} != 1").unwrap(), "up{job=~\"a>b\"} != bool 1");
    assert_eq!(with_bool_comparison("time() - max(m) >= 3").unwrap(), "time() - max(m) >= bool 3");
    assert_eq!(with_bool_comparison("sum(rate(x[5m]))"), None);
}

/// Metric names an expression reads (our own; `up` is Prometheus's).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("fraud_") {
        let name: String =
            rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

#[test]
fn shipped_prometheus_files_pass_promtool() {
    let dir = dashboards_dir().join("prometheus");
    for args in [["check", "config"], ["check", "rules"]] {
        let file = if args[1] == "config" { "prometheus.yml" } else { "rules.yml" };
        let out = std::process::Command::new("promtool")
            .args(args)
            .arg(dir.join(file))
            .output()
            .expect("promtool (installed with prometheus by scripts/stack install)");
        assert!(
            out.status.success(),
            "promtool {} {file}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn dashboards_have_what_grafana_import_needs() {
    let provisioning =
        std::fs::read_to_string(dashboards_dir().join("grafana/provisioning/datasources/prometheus.yml")).unwrap();
    let uid = provisioning
        .lines()
        .find_map(|l| l.trim().strip_prefix("uid:"))
        .map(|u| u.trim().to_string())
        .expect("the datasource provisioning file sets a uid");
    let provider = std::fs::read_to_string(dashboards_dir().join("grafana/provisioning/dashboards/fraudwall.yml"))
        .expect("a dashboards provider");
    assert!(provider.contains("type: file") && provider.contains("path:"), "{provider}");
    let all = dashboards();
    assert!(
        all.len() >= 3,
        "overview, pipeline and model dashboards: {:?}",
        all.iter().map(|d| &d.0).collect::<Vec<_>>()
    );
    let mut dashboard_uids = HashSet::new();
    for (file, d) in &all {
        let duid = d["uid"].as_str().unwrap_or_else(|| panic!("{file}: no uid"));
        assert!(dashboard_uids.insert(duid.to_string()), "{file}: dashboard uid {duid} is not unique");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{file}: no title");
        assert!(d["schemaVersion"].as_i64().is_some(), "{file}: no schemaVersion");
        let panels = d["panels"].as_array().unwrap_or_else(|| panic!("{file}: no panels"));
        assert!(!panels.is_empty(), "{file}: no panels");
        let mut ids = HashSet::new();
        for p in panels {
            let id = p["id"].as_i64().unwrap_or_else(|| panic!("{file}: a panel without an id: {p}"));
            assert!(ids.insert(id), "{file}: panel id {id} is used twice");
            let title = p["title"].as_str().unwrap_or_default();
            assert!(!title.is_empty(), "{file}: panel {id} has no title");
            for k in ["x", "y", "w", "h"] {
                assert!(p["gridPos"][k].as_i64().is_some(), "{file}: panel {title:?} has no gridPos.{k}");
            }
            assert_eq!(p["datasource"]["uid"], uid.as_str(), "{file}: panel {title:?} names another datasource");
            let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{file}: panel {title:?} has no targets"));
            assert!(!targets.is_empty(), "{file}: panel {title:?} has no queries");
            let mut refs = HashSet::new();
            for t in targets {
                assert_eq!(
                    t["datasource"]["uid"],
                    uid.as_str(),
                    "{file}: a query in {title:?} names another datasource"
                );
                assert!(
                    refs.insert(t["refId"].as_str().unwrap_or_default().to_string()),
                    "{file}: refId reused in {title:?}"
                );
                assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "{file}: a query in {title:?} has no expr");
            }
        }
    }
}

/// Every `(dashboard, panel, expression)` the dashboards query.
fn panel_queries() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (file, d) in dashboards() {
        for p in d["panels"].as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push((
                    file.clone(),
                    p["title"].as_str().unwrap_or("").to_string(),
                    t["expr"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dashboard_query_and_alert_rule_returns_series_from_a_live_pipeline() {
    let stack = Stack::start();
    let work = tempfile::tempdir().unwrap();
    // A model trained here (so the trainer's run history exists), and the checked-in baseline
    // as the challenger the scorer shadows.
    let trained = train_bank(work.path(), 23);
    let (world, registry) = (trained.world, trained.registry);
    let baseline = platform::registry::current_version(&repo_root().join("models/baseline")).unwrap().unwrap();
    let artifact = platform::registry::load(&repo_root().join("models/baseline"), &baseline).unwrap();
    platform::registry::write_version(&registry, &artifact, &[]).unwrap();
    platform::registry::set_challenger(&registry, &baseline).unwrap();

    // Lag statistics every second, so a short test sees them.
    let shutdown = CancellationToken::new();
    let (enricher, scorer) =
        start_services(&stack, &registry, TOKEN, &["-X", "statistics.interval.ms=1000"], &shutdown).await;
    let prom_dir = work.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let prometheus = Prometheus::start(
        &prom_dir,
        &[("fraudwall-enricher", enricher.http_addr), ("fraudwall-scorer", scorer.http_addr)],
        &dashboards_dir().join("prometheus/rules.yml"),
    )
    .await;

    // Traffic: a blacklisted IP (list hits, reasons, a blocked session), bad input (dead
    // letters), and a few thousand ordinary events.
    blacklist_ip(&enricher, TOKEN, BLOCKED_IP).await;
    let (live, _) = live_traffic(&world, BLOCKED_IP, 1.0 / 3.0);
    let mut records = fixtures::encode(&live);
    records.splice(50..50, [("bad".to_string(), b"{oops".to_vec(), 0)]);
    let producer: rdkafka::producer::FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", stack.brokers()).create().unwrap();
    fixtures::send_events(&producer, "clickstream", &records, false).await.unwrap();
    let want: HashSet<String> = live.iter().map(|e| e.event_id.clone()).collect();
    consume_until(&stack.brokers(), "fraud.verdicts", Duration::from_secs(120), |rs| {
        e2e_tests::kafka::event_ids(rs).len() >= want.len()
    })
    .await;

    // Wait until Prometheus has scraped the finished run, the lag statistics and the trainer
    // history, then a few more scrapes so every rate window holds two samples.
    let mut scraped = false;
    for _ in 0..60 {
        let verdicts = prometheus.query("sum(fraud_verdicts_total)").await.unwrap();
        let n = verdicts.first().and_then(|s| s["value"][1].as_str()).and_then(|v| v.parse::<f64>().ok());
        let lag = prometheus.query("fraud_consumer_lag_records").await.unwrap();
        let runs = prometheus.query("fraud_trainer_runs_total").await.unwrap();
        if n.is_some_and(|n| n >= want.len() as f64) && !lag.is_empty() && !runs.is_empty() {
            scraped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(scraped, "Prometheus never saw all verdicts, the consumer lag and the trainer runs");
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Every panel query parses and returns series.
    let mut failures = Vec::new();
    let mut used = BTreeSet::new();
    let queries = panel_queries();
    for (file, panel, expr) in &queries {
        used.extend(metric_names(expr));
        match prometheus.query(&substitute_grafana_variables(expr)).await {
            Ok(series) if series.is_empty() => failures.push(format!("{file} / {panel}: no series for {expr}")),
            Ok(_) => {}
            Err(e) => failures.push(format!("{file} / {panel}: {e} in {expr}")),
        }
    }

    // Every alert rule is loaded and healthy, and its signal returns series.
    let rules_text = std::fs::read_to_string(dashboards_dir().join("prometheus/rules.yml")).unwrap();
    let shipped = rules_text.lines().filter(|l| l.trim_start().starts_with("- alert:")).count();
    let groups = prometheus.api("/api/v1/rules").await.unwrap();
    let rules: Vec<serde_json::Value> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(rules.len(), shipped, "Prometheus loaded {} of {shipped} rules", rules.len());
    for r in &rules {
        let (name, expr) = (r["name"].as_str().unwrap(), r["query"].as_str().unwrap());
        used.extend(metric_names(expr));
        if r["health"] != "ok" {
            failures.push(format!("rule {name}: health {} ({})", r["health"], r["lastError"]));
        }
        let Some(signal) = with_bool_comparison(expr) else {
            failures.push(format!("rule {name}: no top-level comparison in {expr}"));
            continue;
        };
        match prometheus.query(&signal).await {
            Ok(series) if series.is_empty() => failures.push(format!("rule {name}: no series for {signal}")),
            Ok(_) => {}
            Err(e) => failures.push(format!("rule {name}: {e} in {signal}")),
        }
    }

    // Every metric a panel or rule names exists as a series (an `or vector(0)` cannot hide one).
    for name in &used {
        match prometheus.query(&format!("{{__name__=\"{name}\"}}")).await {
            Ok(s) if s.is_empty() => failures.push(format!("metric {name} is queried but no service exports it")),
            Ok(_) => {}
            Err(e) => failures.push(format!("metric {name}: {e}")),
        }
    }

    // And every metric the services export is in the catalogue (docs/metrics.md).
    let readme = std::fs::read_to_string(repo_root().join("docs/metrics.md")).unwrap();
    let names = prometheus.api("/api/v1/label/__name__/values").await.unwrap();
    for n in names.as_array().unwrap().iter().filter_map(|n| n.as_str()).filter(|n| n.starts_with("fraud_")) {
        let base = ["_bucket", "_count", "_sum"].iter().find_map(|s| n.strip_suffix(s)).unwrap_or(n);
        if !readme.contains(&format!("| `{base}` |")) {
            failures.push(format!("metric {base} is exported but not in the metric catalogue (docs/metrics.md)"));
        }
    }

    eprintln!("{} panel queries, {} rules, {} metrics checked", queries.len(), rules.len(), used.len());
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
    assert!(used.len() >= 20, "the dashboards and rules cover the catalogue: {used:?}");

    drop(prometheus);
    shutdown.cancel();
    enricher.wait().await.unwrap();
    scorer.wait().await.unwrap();
}

/// Every `(metric, label, value)` an expression selects exactly (`name{label="value"}`), and
/// every metric it names with no such matcher as `(metric, "", "")`.
fn selections(expr: &str) -> BTreeSet<(String, String, String)> {
    let mut out: BTreeSet<_> = metric_names(expr).into_iter().map(|n| (n, String::new(), String::new())).collect();
    let mut rest = expr;
    while let Some(i) = rest.find("fraud_") {
        let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[i + name.len()..];
        let Some(body) = rest.strip_prefix('{').and_then(|b| b.split_once('}')).map(|(b, _)| b) else { continue };
        for m in body.split(',') {
            if let Some((k, v)) = m.split_once('=').filter(|(k, v)| !k.ends_with('!') && !v.starts_with('~')) {
                out.insert((name.clone(), k.trim().to_string(), v.trim().trim_matches('"').to_string()));
            }
        }
    }
    out
}

#[test]
fn selections_find_exact_label_matchers_and_bare_names() {
    let s = selections(r#"max(fraud_a{outcome="failed", job=~"x"}) > 0 and fraud_b"#);
    let want = [("fraud_a", "", ""), ("fraud_a", "outcome", "failed"), ("fraud_b", "", "")]
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    assert_eq!(s, want.into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fresh_install_exports_every_series_the_dashboards_and_rules_select_before_any_traffic() {
    let stack = Stack::start();
    let work = tempfile::tempdir().unwrap();
    // The shipped baseline as the only model; no training run, no event, no list hit yet.
    let registry = work.path().join("registry");
    let baseline_dir = repo_root().join("models/baseline");
    let version = platform::registry::current_version(&baseline_dir).unwrap().unwrap();
    let artifact = platform::registry::load(&baseline_dir, &version).unwrap();
    platform::registry::write_version(&registry, &artifact, &[]).unwrap();
    platform::registry::promote(&registry, &version).unwrap();
    let shutdown = CancellationToken::new();
    let (enricher, scorer) = start_services(&stack, &registry, TOKEN, &[], &shutdown).await;
    let mut exported = Vec::new();
    for addr in [enricher.http_addr, scorer.http_addr] {
        let (_, text) = e2e_tests::http::request(addr, "GET", "/metrics", None, None).await.unwrap();
        exported.extend(text.lines().filter(|l| !l.starts_with('#')).map(str::to_string));
    }
    let rules = std::fs::read_to_string(dashboards_dir().join("prometheus/rules.yml")).unwrap();
    let exprs = panel_queries()
        .into_iter()
        .map(|(_, _, e)| e)
        .chain(rules.lines().filter_map(|l| l.trim().strip_prefix("expr:")).map(str::to_string));
    let mut missing = BTreeSet::new();
    let mut checked = 0;
    // The consumer lag's partitions exist only once assigned: librdkafka's first statistics
    // create them (`statistics.interval.ms`, 5 s by default), not the service's start.
    let later = |name: &str| name == platform::metrics::CONSUMER_LAG;
    for (name, label, value) in exprs.flat_map(|e| selections(&e)).filter(|(n, _, _)| !later(n)) {
        checked += 1;
        let found = exported.iter().any(|line| {
            let series = line.split(' ').next().unwrap_or("");
            let named = series == name || series.starts_with(&format!("{name}{{"));
            named && (label.is_empty() || series.contains(&format!("{label}=\"{value}\"")))
        });
        if !found {
            missing.insert(if label.is_empty() { name } else { format!("{name}{{{label}=\"{value}\"}}") });
        }
    }
    shutdown.cancel();
    assert!(checked > 20, "only {checked} selections found in the dashboards and rules");
    assert!(missing.is_empty(), "a fresh install does not export: {missing:?}");
}
