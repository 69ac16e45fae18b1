//! The trainer: lake in, evaluated and (maybe) promoted model out.
//!
//! - [`dataset`]: replays lake events through the shared feature code and attaches the labels
//!   known at the training cut-off (point in time), with a time-based split.
//! - [`delays`]: how late fraud labels arrive, per source, and the weight that young sessions get.
//! - [`train`]: logistic regression (linfa) on standardized features, Platt calibration.
//! - [`gbdt`]: gradient-boosted trees, the other model family.
//! - [`budget`]: flag budgets per action, as thresholds on validation and checks on test.
//! - [`eval`]: session-level metrics (average precision, ROC AUC, recall at low alert rates).
//! - [`rules`]: the policy's hard rules measured on validation (precision against the restrict band).
//! - [`plots`]: the report's PR and ROC curves and score histogram.
//! - [`run`]: the `train` command end to end, including champion/challenger promotion.
//! - [`evaluate`]: `trainer evaluate`, a registered model scored on a lake's newest labelled window.
//! - [`export`]: `trainer export`, the training matrix as CSV (for comparing with other libraries).
//! - [`truth`]: a simulator's ground truth, for `trainer evaluate --truth`.
//! - [`schedule`]: lake compaction and training on a cron schedule.
//! - [`sink`]: the lake sink (topics into Parquet, exactly once per record).
//! - [`cli`]: the command line.

pub mod budget;
pub mod cli;
pub mod dataset;
pub mod delays;
pub mod eval;
pub mod evaluate;
pub mod export;
pub mod gbdt;
pub mod plots;
pub mod rules;
pub mod run;
pub mod schedule;
pub mod sink;
pub mod train;
pub mod truth;
