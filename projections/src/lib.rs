//! `ledger-projections`: folds of the event log into views people read.
//!
//! # Layout
//! - [`report`]: the performance report of one run (portfolio fold, equity curve,
//!   round-trip trades, statistics).
#![forbid(unsafe_code)]

pub mod report;
