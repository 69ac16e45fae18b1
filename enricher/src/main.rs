use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = enricher::Config::parse();
    platform::init_tracing();
    let shutdown = platform::shutdown::on_signals();
    enricher::start(cfg, shutdown).await?.wait().await
}
