//! What the visual report of one run shows, folded from its events: the price of each
//! instrument, the equity with buy-and-hold beside it and the drawdown (each downsampled
//! for drawing, [`crate::downsample`]), the statistics ([`crate::report`]), the round
//! trips ([`crate::trades`]), a marker per entry, exit and denied decision, and the audit
//! rows ([`crate::audit`]) those markers point at, so every trade can be explained down to
//! the decision behind it.
//!
//! Memory: the drawn series are bounded ([`DEFAULT_BUCKETS`] buckets each); the trades,
//! markers and explaining rows grow with the trades and denied decisions, never with the
//! ticks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc::{channel, Receiver};

use ledger_core::event::{EventRef, Payload, Side, Text, TickData};
use ledger_core::ids::{InstrumentId, RunId, Seq};
use ledger_core::time::TimestampNs;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::audit::{AuditFold, AuditRow, Dec};
use crate::downsample::{Bucket, Downsampler, Line, DEFAULT_BUCKETS};
use crate::report::{Report, ReportFold};
use crate::trades::{EquityRow, TradeRow, TradesFold};
use crate::Fold;

/// The sink of the trades fold: closed round trips sent to the page fold.
type TradeSink = Box<dyn FnMut(TradeRow) + Send>;

/// The page fold of one run: call [`Fold::apply`] with its events in seq order, then
/// [`PageFold::finish`].
pub struct PageFold {
    run: RunId,
    covers: Seq,
    buckets: usize,
    report: ReportFold,
    trades: TradesFold<TradeSink, fn(EquityRow)>,
    closed: Receiver<TradeRow>,
    audit: AuditFold,
    prices: BTreeMap<InstrumentId, PriceSeries>,
    equity: Downsampler,
    buy_and_hold: Downsampler,
    drawdown: Downsampler,
    /// The first tick's instrument, and the units of it the starting cash buys at its
    /// first price (buy-and-hold).
    primary: Option<(InstrumentId, Option<f64>)>,
    starting_cash: f64,
    provider: Option<ProviderInfo>,
    cards: Vec<Card>,
    /// The card explaining each order: the row of the decision behind it (a protective
    /// exit's: its entry's).
    order_card: HashMap<String, usize>,
    /// Each fill: the card it is recorded in, its order and its time (ms UTC).
    fills: BTreeMap<u64, FillSeen>,
    /// The source time (ms UTC) and instrument of each fill until its audit row is kept.
    fill_times: HashMap<u64, (f64, InstrumentId)>,
    denied: Vec<Marker>,
}

/// A fill as the page saw it in the audit rows.
#[derive(Debug, Clone)]
struct FillSeen {
    card: usize,
    order: String,
    ms: f64,
    side: Side,
    qty: Decimal,
    price: Decimal,
    instrument: Option<InstrumentId>,
}

/// What the decision panel shows of one audit row ([`AuditRow`], trimmed to it): the
/// decision, the risk verdict with every check, the orders and fills, and the seqs.
/// Text (reason, prompt, raw answer) is as recorded: untrusted.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    /// The cycle (tick number within the run).
    pub cycle: u64,
    /// Seqs of the row's first and last events.
    pub seqs: (u64, u64),
    /// The tick's reference price, quote currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<Dec>,
    /// `long`, `short`, `close`, `hold`, or `""` without a decision.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub action: String,
    /// Fraction of equity asked for, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_pct: Option<Dec>,
    /// The provider's confidence, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Dec>,
    /// The provider's reason.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: Text,
    /// `ok`, `invalid`, `provider_error`, or `""`.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub parse_status: String,
    /// What was wrong with the output, or `""`.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub parse_error: Text,
    /// The prompt sent (`""` for rules).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub prompt: Text,
    /// The provider's raw output (`""` for rules).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub raw_output: Text,
    /// Provider latency, microseconds, and prompt and completion tokens.
    #[serde(skip_serializing_if = "is_zero")]
    pub latency_us: u64,
    /// Prompt and completion tokens.
    #[serde(skip_serializing_if = "is_zero")]
    pub tokens: u64,
    /// `approved`, `denied`, or `""` without a verdict.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub verdict: String,
    /// Why it denied, or `""`.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub verdict_reason: Text,
    /// Seq of the verdict (0 without one).
    pub verdict_seq: u64,
    /// Every check: id, measured value, limit, passed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<(String, Dec, Dec, bool)>,
    /// Orders submitted in the row: seq, client order id, side, type, qty, qty unit,
    /// status at the row's end, protective exit kind (or `""`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<OrderLine>,
    /// Fills recorded in the row: seq, client order id, side, units, price, fee, liquidity.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fills: Vec<FillLine>,
}

