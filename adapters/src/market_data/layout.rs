//! What a file's columns mean, and one row's fields turned into a tick.
//!
//! The header names the layout (bars, quotes or trades) and the time column, by the rules
//! in the [module docs](super); [`RowParser`] then turns each row's fields, as bytes, into
//! a time and a [`TickData`] without allocating: decimals straight from the field bytes,
//! times by the file's [`TimeLayout`], recognised on the first row.

use std::path::Path;

use ledger_core::event::{Bar, Quote, Side, TickData, Trade};
use ledger_core::time::TimestampNs;
use rust_decimal::Decimal;

use super::time::{year_last_fields, DateOrder, FieldOrder, TimeError, TimeLayout};
use super::zone::Zone;
use super::DataError;

/// Which columns hold what, by kind of tick.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Layout {
    Bars { open: usize, high: usize, low: usize, close: usize, volume: Option<usize> },
    Trades { price: usize, size: usize, buyer_maker: Option<usize>, side: Option<usize> },
    Quotes { bid: usize, ask: usize, bid_size: Option<usize>, ask_size: Option<usize> },
}

/// A file's columns: their names (lower case, spaces as `_`) and what they mean.
#[derive(Debug)]
pub(crate) struct Columns {
    pub(crate) names: Vec<String>,
    pub(crate) time: usize,
    extra_time: Option<usize>,
    pub(crate) layout: Layout,
}

/// Time columns in order of preference (exchange time before local receive time).
const TIME_COLUMNS: [&str; 11] = [
    "timestamp",
    "ts_utc_bar_open",
    "timestamp_utc",
    "datetime",
    "date",
    "time",
    "ts_utc",
    "ts",
    "ts_ms",
    "trade_ts_ms",
    "local_ts_ns",
];

/// Column names given to a file without a header, by its number of columns.
pub(crate) fn headerless_names(count: usize, path: &Path) -> Result<Vec<String>, DataError> {
    let names: &[&str] = match count {
        3 => &["time", "price", "size"],
        4 => &["time", "bid", "ask", "volume"],
        n => {
            return Err(DataError::Layout {
                path: path.to_path_buf(),
                message: format!(
                    "no header and {n} columns: expected time,price,size (trades) or time,bid,ask,volume (quotes)"
                ),
            })
        }
    };
    Ok(names.iter().map(|n| n.to_string()).collect())
}

/// The name given to an unnamed first column (pandas' index, written by `df.to_csv()`
/// with an empty first header cell) when it is taken as the time column.
pub(crate) const INDEX_NAME: &str = "(index)";

/// A header name as compared: trimmed, lower case, spaces as `_` (`Adj Close` is
/// `adj_close`).
pub(crate) fn normalise(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace(' ', "_")
}

