//! The event schema: one [`Envelope`] per fact, a [`Header`] that places it in the ledger
//! and a [`Payload`] that says what happened.
//!
//! Stored events are past-tense facts. Money, prices and quantities are `Decimal`
//! (never floats); times are [`TimestampNs`] (UTC nanoseconds). Free text is `Arc<str>`
//! so the pipeline can reuse one string across many events without allocating.
//! The byte layout lives in [`crate::codec`]; this module is meaning only.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::chain::Hash32;
use crate::codec::{decimal, decimal_opt};
use crate::ids::{ClientOrderId, CycleId, FillId, InstrumentId, RunId, Seq};
use crate::time::TimestampNs;

/// The schema version written into every new header. Older versions are upcast on read.
///
/// Version 3 added a decision's [`OrderTerms`] (limit price, time in force, stop-loss,
/// take-profit, trailing stop), an order's stop price and the entry a protective exit
/// protects ([`Protection`]); [`crate::codec`] upcasts version 2 with no terms.
/// Version 2 moved the provider, model and parameters of a run from every `DecisionMade`
/// into its `RunStarted` (they are constant for a run) and packs a bar's interval;
/// [`crate::codec`] upcasts version 1.
pub const SCHEMA_VERSION: u16 = 3;

/// Free text carried by events: shared, immutable, cheap to clone.
pub type Text = Arc<str>;

/// One stored event: where it sits in the ledger and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Position, run, causality, time and chain links.
    pub header: Header,
    /// The fact itself.
    pub payload: Payload,
}

/// Where an event sits: sequence, run, cycle, cause, times and its links in the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Global, gapless position in the ledger, from 1.
    pub seq: Seq,
    /// The run the event belongs to.
    pub run_id: RunId,
    /// Links the tick, decision, verdict, order and fills of one cycle; 0 outside cycles
    /// (run start and stop, operator commands).
    pub cycle_id: CycleId,
    /// The event that caused this one, if any.
    pub causation_seq: Option<Seq>,
    /// When it happened at the source (exchange time for ticks), UTC ns.
    pub ts_event: TimestampNs,
    /// When the ledger recorded it, UTC ns, from the run's clock (the replay clock in
    /// replays, so replays are byte-identical).
    pub ts_recorded: TimestampNs,
    /// Schema version of the payload as written.
    pub schema_version: u16,
    /// Hash of the previous event; 32 zero bytes for the first event of the ledger.
    pub prev_hash: Hash32,
    /// SHA-256 of this record's bytes up to the hash (see [`crate::codec`]).
    pub hash: Hash32,
}

/// An event before the ledger has given it a sequence and chained it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    /// The run the event belongs to.
    pub run_id: RunId,
    /// The cycle inside the run (0 outside cycles).
    pub cycle_id: CycleId,
    /// The event that caused this one, if any.
    pub causation_seq: Option<Seq>,
    /// Source time, UTC ns.
    pub ts_event: TimestampNs,
    /// Recording time from the run's clock, UTC ns.
    pub ts_recorded: TimestampNs,
    /// The fact.
    pub payload: Payload,
}

impl EventDraft {
    /// This draft as the event it becomes at `seq`.
    pub fn at(&self, seq: Seq) -> EventRef<'_> {
        EventRef {
            seq,
            run_id: self.run_id,
            cycle_id: self.cycle_id,
            causation_seq: self.causation_seq,
            ts_event: self.ts_event,
            ts_recorded: self.ts_recorded,
            payload: &self.payload,
        }
    }
}

impl Envelope {
    /// A borrowed view of this event, the form folds take.
    pub fn as_ref(&self) -> EventRef<'_> {
        let h = &self.header;
        EventRef {
            seq: h.seq,
            run_id: h.run_id,
            cycle_id: h.cycle_id,
            causation_seq: h.causation_seq,
            ts_event: h.ts_event,
            ts_recorded: h.ts_recorded,
            payload: &self.payload,
        }
    }
}

