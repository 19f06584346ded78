//! One run's account, folded from its events: the same [`Portfolio`] the engine keeps,
//! marked at every tick and moved by every fill, so a rebuild and the live run agree.

use ledger_core::event::{EventRef, Payload};
use ledger_core::ids::{RunId, Seq};
use ledger_core::portfolio::Portfolio;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Fold;

/// The account of run `run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortfolioFold {
    run: RunId,
    portfolio: Portfolio,
    covers: Seq,
}

impl PortfolioFold {
    /// The fold of run `run` (empty until its `RunStarted`).
    pub fn new(run: RunId) -> Self {
        PortfolioFold { run, portfolio: Portfolio::new(Decimal::ZERO), covers: Seq::ZERO }
    }

    /// The account so far.
    pub fn portfolio(&self) -> &Portfolio {
        &self.portfolio
    }

    /// The fold of run `run` resumed from `portfolio` as it was after event `covers` (a
    /// session snapshot's account: the engine keeps the account by the same rules).
    pub fn resume(run: RunId, portfolio: Portfolio, covers: Seq) -> Self {
        PortfolioFold { run, portfolio, covers }
    }
}

impl Fold for PortfolioFold {
    fn apply(&mut self, event: &EventRef<'_>) {
        self.covers = event.seq;
        if event.run_id != self.run {
            return;
        }
        match event.payload {
            Payload::RunStarted(started) => self.portfolio = Portfolio::new(started.starting_cash),
            // A change the account cannot represent is not in a ledger the engine wrote;
            // in any other it is passed over, as the engine would have refused it.
            Payload::MarketTick(tick) => {
                let _ = self.portfolio.mark(&tick.instrument, tick.data.reference_price());
            }
            Payload::OrderFilled(fill) => {
                let _ = self.portfolio.apply_fill(fill);
            }
            _ => {}
        }
    }

    fn covers(&self) -> Seq {
        self.covers
    }
}
