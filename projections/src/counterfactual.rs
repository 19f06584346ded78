//! Counterfactuals: a recorded run beside a replay of it that decided again
//! (`ledger replay --run ID --redecide`) or judged the recorded decisions under other
//! risk limits (`--risk-config FILE`).
//!
//! [`CycleOutcomes`] folds one run into what each cycle came to (the decision, the
//! verdict, the orders and fills that followed); [`compare`] lines two runs up cycle by
//! cycle (by cycle number: a replay makes one cycle per recorded cycle) and counts what
//! changed. The P&L difference comes from each run's [`crate::report::ReportFold`].

use std::collections::BTreeMap;

use ledger_core::event::{Action, EventRef, OrderTerms, Payload, RiskCheckId};
use ledger_core::ids::{RunId, Seq};
use ledger_core::time::TimestampNs;
use rust_decimal::Decimal;

use crate::Fold;

/// What one cycle came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleOutcome {
    /// Source time of the cycle's tick, UTC ns (of its first event when it had none).
    pub ts: TimestampNs,
    /// The decision, when the cycle asked for one.
    pub decision: Option<DecisionSummary>,
    /// The verdict on it: `Some(true)` approved, `Some(false)` denied, `None` when there
    /// was none (a hold is not judged).
    pub approved: Option<bool>,
    /// The first failed check of a denial.
    pub denied_by: Option<RiskCheckId>,
    /// Orders submitted in the cycle (entries, closes and protective exits).
    pub orders: u32,
    /// Fills reported in the cycle.
    pub fills: u32,
    /// Whether the kill switch tripped in the cycle.
    pub kill_switch_tripped: bool,
}

impl CycleOutcome {
    /// The verdict on a decision to trade: `None` for a hold (judged, trivially
    /// approved, but nothing to approve) or a cycle without a decision.
    pub fn judged(&self) -> Option<bool> {
        match &self.decision {
            Some(d) if d.action != Action::Hold => self.approved,
            _ => None,
        }
    }
}

/// The part of a decision that can change what follows: its action, size and terms
/// (limit price, time in force, protective exits). The reason and confidence are not
/// kept (a model rewording its reason decided the same); [`crate::decisions::DecisionAt`]
/// reads them back for a cycle worth showing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionSummary {
    /// long, short, close or hold.
    pub action: Action,
    /// Fraction of equity to commit, 0 to 1.
    pub size_pct: Decimal,
    /// Entry and exit terms, when the decision had its own (boxed: most have none).
    pub terms: Option<Box<OrderTerms>>,
}

impl DecisionSummary {
    /// Whether `other` asks for the same thing (action, size and terms).
    pub fn same_as(&self, other: &DecisionSummary) -> bool {
        self.action == other.action && self.size_pct == other.size_pct && self.terms == other.terms
    }

    /// `long 0.5`, `hold`, ... for a table.
    pub fn brief(&self) -> String {
        let action = match self.action {
            Action::Long => "long",
            Action::Short => "short",
            Action::Close => "close",
            Action::Hold => return "hold".into(),
        };
        match self.action {
            Action::Close => action.into(),
            _ => format!("{action} {}", self.size_pct.normalize()),
        }
    }
}

/// One run folded into its cycles' outcomes, keyed by cycle number. Memory grows with
/// the run's cycles (under a hundred bytes each: a year of minute bars is about 40 MB).
#[derive(Debug, Clone)]
pub struct CycleOutcomes {
    run: RunId,
    covers: Seq,
    cycles: BTreeMap<u64, CycleOutcome>,
}

impl CycleOutcomes {
    /// The outcomes of run `run`; other runs' events are passed over.
    pub fn new(run: RunId) -> Self {
        CycleOutcomes { run, covers: Seq::ZERO, cycles: BTreeMap::new() }
    }

    /// The cycles folded so far, by cycle number.
    pub fn cycles(&self) -> &BTreeMap<u64, CycleOutcome> {
        &self.cycles
    }
}

impl Fold for CycleOutcomes {
    fn apply(&mut self, event: &EventRef<'_>) {
        self.covers = event.seq;
        let cycle = event.cycle_id.get();
        if event.run_id != self.run || cycle == 0 {
            return;
        }
        let outcome =
            self.cycles.entry(cycle).or_insert_with(|| CycleOutcome { ts: event.ts_event, ..CycleOutcome::default() });
        match event.payload {
            Payload::MarketTick(_) => outcome.ts = event.ts_event,
            Payload::DecisionMade(made) => {
                let d = &made.parsed;
                outcome.decision =
                    Some(DecisionSummary { action: d.action, size_pct: d.size_pct, terms: d.terms.clone() });
            }
            Payload::RiskVerdict(verdict) => {
                outcome.approved = Some(verdict.approved);
                outcome.denied_by = verdict.checks.iter().find(|c| !c.passed).map(|c| c.id);
            }
            Payload::OrderSubmitted(_) => outcome.orders = outcome.orders.saturating_add(1),
            Payload::OrderFilled(_) => outcome.fills = outcome.fills.saturating_add(1),
            Payload::KillSwitchTripped(_) => outcome.kill_switch_tripped = true,
            _ => {}
        }
    }

