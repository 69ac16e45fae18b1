//! Per-session decision state in Redis: the action only escalates within a session (until an
//! operator lifts it) and expires on its own. Expiry is wall-clock: it is what the website sees.

use models::Action;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub action: Action,
    pub restrictions: Vec<String>,
    pub expires_at_ms: Option<i64>,
    /// The session has already alerted (alerts are de-duplicated per session).
    pub alerted: bool,
    pub updated_at_ms: i64,
    /// Set when an operator lifted the session's action: who and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_by: Option<String>,
}

impl SessionState {
    /// The state as it applies at `now` (an expired action is back to allow).
    pub fn effective(&self, now_ms: i64) -> (Action, Vec<String>, Option<i64>) {
        match self.expires_at_ms {
            Some(t) if t <= now_ms => (Action::Allow, Vec::new(), None),
            _ => (self.action, self.restrictions.clone(), self.expires_at_ms),
        }
    }
}

pub fn key(session_id: &str) -> String {
    models::history::key("sess", session_id)
}

fn recent_key(session_id: &str) -> String {
    models::history::key("sess:recent", session_id)
}

/// How many recent events per session an alert carries.
pub const RECENT_EVENTS: isize = 20;
const LIFT_AUDIT: &str = "fd:sess:lift:audit";

/// Per action other than allow, a sorted set of session ids scored by expiry: counting the
/// sessions a website is currently restricting costs one `ZCARD`, and entries leave on their
/// own (pruned by expiry at every count), so the sets stay as small as the active sessions.
fn active_key(action: Action) -> String {
    format!("fd:sess:active:{}", action.as_str())
}

/// How long a session's state is kept after its last update (memory bound).
const KEEP_MS: i64 = 24 * 3_600_000;

#[derive(Clone)]
pub struct SessionStore {
    conn: ConnectionManager,
}

impl SessionStore {
    pub fn new(conn: ConnectionManager) -> Self {
        SessionStore { conn }
    }

    /// Reads the states of `ids` in one round trip.
    pub async fn get_many(&self, ids: &[&str]) -> redis::RedisResult<HashMap<String, SessionState>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<String> = ids.iter().map(|s| key(s)).collect();
        let mut c = self.conn.clone();
        let vals: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
        Ok(ids
            .iter()
            .zip(vals)
            .filter_map(|(id, v)| v.and_then(|v| serde_json::from_str(&v).ok()).map(|s| (id.to_string(), s)))
            .collect())
    }

    /// Writes states and appends each session's new events to its bounded recent-events list,
    /// in one round trip. States are kept until their expiry (or a day).
    pub async fn put_many(
        &self,
        states: &HashMap<String, SessionState>,
        recent: &[(String, String)],
        now_ms: i64,
    ) -> redis::RedisResult<()> {
        if states.is_empty() && recent.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (id, s) in states {
            let keep = s.expires_at_ms.map(|t| (t - now_ms).max(0) + KEEP_MS).unwrap_or(KEEP_MS);
            pipe.cmd("SET").arg(key(id)).arg(serde_json::to_string(s).unwrap_or_default()).arg("PX").arg(keep).ignore();
            if let (true, Some(exp)) = (s.action > Action::Allow, s.expires_at_ms) {
                // An escalated session leaves the lower action's set.
                for a in Action::ALL.into_iter().filter(|a| *a > Action::Allow && *a != s.action) {
                    pipe.cmd("ZREM").arg(active_key(a)).arg(id).ignore();
                }
                pipe.cmd("ZADD").arg(active_key(s.action)).arg(exp).arg(id).ignore();
            }
        }
        for (id, event) in recent {
            let k = recent_key(id);
            pipe.cmd("RPUSH").arg(&k).arg(event).ignore();
            pipe.cmd("LTRIM").arg(&k).arg(-RECENT_EVENTS).arg(-1).ignore();
            pipe.cmd("PEXPIRE").arg(&k).arg(KEEP_MS).ignore();
        }
        let mut c = self.conn.clone();
        pipe.query_async::<()>(&mut c).await
    }

    /// The session's most recent events (oldest first), as stored JSON values.
    pub async fn recent(&self, ids: &[&str]) -> redis::RedisResult<HashMap<String, Vec<serde_json::Value>>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("LRANGE").arg(recent_key(id)).arg(0).arg(-1);
        }
        let mut c = self.conn.clone();
        let lists: Vec<Vec<String>> = pipe.query_async(&mut c).await?;
        Ok(ids
            .iter()
            .zip(lists)
            .map(|(id, l)| (id.to_string(), l.iter().filter_map(|e| serde_json::from_str(e).ok()).collect()))
            .collect())
    }

    /// An operator lifts a session: back to `allow`, no restrictions; later events may escalate
    /// it again. Audited with the operator's token name.
    pub async fn lift(&self, id: &str, actor: &str, reason: &str, now_ms: i64) -> redis::RedisResult<SessionState> {
        let prev = self.get(id).await?;
        let state = SessionState {
            action: Action::Allow,
            restrictions: Vec::new(),
            expires_at_ms: None,
            alerted: prev.as_ref().is_some_and(|p| p.alerted),
            updated_at_ms: now_ms,
            lifted_by: Some(actor.to_string()),
        };
        let audit = serde_json::json!({"at_ms": now_ms, "actor": actor, "session_id": id, "reason": reason,
            "previous": prev.as_ref().map(|p| p.action)});
        let mut c = self.conn.clone();
        redis::pipe()
            .cmd("SET")
            .arg(key(id))
            .arg(serde_json::to_string(&state).unwrap_or_default())
            .arg("PX")
            .arg(KEEP_MS)
            .ignore()
            .cmd("ZREM")
            .arg(active_key(Action::Challenge))
            .arg(id)
            .ignore()
            .cmd("ZREM")
            .arg(active_key(Action::Restrict))
            .arg(id)
            .ignore()
            .cmd("ZREM")
            .arg(active_key(Action::Block))
            .arg(id)
            .ignore()
            .cmd("LPUSH")
            .arg(LIFT_AUDIT)
            .arg(audit.to_string())
            .ignore()
            .cmd("LTRIM")
            .arg(LIFT_AUDIT)
            .arg(0)
            .arg(9_999)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(state)
    }

    /// How many sessions currently have each action other than allow (expired ones pruned).
    pub async fn count_active(&self, now_ms: i64) -> redis::RedisResult<Vec<(Action, u64)>> {
        let actions = Action::FLAGS;
        let mut pipe = redis::pipe();
        for a in &actions {
            pipe.cmd("ZREMRANGEBYSCORE").arg(active_key(*a)).arg("-inf").arg(now_ms).ignore();
            pipe.cmd("ZCARD").arg(active_key(*a));
        }
        let mut c = self.conn.clone();
        let counts: Vec<u64> = pipe.query_async(&mut c).await?;
        Ok(actions.into_iter().zip(counts).collect())
    }

    pub async fn get(&self, id: &str) -> redis::RedisResult<Option<SessionState>> {
        Ok(self.get_many(&[id]).await?.remove(id))
    }
}

