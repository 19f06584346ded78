//! [`BinanceVenue`]: Binance spot behind the [`Venue`] trait, over the REST API.
//!
//! An order is checked against the symbol's exchange filters (LOT_SIZE, PRICE_FILTER,
//! MIN_NOTIONAL/NOTIONAL) and sent as `POST /api/v3/order` with our client order id as
//! `newClientOrderId` and the full answer asked for (`newOrderRespType=FULL`): the
//! answer's fills (each partial fill, its trade id, price, quantity and commission)
//! become the order's reports at once. An order left working (a resting limit or stop)
//! is queried (`GET /api/v3/order`, then `GET /api/v3/myTrades` for its new fills) at
//! most once per poll interval until it is done. A filter violation, a refusal
//! (`-2010` insufficient balance, `-1013` filter failure, ...) or a rate limit is the
//! order's rejection, naming it.
//!
//! Market orders: MARKET; limit orders: LIMIT (GTC or IOC); stop orders (a stop-loss):
//! STOP_LOSS at the stop price. Orders sized as a fraction of equity or a notional are
//! sized in units at the price of the last tick, with the funds the engine last handed
//! the venue, rounded down to the step size.
//!
//! With a user data stream ([`BinanceVenue::with_user_stream`]), what becomes of a
//! working order (its fills with their commission, its cancellation or expiry) comes
//! from the stream's execution reports; working orders are polled only while the
//! stream is down. When it is subscribed again, every working order is queried at once
//! (fills made during the outage come from the trade history, each trade id once:
//! never lost, never doubled) and the exchange's open orders and balances are recorded
//! again.
//!
//! The same reconciliation runs after the market data stream's reconnect, when the
//! session sets [`BinanceVenue::reconcile_trigger`].
//!
//! At start, the open orders of an earlier run of a ledger and the balances of each
//! symbol's assets are recorded as `Reconciliation` notices (not adopted).
//!
//! An order stays working through its partial fills: each fill but the last is a
//! [`VenueReport::PartiallyFilled`], so the engine keeps the order open and books every
//! fill against it.
//!
//! Commission charged in the quote asset is the fill's fee as is; in the base asset it
//! is valued at the fill's price; in another asset (BNB) it is valued at that asset's
//! last price in the quote asset, and a `Commission` notice records the amount, the
//! asset and the price (a fee of 0 when the exchange lists no such price).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ledger_core::event::{
    Liquidity, NoticeKind, OrderAccepted, OrderCanceled, OrderFilled, OrderQty, OrderRejected, OrderSubmitted,
    OrderType, Side, TickData, TimeInForce, VenueNotice,
};
use ledger_core::ids::{ClientOrderId, FillId, InstrumentId};
use ledger_core::sizing::{self, Costs, Funds};
use ledger_core::time::{Clock, TimestampNs};
use ledger_core::venue::{MarketView, Venue, VenueError, VenueReport};
use reqwest::Method;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::rest::{RestClient, RestError, SymbolFilters};
use super::stream::VENUE;
use super::user_stream::{ExecutionReport, UserEvent, UserStream};

/// The user data stream's name in notices.
const USER_STREAM: &str = "userDataStream";
use crate::clock::WallClock;

/// Notices the venue and the feed leave for the run to record, with the local time
/// each was seen (UTC ns); shared between them and drained before each cycle.
pub type NoticeBoard = Arc<Mutex<Vec<(VenueNotice, TimestampNs)>>>;

/// Leaves a notice on `board`.
fn post(board: &NoticeBoard, kind: NoticeKind, stream: &str, value: i64, detail: String) {
    let notice = VenueNotice {
        venue: Arc::from(VENUE),
        kind,
        stream: Arc::from(stream),
        value,
        detail: Arc::from(detail.as_str()),
    };
    if let Ok(mut board) = board.lock() {
        board.push((notice, WallClock.now()));
    }
}

/// An order of ours working at Binance.
#[derive(Debug, Clone)]
struct Working {
    order: OrderSubmitted,
    /// Quantity sent, base units.
    qty: Decimal,
    /// Quantity filled so far, base units.
    filled: Decimal,
    /// Sent without an answer: not known to be at the exchange yet.
    unconfirmed: bool,
    /// Adopted on resume and not queried since: queried even while the user data
    /// stream is up (it does not repeat what happened before it was subscribed).
    adopted: bool,
}