impl Columns {
    /// Recognises the layout from the column names, the header on `line`. The time
    /// column is `time_column` when given (a header name, compared as [`normalise`]
    /// does), else the first of the known time names present, else an unnamed first
    /// column (pandas' index), renamed [`INDEX_NAME`].
    ///
    /// # Errors
    /// [`DataError::Layout`] when no time column or no known set of price columns is
    /// there, or `time_column` names no column; then [`DataError::Row`] (on the header's
    /// line, the column the repeated name) when two columns share a name (empty names
    /// aside: they name nothing).
    pub(crate) fn from_header(
        mut names: Vec<String>,
        path: &Path,
        line: u64,
        time_column: Option<&str>,
    ) -> Result<Self, DataError> {
        let layout_error = |message: String| DataError::Layout { path: path.to_path_buf(), message };
        let time = match time_column {
            Some(wanted) => {
                let wanted = normalise(wanted);
                names.iter().position(|n| *n == wanted).ok_or_else(|| {
                    layout_error(format!(
                        "no column {wanted:?} to take the times from (--time-column); header is {names:?}"
                    ))
                })?
            }
            None => match TIME_COLUMNS.iter().find_map(|w| names.iter().position(|n| n == w)) {
                Some(time) => time,
                // pandas' `df.to_csv()` writes the index (the times) under an empty name.
                None if names.len() > 1 && names.first().is_some_and(String::is_empty) => {
                    names[0] = INDEX_NAME.to_string();
                    0
                }
                None => {
                    return Err(layout_error(format!(
                        "no time column: expected one of {TIME_COLUMNS:?} (or --time-column NAME), header is {names:?}"
                    )))
                }
            },
        };
        let find = |wanted: &[&str]| wanted.iter().find_map(|w| names.iter().position(|n| n == w));
        let extra_time = (names[time] == "date").then(|| names.iter().position(|n| n == "time")).flatten();
        let layout = if let (Some(open), Some(high), Some(low), Some(close)) =
            (find(&["open"]), find(&["high"]), find(&["low"]), find(&["close"]))
        {
            Layout::Bars { open, high, low, close, volume: find(&["volume", "vol"]) }
        } else if let (Some(bid), Some(ask)) = (find(&["bid", "bid_price"]), find(&["ask", "ask_price"])) {
            Layout::Quotes {
                bid,
                ask,
                bid_size: find(&["bid_size", "bid_qty"]),
                ask_size: find(&["ask_size", "ask_qty"]),
            }
        } else if let (Some(price), Some(size)) =
            (find(&["price"]), find(&["size", "qty", "quantity", "volume", "amount"]))
        {
            Layout::Trades { price, size, buyer_maker: find(&["is_buyer_maker"]), side: find(&["side", "aggressor"]) }
        } else {
            return Err(layout_error(format!(
                "header {names:?} is neither bars (open,high,low,close), quotes (bid,ask) nor trades (price,size)"
            )));
        };
        // Rule: no two columns share a name; with a repeated name, which one is meant is
        // a guess (before, the first silently won).
        for (j, name) in names.iter().enumerate().filter(|(_, n)| !n.is_empty()) {
            if let Some(i) = names[..j].iter().position(|n| n == name) {
                return Err(DataError::Row {
                    path: path.to_path_buf(),
                    line,
                    column: name.clone(),
                    message: format!("the header names columns {} and {} both {name:?}", i + 1, j + 1),
                });
            }
        }
        Ok(Columns { names, time, extra_time, layout })
    }
}

/// What a row's time says about a file's [`DateOrder`], for dates written with the year
/// last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderEvidence {
    /// Not such a date (another layout, or a bad row).
    None,
    /// A date that reads the same either way (`05/05/2020`).
    Either,
    /// A date that reads as two different days (`01/02/2020`).
    Ambiguous,
    /// A date that reads one way only (`13/01/2020` is day first).
    Tells(DateOrder),
}

/// Turns rows of one file into times and ticks.
#[derive(Debug)]
pub(crate) struct RowParser {
    pub(crate) columns: Columns,
    /// Where times written without an offset are.
    zone: Zone,
    /// The order of day and month in dates written with the year last, when known
    /// (given, or told by the data), and the line that told it (`None`: given).
    date_order: Option<(DateOrder, Option<u64>)>,
    /// The file's time layout and the line it was recognised on; `None` before the
    /// first row.
    time: Option<(TimeLayout, u64)>,
    /// `date` and `time` fields joined, when a file splits them.
    joined: Vec<u8>,
}

impl RowParser {
    pub(crate) fn new(columns: Columns, zone: Zone, date_order: Option<DateOrder>) -> Self {
        RowParser { columns, zone, date_order: date_order.map(|o| (o, None)), time: None, joined: Vec::new() }
    }

    /// Whether the file's time layout is still to be recognised without a known date
    /// order: then the first row's time may need the order told by the file
    /// ([`RowParser::order_evidence`], [`RowParser::set_date_order`]) first.
    pub(crate) fn awaits_date_order(&self) -> bool {
        self.time.is_none() && self.date_order.is_none()
    }

    /// Sets the date order, as told by the row on `line`.
    pub(crate) fn set_date_order(&mut self, order: DateOrder, line: u64) {
        self.date_order = Some((order, Some(line)));
    }

