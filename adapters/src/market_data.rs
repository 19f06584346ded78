//! Market data files: OHLCV bars, trades and quotes from CSV or JSONL, gzip read
//! transparently (by the `.gz` suffix).
//!
//! The layout is recognised from the header: `open, high, low, close` make bars,
//! `bid, ask` make quotes, `price` with `size`/`qty`/`volume`/`amount` makes trades. The
//! time column is the first of `timestamp`, `ts_utc_bar_open`, `timestamp_utc`,
//! `datetime`, `date`, `time`, `ts_utc`, `ts`, `ts_ms`, `local_ts_ns` present (case
//! ignored); a separate `time` column after `date` is joined to it. Times may be RFC 3339,
//! `YYYY-MM-DD[ HH:MM:SS[.f]][+00:00]`, `YYYYMMDD HHMMSSmmm`, or epoch numbers (seconds,
//! milliseconds, microseconds or nanoseconds, told apart by magnitude); times without
//! an offset are UTC unless [`ReadOptions::utc_offset_seconds`] says otherwise. Prices and
//! sizes are parsed as exact decimals. `Adj Close` is ignored: bars are traded as the
//! source printed them.
//!
//! Files without a header are recognised when their first field is a time: three
//! columns are trades (`time, price, size`, as Kraken's trade dumps), four are quotes
//! (`time, bid, ask, volume`, as HistData's tick files).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use ledger_core::feed::Tick;
use ledger_core::event::{Bar, Quote, Side, TickData, Trade};
use ledger_core::ids::InstrumentId;
use ledger_core::time::TimestampNs;
use rust_decimal::Decimal;
use thiserror::Error;

/// A problem with a market data file, located as precisely as the problem allows.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The header does not name a layout we know.
    #[error("{path}: {message}")]
    Layout {
        /// The file.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// A row is bad.
    #[error("{path}:{line}: column {column}: {message}")]
    Row {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The column's header name.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// Time went backwards and `--sort` was not given.
    #[error(
        "{path}:{line}: time {time} is before the previous row's {previous}; pass --sort to sort the file by time"
    )]
    OutOfOrder {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// This row's time.
        time: TimestampNs,
        /// The previous row's time.
        previous: TimestampNs,
    },
    /// The file holds no rows.
    #[error("{path}: no data rows")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// How to read a file.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The instrument the file is about.
    pub instrument: InstrumentId,
    /// Sort rows by time (stable: rows sharing a time keep file order) instead of
    /// refusing out-of-order rows.
    pub sort: bool,
    /// Offset from UTC of times written without one, seconds east (-18000 for EST).
    pub utc_offset_seconds: i32,
}

#[derive(Debug, Clone, Copy)]
enum Layout {
    Bars { open: usize, high: usize, low: usize, close: usize, volume: Option<usize> },
    Trades { price: usize, size: usize, buyer_maker: Option<usize>, side: Option<usize> },
    Quotes { bid: usize, ask: usize, bid_size: Option<usize>, ask_size: Option<usize> },
}

struct Columns {
    names: Vec<String>,
    time: usize,
    extra_time: Option<usize>,
    layout: Layout,
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

impl Columns {
    fn from_header(names: Vec<String>, path: &Path) -> Result<Self, DataError> {
        let find = |wanted: &[&str]| wanted.iter().find_map(|w| names.iter().position(|n| n == w));
        let layout_error = |message: String| DataError::Layout { path: path.to_path_buf(), message };
        let time = find(&TIME_COLUMNS).ok_or_else(|| {
            layout_error(format!("no time column: expected one of {TIME_COLUMNS:?}, header is {names:?}"))
        })?;
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
        Ok(Columns { names, time, extra_time, layout })
    }
}

/// Reads a whole market data file (CSV, or JSONL when the name ends in `.jsonl` or
/// `.jsonl.gz`) into ticks in time order.
///
/// # Errors
/// [`DataError`] naming the file, and the line and column where a row is bad.
pub fn read_ticks(path: &Path, options: &ReadOptions) -> Result<Vec<Tick>, DataError> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    let file = File::open(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let reader: Box<dyn Read> =
        if name.ends_with(".gz") { Box::new(flate2::read::MultiGzDecoder::new(file)) } else { Box::new(file) };
    let base = name.trim_end_matches(".gz");
    let rows = if base.ends_with(".jsonl") || base.ends_with(".ndjson") {
        read_jsonl(path, reader, options.utc_offset_seconds)?
    } else {
        read_csv(path, reader, options.utc_offset_seconds)?
    };
    finish(path, rows, options)
}

/// One parsed row: line number, time, data.
type Row = (u64, TimestampNs, TickData);

fn read_csv(path: &Path, reader: Box<dyn Read>, offset: i32) -> Result<Vec<Row>, DataError> {
    let mut csv = csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(reader);
    let mut first = csv::StringRecord::new();
    if !csv.read_record(&mut first).map_err(|e| csv_error(path, 1, e))? {
        return Err(DataError::Empty { path: path.to_path_buf() });
    }
    let headerless = first.get(0).and_then(|f| parse_time_in(f, offset)).is_some();
    let names: Vec<String> = if headerless {
        let names: &[&str] = match first.len() {
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
        names.iter().map(|n| n.to_string()).collect()
    } else {
        first.iter().map(|h| h.trim().to_ascii_lowercase().replace(' ', "_")).collect()
    };
    let columns = Columns::from_header(names, path)?;
    let mut rows = Vec::new();
    if headerless {
        rows.push(parse_row(path, 1, &columns, offset, |i| first.get(i).unwrap_or(""))?);
    }
    let mut record = csv::StringRecord::new();
    // Line numbers count from the header (line 1); quoted fields spanning lines are not
    // expected in market data, so each record is one line.
    for line in 2u64.. {
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, line, e)),
        }
        if record.len() != columns.names.len() {
            return Err(DataError::Row {
                path: path.to_path_buf(),
                line,
                column: "*".into(),
                message: format!("{} fields, the header has {}", record.len(), columns.names.len()),
            });
        }
        rows.push(parse_row(path, line, &columns, offset, |i| record.get(i).unwrap_or(""))?);
    }
    Ok(rows)
}

