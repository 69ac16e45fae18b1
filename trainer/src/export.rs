//! `trainer export`: the training matrix as CSV, for comparing our boosted trees with another
//! library on exactly the rows, labels and weights they were fitted on (`scripts/bench-hgb`).

use crate::dataset::{self, Row};
use anyhow::Context;
use models::FEATURES;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Lake holding events/ and labels/: a directory, or `s3://BUCKET/PREFIX`.
    #[arg(long, env = "LAKE_URL", default_value = "data/lake", value_parser = lake::Lake::parse_arg)]
    pub lake: lake::Lake,
    /// Directory to write train.csv, valid.csv and test.csv into.
    #[arg(long, env = "EXPORT_OUT", default_value = "data/matrix")]
    pub out: PathBuf,
    /// As `trainer train --label-delay-days`.
    #[arg(long, env = "LABEL_DELAY_DAYS", default_value_t = 3.0)]
    pub label_delay_days: f64,
    /// As `trainer train --max-train-rows`.
    #[arg(long, env = "MAX_TRAIN_ROWS", default_value_t = 1_500_000)]
    pub max_train_rows: usize,
}

/// Rows written per window: train, validation, test.
pub fn export(args: &ExportArgs) -> anyhow::Result<[usize; 3]> {
    let opts = dataset::Options {
        cutoff: None,
        label_delay_days: Some(args.label_delay_days),
        max_train_rows: args.max_train_rows,
        recent_days: None,
    };
    let ds = crate::run::replay_lake(&args.lake, &opts)?;
    let split = ds.split.clone().with_context(|| format!("the lake at {} has no events", args.lake))?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let train = split.rows(&ds, split.train);
    // The weights the boosted trees are fitted with, and the session weights early stopping uses.
    let train_w = dataset::train_weights(&train, ds.cutoff, ds.label_delays.arrived_by());
    write(&args.out.join("train.csv"), &train, &train_w)?;
    let mut n = [train.len(), 0, 0];
    for (i, (name, window)) in [("valid.csv", split.valid), ("test.csv", split.test)].into_iter().enumerate() {
        let rows = split.rows(&ds, window);
        write(&args.out.join(name), &rows, &dataset::session_weights(&rows))?;
        n[i + 1] = rows.len();
    }
    Ok(n)
}

/// `session,fraud,weight,` then one column per feature (raw values, as the trees split them).
fn write(path: &Path, rows: &[&Row], weights: &[f64]) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let names: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
    writeln!(w, "session,fraud,weight,{}", names.join(","))?;
    for (r, wt) in rows.iter().zip(weights) {
        write!(w, "{},{},{wt}", r.session, u8::from(r.fraud))?;
        for x in &r.x {
            write!(w, ",{x}")?;
        }
        writeln!(w)?;
    }
    w.flush().with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::sim::{SimConfig, World};

    #[test]
    fn the_matrix_holds_every_row_of_each_window_with_its_label_weight_and_features() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake::Lake::dir(dir.path().join("lake"));
        let world = World::new(SimConfig { seed: 5, customers: 200, rate_ato: 0.02, ..SimConfig::default() });
        fixtures::write_lake(&world, &lake, 1_780_000_000_000, 8).unwrap();
        let args = ExportArgs { lake, out: dir.path().join("m"), label_delay_days: 2.0, max_train_rows: 0 };
        let n = export(&args).unwrap();
        assert!(n.iter().all(|n| *n > 0), "{n:?}");
        for (file, rows) in ["train.csv", "valid.csv", "test.csv"].iter().zip(n) {
            let text = std::fs::read_to_string(args.out.join(file)).unwrap();
            let mut lines = text.lines();
            let header: Vec<&str> = lines.next().unwrap().split(',').collect();
            assert_eq!(header.len(), 3 + FEATURES.len());
            assert_eq!(header[3 + models::features::F::Amount as usize], "amount");
            let body: Vec<&str> = lines.collect();
            assert_eq!(body.len(), rows, "{file}");
            assert!(body.iter().all(|l| l.split(',').count() == header.len()));
        }
        let train = std::fs::read_to_string(args.out.join("train.csv")).unwrap();
        assert!(train.lines().skip(1).any(|l| l.split(',').nth(1) == Some("1")), "fraud rows are exported");
    }
}
