//! Decoding Binance's combined market data stream (`/stream?streams=...`) into ticks:
//! `<symbol>@trade` into trades, `<symbol>@bookTicker` into quotes, closed
//! `<symbol>@kline_<interval>` candles into bars. Prices and sizes are read from
//! Binance's decimal strings straight into `Decimal` (never through a float).
//!
//! The decoder also watches each stream's sequence: a trade id that skips ids is a gap
//! (reported, with the ids missed); a trade id or book update id that does not move
//! forward is a stale or repeated message (dropped, and reported).

use std::collections::HashMap;
use std::sync::Arc;

use ledger_core::event::{Bar, NoticeKind, Quote, Side, TickData, Trade, VenueNotice};
use ledger_core::feed::Tick;
use ledger_core::ids::InstrumentId;
use ledger_core::time::TimestampNs;
use rust_decimal::Decimal;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use thiserror::Error;

/// A message of the combined stream that cannot be read.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("binance message {index}: {reason}")]
pub struct DecodeError {
    /// The message's position on the feed (1-based, across reconnections).
    pub index: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// What one message of the combined stream gives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decoded {
    /// The tick it carries, if any (a stale message, a candle still open, a stream
    /// the decoder does not read give none).
    pub tick: Option<Tick>,
    /// Something wrong with the stream's sequence that it shows.
    pub notice: Option<VenueNotice>,
}

/// The sequence state of one symbol's streams.
#[derive(Debug, Clone)]
struct SymbolState {
    instrument: InstrumentId,
    last_trade_id: Option<u64>,
    last_book_update: Option<u64>,
}

/// Decodes the combined stream's messages for a set of symbols, keeping each stream's
/// sequence to detect gaps. One decoder per feed, kept across reconnections (a gap over
/// an outage is then seen in the trade ids).
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    symbols: HashMap<String, SymbolState>,
    /// The latest exchange time seen, UTC ns: the time of quotes, which carry none.
    last_exchange_ts: Option<TimestampNs>,
    messages: u64,
}

/// The venue name notices carry.
pub const VENUE: &str = "binance";

impl StreamDecoder {
    /// A decoder for `instruments`, whose ids are Binance symbols (`BTCUSDT`); stream
    /// names are matched on their lower-case form (`btcusdt@trade`).
    pub fn new(instruments: &[InstrumentId]) -> Self {
        let symbols = instruments
            .iter()
            .map(|i| {
                let state = SymbolState { instrument: *i, last_trade_id: None, last_book_update: None };
                (i.as_str().to_ascii_lowercase(), state)
            })
            .collect();
        StreamDecoder { symbols, last_exchange_ts: None, messages: 0 }
    }

