//! Market data files as streams: OHLCV bars, trades and quotes from CSV or JSONL, gzip
//! read transparently (by the `.gz` suffix), one tick at a time.
//!
//! The layout is recognised from the header: `open, high, low, close` make bars,
//! `bid, ask` make quotes, `price` with `size`/`qty`/`volume`/`amount` makes trades. The
//! time column is [`ReadOptions::time_column`] when given, else the first of
//! `timestamp`, `ts_utc_bar_open`, `timestamp_utc`, `datetime`, `date`, `time`, `ts_utc`,
//! `ts`, `ts_ms`, `trade_ts_ms`, `local_ts_ns` present (case ignored), else an unnamed
//! first column (pandas' `df.to_csv()` writes the index so); a separate `time` column
//! after `date` is joined to it. The field separator, `,`, `;` or tab, is told by the
//! first line. A pandas header of several rows, as yfinance writes it (`Price,Close,...`,
//! `Ticker,SPY,...`, `Date,,,`), is read as one; with several tickers the instrument's
//! columns are read. Times may be RFC 3339, `YYYY-MM-DD[ HH:MM:SS[.f]][+00:00]`,
//! `YYYYMMDD HHMMSSmmm`, epoch numbers (seconds, milliseconds, microseconds or
//! nanoseconds, told apart by digit count), or dates written day, month and year apart
//! (`MM/DD/YYYY`, `DD.MM.YYYY`, `YYYY/MM/DD`, day and month of 1 or 2 digits, then
//! optionally ` H:MM` or ` H:MM:SS[.f]`), whose order of day and month is
//! [`ReadOptions::date_order`] or told by the file (a row with a day above 12; a file
//! where no row tells is refused, [`DataError::AmbiguousDates`]). Times without an
//! offset are UTC unless [`ReadOptions::time_zone`] (an IANA zone, daylight saving
//! included: `zone`) or [`ReadOptions::utc_offset_seconds`] says otherwise. A file keeps
//! one time layout: it is recognised on the first data row and every later row must
//! match it. Prices and sizes are parsed as exact decimals. `Adj Close` is ignored: bars
//! are traded as the source printed them.
//!
//! Files without a header are recognised when their first field is a time: three
//! columns are trades (`time, price, size`, as Kraken's trade dumps), four are quotes
//! (`time, bid, ask, volume`, as HistData's tick files).
//!
//! # Rules
//! Every row is checked; a row that breaks a rule is a [`DataError::Row`] naming the
//! file, the line (of the row's first byte, right across quoted newlines, CRLF and blank
//! lines) and the column, with a message that names the rule:
//! - prices are positive: a bar's open, high, low and close, a trade's price, a quote's
//!   bid and ask (`price -1.5 is not positive`);
//! - a trade's size is positive; a bar's volume and a quote's sizes are not negative
//!   (`-0` reads as 0);
//! - a bar's high and low contain its open and close;
//! - a quote's bid is at most 1% above its ask. Real feeds cross by a little (FXCM's
//!   EURUSD of 2014-05-08 has 18,285 rows with bid > ask, by up to 0.016%; they are
//!   data, read as they are), while a bid 1% above the ask is a broken row (a bid 100
//!   times the ask, say);
//! - numbers are `[+-]?(digits[.digits]|.digits)([eE][+-]?digits)?` and fit a
//!   [`rust_decimal::Decimal`] exactly: `NaN`, `inf`, `1,000` and `1_000` are not
//!   numbers, and what would be rounded (more than 28 decimal places, 2^96 or more,
//!   `1e400`) "does not fit exactly in 28 digits";
//! - times are of the file's one time layout and inside the `i64` nanosecond range
//!   (1677..2262);
//! - a CSV row has as many fields as the header; a JSONL row is one flat JSON object
//!   (no nested objects or arrays, no key twice ignoring case), UTF-8;
//! - no two header columns share a name (empty names aside), refused on the header's
//!   line naming both columns.
//!
//! A UTF-8 byte order mark at the start is skipped; lines of only spaces are blank; a
//! `\r` before the `\n` is trimmed with the last field. In JSONL, numbers are read from
//! their text (not through `f64`) and `null` is an absent value.
//!
//! With [`ReadOptions::lenient`], a bad row (any of the above, or a row that is not CSV
//! or JSON at all) is skipped and counted ([`FileFeed::skipped_rows`]) instead of ending
//! the feed; the first five are logged with `tracing::warn!`, and the total when the
//! feed ends. What is not a row's fault still stops: an unreadable file or a broken
//! gzip stream ([`DataError::Io`]), a header of no known layout or with a repeated name,
//! a JSONL file whose first object is bad, and a row out of time order without `--sort`.
//! docs/market-data.md has the rules with examples, and the fuzzing.
//!
//! # Layout
//! - this file: [`FileFeed`] (one file as a [`MarketFeed`]), [`read_ticks`],
//!   [`describe_source`], the errors and options.
//! - `layout`: the header's meaning, and one row's fields turned into a tick.
//! - `time`: [`parse_time`] (the general recogniser) and the fast per-file time parsers.
//! - `zone`: [`TimeZone`], and how civil times are placed in a file's zone (gaps and
//!   folds of daylight saving).
//! - `jsonl`: one JSON lines row split into keys and value texts, numbers as written.
//! - `merge`: [`MergedFeed`], several feeds merged by time.

