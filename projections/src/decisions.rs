//! One run's decision at one cycle, in full, for showing it: where two runs decided
//! differently ([`crate::counterfactual::compare`] finds the cycle) in `ledger report
//! --compare` and in a counterfactual replay's report. The compared folds keep no
//! reasons; this one reads them back for the cycle shown.

use ledger_core::event::{Action, EventRef, Payload};
use ledger_core::ids::{RunId, Seq};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::Fold;

/// One run's decision at one cycle, in full, for showing it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DecisionShown {
    /// The run.
    pub run: u64,
    /// Seq of the `DecisionMade` (0: no decision at that cycle).
    pub seq: u64,
    /// Source time of the decision, RFC 3339 UTC.
    pub time: String,
    /// `long`, `short`, `close`, `hold`, or `""` without a decision.
    pub action: String,
    /// Fraction of equity, 0 to 1.
    pub size_pct: Decimal,
    /// The provider's confidence, 0 to 1.
    pub confidence: Decimal,
    /// The provider's reason, as given (untrusted text).
    pub reason: String,
}

/// The fold that finds one run's decision at one cycle.
#[derive(Debug, Clone)]
pub struct DecisionAt {
    run: RunId,
    cycle: u64,
    covers: Seq,
    /// The decision, once seen.
    pub shown: DecisionShown,
}

impl DecisionAt {
    /// The decision of run `run` at `cycle`.
    pub fn new(run: RunId, cycle: u64) -> Self {
        DecisionAt { run, cycle, covers: Seq::ZERO, shown: DecisionShown { run: run.get(), ..Default::default() } }
    }
}

/// An action's name as the audit trail writes it.
pub fn action_name(action: Action) -> &'static str {
    match action {
        Action::Long => "long",
        Action::Short => "short",
        Action::Close => "close",
        Action::Hold => "hold",
    }
}

impl Fold for DecisionAt {
    fn apply(&mut self, event: &EventRef<'_>) {
        self.covers = event.seq;
        match event.payload {
            Payload::DecisionMade(made) if event.run_id == self.run && event.cycle_id.get() == self.cycle => {
                let parsed = &made.parsed;
                self.shown = DecisionShown {
                    run: self.run.get(),
                    seq: event.seq.get(),
                    time: event.ts_event.to_rfc3339(),
                    action: action_name(parsed.action).to_string(),
                    size_pct: parsed.size_pct,
                    confidence: parsed.confidence,
                    reason: parsed.reason.to_string(),
                };
            }
            _ => {}
        }
    }

    fn covers(&self) -> Seq {
        self.covers
    }
}