    /// Messages decoded so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Decodes one message (`text`: the combined stream's JSON, `{"stream":..,"data":..}`)
    /// received at `received` (UTC ns, the local clock). A trade's time is its event
    /// time `E`; a quote's, Binance's `bookTicker` carrying none, the latest exchange time
    /// seen (the receive time before any); a bar's, its open time. Messages that
    /// are not stream messages (a subscription's answer) and streams of other symbols or
    /// kinds (`@depth`) give nothing.
    ///
    /// # Errors
    /// The message is not JSON, or a field the stream's kind needs is missing or is not
    /// a decimal string or number in range.
    pub fn decode(&mut self, text: &str, received: TimestampNs) -> Result<Decoded, DecodeError> {
        self.messages += 1;
        let index = self.messages;
        let fail = |reason: String| DecodeError { index, reason };
        let mut data_error = None;
        let mut json = serde_json::Deserializer::from_str(text);
        let visitor = MessageVisitor { symbols: &self.symbols, data_error: &mut data_error };
        let message = json.deserialize_map(visitor).and_then(|message| json.end().map(|()| message));
        let (stream, data) = match message {
            Ok(Message { stream: Some(stream), data }) => (stream, data),
            Ok(Message { stream: None, .. }) => return Ok(Decoded::default()),
            Err(e) => return Err(fail(data_error.unwrap_or_else(|| format!("not a stream message: {e}")))),
        };
        let data = match data {
            Data::Late(raw) => {
                Data::parse(kind_of(&self.symbols, stream), raw.get()).map_err(|e| fail(format!("{stream}: {e}")))?
            }
            data => data,
        };
        let Some((symbol, _)) = stream.split_once('@') else {
            return Ok(Decoded::default());
        };
        let Some(state) = self.symbols.get_mut(symbol) else {
            return Ok(Decoded::default());
        };
        let instrument = state.instrument;
        let parse = |value: &str, field: &str| -> Result<Decimal, DecodeError> {
            Decimal::from_str_exact(value).map_err(|e| fail(format!("{stream} field {field}: {value:?}: {e}")))
        };
        let (ts, data, notice) = match data {
            Data::Trade(trade) => {
                let notice = match state.last_trade_id {
                    Some(last) if trade.trade_id <= last => {
                        let detail = format!("trade id {} after {last}: dropped as stale or repeated", trade.trade_id);
                        return Ok(Decoded { tick: None, notice: Some(gap(stream, 0, detail)) });
                    }
                    Some(last) if trade.trade_id > last + 1 => {
                        let missed = trade.trade_id - last - 1;
                        let detail = format!("trade ids {}..={} missed", last + 1, trade.trade_id - 1);
                        Some(gap(stream, i64::try_from(missed).unwrap_or(i64::MAX), detail))
                    }
                    _ => None,
                };
                state.last_trade_id = Some(trade.trade_id);
                let ts = millis(trade.event_time).ok_or_else(|| fail(format!("{stream}: event time out of range")))?;
                self.last_exchange_ts = self.last_exchange_ts.max(Some(ts));
                // The buyer is the maker: the seller took liquidity.
                let aggressor = Some(if trade.buyer_is_maker { Side::Sell } else { Side::Buy });
                let trade = Trade { price: parse(trade.price, "p")?, size: parse(trade.qty, "q")?, aggressor };
                (ts, TickData::Trade(trade), notice)
            }
            Data::Book(book) => {
                if let Some(last) = state.last_book_update.filter(|last| book.update_id <= *last) {
                    let detail =
                        format!("book update id {} after {last}: dropped as stale or repeated", book.update_id);
                    return Ok(Decoded { tick: None, notice: Some(gap(stream, 0, detail)) });
                }
                state.last_book_update = Some(book.update_id);
                let ts = match book.event_time {
                    Some(ms) => {
                        let ts = millis(ms).ok_or_else(|| fail(format!("{stream}: event time out of range")))?;
                        self.last_exchange_ts = self.last_exchange_ts.max(Some(ts));
                        ts
                    }
                    None => self.last_exchange_ts.unwrap_or(received),
                };
                let quote = Quote {
                    bid: parse(book.bid, "b")?,
                    ask: parse(book.ask, "a")?,
                    bid_size: Some(parse(book.bid_qty, "B")?),
                    ask_size: Some(parse(book.ask_qty, "A")?),
                };
                (ts, TickData::Quote(quote), None)
            }
            Data::Kline(KlineData { kline: k }) => {
                if !k.closed {
                    return Ok(Decoded::default());
                }
                let open = millis(k.open_time).ok_or_else(|| fail(format!("{stream}: open time out of range")))?;
                // Binance's close time is the interval's last millisecond.
                let interval_ns = k.close_time.saturating_sub(k.open_time).saturating_add(1).saturating_mul(1_000_000);
                let bar = Bar {
                    open: parse(k.open, "o")?,
                    high: parse(k.high, "h")?,
                    low: parse(k.low, "l")?,
                    close: parse(k.close, "c")?,
                    volume: Some(parse(k.volume, "v")?),
                    interval_ns,
                };
                (open, TickData::Bar(bar), None)
            }
            Data::Skipped | Data::Late(_) => return Ok(Decoded::default()),
        };
        Ok(Decoded { tick: Some(Tick { ts, instrument, data }), notice })
    }
}

/// A gap notice on `stream`.
fn gap(stream: &str, missed: i64, detail: String) -> VenueNotice {
    VenueNotice {
        venue: Arc::from(VENUE),
        kind: NoticeKind::FeedGap,
        stream: Arc::from(stream),
        value: missed,
        detail: Arc::from(detail.as_str()),
    }
}

/// Milliseconds since the epoch as a time, `None` beyond the nanosecond range.
fn millis(ms: i64) -> Option<TimestampNs> {
    ms.checked_mul(1_000_000).map(TimestampNs::from_nanos)
}