/// An event as a fold sees it: its place and times, and the fact, borrowed. Made from a
/// stored [`Envelope`] or from a draft as it is appended, so a fold fed live and a fold
/// over the stored log see the same thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// Position in the ledger.
    pub seq: Seq,
    /// The run.
    pub run_id: RunId,
    /// The cycle (0 outside cycles).
    pub cycle_id: CycleId,
    /// The event that caused this one.
    pub causation_seq: Option<Seq>,
    /// Source time, UTC ns.
    pub ts_event: TimestampNs,
    /// Recording time, UTC ns.
    pub ts_recorded: TimestampNs,
    /// The fact.
    pub payload: &'a Payload,
}

/// Every kind of fact the ledger records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// A run began. (Boxed: the largest payload and the rarest, once a run.)
    RunStarted(Box<RunStarted>),
    /// A run ended.
    RunStopped(RunStopped),
    /// Market data arrived.
    MarketTick(MarketTick),
    /// A decision provider answered.
    DecisionMade(DecisionMade),
    /// The risk engine judged a decision.
    RiskVerdict(RiskVerdict),
    /// An order was submitted to a venue.
    OrderSubmitted(OrderSubmitted),
    /// The venue accepted an order.
    OrderAccepted(OrderAccepted),
    /// The venue (or we, before sending) rejected an order.
    OrderRejected(OrderRejected),
    /// An order was canceled.
    OrderCanceled(OrderCanceled),
    /// An order was filled, wholly or in part.
    OrderFilled(OrderFilled),
    /// The kill switch tripped; new orders are blocked until it is reset.
    KillSwitchTripped(KillSwitchTripped),
    /// An operator reset the kill switch.
    KillSwitchReset(KillSwitchReset),
    /// The risk limits in force changed.
    RiskLimitsChanged(RiskLimitsChanged),
    /// A run interrupted without its `RunStopped` (the process was killed) continues in a
    /// new session of the same run. (Added in schema 2 after its first release: a new
    /// variant at the end, so earlier records decode unchanged.)
    RunResumed(RunResumed),
    /// A working order's stop price moved (a trailing stop following the price).
    OrderAmended(OrderAmended),
    /// A tool-calling agent called one of its read-only tools while deciding; caused
    /// by the cycle's `DecisionMade`. (A new last variant: earlier records decode
    /// unchanged.)
    ToolCalled(ToolCalled),
    /// What a model's call for a decision took: requests, HTTP status or error, cost;
    /// caused by the cycle's `DecisionMade`. (A new last variant.)
    ModelCalled(ModelCalled),
    /// A live venue or its market data feed reported something outside any order: a
    /// gap in the feed, a lost or restored connection, the server clock's offset.
    /// (Added after schema 3's first release: a new variant at the end, so earlier
    /// records decode unchanged.)
    VenueNotice(VenueNotice),
}

impl Payload {
    /// The kind's name, as used in tables and NATS subjects (`MarketTick`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::RunStarted(_) => "RunStarted",
            Payload::RunStopped(_) => "RunStopped",
            Payload::MarketTick(_) => "MarketTick",
            Payload::DecisionMade(_) => "DecisionMade",
            Payload::RiskVerdict(_) => "RiskVerdict",
            Payload::OrderSubmitted(_) => "OrderSubmitted",
            Payload::OrderAccepted(_) => "OrderAccepted",
            Payload::OrderRejected(_) => "OrderRejected",
            Payload::OrderCanceled(_) => "OrderCanceled",
            Payload::OrderFilled(_) => "OrderFilled",
            Payload::KillSwitchTripped(_) => "KillSwitchTripped",
            Payload::KillSwitchReset(_) => "KillSwitchReset",
            Payload::RiskLimitsChanged(_) => "RiskLimitsChanged",
            Payload::RunResumed(_) => "RunResumed",
            Payload::OrderAmended(_) => "OrderAmended",
            Payload::ToolCalled(_) => "ToolCalled",
            Payload::ModelCalled(_) => "ModelCalled",
            Payload::VenueNotice(_) => "VenueNotice",
        }
    }

    /// Whether this is an operator's kill-switch command (a trip by command or a reset,
    /// outside any cycle, `cycle` being the event's): input to a run, like a tick.
    pub fn is_operator_command(&self, cycle: CycleId) -> bool {
        cycle.get() == 0
            && match self {
                Payload::KillSwitchTripped(trip) => trip.trigger == KillTrigger::Command,
                Payload::KillSwitchReset(_) => true,
                _ => false,
            }
    }
}