    /// What the time of a row tells about the file's date order.
    pub(crate) fn order_evidence<'r>(&mut self, field: impl Fn(usize) -> &'r [u8]) -> OrderEvidence {
        let text = self.time_text(&field);
        match year_last_fields(text) {
            None => OrderEvidence::None,
            Some((first, second)) if first == second && first <= 12 => OrderEvidence::Either,
            Some((first, second)) => match (first <= 12, second <= 12) {
                (true, true) => OrderEvidence::Ambiguous,
                (false, true) if first <= 31 => OrderEvidence::Tells(DateOrder::DayFirst),
                (true, false) if second <= 31 => OrderEvidence::Tells(DateOrder::MonthFirst),
                _ => OrderEvidence::None,
            },
        }
    }

    /// The row's time text: the time column, or the `date` and `time` columns joined.
    #[inline]
    pub(crate) fn time_text<'s, 'r: 's>(&'s mut self, field: &impl Fn(usize) -> &'r [u8]) -> &'s [u8] {
        match self.columns.extra_time {
            Some(extra) => {
                self.joined.clear();
                self.joined.extend_from_slice(field(self.columns.time));
                self.joined.push(b' ');
                self.joined.extend_from_slice(field(extra));
                &self.joined
            }
            None => field(self.columns.time),
        }
    }

    /// Parses one row; `field(i)` gives column `i`'s bytes, trimmed (empty when absent).
    /// The first row parsed fixes the file's time layout. `previous` is the previous
    /// row's time, which places a civil time that a daylight saving fold repeats.
    ///
    /// # Errors
    /// [`DataError::Row`] naming `path`, `line` and the column at fault.
    pub(crate) fn parse<'r>(
        &mut self,
        path: &Path,
        line: u64,
        previous: Option<TimestampNs>,
        field: impl Fn(usize) -> &'r [u8],
    ) -> Result<(TimestampNs, TickData), DataError> {
        let ts = self.parse_time(path, line, previous, &field)?;
        let columns = &self.columns;
        let bad = |column: usize, message: String| DataError::Row {
            path: path.to_path_buf(),
            line,
            column: columns.names[column].clone(),
            message,
        };
        let decimal = |column: usize| -> Result<Decimal, DataError> {
            let text = field(column);
            parse_decimal(text).map_err(|why| bad(column, why.describe(text)))
        };
        // Rule: prices are positive.
        let price = |column: usize| -> Result<Decimal, DataError> {
            let value = decimal(column)?;
            // (Sign and zero tests: a Decimal comparison rescales, and costs.)
            if value.is_sign_negative() || value.is_zero() {
                return Err(bad(column, format!("price {value} is not positive")));
            }
            Ok(value)
        };
        // Rule: volumes and quote sizes are not negative (`-0` is read as 0).
        let non_negative = |column: Option<usize>, what: &str| -> Result<Option<Decimal>, DataError> {
            let Some(column) = column.filter(|c| !field(*c).is_empty()) else { return Ok(None) };
            let mut value = decimal(column)?;
            if value.is_sign_negative() && !value.is_zero() {
                return Err(bad(column, format!("{what} {value} is negative")));
            }
            value.set_sign_positive(true);
            Ok(Some(value))
        };
        let data = match columns.layout {
            Layout::Bars { open, high, low, close, volume } => {
                let bar = Bar {
                    open: price(open)?,
                    high: price(high)?,
                    low: price(low)?,
                    close: price(close)?,
                    volume: non_negative(volume, "volume")?,
                    interval_ns: 0,
                };
                // Rule: high and low contain open and close.
                if bar.high < bar.low || bar.high < bar.open.max(bar.close) || bar.low > bar.open.min(bar.close) {
                    return Err(bad(
                        high,
                        format!(
                            "high {} / low {} do not contain open {} and close {}",
                            bar.high, bar.low, bar.open, bar.close
                        ),
                    ));
                }
                TickData::Bar(bar)
            }
            Layout::Trades { price: price_column, size, buyer_maker, side } => {
                let aggressor = match (buyer_maker.map(&field), side.map(&field)) {
                    (Some(b"true" | b"True" | b"1"), _) => Some(Side::Sell),
                    (Some(b"false" | b"False" | b"0"), _) => Some(Side::Buy),
                    (_, Some(s)) if s.eq_ignore_ascii_case(b"buy") || s.eq_ignore_ascii_case(b"b") => Some(Side::Buy),
                    (_, Some(s)) if s.eq_ignore_ascii_case(b"sell") || s.eq_ignore_ascii_case(b"s") => Some(Side::Sell),
                    _ => None,
                };
                let price = price(price_column)?;
                // Rule: a trade's size is positive.
                let size_value = decimal(size)?;
                if size_value.is_sign_negative() || size_value.is_zero() {
                    return Err(bad(size, format!("trade size {size_value} is not positive")));
                }
                TickData::Trade(Trade { price, size: size_value, aggressor })
            }
            Layout::Quotes { bid, ask, bid_size, ask_size } => {
                let quote = Quote {
                    bid: price(bid)?,
                    ask: price(ask)?,
                    bid_size: non_negative(bid_size, "bid size")?,
                    ask_size: non_negative(ask_size, "ask size")?,
                };
                // Rule: bid <= ask, within a tolerance: real feeds cross by a few pips
                // (FXCM's EURUSD of 2014-05-08 has 18,285 rows with bid > ask, by up to
                // 0.016%), a bid 1% above the ask is a broken row. (Both are positive,
                // so the difference cannot overflow.)
                // `(bid - ask) * 100 > ask`, without a division (a Decimal division costs
                // more than the rest of the row), and only for crossed quotes.
                let too_crossed = quote.bid > quote.ask
                    && (quote.bid - quote.ask).checked_mul(CROSSED_QUOTE_FACTOR).is_none_or(|d| d > quote.ask);
                if too_crossed {
                    return Err(bad(
                        bid,
                        format!(
                            "bid {} is more than 1% above ask {} (a crossed quote beyond the tolerance)",
                            quote.bid, quote.ask
                        ),
                    ));
                }
                TickData::Quote(quote)
            }
        };
        Ok((ts, data))
    }

    /// The row's time: by the file's layout, recognised on the first row; placed in the
    /// file's zone.
    ///
    /// # Errors
    /// [`DataError::Row`] naming the time column: not a time (of the file's layout), out
    /// of range, or not a time of the zone.
    #[inline]
    fn parse_time<'r>(
        &mut self,
        path: &Path,
        line: u64,
        previous: Option<TimestampNs>,
        field: &impl Fn(usize) -> &'r [u8],
    ) -> Result<TimestampNs, DataError> {
        // The common case, kept small: a known layout, a good time.
        if let (Some((layout, _)), None) = (self.time, self.columns.extra_time) {
            let placed = layout.parse_written(field(self.columns.time)).and_then(|w| self.zone.place(w, previous));
            if let Ok(ts) = placed {
                return Ok(ts);
            }
        }
        self.parse_time_slowly(path, line, previous, field)
    }

    /// [`RowParser::parse_time`] for the first row (the layout to recognise), a date and
    /// a time column joined, and every bad time (the message to write).
    #[cold]
    #[inline(never)]
    fn parse_time_slowly<'r>(
        &mut self,
        path: &Path,
        line: u64,
        previous: Option<TimestampNs>,
        field: &impl Fn(usize) -> &'r [u8],
    ) -> Result<TimestampNs, DataError> {
        let column = self.columns.time;
        let bad = |message: String| DataError::Row {
            path: path.to_path_buf(),
            line,
            column: self.columns.names[column].clone(),
            message,
        };
        let date_order = self.date_order;
        let time = self.time;
        let text = match self.columns.extra_time {
            Some(extra) => {
                self.joined.clear();
                self.joined.extend_from_slice(field(column));
                self.joined.push(b' ');
                self.joined.extend_from_slice(field(extra));
                &self.joined[..]
            }
            None => field(column),
        };
        let (layout, since) = match time {
            Some(known) => known,
            None => {
                let layout = TimeLayout::detect(text, date_order.map(|(order, _)| order)).ok_or_else(|| {
                    let shown = String::from_utf8_lossy(text);
                    match (date_order, year_last_fields(text)) {
                        (Some((order, _)), Some(_)) => {
                            bad(format!("{shown:?} is not a date in the order {order} (--date-format)"))
                        }
                        _ => bad(format!("{shown:?} is not a time we read")),
                    }
                })?;
                (layout, line)
            }
        };
        let placed = layout.parse_written(text).and_then(|written| self.zone.place(written, previous));
        let ts = placed.map_err(|why| {
            let shown = String::from_utf8_lossy(text);
            let order_told = match (layout, date_order) {
                (TimeLayout::Ordered { order: FieldOrder::YearLast(_), .. }, Some((_, Some(told))))
                    if told != since =>
                {
                    format!("; day and month told by line {told}")
                }
                _ => String::new(),
            };
            let message = match why {
                TimeError::Shape => format!(
                    "{shown:?} does not match the file's time layout, {layout} (set by line {since}{order_told})"
                ),
                TimeError::Gap { .. } => format!("{shown:?} in {}: {why}", self.zone.describe()),
                _ => format!("{shown:?}: {why} (the file's time layout is {layout}, set by line {since}{order_told})"),
            };
            bad(message)
        })?;
        if time.is_none() {
            self.time = Some((layout, line));
        }
        Ok(ts)
    }
}