/// Binance spot as a venue (see the module docs).
pub struct BinanceVenue {
    rest: RestClient,
    filters: HashMap<InstrumentId, SymbolFilters>,
    working: Vec<Working>,
    reports: VecDeque<VenueReport>,
    /// Trade ids already reported as fills.
    seen_trades: HashSet<u64>,
    /// The funds the engine last handed the venue (sizing of fractional orders).
    funds: Funds,
    /// Commission rate assumed when sizing (fraction of notional).
    commission_rate: Decimal,
    poll_interval: Duration,
    last_poll: Option<Instant>,
    notices: NoticeBoard,
    /// The user data stream, when one is used: while it is up, working orders are not
    /// polled.
    user_stream: Option<UserStream>,
    /// Whether the user data stream is subscribed now.
    stream_up: bool,
    /// The symbols' instruments, for reconciliation.
    instruments: Vec<InstrumentId>,
    /// Set (by the session) when the market data stream was connected again: the
    /// venue reconciles at its next poll.
    reconcile_requested: Arc<AtomicBool>,
    /// Each symbol asset's balance (free + locked) when the venue connected.
    start_balances: HashMap<String, Decimal>,
    /// What the fills reported since then changed each asset by: the base asset by
    /// the quantity, the quote asset by the notional, the commission asset by the
    /// commission.
    fills_net: HashMap<String, Decimal>,
    /// Orders of a resumed run whose record ends with a fill (perhaps a partial one),
    /// by client order id: checked once against the exchange's orders at the next poll.
    ended_by_fill: HashMap<String, Working>,
}

impl BinanceVenue {
    /// A venue on `rest` for `instruments` (Binance symbols): measures the server's
    /// clock (recorded as a notice) and reads each symbol's filters. Sizing assumes
    /// `commission_rate` (fraction of notional); working orders are queried at most
    /// every `poll_interval`.
    ///
    /// # Errors
    /// The server cannot be reached, or does not list a symbol.
    pub fn connect(
        mut rest: RestClient,
        instruments: &[InstrumentId],
        commission_rate: Decimal,
        poll_interval: Duration,
        notices: NoticeBoard,
    ) -> Result<Self, RestError> {
        let offset = rest.measure_offset()?;
        post(
            &notices,
            NoticeKind::ClockOffset,
            "/api/v3/time",
            offset,
            format!("server clock minus ours: {offset} ms"),
        );
        let (mut filters, mut start_balances) = (HashMap::new(), HashMap::new());
        for instrument in instruments {
            let symbol_filters = rest.filters(instrument.as_str())?;
            start_balances.extend(reconcile(&mut rest, instrument, &symbol_filters, &HashSet::new(), &notices)?);
            filters.insert(*instrument, symbol_filters);
        }
        Ok(BinanceVenue {
            rest,
            filters,
            working: Vec::new(),
            reports: VecDeque::new(),
            seen_trades: HashSet::new(),
            funds: Funds { cash: Decimal::ZERO, equity: Decimal::ZERO, gross_exposure: Decimal::ZERO },
            commission_rate,
            poll_interval,
            last_poll: None,
            notices,
            user_stream: None,
            stream_up: false,
            instruments: instruments.to_vec(),
            ended_by_fill: HashMap::new(),
            reconcile_requested: Arc::new(AtomicBool::new(false)),
            start_balances,
            fills_net: HashMap::new(),
        })
    }

    /// Takes what becomes of the orders from `stream` (see [`UserStream`]): working
    /// orders are polled only while it is down, and reconciled when it is up again.
    pub fn with_user_stream(mut self, stream: UserStream) -> Self {
        self.user_stream = Some(stream);
        self
    }