/// How a run trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunMode {
    /// Real orders to a real venue.
    Live,
    /// Live market data, simulated fills.
    Paper,
    /// Historic data or a recorded run fed through the pipeline (a backtest).
    Replay,
}

/// A run began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStarted {
    /// Live, paper or replay.
    pub mode: RunMode,
    /// SHA-256 of `config`.
    pub config_hash: Hash32,
    /// The effective configuration in canonical JSON, so a replay of the run can use it.
    pub config: Text,
    /// Version of the `ledger` software that wrote the run.
    pub software_version: Text,
    /// Venue name, e.g. `paper`.
    pub venue: Text,
    /// Instruments traded.
    pub instruments: Vec<InstrumentId>,
    /// Decision provider kind: `rules`, `script`, `recorded`, `openai`, `anthropic`.
    pub provider: Text,
    /// Strategy or model name, e.g. `sma-cross`, `deepseek-chat`.
    pub model: Text,
    /// Provider parameters in canonical `k=v` form, sorted by key, space separated.
    pub params: Text,
    /// For replays: the run being replayed, if any.
    pub parent_run: Option<RunId>,
    /// Where the market data came from (file name and its SHA-256, or a feed name).
    pub data_source: Text,
    /// Cash at the start, in the account currency.
    #[serde(with = "decimal")]
    pub starting_cash: Decimal,
    /// Whether the kill switch was tripped when the run started.
    pub kill_switch_tripped: bool,
}

/// A run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStopped {
    /// Why: `end of data`, `interrupted`, `kill switch`, ...
    pub reason: Text,
    /// Rows of market data skipped as bad (`--lenient`; 0 otherwise).
    pub skipped_rows: u64,
}

/// Market data for one instrument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketTick {
    /// The instrument.
    pub instrument: InstrumentId,
    /// A bar, a trade or a quote.
    pub data: TickData,
}

/// The three shapes of market data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TickData {
    /// An OHLCV bar; `ts_event` of the envelope is the bar's open time.
    Bar(Bar),
    /// One trade print.
    Trade(Trade),
    /// Top of book.
    Quote(Quote),
}

impl TickData {
    /// The price a tick marks positions at: bar close, trade price or quote mid.
    pub fn reference_price(&self) -> Decimal {
        match self {
            TickData::Bar(bar) => bar.close,
            TickData::Trade(trade) => trade.price,
            TickData::Quote(quote) => (quote.bid + quote.ask) / Decimal::TWO,
        }
    }
}

/// An OHLCV bar. Prices in the instrument's quote currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bar {
    /// First trade price of the interval.
    #[serde(with = "decimal")]
    pub open: Decimal,
    /// Highest price.
    #[serde(with = "decimal")]
    pub high: Decimal,
    /// Lowest price.
    #[serde(with = "decimal")]
    pub low: Decimal,
    /// Last price.
    #[serde(with = "decimal")]
    pub close: Decimal,
    /// Traded quantity in the interval, when the source gives one.
    #[serde(with = "decimal_opt")]
    pub volume: Option<Decimal>,
    /// Bar length in nanoseconds (86,400e9 for daily bars); 0 when unknown.
    #[serde(with = "crate::codec::nanos")]
    pub interval_ns: i64,
}