mod jsonl;
mod layout;
mod merge;
mod time;
mod zone;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use ledger_core::event::TickData;
use ledger_core::feed::{MarketFeed, Tick};
use ledger_core::ids::InstrumentId;
use ledger_core::time::TimestampNs;
use thiserror::Error;

use layout::{normalise, Columns, Layout, OrderEvidence, RowParser};
pub use merge::MergedFeed;
pub use time::{parse_time, parse_time_in, DateOrder};
use zone::Zone;
pub use zone::{TimeZone, UnknownTimeZone};

/// A problem with a market data file, located as precisely as the problem allows.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS (or the gzip decoder) said (in the message, so not also a source).
        error: std::io::Error,
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
        /// The column's header name (`*` for the row as a whole).
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
    /// Dates are written with the year last and no row tells whether the day or the
    /// month comes first ([`ReadOptions::date_order`] was not given).
    #[error("{path}:{line}: column {column}: {message}")]
    AmbiguousDates {
        /// The file.
        path: PathBuf,
        /// 1-based line number of the first row whose date reads two ways.
        line: u64,
        /// The time column's header name.
        column: String,
        /// The two readings, and what to do.
        message: String,
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
    /// refusing out-of-order rows. Sorting holds the whole file in memory.
    pub sort: bool,
    /// Offset from UTC of times written without one, seconds east (-18000 for EST).
    pub utc_offset_seconds: i32,
    /// Skip bad rows and count them ([`FileFeed::skipped_rows`]) instead of stopping at
    /// the first.
    pub lenient: bool,
    /// The IANA time zone of times written without an offset, daylight saving included;
    /// when set, [`ReadOptions::utc_offset_seconds`] is not used.
    pub time_zone: Option<TimeZone>,
    /// The order of day and month in dates written with the year last (`01/02/2020`);
    /// `None`: told by the file (a row with a day above 12), and a file where no row
    /// tells is refused ([`DataError::AmbiguousDates`]).
    pub date_order: Option<DateOrder>,
    /// The header name of the column the times are in, instead of the first known time
    /// name (compared trimmed, ignoring case, spaces as `_`).
    pub time_column: Option<String>,
}

impl ReadOptions {
    /// Options for a file about `instrument`: in file order, strict, times without an
    /// offset in UTC, the layout as the file tells it.
    pub fn new(instrument: InstrumentId) -> ReadOptions {
        ReadOptions {
            instrument,
            sort: false,
            utc_offset_seconds: 0,
            lenient: false,
            time_zone: None,
            date_order: None,
            time_column: None,
        }
    }
}

/// Gaps looked at to find the bar interval: the first 1,000 (1,001 bars).
const INTERVAL_SAMPLE: usize = 1_000;

/// Bytes the CSV reader buffers.
const CSV_BUFFER_BYTES: usize = 64 * 1024;

/// One market data file as a [`MarketFeed`]: ticks in file order, parsed as they are
/// asked for.
///
/// Memory is bounded independently of the file's size: a read buffer, one reused row,
/// and for bars a look-ahead of the first 1,001 rows, from which the bar interval
/// ([`ledger_core::event::Bar::interval_ns`]: the most common positive gap between
/// consecutive bars among the first 1,000) is computed before the first tick is given.
/// The one exception is [`ReadOptions::sort`], which reads and holds the whole file to
/// sort it.
///
/// Problems with the file as a whole ([`DataError::Io`] opening it,
/// [`DataError::Layout`], [`DataError::Empty`]) and a bad first row come from
/// [`FileFeed::open`]; a later bad row comes from [`MarketFeed::next_tick`] after the
/// rows before it have been given, and then the feed gives nothing more. With
/// [`ReadOptions::lenient`] bad rows are skipped instead (the [rules](self)), and a file
/// whose every row is bad is [`DataError::Empty`].
#[derive(Debug)]
pub struct FileFeed {
    source: RowSource,
    instrument: InstrumentId,
    /// Rows read ahead (the bar-interval sample, or the whole sorted file).
    ahead: VecDeque<(TimestampNs, TickData)>,
    /// An error met while reading ahead, due once the rows before it are given.
    pending: Option<DataError>,
    /// Bar length in ns given to every bar (0 for other ticks or when unknown).
    interval_ns: i64,
    /// The source has nothing more (its end, or an error).
    exhausted: bool,
}

impl FileFeed {
    /// Opens `path` (CSV, or JSONL when the name ends in `.jsonl` or `.ndjson`, either
    /// optionally `.gz`), recognises its layout from the header and its time layout from
    /// the first data row, and reads ahead what the bar interval needs (or, with
    /// [`ReadOptions::sort`], the whole file).
    ///
    /// # Errors
    /// [`DataError::Io`] if the file cannot be opened or read, [`DataError::Layout`] for
    /// a header we do not know, [`DataError::Empty`] for a file without rows, and the
    /// [`DataError::Row`] or [`DataError::OutOfOrder`] of a bad first row (of any row,
    /// with `sort`).
    pub fn open(path: &Path, options: &ReadOptions) -> Result<FileFeed, DataError> {
        let source = RowSource::open(path, options)?;
        let wanted = if options.sort {
            usize::MAX
        } else if matches!(source.parser.columns.layout, Layout::Bars { .. }) {
            INTERVAL_SAMPLE + 1
        } else {
            1
        };
        let mut feed = FileFeed {
            source,
            instrument: options.instrument,
            ahead: VecDeque::new(),
            pending: None,
            interval_ns: 0,
            exhausted: false,
        };
        while feed.ahead.len() < wanted {
            match feed.source.next_row() {
                Ok(Some(row)) => feed.ahead.push_back(row),
                Ok(None) => {
                    feed.exhausted = true;
                    break;
                }
                Err(error) if feed.ahead.is_empty() || options.sort => return Err(error),
                Err(error) => {
                    feed.pending = Some(error);
                    feed.exhausted = true;
                    break;
                }
            }
        }
        if feed.ahead.is_empty() {
            return Err(DataError::Empty { path: path.to_path_buf() });
        }
        if options.sort {
            // Stable: rows sharing a time keep file order.
            feed.ahead.make_contiguous().sort_by_key(|(ts, _)| *ts);
        }
        if matches!(feed.source.parser.columns.layout, Layout::Bars { .. }) {
            feed.interval_ns = bar_interval(feed.ahead.iter().take(INTERVAL_SAMPLE + 1).map(|(ts, _)| *ts));
        }
        Ok(feed)
    }