/// An order on a card: seq, client order id, side, type, qty, qty unit, status at the
/// row's end, protective exit kind (or `""`). An array in JSON.
pub type OrderLine = (u64, String, String, String, Dec, String, String, String);

/// A fill on a card: seq, client order id, side, units, price, fee, liquidity. An array in
/// JSON.
pub type FillLine = (u64, String, String, Dec, Dec, Dec, String);

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Card {
    fn of(row: AuditRow) -> Card {
        Card {
            cycle: row.cycle_id,
            seqs: (row.first_seq, row.last_seq),
            price: row.price,
            action: row.action.to_string(),
            size_pct: row.size_pct,
            confidence: row.confidence,
            reason: row.decision_reason,
            parse_status: row.parse_status.to_string(),
            parse_error: row.parse_error,
            prompt: row.prompt,
            raw_output: row.raw_output,
            latency_us: row.latency_us,
            tokens: row.tokens_in + row.tokens_out,
            verdict: row.verdict.to_string(),
            verdict_reason: row.verdict_reason,
            verdict_seq: row.verdict_seq,
            checks: row.checks.into_iter().map(|c| (c.id, c.value, c.limit, c.passed)).collect(),
            orders: row
                .orders
                .into_iter()
                .map(|o| {
                    let exit = o.exit_kind.unwrap_or_default();
                    (o.seq, o.client_order_id, o.side, o.order_type, o.qty, o.qty_unit, o.status, exit)
                })
                .collect(),
            fills: row
                .fills
                .into_iter()
                .map(|f| (f.seq, f.client_order_id, f.side, f.qty, f.price, f.fee, f.liquidity))
                .collect(),
        }
    }
}

/// The provider of a run, as its audit rows name it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProviderInfo {
    /// Provider kind (`rules`, `script`, `openai`, ...).
    pub provider: String,
    /// Strategy or model name.
    pub model: String,
    /// Provider parameters, `k=v` sorted by key, space separated.
    pub params: String,
}

/// The price of one instrument as drawn.
#[derive(Debug, Clone, Serialize)]
pub struct PriceSeries {
    /// The instrument.
    pub instrument: InstrumentId,
    /// Whether every tick was a bar (drawn as candles; else a line of the tick's price:
    /// trade price, quote mid).
    pub bars: bool,
    /// Ticks folded.
    pub ticks: u64,
    /// Ticks per bucket (1: every tick drawn as it is).
    pub bucket_ticks: u64,
    /// The buckets: a candle each, prices in the quote currency.
    pub candles: Vec<Bucket>,
    /// The same as a line (each bucket's low and high at their times).
    pub line: Line,
    #[serde(skip)]
    series: Downsampler,
}

/// What a marker marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerKind {
    /// A fill that opened (or added to) a position.
    Entry,
    /// A fill that closed a trade on a decision.
    Exit,
    /// A protective exit's fill: stop loss, take profit or trailing stop.
    ProtectiveExit,
    /// A close the strategy did not ask for: the kill switch's, or the close-out at the
    /// end of the data.
    ForcedExit,
    /// A decision the risk checks denied (no order).
    Denied,
}

/// One marker on a price chart, pointing at the audit row that explains it.
#[derive(Debug, Clone, Serialize)]
pub struct Marker {
    /// What it marks.
    pub kind: MarkerKind,
    /// The instrument whose chart it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instrument: Option<InstrumentId>,
    /// When, ms since the Unix epoch, UTC.
    pub ms: f64,
    /// Fill price (entries: the trade's average entry price), or the tick's price for a
    /// denied decision; quote currency.
    pub price: Decimal,
    /// `long` or `short` (the position's side), or the denied decision's action.
    pub side: String,
    /// Units filled (exits: of the trade), or the fraction of equity a denied decision asked.
    pub size: Decimal,
    /// Why it closed, for exits the strategy did not decide (`stop_loss`, `take_profit`,
    /// `trailing_stop`, `kill switch`, `end of data`); `""` else (the card has the reason).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub exit_reason: String,
    /// Seq of the fill (or of the denied verdict).
    pub seq: u64,
    /// Index in [`Page::cards`] of the row with the decision behind it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<usize>,
    /// Index in [`Page::cards`] of the row the fill is recorded in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill_card: Option<usize>,
    /// Index in [`Page::trades`] of the trade it opens or closes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade: Option<usize>,
}

