//! [`RecordedVenue`]: a live venue's recorded reports played back, so that a replay of
//! a run on a live venue (Binance) reproduces it from the record instead of simulating
//! fills.
//!
//! Each recorded report is due in the cycle it was recorded in: a report recorded at
//! the same cycle time as the tick before it belongs to that tick's cycle (it came in
//! answer to an order of that cycle); any other, to the next cycle (it was taken at that
//! cycle's start). A replay asks for reports as the original run did (the runner makes
//! the same calls), and is handed each one once its cycle has come. An order the
//! original venue refused outright is refused again with the recorded reason.
//!
//! A fill followed in the record by another report on its order (a later fill, its
//! cancellation) in the same session was a partial fill
//! ([`VenueReport::PartiallyFilled`]): the order stayed open. A fill that is the last
//! report on its order in its session ended it: a run interrupted between two fills of
//! an order is resumed (re-executed from this record) with the order ended, and its
//! further fills, found at the exchange, come to an order the run no longer has open
//! (see docs/venues.md).

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use rust_decimal::Decimal;

use crate::event::{OrderSubmitted, Payload};
use crate::ids::ClientOrderId;
use crate::log::{EventCursor, LogError, RecordSource};
use crate::replay::RunRange;
use crate::sizing::Funds;
use crate::time::TimestampNs;
use crate::venue::{MarketView, Venue, VenueError, VenueReport};

/// What the runner writes before an outright refusal's reason.
const REFUSED: &str = "venue refused the order: ";

/// A recorded report and the cycle (1-based, counting the run's ticks) it is due in.
#[derive(Debug, Clone)]
struct Due {
    cycle: u64,
    report: VenueReport,
    /// The session of the run it was recorded in (0, then one more after each
    /// `RunResumed`).
    session: u32,
}

/// A live venue's recorded reports (see the module docs).
pub struct RecordedVenue {
    name: String,
    due: VecDeque<Due>,
    /// Outright refusals by the per-run part of the order's id: the reason.
    refused: HashMap<String, String>,
    /// The replay's cycle now (shared with its [`crate::replay::RecordedRun`]).
    cycle: Rc<Cell<u64>>,
    /// The replay's client order id prefix (`r7`), learnt from its first order.
    prefix: Option<String>,
    /// Orders submitted in the replay and not yet ended.
    working: Vec<ClientOrderId>,
    /// Every order submitted in the replay, by the per-run part of its id.
    submitted: HashSet<String>,
}

/// Marks each fill followed by another report on its order in the same session as a
/// partial fill. (A session interrupted between two fills of an order took the last
/// one it recorded for the order's end when it was resumed: its further fills came to
/// an order the run no longer had open.)
fn mark_partial_fills(due: &mut VecDeque<Due>) {
    let mut later = HashSet::new();
    let mut session = due.back().map_or(0, |d| d.session);
    for entry in due.iter_mut().rev() {
        if entry.session != session {
            later.clear();
            session = entry.session;
        }
        let id = entry.report.client_order_id();
        if let VenueReport::Filled(fill) = &entry.report {
            if later.contains(&id) {
                entry.report = VenueReport::PartiallyFilled(fill.clone());
            }
        }
        later.insert(id);
    }
}

/// The per-run part of a client order id: `5` of `r1-5`.
fn per_run(id: &ClientOrderId) -> &str {
    id.as_str().split_once('-').map_or(id.as_str(), |(_, n)| n)
}

impl RecordedVenue {
    /// Reads the venue reports of run `range` from `source`; `name` is the original
    /// venue's, `cycle` the replay's cycle counter.
    ///
    /// # Errors
    /// Reading the run fails.
    pub fn read(
        source: &dyn RecordSource,
        range: RunRange,
        name: &str,
        cycle: Rc<Cell<u64>>,
    ) -> Result<Self, LogError> {
        let mut cursor = EventCursor::new(source, range.first, range.last);
        let (mut ticks, mut tick_time) = (0u64, TimestampNs::from_nanos(i64::MIN));
        let (mut due, mut refused) = (VecDeque::new(), HashMap::new());
        let mut accepted = HashSet::new();
        let mut session = 0u32;
        while let Some(event) = cursor.next_event()? {
            if event.header.run_id != range.run_id {
                continue;
            }
            let report = match event.payload {
                Payload::MarketTick(_) => {
                    ticks += 1;
                    tick_time = event.header.ts_recorded;
                    continue;
                }
                Payload::RunResumed(_) => {
                    session += 1;
                    continue;
                }
                Payload::OrderAccepted(r) => {
                    accepted.insert(r.client_order_id);
                    VenueReport::Accepted(r)
                }
                Payload::OrderFilled(r) => VenueReport::Filled(r),
                Payload::OrderCanceled(r) => VenueReport::Canceled(r),
                Payload::OrderRejected(r) => match r.reason.strip_prefix(REFUSED) {
                    Some(reason) if !accepted.contains(&r.client_order_id) => {
                        refused.insert(per_run(&r.client_order_id).to_string(), reason.to_string());
                        continue;
                    }
                    _ => VenueReport::Rejected(r),
                },
                _ => continue,
            };
            let cycle = if event.header.ts_recorded == tick_time { ticks } else { ticks + 1 };
            due.push_back(Due { cycle, report, session });
        }
        mark_partial_fills(&mut due);
        let (prefix, working, submitted) = (None, Vec::new(), HashSet::new());
        Ok(RecordedVenue { name: name.to_string(), due, refused, cycle, prefix, working, submitted })
    }