/// What kind of data a stream of the combined stream carries, as far as the decoder
/// reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Trade,
    Book,
    Kline,
    /// Another symbol's, or a kind not read (`@depth`): its data is skipped unread.
    Skipped,
}

/// The kind of `stream` (`btcusdt@trade`) for a decoder reading `symbols`.
fn kind_of(symbols: &HashMap<String, SymbolState>, stream: &str) -> Kind {
    let Some((symbol, kind)) = stream.split_once('@') else { return Kind::Skipped };
    if !symbols.contains_key(symbol) {
        return Kind::Skipped;
    }
    match kind {
        "trade" => Kind::Trade,
        "bookTicker" => Kind::Book,
        k if k.starts_with("kline_") => Kind::Kline,
        _ => Kind::Skipped,
    }
}

/// A message's `data`, read as its stream's kind.
enum Data<'a> {
    Trade(TradeData<'a>),
    Book(BookData<'a>),
    Kline(KlineData<'a>),
    /// Not read: another symbol's or kind's, or no `data` at all.
    Skipped,
    /// `data` came before `stream` (Binance sends `stream` first): kept unread, to be
    /// read once the stream is known.
    Late(&'a RawValue),
}

impl<'a> Data<'a> {
    /// Reads `json` as `kind`'s data.
    fn parse(kind: Kind, json: &'a str) -> serde_json::Result<Self> {
        Ok(match kind {
            Kind::Trade => Data::Trade(serde_json::from_str(json)?),
            Kind::Book => Data::Book(serde_json::from_str(json)?),
            Kind::Kline => Data::Kline(serde_json::from_str(json)?),
            Kind::Skipped => Data::Skipped,
        })
    }
}

/// `{"stream": "...", "data": {...}}`, read in one pass: `data` is read straight into
/// its stream's type. Other messages (a subscription's `{"result": null, "id": 1}`)
/// have no stream.
struct Message<'a> {
    stream: Option<&'a str>,
    data: Data<'a>,
}

/// The combined stream message's keys.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Key {
    Stream,
    Data,
    #[serde(other)]
    Other,
}

/// Reads a [`Message`]; a failure inside `data` is put in `data_error` as
/// `<stream>: <reason>`.
struct MessageVisitor<'s> {
    symbols: &'s HashMap<String, SymbolState>,
    data_error: &'s mut Option<String>,
}

impl<'de> Visitor<'de> for MessageVisitor<'_> {
    type Value = Message<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a combined stream message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message<'de>, A::Error> {
        let mut message = Message { stream: None, data: Data::Skipped };
        while let Some(key) = map.next_key::<Key>()? {
            match (key, message.stream) {
                (Key::Stream, _) => message.stream = Some(map.next_value()?),
                (Key::Data, Some(stream)) => {
                    let read = match kind_of(self.symbols, stream) {
                        Kind::Trade => map.next_value().map(Data::Trade),
                        Kind::Book => map.next_value().map(Data::Book),
                        Kind::Kline => map.next_value().map(Data::Kline),
                        Kind::Skipped => map.next_value::<IgnoredAny>().map(|_| Data::Skipped),
                    };
                    message.data = read.inspect_err(|e| *self.data_error = Some(format!("{stream}: {e}")))?;
                }
                (Key::Data, None) => message.data = Data::Late(map.next_value()?),
                (Key::Other, _) => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(message)
    }
}

/// A `@trade` message's fields that a tick needs.
#[derive(Deserialize)]
struct TradeData<'a> {
    #[serde(rename = "E")]
    event_time: i64,
    #[serde(rename = "t")]
    trade_id: u64,
    #[serde(rename = "p", borrow)]
    price: &'a str,
    #[serde(rename = "q", borrow)]
    qty: &'a str,
    #[serde(rename = "m")]
    buyer_is_maker: bool,
}

/// A `@bookTicker` message.
#[derive(Deserialize)]
struct BookData<'a> {
    #[serde(rename = "u")]
    update_id: u64,
    #[serde(rename = "E")]
    event_time: Option<i64>,
    #[serde(rename = "b", borrow)]
    bid: &'a str,
    #[serde(rename = "B", borrow)]
    bid_qty: &'a str,
    #[serde(rename = "a", borrow)]
    ask: &'a str,
    #[serde(rename = "A", borrow)]
    ask_qty: &'a str,
}