/// Which side took liquidity in a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    /// Buying.
    Buy,
    /// Selling.
    Sell,
}

impl Side {
    /// The other side: the side that closes a position this side opened.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// One trade print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    /// Trade price, quote currency.
    #[serde(with = "decimal")]
    pub price: Decimal,
    /// Traded quantity, instrument units.
    #[serde(with = "decimal")]
    pub size: Decimal,
    /// The aggressor (taker) side, when the source tells.
    pub aggressor: Option<Side>,
}

/// Top of book. `bid > ask` happens in real data (crossed books) and is recorded as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// Best bid price.
    #[serde(with = "decimal")]
    pub bid: Decimal,
    /// Best ask price.
    #[serde(with = "decimal")]
    pub ask: Decimal,
    /// Quantity at the best bid, when known.
    #[serde(with = "decimal_opt")]
    pub bid_size: Option<Decimal>,
    /// Quantity at the best ask, when known.
    #[serde(with = "decimal_opt")]
    pub ask_size: Option<Decimal>,
}

/// What a decision asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Hold or open a long position.
    Long,
    /// Hold or open a short position.
    Short,
    /// Close any position.
    Close,
    /// Do nothing.
    Hold,
}

/// A decision in the contract every provider answers in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// long, short, close or hold.
    pub action: Action,
    /// Fraction of equity to commit, 0 to 1.
    #[serde(with = "decimal")]
    pub size_pct: Decimal,
    /// The provider's confidence, 0 to 1.
    #[serde(with = "decimal")]
    pub confidence: Decimal,
    /// The provider's reason, as given.
    pub reason: Text,
    /// How a `long` or `short` enters (market or limit, time in force) and which
    /// protective exits guard the position it opens; `None` (never empty terms) for a
    /// plain market entry protected by the run's configured exits, if any. Boxed: most
    /// decisions have none, and every cycle moves a decision.
    pub terms: Option<Box<OrderTerms>>,
}

/// No terms: what [`Decision::terms`] shows for a decision without any.
static NO_TERMS: OrderTerms =
    OrderTerms { limit_price: None, time_in_force: None, stop_loss: None, take_profit: None, trailing_stop_pct: None };

impl Decision {
    /// A decision with no [`OrderTerms`] of its own.
    pub fn new(action: Action, size_pct: Decimal, confidence: Decimal, reason: Text) -> Self {
        Decision { action, size_pct, confidence, reason, terms: None }
    }

    /// This decision with `terms` (kept as `None` when they set nothing).
    pub fn with_terms(self, terms: OrderTerms) -> Self {
        Decision { terms: (!terms.is_empty()).then(|| Box::new(terms)), ..self }
    }

    /// The decision's terms (all `None` when it has none).
    pub fn terms(&self) -> &OrderTerms {
        self.terms.as_deref().unwrap_or(&NO_TERMS)
    }
}

/// A decision's terms for the position it opens: the entry order's limit price and
/// time in force, and the protective exits placed when the entry fills. Prices are in
/// the instrument's quote currency; `trailing_stop_pct` is a fraction (0.03 = 3%), like
/// every `_pct` of the contract. A term left `None` falls back to the run's
/// configuration (`[exits]`), and to none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderTerms {
    /// Enter with a limit order at this price (buy at or below, sell at or above)
    /// instead of a market order.
    #[serde(with = "decimal_opt")]
    pub limit_price: Option<Decimal>,
    /// How long the limit entry works (good till canceled when `None`).
    pub time_in_force: Option<TimeInForce>,
    /// Stop-loss price: a stop order closes the position when the price reaches it.
    #[serde(with = "decimal_opt")]
    pub stop_loss: Option<Decimal>,
    /// Take-profit price: a limit order closes the position at it or better.
    #[serde(with = "decimal_opt")]
    pub take_profit: Option<Decimal>,
    /// Trailing stop distance, fraction of the best price since the entry: a stop order
    /// that follows the price up (longs) or down (shorts), never back.
    #[serde(with = "decimal_opt")]
    pub trailing_stop_pct: Option<Decimal>,
}