    fn covers(&self) -> Seq {
        self.covers
    }
}

/// Totals of one side of a comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Cycles.
    pub cycles: u64,
    /// Decisions other than hold.
    pub trade_decisions: u64,
    /// Decisions to trade approved.
    pub approved: u64,
    /// Decisions to trade denied.
    pub denied: u64,
    /// Orders submitted.
    pub orders: u64,
    /// Fills.
    pub fills: u64,
}

impl Totals {
    fn add(&mut self, c: &CycleOutcome) {
        self.cycles += 1;
        if c.decision.as_ref().is_some_and(|d| d.action != Action::Hold) {
            self.trade_decisions += 1;
        }
        match c.judged() {
            Some(true) => self.approved += 1,
            Some(false) => self.denied += 1,
            None => {}
        }
        self.orders += u64::from(c.orders);
        self.fills += u64::from(c.fills);
    }
}

/// The first cycle where two runs differ, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstDifference {
    /// Cycle number.
    pub cycle: u64,
    /// Its tick's source time, UTC ns.
    pub ts: TimestampNs,
    /// The original's outcome (`None`: the cycle is only in the other run).
    pub original: Option<CycleOutcome>,
    /// The counterfactual's outcome.
    pub counterfactual: Option<CycleOutcome>,
}

/// Two runs compared cycle by cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// The original run's totals.
    pub original: Totals,
    /// The counterfactual run's totals.
    pub counterfactual: Totals,
    /// Cycles whose decisions ask for different things ([`DecisionSummary::same_as`]).
    pub decisions_changed: u64,
    /// Cycles whose decision to trade was judged differently: approved in one, denied or
    /// not a decision to trade in the other ([`CycleOutcome::judged`]).
    pub verdicts_changed: u64,
    /// Of those, approved in the original and denied in the counterfactual.
    pub approved_to_denied: u64,
    /// Of those, denied in the original and approved in the counterfactual.
    pub denied_to_approved: u64,
    /// Cycles with a different number of orders or fills, or a kill-switch trip in one
    /// run only.
    pub orders_changed: u64,
    /// The first cycle whose decision, verdict, orders or fills differ.
    pub first: Option<FirstDifference>,
    /// The first cycle whose decisions differ (or that only one run has).
    pub first_decision: Option<u64>,
}

