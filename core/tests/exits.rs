//! Protective exits and limit entries through the whole pipeline in memory (engine,
//! runner, paper venue), bar by bar against hand-worked cases: backtesting.py 0.6.6's
//! fill rules for stops and limits on a bar's open, high and low, stop before
//! take-profit, one-cancels-other, trailing stops amended per tick, reduce-only closes,
//! time in force, the kill switch leaving exits working, and the risk checks on exits.

use std::collections::VecDeque;

use ledger_core::decision::{DecisionInput, DecisionProvider, ProviderAnswer, ProviderInfo};
use ledger_core::engine::{OperatorCommand, RunSpec};
use ledger_core::event::*;
use ledger_core::exits::ExitPolicy;
use ledger_core::feed::Tick;
use ledger_core::ids::{InstrumentId, RunId};
use ledger_core::log::{visit_events, MemLog};
use ledger_core::risk::{KillSwitch, KillSwitchLimits, RiskEngine, RiskLimits};
use ledger_core::runner::{RunParts, Runner};
use ledger_core::time::TimestampNs;
use ledger_core::venue::{PaperConfig, PaperVenue};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const HOUR: i64 = 3_600_000_000_000;

fn spy() -> InstrumentId {
    InstrumentId::new("SPY").unwrap()
}

/// Hourly bars from (open, high, low, close).
fn bars(ohlc: &[(Decimal, Decimal, Decimal, Decimal)]) -> Vec<Tick> {
    ohlc.iter()
        .enumerate()
        .map(|(i, &(open, high, low, close))| Tick {
            ts: TimestampNs::from_nanos(i as i64 * HOUR),
            instrument: spy(),
            data: TickData::Bar(Bar { open, high, low, close, volume: None, interval_ns: HOUR }),
        })
        .collect()
}

/// A flat bar at `p`.
fn flat(p: Decimal) -> (Decimal, Decimal, Decimal, Decimal) {
    (p, p, p, p)
}

/// A provider answering one decision per tick, then `hold`.
struct Scripted(VecDeque<Decision>);

impl DecisionProvider for Scripted {
    fn info(&self) -> ProviderInfo {
        ProviderInfo { provider: "test".into(), model: "scripted".into(), params: "".into() }
    }

    fn decide(&mut self, _input: &DecisionInput<'_>) -> ProviderAnswer {
        let decision = self.0.pop_front().unwrap_or_else(hold);
        ProviderAnswer {
            decision,
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

fn hold() -> Decision {
    Decision::new(Action::Hold, Decimal::ZERO, Decimal::ZERO, "wait".into())
}

fn go(action: Action, terms: OrderTerms) -> Decision {
    Decision::new(action, Decimal::ONE, Decimal::ONE, "signal".into()).with_terms(terms)
}

fn long(terms: OrderTerms) -> Decision {
    go(Action::Long, terms)
}

fn stops(stop_loss: Option<Decimal>, take_profit: Option<Decimal>) -> OrderTerms {
    OrderTerms { stop_loss, take_profit, ..OrderTerms::default() }
}

/// A run's setup; `trip_before` trips the kill switch by command before that tick.
#[derive(Default)]
struct Case {
    exits: ExitPolicy,
    risk: RiskLimits,
    trip_before: Option<usize>,
}

impl Case {
    /// Runs `decisions` (one per tick) over `ticks` on a 10,000 account with whole
    /// units and no costs; returns every payload recorded.
    fn run(&self, ticks: &[Tick], decisions: Vec<Decision>) -> Vec<Payload> {
        let mut log = MemLog::new();
        let parts = RunParts {
            spec: RunSpec {
                run_id: RunId::new(1),
                mode: RunMode::Replay,
                config: "{}".into(),
                software_version: "test".into(),
                instruments: vec![spy()],
                data_source: "test".into(),
                parent_run: None,
                starting_cash: dec!(10000),
                venue: "paper".into(),
                exits: self.exits.clone(),
            },
            provider: Box::new(Scripted(decisions.into())),
            risk: RiskEngine::new(self.risk.clone()),
            kill: KillSwitch::new(KillSwitchLimits::default(), false),
            venue: Box::new(PaperVenue::new(PaperConfig { round_fees: false, ..PaperConfig::default() })),
        };
        let mut observer = ();
        let mut runner = Runner::start(&mut log, &mut observer, parts, ticks[0].ts, 1).unwrap();
        for (i, tick) in ticks.iter().enumerate() {
            if self.trip_before == Some(i) {
                let trip = OperatorCommand::Trip { by: "alice".into(), reason: "test".into() };
                runner.on_command(&trip, tick.ts).unwrap();
            }
            runner.on_tick(tick, tick.ts).unwrap();
        }
        runner.stop("end of data", 0, ticks[ticks.len() - 1].ts).unwrap();
        let mut payloads = Vec::new();
        visit_events(&log, ledger_core::ids::Seq::new(1), &mut |event: Envelope| {
            payloads.push(event.payload);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        payloads
    }
}

/// (side, qty, price) of every fill.
fn fills(payloads: &[Payload]) -> Vec<(Side, Decimal, Decimal)> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::OrderFilled(f) => Some((f.side, f.qty, f.price)),
            _ => None,
        })
        .collect()
}

/// The protective exits placed: (kind, side, qty, stop or limit price).
fn exits_placed(payloads: &[Payload]) -> Vec<(&'static str, Side, Decimal, Decimal)> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::OrderSubmitted(o) => o.protects.as_ref().map(|exit| {
                let OrderQty::Units(qty) = o.qty else { panic!("exits are for units") };
                (exit.kind.name(), o.side, qty, o.stop_price.or(o.limit_price).unwrap())
            }),
            _ => None,
        })
        .collect()
}