impl OrderTerms {
    /// Whether no term is set.
    pub fn is_empty(&self) -> bool {
        *self == OrderTerms::default()
    }
}

/// How the provider's raw output became the [`Decision`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParseStatus {
    /// Parsed as given.
    Ok,
    /// The output broke the contract; the decision is `hold`. Holds what was wrong.
    Invalid(Text),
    /// The provider failed (timeout, HTTP error); the decision is `hold`. Holds the error.
    ProviderError(Text),
}

/// A decision provider answered. The provider, model and parameters are the run's, in
/// its `RunStarted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionMade {
    /// SHA-256 of the prompt, when there was one.
    pub prompt_sha256: Option<Hash32>,
    /// The prompt sent (empty for rules).
    pub prompt: Text,
    /// The provider's raw output (empty for rules).
    pub raw_output: Text,
    /// The decision after parsing.
    pub parsed: Decision,
    /// Whether parsing succeeded.
    pub parse_status: ParseStatus,
    /// Provider latency, microseconds (0 for rules: not measured, to stay deterministic).
    pub latency_us: u64,
    /// Prompt tokens (0 when not applicable).
    pub tokens_in: u32,
    /// Completion tokens (0 when not applicable).
    pub tokens_out: u32,
}

/// One tool call of a tool-calling agent and the answer it got, as the model saw it.
/// The calls of a decision follow its `DecisionMade` in the order they were made, each
/// caused by it; a replay answers them from the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCalled {
    /// The round of the conversation, from 1 (one model response may call several tools).
    pub round: u32,
    /// The tool's name (`get_quote`, `get_portfolio`, `get_technicals`,
    /// `get_recent_bars`, `check_risk`).
    pub name: Text,
    /// The model's arguments, canonical JSON (keys sorted, no spaces).
    pub arguments: Text,
    /// The answer given to the model, JSON text (or an error message).
    pub result: Text,
}

/// A model's call for one decision, beside its `DecisionMade` (which holds the request,
/// the response, latency and token counts): what the guards and the audit need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelCalled {
    /// HTTP requests the decision took (tool rounds and the final answer; retries
    /// not counted); served from the response cache or not.
    pub requests: u32,
    /// HTTP status of the last response, `None` when none came (timeout, refused
    /// connection, cache miss in cache-only mode).
    pub http_status: Option<u16>,
    /// The failure, empty when the call succeeded (never the API key).
    pub error: Text,
    /// Cost in US dollars from the configured token prices (0 when none are set).
    #[serde(with = "decimal")]
    pub cost_usd: Decimal,
    /// The indicator values the model was shown, `name=value` space separated
    /// (`ema20=101.2345 ema50=100.1234 rsi14=55.12 trend=up`).
    pub indicators: Text,
}

