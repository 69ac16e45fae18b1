//! The HTTP surface every service has: `/metrics`, `/healthz`, `/readyz`, plus its own routes.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Set by a service once it can do its job (connected, subscribed, model loaded).
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct Ops {
    registry: Registry,
    ready: Readiness,
}

async fn metrics(State(ops): State<Ops>) -> (StatusCode, String) {
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&ops.registry.gather(), &mut buf) {
        Ok(()) => (StatusCode::OK, String::from_utf8_lossy(&buf).into_owned()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn readyz(State(ops): State<Ops>) -> (StatusCode, &'static str) {
    if ops.ready.get() { (StatusCode::OK, "ready\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready\n") }
}

/// Binds `addr` (port 0 picks a free port), serves until `shutdown`, returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    routes: Router,
    registry: Registry,
    ready: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<anyhow::Result<()>>)> {
    let ops = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(Ops { registry, ready });
    let app = routes.merge(ops);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e} (set --http-addr/HTTP_ADDR to a free address)"))?;
    let local = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
        Ok(())
    });
    Ok((local, handle))
}
