use clap::Parser;
use trainer::cli::{Cli, Cmd};
use trainer::sink::{Sink, SinkMetrics};

// Replay allocates small strings by the million (history keys, members); mimalloc takes about a
// third off replay time against glibc malloc (`cargo bench -p trainer --bench replay`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cmd = cli.cmd.resolved();
    platform::init_tracing();
    let shutdown = platform::shutdown::on_signals();
    let registry = platform::metrics::service_registry("trainer");
    let metrics = platform::trainer_status::TrainerMetrics::register(&registry)?;
    let sink_metrics = SinkMetrics::register(&registry)?;
    // The sink and the schedule stop on the signal themselves (the sink drains its buffers into
    // the lake first); a one-off command is cut short.
    let stops_itself = cmd.stops_itself();
    let ready = platform::http::Readiness::default();
    ready.set(true);
    let (_, http) =
        platform::http::serve(cli.http_addr, axum::Router::new(), registry, ready, shutdown.clone()).await?;
    let job = async {
        match cmd {
            Cmd::Train(cmd) => {
                let args = cmd.train;
                let args2 = args.clone();
                let out = tokio::task::spawn_blocking(move || trainer::run::train(&args2)).await?;
                metrics.set(&platform::trainer_status::read(&args.registry).unwrap_or_default());
                let out = out?;
                println!(
                    "model {} ({}): AP {:.3}, ROC AUC {:.3}, recall@1%FPR {:.3}; promoted: {} ({})\nreport: {}",
                    out.version,
                    args.registry.display(),
                    out.test.average_precision,
                    out.test.roc_auc,
                    out.test.recall_at_1pct_fpr,
                    out.promoted,
                    out.why,
                    out.dir.join("report.md").display()
                );
            }
            Cmd::Evaluate(args) => {
                let e = tokio::task::spawn_blocking(move || trainer::evaluate::evaluate(&args)).await??;
                println!("{}", trainer::evaluate::summary(&e));
            }
            Cmd::Sink(args) => {
                Sink::new(args, sink_metrics).run(shutdown.clone()).await?;
            }
            Cmd::Schedule(args) => {
                let reg = args.train.registry.clone();
                trainer::schedule::run(args, shutdown.clone(), || {
                    metrics.set(&platform::trainer_status::read(&reg).unwrap_or_default())
                })
                .await?;
            }
            Cmd::Export(args) => {
                let out = args.out.clone();
                let n = tokio::task::spawn_blocking(move || trainer::export::export(&args)).await??;
                println!("wrote {} train, {} validation and {} test rows to {}", n[0], n[1], n[2], out.display());
            }
            Cmd::Backfill(args) => {
                let n = trainer::run::backfill(&args).await?;
                println!("replayed {n} lake events into Redis");
            }
        }
        anyhow::Ok(())
    };
    let result = tokio::select! {
        r = job => r,
        _ = shutdown.cancelled(), if !stops_itself => {
            // Exit now: dropping the runtime would wait for the training thread, which could then
            // still promote. Promotion is one atomic rename, so the registry is consistent either way.
            eprintln!("interrupted: the run stops here; the registry holds whatever was promoted before");
            std::process::exit(130);
        }
    };
    shutdown.cancel();
    let _ = http.await;
    result
}
