//! `/v1/lists`: add, remove and list blacklist/whitelist entries (bearer token required for
//! changes; every change is audited with the token's name).

use crate::lists::{Entry, ListError, ListStore, canonical};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{delete, get};
use axum::{Json, Router};
use platform::auth::{ApiError, Tokens};
use serde::Deserialize;

#[derive(Clone)]
pub struct AdminState {
    pub store: ListStore,
    pub tokens: Tokens,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    value: String,
    #[serde(default)]
    reason: String,
    /// RFC 3339 time after which the entry no longer applies.
    #[serde(default)]
    expires_at: Option<String>,
}

fn list_err(e: ListError) -> ApiError {
    match e {
        ListError::Redis(e) => ApiError::Unavailable(e.to_string()),
        other => ApiError::BadRequest(other.to_string()),
    }
}

fn check_list(list: &str) -> Result<(), ApiError> {
    if crate::lists::LIST_NAMES.contains(&list) { Ok(()) } else { Err(list_err(ListError::List(list.into()))) }
}

async fn add(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path((list, kind)): Path<(String, String)>,
    Json(body): Json<NewEntry>,
) -> Result<Json<Entry>, ApiError> {
    let actor = s.tokens.authorize(&headers)?;
    check_list(&list)?;
    let value = canonical(&kind, &body.value).map_err(list_err)?;
    let expires_at_ms = match &body.expires_at {
        Some(t) => {
            Some(models::parse_ts(t).ok_or_else(|| ApiError::BadRequest(format!("expires_at {t:?} is not RFC 3339")))?)
        }
        None => None,
    };
    let mut reason = body.reason;
    reason.truncate(512);
    let entry =
        Entry { list, kind, value, reason, added_by: actor.clone(), added_at_ms: platform::now_ms(), expires_at_ms };
    s.store.upsert(&entry, &actor).await.map_err(list_err)?;
    Ok(Json(entry))
}

async fn remove(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path((list, kind, value)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let actor = s.tokens.authorize(&headers)?;
    check_list(&list)?;
    let value = canonical(&kind, &value).map_err(list_err)?;
    if s.store.remove(&list, &kind, &value, &actor).await.map_err(list_err)? {
        Ok(Json(serde_json::json!({"removed": true})))
    } else {
        Err(ApiError::NotFound(format!("{list}/{kind}/{value} is not listed")))
    }
}

async fn list_all(State(s): State<AdminState>, headers: HeaderMap) -> Result<Json<serde_json::Value>, ApiError> {
    s.tokens.authorize(&headers)?;
    let (version, entries) = s.store.entries().await.map_err(list_err)?;
    Ok(Json(serde_json::json!({"version": version, "entries": entries})))
}

async fn audit(State(s): State<AdminState>, headers: HeaderMap) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    s.tokens.authorize(&headers)?;
    Ok(Json(s.store.audit(1000).await.map_err(list_err)?))
}

pub fn routes(state: AdminState) -> Router {
    Router::new()
        .route("/v1/lists", get(list_all))
        .route("/v1/lists/audit", get(audit))
        .route("/v1/lists/{list}/{kind}", axum::routing::post(add))
        .route("/v1/lists/{list}/{kind}/{value}", delete(remove))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .with_state(state)
}
