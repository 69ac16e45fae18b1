//! Configuration, the batch processor, the session API and the wiring of the scorer's tasks.

use crate::policy::Policy;
use crate::registry::{self, ModelSlot, Pointer};
use crate::session::{self, SessionState, SessionStore};
use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use models::features::{FEATURES, feature_schema_hash};
use models::{Action, EnrichedEvent, Reason, Verdict};
use platform::auth::{ApiError, Tokens};
use platform::config::{RedisPolicy, ServiceArgs, TopicArgs};
use platform::http::Readiness;
use platform::metrics::{PipelineMetrics, latency_buckets};
use platform::pipeline::Pipeline;
use platform::{InRecord, OutRecord, Processor, Running};
use prometheus::{Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};
use rdkafka::producer::FutureProducer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Parser)]
#[command(name = "scorer", version, about = "Enriched events in; one verdict per event out, plus alerts")]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Address for /metrics, /healthz, /readyz and /v1/sessions.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:9102")]
    pub http_addr: SocketAddr,
    #[arg(long, env = "SCORER_GROUP", default_value = "scorer")]
    pub group_id: String,
    /// Model registry directory (the trainer writes it; `current` names the champion).
    #[arg(long, env = "MODEL_REGISTRY", default_value = "data/registry")]
    pub registry: PathBuf,
    /// Policy file (TOML): score bands, rules, restrictions, alert level.
    #[arg(long, env = "POLICY_FILE", default_value = "config/policy.toml")]
    pub policy: PathBuf,
    /// How often to check the registry and the policy file for changes (ms).
    #[arg(long, env = "RELOAD_INTERVAL_MS", default_value_t = 1000)]
    pub reload_interval_ms: u64,
}

const SERVICE: &str = "scorer";
/// Reason codes for a verdict decided on less than usual (never a silent allow).
pub const HISTORY_UNAVAILABLE: &str = "history_unavailable";
pub const SESSION_STATE_UNAVAILABLE: &str = "session_state_unavailable";
/// Every reason the scorer gives a dead letter (the `reason` label's values).
pub const DLQ_REASONS: &[&str] = &["feature_schema_mismatch", "invalid_enriched"];
pub const VERDICTS: &str = "fraud_verdicts_total";
pub const ALERTS: &str = "fraud_alerts_total";
pub const SCORE: &str = "fraud_score";
pub const EVENT_TO_VERDICT: &str = "fraud_event_to_verdict_seconds";
pub const MODEL_INFO: &str = "fraud_model_info";
pub const MODEL_RELOAD_ERRORS: &str = "fraud_model_reload_errors_total";
pub const REASONS: &str = "fraud_reasons_total";
pub const SHADOW_SCORE: &str = "fraud_shadow_score";
pub const SHADOW_DISAGREEMENTS: &str = "fraud_shadow_disagreements_total";
pub const LIFTS: &str = "fraud_session_lifts_total";
pub const LABELS_PUBLISHED: &str = "fraud_labels_published_total";
pub const MODEL_CREATED: &str = "fraud_model_created_timestamp_seconds";
pub const SESSIONS_ACTIVE: &str = "fraud_sessions_with_action";
pub const SESSIONS_STARTED: &str = "fraud_sessions_started_total";
pub const SESSION_ACTIONS: &str = "fraud_session_actions_total";
pub const ACTION_BUDGET: &str = "fraud_action_budget_ratio";

#[derive(Clone)]
pub struct ScorerMetrics {
    pub pipeline: PipelineMetrics,
    pub verdicts: IntCounterVec,
    pub alerts: IntCounter,
    pub score: Histogram,
    pub latency: Histogram,
    pub model_info: IntGaugeVec,
    pub reload_errors: IntCounter,
    pub reasons: IntCounterVec,
    pub shadow_score: Histogram,
    pub shadow_disagreements: IntCounterVec,
    pub lifts: IntCounter,
    pub labels: IntCounter,
    pub model_created: Gauge,
    pub sessions_active: IntGaugeVec,
    pub sessions_started: IntCounter,
    pub session_actions: IntCounterVec,
    pub action_budget: GaugeVec,
    pub trainer: platform::trainer_status::TrainerMetrics,
    pub redis: platform::metrics::RedisMetrics,
}

