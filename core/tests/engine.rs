//! The pipeline end to end in memory (engine, runner, paper venue, log): fill and
//! commission arithmetic against hand-computed cases, determinism, replays of paper and
//! backtest runs under any risk configuration, and divergence detection.

use std::collections::VecDeque;
use std::ops::ControlFlow;

use ledger_core::decision::{DecisionInput, DecisionProvider, ProviderAnswer, ProviderInfo};
use ledger_core::engine::RunSpec;
use ledger_core::event::*;
use ledger_core::feed::Tick;
use ledger_core::ids::{InstrumentId, RunId, Seq};
use ledger_core::log::{visit_events, EventLog, MemLog};
use ledger_core::portfolio::Portfolio;
use ledger_core::replay::{compare_runs, RecordedRun, RunRange};
use ledger_core::risk::{KillSwitch, KillSwitchLimits, RiskEngine, RiskLimits};
use ledger_core::runner::{RunParts, Runner};
use ledger_core::strategy::{RuleSizing, SmaCross};
use ledger_core::time::TimestampNs;
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
            decision: Decision::new(action, size_pct, Decimal::ONE, "script".into()),
            parse_status: ParseStatus::Ok,
            prompt: "".into(),
            raw_output: "".into(),
            latency_us: 0,
            tokens_in: 0,
            tokens_out: 0,
            record: None,
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
    let run = Run { venue, cash, ..Run::default() };
    run.go(log, ticks.iter().map(|t| (t.clone(), t.ts)), provider).0
}

/// How a test run is set up: mode, limits, venue and cash.
#[derive(Clone)]
struct Run {
    mode: RunMode,
    risk: RiskLimits,
    kill: KillSwitchLimits,
    venue: PaperConfig,
    cash: Decimal,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            mode: RunMode::Replay,
            risk: RiskLimits::default(),
            kill: KillSwitchLimits::default(),
            venue: PaperConfig::default(),
            cash: dec!(100000),
        }
    }
}

impl Run {
    /// Runs `cycles` (tick, cycle time) as the next run of `log`; returns the final
    /// account and the run's range.
    fn go(
        &self,
        log: &mut MemLog,
        cycles: impl IntoIterator<Item = (Tick, TimestampNs)>,
        provider: Box<dyn DecisionProvider>,
    ) -> (Portfolio, RunRange) {
        let first = log.head().seq.next();
        let run_id = RunId::new(run_count(log) + 1);
        let mut cycles = cycles.into_iter().peekable();
        let start = cycles.peek().map_or(TimestampNs::from_nanos(0), |(_, now)| *now);
        let parts = RunParts {
            spec: RunSpec {
                run_id,
                mode: self.mode,
                config: "{}".into(),
                software_version: "test".into(),
                instruments: vec![spy()],
                data_source: "test".into(),
                parent_run: None,
                starting_cash: self.cash,
                venue: "paper".into(),
                exits: ledger_core::exits::ExitPolicy::default(),
            },
            provider,
            risk: RiskEngine::new(self.risk.clone()),
            kill: KillSwitch::new(self.kill.clone(), false),
            venue: Box::new(PaperVenue::new(self.venue.clone())),
        };
        let mut observer = ();
        let mut runner = Runner::start(log, &mut observer, parts, start, 3).unwrap();
        if self.venue.close_at_end {
            runner = runner.with_close_at_end();
        }
        let mut last = start;
        for (tick, now) in cycles {
            runner.on_tick(&tick, now).unwrap();
            last = now;
        }
        if self.venue.close_at_end {
            runner.close_out(last).unwrap();
        }
        let portfolio = runner.stop("end of data", 0, last).unwrap();
        (portfolio, RunRange { run_id, first, last: log.head().seq })
    }
}