/// A quote is refused when its bid exceeds its ask by more than `ask / 100` (1%).
const CROSSED_QUOTE_FACTOR: Decimal = Decimal::ONE_HUNDRED;

/// The most decimal places (and significant digits, roughly) a [`Decimal`] holds.
const MAX_SCALE: u32 = 28;

/// Why a field is not a decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecimalError {
    /// Not written as a number: empty, letters (`NaN`, `inf`), separators (`1,000`,
    /// `1_000`), hex.
    NotANumber,
    /// A number, but no [`Decimal`] holds it exactly: more than 28 decimal places, a
    /// magnitude of 2^96 or more, or an exponent that takes it there (`1e400`).
    Inexact,
}

impl DecimalError {
    /// The refusal's message for the field `text`.
    pub(crate) fn describe(self, text: &[u8]) -> String {
        let text = String::from_utf8_lossy(text);
        match self {
            DecimalError::NotANumber if text.contains(',') => {
                format!("{text:?} is not a decimal number (write decimals with a point, without thousands separators)")
            }
            DecimalError::NotANumber => format!("{text:?} is not a decimal number"),
            DecimalError::Inexact => format!("{text:?} does not fit exactly in 28 digits"),
        }
    }
}

/// An exact decimal from a field's bytes: plain (`-12.50`, `.5`, `+3`) or scientific
/// (`1e-5`, `1.5E+3`), keeping the scale written (`46319.0` has scale 1).
///
/// Nothing is rounded: [`Decimal::from_str`] rounds past 28 significant digits
/// (`1.23456789012345678901234567890123` would read as `1.2345678901234567890123456789`)
/// and [`Decimal::from_scientific`] does too, so a plain number goes through
/// [`Decimal::from_str_exact`] and a scientific one is built from its exact mantissa
/// and exponent.
///
/// # Errors
/// [`DecimalError::NotANumber`] unless the bytes (ASCII whitespace trimmed) are
/// `[+-]?(digits[.digits?]|.digits)([eE][+-]?digits)?`; [`DecimalError::Inexact`] when
/// no `Decimal` holds the number exactly.
///
/// Speed: measured before on 1M rows of minute-bar prices (release, one core),
/// `from_utf8` + `from_str` took 14.8 ns a field, `from_str_exact` 13.1 ns, a digit loop
/// into `Decimal::from_parts` 12.1 ns. Checking the grammar as well made the library
/// path cost more than it saves, so short plain numbers (every price and size in
/// `shared/data`) take the digit loop, [`parse_short_plain`], which checks and reads in
/// one pass: `throughput_bars` (release) on 450,310 minute bars went from 3.7M rows/s
/// before the rules to 4.2M, on FXCM's 167,466 EURUSD quotes from 7.9M to 7.6M (the
/// crossed-quote check). (Trimming with `str::trim` cost 5 ns; `trim_ascii` on the bytes
/// costs nothing measurable.)
pub(crate) fn parse_decimal(bytes: &[u8]) -> Result<Decimal, DecimalError> {
    let text = bytes.trim_ascii();
    if let Some(decimal) = parse_short_plain(text) {
        return Ok(decimal);
    }
    let exponent_at = number_shape(text).ok_or(DecimalError::NotANumber)?;
    // The shape is ASCII, so this cannot fail.
    let text = std::str::from_utf8(text).map_err(|_| DecimalError::NotANumber)?;
    let Some(at) = exponent_at else {
        return Decimal::from_str_exact(text).map_err(|_| DecimalError::Inexact);
    };
    let mantissa = Decimal::from_str_exact(&text[..at]).map_err(|_| DecimalError::Inexact)?;
    let exponent: i64 = text[at + 1..].trim_start_matches('+').parse().map_err(|_| DecimalError::Inexact)?;
    let scale = i64::from(mantissa.scale()) - exponent;
    let (units, scale) = if scale >= 0 {
        (mantissa.mantissa(), scale)
    } else {
        // A positive exponent past the scale: whole digits, multiplied out. 10^39 is
        // past i128 already.
        let factor = u32::try_from(-scale).ok().filter(|f| *f <= 38).ok_or(DecimalError::Inexact)?;
        (mantissa.mantissa().checked_mul(10i128.pow(factor)).ok_or(DecimalError::Inexact)?, 0)
    };
    let scale = u32::try_from(scale).ok().filter(|s| *s <= MAX_SCALE).ok_or(DecimalError::Inexact)?;
    Decimal::try_from_i128_with_scale(units, scale).map_err(|_| DecimalError::Inexact)
}

