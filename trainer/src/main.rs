use clap::{Parser, Subcommand};
use trainer::run::{BackfillArgs, TrainArgs};

#[derive(Parser)]
#[command(name = "trainer", version, about = "Trains, evaluates and promotes fraud models from the lake")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train on the lake, evaluate on a time-based holdout, register, promote if better.
    Train(TrainArgs),
    /// Replay the lake's events into Redis so live features start with full history.
    Backfill(BackfillArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    platform::init_tracing();
    match cli.cmd {
        Cmd::Train(args) => {
            let args2 = args.clone();
            let out = tokio::task::spawn_blocking(move || trainer::run::train(&args2)).await??;
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
        Cmd::Backfill(args) => {
            let n = trainer::run::backfill(&args).await?;
            println!("replayed {n} lake events into Redis");
        }
    }
    Ok(())
}
