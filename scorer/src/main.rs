use clap::Parser;

// Per-event work allocates many small, short-lived buffers (records, JSON, Redis replies);
// under glibc malloc a profile at load spent about a quarter of the time in the allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = scorer::Config::parse();
    platform::init_tracing();
    let shutdown = platform::shutdown::on_signals();
    scorer::start(cfg, shutdown).await?.wait().await
}
