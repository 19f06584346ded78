//! The pipeline end to end in memory: fill and commission arithmetic against
//! hand-computed cases, determinism, and replay divergence detection.

use std::collections::VecDeque;
use std::ops::ControlFlow;

use ledger_core::decision::{DecisionInput, DecisionProvider, ProviderAnswer, ProviderInfo};
use ledger_core::engine::{Engine, RunSpec, Tick};
use ledger_core::event::*;
use ledger_core::ids::{InstrumentId, RunId, Seq};
use ledger_core::log::{EventLog, MemLog};
use ledger_core::portfolio::Portfolio;
use ledger_core::replay::{compare_runs, RecordedProvider, Recording};
use ledger_core::risk::{KillSwitch, KillSwitchLimits, RiskEngine, RiskLimits};
use ledger_core::strategy::{RuleSizing, SmaCross};
use ledger_core::time::{SimulatedClock, TimestampNs};
use ledger_core::venue::{FillModel, PaperConfig, PaperVenue};
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const DAY: i64 = 86_400_000_000_000;

fn spy() -> InstrumentId {
    InstrumentId::new("SPY").unwrap()
}

fn bar(day: i64, open: Decimal, close: Decimal) -> Tick {
    Tick {
        ts: TimestampNs::from_nanos(day * DAY),
        instrument: spy(),
        data: TickData::Bar(Bar {
            open,
            high: open.max(close),
            low: open.min(close),
            close,
            volume: None,
            interval_ns: DAY,
        }),
    }
}

/// A provider that answers a fixed action per tick (hold after the script ends).
struct Scripted(VecDeque<(Action, Decimal)>);

impl DecisionProvider for Scripted {
    fn info(&self) -> ProviderInfo {
        ProviderInfo { provider: "test".into(), model: "scripted".into(), params: "".into() }
    }

    fn decide(&mut self, _input: &DecisionInput<'_>) -> ProviderAnswer {
        let (action, size_pct) = self.0.pop_front().unwrap_or((Action::Hold, Decimal::ZERO));
        ProviderAnswer {
            decision: Decision { action, size_pct, confidence: Decimal::ONE, reason: "script".into() },
            parse_status: ParseStatus::Ok,
            prompt: "".into(),
            raw_output: "".into(),
            latency_us: 0,
            tokens_in: 0,
            tokens_out: 0,
        }
    }
}

fn run_with(
    log: &mut MemLog,
    ticks: &[Tick],
    provider: Box<dyn DecisionProvider>,
    venue: PaperConfig,
    cash: Decimal,
) -> Portfolio {
    run_with_kill_switch(log, ticks, provider, venue, cash, KillSwitchLimits::default())
}

fn run_with_kill_switch(
    log: &mut MemLog,
    ticks: &[Tick],
    provider: Box<dyn DecisionProvider>,
    venue: PaperConfig,
    cash: Decimal,
    kill_limits: KillSwitchLimits,
) -> Portfolio {
    let clock = SimulatedClock::new(ticks[0].ts);
    let spec = RunSpec {
        run_id: log.runs().next_run_id(),
        mode: RunMode::Replay,
        config: "{}".into(),
        software_version: "test".into(),
        instruments: vec![spy()],
        data_source: "test".into(),
        parent_run: None,
        starting_cash: cash,
        cycles_per_append: 3,
    };
    let risk = RiskEngine::new(RiskLimits::default());
    let kill = KillSwitch::new(kill_limits, false);
    let mut engine = Engine::start(log, &clock, spec, provider, risk, kill, Box::new(PaperVenue::new(venue))).unwrap();
    for tick in ticks {
        clock.set(tick.ts);
        engine.on_tick(tick).unwrap();
    }
    engine.stop("end of data").unwrap()
}

fn scripted(actions: &[(Action, Decimal)]) -> Box<dyn DecisionProvider> {
    Box::new(Scripted(actions.iter().copied().collect()))
}