    /// Rows skipped as bad so far ([`ReadOptions::lenient`]; always 0 without it).
    pub fn skipped_rows(&self) -> u64 {
        self.source.skipped
    }

    /// Passes over the next `n` ticks, which a run has already taken from this file
    /// (a resumed run: they were good rows then), and returns the last of them. Only
    /// that last row is parsed (and checked); the others are only framed as CSV
    /// records or JSON lines, several times faster. With [`ReadOptions::lenient`]
    /// (which rows count as ticks is known only by parsing them), a date order not told
    /// yet, or a time zone (a repeated local time in a fall-back hour is told by the row
    /// before it), every row is read as [`MarketFeed::next_tick`] reads it.
    ///
    /// # Errors
    /// As [`MarketFeed::next_tick`], for the rows read.
    pub fn skip_ticks(&mut self, n: u64) -> Result<Option<Tick>, DataError> {
        let mut last = None;
        let mut left = n;
        while left > 0 {
            let Some(row) = self.ahead.pop_front() else { break };
            (last, left) = (Some(row), left - 1);
        }
        if left == 0 {
            return Ok(last.map(|row| self.tick(row)));
        }
        // Framing only leaves the previous row's time behind: fine unless a time zone
        // tells a repeated local time (a fall-back hour) by it.
        let framed_only =
            !self.source.lenient && !self.source.parser.awaits_date_order() && self.source.options.time_zone.is_none();
        while left > 1 && framed_only && self.pending.is_none() && !self.exhausted {
            if !self.source.pass_row()? {
                self.exhausted = true;
            }
            left -= 1;
        }
        let mut tick = None;
        for _ in 0..left {
            match self.next_tick()? {
                Some(next) => tick = Some(next),
                None => return Ok(None),
            }
        }
        Ok(tick)
    }

    fn tick(&self, (ts, mut data): (TimestampNs, TickData)) -> Tick {
        if let TickData::Bar(bar) = &mut data {
            bar.interval_ns = self.interval_ns;
        }
        Tick { ts, instrument: self.instrument, data }
    }
}

impl MarketFeed for FileFeed {
    type Error = DataError;

    /// The next row as a tick, `Ok(None)` at the end of the file.
    ///
    /// # Errors
    /// [`DataError::Row`] for a bad row (naming its line and column),
    /// [`DataError::OutOfOrder`] for a row earlier than the one before it (without
    /// `sort`), [`DataError::Io`] when reading fails. After an error the feed gives
    /// `Ok(None)`.
    fn next_tick(&mut self) -> Result<Option<Tick>, DataError> {
        if let Some(row) = self.ahead.pop_front() {
            return Ok(Some(self.tick(row)));
        }
        if let Some(error) = self.pending.take() {
            return Err(error);
        }
        if self.exhausted {
            return Ok(None);
        }
        match self.source.next_row() {
            Ok(Some(row)) => Ok(Some(self.tick(row))),
            Ok(None) => {
                self.exhausted = true;
                Ok(None)
            }
            Err(error) => {
                self.exhausted = true;
                Err(error)
            }
        }
    }
}

/// Reads a whole market data file into ticks in time order: a [`FileFeed`] collected.
///
/// # Errors
/// Those of [`FileFeed::open`] and [`MarketFeed::next_tick`].
pub fn read_ticks(path: &Path, options: &ReadOptions) -> Result<Vec<Tick>, DataError> {
    let mut feed = FileFeed::open(path, options)?;
    let mut ticks = Vec::new();
    while let Some(tick) = feed.next_tick()? {
        ticks.push(tick);
    }
    Ok(ticks)
}

/// A short description of a data file for provenance: its path as given and its size,
/// e.g. `fixtures/x.csv (345989 bytes)`. Reads the file's metadata, not its contents.
///
/// # Errors
/// [`DataError::Io`] when the file's metadata cannot be read.
pub fn describe_source(path: &Path) -> Result<String, DataError> {
    let metadata =
        std::fs::metadata(path).map_err(|source| DataError::Io { path: path.to_path_buf(), error: source })?;
    Ok(format!("{} ({} bytes)", path.display(), metadata.len()))
}

