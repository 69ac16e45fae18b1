//! The trainer: lake in, evaluated and (maybe) promoted model out.
//!
//! - [`dataset`]: replays lake events through the shared feature code and attaches the labels
//!   known at the training cut-off (point in time), with a time-based split.
//! - [`train`]: logistic regression (linfa) on standardized features, Platt calibration.
//! - [`gbdt`]: gradient-boosted trees, the other model family.
//! - [`eval`]: session-level metrics (average precision, ROC AUC, recall at low alert rates).
//! - [`plots`]: the report's PR and ROC curves and score histogram.
//! - [`run`]: the `train` command end to end, including champion/challenger promotion.
//! - [`evaluate`]: `trainer evaluate`, a registered model scored on a lake's newest labelled window.
//! - [`schedule`]: lake compaction and training on a cron schedule.
//! - [`sink`]: the lake sink (topics into Parquet, exactly once per record).
//! - [`cli`]: the command line.

pub mod cli;
pub mod dataset;
pub mod eval;
pub mod evaluate;
pub mod gbdt;
pub mod plots;
pub mod run;
pub mod schedule;
pub mod sink;
pub mod train;