    /// A flag that, once set, has the venue reconcile at its next poll as after the user
    /// data stream's reconnect (for the market data stream's reconnect).
    pub fn reconcile_trigger(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.reconcile_requested)
    }

    /// The REST client's clock offset, ms (server minus local).
    pub fn offset_ms(&self) -> i64 {
        self.rest.offset_ms()
    }

    /// Takes every event the user data stream has received: execution reports of
    /// working orders become their reports; a lost connection starts polling; a
    /// connection made again reconciles.
    fn take_user_events(&mut self) {
        loop {
            let Some(event) = self.user_stream.as_ref().and_then(UserStream::try_next) else { return };
            match event {
                UserEvent::Up { reconnect } => {
                    self.stream_up = true;
                    if reconnect {
                        post(
                            &self.notices,
                            NoticeKind::Reconnected,
                            USER_STREAM,
                            0,
                            "user data stream subscribed again".into(),
                        );
                        self.reconcile_after_reconnect();
                    }
                }
                UserEvent::Down(reason) => {
                    self.stream_up = false;
                    let detail = format!("user data stream: {reason}; polling working orders meanwhile");
                    post(&self.notices, NoticeKind::Disconnected, USER_STREAM, 0, detail);
                }
                UserEvent::Execution(report) => self.on_execution(&report),
                UserEvent::Balances(balances) => {
                    for (asset, free, locked) in balances {
                        let detail = format!("balance {asset}: free {free}, locked {locked}");
                        post(&self.notices, NoticeKind::Reconciliation, "outboundAccountPosition", 0, detail);
                    }
                }
                UserEvent::Unreadable(reason) => post(&self.notices, NoticeKind::Unreadable, USER_STREAM, 0, reason),
                UserEvent::Other(_) => {}
            }
        }
    }

    /// An execution report: for a working order, its acceptance (when sent without an
    /// answer), its fill (once per trade id), its end. Reports on orders not working
    /// (settled by the order's answer already, or not ours) are passed over.
    fn on_execution(&mut self, report: &ExecutionReport) {
        let Some(index) = self.working.iter().position(|w| w.order.client_order_id.as_str() == report.order_id())
        else {
            return;
        };
        let mut w = self.working.remove(index);
        if w.unconfirmed && report.execution_type != "REJECTED" {
            w.unconfirmed = false;
            self.reports.push_back(VenueReport::Accepted(OrderAccepted { client_order_id: w.order.client_order_id }));
        }
        if report.execution_type == "TRADE" {
            if let Ok(trade_id) = u64::try_from(report.trade_id) {
                let fill = TradeFill {
                    price: report.last_price.clone(),
                    qty: report.last_qty.clone(),
                    commission: report.commission.clone(),
                    commission_asset: report.commission_asset.clone().unwrap_or_default(),
                    trade_id,
                    is_maker: report.is_maker,
                };
                w.filled += self.take_fills(&w.order, w.qty, w.filled, &[fill], &report.status);
            }
        }
        let done = match report.status.as_str() {
            "REJECTED" => {
                let reason = format!("binance: REJECTED ({})", report.reject_reason);
                let rejected =
                    OrderRejected { client_order_id: w.order.client_order_id, reason: Arc::from(reason.as_str()) };
                self.reports.push_back(VenueReport::Rejected(rejected));
                true
            }
            status => self.settle_status(&w.order, status),
        };
        if !done {
            self.working.push(w);
        }
    }

    /// Adopts each order of a resumed run whose record ends with a fill and that the
    /// exchange has executed more of since (`GET /api/v3/allOrders`, the symbol's last
    /// 1,000 orders): the run was interrupted between its fills. The rest of its fills
    /// are then taken from the trade history like any working order's.
    fn adopt_executed_since(&mut self) {
        let candidates = std::mem::take(&mut self.ended_by_fill);
        for instrument in self.instruments.clone() {
            let params = format!("symbol={instrument}&limit=1000");
            let listed: Vec<ListedOrder> = match self.rest.signed(Method::GET, "/api/v3/allOrders", &params) {
                Ok(listed) => listed,
                Err(error) => {
                    let detail = format!("listing {instrument}'s orders on resume: {error}");
                    post(&self.notices, NoticeKind::Disconnected, "/api/v3/allOrders", 0, detail);
                    continue;
                }
            };
            for order in listed {
                let Some(w) = candidates.get(&order.client_order_id) else { continue };
                let executed = Decimal::from_str_exact(&order.executed_qty).unwrap_or(Decimal::ZERO);
                if executed <= w.filled {
                    continue;
                }
                let detail = format!(
                    "adopted {} (its record ends with a fill; executed {executed} at the exchange, {} recorded): \
                     its further fills taken from the trade history",
                    order.client_order_id, w.filled
                );
                post(&self.notices, NoticeKind::Reconciliation, "/api/v3/allOrders", 0, detail);
                self.working.push(w.clone());
                self.last_poll = None;
            }
        }
    }

    /// After the user data stream is subscribed again (or the market data stream
    /// connected again): every working order is queried at once (its fills while the
    /// stream was down taken from the trade history, each trade once), and what the
    /// exchange holds is recorded again, its balances compared with the ledger's
    /// ([`BinanceVenue::compare_balances`]).
    fn reconcile_after_reconnect(&mut self) {
        self.last_poll = None;
        self.query_working(false);
        let known: HashSet<String> = self.working.iter().map(|w| w.order.client_order_id.to_string()).collect();
        for instrument in self.instruments.clone() {
            let Some(filters) = self.filters.get(&instrument).cloned() else { continue };
            match reconcile(&mut self.rest, &instrument, &filters, &known, &self.notices) {
                Ok(balances) => self.compare_balances(&balances),
                Err(error) => {
                    let detail = format!("reconciling {instrument} after a reconnect: {error}");
                    post(&self.notices, NoticeKind::Disconnected, "/api/v3/openOrders", 0, detail);
                }
            }
        }
    }

    /// Compares each of `balances` (asset, free + locked) with what the ledger expects:
    /// the balance at start plus what the fills reported since changed it by. A
    /// difference (a fill the ledger does not have, a deposit, a trade by hand) is a
    /// `reconciliation` notice naming the amounts.
    fn compare_balances(&self, balances: &[(String, Decimal)]) {
        for (asset, held) in balances {
            let start = self.start_balances.get(asset).copied().unwrap_or(Decimal::ZERO);
            let net = self.fills_net.get(asset).copied().unwrap_or(Decimal::ZERO);
            let Some(expected) = start.checked_add(net) else { continue };
            if *held == expected {
                continue;
            }
            let detail = format!(
                "balance {asset} differs from the ledger's: the exchange holds {held}; {start} at start and {net} by \
                 the fills recorded since make {expected} (difference {})",
                held.checked_sub(expected).unwrap_or(Decimal::ZERO).normalize()
            );
            post(&self.notices, NoticeKind::Reconciliation, "/api/v3/account", 0, detail);
        }
    }

    /// Adds what `fill` (of `order`) changes the balances by to [`BinanceVenue::fills_net`].
    fn count_fill(&mut self, order: &OrderSubmitted, fill: &TradeFill) {
        let Some(filters) = self.filters.get(&order.instrument) else { return };
        let (base, quote) = (filters.base_asset.clone(), filters.quote_asset.clone());
        let (Ok(qty), Ok(price), Ok(commission)) =
            (dec(&fill.qty, "qty"), dec(&fill.price, "price"), dec(&fill.commission, "commission"))
        else {
            return;
        };
        let Some(notional) = qty.checked_mul(price) else { return };
        let (base_by, quote_by) = match order.side {
            Side::Buy => (qty, -notional),
            Side::Sell => (-qty, notional),
        };
        for (asset, by) in [(base, base_by), (quote, quote_by), (fill.commission_asset.clone(), -commission)] {
            let net = self.fills_net.entry(asset).or_insert(Decimal::ZERO);
            *net = net.checked_add(by).unwrap_or(*net);
        }
    }

    /// The request parameters of `order` (before `timestamp` and the signature), after
    /// the exchange filters, and the quantity they send (base units). A limit or stop
    /// price off the tick size is moved onto it, against the order (a buy's down, a
    /// sell's up: a protective stop triggers no later than asked).
    fn order_params(&self, order: &OrderSubmitted, market: &MarketView<'_>) -> Result<(String, Decimal), String> {
        let filters = self
            .filters
            .get(&order.instrument)
            .ok_or_else(|| format!("{} is not a symbol this venue was set up for", order.instrument))?;
        let buy = order.side == Side::Buy;
        let reference = match market.data {
            TickData::Quote(q) if buy => q.ask,
            TickData::Quote(q) => q.bid,
            TickData::Trade(t) => t.price,
            TickData::Bar(b) => b.close,
        };
        let price = match order.order_type {
            OrderType::Market => reference,
            OrderType::Limit => {
                filters.round_price(order.limit_price.ok_or("a limit order without a limit price")?, buy)
            }
            OrderType::Stop => filters.round_price(order.stop_price.ok_or("a stop order without a stop price")?, buy),
        };
        let costs = Costs {
            commission_rate: self.commission_rate,
            commission_per_unit: Decimal::ZERO,
            commission_min: Decimal::ZERO,
            lot_size: filters.step_size,
            money_decimals: 8,
            round_fees: false,
        };
        let budget = self.funds.budget(order.side, Decimal::ONE);
        let qty = match order.qty {
            OrderQty::Units(units) => filters.floor_qty(units),
            OrderQty::Notional(notional) => sizing::units_for(notional, budget, price, &costs),
            OrderQty::EquityFraction(fraction) => sizing::units_for_fraction(fraction, budget, price, &costs),
        };
        filters.check_qty(qty)?;
        if order.order_type != OrderType::Market {
            filters.check_price(price)?;
        }
        filters.check_notional(qty, price)?;
        let side = if buy { "BUY" } else { "SELL" };
        let mut params = format!(
            "symbol={}&side={side}&quantity={}&newClientOrderId={}&newOrderRespType=FULL",
            order.instrument,
            qty.normalize(),
            order.client_order_id
        );
        let tif = match order.tif {
            TimeInForce::Gtc => "GTC",
            TimeInForce::Ioc => "IOC",
            TimeInForce::Day => return Err("Binance spot has no day orders (time in force GTC or IOC)".into()),
        };
        match order.order_type {
            OrderType::Market => params.push_str("&type=MARKET"),
            OrderType::Limit => params.push_str(&format!("&type=LIMIT&timeInForce={tif}&price={}", price.normalize())),
            OrderType::Stop => params.push_str(&format!("&type=STOP_LOSS&stopPrice={}", price.normalize())),
        }
        Ok((params, qty))
    }

    /// The fee of a fill in the quote currency (see the module docs). A commission in
    /// a third asset (BNB) is valued at that asset's last price in the quote currency
    /// (`GET /api/v3/ticker/price`), and a `Commission` notice records its amount,
    /// asset and the price taken (0 when there is none).
    fn fee(&mut self, instrument: &InstrumentId, fill: &TradeFill) -> Result<Decimal, String> {
        let commission = dec(&fill.commission, "commission")?;
        let Some(filters) = self.filters.get(instrument) else { return Ok(Decimal::ZERO) };
        if fill.commission_asset == filters.quote_asset {
            return Ok(commission);
        }
        if fill.commission_asset == filters.base_asset {
            let price = dec(&fill.price, "price")?;
            return commission.checked_mul(price).ok_or_else(|| "commission x price is out of range".to_string());
        }
        let (asset, quote) = (fill.commission_asset.clone(), filters.quote_asset.clone());
        let pair = format!("{asset}{quote}");
        let valued = match self.rest.price(&pair) {
            Ok(price) => commission.checked_mul(price).map(|fee| (fee, format!("at {price} {quote} ({pair})"))),
            Err(error) => {
                let detail = format!("no {pair} price ({error})");
                Some((Decimal::ZERO, detail))
            }
        };
        let (fee, how) = valued.unwrap_or((Decimal::ZERO, format!("{pair}: commission x price is out of range")));
        let detail = format!(
            "trade {} of {instrument}: commission {commission} {asset} {how}: booked as a fee of {fee} {quote}",
            fill.trade_id
        );
        post(&self.notices, NoticeKind::Commission, instrument.as_str(), 0, detail);
        Ok(fee)
    }

    /// Queues a fill report for each of `fills` not reported before, for `order` sent
    /// for `qty` units of which `filled` had filled before; returns the quantity they
    /// add. A fill that brings the order to its quantity, or the last of them when the
    /// exchange says the order is `FILLED`, is its last ([`VenueReport::Filled`]); any
    /// other is partial ([`VenueReport::PartiallyFilled`]).
    fn take_fills(
        &mut self,
        order: &OrderSubmitted,
        qty: Decimal,
        filled: Decimal,
        fills: &[TradeFill],
        status: &str,
    ) -> Decimal {
        let mut added = Decimal::ZERO;
        let fresh: Vec<&TradeFill> = fills.iter().filter(|f| !self.seen_trades.contains(&f.trade_id)).collect();
        let count = fresh.len();
        for (index, fill) in fresh.into_iter().enumerate() {
            self.seen_trades.insert(fill.trade_id);
            let read = |venue: &mut Self| -> Result<(Decimal, Decimal, Decimal), String> {
                Ok((dec(&fill.qty, "qty")?, dec(&fill.price, "price")?, venue.fee(&order.instrument, fill)?))
            };
            match read(self) {
                Ok((fill_qty, price, fee)) => {
                    added += fill_qty;
                    self.count_fill(order, fill);
                    let report = OrderFilled {
                        client_order_id: order.client_order_id,
                        fill_id: FillId::new(fill.trade_id),
                        instrument: order.instrument,
                        side: order.side,
                        qty: fill_qty,
                        price,
                        fee,
                        liquidity: if fill.is_maker { Liquidity::Maker } else { Liquidity::Taker },
                    };
                    let last = filled + added >= qty || (status == "FILLED" && index + 1 == count);
                    self.reports.push_back(match last {
                        true => VenueReport::Filled(report),
                        false => VenueReport::PartiallyFilled(report),
                    });
                }
                Err(reason) => {
                    let detail = format!("trade {} of {}: {reason}", fill.trade_id, order.client_order_id);
                    post(&self.notices, NoticeKind::Unreadable, "/api/v3/order", 0, detail);
                }
            }
        }
        added
    }

    /// Queries each working order (at most once per poll interval) and queues what
    /// became of it: new fills from its trades, its cancellation or expiry.
    fn poll_working(&mut self) {
        if self.working.is_empty() || self.last_poll.is_some_and(|at| at.elapsed() < self.poll_interval) {
            return;
        }
        // While the stream is up it reports the orders the exchange has; an order sent
        // without an answer may not be there, and is still queried.
        self.query_working(self.stream_up);
    }

    /// Queries each working order (only those sent without an answer, with
    /// `unconfirmed_only`) now, and queues what became of it.
    fn query_working(&mut self, unconfirmed_only: bool) {
        self.last_poll = Some(Instant::now());
        let working = std::mem::take(&mut self.working);
        for mut w in working {
            if unconfirmed_only && !w.unconfirmed && !w.adopted {
                self.working.push(w);
                continue;
            }
            match self.refresh(&mut w) {
                Ok(true) => {}
                Ok(false) => self.working.push(w),
                Err(error) => {
                    let detail = format!("querying {}: {error}", w.order.client_order_id);
                    post(&self.notices, NoticeKind::Disconnected, "/api/v3/order", 0, detail);
                    self.working.push(w);
                }
            }
        }
    }

    /// Brings `w` up to date; returns whether it is done.
    fn refresh(&mut self, w: &mut Working) -> Result<bool, RestError> {
        match self.refresh_fills(w)? {
            Some(status) => Ok(self.settle_status(&w.order, &status)),
            None => Ok(true),
        }
    }

    /// Queries `w` and queues its new fills (and its acceptance, when it was sent
    /// without an answer); returns its status, or `None` when the exchange does not
    /// have it (it never got there: its rejection is queued).
    fn refresh_fills(&mut self, w: &mut Working) -> Result<Option<String>, RestError> {
        let params = format!("symbol={}&origClientOrderId={}", w.order.instrument, w.order.client_order_id);
        let status: OrderStatus = match self.rest.signed(Method::GET, "/api/v3/order", &params) {
            Ok(status) => status,
            // An order sent without an answer that the exchange does not have: it
            // never got there.
            Err(RestError::Refused { code: -2013, msg, .. }) if w.unconfirmed => {
                let reason = format!("binance -2013: {msg} (sent without an answer; not at the exchange)");
                let id = w.order.client_order_id;
                let rejected = OrderRejected { client_order_id: id, reason: Arc::from(reason.as_str()) };
                self.reports.push_back(VenueReport::Rejected(rejected));
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        w.adopted = false;
        if w.unconfirmed {
            w.unconfirmed = false;
            let accepted = OrderAccepted { client_order_id: w.order.client_order_id };
            self.reports.push_back(VenueReport::Accepted(accepted));
        }
        let executed = Decimal::from_str_exact(&status.executed_qty).unwrap_or(w.filled);
        if executed > w.filled {
            let params = format!("symbol={}&orderId={}", w.order.instrument, status.order_id);
            let trades: Vec<AccountTrade> = self.rest.signed(Method::GET, "/api/v3/myTrades", &params)?;
            let fills: Vec<TradeFill> = trades.into_iter().map(AccountTrade::into_fill).collect();
            w.filled += self.take_fills(&w.order, w.qty, w.filled, &fills, &status.status);
        }
        Ok(Some(status.status))
    }

    /// Queues the end of an order in `status`; returns whether the order is done.
    fn settle_status(&mut self, order: &OrderSubmitted, status: &str) -> bool {
        let id = order.client_order_id;
        match status {
            "NEW" | "PARTIALLY_FILLED" | "PENDING_NEW" => false,
            "FILLED" => true,
            "REJECTED" => {
                let reason = Arc::from("binance: REJECTED");
                self.reports.push_back(VenueReport::Rejected(OrderRejected { client_order_id: id, reason }));
                true
            }
            other => {
                let reason = Arc::from(format!("binance: {other}").as_str());
                self.reports.push_back(VenueReport::Canceled(OrderCanceled { client_order_id: id, reason }));
                true
            }
        }
    }
}

/// Records what the exchange holds for `instrument` (as the run starts, and after the
/// user data stream's reconnect): each open order whose client order id is a ledger's
/// (`r<run>-<n>`) and not one of the `working` orders (an earlier run's, left working;
/// it is not adopted, and not canceled), and the balances of its base and quote assets.
/// Returns those balances (asset, free + locked).
fn reconcile(
    rest: &mut RestClient,
    instrument: &InstrumentId,
    filters: &SymbolFilters,
    working: &HashSet<String>,
    notices: &NoticeBoard,
) -> Result<Vec<(String, Decimal)>, RestError> {
    let open: Vec<OpenOrder> = rest.signed(Method::GET, "/api/v3/openOrders", &format!("symbol={instrument}"))?;
    for order in open.iter().filter(|o| is_ledger_id(&o.client_order_id) && !working.contains(&o.client_order_id)) {
        let detail = format!(
            "open order {} ({} {} {}, {} executed) is at the exchange, not working in this session: left working \
             (an earlier run's is not adopted; this run's is adopted on resume)",
            order.client_order_id, order.side, order.orig_qty, order.kind, order.executed_qty
        );
        post(notices, NoticeKind::Reconciliation, "/api/v3/openOrders", 0, detail);
    }
    let account: Account = rest.signed(Method::GET, "/api/v3/account", "omitZeroBalances=true")?;
    let mut held = Vec::with_capacity(2);
    for asset in [&filters.base_asset, &filters.quote_asset] {
        let (free, locked) = account
            .balances
            .iter()
            .find(|b| &b.asset == asset)
            .map_or(("0", "0"), |b| (b.free.as_str(), b.locked.as_str()));
        let detail = format!("balance {asset}: free {free}, locked {locked}");
        post(notices, NoticeKind::Reconciliation, "/api/v3/account", 0, detail);
        if let (Ok(free), Ok(locked)) = (dec(free, "free"), dec(locked, "locked")) {
            held.push((asset.clone(), free.checked_add(locked).unwrap_or(free)));
        }
    }
    Ok(held)
}

/// Whether `id` is a client order id a ledger makes (`r<run>-<n>`).
fn is_ledger_id(id: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    id.strip_prefix('r').and_then(|rest| rest.split_once('-')).is_some_and(|(run, n)| digits(run) && digits(n))
}

/// A decimal string of Binance's.
fn dec(text: &str, field: &str) -> Result<Decimal, String> {
    Decimal::from_str_exact(text).map_err(|e| format!("{field} {text:?}: {e}"))
}

impl Venue for BinanceVenue {
    fn name(&self) -> &str {
        VENUE
    }

    fn is_external(&self) -> bool {
        true
    }

    fn submit(&mut self, order: &OrderSubmitted, market: &MarketView<'_>) -> Result<(), VenueError> {
        self.rest.may_send_order().map_err(|e| VenueError(e.to_string()))?;
        let (params, qty) = self.order_params(order, market).map_err(VenueError)?;
        let answer: OrderAnswer = match self.rest.signed(Method::POST, "/api/v3/order", &params) {
            Ok(answer) => answer,
            // No answer: the order may be at the exchange all the same. It is taken as
            // working and queried by its client order id (never sent again); the query
            // settles it, a fill included.
            Err(RestError::Transport(reason)) => {
                let detail = format!("sending {}: {reason}; querying it by its client order id", order.client_order_id);
                post(&self.notices, NoticeKind::Disconnected, "/api/v3/order", 0, detail);
                let w = Working { order: order.clone(), qty, filled: Decimal::ZERO, unconfirmed: true, adopted: false };
                self.working.push(w);
                self.last_poll = None;
                return Ok(());
            }
            Err(error) => return Err(VenueError(error.to_string())),
        };
        if answer.status == "REJECTED" {
            self.settle_status(order, "REJECTED");
            return Ok(());
        }
        self.reports.push_back(VenueReport::Accepted(OrderAccepted { client_order_id: order.client_order_id }));
        let filled = self.take_fills(order, qty, Decimal::ZERO, &answer.fills, &answer.status);
        if !self.settle_status(order, &answer.status) {
            self.working.push(Working { order: order.clone(), qty, filled, unconfirmed: false, adopted: false });
        }
        Ok(())
    }

    fn poll(&mut self, _market: &MarketView<'_>, funds: &Funds) -> Option<VenueReport> {
        self.funds = *funds;
        if !self.ended_by_fill.is_empty() {
            self.adopt_executed_since();
        }
        if self.reconcile_requested.swap(false, Ordering::Relaxed) {
            self.reconcile_after_reconnect();
        }
        self.take_user_events();
        if self.reports.is_empty() {
            self.poll_working();
        }
        self.reports.pop_front()
    }

    fn cancel_all(&mut self, reason: &str) -> Vec<VenueReport> {
        for w in self.working.clone() {
            // Failures are left as notices; the order stays working at the venue.
            let _ = self.cancel(w.order.client_order_id, reason);
        }
        self.reports.drain(..).collect()
    }

    /// Cancels at Binance (`DELETE /api/v3/order`); the fills it had first and its
    /// `Canceled` come through [`Venue::poll`]. A refused cancellation (the order filled
    /// meanwhile) leaves a notice, and the order is queried as usual.
    fn cancel(&mut self, order: ClientOrderId, reason: &str) -> Result<Option<VenueReport>, VenueError> {
        let Some(index) = self.working.iter().position(|w| w.order.client_order_id == order) else {
            return Ok(None);
        };
        let mut w = self.working.remove(index);
        let params = format!("symbol={}&origClientOrderId={order}", w.order.instrument);
        match self.rest.signed::<OrderStatus>(Method::DELETE, "/api/v3/order", &params) {
            Ok(_) => {
                // Fills made before the cancellation come first (its end is ours).
                let _ = self.refresh_fills(&mut w);
                let reason = Arc::from(reason);
                self.reports.push_back(VenueReport::Canceled(OrderCanceled { client_order_id: order, reason }));
            }
            Err(error) => {
                post(
                    &self.notices,
                    NoticeKind::Disconnected,
                    "/api/v3/order",
                    0,
                    format!("canceling {order}: {error}"),
                );
                self.working.push(w);
            }
        }
        Ok(None)
    }

    fn amend(
        &mut self,
        order: ClientOrderId,
        _stop_price: Decimal,
        _market: &MarketView<'_>,
    ) -> Result<(), VenueError> {
        Err(VenueError(format!("{order}: Binance spot cannot move a working stop (no trailing stops on this venue)")))
    }

    fn working_orders(&self) -> Vec<ClientOrderId> {
        self.working.iter().map(|w| w.order.client_order_id).collect()
    }

    /// Takes over an order sent before the run was interrupted: its recorded fills'
    /// trade ids are marked seen (never recorded twice). An order the run does not have
    /// open (its record ends with a fill) is kept aside for
    /// [`BinanceVenue::adopt_executed_since`]; an open one is queried by its
    /// client order id at the next poll, whether the user data stream is up or not: not
    /// at the exchange (`-2013`, when its acceptance is not on the record), it is
    /// rejected; found, what became of it since is reported. Its quantity in units is
    /// not on the record for an order sized by the venue: its last fill is then the
    /// one that leaves it `FILLED`. A `reconciliation` notice records the adoption.
    fn adopt(&mut self, order: &OrderSubmitted, accepted: bool, fills: &[OrderFilled], open: bool) {
        let mut filled = Decimal::ZERO;
        for fill in fills {
            self.seen_trades.insert(fill.fill_id.get());
            filled = filled.checked_add(fill.qty).unwrap_or(filled);
        }
        let qty = match (&order.qty, self.filters.get(&order.instrument)) {
            (OrderQty::Units(units), Some(filters)) => filters.floor_qty(*units),
            _ => Decimal::MAX,
        };
        let id = order.client_order_id;
        if !open {
            let w = Working { order: order.clone(), qty, filled, unconfirmed: false, adopted: true };
            self.ended_by_fill.insert(id.to_string(), w);
            return;
        }
        let detail = format!(
            "adopted {id} (sent before the restart; {}, {} fill(s) recorded): queried by its client order id, never sent again",
            if accepted { "accepted" } else { "no answer recorded" },
            fills.len()
        );
        post(&self.notices, NoticeKind::Reconciliation, "/api/v3/order", 0, detail);
        self.working.push(Working { order: order.clone(), qty, filled, unconfirmed: !accepted, adopted: true });
        self.last_poll = None;
    }
}

/// `POST /api/v3/order`'s FULL answer, the fields used.
#[derive(Deserialize)]
struct OrderAnswer {
    status: String,
    #[serde(default)]
    fills: Vec<TradeFill>,
}

/// One fill of an order, as an order's answer gives it.
#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct TradeFill {
    price: String,
    qty: String,
    commission: String,
    commission_asset: String,
    trade_id: u64,
    /// Not in an order's answer (its fills take liquidity); from the trade history.
    #[serde(default)]
    is_maker: bool,
}

/// `GET /api/v3/openOrders`'s items, the fields used.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenOrder {
    client_order_id: String,
    side: String,
    #[serde(rename = "type")]
    kind: String,
    orig_qty: String,
    executed_qty: String,
}

/// `GET /api/v3/account`'s answer, the fields used.
#[derive(Deserialize)]
struct Account {
    balances: Vec<Balance>,
}

#[derive(Deserialize)]
struct Balance {
    asset: String,
    free: String,
    locked: String,
}

/// `GET /api/v3/allOrders`'s items, the fields used.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedOrder {
    client_order_id: String,
    executed_qty: String,
}

/// `GET /api/v3/order`'s answer, the fields used.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderStatus {
    order_id: u64,
    status: String,
    executed_qty: String,
}

/// `GET /api/v3/myTrades`'s items, the fields used.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountTrade {
    id: u64,
    price: String,
    qty: String,
    commission: String,
    commission_asset: String,
    is_maker: bool,
}

impl AccountTrade {
    fn into_fill(self) -> TradeFill {
        TradeFill {
            price: self.price,
            qty: self.qty,
            commission: self.commission,
            commission_asset: self.commission_asset,
            trade_id: self.id,
            is_maker: self.is_maker,
        }
    }
}