fn read_jsonl(path: &Path, reader: Box<dyn Read>, offset: i32) -> Result<Vec<Row>, DataError> {
    let mut rows = Vec::new();
    let mut columns: Option<Columns> = None;
    for (index, line) in BufReader::new(reader).lines().enumerate() {
        let number = index as u64 + 1;
        let line = line.map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&line).map_err(|e| {
            DataError::Row { path: path.to_path_buf(), line: number, column: "*".into(), message: e.to_string() }
        })?;
        let fields: Vec<(String, String)> = object
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.to_ascii_lowercase(), text)
            })
            .collect();
        if columns.is_none() {
            columns = Some(Columns::from_header(fields.iter().map(|(k, _)| k.clone()).collect(), path)?);
        }
        let Some(cols) = &columns else { continue };
        let value = |i: usize| {
            let wanted = &cols.names[i];
            fields.iter().find(|(k, _)| k == wanted).map_or("", |(_, v)| v.as_str())
        };
        rows.push(parse_row(path, number, cols, offset, value)?);
    }
    Ok(rows)
}

fn csv_error(path: &Path, line: u64, error: csv::Error) -> DataError {
    DataError::Row { path: path.to_path_buf(), line, column: "*".into(), message: error.to_string() }
}

fn parse_row<'r>(
    path: &Path,
    line: u64,
    columns: &Columns,
    offset: i32,
    field: impl Fn(usize) -> &'r str,
) -> Result<Row, DataError> {
    let bad = |column: usize, message: String| DataError::Row {
        path: path.to_path_buf(),
        line,
        column: columns.names[column].clone(),
        message,
    };
    let decimal = |column: usize| -> Result<Decimal, DataError> {
        let text = field(column);
        parse_decimal(text).ok_or_else(|| bad(column, format!("{text:?} is not a decimal number")))
    };
    let positive = |column: usize| -> Result<Decimal, DataError> {
        let value = decimal(column)?;
        if value <= Decimal::ZERO {
            return Err(bad(column, format!("price {value} is not positive")));
        }
        Ok(value)
    };
    let optional = |column: Option<usize>| -> Result<Option<Decimal>, DataError> {
        match column {
            Some(c) if !field(c).is_empty() => decimal(c).map(Some),
            _ => Ok(None),
        }
    };
    let mut time_text = field(columns.time).to_string();
    if let Some(extra) = columns.extra_time {
        time_text = format!("{time_text} {}", field(extra));
    }
    let ts = parse_time_in(&time_text, offset)
        .ok_or_else(|| bad(columns.time, format!("{time_text:?} is not a time we read")))?;
    let data = match columns.layout {
        Layout::Bars { open, high, low, close, volume } => {
            let bar = Bar {
                open: positive(open)?,
                high: positive(high)?,
                low: positive(low)?,
                close: positive(close)?,
                volume: optional(volume)?,
                interval_ns: 0,
            };
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
        Layout::Trades { price, size, buyer_maker, side } => {
            let aggressor = match (buyer_maker.map(&field), side.map(&field)) {
                (Some("true" | "True" | "1"), _) => Some(Side::Sell),
                (Some("false" | "False" | "0"), _) => Some(Side::Buy),
                (_, Some(s)) if s.eq_ignore_ascii_case("buy") || s.eq_ignore_ascii_case("b") => Some(Side::Buy),
                (_, Some(s)) if s.eq_ignore_ascii_case("sell") || s.eq_ignore_ascii_case("s") => Some(Side::Sell),
                _ => None,
            };
            TickData::Trade(Trade { price: positive(price)?, size: decimal(size)?, aggressor })
        }
        Layout::Quotes { bid, ask, bid_size, ask_size } => TickData::Quote(Quote {
            bid: positive(bid)?,
            ask: positive(ask)?,
            bid_size: optional(bid_size)?,
            ask_size: optional(ask_size)?,
        }),
    };
    Ok((line, ts, data))
}

fn parse_decimal(text: &str) -> Option<Decimal> {
    let text = text.trim();
    text.parse::<Decimal>().ok().or_else(|| Decimal::from_scientific(text).ok())
}

/// Parses the time forms the module docs list, times without an offset taken as UTC.
/// Returns `None` for anything else.
pub fn parse_time(text: &str) -> Option<TimestampNs> {
    parse_time_in(text, 0)
}

/// As [`parse_time`], with times written without an offset taken to be `offset` seconds
/// east of UTC. Epoch numbers and times with an offset are absolute already.
pub fn parse_time_in(text: &str, offset: i32) -> Option<TimestampNs> {
    let shift = |t: TimestampNs| TimestampNs::from_nanos(t.nanos() - i64::from(offset) * 1_000_000_000);
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.len() != 8 {
        let n: i64 = text.parse().ok()?;
        let nanos = match text.len() {
            0..=11 => n.checked_mul(1_000_000_000)?,
            12..=14 => n.checked_mul(1_000_000)?,
            15..=17 => n.checked_mul(1_000)?,
            _ => n,
        };
        return Some(TimestampNs::from_nanos(nanos));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return TimestampNs::from_datetime(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%:z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return TimestampNs::from_datetime(t.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y%m%d %H%M%S%3f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return TimestampNs::from_datetime(t.and_utc()).map(shift);
        }
    }
    for format in ["%Y-%m-%d", "%Y%m%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(text, format) {
            return TimestampNs::from_datetime(d.and_hms_opt(0, 0, 0)?.and_utc()).map(shift);
        }
    }
    None
}

fn finish(path: &Path, mut rows: Vec<Row>, options: &ReadOptions) -> Result<Vec<Tick>, DataError> {
    if rows.is_empty() {
        return Err(DataError::Empty { path: path.to_path_buf() });
    }
    if options.sort {
        rows.sort_by_key(|(_, ts, _)| *ts);
    } else if let Some(pair) = rows.windows(2).find(|w| w[1].1 < w[0].1) {
        return Err(DataError::OutOfOrder {
            path: path.to_path_buf(),
            line: pair[1].0,
            time: pair[1].1,
            previous: pair[0].1,
        });
    }
    let interval = bar_interval(&rows);
    Ok(rows
        .into_iter()
        .map(|(_, ts, mut data)| {
            if let TickData::Bar(bar) = &mut data {
                bar.interval_ns = interval;
            }
            Tick { ts, instrument: options.instrument, data }
        })
        .collect())
}

/// The bar length: the most common gap between consecutive bars among the first 1,000
/// (gaps from weekends and missing minutes are rarer than the true interval).
fn bar_interval(rows: &[Row]) -> i64 {
    let mut gaps: Vec<i64> =
        rows.windows(2).take(1_000).map(|w| w[1].1.nanos() - w[0].1.nanos()).filter(|g| *g > 0).collect();
    gaps.sort_unstable();
    let mut best = (0i64, 0usize);
    for chunk in gaps.chunk_by(|a, b| a == b) {
        if chunk.len() > best.1 {
            best = (chunk[0], chunk.len());
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_supported_form() {
        let t = |s| parse_time(s).map(|t| t.nanos());
        let day = 1_381_190_400_000_000_000; // 2013-10-08T00:00:00Z
        assert_eq!(t("2013-10-08"), Some(day));
        assert_eq!(t("20131008"), Some(day));
        assert_eq!(t("2013-10-08T00:00:17.034Z"), Some(day + 17_034_000_000));
        assert_eq!(t("2013-10-08 00:00:17.034000"), Some(day + 17_034_000_000));
        assert_eq!(t("2013-10-08 01:00:00+01:00"), Some(day));
        assert_eq!(t("2013-10-08 00:01"), Some(day + 60_000_000_000));
        assert_eq!(t("20131008 000017034"), Some(day + 17_034_000_000));
        assert_eq!(t("1381190400"), Some(day));
        assert_eq!(t("1381190400000"), Some(day));
        assert_eq!(t("1381190400000000"), Some(day));
        assert_eq!(t("1381190400000000000"), Some(day));
        assert_eq!(t("yesterday"), None);
    }
}