/// The risk checks the engine knows, in the order it runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskCheckId {
    /// A close needs a position to close.
    PositionExists,
    /// Reference price present and positive.
    PriceValid,
    /// Age of the reference tick, nanoseconds.
    PriceStaleness,
    /// Decision confidence at least the minimum.
    MinConfidence,
    /// Position value as a fraction of equity.
    MaxPositionPct,
    /// Position value, account currency.
    MaxPositionValue,
    /// Position value, account currency, at least.
    MinPositionValue,
    /// Gross exposure divided by equity.
    MaxGrossLeverage,
    /// Open positions after the order.
    MaxOpenPositions,
    /// Order notional, account currency.
    MaxOrderNotional,
    /// Order quantity, instrument units.
    MaxOrderQty,
    /// Distance of the reference price from the last one, basis points.
    PriceCollar,
    /// Loss since the start of the UTC day, fraction of start-of-day equity.
    DailyLossCap,
    /// Orders today.
    MaxTradesPerDay,
    /// Nanoseconds since the last open.
    Cooldown,
    /// Decisions in the rate window.
    MaxDecisionsPerWindow,
    /// Orders in the rate window.
    MaxOrdersPerWindow,
    /// Same side and size as the previous order within the window.
    DuplicateOrder,
    /// The kill switch is not tripped.
    KillSwitch,
    /// Exit levels on the wrong side of the entry price (a long's stop-loss at or above
    /// it, its take-profit at or below it; mirrored for a short), a count.
    ExitLevels,
    /// Whether a stop (stop-loss or trailing) protects the entry: 1 or 0.
    StopLossRequired,
    /// The loss if the stop is hit, fraction of equity: size_pct x distance from the
    /// entry price to the stop / entry price (size_pct when no stop protects it).
    MaxLossAtStop,
    /// LLM requests in the rate window before this decision's call (a guard run before
    /// the model is asked; added as a last variant).
    MaxLlmCallsPerWindow,
    /// LLM spend of the UTC day so far, US dollars (a guard run before the model is
    /// asked; added as a last variant).
    LlmDailyBudgetUsd,
}

/// One check: what was measured, against what limit, and whether it passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskCheck {
    /// Which check.
    pub id: RiskCheckId,
    /// The measured value, in the unit the check's id documents.
    #[serde(with = "decimal")]
    pub value: Decimal,
    /// The configured limit, same unit.
    #[serde(with = "decimal")]
    pub limit: Decimal,
    /// Whether the value is within the limit.
    pub passed: bool,
}

/// The risk engine's judgement of one decision; every check is listed, passes included.
/// The decision judged is the verdict's cause (`causation_seq` of its header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskVerdict {
    /// Whether an order may follow.
    pub approved: bool,
    /// Every check run, in order.
    pub checks: Vec<RiskCheck>,
    /// Empty when approved; otherwise the first failed check in words.
    pub reason: Text,
}

/// How much an order is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderQty {
    /// A number of instrument units.
    Units(#[serde(with = "decimal")] Decimal),
    /// An amount of account currency; the venue converts it to units at the fill price.
    /// Written by runs before equity-fraction sizing; still filled as written.
    Notional(#[serde(with = "decimal")] Decimal),
    /// A fraction (0 to 1) of the money available when the order fills: the venue
    /// resolves it at the fill price against the funds the account has then (after
    /// every fill before it, so after the closing leg of a reversal), as backtesting.py
    /// 0.6.6 sizes a relative order (`_Broker._process_orders`):
    /// `units = floor(available x fraction / (price x (1 + commission rate) + commission
    /// per unit))`, rounded down to the lot ([`crate::sizing::units_for_fraction`]).
    /// Added after schema 2's first release as the last variant, so earlier records
    /// decode unchanged (bincode writes the variant's index).
    EquityFraction(#[serde(with = "decimal")] Decimal),
}

/// Order type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderType {
    /// At the venue's price.
    Market,
    /// At the limit price or better.
    Limit,
    /// A market order once the price reaches the stop price (`stop_price`).
    Stop,
}

/// How long an order stays working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeInForce {
    /// Good till canceled.
    Gtc,
    /// Immediate or cancel: what does not fill on the first tick the order can fill on
    /// is canceled.
    Ioc,
    /// Day order: canceled at the end of the UTC day it was submitted on.
    Day,
}