/// A `@kline_<interval>` message.
#[derive(Deserialize)]
struct KlineData<'a> {
    #[serde(rename = "k", borrow)]
    kline: Kline<'a>,
}

#[derive(Deserialize)]
struct Kline<'a> {
    #[serde(rename = "t")]
    open_time: i64,
    #[serde(rename = "T")]
    close_time: i64,
    #[serde(rename = "o", borrow)]
    open: &'a str,
    #[serde(rename = "h", borrow)]
    high: &'a str,
    #[serde(rename = "l", borrow)]
    low: &'a str,
    #[serde(rename = "c", borrow)]
    close: &'a str,
    #[serde(rename = "v", borrow)]
    volume: &'a str,
    #[serde(rename = "x")]
    closed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn decoder() -> StreamDecoder {
        StreamDecoder::new(&[InstrumentId::new("BTCUSDT").unwrap()])
    }

    fn trade(id: u64, price: &str) -> String {
        format!(
            r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":{id},"p":"{price}","q":"0.02000000","T":1723161255342,"m":true,"M":true}}}}"#
        )
    }

    const RECEIVED: TimestampNs = TimestampNs::from_nanos(1_723_161_254_087_896_568);

    #[test]
    fn a_trade_from_the_capture_keeps_its_digits_and_event_time() {
        let decoded = decoder().decode(&trade(3735683259, "61837.63000000"), RECEIVED).unwrap();
        let tick = decoded.tick.unwrap();
        assert_eq!(tick.ts, TimestampNs::from_nanos(1_723_161_255_343_000_000));
        assert_eq!(
            tick.data,
            TickData::Trade(Trade { price: dec!(61837.63000000), size: dec!(0.02000000), aggressor: Some(Side::Sell) })
        );
        assert_eq!(decoded.notice, None);
    }

    #[test]
    fn a_book_ticker_without_event_time_takes_the_last_exchange_time() {
        let mut d = decoder();
        let book = r#"{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#;
        let first = d.decode(book, RECEIVED).unwrap().tick.unwrap();
        assert_eq!(first.ts, RECEIVED, "no exchange time yet: the receive time");
        d.decode(&trade(1, "1"), RECEIVED).unwrap();
        let again = book.replace("50093239212", "50093239213");
        let second = d.decode(&again, RECEIVED).unwrap().tick.unwrap();
        assert_eq!(second.ts, TimestampNs::from_nanos(1_723_161_255_343_000_000));
        assert_eq!(
            second.data,
            TickData::Quote(Quote {
                bid: dec!(61837.63),
                ask: dec!(61837.64),
                bid_size: Some(dec!(3.78826)),
                ask_size: Some(dec!(1.54698))
            })
        );
        let stale = d.decode(book, RECEIVED).unwrap();
        assert_eq!(stale.tick, None);
        assert_eq!(
            stale.notice.unwrap().detail.as_ref(),
            "book update id 50093239212 after 50093239213: dropped as stale or repeated"
        );
    }

    #[test]
    fn skipped_trade_ids_are_a_gap_naming_them() {
        let mut d = decoder();
        d.decode(&trade(10, "1"), RECEIVED).unwrap();
        let decoded = d.decode(&trade(14, "1"), RECEIVED).unwrap();
        assert!(decoded.tick.is_some(), "the trade after a gap is kept");
        let notice = decoded.notice.unwrap();
        assert_eq!((notice.kind, notice.value), (NoticeKind::FeedGap, 3));
        assert_eq!(notice.detail.as_ref(), "trade ids 11..=13 missed");
        assert_eq!(notice.stream.as_ref(), "btcusdt@trade");
        let repeated = d.decode(&trade(14, "1"), RECEIVED).unwrap();
        assert_eq!((repeated.tick, repeated.notice.map(|n| n.value)), (None, Some(0)));
    }

    #[test]
    fn only_closed_klines_are_bars() {
        let kline = |closed: bool| {
            format!(
                r#"{{"stream":"btcusdt@kline_1m","data":{{"e":"kline","E":1723161300001,"s":"BTCUSDT","k":{{"t":1723161240000,"T":1723161299999,"s":"BTCUSDT","i":"1m","o":"61800.00","c":"61837.63","h":"61900.10","l":"61790.00","v":"12.5","x":{closed}}}}}}}"#
            )
        };
        let mut d = decoder();
        assert_eq!(d.decode(&kline(false), RECEIVED).unwrap().tick, None);
        let tick = d.decode(&kline(true), RECEIVED).unwrap().tick.unwrap();
        assert_eq!(tick.ts, TimestampNs::from_nanos(1_723_161_240_000_000_000));
        let TickData::Bar(bar) = tick.data else { panic!("a bar") };
        assert_eq!(
            (bar.open, bar.high, bar.low, bar.close),
            (dec!(61800.00), dec!(61900.10), dec!(61790.00), dec!(61837.63))
        );
        assert_eq!((bar.volume, bar.interval_ns), (Some(dec!(12.5)), 60_000_000_000));
    }

    #[test]
    fn other_streams_and_answers_give_nothing_and_bad_fields_name_the_message() {
        let mut d = decoder();
        let depth = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","b":[["1","2"]]}}"#;
        assert_eq!(d.decode(depth, RECEIVED).unwrap(), Decoded::default());
        assert_eq!(d.decode(r#"{"result":null,"id":1}"#, RECEIVED).unwrap(), Decoded::default());
        assert_eq!(d.decode(&trade(1, "1").replace("btcusdt@", "ethusdt@"), RECEIVED).unwrap(), Decoded::default());
        let bad = d.decode(&trade(2, "6.1e4"), RECEIVED).unwrap_err();
        assert_eq!(bad.index, 4);
        assert!(bad.reason.starts_with("btcusdt@trade field p: \"6.1e4\""), "{}", bad.reason);
        assert!(d.decode("{not json", RECEIVED).unwrap_err().reason.starts_with("not a stream message"));
        let missing = d.decode(&trade(3, "1").replace(r#""q":"0.02000000","#, ""), RECEIVED).unwrap_err();
        assert!(missing.reason.starts_with("btcusdt@trade: missing field `q`"), "{}", missing.reason);
        let other = r#"{"stream":"ethusdt@trade","data":{"t":"not a trade"}}"#;
        assert_eq!(d.decode(other, RECEIVED).unwrap(), Decoded::default(), "another symbol's data is not read");
    }

    #[test]
    fn data_before_its_stream_name_is_read_the_same() {
        let (mut first, mut second) = (decoder(), decoder());
        let late = r#"{"data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":7,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":false,"M":true},"stream":"btcusdt@trade"}"#;
        let late = second.decode(late, RECEIVED).unwrap();
        assert_eq!(
            late,
            first.decode(&trade(7, "61837.63000000").replace(r#""m":true"#, r#""m":false"#), RECEIVED).unwrap()
        );
        assert_eq!(
            late.tick.map(|t| t.data),
            Some(TickData::Trade(Trade { price: dec!(61837.63), size: dec!(0.02), aggressor: Some(Side::Buy) }))
        );
        let bad = second.decode(r#"{"data":{"t":8},"stream":"btcusdt@trade"}"#, RECEIVED).unwrap_err();
        assert!(bad.reason.starts_with("btcusdt@trade: missing field"), "{}", bad.reason);
    }

    proptest! {
        /// Whatever order trade ids come in, the ticks given have increasing ids and the
        /// ids missed that the gaps report are exactly the
        /// ids between the first and the last that never came.
        #[test]
        fn gaps_account_for_every_missing_id(ids in proptest::collection::vec(0u64..200, 1..80)) {
            let mut d = decoder();
            let (mut kept, mut missed) = (Vec::new(), 0i64);
            for id in &ids {
                let decoded = d.decode(&trade(*id, "1.5"), RECEIVED).unwrap();
                if let Some(notice) = decoded.notice { missed += notice.value; }
                if decoded.tick.is_some() {
                    kept.push(*id);
                }
            }
            prop_assert!(kept.windows(2).all(|w| w[0] < w[1]));
            let span = kept.last().unwrap() - kept[0] + 1;
            prop_assert_eq!(missed as u64, span - kept.len() as u64);
        }
    }
}
