//! Blacklists and whitelists.
//!
//! Redis is the source of truth: hash `fd:lists` maps `list|kind|value` to an entry, and
//! `fd:lists:version` is bumped on every change. Each enricher keeps an in-process snapshot and
//! polls the version every 250 ms, so a lookup costs no round trip and a change reaches every
//! instance well within a second. Expiry is wall-clock: lists are operator controls, not history.

use models::ListHit;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const LISTS_KEY: &str = "fd:lists";
pub const VERSION_KEY: &str = "fd:lists:version";
pub const AUDIT_KEY: &str = "fd:lists:audit";
const AUDIT_KEEP: isize = 10_000;

pub const LIST_NAMES: [&str; 2] = ["blacklist", "whitelist"];
pub const KINDS: [&str; 5] = ["user", "ip", "cidr", "device", "payee"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub list: String,
    pub kind: String,
    pub value: String,
    pub reason: String,
    pub added_by: String,
    pub added_at_ms: i64,
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("unknown list {0:?} (use blacklist or whitelist)")]
    List(String),
    #[error("unknown kind {0:?} (use user, ip, cidr, device or payee)")]
    Kind(String),
    #[error("invalid value for {kind}: {value:?}")]
    Value { kind: String, value: String },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// An IP network, matched by prefix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/')?;
        let addr: IpAddr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        fn bits(ip: &IpAddr) -> (u128, u32) {
            match ip {
                IpAddr::V4(v) => (u128::from(u32::from(*v)), 32),
                IpAddr::V6(v) => (u128::from(*v), 128),
            }
        }
        let ((net, w1), (x, w2)) = (bits(&self.addr), bits(ip));
        if w1 != w2 {
            return false;
        }
        if self.prefix == 0 {
            return true;
        }
        let shift = w1 - u32::from(self.prefix);
        (net >> shift) == (x >> shift)
    }
}

/// Validates and canonicalises a value for its kind.
pub fn canonical(kind: &str, value: &str) -> Result<String, ListError> {
    let bad = || ListError::Value { kind: kind.to_string(), value: value.chars().take(64).collect() };
    match kind {
        "ip" => value.parse::<IpAddr>().map(|ip| ip.to_string()).map_err(|_| bad()),
        "cidr" => Cidr::parse(value).map(|c| format!("{}/{}", c.addr, c.prefix)).ok_or_else(bad),
        "user" | "device" | "payee" if !value.is_empty() && value.len() <= 256 => Ok(value.to_string()),
        "user" | "device" | "payee" => Err(bad()),
        other => Err(ListError::Kind(other.to_string())),
    }
}

fn field(list: &str, kind: &str, value: &str) -> String {
    format!("{list}|{kind}|{value}")
}

/// An immutable view of all live entries.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: i64,
    exact: HashMap<(&'static str, &'static str), HashMap<String, Entry>>,
    cidrs: Vec<(Cidr, Entry)>,
    len: usize,
}

impl Snapshot {
    pub fn from_entries(version: i64, entries: impl IntoIterator<Item = Entry>) -> Snapshot {
        let mut s = Snapshot { version, ..Snapshot::default() };
        for e in entries {
            s.len += 1;
            if e.kind == "cidr" {
                if let Some(c) = Cidr::parse(&e.value) {
                    s.cidrs.push((c, e));
                }
            } else {
                // Keys are the static names, so a lookup per event allocates nothing.
                let list = LIST_NAMES.iter().find(|l| **l == e.list);
                let kind = KINDS.iter().find(|k| **k == e.kind);
                if let (Some(list), Some(kind)) = (list, kind) {
                    s.exact.entry((*list, *kind)).or_default().insert(e.value.clone(), e);
                }
            }
        }
        s
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All entries matching the event, skipping expired ones.
    pub fn hits(&self, ev: &models::ClickEvent, now_ms: i64) -> Vec<ListHit> {
        let mut out = Vec::new();
        let live = |e: &Entry| e.expires_at_ms.is_none_or(|t| t > now_ms);
        let ip = ev.ip.to_string();
        for list in LIST_NAMES {
            let mut check = |kind: &str, v: Option<&str>| {
                let Some(v) = v else { return };
                if let Some(e) = self.exact.get(&(list, kind)).and_then(|m| m.get(v))
                    && live(e)
                {
                    out.push(ListHit {
                        list: list.into(),
                        kind: kind.into(),
                        value: v.into(),
                        reason: e.reason.clone(),
                    });
                }
            };
            check("ip", Some(&ip));
            check("user", ev.user_id.as_deref());
            check("device", ev.device_id.as_deref());
            check("payee", ev.payee_id.as_deref());
        }
        for (c, e) in &self.cidrs {
            if live(e) && c.contains(&ev.ip) {
                out.push(ListHit {
                    list: e.list.clone(),
                    kind: "cidr".into(),
                    value: e.value.clone(),
                    reason: e.reason.clone(),
                });
            }
        }
        out
    }
}

/// The shared, hot-swappable snapshot.
#[derive(Clone, Default)]
pub struct ListCache(Arc<RwLock<Arc<Snapshot>>>);

impl ListCache {
    pub fn get(&self) -> Arc<Snapshot> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn set(&self, s: Snapshot) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(s);
    }
}

