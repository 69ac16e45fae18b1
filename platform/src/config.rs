//! Settings shared by the services. Every field has a flag, an environment variable and a
//! default that fits the local stack (`scripts/stack up`).

use clap::Args;
use rdkafka::ClientConfig;

#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port, comma separated).
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,

    /// Extra librdkafka properties, `key=value`, repeatable or comma separated in the env var
    /// (for example `security.protocol=SASL_SSL`). Values are never logged.
    #[arg(
        long = "kafka-property",
        short = 'X',
        env = "KAFKA_PROPERTIES",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub properties: Vec<String>,

    /// Most input records processed as one micro-batch.
    #[arg(long, env = "BATCH_MAX", default_value_t = 500)]
    pub batch_max: usize,

    /// How long to wait for more records once a batch has its first one (ms).
    #[arg(long, env = "BATCH_LINGER_MS", default_value_t = 5)]
    pub batch_linger_ms: u64,

    /// Partition lanes: a micro-batch is split by input partition into this many lanes,
    /// processed concurrently (each with its own round trips); a partition always maps to the
    /// same lane, so per-partition order holds. 1 processes batches whole.
    #[arg(long, env = "PARTITION_LANES", default_value_t = 2)]
    pub lanes: usize,
}

impl KafkaArgs {
    /// Our defaults first, then the user's `-X` properties, so the user always wins.
    fn build(&self, defaults: &[(&str, &str)]) -> anyhow::Result<ClientConfig> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for p in &self.properties {
            let (k, v) = p.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("kafka property {:?} must be key=value", p.split('=').next().unwrap_or(""))
            })?;
            c.set(k.trim(), v.trim());
        }
        Ok(c)
    }

    /// A consumer that never commits on its own: the pipeline commits after the output is acked.
    pub fn consumer_config(&self, group_id: &str) -> anyhow::Result<ClientConfig> {
        self.build(&[
            ("group.id", group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            // Bounded prefetch: librdkafka's own queue is the first backpressure point.
            ("queued.max.messages.kbytes", "16384"),
            // Some brokers (tansu among them) hold a fetch for its full wait even when data
            // arrives, so the wait is paid on every hop: measured 850 ms → 50 ms p50
            // event→verdict when lowered from librdkafka's 500 ms. Raise it on Kafka proper.
            ("fetch.wait.max.ms", "10"),
            // Feeds the consumer-lag gauge.
            ("statistics.interval.ms", "5000"),
        ])
    }

    pub fn producer_config(&self) -> anyhow::Result<ClientConfig> {
        self.build(&[
            ("acks", "all"),
            ("linger.ms", "2"),
            // Bounded in-flight produce: the pipeline waits when this queue is full.
            ("queue.buffering.max.messages", "100000"),
            ("message.timeout.ms", "60000"),
        ])
    }
}

#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// Redis URL (`redis://` or `rediss://` for TLS). The password part is never logged.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379", hide_env_values = true)]
    pub redis_url: String,

    /// What to do while Redis does not answer: `wait` retries the micro-batch with backoff
    /// (nothing is decided without history; lag grows); `degrade` decides without history or
    /// session state and says so in every verdict's reasons. Never a silent allow.
    #[arg(long, env = "ON_REDIS_ERROR", value_enum, default_value_t = RedisPolicy::Wait)]
    pub on_redis_error: RedisPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RedisPolicy {
    Wait,
    Degrade,
}

/// Which click events are taken in. The enricher and the lake sink read the same settings
/// and decode through [`EventLimits::decode`], so that replaying the lake sees exactly the
/// events the live path took in.
#[derive(Debug, Clone, Copy, Args)]
pub struct EventLimits {
    /// Largest accepted event, in bytes; larger ones go to the dead-letter topic.
    #[arg(long, env = "MAX_EVENT_BYTES", default_value_t = models::event::DEFAULT_MAX_EVENT_BYTES)]
    pub max_event_bytes: usize,
    /// Largest lead, in seconds, of an event's `ts` over its Kafka record's timestamp. An event
    /// further ahead would cut short every window it touches: the enricher dead-letters it
    /// (`ts_ahead_of_record`) and the lake sink leaves it out. 0 turns the check off.
    #[arg(long, env = "MAX_TS_AHEAD_SECS", default_value_t = models::event::DEFAULT_MAX_TS_AHEAD_SECS)]
    pub max_ts_ahead_secs: u64,
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            max_event_bytes: models::event::DEFAULT_MAX_EVENT_BYTES,
            max_ts_ahead_secs: models::event::DEFAULT_MAX_TS_AHEAD_SECS,
        }
    }
}

