use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = scorer::Config::parse();
    platform::init_tracing();
    let shutdown = platform::shutdown::on_signals();
    scorer::start(cfg, shutdown).await?.wait().await
}
