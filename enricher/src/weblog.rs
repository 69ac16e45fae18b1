//! Raw access-log lines → click events.
//!
//! nginx/Apache *combined* format, optionally followed by extra quoted fields named by the
//! log-format setting (for example `session,device,country`). A routes file maps method, path
//! and status to an event type and outcome. A line that does not parse is an error value with a
//! reason; the enricher sends it to the dead-letter topic.

use models::{ClickEvent, Outcome};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::Path;

/// Longest accepted line; longer ones are dead letters.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LineError {
    #[error("line is {0} bytes, larger than the limit of {MAX_LINE_BYTES}")]
    Oversize(usize),
    #[error("line is not valid UTF-8")]
    Encoding,
    #[error("not a combined-format log line: {0}")]
    Syntax(String),
    #[error("parsed, but the event violates the contract: {0}")]
    Schema(String),
}

impl LineError {
    pub fn reason(&self) -> &'static str {
        match self {
            LineError::Oversize(_) => "oversize",
            LineError::Encoding => "invalid_encoding",
            LineError::Syntax(_) => "invalid_log_line",
            LineError::Schema(_) => "schema_violation",
        }
    }
}

/// What an extra trailing field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    Session,
    Device,
    Country,
    User,
    Ignore,
}

/// The extra fields after the combined format, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogFormat(pub Vec<Extra>);

impl std::str::FromStr for LogFormat {
    type Err = String;
    /// `session,device,country` (any of session, device, country, user, ignore), or empty.
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(|f| match f {
                "session" => Ok(Extra::Session),
                "device" => Ok(Extra::Device),
                "country" => Ok(Extra::Country),
                "user" => Ok(Extra::User),
                "ignore" | "-" => Ok(Extra::Ignore),
                other => Err(format!("unknown log field {other:?} (use session, device, country, user, ignore)")),
            })
            .collect::<Result<_, _>>()
            .map(LogFormat)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    method: String,
    path: String,
    #[serde(default)]
    status: Vec<String>,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    outcome: Option<Outcome>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutes {
    #[serde(default)]
    route: Vec<RawRoute>,
}

#[derive(Debug, Clone)]
struct Route {
    method: String,
    path: Glob,
    status: Vec<(u16, u16)>,
    event_type: String,
    outcome: Option<Outcome>,
}

/// The routes file: the first route that matches a request decides its event type.
#[derive(Debug, Clone, Default)]
pub struct Routes(Vec<Route>);

impl Routes {
    pub fn load(path: &Path) -> anyhow::Result<Routes> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("cannot read routes file {}: {e} (set --routes / ROUTES_FILE)", path.display())
        })?;
        Routes::parse(&text).map_err(|e| anyhow::anyhow!("routes file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Routes, String> {
        let raw: RawRoutes = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for r in raw.route {
            let t = &r.event_type;
            let ok = !t.is_empty()
                && t.len() <= 64
                && t.as_bytes()[0].is_ascii_lowercase()
                && t.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
            if !ok {
                return Err(format!("route {} {}: type {t:?} must match ^[a-z][a-z0-9_]{{0,63}}$", r.method, r.path));
            }
            let status = r
                .status
                .iter()
                .map(|s| match s.as_bytes() {
                    [d, b'x', b'x'] if (b'1'..=b'5').contains(d) => {
                        let base = u16::from(d - b'0') * 100;
                        Ok((base, base + 99))
                    }
                    _ => s
                        .parse::<u16>()
                        .map(|c| (c, c))
                        .map_err(|_| format!("status {s:?} must be a code or a class like \"2xx\"")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push(Route {
                method: r.method.to_ascii_uppercase(),
                path: Glob::new(&r.path),
                status,
                event_type: r.event_type,
                outcome: r.outcome,
            });
        }
        Ok(Routes(out))
    }

    fn find(&self, method: &str, path: &str, status: u16) -> Option<&Route> {
        self.0.iter().find(|r| {
            r.method == method
                && r.path.matches(path)
                && (r.status.is_empty() || r.status.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status)))
        })
    }
}

/// A route's path: literal text in which each `*` matches any run of characters, `/`
/// included (`/api/*/login`, `/accounts/*/transfers`, `/static/*`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob(Vec<String>);

impl Glob {
    fn new(pattern: &str) -> Glob {
        Glob(pattern.split('*').map(str::to_string).collect())
    }

    fn matches(&self, text: &str) -> bool {
        let (first, rest) = self.0.split_first().expect("split yields at least one part");
        let Some(mut tail) = text.strip_prefix(first.as_str()) else { return false };
        let Some((last, middle)) = rest.split_last() else { return tail.is_empty() };
        // Each middle part at its first place is never worse than a later one: it leaves the
        // most text for the parts after it.
        for part in middle {
            match tail.find(part.as_str()) {
                Some(at) => tail = &tail[at + part.len()..],
                None => return false,
            }
        }
        tail.ends_with(last.as_str())
    }
}

/// Splits a combined-format line into its fields: bare words, `[…]` and `"…"` (with `\"`).
fn fields(line: &str) -> Result<Vec<String>, LineError> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        let mut f = String::new();
        match c {
            '"' => {
                chars.next();
                loop {
                    match chars.next() {
                        Some('\\') => f.extend(chars.next()),
                        Some('"') => break,
                        Some(c) => f.push(c),
                        None => return Err(LineError::Syntax("unterminated quoted field".into())),
                    }
                }
            }
            '[' => {
                chars.next();
                loop {
                    match chars.next() {
                        Some(']') => break,
                        Some(c) => f.push(c),
                        None => return Err(LineError::Syntax("unterminated [time] field".into())),
                    }
                }
            }
            _ => {
                while let Some(&c) = chars.peek() {
                    if c == ' ' {
                        break;
                    }
                    f.push(c);
                    chars.next();
                }
            }
        }
        out.push(f);
        if out.len() > 64 {
            return Err(LineError::Syntax("too many fields".into()));
        }
    }
    Ok(out)
}

