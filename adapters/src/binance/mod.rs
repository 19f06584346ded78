//! Binance spot: the combined websocket market data stream as a feed ([`feed`], decoded
//! by [`stream`]), and loopback stand-ins for tests and benchmarks ([`mock`]).
//!
//! Everything Binance says that a run depends on is recorded: ticks as `MarketTick`,
//! gaps and connection losses as `VenueNotice`.

pub mod feed;
pub mod mock;
pub mod stream;

pub use feed::{BinanceFeed, FeedSettings};
pub use stream::{DecodeError, Decoded, StreamDecoder};
