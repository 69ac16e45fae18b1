//! The `trainer` command line. Kept in the library so that tests parse it as the binary does.

use crate::evaluate::EvaluateArgs;
use crate::export::ExportArgs;
use crate::run::{BackfillArgs, TrainArgs};
use crate::schedule::ScheduleArgs;
use crate::sink::SinkArgs;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "trainer", version, about = "Trains, evaluates and promotes fraud models from the lake")]
pub struct Cli {
    /// Address for /metrics, /healthz and /readyz while the command runs.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:9103", global = true)]
    pub http_addr: std::net::SocketAddr,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Train on the lake, evaluate on a time-based holdout, register, promote if better; with
    /// `--schedule`, compact the lake and do so on a cron schedule.
    Train(TrainCmd),
    /// Score a registered model on the lake's newest window whose labels are in (drift, another
    /// site's history, two versions side by side), without registering anything.
    Evaluate(EvaluateArgs),
    /// Replay the lake's events into Redis so live features start with full history.
    Backfill(BackfillArgs),
    /// Write the training matrix (train, validation and test rows with labels, weights and raw
    /// features) as CSV, to compare our trees with another library on the same data.
    Export(ExportArgs),
    /// Run as the lake sink: write the event, feature, verdict and label topics into the lake.
    Sink(SinkArgs),
    /// Compact the lake and retrain on a cron schedule (runs never overlap).
    Schedule(ScheduleArgs),
}

/// `trainer train`: one run, or runs on a schedule. The contract names the schedule
/// `--schedule`; `trainer schedule --cron` is the same loop under its own name.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainCmd {
    #[command(flatten)]
    pub train: TrainArgs,
    /// Instead of one run, compact and train on this cron schedule (UTC; crontab's five fields,
    /// e.g. "0 3 * * *"), as `trainer schedule` does.
    #[arg(long, env = "TRAIN_SCHEDULE", value_parser = crate::schedule::cron_arg)]
    pub schedule: Option<String>,
    /// With `--schedule`: also run once right away.
    #[arg(long, env = "RUN_AT_START", default_value_t = false)]
    pub run_now: bool,
}

impl Cmd {
    /// The command to run: `train --schedule` is `schedule`.
    pub fn resolved(self) -> Cmd {
        match self {
            Cmd::Train(TrainCmd { train, schedule: Some(cron), run_now }) => {
                Cmd::Schedule(ScheduleArgs { cron, run_now, train })
            }
            other => other,
        }
    }

    /// Whether the command runs until told to stop and then stops by itself (the sink drains its
    /// buffers, a schedule finishes its run), rather than being cut short on a signal.
    pub fn stops_itself(&self) -> bool {
        matches!(self, Cmd::Sink(_) | Cmd::Schedule(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("trainer").chain(args.iter().copied()))
    }

    #[test]
    fn train_runs_once_unless_given_the_contracts_schedule_flag() {
        let once = parse(&["train", "--lake", "l", "--registry", "r"]).unwrap().cmd.resolved();
        assert!(matches!(once, Cmd::Train(TrainCmd { schedule: None, .. })), "{once:?}");
        assert!(!once.stops_itself(), "a one-off run is cut short on a signal");

        let args = ["train", "--lake", "l", "--registry", "r", "--schedule", "0 3 * * *", "--run-now"];
        let cmd = parse(&args).unwrap().cmd.resolved();
        let Cmd::Schedule(s) = &cmd else { panic!("train --schedule runs the schedule: {cmd:?}") };
        assert_eq!((s.cron.as_str(), s.run_now), ("0 3 * * *", true));
        assert_eq!(s.train.registry, std::path::PathBuf::from("r"));
        assert!(cmd.stops_itself(), "a schedule finishes its run on a signal");
    }

    #[test]
    fn the_schedule_command_takes_schedule_as_well_as_cron() {
        for flag in ["--cron", "--schedule"] {
            let cli = parse(&["schedule", flag, "*/5 * * * *"]).unwrap();
            let Cmd::Schedule(s) = &cli.cmd else { panic!("schedule parses as schedule: {cli:?}") };
            assert_eq!(s.cron, "*/5 * * * *", "{flag}");
        }
    }

    #[test]
    fn a_schedule_that_is_not_cron_is_refused_when_parsed_with_what_to_write_instead() {
        for args in [&["train", "--schedule", "every night"][..], &["schedule", "--cron", "3am"]] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains("\"0 3 * * *\""), "{args:?}: {err}");
        }
    }
}