/// The bar length: the most common gap between consecutive bars among the first 1,000
/// (gaps from weekends and missing minutes are rarer than the true interval); the
/// shortest such gap on a tie, 0 without any positive gap.
fn bar_interval(times: impl Iterator<Item = TimestampNs>) -> i64 {
    let times: Vec<i64> = times.map(TimestampNs::nanos).collect();
    let mut gaps: Vec<i64> = times.windows(2).map(|w| w[1].saturating_sub(w[0])).filter(|g| *g > 0).collect();
    gaps.sort_unstable();
    let mut best = (0i64, 0usize);
    for chunk in gaps.chunk_by(|a, b| a == b) {
        if chunk.len() > best.1 {
            best = (chunk[0], chunk.len());
        }
    }
    best.0
}

/// Skipped rows logged one by one ([`ReadOptions::lenient`]); the rest are counted.
const SKIPPED_ROWS_LOGGED: u64 = 5;

/// The rows of one file, parsed one at a time, checked for order.
#[derive(Debug)]
struct RowSource {
    path: PathBuf,
    /// The options the file was opened with (to open it again, to tell its date order).
    options: ReadOptions,
    records: Records,
    parser: RowParser,
    /// Refuse rows earlier than the previous one (not when sorting).
    check_order: bool,
    previous: Option<TimestampNs>,
    /// Skip bad rows instead of stopping ([`ReadOptions::lenient`]).
    lenient: bool,
    /// Bad rows skipped.
    skipped: u64,
    /// The source has ended (its end, or an error) and said so.
    ended: bool,
}

/// Where rows come from: a CSV reader or JSON lines.
enum Records {
    Csv {
        reader: csv::Reader<NewlineAtEnd<Box<dyn Read>>>,
        /// The current row, reused.
        record: csv::ByteRecord,
        /// `record` holds a data row already read (a headerless file's first line),
        /// from line `replay`.
        replay: Option<u64>,
    },
    Jsonl {
        reader: BufReader<Box<dyn Read>>,
        /// The current line's bytes, reused.
        bytes: Vec<u8>,
        /// The current object's values by column (empty for absent keys), reused.
        values: Vec<String>,
        /// `values` holds the first object, read to learn the columns.
        replay: bool,
        /// The current line.
        line: u64,
    },
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Records::Csv { .. } => f.debug_struct("Csv").finish_non_exhaustive(),
            Records::Jsonl { line, .. } => f.debug_struct("Jsonl").field("line", line).finish_non_exhaustive(),
        }
    }
}

impl RowSource {
    fn open(path: &Path, options: &ReadOptions) -> Result<RowSource, DataError> {
        let name = path.to_string_lossy().to_ascii_lowercase();
        let file = File::open(path).map_err(|source| DataError::Io { path: path.to_path_buf(), error: source })?;
        let reader: Box<dyn Read> =
            if name.ends_with(".gz") { Box::new(flate2::read::MultiGzDecoder::new(file)) } else { Box::new(file) };
        let base = name.trim_end_matches(".gz");
        let (records, columns) = if base.ends_with(".jsonl") || base.ends_with(".ndjson") {
            open_jsonl(path, reader, options.time_column.as_deref())?
        } else {
            open_csv(path, reader, options)?
        };
        let zone = Zone::new(options.time_zone.as_ref(), options.utc_offset_seconds);
        Ok(RowSource {
            path: path.to_path_buf(),
            options: options.clone(),
            records,
            parser: RowParser::new(columns, zone, options.date_order),
            check_order: !options.sort,
            previous: None,
            lenient: options.lenient,
            skipped: 0,
            ended: false,
        })
    }

    /// The next good row's time and tick, `None` at the end. With `lenient`, bad rows
    /// ([`DataError::Row`]) are skipped and counted; any other error ends the source.
    fn next_row(&mut self) -> Result<Option<(TimestampNs, TickData)>, DataError> {
        loop {
            let result = self.read_row();
            match result {
                Err(error @ DataError::Row { .. }) if self.lenient => {
                    self.skipped += 1;
                    if self.skipped <= SKIPPED_ROWS_LOGGED {
                        tracing::warn!(%error, "bad market data row skipped (lenient)");
                    } else if self.skipped == SKIPPED_ROWS_LOGGED + 1 {
                        tracing::warn!(path = %self.path.display(), "more bad rows skipped; the total comes at the end");
                    }
                }
                Ok(Some(row)) => return Ok(Some(row)),
                Ok(None) | Err(_) => {
                    if !self.ended && self.skipped > 0 {
                        tracing::warn!(path = %self.path.display(), skipped = self.skipped, "bad market data rows skipped (lenient)");
                    }
                    self.ended = true;
                    return result;
                }
            }
        }
    }

