//! `ledger-core`: the meaning of the trading ledger, with no I/O.
//!
//! # Layout
//! - [`ids`], [`time`]: typed identifiers, sequences and UTC-nanosecond timestamps.
//! - [`event`]: the envelope and every payload kind (what happened).
//! - [`codec`]: the stored bytes of one record (how it is written), versioned.
//! - [`chain`]: the SHA-256 hash chain over those bytes.
//! - [`log`]: the [`log::EventLog`] trait and the in-memory log beside it.
//! - [`verify`]: the whole-ledger check behind `ledger verify`.
//!
//! Nothing here reads the wall clock, the file system or the network: time arrives
//! through a [`time::Clock`], records through an [`log::EventLog`]. That is what makes
//! a replay byte-identical to the run it replays.
#![forbid(unsafe_code)]

pub mod bus;
pub mod chain;
pub mod codec;
pub mod decision;
pub mod engine;
pub mod event;
pub mod ids;
pub mod log;
pub mod portfolio;
pub mod replay;
pub mod risk;
pub mod strategy;
pub mod time;
pub mod venue;
pub mod verify;