#[derive(Clone)]
pub struct ListStore {
    conn: ConnectionManager,
}

impl ListStore {
    pub fn new(conn: ConnectionManager) -> Self {
        ListStore { conn }
    }

    /// Every change bumps the version (so caches reload) and is audited, atomically.
    fn audited(change: &mut redis::Pipeline, actor: &str, action: &str, entry: serde_json::Value) {
        let audit = serde_json::json!({"at_ms": platform::now_ms(), "actor": actor, "action": action, "entry": entry});
        change
            .incr(VERSION_KEY, 1)
            .ignore()
            .lpush(AUDIT_KEY, audit.to_string())
            .ignore()
            .ltrim(AUDIT_KEY, 0, AUDIT_KEEP - 1)
            .ignore();
    }

    pub async fn upsert(&self, e: &Entry, actor: &str) -> Result<(), ListError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(LISTS_KEY, field(&e.list, &e.kind, &e.value), serde_json::to_string(e).unwrap_or_default())
            .ignore();
        Self::audited(&mut pipe, actor, "add", serde_json::to_value(e).unwrap_or_default());
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// Returns whether the entry existed.
    pub async fn remove(&self, list: &str, kind: &str, value: &str, actor: &str) -> Result<bool, ListError> {
        let mut pipe = redis::pipe();
        pipe.atomic().hdel(LISTS_KEY, field(list, kind, value));
        Self::audited(&mut pipe, actor, "remove", serde_json::json!({"list": list, "kind": kind, "value": value}));
        let (removed,): (i64,) = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(removed > 0)
    }

    pub async fn version(&self) -> Result<i64, ListError> {
        let mut c = self.conn.clone();
        let v: Option<i64> = c.get(VERSION_KEY).await?;
        Ok(v.unwrap_or(0))
    }

    /// The version and every entry, sorted by list, kind and value.
    pub async fn entries(&self) -> Result<(i64, Vec<Entry>), ListError> {
        let mut c = self.conn.clone();
        let (version, all): (Option<i64>, HashMap<String, String>) =
            redis::pipe().get(VERSION_KEY).hgetall(LISTS_KEY).query_async(&mut c).await?;
        let mut entries: Vec<Entry> =
            all.into_values().filter_map(|v| serde_json::from_str::<Entry>(&v).ok()).collect();
        entries.sort_by(|a, b| (&a.list, &a.kind, &a.value).cmp(&(&b.list, &b.kind, &b.value)));
        Ok((version.unwrap_or(0), entries))
    }

    pub async fn load(&self) -> Result<Snapshot, ListError> {
        let (version, entries) = self.entries().await?;
        Ok(Snapshot::from_entries(version, entries))
    }

    pub async fn audit(&self, limit: isize) -> Result<Vec<serde_json::Value>, ListError> {
        let mut c = self.conn.clone();
        let rows: Vec<String> = c.lrange(AUDIT_KEY, 0, limit - 1).await?;
        Ok(rows.iter().filter_map(|r| serde_json::from_str(r).ok()).collect())
    }
}

/// Keeps `cache` in step with Redis until `shutdown`. Redis hiccups keep the last snapshot.
pub async fn refresh_loop(
    store: ListStore,
    cache: ListCache,
    sizes: prometheus::IntGaugeVec,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut known = i64::MIN;
    loop {
        match store.version().await {
            Ok(v) if v != known => match store.load().await {
                Ok(s) => {
                    known = s.version;
                    for list in LIST_NAMES {
                        let n = s.exact.iter().filter(|((l, _), _)| *l == list).map(|(_, m)| m.len()).sum::<usize>()
                            + s.cidrs.iter().filter(|(_, e)| e.list == list).count();
                        sizes.with_label_values(&[list]).set(n as i64);
                    }
                    cache.set(s);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reloading lists failed; keeping the previous snapshot")
                }
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "checking the list version failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(250)) => {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_ranges_match_by_prefix_for_both_families() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(&"10.1.200.3".parse().unwrap()));
        assert!(!c.contains(&"10.2.0.1".parse().unwrap()));
        assert!(!c.contains(&"::1".parse().unwrap()));
        let c6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c6.contains(&"2001:db8:1::5".parse().unwrap()));
        assert!(!c6.contains(&"2001:db9::5".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert_eq!(canonical("cidr", "10.1.0.0/16").unwrap(), "10.1.0.0/16");
        assert!(canonical("ip", "not-an-ip").is_err());
    }

    #[test]
    fn expired_entries_do_not_hit() {
        let e = |value: &str, kind: &str, exp| Entry {
            list: "blacklist".into(),
            kind: kind.into(),
            value: value.into(),
            reason: "r".into(),
            added_by: "t".into(),
            added_at_ms: 0,
            expires_at_ms: exp,
        };
        let s = Snapshot::from_entries(1, [e("1.2.3.4", "ip", Some(100)), e("1.2.0.0/16", "cidr", None)]);
        let ev: models::ClickEvent = serde_json::from_str(
            r#"{"event_id":"e","ts":"2026-01-01T00:00:00Z","session_id":"s","type":"login","ip":"1.2.3.4"}"#,
        )
        .unwrap();
        assert_eq!(s.hits(&ev, 50).len(), 2);
        let late = s.hits(&ev, 150);
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].code(), "blacklist_cidr");
    }
}