    /// Frames the next row (a CSV record or a JSON line) without parsing it; `false` at
    /// the end. For rows known to be good ([`FileFeed::skip_ticks`]).
    fn pass_row(&mut self) -> Result<bool, DataError> {
        let path = self.path.as_path();
        match &mut self.records {
            Records::Csv { reader, record, replay } => {
                if replay.take().is_some() {
                    return Ok(true);
                }
                Ok(next_record(path, reader, record)?.is_some())
            }
            Records::Jsonl { reader, bytes, replay, line, .. } => {
                if std::mem::take(replay) {
                    return Ok(true);
                }
                loop {
                    if !read_line(path, reader, bytes)? {
                        return Ok(false);
                    }
                    *line += 1;
                    if !bytes.trim_ascii().is_empty() {
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// The next row, good or bad.
    fn read_row(&mut self) -> Result<Option<(TimestampNs, TickData)>, DataError> {
        let path = self.path.as_path();
        let (line, (ts, data)) = match &mut self.records {
            Records::Csv { reader, record, replay } => {
                let line = match replay.take() {
                    Some(line) => line,
                    None => match next_record(path, reader, record)? {
                        Some(line) => line,
                        None => return Ok(None),
                    },
                };
                let columns = self.parser.columns.names.len();
                if record.len() != columns {
                    return Err(DataError::Row {
                        path: path.to_path_buf(),
                        line,
                        column: "*".into(),
                        message: format!("{} fields, the header has {columns}", record.len()),
                    });
                }
                let record = &*record;
                let field = |i| record.get(i).unwrap_or_default().trim_ascii();
                if self.parser.awaits_date_order() {
                    tell_date_order(&mut self.parser, path, &self.options, line, field)?;
                }
                (line, self.parser.parse(path, line, self.previous, field)?)
            }
            Records::Jsonl { reader, bytes, values, replay, line } => {
                if *replay {
                    *replay = false;
                } else if !next_object(path, reader, bytes, line, &self.parser.columns.names, values)? {
                    return Ok(None);
                }
                let values = &*values;
                let field = |i: usize| values.get(i).map_or(&[][..], |v| v.as_bytes().trim_ascii());
                if self.parser.awaits_date_order() {
                    tell_date_order(&mut self.parser, path, &self.options, *line, field)?;
                }
                (*line, self.parser.parse(path, *line, self.previous, field)?)
            }
        };
        if self.check_order {
            if let Some(previous) = self.previous.filter(|previous| ts < *previous) {
                return Err(DataError::OutOfOrder { path: path.to_path_buf(), line, time: ts, previous });
            }
        }
        self.previous = Some(ts);
        Ok(Some((ts, data)))
    }
}

/// A reader that adds a tail to its stream, so that every CSV record, the last
/// included, is ended by a `\n` outside quotes, which makes its line number computable
/// (see [`next_record`]):
/// - `\n` when the last byte is another, to end the last line;
/// - then `"\n`: after a complete last record it is a blank record (a quoted newline)
///   that [`next_record`] skips; after a quote left open to the end of the file it
///   closes the quote and ends that record with a `\n` like every other.
///
/// The tail changes no complete field: an unclosed quoted field, an error anyway, gains
/// a trailing `\n`, trimmed.
struct NewlineAtEnd<R> {
    inner: R,
    /// The last byte given (`None` before any).
    last: Option<u8>,
    /// The tail still to give, once the inner reader has ended.
    tail: Option<&'static [u8]>,
    /// Bytes given, the tail's included.
    given: u64,
}

impl<R> NewlineAtEnd<R> {
    fn new(inner: R) -> Self {
        NewlineAtEnd { inner, last: None, tail: None, given: 0 }
    }

    /// Whether a record that ends at byte `end` took in the tail's quote: then its
    /// last quoted field was still open at the end of the file. (After a complete last
    /// record, the tail is a record of its own, ending 2 bytes later.)
    fn swallowed_tail(&self, end: u64) -> bool {
        self.last.is_some() && self.tail.is_some_and(<[u8]>::is_empty) && end == self.given
    }
}

impl<R: Read> Read for NewlineAtEnd<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.tail.is_none() {
            let read = self.inner.read(buf)?;
            if let Some(&last) = buf.get(..read).and_then(<[u8]>::last) {
                self.last = Some(last);
                self.given += read as u64;
                return Ok(read);
            }
            self.tail = Some(match self.last {
                None => b"",
                Some(b'\n') => b"\"\n",
                Some(_) => b"\n\"\n",
            });
        }
        let tail = self.tail.unwrap_or_default();
        let given = tail.len().min(buf.len());
        buf[..given].copy_from_slice(&tail[..given]);
        self.tail = Some(&tail[given..]);
        self.given += given as u64;
        Ok(given)
    }
}

/// Reads the next CSV record that is not a blank line into `record`; `Some(its first
/// line)`, `None` at the end.
///
/// Lines: csv's `ByteRecord::position` is where the reader stood when it began the
/// record, before it skipped blank lines and, in CRLF files, the `\n` after the last
/// record's `\r` (csv ends a record at `\r` and skips the `\n` next time), so it names
/// the line before the record in every CRLF file (line 1 for the second record) and
/// after every blank line. What is right: the reader's position after the record, less
/// the record's own newlines (inside quoted fields), less the `\n` that ended it. For
/// that, `\n` alone ends a record (a `\r` before it stays in the last field, which is
/// trimmed) and [`NewlineAtEnd`] makes sure the last record has one too, even one
/// whose quote is never closed.
///
/// # Errors
/// [`DataError::Io`] when reading fails; [`DataError::Row`] for a record whose quote is
/// still open at the end of the file (csv would read it as if closed).
fn next_record(
    path: &Path,
    reader: &mut csv::Reader<NewlineAtEnd<Box<dyn Read>>>,
    record: &mut csv::ByteRecord,
) -> Result<Option<u64>, DataError> {
    loop {
        let before = reader.position().line();
        if !reader.read_byte_record(record).map_err(|e| csv_error(path, before, e))? {
            return Ok(None);
        }
        // A line of spaces, or the `\r` of an empty CRLF line: blank, skipped (csv skips
        // empty lines itself).
        if record.len() == 1 && record.as_slice().trim_ascii().is_empty() {
            continue;
        }
        let after = reader.position().line();
        // One line gone by: no blank line before the record and no newline inside it (the
        // common case, where counting newlines would cost more than the rest of the
        // record).
        let newlines =
            if after == before + 1 { 0 } else { record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64 };
        let line = after.saturating_sub(newlines + 1).max(1);
        if reader.get_ref().swallowed_tail(reader.position().byte()) {
            return Err(DataError::Row {
                path: path.to_path_buf(),
                line,
                column: "*".into(),
                message: "a quoted field is still open at the end of the file".into(),
            });
        }
        return Ok(Some(line));
    }
}

/// Bytes looked at to tell a CSV file's separator: its first non-blank line, up to this.
const SNIFF_BYTES: usize = 64 * 1024;

/// Tells a CSV file's field separator from its first non-blank line (the header, or a
/// headerless file's first row): the most frequent of `,`, `;` and tab outside double
/// quotes, `,` on a tie or when there is none. Returns the reader with the bytes looked
/// at put back in front.
///
/// # Errors
/// [`DataError::Io`] when reading fails.
fn sniff_delimiter(path: &Path, mut reader: Box<dyn Read>) -> Result<(Box<dyn Read>, u8), DataError> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 8 * 1024];
    let first_line = |head: &[u8], complete_only: bool| -> Option<Vec<u8>> {
        let mut lines: Vec<&[u8]> = head.split(|&b| b == b'\n').collect();
        if complete_only {
            lines.pop(); // the part after the last `\n` may go on
        }
        lines.into_iter().find(|l| !l.trim_ascii().is_empty()).map(<[u8]>::to_vec)
    };
    let line = loop {
        if let Some(line) = first_line(&head, true) {
            break line;
        }
        if head.len() >= SNIFF_BYTES {
            break first_line(&head, false).unwrap_or_default();
        }
        let read = reader.read(&mut chunk).map_err(|error| DataError::Io { path: path.to_path_buf(), error })?;
        if read == 0 {
            break first_line(&head, false).unwrap_or_default();
        }
        head.extend_from_slice(&chunk[..read]);
    };
    let (mut quoted, mut counts) = (false, [0usize; 3]);
    for &b in &line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let delimiter = match counts {
        [comma, semicolon, tab] if semicolon > comma && semicolon >= tab => b';',
        [comma, semicolon, tab] if tab > comma && tab > semicolon => b'\t',
        _ => b',',
    };
    Ok((Box::new(std::io::Cursor::new(head).chain(reader)), delimiter))
}

/// Whether a first field reads as a time (so the file has no header).
fn looks_like_time(field: &[u8]) -> bool {
    std::str::from_utf8(field).ok().and_then(time::parse_written).is_some() || time::looks_ordered(field)
}

/// Reads the header (or, for a headerless file, the first row) and keeps the reader.
///
/// The header may span rows, as pandas writes a frame whose columns have several levels
/// (yfinance's `yf.download(...).to_csv()`): when its first cell is `Price` or empty, a
/// next row starting `Ticker` names each column's ticker, and a next row of one name and
/// empty cells (`Date,,,,`) names the first column, the index. With several tickers,
/// the columns of the one named by [`ReadOptions::instrument`] are read.
fn open_csv(path: &Path, reader: Box<dyn Read>, options: &ReadOptions) -> Result<(Records, Columns), DataError> {
    let (reader, delimiter) = sniff_delimiter(path, reader)?;
    // Fields are trimmed where they are used, not by the reader: cheaper, same result.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(CSV_BUFFER_BYTES)
        .from_reader(NewlineAtEnd::new(reader));
    let mut record = csv::ByteRecord::new();
    let Some(line) = next_record(path, &mut reader, &mut record)? else {
        return Err(DataError::Empty { path: path.to_path_buf() });
    };
    // (csv skips a UTF-8 byte order mark at the start itself.)
    let headerless = looks_like_time(record.get(0).unwrap_or_default().trim_ascii());
    let mut replay = headerless.then_some(line);
    let mut header_line = line;
    let names: Vec<String> = if headerless {
        layout::headerless_names(record.len(), path)?
    } else {
        let mut names: Vec<String> = record.iter().map(|h| normalise(&String::from_utf8_lossy(h))).collect();
        if matches!(names.first().map(String::as_str), Some("price" | "")) {
            let header = read_header_rows(path, &mut reader, &mut record, names.len())?;
            replay = header.replay;
            if header.tickers.is_some() || header.index.is_some() {
                names[0] = header.index.unwrap_or_default();
                if let Some(tickers) = header.tickers {
                    select_ticker(path, &mut names, &tickers, options.instrument.as_str())?;
                }
                header_line = header.last_line;
            }
        }
        names
    };
    let columns = Columns::from_header(names, path, header_line, options.time_column.as_deref())?;
    Ok((Records::Csv { reader, record, replay }, columns))
}

/// The rows after a pandas header's first, when the columns have several levels.
struct HeaderRows {
    /// Each column's ticker (the first column's cell left out), from a `Ticker,...` row.
    tickers: Option<Vec<String>>,
    /// The index's name, from a `Date,,,,` row.
    index: Option<String>,
    /// The line of the header's last row.
    last_line: u64,
    /// A data row read past the header, left in the record: its line.
    replay: Option<u64>,
}

/// Reads up to two more header rows (see [`open_csv`]); the first row that is not one
/// stays in `record` as data.
fn read_header_rows(
    path: &Path,
    reader: &mut csv::Reader<NewlineAtEnd<Box<dyn Read>>>,
    record: &mut csv::ByteRecord,
    width: usize,
) -> Result<HeaderRows, DataError> {
    let mut rows = HeaderRows { tickers: None, index: None, last_line: 0, replay: None };
    for _ in 0..2 {
        let Some(line) = next_record(path, reader, record)? else { break };
        let cells: Vec<String> = record.iter().map(|c| String::from_utf8_lossy(c).trim().to_string()).collect();
        let first = cells.first().map(|c| normalise(c)).unwrap_or_default();
        let others_empty = cells.iter().skip(1).all(String::is_empty);
        if cells.len() != width {
            rows.replay = Some(line);
            break;
        }
        if first == "ticker" && rows.tickers.is_none() && rows.index.is_none() && !others_empty {
            rows.tickers = Some(cells[1..].to_vec());
            rows.last_line = line;
        } else if !first.is_empty() && others_empty && !looks_like_time(first.as_bytes()) {
            rows.index = Some(first);
            rows.last_line = line;
            break;
        } else {
            rows.replay = Some(line);
            break;
        }
    }
    Ok(rows)
}

/// With several tickers in a pandas header, keeps the columns of `instrument` (the
/// others' names are emptied: they name nothing).
///
/// # Errors
/// [`DataError::Layout`] when several tickers are there and none is `instrument`.
fn select_ticker(path: &Path, names: &mut [String], tickers: &[String], instrument: &str) -> Result<(), DataError> {
    let mut distinct: Vec<&str> = tickers.iter().map(String::as_str).filter(|t| !t.is_empty()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() <= 1 {
        return Ok(());
    }
    if !distinct.iter().any(|t| t.eq_ignore_ascii_case(instrument)) {
        return Err(DataError::Layout {
            path: path.to_path_buf(),
            message: format!(
                "the columns are of several tickers ({}) and none is the instrument {instrument}: set --instrument to the ticker to read",
                distinct.join(", ")
            ),
        });
    }
    for (name, ticker) in names.iter_mut().skip(1).zip(tickers) {
        if !ticker.eq_ignore_ascii_case(instrument) {
            name.clear();
        }
    }
    Ok(())
}

/// Before the first row's time is recognised without a date order: when it is a date
/// written with the year last, tells the order, from this row or by reading the file
/// again until a row does ([`scan_date_order`]).
///
/// # Errors
/// [`DataError::AmbiguousDates`] when no row of the file tells; the errors of reading.
fn tell_date_order<'r>(
    parser: &mut RowParser,
    path: &Path,
    options: &ReadOptions,
    line: u64,
    field: impl Fn(usize) -> &'r [u8],
) -> Result<(), DataError> {
    match parser.order_evidence(field) {
        OrderEvidence::None => {}
        OrderEvidence::Tells(order) => parser.set_date_order(order, line),
        OrderEvidence::Either | OrderEvidence::Ambiguous => {
            let (order, told_by) = scan_date_order(path, options)?;
            parser.set_date_order(order, told_by);
        }
    }
    Ok(())
}

/// Reads the file again from its start, looking only at the times, until a date written
/// with the year last has a field above 12 (a day): the order it tells and its line.
/// Memory stays constant; the rows are not checked (the read proper does that).
///
/// # Errors
/// [`DataError::AmbiguousDates`] naming the first row whose date reads as two different
/// days when no row tells (a file where every date reads the same either way is month
/// first); the errors of reading.
fn scan_date_order(path: &Path, options: &ReadOptions) -> Result<(DateOrder, u64), DataError> {
    let mut source = RowSource::open(path, options)?;
    let mut ambiguous: Option<(u64, Vec<u8>)> = None;
    loop {
        let (line, evidence, text) = match &mut source.records {
            Records::Csv { reader, record, replay } => {
                let line = match replay.take() {
                    Some(line) => line,
                    None => match next_record(path, reader, record) {
                        Ok(Some(line)) => line,
                        Ok(None) => break,
                        Err(DataError::Row { .. }) => continue,
                        Err(error) => return Err(error),
                    },
                };
                let record = &*record;
                let field = |i| record.get(i).unwrap_or_default().trim_ascii();
                let evidence = source.parser.order_evidence(field);
                let text = (evidence == OrderEvidence::Ambiguous && ambiguous.is_none())
                    .then(|| source.parser.time_text(&field).to_vec());
                (line, evidence, text)
            }
            Records::Jsonl { reader, bytes, values, replay, line } => {
                if *replay {
                    *replay = false;
                } else {
                    match next_object(path, reader, bytes, line, &source.parser.columns.names, values) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(DataError::Row { .. }) => continue,
                        Err(error) => return Err(error),
                    }
                }
                let values = &*values;
                let field = |i: usize| values.get(i).map_or(&[][..], |v| v.as_bytes().trim_ascii());
                let evidence = source.parser.order_evidence(field);
                let text = (evidence == OrderEvidence::Ambiguous && ambiguous.is_none())
                    .then(|| source.parser.time_text(&field).to_vec());
                (*line, evidence, text)
            }
        };
        match evidence {
            OrderEvidence::Tells(order) => return Ok((order, line)),
            OrderEvidence::Ambiguous if ambiguous.is_none() => ambiguous = text.map(|text| (line, text)),
            _ => {}
        }
    }
    let Some((line, text)) = ambiguous else { return Ok((DateOrder::MonthFirst, 0)) };
    let (first, second) = time::year_last_fields(&text).unwrap_or_default();
    let month = |m: u32| MONTHS.get(m.saturating_sub(1) as usize).copied().unwrap_or("?");
    let text = String::from_utf8_lossy(&text);
    Err(DataError::AmbiguousDates {
        path: path.to_path_buf(),
        line,
        column: source.parser.columns.names[source.parser.columns.time].clone(),
        message: format!(
            "{text:?} is {second} {} (MM/DD/YYYY) or {first} {} (DD/MM/YYYY), and no row of the file has a day above 12 to tell which: pass --date-format MM/DD/YYYY or --date-format DD/MM/YYYY",
            month(first),
            month(second)
        ),
    })
}

