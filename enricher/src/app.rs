//! Configuration, the batch processor and the wiring of the enricher's tasks.

use crate::admin::{self, AdminState};
use crate::lists::{self, ListCache, ListStore};
use crate::store::{HistoryStore, RedisStore};
use anyhow::Context;
use clap::Parser;
use models::features::{self, feature_schema_hash};
use models::{ClickEvent, EnrichedEvent};
use platform::config::{EventLimits, RedisPolicy, ServiceArgs, TopicArgs};
use platform::http::Readiness;
use platform::metrics::{PipelineMetrics, RedisMetrics};
use platform::pipeline::Pipeline;
use platform::{InRecord, OutRecord, Processor, Running};
use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Parser)]
#[command(name = "enricher", version, about = "Click events in; features and list hits out")]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Address for /metrics, /healthz, /readyz and the lists API.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:9101")]
    pub http_addr: SocketAddr,
    /// Kafka consumer group.
    #[arg(long, env = "ENRICHER_GROUP", default_value = "enricher")]
    pub group_id: String,
    /// Routes file for raw access-log lines on the weblogs topic (method + path + status →
    /// event type and outcome).
    #[arg(long, env = "ROUTES_FILE", default_value = "config/routes.toml")]
    pub routes: std::path::PathBuf,
    /// Extra quoted fields after the combined log format, in order (session, device, country,
    /// user, ignore), comma separated; empty for plain combined format.
    #[arg(long, env = "LOG_FORMAT", default_value = "session,device,country")]
    pub log_format: crate::weblog::LogFormat,
    #[command(flatten)]
    pub limits: EventLimits,
}

const SERVICE: &str = "enricher";
/// Every reason the enricher gives a dead letter (the `reason` label's values).
pub const DLQ_REASONS: &[&str] = &[
    "oversize",
    "invalid_json",
    "schema_violation",
    "invalid_encoding",
    "invalid_log_line",
    "ts_ahead_of_record",
    "invalid_label",
    "label_not_applied",
];
pub const LIST_HITS: &str = "fraud_list_hits_total";
pub const LIST_ENTRIES: &str = "fraud_list_entries";
pub const DEGRADED: &str = "fraud_events_without_history_total";

#[derive(Clone)]
pub struct EnricherMetrics {
    pub pipeline: PipelineMetrics,
    pub list_hits: IntCounterVec,
    pub list_entries: IntGaugeVec,
    pub redis: RedisMetrics,
    pub degraded: IntCounter,
}

impl EnricherMetrics {
    pub fn register(r: &Registry) -> anyhow::Result<Self> {
        let m = EnricherMetrics {
            pipeline: PipelineMetrics::register(r)?,
            list_hits: IntCounterVec::new(Opts::new(LIST_HITS, "List hits, by list and kind"), &["list", "kind"])?,
            list_entries: IntGaugeVec::new(Opts::new(LIST_ENTRIES, "Entries per list in the cache"), &["list"])?,
            redis: RedisMetrics::register(r, &["history"])?,
            degraded: IntCounter::new(DEGRADED, "Events enriched without history because Redis did not answer")?,
        };
        r.register(Box::new(m.list_hits.clone()))?;
        r.register(Box::new(m.degraded.clone()))?;
        r.register(Box::new(m.list_entries.clone()))?;
        // Every list and kind, so that a panel or a rule on hits reads 0 before the first one.
        for list in crate::lists::LIST_NAMES {
            m.list_entries.with_label_values(&[list]);
            for kind in crate::lists::KINDS {
                m.list_hits.with_label_values(&[list, kind]);
            }
        }
        Ok(m)
    }
}

/// The enricher's work on a micro-batch: decode, one history round trip, features, list hits.
#[derive(Clone)]
pub struct Enricher<S> {
    pub store: S,
    pub lists: ListCache,
    pub topics: TopicArgs,
    /// Which events are taken in; the rest are dead letters.
    pub limits: EventLimits,
    pub metrics: EnricherMetrics,
    /// How raw access-log lines become events.
    pub weblog: (crate::weblog::LogFormat, crate::weblog::Routes),
    /// Wait for Redis (retry the batch) or enrich without history.
    pub redis_policy: RedisPolicy,
    schema: String,
}