/// The visual report's content: see the module docs.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// The statistics.
    pub report: Report,
    /// Each instrument's price, in order of instrument id.
    pub prices: Vec<PriceSeries>,
    /// Equity after each tick, account currency.
    pub equity: Line,
    /// The starting cash in the first instrument from its first tick, marked at each of
    /// its ticks; account currency.
    pub buy_and_hold: Line,
    /// Fall from the highest equity so far, percent, as a negative number.
    pub drawdown: Line,
    /// Ticks per bucket of the equity series (1: nothing merged).
    pub bucket_ticks: u64,
    /// Closed round trips, in the order they closed.
    pub trades: Vec<TradeRow>,
    /// Every fill and denied decision, in time order.
    pub markers: Vec<Marker>,
    /// The audit rows markers point at (decisions with orders, fills, denials), trimmed.
    pub cards: Vec<Card>,
    /// The run's decision provider.
    pub provider: ProviderInfo,
}

fn ms(ts: TimestampNs) -> f64 {
    ts.nanos() as f64 / 1e6
}

fn float(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(f64::NAN)
}

impl PageFold {
    /// The page of run `run`, each series held in at most `buckets` buckets
    /// ([`DEFAULT_BUCKETS`] for a report).
    pub fn new(run: RunId, buckets: usize) -> Self {
        let (send, closed) = channel();
        let on_trade: TradeSink = Box::new(move |trade| {
            // The receiver lives as long as the fold.
            let _ = send.send(trade);
        });
        PageFold {
            run,
            covers: Seq::ZERO,
            buckets,
            report: ReportFold::new(run),
            trades: TradesFold::new(run, on_trade, (|_| {}) as fn(EquityRow)),
            closed,
            audit: AuditFold::new(run),
            prices: BTreeMap::new(),
            equity: Downsampler::new(buckets),
            buy_and_hold: Downsampler::new(buckets),
            drawdown: Downsampler::new(buckets),
            primary: None,
            starting_cash: 0.0,
            provider: None,
            cards: Vec::new(),
            order_card: HashMap::new(),
            fills: BTreeMap::new(),
            fill_times: HashMap::new(),
            denied: Vec::new(),
        }
    }

    /// The page of run `run` with [`DEFAULT_BUCKETS`].
    pub fn of_run(run: RunId) -> Self {
        PageFold::new(run, DEFAULT_BUCKETS)
    }

    fn on_tick(&mut self, ts: TimestampNs, instrument: InstrumentId, data: &TickData) {
        let at = ms(ts);
        let price = float(data.reference_price());
        let buckets = self.buckets;
        let series = self.prices.entry(instrument).or_insert_with(|| PriceSeries {
            instrument,
            bars: true,
            ticks: 0,
            bucket_ticks: 1,
            candles: Vec::new(),
            line: Line::default(),
            series: Downsampler::new(buckets),
        });
        match data {
            TickData::Bar(bar) => {
                series.series.push(at, float(bar.open), float(bar.high), float(bar.low), float(bar.close))
            }
            _ => {
                series.bars = false;
                series.series.push_value(at, price);
            }
        }
        let (primary, units) = self.primary.get_or_insert((instrument, None));
        if *primary == instrument {
            let units = *units.get_or_insert(self.starting_cash / price);
            self.buy_and_hold.push_value(at, units * price);
        }
        let portfolio = self.report.portfolio();
        self.equity.push_value(at, float(portfolio.equity()));
        self.drawdown.push_value(at, -float(portfolio.drawdown()) * 100.0);
    }