fn fills(log: &MemLog) -> Vec<OrderFilled> {
    payloads(log)
        .into_iter()
        .filter_map(|p| match p {
            Payload::OrderFilled(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn payloads(log: &MemLog) -> Vec<Payload> {
    log.read(Seq::new(1), usize::MAX).unwrap().into_iter().map(|e| e.payload).collect()
}

fn commission(rate: Decimal) -> PaperConfig {
    PaperConfig { commission_rate: rate, ..PaperConfig::default() }
}

#[test]
fn next_open_fills_at_the_following_open_and_charges_both_sides() {
    let mut log = MemLog::new();
    let ticks = [
        bar(0, dec!(100), dec!(100)),
        bar(1, dec!(101), dec!(104)),
        bar(2, dec!(110), dec!(111)),
        bar(3, dec!(112), dec!(112)),
    ];
    let actions = [(Action::Long, dec!(1)), (Action::Hold, dec!(0)), (Action::Close, dec!(0))];
    let portfolio = run_with(&mut log, &ticks, scripted(&actions), commission(dec!(0.001)), dec!(10000));
    let f = fills(&log);
    // Decided on bar 0 (close 100), filled at bar 1's open 101: notional 10000 at
    // 101 * 1.001 per unit = 98.91 -> 98 whole units; fee 98 * 101 * 0.001 = 9.898 -> 9.90.
    assert_eq!((f[0].side, f[0].qty, f[0].price, f[0].fee), (Side::Buy, dec!(98), dec!(101), dec!(9.90)));
    // Close decided on bar 2, filled at bar 3's open 112: fee 98 * 112 * 0.001 = 10.976 -> 10.98.
    assert_eq!((f[1].side, f[1].qty, f[1].price, f[1].fee), (Side::Sell, dec!(98), dec!(112), dec!(10.98)));
    // Cash: 10000 - 9898 - 9.90 + 10976 - 10.98.
    assert_eq!(portfolio.cash, dec!(11057.12));
    assert_eq!((portfolio.realized_pnl, portfolio.fees), (dec!(1078), dec!(20.88)));
}

#[test]
fn close_model_fills_at_the_decision_bar_with_slippage_against_the_trader() {
    let mut log = MemLog::new();
    let ticks = [bar(0, dec!(100), dec!(100)), bar(1, dec!(100), dec!(120))];
    let venue = PaperConfig { fill_model: FillModel::Close, slippage_bps: dec!(50), ..PaperConfig::default() };
    let actions = [(Action::Long, dec!(0.5)), (Action::Close, dec!(0))];
    run_with(&mut log, &ticks, scripted(&actions), venue, dec!(10000));
    let f = fills(&log);
    // Buy at 100 + 0.5% = 100.5: 5000 / 100.5 = 49.75 -> 49 units. Sell at 120 - 0.5% = 119.4.
    assert_eq!((f[0].qty, f[0].price), (dec!(49), dec!(100.500)));
    assert_eq!((f[1].qty, f[1].price), (dec!(49), dec!(119.400)));
}

#[test]
fn a_reversal_is_a_close_then_an_open_sized_from_the_cash_after_the_close() {
    let mut log = MemLog::new();
    let ticks = [
        bar(0, dec!(100), dec!(100)),
        bar(1, dec!(100), dec!(100)),
        bar(2, dec!(90), dec!(90)),
        bar(3, dec!(80), dec!(80)),
    ];
    let actions = [(Action::Long, dec!(1)), (Action::Short, dec!(1))];
    let portfolio = run_with(&mut log, &ticks, scripted(&actions), commission(dec!(0.01)), dec!(1000));
    let f = fills(&log);
    // Long: 1000 / (100 * 1.01) = 9.9 -> 9 units at 100, fee 9.00; cash 91.
    assert_eq!((f[0].side, f[0].qty, f[0].fee), (Side::Buy, dec!(9), dec!(9.00)));
    // Short decided on bar 1 (equity 1000 - 9 = 991 at close 100), filled at bar 2's open 90:
    // leg 1 sells the 9 long units (fee 8.10); cash 91 + 810 - 8.10 = 892.90.
    assert_eq!((f[1].side, f[1].qty, f[1].price, f[1].fee), (Side::Sell, dec!(9), dec!(90), dec!(8.10)));
    // Leg 2 opens the short from the cash after the close: min(991, 892.90) / (90 * 1.01) = 9.82 -> 9.
    assert_eq!((f[2].side, f[2].qty, f[2].price, f[2].fee), (Side::Sell, dec!(9), dec!(90), dec!(8.10)));
    assert_eq!(portfolio.qty(&spy()), dec!(-9));
}

#[test]
fn lot_size_rounds_down_and_zero_units_is_a_rejection_not_a_fill() {
    let venue = PaperConfig { fill_model: FillModel::Close, lot_size: dec!(0.25), ..PaperConfig::default() };
    let ticks = [bar(0, dec!(100), dec!(100)), bar(1, dec!(100), dec!(100))];
    // TC0: 330 at 100 is 3.3 units -> 3.25 in lots of 0.25.
    let mut log = MemLog::new();
    run_with(&mut log, &ticks, scripted(&[(Action::Long, dec!(0.33))]), venue.clone(), dec!(1000));
    assert_eq!(fills(&log)[0].qty, dec!(3.25));
    // TC1: 10 at 100 is 0.1 units -> 0 lots: rejected with the reason, nothing filled.
    let mut log = MemLog::new();
    run_with(&mut log, &ticks, scripted(&[(Action::Long, dec!(0.01))]), venue, dec!(1000));
    assert!(fills(&log).is_empty());
    let rejected: Vec<_> = payloads(&log)
        .into_iter()
        .filter_map(|p| match p {
            Payload::OrderRejected(r) => Some(r.reason.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].starts_with("zero units"), "{rejected:?}");
}

#[test]
fn minimum_commission_is_charged_and_still_fits_the_cash() {
    let venue = PaperConfig { fill_model: FillModel::Close, commission_min: dec!(5), ..PaperConfig::default() };
    let ticks = [bar(0, dec!(100), dec!(100)), bar(1, dec!(100), dec!(100))];
    let mut log = MemLog::new();
    let portfolio = run_with(&mut log, &ticks, scripted(&[(Action::Long, dec!(1))]), venue, dec!(1000));
    // 10 units would cost 1000 + 5: one lot fewer fits.
    let f = fills(&log);
    assert_eq!((f[0].qty, f[0].fee), (dec!(9), dec!(5)));
    assert_eq!(portfolio.cash, dec!(95));
}

fn sma_ticks(closes: &[u32]) -> Vec<Tick> {
    closes
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let close = Decimal::new(i64::from(c), 2);
            bar(i as i64, close, close)
        })
        .collect()
}

fn sma_run(log: &mut MemLog, ticks: &[Tick]) {
    let sizing = RuleSizing { size_pct: dec!(0.5), allow_short: true };
    run_with(log, ticks, Box::new(SmaCross::new(2, 5, sizing)), commission(dec!(0.001)), dec!(100000));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_same_ticks_give_the_same_hashes(closes in proptest::collection::vec(1_000u32..2_000, 2..120)) {
        let ticks = sma_ticks(&closes);
        let (mut a, mut b) = (MemLog::new(), MemLog::new());
        sma_run(&mut a, &ticks);
        sma_run(&mut b, &ticks);
        let hashes = |log: &MemLog| log.read(Seq::new(1), usize::MAX).unwrap().iter().map(|e| e.header.hash).collect::<Vec<_>>();
        prop_assert_eq!(hashes(&a), hashes(&b));
    }

    #[test]
    fn a_replay_of_recorded_decisions_reproduces_the_run(closes in proptest::collection::vec(1_000u32..2_000, 2..120)) {
        let mut log = MemLog::new();
        sma_run(&mut log, &sma_ticks(&closes));
        let original = run_events(&log, RunId::new(1));
        let recording = Recording::from_events(&original);
        let provider = Box::new(RecordedProvider::new(recording.info.clone(), recording.answers.clone()));
        run_with(&mut log, &recording.ticks, provider, commission(dec!(0.001)), dec!(100000));
        let replayed = run_events(&log, RunId::new(2));
        prop_assert_eq!(compare_runs(&original, &replayed), None);
    }
}

fn run_events(log: &MemLog, run: RunId) -> Vec<Envelope> {
    let mut events = Vec::new();
    log.visit_run(run, &mut |e| {
        events.push(e);
        ControlFlow::Continue(())
    })
    .unwrap();
    events
}

#[test]
fn a_changed_decision_is_reported_at_its_cycle() {
    let closes: Vec<u32> = (0..40).map(|i| 1_500 + ((i * 37) % 23) * 10).collect();
    let mut log = MemLog::new();
    sma_run(&mut log, &sma_ticks(&closes));
    let original = run_events(&log, RunId::new(1));
    let mut recording = Recording::from_events(&original);
    // Cycle 7 (the seventh decision) now says long where the strategy said something else.
    let changed = &mut recording.answers[6];
    let was = changed.decision.action;
    changed.decision.action = if was == Action::Long { Action::Close } else { Action::Long };
    changed.decision.size_pct = dec!(0.5);
    let provider = Box::new(RecordedProvider::new(recording.info.clone(), recording.answers.clone()));
    run_with(&mut log, &recording.ticks, provider, commission(dec!(0.001)), dec!(100000));
    let divergence = compare_runs(&original, &run_events(&log, RunId::new(2))).expect("a divergence");
    assert_eq!(divergence.cycle, 7);
    assert!(divergence.fields.iter().any(|(field, _, _)| field.contains("action")), "{:?}", divergence.fields);
}

#[test]
fn the_kill_switch_trips_on_drawdown_closes_the_position_and_blocks_new_opens() {
    let mut log = MemLog::new();
    // Long 10 at 100 on bar 1; the price falls to 75 (25% drawdown) on bar 2; a long is
    // asked again on bar 3.
    let ticks = [
        bar(0, dec!(100), dec!(100)),
        bar(1, dec!(100), dec!(100)),
        bar(2, dec!(75), dec!(75)),
        bar(3, dec!(76), dec!(76)),
        bar(4, dec!(77), dec!(77)),
    ];
    let actions = [(Action::Long, dec!(1)), (Action::Hold, dec!(0)), (Action::Hold, dec!(0)), (Action::Long, dec!(1))];
    let kill = KillSwitchLimits { max_drawdown: Some(dec!(0.2)), close_positions: true, ..KillSwitchLimits::default() };
    let portfolio =
        run_with_kill_switch(&mut log, &ticks, scripted(&actions), PaperConfig::default(), dec!(1000), kill);
    let events = payloads(&log);
    let trip = events.iter().find_map(|p| match p {
        Payload::KillSwitchTripped(t) => Some(t.clone()),
        _ => None,
    });
    let trip = trip.expect("the kill switch trips");
    assert_eq!((trip.trigger, trip.value, trip.limit), (KillTrigger::Drawdown, dec!(0.25), dec!(0.2)));
    // The closing order fills at the next open (76); the later long is denied by the switch.
    let f = fills(&log);
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!((f[1].side, f[1].qty, f[1].price), (Side::Sell, dec!(10), dec!(76)));
    assert!(portfolio.positions.is_empty());
    let denied = events
        .iter()
        .any(|p| matches!(p, Payload::RiskVerdict(v) if !v.approved && v.reason.starts_with("kill_switch")));
    assert!(denied, "the long after the trip must be denied by the kill switch");
}