impl ScorerMetrics {
    pub fn register(r: &Registry) -> anyhow::Result<Self> {
        let m = ScorerMetrics {
            pipeline: PipelineMetrics::register(r)?,
            verdicts: IntCounterVec::new(Opts::new(VERDICTS, "Verdicts, by action"), &["action"])?,
            alerts: IntCounter::new(ALERTS, "Alerts raised (first per session)")?,
            score: Histogram::with_opts(
                HistogramOpts::new(SCORE, "Calibrated fraud scores")
                    .buckets((1..=20).map(|i| f64::from(i) * 0.05).collect()),
            )?,
            latency: Histogram::with_opts(
                HistogramOpts::new(
                    EVENT_TO_VERDICT,
                    "From the event reaching the broker to its verdict being produced",
                )
                .buckets(latency_buckets()),
            )?,
            model_info: IntGaugeVec::new(
                Opts::new(MODEL_INFO, "The champion model (value 1)"),
                &["version", "feature_schema"],
            )?,
            reload_errors: IntCounter::new(MODEL_RELOAD_ERRORS, "Promoted models refused at reload")?,
            reasons: IntCounterVec::new(Opts::new(REASONS, "Rule and list reasons in verdicts, by code"), &["code"])?,
            shadow_score: Histogram::with_opts(
                HistogramOpts::new(SHADOW_SCORE, "Calibrated scores of the shadowed challenger")
                    .buckets((1..=20).map(|i| f64::from(i) * 0.05).collect()),
            )?,
            shadow_disagreements: IntCounterVec::new(
                Opts::new(SHADOW_DISAGREEMENTS, "Events where the challenger's action differs from the champion's"),
                &["champion_action", "challenger_action"],
            )?,
            lifts: IntCounter::new(LIFTS, "Sessions lifted by an operator")?,
            labels: IntCounter::new(LABELS_PUBLISHED, "Labels accepted by POST /v1/labels and acknowledged")?,
            model_created: Gauge::new(MODEL_CREATED, "When the champion model was trained (Unix time)")?,
            sessions_active: IntGaugeVec::new(
                Opts::new(SESSIONS_ACTIVE, "Sessions whose current action is not allow (all instances, from Redis)"),
                &["action"],
            )?,
            sessions_started: IntCounter::new(SESSIONS_STARTED, "Sessions seen for the first time")?,
            session_actions: IntCounterVec::new(
                Opts::new(SESSION_ACTIONS, "Sessions that reached at least this action (each counted once per level)"),
                &["action"],
            )?,
            action_budget: GaugeVec::new(
                Opts::new(
                    ACTION_BUDGET,
                    "Share of legitimate sessions the policy lets each action reach (legit_share bands)",
                ),
                &["action"],
            )?,
            trainer: platform::trainer_status::TrainerMetrics::register(r)?,
            redis: platform::metrics::RedisMetrics::register(r, &["sessions_read", "sessions_write", "recent_events"])?,
        };
        for a in Action::FLAGS {
            m.session_actions.with_label_values(&[a.as_str()]);
        }
        r.register(Box::new(m.verdicts.clone()))?;
        r.register(Box::new(m.alerts.clone()))?;
        r.register(Box::new(m.score.clone()))?;
        r.register(Box::new(m.latency.clone()))?;
        r.register(Box::new(m.model_info.clone()))?;
        r.register(Box::new(m.reload_errors.clone()))?;
        r.register(Box::new(m.reasons.clone()))?;
        r.register(Box::new(m.shadow_score.clone()))?;
        r.register(Box::new(m.shadow_disagreements.clone()))?;
        r.register(Box::new(m.lifts.clone()))?;
        r.register(Box::new(m.labels.clone()))?;
        r.register(Box::new(m.model_created.clone()))?;
        r.register(Box::new(m.sessions_active.clone()))?;
        r.register(Box::new(m.sessions_started.clone()))?;
        r.register(Box::new(m.session_actions.clone()))?;
        r.register(Box::new(m.action_budget.clone()))?;
        for a in Action::ALL {
            m.verdicts.with_label_values(&[a.as_str()]);
            for b in Action::ALL.into_iter().filter(|b| *b != a) {
                m.shadow_disagreements.with_label_values(&[a.as_str(), b.as_str()]);
            }
        }
        Ok(m)
    }

