//! `ledger-core`: the meaning of the trading ledger, with no I/O.
//!
//! # Layout
//! - [`ids`], [`time`]: typed identifiers, sequences and UTC-nanosecond timestamps.
//! - [`event`]: the envelope and every payload kind (what happened).
//! - [`codec`]: the stored bytes of one record (how it is written), versioned.
//! - [`chain`]: the SHA-256 hash chain over those bytes.
//! - [`log`]: the [`log::EventLog`] trait, checked reads, and the in-memory logs.
//! - [`verify`]: the whole-ledger check behind `ledger verify`.
//! - [`portfolio`]: cash, positions, P&L and drawdown: what a fill and a mark do.
//! - [`strategy`]: indicators and the built-in rule strategies.
//! - [`decision`]: the decision contract, its parser and the provider trait.
//! - [`risk`]: the risk engine and the kill switch.
//! - [`venue`]: the venue trait and the deterministic paper venue.
//! - [`exits`]: protective exits: stop-loss, take-profit and trailing stops.
//! - [`feed`]: the [`feed::MarketFeed`] trait: ticks as a stream.
//! - [`engine`]: one cycle per tick, tick -> decision -> verdict -> order -> fill.
//! - [`replay`]: re-running a recorded run and finding where it diverges.
//!
//! Nothing here reads the wall clock, the file system or the network: time arrives with
//! each tick from the runner's caller, records go to an [`log::EventLog`]. That is what makes
//! a replay byte-identical to the run it replays.
#![forbid(unsafe_code)]

pub mod chain;
pub mod codec;
pub mod decision;
pub mod engine;
pub mod event;
pub mod exits;
pub mod feed;
pub mod ids;
pub mod log;
pub mod portfolio;
pub mod recorded_venue;
pub mod replay;
pub mod risk;
pub mod runner;
pub mod sizing;
pub mod strategy;
pub mod time;
pub mod venue;
pub mod verify;