/// Escalates `prev` with a new decision; returns the new state and whether this is the
/// session's first alert.
pub fn escalate(
    prev: Option<&SessionState>,
    action: Action,
    restrictions: &[String],
    ttl_ms: i64,
    alert_at: Action,
    now_ms: i64,
) -> (SessionState, bool) {
    let (prev_action, mut rs, prev_exp) =
        prev.map(|p| p.effective(now_ms)).unwrap_or((Action::Allow, Vec::new(), None));
    let alerted = prev.is_some_and(|p| p.alerted);
    let new_action = prev_action.max(action);
    for r in restrictions {
        if !rs.contains(r) {
            rs.push(r.clone());
        }
    }
    if new_action != Action::Restrict {
        rs.clear();
    }
    let expires = if action > Action::Allow { Some(prev_exp.unwrap_or(0).max(now_ms + ttl_ms)) } else { prev_exp };
    let first_alert = !alerted && new_action >= alert_at;
    (
        SessionState {
            action: new_action,
            restrictions: rs,
            expires_at_ms: if new_action == Action::Allow { None } else { expires },
            alerted: alerted || first_alert,
            updated_at_ms: now_ms,
            lifted_by: prev.and_then(|p| p.lifted_by.clone()),
        },
        first_alert,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_only_escalate_and_alert_once_then_expire() {
        let r = |s: &str| vec![s.to_string()];
        let (s1, a1) = escalate(None, Action::Restrict, &r("transfer_funds"), 1000, Action::Restrict, 0);
        assert!(a1);
        assert_eq!((s1.action, s1.expires_at_ms), (Action::Restrict, Some(1000)));
        let (s2, a2) = escalate(Some(&s1), Action::Allow, &[], 1000, Action::Restrict, 10);
        assert!(!a2, "alerts once per session");
        assert_eq!((s2.action, s2.restrictions.clone()), (Action::Restrict, r("transfer_funds")));
        let (s3, _) = escalate(Some(&s2), Action::Restrict, &r("add_payee"), 1000, Action::Restrict, 20);
        assert_eq!(s3.restrictions, vec!["transfer_funds", "add_payee"]);
        let (s4, _) = escalate(Some(&s3), Action::Allow, &[], 1000, Action::Restrict, 5000);
        assert_eq!((s4.action, s4.expires_at_ms), (Action::Allow, None), "expired restriction lapses");
    }
}