    /// Keeps a finished audit row as a card when a marker may point at it: fills, a
    /// denial, or orders still working (to fill later). Rows whose orders all ended
    /// rejected or canceled unfilled explain no marker.
    fn keep(&mut self, row: AuditRow) {
        let denied = row.verdict == "denied";
        let working = row.orders.iter().any(|o| o.status != "rejected" && o.status != "canceled");
        if row.fills.is_empty() && !denied && !working {
            return;
        }
        let index = self.cards.len();
        for order in &row.orders {
            let card = order.protects.as_ref().and_then(|entry| self.order_card.get(entry).copied()).unwrap_or(index);
            self.order_card.insert(order.client_order_id.clone(), card);
        }
        for fill in &row.fills {
            let side = if fill.side == "buy" { Side::Buy } else { Side::Sell };
            let (at, instrument) = match self.fill_times.remove(&fill.seq) {
                Some((at, instrument)) => (at, Some(instrument)),
                None => (ms(row.ts_event.0), row.instrument),
            };
            self.fills.insert(
                fill.seq,
                FillSeen {
                    card: index,
                    order: fill.client_order_id.clone(),
                    ms: at,
                    side,
                    qty: fill.qty.0,
                    price: fill.price.0,
                    instrument,
                },
            );
        }
        if denied {
            self.denied.push(Marker {
                kind: MarkerKind::Denied,
                instrument: row.instrument,
                ms: ms(row.ts_event.0),
                price: row.price.map(|p| p.0).unwrap_or_default(),
                side: row.action.to_string(),
                size: row.size_pct.map(|p| p.0).unwrap_or_default(),
                exit_reason: String::new(),
                seq: row.verdict_seq,
                card: Some(index),
                fill_card: None,
                trade: None,
            });
        }
        self.provider.get_or_insert_with(|| ProviderInfo {
            provider: row.provider.to_string(),
            model: row.model.to_string(),
            params: row.params.to_string(),
        });
        self.cards.push(Card::of(row));
    }

    fn drain_rows(&mut self) {
        let rows: Vec<AuditRow> = self.audit.take_rows().collect();
        for row in rows {
            self.keep(row);
        }
    }

    /// The page: closes the last audit row and places a marker on every fill (entries
    /// and exits of the trades, and the fills of positions still open) and denial.
    pub fn finish(mut self) -> Page {
        self.audit.finish();
        self.drain_rows();
        let trades: Vec<TradeRow> = self.closed.try_iter().collect();
        let mut markers = std::mem::take(&mut self.denied);
        let mut marked = BTreeSet::new();
        for (index, trade) in trades.iter().enumerate() {
            if marked.insert((trade.entry_seq, MarkerKind::Entry as u8)) {
                markers.push(self.fill_marker(trade.entry_seq, MarkerKind::Entry, trade.side, trade, index));
            }
            let kind = match &*trade.exit_reason {
                "stop_loss" | "take_profit" | "trailing_stop" => MarkerKind::ProtectiveExit,
                "kill switch" | "end of data" => MarkerKind::ForcedExit,
                _ => MarkerKind::Exit,
            };
            marked.insert((trade.exit_seq, MarkerKind::Exit as u8));
            markers.push(Marker {
                size: trade.size,
                price: trade.exit_price,
                exit_reason: if kind == MarkerKind::Exit { String::new() } else { trade.exit_reason.to_string() },
                ..self.fill_marker(trade.exit_seq, kind, trade.side, trade, index)
            });
        }
        // Fills no closed trade names: entries of positions still open, and additions.
        for (&seq, fill) in &self.fills {
            let named =
                marked.contains(&(seq, MarkerKind::Entry as u8)) || marked.contains(&(seq, MarkerKind::Exit as u8));
            if !named {
                markers.push(Marker {
                    kind: MarkerKind::Entry,
                    instrument: fill.instrument,
                    ms: fill.ms,
                    price: fill.price,
                    side: if fill.side == Side::Buy { "long" } else { "short" }.to_string(),
                    size: fill.qty,
                    exit_reason: String::new(),
                    seq,
                    card: self.order_card.get(&fill.order).copied(),
                    fill_card: Some(fill.card),
                    trade: None,
                });
            }
        }
        markers.sort_by(|a, b| a.ms.total_cmp(&b.ms).then(a.seq.cmp(&b.seq)));
        let cards = only_pointed_at(std::mem::take(&mut self.cards), &mut markers);
        let prices = std::mem::take(&mut self.prices)
            .into_values()
            .map(|mut p| {
                p.ticks = p.series.len();
                p.bucket_ticks = p.series.width();
                p.candles = p.series.buckets().to_vec();
                p.line = p.series.line();
                p
            })
            .collect();
        Page {
            report: self.report.report(),
            prices,
            equity: self.equity.line(),
            buy_and_hold: self.buy_and_hold.line(),
            drawdown: self.drawdown.line(),
            bucket_ticks: self.equity.width(),
            trades,
            markers,
            cards,
            provider: self.provider.unwrap_or_default(),
        }
    }

