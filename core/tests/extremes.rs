//! Extreme decimals through every piece of arithmetic: indicators, sizing, the account,
//! the risk engine, the kill switch and whole runs. Anything may be refused (a hold, a
//! rejected order, an overflow error that stops the run), nothing may panic.

use ledger_core::decision::{DecisionInput, DecisionProvider};
use ledger_core::engine::RunSpec;
use ledger_core::event::*;
use ledger_core::exits::ExitPolicy;
use ledger_core::feed::Tick;
use ledger_core::ids::{ClientOrderId, FillId, InstrumentId, RunId};
use ledger_core::log::{EventLog, MemLog};
use ledger_core::portfolio::Portfolio;
use ledger_core::risk::{KillSwitch, KillSwitchLimits, RiskEngine, RiskInput, RiskLimits};
use ledger_core::runner::{RunParts, Runner};
use ledger_core::sizing::{fee, floor_lot, units_for, Costs, Funds};
use ledger_core::strategy::{EmaRsi, RuleSizing, Sma, SmaCross};
use ledger_core::time::TimestampNs;
use ledger_core::venue::{FillModel, PaperConfig, PaperVenue};
use proptest::prelude::*;
use rust_decimal::Decimal;

/// Any decimal, with the extremes over-represented.
fn any_decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        Just(Decimal::MAX),
        Just(Decimal::MIN),
        Just(Decimal::ZERO),
        Just(Decimal::new(1, 28)),
        Just(Decimal::new(-1, 28)),
        (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Decimal::new(m, s)),
        (any::<[u32; 3]>(), any::<bool>(), 0u32..=28)
            .prop_map(|([lo, mid, hi], neg, scale)| Decimal::from_parts(lo, mid, hi, neg, scale)),
    ]
}

fn positive() -> impl Strategy<Value = Decimal> {
    any_decimal().prop_map(|d| d.abs()).prop_filter("positive", |d| *d > Decimal::ZERO)
}

fn spy() -> InstrumentId {
    InstrumentId::new("SPY").unwrap()
}