impl<S: HistoryStore> Enricher<S> {
    pub fn new(store: S, lists: ListCache, topics: TopicArgs, limits: EventLimits, metrics: EnricherMetrics) -> Self {
        Enricher {
            store,
            lists,
            topics,
            limits,
            metrics,
            weblog: Default::default(),
            schema: feature_schema_hash(),
            redis_policy: RedisPolicy::Wait,
        }
    }

    /// A JSON click event, or a raw log line from the weblogs topic, as an event or an error.
    fn decode(&self, rec: &InRecord) -> Result<ClickEvent, (&'static str, String)> {
        if rec.topic == self.topics.weblogs_topic {
            let id = format!("wl-{}-{}", rec.partition, rec.offset);
            let ev = crate::weblog::parse_line(&rec.payload, &self.weblog.0, &self.weblog.1, id)
                .map_err(|e| (e.reason(), e.to_string()))?;
            ev.check_clock(rec.timestamp_ms, self.limits.max_ts_ahead_secs).map_err(|e| (e.reason(), e.to_string()))?;
            Ok(ev)
        } else {
            self.limits.decode(&rec.payload, rec.timestamp_ms).map_err(|e| (e.reason(), e.to_string()))
        }
    }
}

impl<S: HistoryStore> Enricher<S> {
    /// Applies the batch's labels to the history before its events are enriched. Without
    /// Redis, under `--on-redis-error degrade`, they go to the dead-letter topic rather than
    /// stall the events (the lake sink keeps them too, and `trainer backfill` replays them).
    async fn feed_labels(
        &self,
        batch: &[InRecord],
        labels: &[(usize, models::Label)],
        slots: &mut [Option<OutRecord>],
    ) -> anyhow::Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        let only: Vec<&models::Label> = labels.iter().map(|(_, l)| l).collect();
        match self.metrics.redis.time("history", crate::store::apply_labels(&self.store, &only)).await {
            Ok(()) => Ok(()),
            Err(e) if self.redis_policy == RedisPolicy::Degrade => {
                tracing::warn!(error = %e, labels = labels.len(), "Redis unavailable: labels dead-lettered");
                for (i, _) in labels {
                    let error = format!("label not fed back into the history: {e}");
                    slots[*i] =
                        Some(OutRecord::dead_letter(&self.topics.dlq_topic, &batch[*i], "label_not_applied", &error));
                }
                Ok(())
            }
            Err(e) => Err(anyhow::Error::new(e).context("feeding labels back into the history")),
        }
    }
}

/// What each event's operations return on an empty history (every event on its own), for
/// deciding without Redis.
fn without_history(plans: &[features::Plan]) -> Vec<models::history::OpResult> {
    let mut out = Vec::with_capacity(plans.iter().map(features::Plan::len).sum());
    for plan in plans {
        let mut empty = models::history::MemoryHistory::new();
        out.extend(plan.ops().map(|op| empty.apply(op)));
    }
    out
}

