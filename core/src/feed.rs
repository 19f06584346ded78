//! The market feed: ticks in time order, pulled one at a time.
//!
//! A feed is a stream, never a whole file in memory: the runner asks for the next tick
//! when the pipeline is ready for it. Files, merged files, a recorded run and (later) an
//! exchange's websocket are all feeds.

use crate::event::TickData;
use crate::ids::InstrumentId;
use crate::time::TimestampNs;

/// One tick of market data for one instrument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// Source time, UTC ns (the bar's open time for bars).
    pub ts: TimestampNs,
    /// The instrument.
    pub instrument: InstrumentId,
    /// Bar, trade or quote.
    pub data: TickData,
}

/// A source of ticks in time order (ties keep the source's order).
pub trait MarketFeed {
    /// What can go wrong reading the source (a bad row, an I/O error).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The next tick, or `Ok(None)` at the end of the data.
    ///
    /// # Errors
    /// The source's own; after an error the feed is not asked again.
    fn next_tick(&mut self) -> Result<Option<Tick>, Self::Error>;
}