fn cancel_reasons(payloads: &[Payload]) -> Vec<String> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::OrderCanceled(c) => Some(c.reason.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_bar_touching_the_stop_and_the_target_fills_the_stop_and_cancels_the_target() {
    // Long decided at 100 with a 95 stop and a 110 target; the entry fills at the next
    // open (100), its exits are placed and the rest of that bar reaches both.
    let ticks = bars(&[flat(dec!(100)), (dec!(100), dec!(111), dec!(94), dec!(100)), flat(dec!(100))]);
    let payloads = Case::default().run(&ticks, vec![long(stops(Some(dec!(95)), Some(dec!(110))))]);
    assert_eq!(
        exits_placed(&payloads),
        [("stop_loss", Side::Sell, dec!(100), dec!(95)), ("take_profit", Side::Sell, dec!(100), dec!(110))]
    );
    assert_eq!(fills(&payloads), [(Side::Buy, dec!(100), dec!(100)), (Side::Sell, dec!(100), dec!(95))]);
    let reasons = cancel_reasons(&payloads);
    assert_eq!(reasons, ["one-cancels-other: stop_loss r1-2 filled"], "the target goes with the stop's fill");
}

#[test]
fn a_gap_through_the_stop_fills_at_the_open_and_targets_need_the_high_above_them() {
    let terms = stops(Some(dec!(95)), Some(dec!(105)));
    // TC0: the bar after the entry opens at 90, below the stop: filled at 90, not 95.
    let gap = bars(&[flat(dec!(100)), flat(dec!(100)), (dec!(90), dec!(92), dec!(89), dec!(91))]);
    assert_eq!(fills(&Case::default().run(&gap, vec![long(terms.clone())]))[1], (Side::Sell, dec!(100), dec!(90)));
    // TC1: a high exactly at the target does not fill it (backtesting.py: high > limit);
    // one above fills at the target; a gap above it fills at the open.
    let touch = bars(&[flat(dec!(100)), flat(dec!(100)), (dec!(100), dec!(105), dec!(99), dec!(104))]);
    assert_eq!(fills(&Case::default().run(&touch, vec![long(terms.clone())])).len(), 1);
    let above = bars(&[flat(dec!(100)), flat(dec!(100)), (dec!(100), dec!(105.01), dec!(99), dec!(104))]);
    assert_eq!(fills(&Case::default().run(&above, vec![long(terms.clone())]))[1], (Side::Sell, dec!(100), dec!(105)));
    let gap_up = bars(&[flat(dec!(100)), flat(dec!(100)), (dec!(107), dec!(108), dec!(106), dec!(107))]);
    assert_eq!(fills(&Case::default().run(&gap_up, vec![long(terms)]))[1], (Side::Sell, dec!(100), dec!(107)));
}

#[test]
fn the_run_policy_places_exits_from_the_decision_price_and_shorts_mirror_them() {
    let policy =
        ExitPolicy { stop_loss_pct: Some(dec!(0.02)), take_profit_pct: Some(dec!(0.05)), trailing_stop_pct: None };
    let case = Case { exits: policy, ..Case::default() };
    let ticks = bars(&[flat(dec!(200)), flat(dec!(201)), (dec!(201), dec!(202), dec!(196), dec!(197))]);
    let short = go(Action::Short, OrderTerms::default());
    let payloads = case.run(&ticks, vec![short]);
    // Decided at 200: the short's stop 2% above (204), its target 5% below (190); 49
    // units (10,000 / 201 at the fill, floored).
    assert_eq!(
        exits_placed(&payloads),
        [("stop_loss", Side::Buy, dec!(49), dec!(204.00)), ("take_profit", Side::Buy, dec!(49), dec!(190.00))]
    );
    let Some(Payload::OrderSubmitted(entry)) =
        payloads.iter().find(|p| matches!(p, Payload::OrderSubmitted(o) if o.protects.is_none()))
    else {
        panic!("no entry")
    };
    assert_eq!(
        entry.bracket.as_deref(),
        Some(&Bracket { stop_loss: Some(dec!(204.00)), take_profit: Some(dec!(190.00)), trailing_stop_pct: None })
    );
    assert_eq!(fills(&payloads).len(), 1, "neither exit reached");
}

#[test]
fn a_trailing_stop_follows_the_highs_and_fills_where_it_trailed_to() {
    let policy = ExitPolicy { trailing_stop_pct: Some(dec!(0.1)), ..ExitPolicy::default() };
    let case = Case { exits: policy, ..Case::default() };
    let ticks = bars(&[
        flat(dec!(100)),
        flat(dec!(100)),                              // entry at 100: stop at 90
        (dec!(100), dec!(120), dec!(100), dec!(120)), // checked at 90, then trails to 108
        (dec!(118), dec!(119), dec!(107), dec!(110)), // reaches 108
        (dec!(130), dec!(130), dec!(130), dec!(130)),
    ]);
    let payloads = case.run(&ticks, vec![long(OrderTerms::default())]);
    assert_eq!(exits_placed(&payloads), [("trailing_stop", Side::Sell, dec!(100), dec!(90.0))]);
    let amended: Vec<_> = payloads
        .iter()
        .filter_map(|p| match p {
            Payload::OrderAmended(a) => Some((a.stop_price, a.reason.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(amended, [(dec!(108.0), "trailing 0.1 from the best price 120".to_string())]);
    assert_eq!(fills(&payloads)[1], (Side::Sell, dec!(100), dec!(108.0)));
}

#[test]
fn a_signal_that_closes_cancels_the_exits_even_on_a_bar_that_reaches_the_stop() {
    let terms = stops(Some(dec!(95)), None);
    // TC0: `close` at bar 2 fills at bar 3's open; the stop is canceled with it.
    let ticks = bars(&[flat(dec!(100)), flat(dec!(100)), flat(dec!(101)), flat(dec!(102)), flat(dec!(103))]);
    let close = go(Action::Close, OrderTerms::default());
    let payloads = Case::default().run(&ticks, vec![long(terms.clone()), hold(), close]);
    assert_eq!(fills(&payloads), [(Side::Buy, dec!(100), dec!(100)), (Side::Sell, dec!(100), dec!(102))]);
    assert_eq!(cancel_reasons(&payloads), ["no position left to reduce after r1-3 filled"]);
    // TC1: a reversal decided at bar 2 whose next bar also reaches the stop: the
    // closing leg fills at the open first (closes go first, as in backtesting.py's
    // queue), the stop is left with nothing to reduce and canceled, and the short opens
    // at the open. Never a double sell.
    let ticks = bars(&[flat(dec!(100)), flat(dec!(100)), flat(dec!(99)), (dec!(96), dec!(97), dec!(94), dec!(95))]);
    let short = go(Action::Short, OrderTerms::default());
    let payloads = Case::default().run(&ticks, vec![long(terms), hold(), short]);
    let fills = fills(&payloads);
    assert_eq!(fills[..2], [(Side::Buy, dec!(100), dec!(100)), (Side::Sell, dec!(100), dec!(96))]);
    assert_eq!((fills[2].0, fills[2].2), (Side::Sell, dec!(96)), "the short's entry");
    assert_eq!(fills.len(), 3);
    assert_eq!(cancel_reasons(&payloads), ["no position left to reduce after r1-3 filled"]);
}

#[test]
fn a_kill_switch_trip_leaves_the_exits_working() {
    let ticks = bars(&[flat(dec!(100)), flat(dec!(100)), flat(dec!(99)), (dec!(97), dec!(97), dec!(94), dec!(95))]);
    let case = Case { trip_before: Some(2), ..Case::default() };
    let payloads = case.run(&ticks, vec![long(stops(Some(dec!(95)), None))]);
    assert!(payloads.iter().any(|p| matches!(p, Payload::KillSwitchTripped(_))));
    assert_eq!(fills(&payloads)[1], (Side::Sell, dec!(100), dec!(95)), "the stop still protects the position");
}

#[test]
fn limit_entries_fill_at_the_limit_or_better_and_expire_by_their_time_in_force() {
    let limit = |price, tif| OrderTerms { limit_price: Some(price), time_in_force: tif, ..OrderTerms::default() };
    // TC0: good till canceled: waits for a low below the limit, fills at the limit.
    let ticks = bars(&[flat(dec!(100)), flat(dec!(99)), (dec!(98), dec!(98), dec!(94), dec!(96))]);
    let payloads = Case::default().run(&ticks, vec![long(limit(dec!(95), None))]);
    assert_eq!(fills(&payloads), [(Side::Buy, dec!(105), dec!(95))]);
    // TC1: a gap below the limit fills at the open.
    let ticks = bars(&[flat(dec!(100)), (dec!(90), dec!(91), dec!(89), dec!(90))]);
    assert_eq!(fills(&Case::default().run(&ticks, vec![long(limit(dec!(95), None))]))[0].2, dec!(90));
    // TC2: immediate or cancel: not filled on the first bar it could fill on: canceled.
    let ticks = bars(&[flat(dec!(100)), flat(dec!(99)), flat(dec!(90))]);
    let payloads = Case::default().run(&ticks, vec![long(limit(dec!(95), Some(TimeInForce::Ioc)))]);
    assert!(fills(&payloads).is_empty());
    assert_eq!(cancel_reasons(&payloads), ["immediate-or-cancel: not filled on the first tick it could fill on"]);
    // TC3: a day order is canceled on the first tick of the next UTC day (hour 24).
    let mut ticks = bars(&[flat(dec!(100)); 26]);
    ticks[25].data = TickData::Bar(Bar {
        open: dec!(90),
        high: dec!(90),
        low: dec!(90),
        close: dec!(90),
        volume: None,
        interval_ns: HOUR,
    });
    let payloads = Case::default().run(&ticks, vec![long(limit(dec!(95), Some(TimeInForce::Day)))]);
    assert!(fills(&payloads).is_empty(), "expired before the price came down");
    assert_eq!(cancel_reasons(&payloads), ["day order expired at the end of its UTC day"]);
}

#[test]
fn risk_checks_see_the_exits() {
    let verdicts = |case: &Case, decision: Decision| -> Vec<(bool, String)> {
        let payloads = case.run(&bars(&[flat(dec!(100)), flat(dec!(100))]), vec![decision]);
        payloads
            .iter()
            .filter_map(|p| match p {
                Payload::RiskVerdict(v) => Some((v.approved, v.reason.to_string())),
                _ => None,
            })
            .collect()
    };
    // TC0: a long's stop above its price is refused.
    let wrong = verdicts(&Case::default(), long(stops(Some(dec!(101)), None)));
    assert_eq!(wrong[0], (false, "exit_levels: value 1 against limit 0".to_string()));
    // TC1: a stop required and none given.
    let required = Case { risk: RiskLimits { require_stop_loss: true, ..RiskLimits::default() }, ..Case::default() };
    assert!(!verdicts(&required, long(OrderTerms::default()))[0].0);
    assert!(verdicts(&required, long(stops(Some(dec!(99)), None)))[0].0);
    // TC2: all the equity 5% from its stop risks 5%, above a 2% limit.
    let per_trade =
        Case { risk: RiskLimits { max_loss_at_stop: Some(dec!(0.02)), ..RiskLimits::default() }, ..Case::default() };
    assert_eq!(
        verdicts(&per_trade, long(stops(Some(dec!(95)), None)))[0],
        (false, "max_loss_at_stop: value 0.05 against limit 0.02".to_string())
    );
}
