//! Binance spot: the combined websocket market data stream as a feed ([`feed`], decoded
//! by [`stream`]), orders over the signed REST API ([`venue`] on [`rest`]) with what
//! becomes of them pushed by the user data stream ([`user_stream`]), and
//! loopback stand-ins for tests and benchmarks ([`mock`]).
//!
//! Everything Binance says that a run depends on is recorded: ticks as `MarketTick`,
//! gaps and connection losses as `VenueNotice`.

pub mod feed;
pub mod mock;
pub mod rest;
pub mod stream;
pub mod user_stream;
pub mod venue;

pub use feed::{BinanceFeed, FeedSettings};
pub use rest::{Credentials, RestClient, RestError, SymbolFilters};
pub use stream::{DecodeError, Decoded, StreamDecoder};
pub use user_stream::{UserStream, UserStreamSettings};
pub use venue::{BinanceVenue, NoticeBoard};