/// Runs in the log so far (each test run starts with `RunStarted`).
fn run_count(log: &MemLog) -> u64 {
    payloads(log).iter().filter(|p| matches!(p, Payload::RunStarted(_))).count() as u64
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

fn events(log: &MemLog) -> Vec<Envelope> {
    let mut events = Vec::new();
    visit_events(log, Seq::new(1), &mut |e| {
        events.push(e);
        ControlFlow::Continue(())
    })
    .unwrap();
    events
}

fn payloads(log: &MemLog) -> Vec<Payload> {
    events(log).into_iter().map(|e| e.payload).collect()
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
    // Decided on bar 0 (close 100), filled at bar 1's open 101: all of the 10000 available
    // then, at 101 * 1.001 per unit = 98.91 -> 98 whole units; fee 98 * 101 * 0.001 =
    // 9.898 -> 9.90.
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
    // Short decided on bar 1, filled at bar 2's open 90: leg 1 sells the 9 long units (fee
    // 8.10); cash 91 + 810 - 8.10 = 892.90.
    assert_eq!((f[1].side, f[1].qty, f[1].price, f[1].fee), (Side::Sell, dec!(9), dec!(90), dec!(8.10)));
    // Leg 2 opens the short with all the money after the close: 892.90 / (90 * 1.01) = 9.82 -> 9.
    assert_eq!((f[2].side, f[2].qty, f[2].price, f[2].fee), (Side::Sell, dec!(9), dec!(90), dec!(8.10)));
    assert_eq!(portfolio.qty(&spy()), dec!(-9));
}

#[test]
fn size_pct_is_resolved_when_the_order_fills_not_when_it_is_decided() {
    // Issue 9: backtesting.py sizes a relative order against the equity available when it
    // fills. Long 9 at 100 (cash 91); the reversal is decided on bar 1 (equity 991 at the
    // close) and fills at bar 2's open 120, where closing the long leaves 91 + 1080 - 10.80
    // = 1160.20: the short is 1160.20 / (120 * 1.01) = 9.57 -> 9 units. (Sized at the
    // decision, as before issue 9, it was 991 / 121.2 = 8.18 -> 8.)
    let mut log = MemLog::new();
    let ticks = [
        bar(0, dec!(100), dec!(100)),
        bar(1, dec!(100), dec!(100)),
        bar(2, dec!(120), dec!(120)),
        bar(3, dec!(120), dec!(120)),
    ];
    let actions = [(Action::Long, dec!(1)), (Action::Short, dec!(1))];
    run_with(&mut log, &ticks, scripted(&actions), commission(dec!(0.01)), dec!(1000));
    let f = fills(&log);
    assert_eq!((f[1].side, f[1].qty, f[1].price, f[1].fee), (Side::Sell, dec!(9), dec!(120), dec!(10.80)));
    assert_eq!((f[2].side, f[2].qty, f[2].price), (Side::Sell, dec!(9), dec!(120)));
    let submitted: Vec<_> = payloads(&log)
        .into_iter()
        .filter_map(|p| match p {
            Payload::OrderSubmitted(o) => Some(o.qty),
            _ => None,
        })
        .collect();
    assert_eq!(
        submitted,
        [OrderQty::EquityFraction(dec!(1)), OrderQty::Units(dec!(9)), OrderQty::EquityFraction(dec!(1))]
    );
}

#[test]
fn a_signal_in_the_direction_held_closes_and_reopens_the_position() {
    // backtesting.py's exclusive_orders=True: a new order closes the open trade first. Long
    // 10 at 100 (no commission); long again decided on bar 1, filled at bar 2's open 110:
    // the 10 units are sold at 110 (cash 1100) and 1100 / 110 = 10 bought back.
    let mut log = MemLog::new();
    let ticks = [
        bar(0, dec!(100), dec!(100)),
        bar(1, dec!(100), dec!(105)),
        bar(2, dec!(110), dec!(110)),
        bar(3, dec!(110), dec!(110)),
    ];
    let actions = [(Action::Long, dec!(1)), (Action::Long, dec!(1))];
    let portfolio = run_with(&mut log, &ticks, scripted(&actions), PaperConfig::default(), dec!(1000));
    let f: Vec<_> = fills(&log).into_iter().map(|f| (f.side, f.qty, f.price)).collect();
    assert_eq!(
        f,
        [(Side::Buy, dec!(10), dec!(100)), (Side::Sell, dec!(10), dec!(110)), (Side::Buy, dec!(10), dec!(110))]
    );
    assert_eq!((portfolio.qty(&spy()), portfolio.realized_pnl), (dec!(10), dec!(100)));
}

#[test]
fn close_at_end_closes_open_positions_at_the_last_close() {
    // Long 9 at bar 1's open 101 (1000 / 101 = 9.9); the data ends on bar 2 (open 104,
    // close 107): closed at 107, fee 0.1% exact (round_fees off): 9 * 107 * 0.001 = 0.963.
    let venue = PaperConfig { close_at_end: true, round_fees: false, ..commission(dec!(0.001)) };
    let ticks = [bar(0, dec!(100), dec!(100)), bar(1, dec!(101), dec!(103)), bar(2, dec!(104), dec!(107))];
    let mut log = MemLog::new();
    let portfolio = run_with(&mut log, &ticks, scripted(&[(Action::Long, dec!(1))]), venue, dec!(1000));
    let f: Vec<_> = fills(&log).into_iter().map(|f| (f.side, f.qty, f.price, f.fee)).collect();
    assert_eq!(f, [(Side::Buy, dec!(9), dec!(101), dec!(0.909)), (Side::Sell, dec!(9), dec!(107), dec!(0.963))]);
    assert!(portfolio.positions.is_empty());
    assert_eq!(portfolio.cash, dec!(1000) + dec!(9) * dec!(6) - dec!(0.909) - dec!(0.963));
    // The close-out is in the last tick's cycle, before RunStopped, caused by no event.
    let events = events(&log);
    let stop = events.len() - 1;
    assert!(matches!(events[stop].payload, Payload::RunStopped(_)));
    let submitted = events.iter().rev().find(|e| matches!(e.payload, Payload::OrderSubmitted(_))).unwrap();
    assert_eq!((submitted.header.cycle_id.get(), submitted.header.causation_seq), (3, None));
    // TC1: without close_at_end the position stays open, marked to the last close.
    let mut log = MemLog::new();
    let open = run_with(&mut log, &ticks, scripted(&[(Action::Long, dec!(1))]), commission(dec!(0.001)), dec!(1000));
    assert_eq!(open.qty(&spy()), dec!(9));
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

/// Replays run `original` of `log` from its own record (ticks, recorded times and
/// decisions) under `run`'s settings; returns the replay's range.
fn replay(log: &mut MemLog, original: RunRange, run: &Run) -> RunRange {
    let reader = log.reader().unwrap();
    let (_, mut recorded, provider) = RecordedRun::open(&*reader, original).unwrap();
    // Read as the replay runs: each cycle hands its decision to the provider.
    let cycles = std::iter::from_fn(|| recorded.next_cycle().unwrap());
    run.go(log, cycles, Box::new(provider)).1
}

/// The decisions of a run, in order.
fn decisions(log: &MemLog, range: RunRange) -> Vec<ProviderAnswer> {
    events(log)
        .into_iter()
        .filter(|e| e.header.run_id == range.run_id)
        .filter_map(|e| match e.payload {
            Payload::DecisionMade(made) => Some(ProviderAnswer::from(made)),
            _ => None,
        })
        .collect()
}

/// Answers given in order.
struct Answers(VecDeque<ProviderAnswer>);

impl DecisionProvider for Answers {
    fn info(&self) -> ProviderInfo {
        ProviderInfo { provider: "test".into(), model: "answers".into(), params: "".into() }
    }

    fn decide(&mut self, _input: &DecisionInput<'_>) -> ProviderAnswer {
        self.0.pop_front().expect("an answer per cycle")
    }
}

fn risk_limits() -> impl Strategy<Value = RiskLimits> {
    (
        proptest::option::of(0i64..3 * DAY),
        proptest::option::of(0u32..100).prop_map(|c| c.map(|c| Decimal::new(i64::from(c), 2))),
        proptest::option::of(1u32..120).prop_map(|c| c.map(|c| Decimal::new(i64::from(c), 2))),
        proptest::option::of(1u32..2_000).prop_map(|c| c.map(Decimal::from)),
        proptest::option::of(0u32..5),
        proptest::option::of(0i64..5 * DAY),
        any::<bool>(),
    )
        .prop_map(|(age, confidence, position_pct, collar, per_day, cooldown, duplicates)| RiskLimits {
            max_price_age_ns: age,
            min_confidence: confidence,
            max_position_pct: position_pct,
            price_collar_bps: collar,
            max_trades_per_day: per_day,
            cooldown_ns: cooldown,
            block_duplicate_orders: duplicates,
            daily_loss_cap: Some(dec!(0.02)),
            ..RiskLimits::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_same_ticks_give_the_same_hashes(closes in proptest::collection::vec(1_000u32..2_000, 2..120)) {
        let ticks = sma_ticks(&closes);
        let (mut a, mut b) = (MemLog::new(), MemLog::new());
        sma_run(&mut a, &ticks);
        sma_run(&mut b, &ticks);
        let hashes = |log: &MemLog| events(log).iter().map(|e| e.header.hash).collect::<Vec<_>>();
        prop_assert_eq!(hashes(&a), hashes(&b));
    }

    /// Any run, paper (cycles at a wall clock that runs ahead of the data by any amount,
    /// irregularly) or backtest, under any risk configuration, replays identically from
    /// its own record.
    #[test]
    fn every_run_replays_identically(
        closes in proptest::collection::vec(1_000u32..2_000, 2..80),
        paper in any::<bool>(),
        lag in proptest::collection::vec(0i64..2 * DAY, 80),
        risk in risk_limits(),
        short in any::<bool>(),
    ) {
        let mut log = MemLog::new();
        let ticks = sma_ticks(&closes);
        let mode = if paper { RunMode::Paper } else { RunMode::Replay };
        let run = Run { mode, risk, venue: commission(dec!(0.001)), ..Run::default() };
        let cycles = ticks.iter().zip(&lag).map(|(t, lag)| {
            let now = if paper { TimestampNs::from_nanos(t.ts.nanos() + lag) } else { t.ts };
            (t.clone(), now)
        });
        let sizing = RuleSizing { size_pct: dec!(0.5), allow_short: short };
        let (_, original) = run.go(&mut log, cycles.collect::<Vec<_>>(), Box::new(SmaCross::new(2, 5, sizing)));
        let replayed = replay(&mut log, original, &run);
        prop_assert_eq!(compare_runs(&log, original, replayed).unwrap(), None);
    }
}

#[test]
fn a_changed_decision_is_reported_at_its_cycle() {
    let closes: Vec<u32> = (0..40).map(|i| 1_500 + ((i * 37) % 23) * 10).collect();
    let mut log = MemLog::new();
    let run = Run { venue: commission(dec!(0.001)), ..Run::default() };
    let sizing = RuleSizing { size_pct: dec!(0.5), allow_short: true };
    let (_, original) = run.go(
        &mut log,
        sma_ticks(&closes).into_iter().map(|t| (t.clone(), t.ts)),
        Box::new(SmaCross::new(2, 5, sizing)),
    );
    let mut answers = decisions(&log, original);
    // Cycle 7 (the seventh decision) now says long where the strategy said something else.
    let changed = &mut answers[6];
    let was = changed.decision.action;
    changed.decision.action = if was == Action::Long { Action::Close } else { Action::Long };
    changed.decision.size_pct = dec!(0.5);
    let replayed = run
        .go(&mut log, sma_ticks(&closes).into_iter().map(|t| (t.clone(), t.ts)), Box::new(Answers(answers.into())))
        .1;
    let divergence = compare_runs(&log, original, replayed).unwrap().expect("a divergence");
    assert_eq!(divergence.cycle, 7);
    assert!(divergence.fields.iter().any(|(field, _, _)| field.contains("action")), "{:?}", divergence.fields);
}

#[test]
fn a_recorded_run_is_read_back_cycle_by_cycle_with_its_times_and_decisions() {
    let mut log = MemLog::new();
    let ticks = sma_ticks(&[1000, 1010, 1020, 1000, 990, 1030, 1050]);
    let run = Run { mode: RunMode::Paper, ..Run::default() };
    let late = |t: &Tick| TimestampNs::from_nanos(t.ts.nanos() + 7);
    let sizing = RuleSizing { size_pct: dec!(0.5), allow_short: true };
    let (_, range) = run.go(
        &mut log,
        ticks.iter().map(|t| (t.clone(), late(t))).collect::<Vec<_>>(),
        Box::new(SmaCross::new(2, 5, sizing)),
    );
    let reader = log.reader().unwrap();
    let (started, mut recorded, mut provider) = RecordedRun::open(&*reader, range).unwrap();
    assert_eq!((started.provider.as_ref(), started.model.as_ref()), ("rules", "sma-cross"));
    let originals = decisions(&log, range);
    let mut n = 0;
    while let Some((tick, now)) = recorded.next_cycle().unwrap() {
        assert_eq!((&tick, now), (&ticks[n], late(&ticks[n])));
        let input = DecisionInput {
            ts: tick.ts,
            instrument: &tick.instrument,
            price: dec!(1),
            bar: None,
            quote: None,
            position_qty: dec!(0),
            equity: dec!(0),
            context: None,
        };
        assert_eq!(provider.decide(&input), originals[n]);
        n += 1;
    }
    assert_eq!(n, ticks.len());
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
    let run = Run { kill, cash: dec!(1000), ..Run::default() };
    let portfolio = run.go(&mut log, ticks.iter().map(|t| (t.clone(), t.ts)), scripted(&actions)).0;
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

/// A model that answers `long 0.1` after one tool call and two requests costing
/// `cost_usd`, counting how often it is asked; its tool is a dry run of the risk engine
/// through the cycle's context.
struct Metered {
    asked: std::rc::Rc<std::cell::Cell<u32>>,
    cost_usd: Decimal,
}

impl DecisionProvider for Metered {
    fn info(&self) -> ProviderInfo {
        ProviderInfo { provider: "test".into(), model: "metered".into(), params: "".into() }
    }

    fn decide(&mut self, input: &DecisionInput<'_>) -> ProviderAnswer {
        self.asked.set(self.asked.get() + 1);
        let decision = Decision::new(Action::Long, dec!(0.1), Decimal::ONE, "model".into());
        let context = input.context.expect("the engine fills the context");
        let dry = context.check_risk(&decision);
        let tool = ToolCalled {
            round: 1,
            name: "check_risk".into(),
            arguments: "{}".into(),
            result: format!("approved={}", dry.approved).as_str().into(),
        };
        let call = ModelCalled {
            requests: 2,
            http_status: Some(200),
            error: "".into(),
            cost_usd: self.cost_usd,
            indicators: "".into(),
        };
        ProviderAnswer {
            decision,
            parse_status: ParseStatus::Ok,
            prompt: "{}".into(),
            raw_output: "{}".into(),
            latency_us: 0,
            tokens_in: 10,
            tokens_out: 5,
            record: Some(Box::new(ledger_core::decision::CallRecord { tool_calls: vec![tool], call })),
        }
    }
}

/// Minute bars of one instrument, `seconds` apart from `start` (ns), close 100.
fn bars_every(start: i64, seconds: i64, n: i64) -> Vec<Tick> {
    (0..n)
        .map(|i| {
            let mut tick = bar(0, dec!(100), dec!(100));
            tick.ts = TimestampNs::from_nanos(start + i * seconds * 1_000_000_000);
            tick
        })
        .collect()
}

/// Runs `ticks` with a metered model under `risk`; returns how often it was asked.
fn metered_run(log: &mut MemLog, ticks: &[Tick], risk: RiskLimits, cost_usd: Decimal) -> (u32, RunRange) {
    let asked = std::rc::Rc::new(std::cell::Cell::new(0));
    let run = Run { risk, ..Run::default() };
    let provider = Box::new(Metered { asked: asked.clone(), cost_usd });
    let (_, range) = run.go(log, ticks.iter().map(|t| (t.clone(), t.ts)), provider);
    (asked.get(), range)
}

/// Each cycle's decision reason and, for a refused one, its verdict's failed check.
fn guarded_cycles(log: &MemLog, range: RunRange) -> Vec<(String, Option<RiskCheck>)> {
    let mut out = Vec::new();
    for event in events(log).into_iter().filter(|e| e.header.run_id == range.run_id) {
        match event.payload {
            Payload::DecisionMade(made) => out.push((made.parsed.reason.to_string(), None)),
            Payload::RiskVerdict(verdict) => {
                if let Some(last) = out.last_mut() {
                    last.1 = verdict.checks.into_iter().find(|c| !c.passed);
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn llm_calls_per_window_are_a_guard_that_holds_without_asking_the_model() {
    let mut log = MemLog::new();
    // A bar every 10 s; at most 4 requests in a minute; each decision takes 2.
    let ticks = bars_every(0, 10, 9);
    let risk = RiskLimits { max_llm_calls_per_window: Some(4), ..RiskLimits::default() };
    let (asked, range) = metered_run(&mut log, &ticks, risk.clone(), Decimal::ZERO);
    let cycles = guarded_cycles(&log, range);
    let reasons: Vec<&str> = cycles.iter().map(|(r, _)| r.as_str()).collect();
    let guard = "llm guard: max_llm_calls_per_window: value 4 against limit 4";
    // 0 s and 10 s ask; 20..50 s hold (4 requests in the window); the window at 60 s
    // is (0 s, 60 s], so 0 s's requests have left it, at 70 s 10 s's; at 80 s it holds
    // 60 s's and 70 s's again.
    assert_eq!(reasons, ["model", "model", guard, guard, guard, guard, "model", "model", guard]);
    assert_eq!(asked, 4, "the model was asked while the guard held");
    let check = cycles[2].1.clone().expect("the refused verdict shows the guard");
    assert_eq!((check.id, check.value, check.limit), (RiskCheckId::MaxLlmCallsPerWindow, dec!(4), dec!(4)));
    // Each asked decision is followed by its tool call and model call, caused by it.
    let all = events(&log);
    let decision = all.iter().find(|e| matches!(e.payload, Payload::DecisionMade(_))).unwrap();
    let next: Vec<(&str, Option<Seq>)> = all
        .iter()
        .skip_while(|e| e.header.seq <= decision.header.seq)
        .take(3)
        .map(|e| (e.payload.kind(), e.header.causation_seq))
        .collect();
    let by = Some(decision.header.seq);
    assert_eq!(next, [("ToolCalled", by), ("ModelCalled", by), ("RiskVerdict", by)]);
    // The dry run changed nothing: the verdict after it approved the same long.
    assert!(
        matches!(&all[decision.header.seq.get() as usize].payload, Payload::ToolCalled(t) if &*t.result == "approved=true")
    );

    // A replay from the record re-emits the tool and model calls and holds where the
    // original held: the same events.
    let replayed = replay(&mut log, range, &Run { risk, ..Run::default() });
    assert_eq!(compare_runs(&*log.reader().unwrap(), range, replayed).unwrap(), None);
}

#[test]
fn the_daily_llm_budget_holds_once_spent_until_the_next_utc_day() {
    let mut log = MemLog::new();
    // Three bars on day 0, two on day 1; each decision costs $0.50 of a $1 budget.
    let mut ticks = bars_every(0, 60, 3);
    ticks.extend(bars_every(DAY, 60, 2));
    let risk = RiskLimits { llm_daily_budget_usd: Some(dec!(1)), ..RiskLimits::default() };
    let (asked, range) = metered_run(&mut log, &ticks, risk, dec!(0.5));
    let cycles = guarded_cycles(&log, range);
    let reasons: Vec<&str> = cycles.iter().map(|(r, _)| r.as_str()).collect();
    let guard = "llm guard: llm_daily_budget_usd: value 1.0 against limit 1";
    assert_eq!(reasons, ["model", "model", guard, "model", "model"]);
    assert_eq!(asked, 4);
    let check = cycles[2].1.clone().unwrap();
    assert_eq!((check.id, check.value, check.limit), (RiskCheckId::LlmDailyBudgetUsd, dec!(1.0), dec!(1)));
}