/// An order was submitted to a venue (recorded durably before the venue sees it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSubmitted {
    /// Our id for the order.
    pub client_order_id: ClientOrderId,
    /// The instrument.
    pub instrument: InstrumentId,
    /// Buy or sell.
    pub side: Side,
    /// Units or notional.
    pub qty: OrderQty,
    /// Market or limit.
    pub order_type: OrderType,
    /// Limit price, quote currency, for limit orders.
    #[serde(with = "decimal_opt")]
    pub limit_price: Option<Decimal>,
    /// Time in force.
    pub tif: TimeInForce,
    /// Trigger price, quote currency, for stop orders.
    #[serde(with = "decimal_opt")]
    pub stop_price: Option<Decimal>,
    /// Only reduces a position (a close, a reversal's closing leg, a protective exit):
    /// canceled when the position it reduces is gone, so it never opens one.
    pub reduce_only: bool,
    /// For a protective exit: which one, and the entry whose position it protects.
    pub protects: Option<Protection>,
    /// For an entry: the protective exits placed for what it fills (`None`, never an
    /// empty bracket, for none). Boxed: few orders carry one.
    pub bracket: Option<Box<Bracket>>,
}

/// The protective exits an entry order carries (a bracket order), placed when it fills,
/// for the quantity filled: a stop-loss stop order, a trailing stop and a take-profit
/// limit order, in that order, one-cancels-other. Prices in quote currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bracket {
    /// Stop-loss price.
    #[serde(with = "decimal_opt")]
    pub stop_loss: Option<Decimal>,
    /// Take-profit price.
    #[serde(with = "decimal_opt")]
    pub take_profit: Option<Decimal>,
    /// Trailing stop distance, fraction of the best price since the fill.
    #[serde(with = "decimal_opt")]
    pub trailing_stop_pct: Option<Decimal>,
}

impl Bracket {
    /// Whether the bracket places no exit.
    pub fn is_empty(&self) -> bool {
        *self == Bracket::default()
    }

    /// The bracket as an order carries it: `None` when it places no exit.
    pub fn boxed(self) -> Option<Box<Bracket>> {
        (!self.is_empty()).then(|| Box::new(self))
    }
}

/// What a protective exit order is and which entry it protects. The exits of one entry
/// are one-cancels-other: when one fills (or the position is closed otherwise), the
/// others are canceled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// The entry order whose filled position the exit closes.
    pub entry: ClientOrderId,
    /// Stop-loss, take-profit or trailing stop.
    pub kind: ExitKind,
}

/// The kinds of protective exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitKind {
    /// A stop order at a fixed price.
    StopLoss,
    /// A limit order at a fixed price.
    TakeProfit,
    /// A stop order that follows the best price since the entry at this distance
    /// (fraction, 0.03 = 3%), amended as it moves ([`OrderAmended`]).
    TrailingStop(#[serde(with = "decimal")] Decimal),
}

impl ExitKind {
    /// The name used in tables, reasons and exports: `stop_loss`, `take_profit`,
    /// `trailing_stop`.
    pub fn name(&self) -> &'static str {
        match self {
            ExitKind::StopLoss => "stop_loss",
            ExitKind::TakeProfit => "take_profit",
            ExitKind::TrailingStop(_) => "trailing_stop",
        }
    }
}

/// A working order was amended: its stop price moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAmended {
    /// The order.
    pub client_order_id: ClientOrderId,
    /// The new stop price, quote currency.
    #[serde(with = "decimal")]
    pub stop_price: Decimal,
    /// Why, in words (for a trailing stop: the best price it follows).
    pub reason: Text,
}

/// What a [`VenueNotice`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// Market data was missed: ids skipped in the venue's sequence (`missed` counts
    /// them), or stale or repeated messages dropped.
    FeedGap,
    /// The connection to the venue was lost (or closed for a planned reconnect).
    Disconnected,
    /// The connection to the venue was made again.
    Reconnected,
    /// The venue's clock was measured against ours (`value`: server minus local, ms).
    ClockOffset,
    /// A fee charged in an asset other than the account's currency (recorded as 0).
    Commission,
    /// A message or answer from the venue that could not be read (dropped).
    Unreadable,
    /// What the venue holds, compared at start: an open order of ours the run does not
    /// know, a balance (`value`: 0; the amounts are in `detail`).
    Reconciliation,
}