    /// The marker of the fill at `seq` for `trade` (number `index`): its time, order and
    /// cards from the audit rows; entry price and size from the trade.
    fn fill_marker(&self, seq: u64, kind: MarkerKind, side: &str, trade: &TradeRow, index: usize) -> Marker {
        let fill = self.fills.get(&seq);
        Marker {
            kind,
            instrument: Some(trade.instrument),
            ms: fill.map_or(f64::NAN, |f| f.ms),
            price: trade.entry_price,
            side: side.to_string(),
            size: trade.size,
            exit_reason: String::new(),
            seq,
            card: fill.and_then(|f| self.order_card.get(&f.order).copied()),
            fill_card: fill.map(|f| f.card),
            trade: Some(index),
        }
    }
}

/// The cards some marker points at, the markers' indices moved to match.
fn only_pointed_at(cards: Vec<Card>, markers: &mut [Marker]) -> Vec<Card> {
    let mut moved: Vec<Option<usize>> = vec![None; cards.len()];
    for marker in markers.iter() {
        for index in [marker.card, marker.fill_card].into_iter().flatten() {
            if let Some(slot) = moved.get_mut(index) {
                *slot = Some(0);
            }
        }
    }
    let mut kept = Vec::new();
    for (card, slot) in cards.into_iter().zip(moved.iter_mut()) {
        if slot.is_some() {
            *slot = Some(kept.len());
            kept.push(card);
        }
    }
    for marker in markers.iter_mut() {
        marker.card = marker.card.and_then(|i| moved.get(i).copied().flatten());
        marker.fill_card = marker.fill_card.and_then(|i| moved.get(i).copied().flatten());
    }
    kept
}

impl Fold for PageFold {
    fn apply(&mut self, event: &EventRef<'_>) {
        self.covers = event.seq;
        self.report.apply(event);
        self.trades.apply(event);
        self.audit.apply(event);
        if event.run_id != self.run {
            return;
        }
        match event.payload {
            Payload::RunStarted(started) => self.starting_cash = float(started.starting_cash),
            Payload::MarketTick(tick) => {
                self.drain_rows();
                self.on_tick(event.ts_event, tick.instrument, &tick.data);
            }
            Payload::OrderFilled(fill) => {
                self.fill_times.insert(event.seq.get(), (ms(event.ts_event), fill.instrument));
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

    fn card(cycle: u64) -> Card {
        Card::of(AuditRow { cycle_id: cycle, ..blank_row() })
    }

    fn blank_row() -> AuditRow {
        serde_json::from_value(serde_json::json!({
            "cycle_id": 0, "first_seq": 1, "last_seq": 1, "latency_us": 0, "prev_row_hash": "", "run_id": 1,
            "tokens_in": 0, "tokens_out": 0, "ts_event": "2020-01-01T00:00:00.000000000Z",
            "ts_recorded": "2020-01-01T00:00:00.000000000Z", "ts_recorded_last": "2020-01-01T00:00:00.000000000Z",
            "verdict_seq": 0
        }))
        .unwrap()
    }

    fn marker(card: Option<usize>, fill_card: Option<usize>) -> Marker {
        Marker {
            kind: MarkerKind::Entry,
            instrument: None,
            ms: 0.0,
            price: Decimal::ONE,
            side: "long".into(),
            size: Decimal::ONE,
            exit_reason: String::new(),
            seq: 1,
            card,
            fill_card,
            trade: None,
        }
    }

    #[test]
    fn only_the_cards_markers_point_at_are_kept_and_the_pointers_follow() {
        let cards = (0..5).map(card).collect();
        let mut markers = [marker(Some(3), Some(4)), marker(Some(1), None), marker(None, Some(3))];
        let kept = only_pointed_at(cards, &mut markers);
        assert_eq!(kept.iter().map(|c| c.cycle).collect::<Vec<_>>(), [1, 3, 4]);
        let pointers: Vec<_> = markers.iter().map(|m| (m.card, m.fill_card)).collect();
        assert_eq!(pointers, [(Some(1), Some(2)), (Some(0), None), (None, Some(1))]);
    }
}