    /// The reason codes a verdict can count before the first of them: the policy's rules and
    /// the codes for deciding on less than usual.
    pub fn init_reasons(&self, policy: &Policy) {
        let fixed = [HISTORY_UNAVAILABLE, SESSION_STATE_UNAVAILABLE];
        for code in policy.rules.iter().map(|r| r.code.as_str()).chain(fixed) {
            self.reasons.with_label_values(&[code]);
        }
    }
}

impl ScorerMetrics {
    /// Names the champion in `fraud_model_info` and stamps its training time (for model age).
    pub fn set_champion(&self, model: &models::ModelArtifact) {
        self.model_info.reset();
        self.model_info.with_label_values(&[&model.version, &model.feature_schema]).set(1);
        if let Some(ms) = models::parse_ts(&model.created_at) {
            self.model_created.set(ms as f64 / 1000.0);
        }
    }

    /// Publishes the policy's flag budgets (bands without one leave their action unset).
    pub fn set_budgets(&self, policy: &Policy) {
        self.action_budget.reset();
        for (action, share) in policy.budgets() {
            self.action_budget.with_label_values(&[action.as_str()]).set(share);
        }
    }

    /// Counts a session's first event, and each action level its state reached for the first
    /// time (`prev`: its state before this event, `None` for a new session): the live rate per
    /// action is `session_actions / sessions_started`, the figure a flag budget bounds. A
    /// session whose action expired and came back counts again, as the customer is bothered again.
    fn count_session(&self, prev: Option<&SessionState>, now: Action) {
        if prev.is_none() {
            self.sessions_started.inc();
        }
        let before = prev.map_or(Action::Allow, |p| p.action);
        for a in Action::FLAGS.into_iter().filter(|a| before < *a && now >= *a) {
            self.session_actions.with_label_values(&[a.as_str()]).inc();
        }
    }
}

/// The scorer's work on a micro-batch.
#[derive(Clone)]
pub struct Scorer {
    pub model: ModelSlot,
    /// A challenger scored beside the champion; its score is reported, never acted on.
    pub shadow: ModelSlot,
    pub policy: Arc<RwLock<Arc<Policy>>>,
    pub sessions: SessionStore,
    pub topics: TopicArgs,
    pub metrics: ScorerMetrics,
    /// Wait for Redis (retry the batch) or decide without session state.
    pub redis_policy: RedisPolicy,
    schema: String,
}

/// How many top feature contributions a verdict explains.
const TOP_FEATURES: usize = 3;