/// Lines `original` and `counterfactual` up by cycle number and counts what differs.
pub fn compare(original: &CycleOutcomes, counterfactual: &CycleOutcomes) -> Comparison {
    let (a, b) = (original.cycles(), counterfactual.cycles());
    let mut out = Comparison {
        original: Totals::default(),
        counterfactual: Totals::default(),
        decisions_changed: 0,
        verdicts_changed: 0,
        approved_to_denied: 0,
        denied_to_approved: 0,
        orders_changed: 0,
        first: None,
        first_decision: None,
    };
    a.values().for_each(|c| out.original.add(c));
    b.values().for_each(|c| out.counterfactual.add(c));
    let numbers: std::collections::BTreeSet<u64> = a.keys().chain(b.keys()).copied().collect();
    for cycle in numbers {
        let (left, right) = (a.get(&cycle), b.get(&cycle));
        let decided = |c: Option<&CycleOutcome>| c.and_then(|c| c.decision.clone());
        let decision_differs = match (decided(left), decided(right)) {
            (Some(l), Some(r)) => !l.same_as(&r),
            (l, r) => l.is_some() || r.is_some(),
        };
        let approved = |c: Option<&CycleOutcome>| c.and_then(CycleOutcome::judged);
        let (was, now) = (approved(left), approved(right));
        let verdict_differs = was != now;
        let counts = |c: Option<&CycleOutcome>| c.map_or((0, 0), |c| (c.orders, c.fills));
        let tripped = |c: Option<&CycleOutcome>| c.is_some_and(|c| c.kill_switch_tripped);
        let orders_differ = counts(left) != counts(right) || tripped(left) != tripped(right);
        out.decisions_changed += u64::from(decision_differs);
        out.verdicts_changed += u64::from(verdict_differs);
        out.approved_to_denied += u64::from(was == Some(true) && now == Some(false));
        out.denied_to_approved += u64::from(was == Some(false) && now == Some(true));
        out.orders_changed += u64::from(orders_differ);
        let missing = left.is_none() != right.is_none();
        if (decision_differs || missing) && out.first_decision.is_none() {
            out.first_decision = Some(cycle);
        }
        let differs = decision_differs || verdict_differs || orders_differ || missing;
        if differs && out.first.is_none() {
            out.first = Some(FirstDifference {
                cycle,
                ts: left.or(right).map_or(TimestampNs::from_nanos(0), |c| c.ts),
                original: left.cloned(),
                counterfactual: right.cloned(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(action: Action, approved: Option<bool>, orders: u32) -> CycleOutcome {
        CycleOutcome {
            ts: TimestampNs::from_nanos(0),
            decision: Some(DecisionSummary { action, size_pct: Decimal::ONE, terms: None }),
            approved,
            denied_by: None,
            orders,
            fills: orders,
            kill_switch_tripped: false,
        }
    }

    fn run(outcomes: Vec<CycleOutcome>) -> CycleOutcomes {
        let mut fold = CycleOutcomes::new(RunId::new(1));
        fold.cycles = outcomes.into_iter().enumerate().map(|(i, c)| (i as u64 + 1, c)).collect();
        fold
    }

    #[test]
    fn identical_runs_differ_nowhere() {
        let a = run(vec![outcome(Action::Long, Some(true), 1), outcome(Action::Hold, None, 0)]);
        let c = compare(&a, &a.clone());
        assert_eq!((c.decisions_changed, c.verdicts_changed, c.orders_changed), (0, 0, 0));
        assert_eq!(c.first, None);
        assert_eq!(c.original, c.counterfactual);
        assert_eq!(c.original.approved, 1);
    }

    #[test]
    fn a_denial_under_tighter_limits_is_a_changed_verdict_not_a_changed_decision() {
        let a = run(vec![outcome(Action::Long, Some(true), 1), outcome(Action::Close, Some(true), 1)]);
        let b = run(vec![outcome(Action::Long, Some(false), 0), outcome(Action::Close, Some(false), 0)]);
        let c = compare(&a, &b);
        assert_eq!((c.decisions_changed, c.first_decision), (0, None));
        assert_eq!((c.verdicts_changed, c.approved_to_denied, c.denied_to_approved), (2, 2, 0));
        assert_eq!(c.orders_changed, 2);
        assert_eq!(c.first.as_ref().map(|f| f.cycle), Some(1));
        assert_eq!((c.original.orders, c.counterfactual.orders), (2, 0));
    }

    #[test]
    fn a_new_action_size_or_terms_is_a_changed_decision() {
        let a = run(vec![outcome(Action::Hold, None, 0), outcome(Action::Long, Some(true), 1)]);
        let b = run(vec![outcome(Action::Short, Some(true), 1), outcome(Action::Long, Some(true), 1)]);
        let c = compare(&a, &b);
        assert_eq!((c.decisions_changed, c.first_decision), (1, Some(1)));
        assert_eq!(c.first.as_ref().map(|f| f.cycle), Some(1));
        assert_eq!(c.verdicts_changed, 1);
        // Another size, or a stop-loss of its own.
        let mut half = outcome(Action::Long, Some(true), 1);
        let mut stopped = outcome(Action::Long, Some(true), 1);
        if let (Some(h), Some(s)) = (half.decision.as_mut(), stopped.decision.as_mut()) {
            h.size_pct = Decimal::new(5, 1);
            s.terms = Some(Box::new(OrderTerms { stop_loss: Some(Decimal::ONE), ..OrderTerms::default() }));
        }
        let c = compare(&a, &run(vec![outcome(Action::Hold, None, 0), half]));
        assert_eq!((c.decisions_changed, c.first_decision, c.verdicts_changed), (1, Some(2), 0));
        let c = compare(&a, &run(vec![outcome(Action::Hold, None, 0), stopped]));
        assert_eq!((c.decisions_changed, c.first_decision), (1, Some(2)));
    }

    #[test]
    fn a_cycle_only_one_run_has_is_a_difference() {
        let a = run(vec![outcome(Action::Hold, None, 0)]);
        let b = run(vec![outcome(Action::Hold, None, 0), outcome(Action::Hold, None, 0)]);
        let c = compare(&a, &b);
        assert_eq!(c.first.as_ref().map(|f| f.cycle), Some(2));
        assert_eq!(c.first_decision, Some(2));
        assert_eq!((c.original.cycles, c.counterfactual.cycles), (1, 2));
    }
}
