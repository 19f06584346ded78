//! Several feeds merged by time into one stream (`--data A --data B`: one portfolio
//! sees every instrument).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ledger_core::feed::{MarketFeed, Tick};
use ledger_core::time::TimestampNs;

/// A k-way merge of feeds by tick time.
///
/// Ticks sharing a time come in the order of their feeds in the list, and each feed's
/// own ticks keep their order: the merge is stable and deterministic. Each feed must be
/// in time order itself (as [`MarketFeed`] promises); the merge holds one tick per feed.
#[derive(Debug)]
pub struct MergedFeed<F: MarketFeed> {
    feeds: Vec<F>,
    /// The next tick of each feed; `None` once it has ended (or before the start).
    heads: Vec<Option<Tick>>,
    /// (time, feed index) of every head, earliest first, then lowest index.
    queue: BinaryHeap<Reverse<(TimestampNs, usize)>>,
    started: bool,
    /// The feed whose head was given last: it is asked for its next tick on the next
    /// call, not before, so that its error comes after the tick, not instead of it.
    taken: Option<usize>,
}

impl<F: MarketFeed> MergedFeed<F> {
    /// Merges `feeds`; their position in the list breaks ties between equal times.
    /// Nothing is read until the first [`MarketFeed::next_tick`].
    pub fn new(feeds: Vec<F>) -> Self {
        let heads = feeds.iter().map(|_| None).collect();
        MergedFeed { queue: BinaryHeap::with_capacity(feeds.len()), feeds, heads, started: false, taken: None }
    }

    /// The merged feeds, in their order.
    pub fn feeds(&self) -> impl Iterator<Item = &F> {
        self.feeds.iter()
    }

    /// Takes feed `index`'s next tick as its head.
    fn refill(&mut self, index: usize) -> Result<(), F::Error> {
        if let (Some(feed), Some(head)) = (self.feeds.get_mut(index), self.heads.get_mut(index)) {
            *head = feed.next_tick()?;
            if let Some(tick) = head {
                self.queue.push(Reverse((tick.ts, index)));
            }
        }
        Ok(())
    }
}

impl<F: MarketFeed> MarketFeed for MergedFeed<F> {
    type Error = F::Error;

    /// The earliest head among the feeds (the first feed's on a tie), `Ok(None)` when
    /// every feed has ended.
    ///
    /// # Errors
    /// The first error of any feed, as it is met (a feed is asked for its next tick
    /// when the merge needs it, so ticks it gave before its error come first).
    fn next_tick(&mut self) -> Result<Option<Tick>, F::Error> {
        if !self.started {
            self.started = true;
            for index in 0..self.feeds.len() {
                self.refill(index)?;
            }
        }
        if let Some(index) = self.taken.take() {
            self.refill(index)?;
        }
        let Some(Reverse((_, index))) = self.queue.pop() else { return Ok(None) };
        self.taken = Some(index);
        // invariant: the queue holds (time, index) exactly while heads[index] holds a tick.
        Ok(self.heads.get_mut(index).and_then(Option::take))
    }
}