impl Processor for Scorer {
    async fn process(&mut self, batch: &[InRecord]) -> anyhow::Result<Vec<OutRecord>> {
        let model = self.model.get().context("no champion model loaded")?;
        let shadow = self.shadow.get().filter(|s| s.version != model.version);
        let policy = self.policy.read().unwrap_or_else(|e| e.into_inner()).clone();
        let thresholds = band_thresholds(&policy, &model);
        let shadow_thresholds = shadow.as_ref().map(|s| band_thresholds(&policy, s));
        let mut slots: Vec<Option<OutRecord>> = vec![None; batch.len()];
        let mut good: Vec<(usize, EnrichedEvent)> = Vec::with_capacity(batch.len());
        for (i, rec) in batch.iter().enumerate() {
            match serde_json::from_slice::<EnrichedEvent>(&rec.payload) {
                Ok(e) if e.feature_schema == self.schema => good.push((i, e)),
                Ok(e) => {
                    let msg = format!(
                        "features computed with schema {} but this scorer uses {}; deploy matching versions",
                        e.feature_schema, self.schema
                    );
                    slots[i] =
                        Some(OutRecord::dead_letter(&self.topics.dlq_topic, rec, "feature_schema_mismatch", &msg));
                }
                Err(e) => {
                    slots[i] =
                        Some(OutRecord::dead_letter(&self.topics.dlq_topic, rec, "invalid_enriched", &e.to_string()))
                }
            }
        }
        let ids: Vec<&str> = good.iter().map(|(_, e)| e.event.session_id.as_str()).collect();
        let degrade = self.redis_policy == RedisPolicy::Degrade;
        let (mut states, sessions_unavailable) =
            match self.metrics.redis.time("sessions_read", self.sessions.get_many(&ids)).await {
                Ok(states) => (states, false),
                Err(e) if degrade => {
                    tracing::warn!(error = %e, "Redis unavailable: deciding without session state");
                    (HashMap::new(), true)
                }
                Err(e) => return Err(anyhow::Error::new(e).context("reading session state")),
            };
        let now = platform::now_ms();
        let mut touched: HashMap<String, SessionState> = HashMap::new();
        let mut recent: Vec<(String, String)> = Vec::with_capacity(good.len());
        let mut alerts: Vec<(usize, serde_json::Value)> = Vec::new();
        for (i, e) in &good {
            let scored = model.score(&e.features);
            let hits: Vec<String> = e.list_hits.iter().map(|h| h.code()).collect();
            let decision = policy.decide(&thresholds, scored.score, &hits, &e.features.0);
            let sid = &e.event.session_id;
            let prev = states.get(sid);
            let (state, first_alert) = session::escalate(
                prev,
                decision.action,
                &decision.restrictions,
                decision.ttl_secs as i64 * 1000,
                policy.alert_at,
                now,
            );
            if !sessions_unavailable {
                // Without session state every event would look like a new session.
                self.metrics.count_session(prev, state.action);
            }
            let mut reasons = Vec::new();
            for h in &e.list_hits {
                reasons.push(Reason {
                    code: h.code(),
                    detail: Some(format!("{} ({})", h.value, h.reason)),
                    contribution: None,
                });
            }
            for code in &decision.rules {
                self.metrics.reasons.with_label_values(&[code]).inc();
                if !reasons.iter().any(|r| &r.code == code) {
                    reasons.push(Reason { code: code.clone(), detail: Some("policy rule".into()), contribution: None });
                }
            }
            // Decided on less than usual: say so (never a silent allow).
            for (missing, code, detail) in [
                (e.history_unavailable, HISTORY_UNAVAILABLE, "features computed without history: Redis did not answer"),
                (sessions_unavailable, SESSION_STATE_UNAVAILABLE, "session state not read: Redis did not answer"),
            ] {
                if missing {
                    self.metrics.reasons.with_label_values(&[code]).inc();
                    reasons.push(Reason { code: code.into(), detail: Some(detail.into()), contribution: None });
                }
            }
            if state.action > decision.action {
                reasons.push(Reason {
                    code: "session_escalated".into(),
                    detail: Some(format!("session already at {}", state.action.as_str())),
                    contribution: None,
                });
            }
            for (idx, c) in scored.contributions.iter().filter(|(_, c)| *c > 0.0).take(TOP_FEATURES) {
                let f = &FEATURES[*idx];
                reasons.push(Reason {
                    code: format!("feature:{}", f.name),
                    detail: Some(format!("{} = {}", f.name, e.features.0[*idx])),
                    contribution: Some((*c * 1000.0).round() / 1000.0),
                });
            }
            let shadow_scored = shadow.as_ref().zip(shadow_thresholds.as_ref()).map(|(m, t)| {
                let s = m.score(&e.features).score;
                let action = policy.decide(t, s, &hits, &e.features.0).action;
                self.metrics.shadow_score.observe(s);
                if action != decision.action {
                    self.metrics
                        .shadow_disagreements
                        .with_label_values(&[decision.action.as_str(), action.as_str()])
                        .inc();
                }
                (s, m.version.clone())
            });
            let verdict = Verdict {
                event_id: e.event.event_id.clone(),
                session_id: sid.clone(),
                user_id: e.event.user_id.clone(),
                ts: e.event.ts,
                decided_at: now,
                score: scored.score,
                action: state.action,
                restrictions: state.restrictions.clone(),
                expires_at: state.expires_at_ms,
                reasons,
                model_version: model.version.clone(),
                alert: first_alert,
                ingest_ts_ms: e.ingest_ts_ms,
                shadow_score: shadow_scored.as_ref().map(|s| s.0),
                shadow_model_version: shadow_scored.map(|s| s.1),
            };
            self.metrics.verdicts.with_label_values(&[state.action.as_str()]).inc();
            self.metrics.score.observe(scored.score);
            if let Some(t) = e.ingest_ts_ms {
                self.metrics.latency.observe((now - t).max(0) as f64 / 1000.0);
            }
            recent.push((sid.clone(), serde_json::to_string(&e.event)?));
            if first_alert {
                // An alert is the verdict itself (valid against the verdict schema) plus the
                // context an analyst needs: the features and the session's recent events.
                let mut alert = serde_json::to_value(&verdict)?;
                alert["features"] = serde_json::to_value(&e.features)?;
                alerts.push((*i, alert));
            }
            slots[*i] = Some(OutRecord::new(
                &self.topics.verdicts_topic,
                Some(sid.clone().into_bytes()),
                serde_json::to_vec(&verdict)?,
            ));
            states.insert(sid.clone(), state.clone());
            touched.insert(sid.clone(), state);
        }
        if !sessions_unavailable {
            match self.metrics.redis.time("sessions_write", self.sessions.put_many(&touched, &recent, now)).await {
                Ok(()) => {}
                Err(e) if degrade => tracing::warn!(error = %e, "Redis unavailable: session state not saved"),
                Err(e) => return Err(anyhow::Error::new(e).context("writing session state")),
            }
        }
        let mut out: Vec<OutRecord> = slots.into_iter().flatten().collect();
        if !alerts.is_empty() {
            let ids: Vec<&str> = alerts.iter().filter_map(|(_, a)| a["session_id"].as_str()).collect();
            let recent = match self.metrics.redis.time("recent_events", self.sessions.recent(&ids)).await {
                Ok(r) => r,
                Err(_) if degrade => HashMap::new(),
                Err(e) => return Err(anyhow::Error::new(e).context("reading recent session events")),
            };
            for (_, mut alert) in alerts {
                let sid = alert["session_id"].as_str().unwrap_or_default().to_string();
                alert["recent_events"] = serde_json::json!(recent.get(&sid).cloned().unwrap_or_default());
                self.metrics.alerts.inc();
                out.push(OutRecord::new(
                    &self.topics.alerts_topic,
                    Some(sid.into_bytes()),
                    serde_json::to_vec(&alert)?,
                ));
            }
        }
        Ok(out)
    }
}

