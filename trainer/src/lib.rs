//! The trainer: lake in, evaluated and (maybe) promoted model out.
//!
//! - [`dataset`]: replays lake events through the shared feature code and attaches the labels
//!   known at the training cut-off (point in time), with a time-based split.
//! - [`train`]: logistic regression (linfa) on standardized features, Platt calibration.
//! - [`eval`]: session-level metrics (average precision, ROC AUC, recall at low alert rates).
//! - [`run`]: the `train` command end to end, including champion/challenger promotion.

pub mod dataset;
pub mod eval;
pub mod gbdt;
pub mod plots;
pub mod run;
pub mod schedule;
pub mod sink;
pub mod train;
