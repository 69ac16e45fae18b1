//! The per-event work on the live path, one piece at a time, on simulated traffic:
//! JSON decode/encode of events and verdicts, planning the history reads, computing features
//! from fetched history, list lookups (exact and CIDR), and access-log parsing.
//! `cargo bench -p enricher --bench hot_paths` (inference per model kind is in
//! `cargo bench -p trainer --bench replay`).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use enricher::lists::{Entry, Snapshot};
use enricher::weblog::{LogFormat, Routes, parse_line};
use models::ClickEvent;
use models::features::{Texts, compute, plan};
use models::history::{MemoryHistory, OpResult};
use models::verdict::{Action, Reason, Verdict};
use std::hint::black_box;

const START: i64 = 1_780_000_000_000;

fn events(n: usize) -> Vec<ClickEvent> {
    fixtures::load::pool(n, 2000, START)
}

fn json(c: &mut Criterion) {
    let evs = events(1000);
    let encoded: Vec<Vec<u8>> = evs.iter().map(|e| serde_json::to_vec(e).expect("encodes")).collect();
    let verdicts: Vec<Verdict> = evs
        .iter()
        .map(|e| Verdict {
            event_id: e.event_id.clone(),
            session_id: e.session_id.clone(),
            user_id: e.user_id.clone(),
            ts: e.ts,
            decided_at: e.ts + 12,
            score: 0.734,
            action: Action::Restrict,
            restrictions: vec!["transfer_funds".into(), "add_payee".into()],
            expires_at: Some(e.ts + 3_600_000),
            reasons: ["user_device_new", "ip_failed_logins_1h", "session_secs_since_password_reset"]
                .iter()
                .map(|c| Reason { code: c.to_string(), detail: None, contribution: Some(0.41) })
                .collect(),
            model_version: "m20261122-0300".into(),
            alert: true,
            ingest_ts_ms: Some(e.ts + 3),
            shadow_score: None,
            shadow_model_version: None,
        })
        .collect();
    let encoded_verdicts: Vec<Vec<u8>> = verdicts.iter().map(|v| serde_json::to_vec(v).expect("encodes")).collect();
    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Elements(evs.len() as u64));
    g.bench_function("event_decode_and_validate", |b| {
        b.iter(|| {
            for bytes in &encoded {
                black_box(ClickEvent::decode(bytes, 64 * 1024).expect("valid"));
            }
        })
    });
    g.bench_function("event_encode", |b| {
        b.iter(|| {
            for e in &evs {
                black_box(serde_json::to_vec(e).expect("encodes"));
            }
        })
    });
    g.bench_function("verdict_encode", |b| {
        b.iter(|| {
            for v in &verdicts {
                black_box(serde_json::to_vec(v).expect("encodes"));
            }
        })
    });
    g.bench_function("verdict_decode", |b| {
        b.iter(|| {
            for bytes in &encoded_verdicts {
                black_box(serde_json::from_slice::<Verdict>(bytes).expect("decodes"));
            }
        })
    });
    g.finish();
}

fn features(c: &mut Criterion) {
    // Ten thousand events in order, with the history each one fetched (as Redis would answer).
    let evs = events(10_000);
    let mut h = MemoryHistory::new();
    let texts: Vec<Texts> = evs.iter().map(Texts::of).collect();
    let fetched: Vec<(models::features::Plan, Vec<OpResult>)> = evs
        .iter()
        .zip(&texts)
        .map(|(e, t)| {
            let p = plan(e, t);
            let r = p.ops().map(|op| h.apply(op)).collect();
            (p, r)
        })
        .collect();
    let mut g = c.benchmark_group("features");
    g.throughput(Throughput::Elements(evs.len() as u64));
    g.bench_function("plan_history_ops", |b| {
        b.iter(|| {
            for e in &evs {
                let texts = Texts::of(e);
                black_box(plan(e, &texts));
            }
        })
    });
    g.bench_function("compute_from_fetched_history", |b| {
        b.iter(|| {
            for (e, (p, r)) in evs.iter().zip(&fetched) {
                black_box(compute(e, p, r));
            }
        })
    });
    g.finish();
}

fn lists(c: &mut Criterion) {
    let entry = |kind: &str, value: String| Entry {
        list: "blacklist".into(),
        kind: kind.into(),
        value,
        reason: "bench".into(),
        added_by: "bench".into(),
        added_at_ms: 0,
        expires_at_ms: None,
    };
    let evs = events(1000);
    // Ten thousand exact entries per kind, some matching the traffic, and a thousand networks.
    let mut entries: Vec<Entry> = Vec::new();
    for (i, e) in evs.iter().enumerate().step_by(10) {
        entries.push(entry("ip", e.ip.to_string()));
        if let Some(u) = &e.user_id {
            entries.push(entry("user", format!("{u}-{i}")));
        }
    }
    for i in 0..10_000 {
        entries.push(entry("user", format!("listed-user-{i}")));
        entries.push(entry("device", format!("listed-device-{i}")));
        entries.push(entry("payee", format!("listed-payee-{i}")));
        entries.push(entry("ip", format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256)));
    }
    let mut cidrs = 0;
    for i in 0..1000u32 {
        let prefix = [8, 16, 24, 32][i as usize % 4];
        entries.push(entry("cidr", format!("{}.{}.{}.0/{prefix}", 11 + i % 200, i / 200, i % 256)));
        cidrs += 1;
    }
    entries.push(entry("cidr", "2001:db8::/32".into()));
    let snapshot = Snapshot::from_entries(1, entries);
    let mut g = c.benchmark_group("lists");
    g.throughput(Throughput::Elements(evs.len() as u64));
    g.bench_function(format!("hits_40k_exact_{}_cidrs", cidrs + 1), |b| {
        b.iter(|| {
            for e in &evs {
                black_box(snapshot.hits(e, START));
            }
        })
    });
    g.finish();
}

fn weblog(c: &mut Criterion) {
    let routes = Routes::parse(include_str!("../../config/routes.toml")).expect("the shipped routes parse");
    let format: LogFormat = "session,device,country".parse().expect("a valid format");
    let lines: Vec<String> = events(1000).iter().map(fixtures::weblog::line).collect();
    let mut g = c.benchmark_group("weblog");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("parse_access_log_line", |b| {
        b.iter_batched(
            || (0..lines.len()).map(|i| format!("wl-0-{i}")).collect::<Vec<_>>(),
            |ids| {
                for (l, id) in lines.iter().zip(ids) {
                    black_box(parse_line(l.as_bytes(), &format, &routes, id).expect("simulated lines parse"));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, json, features, lists, weblog);
criterion_main!(benches);