/// Band thresholds for a model; a policy that cannot use the model was refused before it got
/// here, so failing now only logs and disables the score bands (rules still apply).
fn band_thresholds(policy: &Policy, model: &models::ModelArtifact) -> Vec<f64> {
    policy.thresholds(model).unwrap_or_else(|e| {
        tracing::error!(error = %e, "score bands disabled");
        vec![f64::INFINITY; policy.bands.len()]
    })
}

#[derive(Clone)]
struct ApiState {
    sessions: SessionStore,
    tokens: Tokens,
    producer: FutureProducer,
    labels_topic: String,
    metrics: ScorerMetrics,
    produce_metrics: PipelineMetrics,
}

fn check_session_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 128 {
        return Err(ApiError::BadRequest("session_id must have 1..=128 characters".into()));
    }
    Ok(())
}

async fn get_session(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    check_session_id(&id)?;
    let state = s.sessions.get(&id).await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let now = platform::now_ms();
    let (action, restrictions, expires) =
        state.map(|st| st.effective(now)).unwrap_or((Action::Allow, Vec::new(), None));
    Ok(Json(serde_json::json!({
        "session_id": id,
        "action": action,
        "restrictions": restrictions,
        "expires_at": expires.map(models::format_ts),
    })))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LiftBody {
    #[serde(default)]
    reason: String,
}

/// An operator lifts a session's restriction (authenticated, audited).
async fn lift_session(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Option<Json<LiftBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let actor = s.tokens.authorize(&headers)?;
    check_session_id(&id)?;
    let mut reason = body.map(|b| b.0.reason).unwrap_or_default();
    reason.truncate(512);
    let state = s
        .sessions
        .lift(&id, &actor, &reason, platform::now_ms())
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    s.metrics.lifts.inc();
    tracing::info!(session_id = %id, %actor, "session lifted by an operator");
    Ok(Json(serde_json::json!({"session_id": id, "action": state.action, "lifted_by": actor})))
}

/// Accepts a label (contract schema) and publishes it to the labels topic, keyed by user.
async fn post_label(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(axum::http::StatusCode, Json<serde_json::Value>), ApiError> {
    s.tokens.authorize(&headers)?;
    let label = models::Label::decode(&body).map_err(ApiError::BadRequest)?;
    let payload = serde_json::to_vec(&label).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let record = OutRecord::new(&s.labels_topic, Some(label.user_id.clone().into_bytes()), payload);
    platform::pipeline::produce_all(&s.producer, &[record], &s.produce_metrics)
        .await
        .map_err(|e| ApiError::Unavailable(format!("{e:#}")))?;
    s.metrics.labels.inc();
    Ok((axum::http::StatusCode::ACCEPTED, Json(serde_json::json!({"label_id": label.label_id, "published": true}))))
}

/// Loads the policy and champion model, connects, and starts the pipeline, the watchers and
/// the HTTP server.
pub async fn start(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let registry = platform::metrics::service_registry(SERVICE);
    let metrics = ScorerMetrics::register(&registry)?;
    let policy = Policy::load(&cfg.policy)?;
    let model = platform::registry::load_current(&cfg.registry)?;
    policy.thresholds(&model).with_context(|| format!("policy {} cannot use the champion", cfg.policy.display()))?;
    metrics.set_champion(&model);
    metrics.set_budgets(&policy);
    tracing::info!(version = %model.version, schema = %model.feature_schema, "champion model loaded");
    let champion = ModelSlot::new(model);
    let shadow = ModelSlot::default();
    let redis_shown = platform::config::redact_url(&cfg.service.redis.redis_url);
    let conn = platform::config::redis_connection(&cfg.service.redis.redis_url)
        .await
        .with_context(|| format!("connecting to Redis at {redis_shown} (set --redis-url / REDIS_URL)"))?;
    let sessions = SessionStore::new(conn);
    let sessions_for_count = sessions.clone();
    let ready = Readiness::default();
    let producer: FutureProducer =
        cfg.service.kafka.producer_config()?.create().context("creating the label producer")?;
    let api = ApiState {
        sessions: sessions.clone(),
        tokens: Tokens::parse(&cfg.service.admin_tokens),
        producer,
        labels_topic: cfg.service.topics.labels_topic.clone(),
        metrics: metrics.clone(),
        produce_metrics: metrics.pipeline.clone(),
    };
    // The website's session check is the hot path and is not limited; operator endpoints are.
    let admin =
        Router::new().route("/v1/sessions/{session_id}/lift", post(lift_session)).route("/v1/labels", post(post_label));
    let routes = Router::new()
        .route("/v1/sessions/{session_id}", get(get_session))
        .merge(platform::auth::RateLimit::per_second(cfg.service.admin_rate_limit).apply(admin))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .with_state(api);
    let (http_addr, http) =
        platform::http::serve(cfg.http_addr, routes, registry, ready.clone(), shutdown.clone()).await?;
    let pipeline = Pipeline::new(
        &cfg.service.kafka,
        &cfg.group_id,
        &[&cfg.service.topics.enriched_topic],
        metrics.pipeline.clone(),
    )?;
    let t = &cfg.service.topics;
    metrics.pipeline.init_series(
        &[&t.enriched_topic],
        &[&t.verdicts_topic, &t.alerts_topic, &t.dlq_topic],
        DLQ_REASONS,
    );
    metrics.init_reasons(&policy);
    let policy = Arc::new(RwLock::new(Arc::new(policy)));
    let scorer = Scorer {
        model: champion.clone(),
        shadow: shadow.clone(),
        policy: policy.clone(),
        sessions,
        topics: cfg.service.topics.clone(),
        metrics: metrics.clone(),
        redis_policy: cfg.service.redis.on_redis_error,
        schema: feature_schema_hash(),
    };
    let every = Duration::from_millis(cfg.reload_interval_ms.max(50));
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(async move { http.await? });
    let m = metrics.clone();
    let p = policy.clone();
    tasks.spawn(registry::watch(
        cfg.registry.clone(),
        Pointer::Champion,
        champion.clone(),
        move |model| {
            let policy = p.read().unwrap_or_else(|e| e.into_inner()).clone();
            policy.thresholds(model)?;
            m.set_champion(model);
            Ok(())
        },
        metrics.reload_errors.clone(),
        every,
        shutdown.clone(),
    ));
    let p = policy.clone();
    tasks.spawn(registry::watch(
        cfg.registry.clone(),
        Pointer::Challenger,
        shadow,
        move |m| Ok(p.read().unwrap_or_else(|e| e.into_inner()).thresholds(m).map(|_| ())?),
        metrics.reload_errors.clone(),
        every,
        shutdown.clone(),
    ));
    tasks.spawn(platform::trainer_status::watch(
        cfg.registry.clone(),
        metrics.trainer.clone(),
        every.max(Duration::from_secs(1)),
        shutdown.clone(),
    ));
    tasks.spawn(count_sessions(sessions_for_count, metrics.sessions_active.clone(), shutdown.clone()));
    tasks.spawn(watch_policy(cfg.policy.clone(), policy, champion, metrics.clone(), every, shutdown.clone()));
    let token = shutdown.clone();
    tasks.spawn(async move { pipeline.run(scorer, ready, token).await });
    tracing::info!(%http_addr, brokers = %cfg.service.kafka.brokers, redis = %redis_shown, "scorer started");
    Ok(platform::supervise(http_addr, shutdown, tasks))
}

/// Refreshes the count of sessions with an action other than allow every few seconds. Redis
/// errors are logged and retried (the gauge keeps its last value; the pipeline has its own
/// dependency handling).
async fn count_sessions(sessions: SessionStore, gauge: IntGaugeVec, shutdown: CancellationToken) -> anyhow::Result<()> {
    loop {
        match sessions.count_active(platform::now_ms()).await {
            Ok(counts) => {
                for (action, n) in counts {
                    gauge.with_label_values(&[action.as_str()]).set(n as i64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot count active sessions"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(5)) => {},
        }
    }
}

/// Reloads the policy when its file changes; an invalid edit is refused and logged.
async fn watch_policy(
    path: PathBuf,
    policy: Arc<RwLock<Arc<Policy>>>,
    champion: ModelSlot,
    metrics: ScorerMetrics,
    every: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stamp = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut last = stamp(&path);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {},
        }
        let now = stamp(&path);
        if now != last {
            last = now;
            let loaded = Policy::load(&path).map_err(anyhow::Error::from).and_then(|p| match champion.get() {
                Some(m) => p.thresholds(&m).map(|_| p).map_err(Into::into),
                None => Ok(p),
            });
            match loaded {
                Ok(p) => {
                    tracing::info!(path = %path.display(), "policy reloaded");
                    metrics.set_budgets(&p);
                    *policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
                }
                Err(e) => {
                    tracing::error!(error = %e, "refusing the edited policy; keeping the previous one")
                }
            }
        }
    }
}