/// The common case, in one pass: a plain number (`[+-]?digits[.digits]`, `.5` and `5.`
/// too) of at most 19 digits, as [`Decimal::from_str_exact`] reads it (same mantissa,
/// scale and sign, `-0` included: property-tested). `None` for anything else, which the
/// general path then reads or refuses.
#[inline]
fn parse_short_plain(text: &[u8]) -> Option<Decimal> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let mut mantissa: u64 = 0;
    let mut count = 0u32;
    let mut scale: Option<u32> = None;
    for &b in digits {
        let digit = b.wrapping_sub(b'0');
        if digit < 10 {
            // 19 digits always fit a u64 (and the 96-bit mantissa); more go the long way.
            if count == 19 {
                return None;
            }
            mantissa = mantissa * 10 + u64::from(digit);
            count += 1;
            if let Some(scale) = &mut scale {
                *scale += 1;
            }
        } else if b == b'.' && scale.is_none() {
            scale = Some(0);
        } else {
            return None;
        }
    }
    let scale = scale.unwrap_or(0);
    if count == 0 || scale > MAX_SCALE {
        return None;
    }
    // The low 32 bits and the next 32: truncation is the point.
    Some(Decimal::from_parts(mantissa as u32, (mantissa >> 32) as u32, 0, negative, scale))
}

