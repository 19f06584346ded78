//! A run's decisions cycle by cycle, to find the first cycle where two runs decided
//! differently (a live run and its replay, two risk configurations, an LLM run and its
//! counterfactual), for `ledger report --compare`.
//!
//! Memory: 32 bytes per decision (cycle, action, size); the reasons are read again for
//! the one cycle that differs ([`DecisionAt`]).

use ledger_core::event::{Action, EventRef, Payload};
use ledger_core::ids::{RunId, Seq};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::Fold;

/// What two decisions are compared by: the action and the fraction of equity asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decided {
    /// The cycle (tick number within the run).
    pub cycle: u64,
    /// long, short, close or hold.
    pub action: Action,
    /// Fraction of equity, 0 to 1.
    pub size_pct: Decimal,
}

/// Every decision of one run, in cycle order.
#[derive(Debug, Clone)]
pub struct DecisionTrail {
    run: RunId,
    covers: Seq,
    /// The run's decisions, one per cycle that made one.
    pub decisions: Vec<Decided>,
}

impl DecisionTrail {
    /// The trail of run `run`.
    pub fn new(run: RunId) -> Self {
        DecisionTrail { run, covers: Seq::ZERO, decisions: Vec::new() }
    }
}

impl Fold for DecisionTrail {
    fn apply(&mut self, event: &EventRef<'_>) {
        self.covers = event.seq;
        if let (true, Payload::DecisionMade(made)) = (event.run_id == self.run, event.payload) {
            let parsed = &made.parsed;
            self.decisions.push(Decided {
                cycle: event.cycle_id.get(),
                action: parsed.action,
                size_pct: parsed.size_pct,
            });
        }
    }

    fn covers(&self) -> Seq {
        self.covers
    }
}

/// The first cycle where `a` and `b` differ: a decision with another action or size, or
/// a cycle only one of them decided in (the shorter run's end). `None` when they agree.
pub fn first_difference(a: &[Decided], b: &[Decided]) -> Option<u64> {
    for (x, y) in a.iter().zip(b) {
        if x.cycle != y.cycle {
            return Some(x.cycle.min(y.cycle));
        }
        if x != y {
            return Some(x.cycle);
        }
    }
    match (a.get(b.len()), b.get(a.len())) {
        (Some(x), _) => Some(x.cycle),
        (_, Some(y)) => Some(y.cycle),
        _ => None,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn d(cycle: u64, action: Action) -> Decided {
        Decided { cycle, action, size_pct: dec!(1) }
    }

    #[test]
    fn the_first_difference_is_an_action_a_size_a_missing_cycle_or_the_end() {
        let a = [d(1, Action::Hold), d(2, Action::Long), d(3, Action::Hold)];
        assert_eq!(first_difference(&a, &a), None);
        assert_eq!(first_difference(&a, &[d(1, Action::Hold), d(2, Action::Short), d(3, Action::Hold)]), Some(2));
        let bigger = Decided { size_pct: dec!(0.5), ..d(2, Action::Long) };
        assert_eq!(first_difference(&a, &[d(1, Action::Hold), bigger]), Some(2));
        assert_eq!(first_difference(&a, &[d(1, Action::Hold), d(3, Action::Hold)]), Some(2));
        assert_eq!(first_difference(&a, &a[..2]), Some(3));
        assert_eq!(first_difference(&a[..1], &a), Some(2));
    }
}
