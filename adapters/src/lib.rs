//! `ledger-adapters`: everything that touches the world on behalf of the core.
//!
//! # Layout
//! - [`sled_log`]: the persistent, hash-chained [`ledger_core::log::EventLog`] on sled.
#![forbid(unsafe_code)]

pub mod market_data;
pub mod sled_log;
