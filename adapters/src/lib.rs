//! `ledger-adapters`: everything that touches the world on behalf of the core.
//!
//! # Layout
//! - [`sled_log`]: the persistent, hash-chained [`ledger_core::log::EventLog`] on sled.
//! - [`market_data`]: bars, trades and quotes from CSV/JSONL files (gzip transparent).
//! - [`script`]: decisions from a JSONL file, keyed by tick time.
//! - [`llm`]: LLM decision providers (OpenAI-compatible chat completions).
//! - [`clock`]: the wall clock for live and paper runs.
//! - [`nats`]: NATS JetStream: publishing the ledger to a stream, reading it back.
//! - [`binance`]: Binance spot: the websocket market data feed.
//! - [`background`]: a log whose appends run on a writer thread (two-stage pipeline).
#![forbid(unsafe_code)]

pub mod background;
pub mod binance;
pub mod clock;
pub mod llm;
pub mod market_data;
pub mod nats;
pub mod script;
pub mod sled_log;