fn dash(v: &str) -> Option<String> {
    (v != "-" && !v.is_empty()).then(|| v.to_string())
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

/// FNV-1a: a stable hash for ids derived from line content.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Parses one line. `event_id` should identify the line's position (topic, partition, offset)
/// so that a redelivered line keeps its id.
pub fn parse_line(
    bytes: &[u8],
    format: &LogFormat,
    routes: &Routes,
    event_id: String,
) -> Result<ClickEvent, LineError> {
    if bytes.len() > MAX_LINE_BYTES {
        return Err(LineError::Oversize(bytes.len()));
    }
    let line = std::str::from_utf8(bytes).map_err(|_| LineError::Encoding)?.trim_end_matches(['\r', '\n']);
    let f = fields(line)?;
    if f.len() < 9 {
        return Err(LineError::Syntax(format!("expected at least 9 fields, found {}", f.len())));
    }
    let ip: IpAddr = f[0].parse().map_err(|_| LineError::Syntax(format!("{:?} is not an IP address", f[0])))?;
    let ts = chrono::DateTime::parse_from_str(&f[3], "%d/%b/%Y:%H:%M:%S %z")
        .map_err(|_| LineError::Syntax(format!("time {:?} is not like 10/Oct/2026:13:55:36 +0000", f[3])))?
        .timestamp_millis();
    let mut request = f[4].split(' ');
    let (method, target) = match (request.next(), request.next()) {
        (Some(m), Some(t)) if !m.is_empty() => (m.to_ascii_uppercase(), t.to_string()),
        _ => return Err(LineError::Syntax(format!("request {:?} is not `METHOD TARGET PROTOCOL`", f[4]))),
    };
    let status: u16 = f[5].parse().map_err(|_| LineError::Syntax(format!("status {:?} is not a number", f[5])))?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut ev = ClickEvent {
        event_id,
        ts,
        session_id: String::new(),
        user_id: dash(&f[2]),
        event_type: "request".into(),
        ip,
        device_id: None,
        user_agent: dash(&f[8]),
        path: Some(path.to_string()),
        method: Some(method.clone()),
        status: Some(status),
        referrer: dash(&f[7]),
        country: None,
        outcome: None,
        amount: query_param(query, "amount").and_then(|a| a.parse().ok()),
        currency: None,
        payee_id: query_param(query, "payee").map(str::to_string),
        attrs: None,
    };
    for (kind, value) in format.0.iter().zip(f.iter().skip(9)) {
        let v = dash(value);
        match kind {
            Extra::Session => ev.session_id = v.unwrap_or_default(),
            Extra::Device => ev.device_id = v,
            Extra::Country => ev.country = v,
            Extra::User => ev.user_id = ev.user_id.take().or(v),
            Extra::Ignore => {}
        }
    }
    if ev.session_id.is_empty() {
        // No session cookie: the visitor's address and browser for the day stand in for it.
        let day = (ts / 86_400_000).to_string();
        ev.session_id = format!("wl-{:016x}", fnv(&[&f[0], ev.user_agent.as_deref().unwrap_or(""), &day]));
    }
    if let Some(r) = routes.find(&method, path, status) {
        ev.event_type = r.event_type.clone();
        ev.outcome = r.outcome;
    }
    ev.validate().map_err(|e| LineError::Schema(e.to_string()))?;
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        Routes::load(
            &Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("../config/routes.toml"),
        )
        .unwrap()
    }

    fn fmt() -> LogFormat {
        "session,device,country".parse().unwrap()
    }

    #[test]
    fn a_star_in_a_route_path_matches_any_run_of_characters_anywhere() {
        let cases = [
            ("/login", "/login", true),
            ("/login", "/login/x", false),
            ("/static/*", "/static/", true),
            ("/static/*", "/static/a/b.css", true),
            ("/static/*", "/stat", false),
            ("/accounts/*/transfers", "/accounts/42/transfers", true),
            ("/accounts/*/transfers", "/accounts/a/b/transfers", true),
            ("/accounts/*/transfers", "/accounts/42/transfers/9", false),
            ("*/login", "/api/v2/login", true),
            ("*/login", "/login", true),
            ("*/login", "/loginx", false),
            ("/a*b*c", "/abc", true),
            ("/a*b*c", "/axxbyyc", true),
            ("/a*b*c", "/acb", false),
            ("/ab*ba", "/aba", false),
            ("*", "", true),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(Glob::new(pattern).matches(path), want, "{pattern} on {path}");
        }
        let routes = Routes::parse(
            "[[route]]\nmethod = \"post\"\npath = \"/api/*/accounts/*/transfers\"\ntype = \"transfer\"\n",
        )
        .unwrap();
        assert_eq!(
            routes.find("POST", "/api/v1/accounts/7/transfers", 201).map(|r| r.event_type.as_str()),
            Some("transfer")
        );
        assert!(routes.find("POST", "/api/v1/accounts/7/payees", 201).is_none());
    }

    #[test]
    fn a_login_failure_and_a_transfer_are_routed_with_their_fields() {
        let l = r#"81.2.3.4 - u1 [01/Nov/2026:09:05:03 +0000] "POST /login HTTP/1.1" 401 512 "-" "Mozilla/5.0 \"x\"" "s-1" "d-1" "GB""#;
        let e = parse_line(l.as_bytes(), &fmt(), &routes(), "wl-0-1".into()).unwrap();
        assert_eq!((e.event_type.as_str(), e.outcome, e.status), ("login", Some(Outcome::Failure), Some(401)));
        assert_eq!(
            (e.session_id.as_str(), e.device_id.as_deref(), e.country.as_deref()),
            ("s-1", Some("d-1"), Some("GB"))
        );
        assert_eq!(e.user_agent.as_deref(), Some("Mozilla/5.0 \"x\""));
        assert_eq!(e.ts, 1_793_523_903_000);
        let t = r#"81.2.3.4 - u1 [01/Nov/2026:09:05:09 +0000] "POST /transfers?amount=12.5&payee=py-1 HTTP/1.1" 201 90 "-" "UA" "s-1" "d-1" "GB""#;
        let e = parse_line(t.as_bytes(), &fmt(), &routes(), "wl-0-2".into()).unwrap();
        assert_eq!((e.event_type.as_str(), e.amount, e.payee_id.as_deref()), ("transfer", Some(12.5), Some("py-1")));
        assert_eq!(e.path.as_deref(), Some("/transfers"));
    }

    #[test]
    fn plain_combined_lines_get_a_derived_session_and_unrouted_requests_stay_generic() {
        let l = r#"2001:db8::7 - - [01/Nov/2026:09:05:03 +0000] "DELETE /cards/1 HTTP/1.1" 204 0 "-" "curl/8""#;
        let e = parse_line(l.as_bytes(), &LogFormat::default(), &routes(), "x".into()).unwrap();
        assert_eq!(e.event_type, "request");
        assert!(e.session_id.starts_with("wl-"));
        assert_eq!(e.user_id, None);
    }

    #[test]
    fn broken_lines_are_errors_with_reasons_not_panics() {
        let r = routes();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "invalid_log_line"),
            (b"hello world".to_vec(), "invalid_log_line"),
            (vec![0xff, 0xfe, b' '], "invalid_encoding"),
            (vec![b'a'; MAX_LINE_BYTES + 1], "oversize"),
            (br#"1.2.3.4 - - [bad time] "GET / HTTP/1.1" 200 1 "-" "ua""#.to_vec(), "invalid_log_line"),
            (
                br#"999.2.3.4 - - [01/Nov/2026:09:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "ua""#.to_vec(),
                "invalid_log_line",
            ),
            (
                br#"1.2.3.4 - - [01/Nov/2026:09:05:03 +0000] "GET / HTTP/1.1" 999 1 "-" "ua""#.to_vec(),
                "schema_violation",
            ),
            (
                br#"1.2.3.4 - - [01/Nov/2026:09:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "unterminated"#.to_vec(),
                "invalid_log_line",
            ),
        ];
        for (line, reason) in cases {
            let e = parse_line(&line, &fmt(), &r, "x".into()).unwrap_err();
            assert_eq!(e.reason(), reason, "{:?}: {e}", String::from_utf8_lossy(&line));
            assert!(crate::app::DLQ_REASONS.contains(&reason), "{reason} is not pre-declared as a metric label");
        }
    }

    #[test]
    fn invalid_routes_and_formats_are_refused_with_the_reason() {
        assert!(
            Routes::parse("[[route]]\nmethod = \"GET\"\npath = \"/\"\ntype = \"Bad\"").unwrap_err().contains("type")
        );
        assert!(
            Routes::parse("[[route]]\nmethod = \"GET\"\npath = \"/\"\nstatus = [\"9zz\"]\ntype = \"x\"")
                .unwrap_err()
                .contains("status")
        );
        assert!("session,colour".parse::<LogFormat>().unwrap_err().contains("colour"));
    }

    #[test]
    fn the_checked_in_access_log_parses_back_to_the_checked_in_events() {
        let sample =
            Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("../fixtures/sample");
        let logs = std::fs::read_to_string(sample.join("access.log")).unwrap();
        let events = std::fs::read_to_string(sample.join("events.jsonl")).unwrap();
        let (r, f) = (routes(), fmt());
        let mut n = 0;
        for (line, json) in logs.lines().zip(events.lines()) {
            let want: ClickEvent = serde_json::from_str(json).unwrap();
            let got = parse_line(line.as_bytes(), &f, &r, want.event_id.clone()).unwrap();
            assert_eq!(got.ts, want.ts - want.ts % 1000, "{line}");
            assert_eq!(
                (
                    &got.event_type,
                    got.outcome.or(Some(Outcome::Success)),
                    &got.session_id,
                    &got.user_id,
                    got.ip,
                    &got.device_id
                ),
                (
                    &want.event_type,
                    want.outcome.or(Some(Outcome::Success)),
                    &want.session_id,
                    &want.user_id,
                    want.ip,
                    &want.device_id
                ),
                "{line}"
            );
            assert_eq!(
                (got.amount, &got.payee_id, &got.country),
                (want.amount, &want.payee_id, &want.country),
                "{line}"
            );
            n += 1;
        }
        assert!(n > 500);
    }
}