fn fill(side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> OrderFilled {
    OrderFilled {
        client_order_id: ClientOrderId::new("o").unwrap(),
        fill_id: FillId::new(1),
        instrument: spy(),
        side,
        qty,
        price,
        fee,
        liquidity: Liquidity::Taker,
    }
}

fn bar(n: i64, price: Decimal) -> Tick {
    Tick {
        ts: TimestampNs::from_nanos(n * 60_000_000_000),
        instrument: spy(),
        data: TickData::Bar(Bar {
            open: price,
            high: price,
            low: price,
            close: price,
            volume: None,
            interval_ns: 60_000_000_000,
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn indicators_and_strategies_never_panic(values in proptest::collection::vec(any_decimal(), 1..60)) {
        let mut sma = Sma::new(3);
        let sizing = RuleSizing { size_pct: Decimal::ONE, allow_short: true };
        let mut cross = SmaCross::new(2, 5, sizing.clone());
        let mut ema = EmaRsi::new(2, 5, 3, 70.0, 30.0, sizing);
        for (i, value) in values.iter().enumerate() {
            let _ = sma.push(*value);
            let input = DecisionInput { ts: TimestampNs::from_nanos(i as i64), instrument: &spy(), price: *value, bar: None, quote: None, position_qty: Decimal::ZERO, equity: Decimal::ZERO, context: None };
            let _ = cross.decide(&input);
            let _ = ema.decide(&input);
        }
    }

    #[test]
    fn sizing_never_panics(
        notional in any_decimal(), budget in any_decimal(), price in any_decimal(),
        rate in any_decimal(), per_unit in any_decimal(), min in any_decimal(), lot in any_decimal(),
        cash in any_decimal(), equity in any_decimal(), gross in any_decimal(), leverage in any_decimal(),
    ) {
        let costs = Costs { commission_rate: rate, commission_per_unit: per_unit, commission_min: min, lot_size: lot, money_decimals: 2, round_fees: true };
        let units = units_for(notional, budget, price, &costs);
        prop_assert!(units >= Decimal::ZERO);
        let _ = fee(notional, price, &costs);
        let _ = floor_lot(notional, lot);
        let funds = Funds { cash, equity, gross_exposure: gross };
        prop_assert!(funds.budget(Side::Buy, leverage) >= Decimal::ZERO);
        prop_assert!(funds.budget(Side::Sell, leverage) >= Decimal::ZERO);
    }

    /// The account refuses what it cannot represent and otherwise keeps its invariant
    /// (equity and exposure computable).
    #[test]
    fn the_account_refuses_overflow_and_never_panics(
        cash in any_decimal(),
        steps in proptest::collection::vec((any::<bool>(), any::<bool>(), positive(), positive(), any_decimal()), 1..20),
    ) {
        let mut p = Portfolio::new(cash);
        for (is_fill, buy, qty, price, fee_value) in steps {
            let before = p.clone();
            let result = if is_fill {
                p.apply_fill(&fill(if buy { Side::Buy } else { Side::Sell }, qty, price, fee_value.abs()))
            } else {
                p.mark(&spy(), price)
            };
            if result.is_err() {
                prop_assert_eq!(&p, &before, "a refused change leaves the account as it was");
            }
            let _ = (p.equity(), p.gross_exposure(), p.unrealized_pnl(), p.drawdown());
        }
    }

    #[test]
    fn risk_checks_and_the_kill_switch_never_panic(
        size_pct in any_decimal(), confidence in any_decimal(), price in any_decimal(), previous in any_decimal(),
        cash in positive(), limit in positive(), now in any::<i64>(), tick in any::<i64>(),
    ) {
        let limits = RiskLimits {
            max_price_age_ns: Some(1), min_confidence: Some(limit), max_position_pct: Some(limit), max_position_value: Some(limit),
            min_position_value: Some(limit), max_gross_leverage: Some(limit), max_open_positions: Some(1),
            max_order_notional: Some(limit), max_order_qty: Some(limit), price_collar_bps: Some(limit),
            daily_loss_cap: Some(limit), max_trades_per_day: Some(1), cooldown_ns: Some(i64::MAX),
            rate_window_ns: Some(i64::MAX), max_decisions_per_window: Some(1), max_orders_per_window: Some(1),
            block_duplicate_orders: true, require_stop_loss: true, max_loss_at_stop: Some(limit),
            max_llm_calls_per_window: Some(1), llm_daily_budget_usd: Some(limit),
        };
        let mut risk = RiskEngine::new(limits);
        // Exit levels from extreme distances and prices, the decision's own and the policy's.
        let policy = ExitPolicy { stop_loss_pct: Some(limit), take_profit_pct: Some(size_pct), trailing_stop_pct: Some(confidence) };
        let portfolio = Portfolio::new(cash);
        risk.on_tick(TimestampNs::from_nanos(tick), portfolio.equity());
        for action in [Action::Long, Action::Short, Action::Close, Action::Hold] {
            let terms = OrderTerms { limit_price: Some(previous), stop_loss: Some(price), ..OrderTerms::default() };
            let decision = Decision::new(action, size_pct, confidence, "x".into()).with_terms(terms);
            let bracket = policy.bracket(Side::Sell, price, decision.terms());
            let _ = ledger_core::exits::exit_orders(&bracket, Side::Buy, previous);
            let _ = risk.judge(&RiskInput {
                decision: &decision, instrument: &spy(), price: Some(price), previous_price: Some(previous),
                tick_ts: TimestampNs::from_nanos(tick), now: TimestampNs::from_nanos(now), portfolio: &portfolio,
                kill_switch_tripped: false, bracket: &bracket,
            });
            risk.on_order(TimestampNs::from_nanos(tick), &decision);
            risk.on_model_call(TimestampNs::from_nanos(tick), 3, limit);
            let _ = risk.llm_guard(TimestampNs::from_nanos(now));
        }
        let kill = KillSwitch::new(KillSwitchLimits { max_gain: Some(limit), max_loss: Some(limit), max_drawdown: Some(limit), max_consecutive_failures: Some(1), max_provider_errors: Some(1), close_positions: true }, false);
        let _ = kill.check(&portfolio);
    }

    /// Whole runs on extreme prices and cash: each cycle either runs or the run stops with
    /// an error; the log keeps whole cycles only and verifies.
    #[test]
    fn runs_on_extreme_prices_stop_cleanly_or_finish(
        prices in proptest::collection::vec(positive(), 2..40),
        cash in positive(),
        slippage in 0u32..10_000,
        model in prop_oneof![Just(FillModel::NextOpen), Just(FillModel::Close)],
        exit in 1i64..99,
    ) {
        let mut log = MemLog::new();
        let parts = RunParts {
            spec: RunSpec {
                run_id: RunId::new(1), mode: RunMode::Replay, config: "{}".into(), software_version: "test".into(),
                instruments: vec![spy()], data_source: "test".into(), parent_run: None, starting_cash: cash,
                venue: "paper".into(),
                // Stops, targets and trailing stops on extreme prices.
                exits: ExitPolicy {
                    stop_loss_pct: Some(Decimal::new(exit, 2)),
                    take_profit_pct: Some(Decimal::new(exit, 1)),
                    trailing_stop_pct: Some(Decimal::new(exit, 2)),
                },
            },
            provider: Box::new(SmaCross::new(1, 2, RuleSizing { size_pct: Decimal::ONE, allow_short: true })),
            risk: RiskEngine::new(RiskLimits { price_collar_bps: Some(Decimal::from(100)), ..RiskLimits::default() }),
            kill: KillSwitch::new(KillSwitchLimits { max_drawdown: Some(Decimal::new(5, 1)), close_positions: true, ..KillSwitchLimits::default() }, false),
            venue: Box::new(PaperVenue::new(PaperConfig {
                fill_model: model, slippage_bps: Decimal::from(slippage), commission_rate: Decimal::new(1, 3),
                lot_size: Decimal::new(1, 3), ..PaperConfig::default()
            })),
        };
        let mut observer = ();
        let mut runner = Runner::start(&mut log, &mut observer, parts, TimestampNs::from_nanos(0), 4).unwrap();
        let mut stopped = false;
        for (i, price) in prices.iter().enumerate() {
            let tick = bar(i as i64, *price);
            if runner.on_tick(&tick, tick.ts).is_err() {
                stopped = true;
                break;
            }
        }
        if !stopped {
            let _ = runner.stop("end of data", 0, TimestampNs::from_nanos(0));
        }
        let verdict = ledger_core::verify::verify(&log).unwrap();
        prop_assert!(matches!(verdict, ledger_core::verify::Verdict::Intact { .. }), "{verdict:?}");
        prop_assert!(log.head().seq.get() >= 1);
    }
}
