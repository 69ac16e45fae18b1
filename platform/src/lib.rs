//! Plumbing every service shares, so each service's crate holds only its own logic.
//!
//! - [`config`]: clap argument groups for Kafka, Redis and HTTP (flags, env vars, defaults).
//! - [`pipeline`]: the at-least-once loop: consume a micro-batch, process it, produce the output,
//!   wait for the broker's acknowledgements, then commit the input offsets.
//! - [`http`]: `/metrics`, `/healthz`, `/readyz` plus a service's own routes.
//! - [`metrics`]: the metric names shared by all pipelines.
//! - [`registry`]: the model registry layout on disk (versions, atomic `current` pointer).
//! - [`shutdown`]: one cancellation token, cancelled by SIGINT/SIGTERM.
//! - [`trainer_status`]: the trainer's run history as a registry file and the metrics that mirror it.

pub mod auth;
pub mod config;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod registry;
pub mod shutdown;
pub mod trainer_status;

pub use pipeline::{InRecord, OutRecord, Processor};

/// Initialises tracing from `RUST_LOG` (default `info`), once per process.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}

/// Wall-clock now in epoch milliseconds (only for `decided_at`, latency metrics and expiry).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A started service: its HTTP address and the task that ends when the service does.
pub struct Running {
    pub http_addr: std::net::SocketAddr,
    pub shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Waits for every task of the service; the first failure cancels the others and is returned.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.map_err(|e| anyhow::anyhow!("service task panicked: {e}"))?
    }
}

/// Runs `tasks` until all end; the first that fails cancels `shutdown` (taking the rest down)
/// and its error is returned, so a failed task ends the process with a non-zero exit.
pub fn supervise(
    http_addr: std::net::SocketAddr,
    shutdown: tokio_util::sync::CancellationToken,
    mut tasks: tokio::task::JoinSet<anyhow::Result<()>>,
) -> Running {
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        let mut first_err = None;
        while let Some(res) = tasks.join_next().await {
            let err = match res {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(e) => anyhow::anyhow!("task panicked: {e}"),
            };
            tracing::error!(error = format!("{err:#}"), "a task failed; shutting down");
            token.cancel();
            first_err.get_or_insert(err);
        }
        first_err.map_or(Ok(()), Err)
    });
    Running { http_addr, shutdown, task }
}