/// A live venue or its feed reported something outside any order. Recorded outside any
/// cycle (cycle 0), at the time it was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueNotice {
    /// The venue or feed that reported it, e.g. `binance`.
    pub venue: Text,
    /// What happened.
    pub kind: NoticeKind,
    /// The stream or endpoint it concerns, e.g. `btcusdt@trade`.
    pub stream: Text,
    /// A count or a measure: ids missed for a gap, the reconnect attempt, the clock
    /// offset in ms (0 when none applies).
    pub value: i64,
    /// What happened, in words (ids, errors).
    pub detail: Text,
}

/// The venue accepted an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAccepted {
    /// The order.
    pub client_order_id: ClientOrderId,
}

/// An order was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRejected {
    /// The order.
    pub client_order_id: ClientOrderId,
    /// Why, in words.
    pub reason: Text,
}

/// An order was canceled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCanceled {
    /// The order.
    pub client_order_id: ClientOrderId,
    /// Why, in words.
    pub reason: Text,
}

/// Whether a fill added or took liquidity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Liquidity {
    /// Added liquidity (resting order).
    Maker,
    /// Took liquidity.
    Taker,
}

/// An order was filled, wholly or in part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFilled {
    /// The order.
    pub client_order_id: ClientOrderId,
    /// The venue's fill id.
    pub fill_id: FillId,
    /// The instrument (repeated from the order so a fold needs no join).
    pub instrument: InstrumentId,
    /// Buy or sell (repeated from the order).
    pub side: Side,
    /// Units filled, positive.
    #[serde(with = "decimal")]
    pub qty: Decimal,
    /// Fill price, quote currency, slippage included.
    #[serde(with = "decimal")]
    pub price: Decimal,
    /// Commission charged, account currency, non-negative.
    #[serde(with = "decimal")]
    pub fee: Decimal,
    /// Maker or taker.
    pub liquidity: Liquidity,
}

/// What tripped the kill switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillTrigger {
    /// Equity gain since the run started, fraction.
    Gain,
    /// Equity loss since the run started, fraction.
    Loss,
    /// Drawdown from peak equity, fraction.
    Drawdown,
    /// Consecutive failures (rejections, provider errors).
    Failures,
    /// An operator's command.
    Command,
}

/// The kill switch tripped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitchTripped {
    /// What tripped it.
    pub trigger: KillTrigger,
    /// The measured value (fraction, or a count for failures).
    #[serde(with = "decimal")]
    pub value: Decimal,
    /// The configured threshold, same unit.
    #[serde(with = "decimal")]
    pub limit: Decimal,
    /// In words.
    pub reason: Text,
}

/// An operator reset the kill switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitchReset {
    /// Who reset it.
    pub by: Text,
    /// Why.
    pub reason: Text,
}

/// The risk limits in force changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskLimitsChanged {
    /// SHA-256 of the canonical form of the new limits.
    pub config_hash: Hash32,
    /// Who changed them.
    pub by: Text,
    /// Why.
    pub reason: Text,
}

/// A run continues after an interruption: its state was rebuilt from the ledger (a
/// session snapshot and the events after it, re-executed and checked against the
/// record), its orders without a terminal event were reconciled with the venue, and
/// its feed goes on after the last recorded tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResumed {
    /// The ledger's last event before this session (the run's or an operator's).
    pub after_seq: Seq,
    /// Cycles (ticks) the run had recorded; the feed continues after that many.
    pub cycles: u64,
    /// The seq the session snapshot the state was restored from covers; 0 when the
    /// run was re-executed from its start.
    pub snapshot_seq: Seq,
    /// Orders with no terminal event, as reconciled with the venue: still working there.
    pub working_orders: Vec<ClientOrderId>,
    /// Whether the kill switch is tripped as the run resumes.
    pub kill_switch_tripped: bool,
}