/// Month names, for messages.
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The UTF-8 byte order mark, which some tools write at the start of a file.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads up to the first object, whose keys name the columns, and keeps its values to
/// be the first row.
fn open_jsonl(path: &Path, reader: Box<dyn Read>, time_column: Option<&str>) -> Result<(Records, Columns), DataError> {
    let mut reader = BufReader::new(reader);
    let mut bytes = Vec::new();
    let mut line = 0;
    let entries = loop {
        if !read_line(path, &mut reader, &mut bytes)? {
            return Err(DataError::Empty { path: path.to_path_buf() });
        }
        line += 1;
        let text = if line == 1 { bytes.strip_prefix(UTF8_BOM).unwrap_or(&bytes) } else { &bytes[..] };
        let text = line_text(path, line, text)?;
        if !text.trim().is_empty() {
            break parse_object(path, text, line)?;
        }
    };
    let names: Vec<String> = entries.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
    let columns = Columns::from_header(names, path, line, time_column)?;
    let mut values = vec![String::new(); columns.names.len()];
    fill_values(&entries, &columns.names, &mut values);
    Ok((Records::Jsonl { reader, bytes, values, replay: true, line }, columns))
}

/// Reads one line (its `\n` included) into `bytes`; `false` at the end.
fn read_line(path: &Path, reader: &mut BufReader<Box<dyn Read>>, bytes: &mut Vec<u8>) -> Result<bool, DataError> {
    bytes.clear();
    let read =
        reader.read_until(b'\n', bytes).map_err(|source| DataError::Io { path: path.to_path_buf(), error: source })?;
    Ok(read > 0)
}