    /// `report` with its order's id as the replay numbers it.
    fn renamed(&self, report: VenueReport) -> VenueReport {
        let Some(prefix) = &self.prefix else { return report };
        let rename = |id: &mut ClientOrderId| {
            if let Ok(renamed) = ClientOrderId::new(&format!("{prefix}-{}", per_run(id))) {
                *id = renamed;
            }
        };
        let mut report = report;
        match &mut report {
            VenueReport::Accepted(r) => rename(&mut r.client_order_id),
            VenueReport::Rejected(r) => rename(&mut r.client_order_id),
            VenueReport::Filled(r) => rename(&mut r.client_order_id),
            VenueReport::Canceled(r) => rename(&mut r.client_order_id),
            VenueReport::PartiallyFilled(r) => rename(&mut r.client_order_id),
        }
        report
    }

    /// The next recorded report, once its cycle has come and its order was submitted
    /// in the replay (a report in answer to an order comes after the order).
    fn take(&mut self, up_to_cycle: u64) -> Option<VenueReport> {
        let front = self.due.front()?;
        if front.cycle > up_to_cycle || !self.submitted.contains(per_run(&front.report.client_order_id())) {
            return None;
        }
        let due = self.due.pop_front()?;
        let report = self.renamed(due.report);
        if report.ends_order() {
            let id = report.client_order_id();
            self.working.retain(|w| *w != id);
        }
        Some(report)
    }
}

impl Venue for RecordedVenue {
    fn name(&self) -> &str {
        &self.name
    }

    /// Nothing leaves the process.
    fn is_external(&self) -> bool {
        false
    }

    fn submit(&mut self, order: &OrderSubmitted, _market: &MarketView<'_>) -> Result<(), VenueError> {
        let id = order.client_order_id;
        if self.prefix.is_none() {
            self.prefix = id.as_str().split_once('-').map(|(prefix, _)| prefix.to_string());
        }
        self.submitted.insert(per_run(&id).to_string());
        if let Some(reason) = self.refused.remove(per_run(&id)) {
            return Err(VenueError(reason));
        }
        self.working.push(id);
        Ok(())
    }

    fn poll(&mut self, _market: &MarketView<'_>, _funds: &Funds) -> Option<VenueReport> {
        self.take(self.cycle.get())
    }

    /// Every report left, as the original's stop recorded them.
    fn cancel_all(&mut self, _reason: &str) -> Vec<VenueReport> {
        self.working.clear();
        let left: Vec<VenueReport> = self.due.drain(..).map(|d| d.report).collect();
        left.into_iter().map(|report| self.renamed(report)).collect()
    }

    /// The cancellation comes from the record, in its cycle.
    fn cancel(&mut self, _order: ClientOrderId, _reason: &str) -> Result<Option<VenueReport>, VenueError> {
        Ok(None)
    }

    fn amend(
        &mut self,
        order: ClientOrderId,
        _stop_price: Decimal,
        _market: &MarketView<'_>,
    ) -> Result<(), VenueError> {
        Err(VenueError(format!("{order}: the recorded venue {} moved no stop", self.name)))
    }

    fn working_orders(&self) -> Vec<ClientOrderId> {
        self.working.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Liquidity, OrderAccepted, OrderCanceled, OrderFilled, Side};
    use crate::ids::{FillId, InstrumentId};
    use std::sync::Arc;

    fn fill(id: &str, n: u64) -> VenueReport {
        VenueReport::Filled(OrderFilled {
            client_order_id: ClientOrderId::new(id).unwrap(),
            fill_id: FillId::new(n),
            instrument: InstrumentId::new("BTCUSDT").unwrap(),
            side: Side::Buy,
            qty: Decimal::ONE,
            price: Decimal::ONE,
            fee: Decimal::ZERO,
            liquidity: Liquidity::Taker,
        })
    }

    #[test]
    fn a_fill_followed_by_a_report_on_its_order_was_partial_the_last_ends_it() {
        let id = |s: &str| ClientOrderId::new(s).unwrap();
        let canceled = VenueReport::Canceled(OrderCanceled { client_order_id: id("r1-2"), reason: Arc::from("x") });
        let accepted = VenueReport::Accepted(OrderAccepted { client_order_id: id("r1-1") });
        let reports = [accepted, fill("r1-1", 1), fill("r1-2", 2), fill("r1-1", 3), canceled, fill("r1-3", 4)];
        let mut due: VecDeque<Due> = reports.into_iter().map(|report| Due { cycle: 1, report, session: 0 }).collect();
        mark_partial_fills(&mut due);
        let kinds: Vec<(String, bool)> = due
            .iter()
            .map(|d| (d.report.client_order_id().to_string(), matches!(d.report, VenueReport::PartiallyFilled(_))))
            .collect();
        let ends: Vec<bool> = due.iter().map(|d| d.report.ends_order()).collect();
        let expected =
            [("r1-1", false), ("r1-1", true), ("r1-2", true), ("r1-1", false), ("r1-2", false), ("r1-3", false)];
        assert_eq!(kinds, expected.map(|(id, partial)| (id.to_string(), partial)));
        assert_eq!(ends, [false, false, false, true, true, true]);

        // Across a resume, the first session's last fill of an order ended it.
        let mut due: VecDeque<Due> = [(fill("r1-5", 5), 0), (fill("r1-5", 6), 1)]
            .into_iter()
            .map(|(report, session)| Due { cycle: 1, report, session })
            .collect();
        mark_partial_fills(&mut due);
        assert!(due.iter().all(|d| d.report.ends_order()));
    }
}