/// Checks that `text` is a number, `[+-]?(digits[.digits?]|.digits)([eE][+-]?digits)?`;
/// `Some(position of the exponent's e)`, `Some(None)` without one, `None` for a
/// non-number.
fn number_shape(text: &[u8]) -> Option<Option<usize>> {
    let digits =
        |from: usize| text.get(from..).map_or(0, |rest| rest.iter().take_while(|b| b.is_ascii_digit()).count());
    let mut i = usize::from(matches!(text.first(), Some(b'+' | b'-')));
    let whole = digits(i);
    i += whole;
    let mut fraction = 0;
    if text.get(i) == Some(&b'.') {
        i += 1;
        fraction = digits(i);
        i += fraction;
    }
    if whole + fraction == 0 {
        return None;
    }
    if i == text.len() {
        return Some(None);
    }
    if !matches!(text[i], b'e' | b'E') {
        return None;
    }
    let e = i;
    i += 1;
    i += usize::from(matches!(text.get(i), Some(b'+' | b'-')));
    let exponent = digits(i);
    (exponent > 0 && i + exponent == text.len()).then_some(Some(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn decimals_plain_scientific_and_refused() {
        let ok = |text: &[u8]| parse_decimal(text).map(|d| (d, d.scale()));
        // TC0..3: plain forms keep their scale.
        assert_eq!(ok(b"46319.0"), Ok((dec!(46319.0), 1)));
        assert_eq!(ok(b"-0.00141342"), Ok((dec!(-0.00141342), 8)));
        assert_eq!(ok(b" 7 "), Ok((dec!(7), 0)));
        assert_eq!(ok(b".5"), Ok((dec!(0.5), 1)));
        // TC4..7: scientific, exact, as from_scientific reads them.
        assert_eq!(ok(b"1e-5"), Ok((dec!(0.00001), 5)));
        assert_eq!(ok(b"1.5E+3"), Ok((dec!(1500), 0)));
        assert_eq!(ok(b"1.50e1"), Ok((dec!(15.0), 1)));
        assert_eq!(ok(b"-2.5e-27"), Ok((dec!(-0.0000000000000000000000000025), 28)));
        // TC8..15: not numbers.
        for text in
            [&b""[..], b"abc", &[0xff, b'1'], b"NaN", b"inf", b"1,5", b"1_000", b"0x10", b"1e", b"e5", b".", b"-"]
        {
            assert_eq!(parse_decimal(text), Err(DecimalError::NotANumber), "{}", String::from_utf8_lossy(text));
        }
        // TC16..: numbers that no Decimal holds exactly.
        for text in [
            &b"1.23456789012345678901234567890123"[..],
            b"0.00000000000000000000000000001",
            b"79228162514264337593543950336",
            b"1e400",
            b"1e-29",
            b"1.23456789012345678901234567890123e0",
            b"1e99999999999999999999",
            b"12345678901234567890123456789e5",
        ] {
            assert_eq!(parse_decimal(text), Err(DecimalError::Inexact), "{}", String::from_utf8_lossy(text));
        }
        // TC: the one-pass reader and the library agree on the edges (sign of zero,
        // 19 digits, 20 digits going the long way).
        for text in
            ["-0", "-0.0", "+5", ".5", "5.", "1234567890123456789", "12345678901234567890", "-0.1234567890123456789"]
        {
            let theirs = Decimal::from_str_exact(text).map(|d| (d.mantissa(), d.scale(), d.is_sign_negative()));
            let ours = parse_decimal(text.as_bytes()).map(|d| (d.mantissa(), d.scale(), d.is_sign_negative()));
            assert_eq!(ours.ok(), theirs.ok(), "{text}");
        }
        // TC: the largest Decimal, and 28 places, fit.
        assert!(parse_decimal(b"79228162514264337593543950335").is_ok());
        assert!(parse_decimal(b"0.0000000000000000000000000001").is_ok());
    }

    proptest::proptest! {
        /// Whatever is read is a number of the grammar (the fast path takes nothing else).
        #[test]
        fn only_the_grammar_is_read(text in "[-+0-9._eE ,x]{0,10}") {
            if parse_decimal(text.as_bytes()).is_ok() {
                proptest::prop_assert!(number_shape(text.trim().as_bytes()).is_some(), "{:?}", text);
            }
        }

        /// The one-pass reader of short plain numbers gives what `from_str_exact` gives.
        #[test]
        fn short_plain_numbers_read_as_the_library_reads_them(text in "[-+]?[0-9]{0,20}(\\.[0-9]{0,20})?") {
            if let Some(ours) = parse_short_plain(text.as_bytes()) {
                let theirs = Decimal::from_str_exact(&text);
                proptest::prop_assert_eq!(
                    Ok((ours.mantissa(), ours.scale(), ours.is_sign_negative())),
                    theirs.map(|d| (d.mantissa(), d.scale(), d.is_sign_negative())),
                    "{}", text
                );
            }
        }

        /// Scientific input agrees with `from_scientific` wherever that is exact, and
        /// nothing panics.
        #[test]
        fn scientific_agrees_with_the_library(mantissa in -1_000_000_000i64..1_000_000_000, scale in 0u32..10, exponent in -40i32..40) {
            let text = format!("{}e{exponent}", Decimal::new(mantissa, scale));
            let ours = parse_decimal(text.as_bytes());
            if let Ok(theirs) = Decimal::from_scientific(&text) {
                if let Ok(ours) = ours {
                    proptest::prop_assert_eq!((ours, ours.scale()), (theirs, theirs.scale()), "{}", text);
                }
            }
        }
    }
}