/// A line's text; a row error when it is not UTF-8.
fn line_text<'b>(path: &Path, line: u64, bytes: &'b [u8]) -> Result<&'b str, DataError> {
    std::str::from_utf8(bytes).map_err(|e| DataError::Row {
        path: path.to_path_buf(),
        line,
        column: "*".into(),
        message: format!("not UTF-8 text ({e})"),
    })
}

/// Reads the next non-blank line's object into `values`; `false` at the end.
fn next_object(
    path: &Path,
    reader: &mut BufReader<Box<dyn Read>>,
    bytes: &mut Vec<u8>,
    line: &mut u64,
    names: &[String],
    values: &mut [String],
) -> Result<bool, DataError> {
    loop {
        if !read_line(path, reader, bytes)? {
            return Ok(false);
        }
        *line += 1;
        let text = line_text(path, *line, bytes)?;
        if !text.trim().is_empty() {
            let entries = parse_object(path, text, *line)?;
            fill_values(&entries, names, values);
            return Ok(true);
        }
    }
}

fn parse_object(path: &Path, text: &str, line: u64) -> Result<Vec<(String, Option<String>)>, DataError> {
    jsonl::flat_object(text).map_err(|e| DataError::Row {
        path: path.to_path_buf(),
        line,
        column: e.key.unwrap_or_else(|| "*".into()),
        message: e.message,
    })
}

