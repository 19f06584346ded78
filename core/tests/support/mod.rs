//! Sample events and proptest strategies shared by the core's integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use ledger_core::chain::Hash32;
use ledger_core::event::*;
use ledger_core::ids::*;
use ledger_core::time::TimestampNs;
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

pub fn text(s: &str) -> Text {
    Arc::from(s)
}

pub fn inst(s: &str) -> InstrumentId {
    InstrumentId::new(s).unwrap()
}

pub fn coid(s: &str) -> ClientOrderId {
    ClientOrderId::new(s).unwrap()
}

/// One hand-written example of every payload kind, in schema order (and, after them,
/// examples of variants added later).
pub fn one_of_each() -> Vec<Payload> {
    vec![
        Payload::RunStarted(Box::new(RunStarted {
            mode: RunMode::Replay,
            config_hash: Hash32::digest(b"{}"),
            config: text("{}"),
            software_version: text("0.1.0"),
            venue: text("paper"),
            instruments: vec![inst("SPY")],
            provider: text("rules"),
            model: text("sma-cross"),
            params: text("fast=10 slow=30"),
            parent_run: Some(RunId::new(1)),
            data_source: text("spy_daily.csv"),
            starting_cash: dec!(100000.00),
            kill_switch_tripped: false,
        })),
        Payload::RunStopped(RunStopped { reason: text("end of data"), skipped_rows: 0 }),
        Payload::MarketTick(MarketTick {
            instrument: inst("SPY"),
            data: TickData::Bar(Bar {
                open: dec!(97.40),
                high: dec!(98.15),
                low: dec!(97.03),
                close: dec!(97.96),
                volume: Some(dec!(2136900)),
                interval_ns: 86_400_000_000_000,
            }),
        }),
        Payload::MarketTick(MarketTick {
            instrument: inst("SPY"),
            data: TickData::Trade(Trade { price: dec!(167.03), size: dec!(100), aggressor: Some(Side::Buy) }),
        }),
        Payload::MarketTick(MarketTick {
            instrument: inst("EUR/USD"),
            data: TickData::Quote(Quote {
                bid: dec!(1.39380),
                ask: dec!(1.39384),
                bid_size: None,
                ask_size: Some(dec!(1000000)),
            }),
        }),
        Payload::DecisionMade(DecisionMade {
            prompt_sha256: None,
            prompt: text(""),
            raw_output: text(""),
            parsed: Decision::new(Action::Long, dec!(0.5), dec!(1), text("fast SMA crossed above slow SMA")),
            parse_status: ParseStatus::Ok,
            latency_us: 0,
            tokens_in: 0,
            tokens_out: 0,
        }),
        Payload::RiskVerdict(RiskVerdict {
            approved: false,
            checks: vec![
                RiskCheck { id: RiskCheckId::PriceValid, value: dec!(97.96), limit: dec!(0), passed: true },
                RiskCheck { id: RiskCheckId::MinConfidence, value: dec!(0.4), limit: dec!(0.6), passed: false },
            ],
            reason: text("min_confidence: 0.4 below 0.6"),
        }),
        Payload::OrderSubmitted(OrderSubmitted {
            client_order_id: coid("r1-c7-1"),
            instrument: inst("SPY"),
            side: Side::Buy,
            qty: OrderQty::Notional(dec!(50000.00)),
            order_type: OrderType::Market,
            limit_price: None,
            tif: TimeInForce::Gtc,
            stop_price: None,
            reduce_only: false,
            protects: None,
            bracket: None,
        }),
        Payload::OrderAccepted(OrderAccepted { client_order_id: coid("r1-c7-1") }),
        Payload::OrderRejected(OrderRejected {
            client_order_id: coid("r1-c7-1"),
            reason: text("zero units at fill price"),
        }),
        Payload::OrderCanceled(OrderCanceled { client_order_id: coid("r1-c7-1"), reason: text("kill switch") }),
        Payload::OrderFilled(OrderFilled {
            client_order_id: coid("r1-c7-1"),
            fill_id: FillId::new(1),
            instrument: inst("SPY"),
            side: Side::Buy,
            qty: dec!(510),
            price: dec!(97.98),
            fee: dec!(49.97),
            liquidity: Liquidity::Taker,
        }),
        Payload::KillSwitchTripped(KillSwitchTripped {
            trigger: KillTrigger::Drawdown,
            value: dec!(0.2150),
            limit: dec!(0.20),
            reason: text("drawdown 21.50% beyond 20%"),
        }),
        Payload::KillSwitchReset(KillSwitchReset { by: text("alice"), reason: text("reviewed") }),
        Payload::RiskLimitsChanged(RiskLimitsChanged {
            config_hash: Hash32::digest(b"limits"),
            by: text("bob"),
            reason: text("tighter collar"),
        }),
        Payload::RunResumed(RunResumed {
            after_seq: Seq::new(41),
            cycles: 12,
            snapshot_seq: Seq::new(30),
            working_orders: vec![coid("r1-7")],
            kill_switch_tripped: false,
        }),
        // Added with OrderQty's last variant (issue 9), at the end, so that every
        // example above keeps the bytes and hashes pinned before it.
        Payload::OrderSubmitted(OrderSubmitted {
            client_order_id: coid("r1-c7-2"),
            instrument: inst("SPY"),
            side: Side::Sell,
            qty: OrderQty::EquityFraction(dec!(0.5)),
            order_type: OrderType::Market,
            limit_price: None,
            tif: TimeInForce::Gtc,
            stop_price: None,
            reduce_only: false,
            protects: None,
            bracket: None,
        }),
        // Schema 3 (issue 9's protective exits): a decision with terms, a limit entry
        // carrying its bracket, a stop-loss protecting it, a trailing stop amended.
        Payload::DecisionMade(DecisionMade {
            prompt_sha256: Some(Hash32::digest(b"prompt")),
            prompt: text("prompt"),
            raw_output: text(r#"{"action":"long","stop_loss":96.5}"#),
            parsed: Decision::new(Action::Long, dec!(0.5), dec!(0.7), text("breakout")).with_terms(OrderTerms {
                limit_price: Some(dec!(97.90)),
                time_in_force: Some(TimeInForce::Day),
                stop_loss: Some(dec!(96.5)),
                take_profit: Some(dec!(103)),
                trailing_stop_pct: Some(dec!(0.03)),
            }),
            parse_status: ParseStatus::Ok,
            latency_us: 812_000,
            tokens_in: 420,
            tokens_out: 38,
        }),
        Payload::OrderSubmitted(OrderSubmitted {
            client_order_id: coid("r1-3"),
            instrument: inst("SPY"),
            side: Side::Buy,
            qty: OrderQty::EquityFraction(dec!(0.5)),
            order_type: OrderType::Limit,
            limit_price: Some(dec!(97.90)),
            tif: TimeInForce::Day,
            stop_price: None,
            reduce_only: false,
            protects: None,
            bracket: Bracket {
                stop_loss: Some(dec!(96.5)),
                take_profit: Some(dec!(103)),
                trailing_stop_pct: Some(dec!(0.03)),
            }
            .boxed(),
        }),
        Payload::OrderSubmitted(OrderSubmitted {
            client_order_id: coid("r1-4"),
            instrument: inst("SPY"),
            side: Side::Sell,
            qty: OrderQty::Units(dec!(51)),
            order_type: OrderType::Stop,
            limit_price: None,
            tif: TimeInForce::Gtc,
            stop_price: Some(dec!(96.5)),
            reduce_only: true,
            protects: Some(Protection { entry: coid("r1-3"), kind: ExitKind::StopLoss }),
            bracket: None,
        }),
        Payload::OrderAmended(OrderAmended {
            client_order_id: coid("r1-5"),
            stop_price: dec!(97.0),
            reason: text("trailing 0.03 from the best price 100"),
        }),
        Payload::ToolCalled(ToolCalled {
            round: 1,
            name: text("check_risk"),
            arguments: text(r#"{"action":"long","size_pct":0.4}"#),
            result: text(r#"{"approved":true,"checks":[],"reason":""}"#),
        }),
        Payload::ModelCalled(ModelCalled {
            requests: 2,
            http_status: Some(200),
            error: text(""),
            cost_usd: Decimal::new(3153, 6),
            indicators: text("ema20=101.2345 ema50=100.1234 rsi14=55.12 trend=up"),
        }),
        Payload::VenueNotice(VenueNotice {
            venue: text("binance"),
            kind: NoticeKind::FeedGap,
            stream: text("btcusdt@trade"),
            value: 3,
            detail: text("trade ids 3735683260..=3735683262 missed"),
        }),
    ]
}

pub fn draft(run: u64, cycle: u64, ts: i64, payload: Payload) -> EventDraft {
    EventDraft {
        run_id: RunId::new(run),
        cycle_id: CycleId::new(cycle),
        causation_seq: None,
        ts_event: TimestampNs::from_nanos(ts),
        ts_recorded: TimestampNs::from_nanos(ts),
        payload,
    }
}

// ---- proptest strategies ----

pub fn any_decimal() -> impl Strategy<Value = Decimal> {
    (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Decimal::from_i128_with_scale(i128::from(m), s))
}

fn any_text() -> impl Strategy<Value = Text> {
    ".{0,24}".prop_map(|s: String| Arc::from(s.as_str()))
}

fn any_inst() -> impl Strategy<Value = InstrumentId> {
    "[A-Z0-9./:_-]{1,31}".prop_map(|s| InstrumentId::new(&s).unwrap())
}

fn any_coid() -> impl Strategy<Value = ClientOrderId> {
    "[a-z0-9-]{1,31}".prop_map(|s| ClientOrderId::new(&s).unwrap())
}

fn any_hash() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>().prop_map(Hash32::from_bytes)
}

fn any_side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn any_tick() -> impl Strategy<Value = TickData> {
    prop_oneof![
        (any_decimal(), any_decimal(), any_decimal(), any_decimal(), proptest::option::of(any_decimal()), any::<i64>())
            .prop_map(|(open, high, low, close, volume, interval_ns)| TickData::Bar(Bar {
                open,
                high,
                low,
                close,
                volume,
                interval_ns
            })),
        (any_decimal(), any_decimal(), proptest::option::of(any_side()))
            .prop_map(|(price, size, aggressor)| TickData::Trade(Trade { price, size, aggressor })),
        (any_decimal(), any_decimal(), proptest::option::of(any_decimal()), proptest::option::of(any_decimal()))
            .prop_map(|(bid, ask, bid_size, ask_size)| TickData::Quote(Quote { bid, ask, bid_size, ask_size })),
    ]
}

fn any_action() -> impl Strategy<Value = Action> {
    prop_oneof![Just(Action::Long), Just(Action::Short), Just(Action::Close), Just(Action::Hold)]
}

fn any_check() -> impl Strategy<Value = RiskCheck> {
    (0usize..19, any_decimal(), any_decimal(), any::<bool>()).prop_map(|(i, value, limit, passed)| {
        use RiskCheckId::*;
        let ids = [
            PositionExists,
            PriceValid,
            PriceStaleness,
            MinConfidence,
            MaxPositionPct,
            MaxPositionValue,
            MinPositionValue,
            MaxGrossLeverage,
            MaxOpenPositions,
            MaxOrderNotional,
            MaxOrderQty,
            PriceCollar,
            DailyLossCap,
            MaxTradesPerDay,
            Cooldown,
            MaxDecisionsPerWindow,
            MaxOrdersPerWindow,
            DuplicateOrder,
            KillSwitch,
        ];
        RiskCheck { id: ids[i], value, limit, passed }
    })
}

/// Any payload of any kind.
pub fn any_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (
            any_hash(),
            any_text(),
            proptest::collection::vec(any_inst(), 0..3),
            proptest::option::of(any::<u64>()),
            any_decimal()
        )
            .prop_map(|(config_hash, t, instruments, parent, starting_cash)| {
                Payload::RunStarted(Box::new(RunStarted {
                    mode: RunMode::Paper,
                    config_hash,
                    config: t.clone(),
                    software_version: t.clone(),
                    venue: t.clone(),
                    instruments,
                    provider: t.clone(),
                    model: t.clone(),
                    params: t.clone(),
                    parent_run: parent.map(RunId::new),
                    data_source: t,
                    starting_cash,
                    kill_switch_tripped: true,
                }))
            }),
        (any_text(), any::<u64>())
            .prop_map(|(reason, skipped_rows)| Payload::RunStopped(RunStopped { reason, skipped_rows })),
        (any_inst(), any_tick()).prop_map(|(instrument, data)| Payload::MarketTick(MarketTick { instrument, data })),
        (
            any_text(),
            any_action(),
            any_decimal(),
            any_decimal(),
            proptest::option::of(any_hash()),
            any::<u64>(),
            any::<u32>()
        )
            .prop_map(|(t, action, size_pct, confidence, prompt_sha256, latency_us, tokens)| {
                Payload::DecisionMade(DecisionMade {
                    prompt_sha256,
                    prompt: t.clone(),
                    raw_output: t.clone(),
                    parsed: Decision::new(action, size_pct, confidence, t.clone()).with_terms(OrderTerms {
                        limit_price: Some(size_pct),
                        time_in_force: Some(TimeInForce::Ioc),
                        stop_loss: None,
                        take_profit: Some(confidence),
                        trailing_stop_pct: Some(size_pct),
                    }),
                    parse_status: ParseStatus::Invalid(t),
                    latency_us,
                    tokens_in: tokens,
                    tokens_out: tokens / 2,
                })
            }),
        (any::<bool>(), proptest::collection::vec(any_check(), 0..6), any_text())
            .prop_map(|(approved, checks, reason)| Payload::RiskVerdict(RiskVerdict { approved, checks, reason })),
        (
            any_coid(),
            any_inst(),
            any_side(),
            any_decimal(),
            0u8..3,
            proptest::option::of(any_decimal()),
            proptest::option::of(any_decimal()),
            any::<bool>()
        )
            .prop_map(|(client_order_id, instrument, side, q, kind, limit_price, stop_price, reduce_only)| {
                Payload::OrderSubmitted(OrderSubmitted {
                    client_order_id,
                    instrument,
                    side,
                    qty: match kind {
                        0 => OrderQty::Units(q),
                        1 => OrderQty::Notional(q),
                        _ => OrderQty::EquityFraction(q),
                    },
                    order_type: if limit_price.is_some() { OrderType::Limit } else { OrderType::Market },
                    limit_price,
                    tif: TimeInForce::Ioc,
                    stop_price,
                    reduce_only,
                    protects: stop_price
                        .map(|p| Protection { entry: client_order_id, kind: ExitKind::TrailingStop(p) }),
                    bracket: Bracket { stop_loss: limit_price, take_profit: stop_price, trailing_stop_pct: None }
                        .boxed(),
                })
            }),
        any_coid().prop_map(|client_order_id| Payload::OrderAccepted(OrderAccepted { client_order_id })),
        (any_coid(), any_text())
            .prop_map(|(client_order_id, reason)| Payload::OrderRejected(OrderRejected { client_order_id, reason })),
        (any_coid(), any_text())
            .prop_map(|(client_order_id, reason)| Payload::OrderCanceled(OrderCanceled { client_order_id, reason })),
        (any_coid(), any::<u64>(), any_inst(), any_side(), any_decimal(), any_decimal(), any_decimal()).prop_map(
            |(client_order_id, fill, instrument, side, qty, price, fee)| Payload::OrderFilled(OrderFilled {
                client_order_id,
                fill_id: FillId::new(fill),
                instrument,
                side,
                qty,
                price,
                fee,
                liquidity: Liquidity::Maker,
            })
        ),
        (any_decimal(), any_decimal(), any_text()).prop_map(|(value, limit, reason)| {
            Payload::KillSwitchTripped(KillSwitchTripped { trigger: KillTrigger::Loss, value, limit, reason })
        }),
        (any_text(), any_text()).prop_map(|(by, reason)| Payload::KillSwitchReset(KillSwitchReset { by, reason })),
        (any_hash(), any_text(), any_text()).prop_map(|(config_hash, by, reason)| {
            Payload::RiskLimitsChanged(RiskLimitsChanged { config_hash, by, reason })
        }),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(after, cycles, snapshot, tripped)| {
            Payload::RunResumed(RunResumed {
                after_seq: Seq::new(after),
                cycles,
                snapshot_seq: Seq::new(snapshot),
                working_orders: vec![],
                kill_switch_tripped: tripped,
            })
        }),
        (any_coid(), any_decimal(), any_text()).prop_map(|(client_order_id, stop_price, reason)| {
            Payload::OrderAmended(OrderAmended { client_order_id, stop_price, reason })
        }),
        (any::<u32>(), any_text(), any_text(), any_text()).prop_map(|(round, name, arguments, result)| {
            Payload::ToolCalled(ToolCalled { round, name, arguments, result })
        }),
        (any::<u32>(), proptest::option::of(any::<u16>()), any_text(), any_decimal(), any_text()).prop_map(
            |(requests, http_status, error, cost_usd, indicators)| {
                Payload::ModelCalled(ModelCalled { requests, http_status, error, cost_usd, indicators })
            }
        ),
        (any_text(), any::<i64>(), any_text()).prop_map(|(stream, value, detail)| {
            Payload::VenueNotice(VenueNotice {
                venue: text("binance"),
                kind: NoticeKind::Reconnected,
                stream,
                value,
                detail,
            })
        }),
    ]
}

/// Any draft with any payload.
pub fn any_draft() -> impl Strategy<Value = EventDraft> {
    (1u64..5, any::<u64>(), proptest::option::of(any::<u64>()), any::<i64>(), any::<i64>(), any_payload()).prop_map(
        |(run, cycle, cause, ts_event, ts_recorded, payload)| EventDraft {
            run_id: RunId::new(run),
            cycle_id: CycleId::new(cycle),
            causation_seq: cause.map(Seq::new),
            ts_event: TimestampNs::from_nanos(ts_event),
            ts_recorded: TimestampNs::from_nanos(ts_recorded),
            payload,
        },
    )
}