impl EventLimits {
    /// A JSON click event from a record's payload, decoded, validated against the contract and
    /// checked against the record's time (`record_ms`).
    pub fn decode(
        &self,
        payload: &[u8],
        record_ms: Option<i64>,
    ) -> Result<models::ClickEvent, models::event::DecodeError> {
        let ev = models::ClickEvent::decode(payload, self.max_event_bytes)?;
        ev.check_clock(record_ms, self.max_ts_ahead_secs)?;
        Ok(ev)
    }
}

/// Shared topic names (defaults from the contract).
#[derive(Debug, Clone, Args)]
pub struct TopicArgs {
    /// Click events from the website (JSON, contract schema).
    #[arg(long, env = "CLICKSTREAM_TOPIC", default_value = "clickstream")]
    pub clickstream_topic: String,
    /// Raw access-log lines (reserved for web-log ingest).
    #[arg(long, env = "WEBLOGS_TOPIC", default_value = "weblogs")]
    pub weblogs_topic: String,
    /// Events with their features and list hits (enricher → scorer).
    #[arg(long, env = "ENRICHED_TOPIC", default_value = "clickstream.enriched")]
    pub enriched_topic: String,
    /// One verdict per input event.
    #[arg(long, env = "VERDICTS_TOPIC", default_value = "fraud.verdicts")]
    pub verdicts_topic: String,
    /// Verdicts that need a human, with context.
    #[arg(long, env = "ALERTS_TOPIC", default_value = "fraud.alerts")]
    pub alerts_topic: String,
    /// Fraud labels (analysts, chargebacks, the label API).
    #[arg(long, env = "LABELS_TOPIC", default_value = "fraud.labels")]
    pub labels_topic: String,
    /// Dead letters: the original bytes with the reason in headers.
    #[arg(long, env = "DLQ_TOPIC", default_value = "clickstream.dlq")]
    pub dlq_topic: String,
}

impl Default for TopicArgs {
    fn default() -> Self {
        TopicArgs {
            clickstream_topic: "clickstream".into(),
            weblogs_topic: "weblogs".into(),
            enriched_topic: "clickstream.enriched".into(),
            verdicts_topic: "fraud.verdicts".into(),
            alerts_topic: "fraud.alerts".into(),
            labels_topic: "fraud.labels".into(),
            dlq_topic: "clickstream.dlq".into(),
        }
    }
}

/// What every streaming service takes: Kafka, Redis, topics and the admin tokens.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Tokens for mutating endpoints, `name:token`, comma separated. Never printed.
    #[arg(long, env = "ADMIN_TOKENS", value_delimiter = ',', hide_env_values = true)]
    pub admin_tokens: Vec<String>,
    /// Admin API requests per second (bursts of twice that); more get 429.
    #[arg(long, env = "ADMIN_RATE_LIMIT", default_value_t = 20.0)]
    pub admin_rate_limit: f64,
}

/// Strips the password from a URL before it is shown anywhere.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// A Redis connection that reconnects on its own, failing a command within about a second
/// while Redis is down (redis-rs's default retries for ~6 s per command, which would stall a
/// degraded pipeline for no benefit; the pipeline has its own backoff).
pub async fn redis_connection(url: &str) -> redis::RedisResult<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_min_delay(std::time::Duration::from_millis(50))
        .set_max_delay(std::time::Duration::from_millis(400))
        .set_connection_timeout(Some(std::time::Duration::from_secs(1)))
        .set_response_timeout(Some(std::time::Duration::from_secs(5)));
    redis::aio::ConnectionManager::new_with_config(client, config).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(super::redact_url("redis://:secret@host:6379/0"), "redis://***@host:6379/0");
        assert_eq!(super::redact_url("redis://host:6379"), "redis://host:6379");
    }
}