/// Puts each column's value in `values`, by column; absent keys and `null` leave an
/// empty value. Keys match columns ignoring case ([`jsonl::flat_object`] has refused
/// two keys that do); keys of no column are ignored.
fn fill_values(entries: &[(String, Option<String>)], names: &[String], values: &mut [String]) {
    for value in values.iter_mut() {
        value.clear();
    }
    for (key, value) in entries {
        let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(key)) else { continue };
        if let (Some(slot), Some(value)) = (values.get_mut(i), value) {
            slot.push_str(value);
        }
    }
}

fn csv_error(path: &Path, line: u64, error: csv::Error) -> DataError {
    if error.is_io_error() {
        if let csv::ErrorKind::Io(source) = error.into_kind() {
            return DataError::Io { path: path.to_path_buf(), error: source };
        }
        // invariant: is_io_error() means the kind is Io; unreachable, but not a panic.
        return DataError::Io { path: path.to_path_buf(), error: std::io::Error::other("csv I/O error") };
    }
    DataError::Row { path: path.to_path_buf(), line, column: "*".into(), message: error.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_interval_is_the_most_common_positive_gap() {
        let interval = |times: &[i64]| bar_interval(times.iter().map(|&t| TimestampNs::from_nanos(t)));
        // TC0: no bars, one bar: unknown.
        assert_eq!(interval(&[]), 0);
        assert_eq!(interval(&[5]), 0);
        // TC1: a weekend gap is rarer than the interval.
        assert_eq!(interval(&[0, 1, 2, 3, 10, 11]), 1);
        // TC2: repeated times (gap 0) do not count; a tie goes to the shorter gap.
        assert_eq!(interval(&[0, 0, 2, 4, 7, 10]), 2);
        // TC3: gaps that would overflow saturate instead of panicking.
        assert_eq!(interval(&[i64::MIN, i64::MAX]), i64::MAX);
    }
}