impl<S: HistoryStore> Processor for Enricher<S> {
    async fn process(&mut self, batch: &[InRecord]) -> anyhow::Result<Vec<OutRecord>> {
        let mut out = Vec::with_capacity(batch.len());
        // Decode everything first; bad input becomes a dead letter in its place.
        let mut decoded: Vec<(usize, ClickEvent)> = Vec::with_capacity(batch.len());
        let mut slots: Vec<Option<OutRecord>> = Vec::with_capacity(batch.len());
        // Labels from the labels topic produce nothing: they feed the history (below).
        let mut labels: Vec<(usize, models::Label)> = Vec::new();
        for (i, rec) in batch.iter().enumerate() {
            if rec.topic == self.topics.labels_topic {
                slots.push(match models::Label::decode(&rec.payload) {
                    Ok(l) => {
                        labels.push((i, l));
                        None
                    }
                    Err(e) => Some(OutRecord::dead_letter(&self.topics.dlq_topic, rec, "invalid_label", &e)),
                });
                continue;
            }
            match self.decode(rec) {
                Ok(ev) => {
                    decoded.push((i, ev));
                    slots.push(None);
                }
                Err((reason, error)) => {
                    slots.push(Some(OutRecord::dead_letter(&self.topics.dlq_topic, rec, reason, &error)))
                }
            }
        }
        self.feed_labels(batch, &labels, &mut slots).await?;
        let texts: Vec<_> = decoded.iter().map(|(_, ev)| features::Texts::of(ev)).collect();
        let (plans, ops) = features::plan_batch(decoded.iter().map(|(_, ev)| ev), &texts);
        let (results, history_unavailable) = match self.metrics.redis.time("history", self.store.execute(&ops)).await {
            Ok(r) => (r, false),
            Err(e) if self.redis_policy == RedisPolicy::Degrade => {
                tracing::warn!(error = %e, events = plans.len(), "Redis unavailable: enriching without history");
                self.metrics.degraded.inc_by(plans.len() as u64);
                (without_history(&plans), true)
            }
            Err(e) => return Err(anyhow::Error::new(e).context("history round trip")),
        };
        let vectors = features::compute_batch(decoded.iter().map(|(_, ev)| ev), &plans, &results);
        // The plans borrow the events, which move into the enriched events below.
        drop((plans, ops));
        let lists = self.lists.get();
        let now = platform::now_ms();
        for ((i, ev), fv) in decoded.into_iter().zip(vectors) {
            let list_hits = lists.hits(&ev, now);
            for h in &list_hits {
                self.metrics.list_hits.with_label_values(&[&h.list, &h.kind]).inc();
            }
            let enriched = EnrichedEvent {
                history_unavailable,
                features: fv,
                feature_schema: self.schema.clone(),
                list_hits,
                ingest_ts_ms: batch[i].timestamp_ms,
                event: ev,
            };
            let payload = serde_json::to_vec(&enriched).context("encoding an enriched event")?;
            slots[i] = Some(OutRecord::new(
                &self.topics.enriched_topic,
                Some(enriched.event.session_id.into_bytes()),
                payload,
            ));
        }
        out.extend(slots.into_iter().flatten());
        Ok(out)
    }
}

/// Connects to Redis and Kafka, starts the pipeline, the list refresher and the HTTP server.
pub async fn start(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let registry = platform::metrics::service_registry(SERVICE);
    let metrics = EnricherMetrics::register(&registry)?;
    let redis_shown = platform::config::redact_url(&cfg.service.redis.redis_url);
    let store = RedisStore::connect(&cfg.service.redis.redis_url)
        .await
        .with_context(|| format!("connecting to Redis at {redis_shown} (set --redis-url / REDIS_URL)"))?;
    let list_store = ListStore::new(store.connection());
    let cache = ListCache::default();
    // Load the lists before consuming, so the first events already see them.
    cache.set(list_store.load().await.context("loading blacklists and whitelists from Redis")?);
    let ready = Readiness::default();
    let routes = platform::auth::RateLimit::per_second(cfg.service.admin_rate_limit).apply(admin::routes(AdminState {
        store: list_store.clone(),
        tokens: platform::auth::Tokens::parse(&cfg.service.admin_tokens),
    }));
    let (http_addr, http) =
        platform::http::serve(cfg.http_addr, routes, registry, ready.clone(), shutdown.clone()).await?;
    let log_routes = crate::weblog::Routes::load(&cfg.routes)?;
    let topics = [
        cfg.service.topics.clickstream_topic.as_str(),
        cfg.service.topics.weblogs_topic.as_str(),
        cfg.service.topics.labels_topic.as_str(),
    ];
    let pipeline = Pipeline::new(&cfg.service.kafka, &cfg.group_id, &topics, metrics.pipeline.clone())?;
    let outputs = [cfg.service.topics.enriched_topic.as_str(), cfg.service.topics.dlq_topic.as_str()];
    metrics.pipeline.init_series(&topics, &outputs, DLQ_REASONS);
    let mut enricher = Enricher::new(store, cache.clone(), cfg.service.topics.clone(), cfg.limits, metrics.clone());
    enricher.weblog = (cfg.log_format.clone(), log_routes);
    enricher.redis_policy = cfg.service.redis.on_redis_error;
    tracing::info!(%http_addr, brokers = %cfg.service.kafka.brokers, redis = %redis_shown, schema = %feature_schema_hash(), "enricher started");
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(async move { http.await? });
    tasks.spawn(lists::refresh_loop(list_store, cache, metrics.list_entries.clone(), shutdown.clone()));
    let token = shutdown.clone();
    tasks.spawn(async move { pipeline.run(enricher, ready, token).await });
    Ok(platform::supervise(http_addr, shutdown, tasks))
}
