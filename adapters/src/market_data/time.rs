//! Times in market data files: the general recogniser, and the fast per-file parsers.
//!
//! [`parse_time_in`] tries every form a file may use, chrono format strings one after
//! another. That is too slow to run on every row (it was 8% of a backtest), so it runs
//! once per file, on the first data row, where [`TimeLayout::detect`] uses it to pick the
//! file's layout. Every row is then parsed by that layout's byte parser: digits at fixed
//! positions, ranges checked, civil dates turned into days by arithmetic, every step
//! checked so that no input panics or overflows.
//!
//! The fast parsers never accept a time the general recogniser refuses, and they agree
//! with it on every time both accept (property-tested below). A first row that the
//! general recogniser reads but no fixed layout covers (unpadded fields, say) makes the
//! file use [`TimeLayout::General`]: the slow recogniser on every row, as before.
//!
//! Dates written day, month and year apart (`01/02/2020`, `2.1.2020`, `2020/01/02`) are
//! not ISO forms and are not read by the general recogniser: they have their own layout,
//! [`TimeLayout::Ordered`], whose order of day and month ([`DateOrder`]) is given by the
//! caller or told by the data (a first field above 12 is a day). Their parser is checked
//! against chrono's `%m/%d/%Y`-style formats the same way.
//!
//! A parser gives a [`Written`] time: an instant when the text says its offset (or is an
//! epoch number), else a civil time, which the file's zone ([`super::zone`]) places.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use ledger_core::time::{TimestampNs, NANOS_PER_SECOND};

/// Parses the time forms the module docs list, times without an offset taken as UTC.
/// Returns `None` for anything else, including times outside the `i64` nanosecond range
/// (about 1677..2262).
///
/// This is the general (slow) recogniser; files are read with the per-file layout it
/// picks on the first row.
pub fn parse_time(text: &str) -> Option<TimestampNs> {
    parse_time_in(text, 0)
}

/// As [`parse_time`], with times written without an offset taken to be `offset` seconds
/// east of UTC. Epoch numbers and times with an offset are absolute already.
///
/// Forms, tried in this order (surrounding whitespace ignored):
/// - all digits, other than 8 of them: Unix epoch seconds (up to 11 digits), milliseconds
///   (12-14), microseconds (15-17) or nanoseconds (18 or more);
/// - RFC 3339 (`2013-10-08T00:00:17.034Z`, `T` or a space between date and time, `Z` or
///   `+HH:MM`);
/// - `YYYY-MM-DD HH:MM:SS[.fraction]+HH:MM`;
/// - without an offset: `YYYY-MM-DD HH:MM:SS[.fraction]`, `YYYY-MM-DDTHH:MM:SS[.fraction]`,
///   `YYYY-MM-DD HH:MM`, `YYYYMMDD HHMMSSmmm`, `YYYY-MM-DD`, `YYYYMMDD`.
pub fn parse_time_in(text: &str, offset: i32) -> Option<TimestampNs> {
    match parse_written(text)? {
        Written::Instant(nanos) => Some(TimestampNs::from_nanos(nanos)),
        Written::Civil(nanos) => shift(nanos, offset).ok(),
    }
}

/// A time as a file writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// An instant, nanoseconds since the Unix epoch: the text said its offset, or was an
    /// epoch number.
    Instant(i64),
    /// A civil (wall-clock) time without an offset, as the nanoseconds from
    /// 1970-01-01 00:00:00 to it on the same clock; the file's zone places it.
    Civil(i64),
}

/// The general recogniser's reading of `text` ([`parse_time_in`] without the offset
/// applied); `None` when no form reads it or it is outside the `i64` nanosecond range.
pub(crate) fn parse_written(text: &str) -> Option<Written> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.len() != 8 {
        let n: i64 = text.parse().ok()?;
        return EpochUnit::from_digits(text.len()).nanos(n).map(Written::Instant);
    }
    let instant = |t: DateTime<Utc>| TimestampNs::from_datetime(t).map(|t| Written::Instant(t.nanos()));
    let civil = |t: NaiveDateTime| TimestampNs::from_datetime(t.and_utc()).map(|t| Written::Civil(t.nanos()));
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return instant(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%:z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return instant(t.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y%m%d %H%M%S%3f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return civil(t);
        }
    }
    for format in ["%Y-%m-%d", "%Y%m%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(text, format) {
            return civil(d.and_hms_opt(0, 0, 0)?);
        }
    }
    None
}

/// The unit of an epoch number, told by its digit count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpochUnit {
    /// Up to 11 digits (but not 8, which is `YYYYMMDD`).
    Seconds,
    /// 12 to 14 digits.
    Millis,
    /// 15 to 17 digits.
    Micros,
    /// 18 digits or more.
    Nanos,
}

impl EpochUnit {
    fn from_digits(count: usize) -> EpochUnit {
        match count {
            0..=11 => EpochUnit::Seconds,
            12..=14 => EpochUnit::Millis,
            15..=17 => EpochUnit::Micros,
            _ => EpochUnit::Nanos,
        }
    }

    /// `n` of this unit in nanoseconds, `None` on overflow.
    fn nanos(self, n: i64) -> Option<i64> {
        match self {
            EpochUnit::Seconds => n.checked_mul(NANOS_PER_SECOND),
            EpochUnit::Millis => n.checked_mul(1_000_000),
            EpochUnit::Micros => n.checked_mul(1_000),
            EpochUnit::Nanos => Some(n),
        }
    }
}

/// Which of a date's first two fields is the month, in dates written with the year
/// last (`01/02/2020`): the US order or the European one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateOrder {
    /// `MM/DD/YYYY`: `01/02/2020` is 2 January.
    MonthFirst,
    /// `DD/MM/YYYY`: `01/02/2020` is 1 February.
    DayFirst,
}

impl DateOrder {
    /// `MM/DD/YYYY` or `DD/MM/YYYY` (case ignored; `-` or `.` for `/` too), as
    /// `--date-format` takes it.
    pub fn from_pattern(text: &str) -> Option<DateOrder> {
        let pattern = text.trim().to_ascii_uppercase().replace(['-', '.'], "/");
        match pattern.as_str() {
            "MM/DD/YYYY" => Some(DateOrder::MonthFirst),
            "DD/MM/YYYY" => Some(DateOrder::DayFirst),
            _ => None,
        }
    }
}

impl fmt::Display for DateOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DateOrder::MonthFirst => "MM/DD/YYYY",
            DateOrder::DayFirst => "DD/MM/YYYY",
        })
    }
}

/// The order of a date's fields in [`TimeLayout::Ordered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldOrder {
    /// Day and month first (in the given order), then a 4-digit year.
    YearLast(DateOrder),
    /// A 4-digit year, then month, then day (`2020/01/02`, `2020.01.02`).
    YearFirst,
}

/// The time of day after a date in [`TimeLayout::Ordered`], after one space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    /// None: the date alone (midnight).
    None,
    /// `H:MM` or `HH:MM`.
    Minutes,
    /// `H:MM:SS` or `HH:MM:SS`, then an optional `.fraction` (the first 9 digits kept).
    Seconds,
}

/// The way one file writes its times, recognised once from the first data row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeLayout {
    /// Unix epoch integers in one unit (the digit count must keep telling that unit).
    Epoch(EpochUnit),
    /// `YYYY-MM-DD`, `sep`, `HH:MM:SS`, an optional `.fraction` (1 or more digits, the
    /// first 9 kept), then `Z` or `±HH:MM` when `zoned` and nothing when not.
    DateTime {
        /// The byte between date and time: `T`, or a space (or `t` when zoned).
        sep: u8,
        /// Whether each time carries its own offset (else the file's zone applies).
        zoned: bool,
    },
    /// `YYYY-MM-DD HH:MM`.
    Minutes,
    /// `YYYY-MM-DD`.
    Date,
    /// `YYYYMMDD`.
    CompactDate,
    /// `YYYYMMDD HHMMSSmmm` (HistData).
    CompactDateTime,
    /// A date of three fields apart, `sep` between them, day and month of 1 or 2 digits,
    /// the year of 4: `MM/DD/YYYY`, `DD.MM.YYYY`, `YYYY/MM/DD`, ...; then `clock`.
    Ordered {
        /// Where the year, month and day are.
        order: FieldOrder,
        /// `/`, `.`, or (with the year last) `-`.
        sep: u8,
        /// The time of day after the date.
        clock: Clock,
    },
    /// Anything else [`parse_time_in`] reads: the general recogniser on every row.
    General,
}

/// Why a time did not parse in its file's layout, or has no place in its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeError {
    /// The text is not in the layout at all.
    Shape,
    /// A field is out of its range (the field's name).
    Range(&'static str),
    /// The time is outside the `i64` nanosecond range (about 1677..2262).
    Overflow,
    /// The civil time does not exist in the file's time zone: the clocks jumped over it
    /// (a daylight saving gap), from the offset `before` to `after` (seconds east of UTC).
    Gap {
        /// The offset before the jump.
        before: i32,
        /// The offset after it.
        after: i32,
    },
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeError::Shape => f.write_str("not in the layout"),
            TimeError::Range(field) => write!(f, "{field} out of range"),
            TimeError::Overflow => f.write_str("outside the years 1677..2262 that i64 nanoseconds hold"),
            TimeError::Gap { before, after } => write!(
                f,
                "does not exist there: the clocks jumped from UTC{} to UTC{} over it (a daylight saving gap)",
                offset_text(*before),
                offset_text(*after)
            ),
        }
    }
}

/// `+HH:MM` (or `+HH:MM:SS` when the seconds are not 0) of an offset in seconds.
pub(crate) fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    match s % 60 {
        0 => format!("{sign}{:02}:{:02}", s / 3600, s / 60 % 60),
        rest => format!("{sign}{:02}:{:02}:{rest:02}", s / 3600, s / 60 % 60),
    }
}

impl fmt::Display for TimeLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeLayout::Epoch(EpochUnit::Seconds) => f.write_str("epoch seconds: up to 11 digits, not 8"),
            TimeLayout::Epoch(EpochUnit::Millis) => f.write_str("epoch milliseconds: 12 to 14 digits"),
            TimeLayout::Epoch(EpochUnit::Micros) => f.write_str("epoch microseconds: 15 to 17 digits"),
            TimeLayout::Epoch(EpochUnit::Nanos) => f.write_str("epoch nanoseconds: 18 or 19 digits"),
            TimeLayout::DateTime { sep, zoned } => {
                let sep = if *sep == b' ' {
                    " "
                } else if *sep == b't' {
                    "t"
                } else {
                    "T"
                };
                let zone = if *zoned { "(Z|+HH:MM)" } else { "" };
                write!(f, "YYYY-MM-DD{sep}HH:MM:SS[.fraction]{zone}")
            }
            TimeLayout::Minutes => f.write_str("YYYY-MM-DD HH:MM"),
            TimeLayout::Date => f.write_str("YYYY-MM-DD"),
            TimeLayout::CompactDate => f.write_str("YYYYMMDD"),
            TimeLayout::CompactDateTime => f.write_str("YYYYMMDD HHMMSSmmm"),
            TimeLayout::Ordered { order, sep, clock } => {
                let sep = char::from(*sep);
                match order {
                    FieldOrder::YearLast(DateOrder::MonthFirst) => write!(f, "MM{sep}DD{sep}YYYY")?,
                    FieldOrder::YearLast(DateOrder::DayFirst) => write!(f, "DD{sep}MM{sep}YYYY")?,
                    FieldOrder::YearFirst => write!(f, "YYYY{sep}MM{sep}DD")?,
                }
                match clock {
                    Clock::None => Ok(()),
                    Clock::Minutes => f.write_str(" HH:MM"),
                    Clock::Seconds => f.write_str(" HH:MM:SS[.fraction]"),
                }
            }
            TimeLayout::General => f.write_str("one of the forms parse_time reads"),
        }
    }
}

/// The two leading fields of a date written with the year last (`01/02/2020 ...`,
/// `13.01.2020`): `Some((first, second))` when `text` has that shape, whichever field is
/// the month. Used to tell a file's [`DateOrder`].
pub(crate) fn year_last_fields(text: &[u8]) -> Option<(u32, u32)> {
    let shape = OrderedShape::of(text.trim_ascii())?;
    (!shape.year_first).then_some((shape.first, shape.second))
}

/// Whether `text` is a date written day, month and year apart (in any order), with or
/// without a time of day.
pub(crate) fn looks_ordered(text: &[u8]) -> bool {
    OrderedShape::of(text.trim_ascii()).is_some()
}

/// What a date written day, month and year apart looks like, before its order is known.
struct OrderedShape {
    year_first: bool,
    sep: u8,
    clock: Clock,
    /// With the year last, the first two fields (day and month in some order).
    first: u32,
    second: u32,
}

impl OrderedShape {
    /// The shape of `b` (trimmed), `None` unless it is three digit groups split by one
    /// separator (`/`, `.`, or `-` with the year last), one of them a 4-digit year at
    /// either end, then nothing, or a space and `H:MM` or `H:MM:SS[.f]`.
    fn of(b: &[u8]) -> Option<OrderedShape> {
        let lead = b.iter().take_while(|d| d.is_ascii_digit()).count();
        let sep = *b.get(lead)?;
        let year_first = lead == 4;
        let allowed: &[u8] = if year_first { b"/." } else { b"/.-" };
        if !(year_first || (1..=2).contains(&lead)) || !allowed.contains(&sep) {
            return None;
        }
        let date_end = b.iter().position(|&c| c == b' ').unwrap_or(b.len());
        let clock = match &b[date_end..] {
            [] => Clock::None,
            [b' ', rest @ ..] => match rest.iter().filter(|&&c| c == b':').count() {
                1 => Clock::Minutes,
                2 => Clock::Seconds,
                _ => return None,
            },
            _ => return None,
        };
        let mut fields = b[..date_end].split(|&c| c == sep);
        let (one, two, three) = (fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() {
            return None;
        }
        let widths_ok = if year_first {
            one.len() == 4 && (1..=2).contains(&two.len()) && (1..=2).contains(&three.len())
        } else {
            (1..=2).contains(&one.len()) && (1..=2).contains(&two.len()) && three.len() == 4
        };
        if !widths_ok {
            return None;
        }
        let number = |d: &[u8]| num(d, 0, d.len()).ok();
        let (first, second) = if year_first { (number(two)?, number(three)?) } else { (number(one)?, number(two)?) };
        number(if year_first { one } else { three })?;
        Some(OrderedShape { year_first, sep, clock, first, second })
    }
}

impl TimeLayout {
    /// The layout of `text` (a first data row's time), or `None` when no layout reads
    /// it.
    ///
    /// For the ISO and epoch forms, the layout chosen is the first fixed one whose parser
    /// gives exactly what the general recogniser gives; [`TimeLayout::General`] when none
    /// does. A date written with the year last takes `order` when given; else a first
    /// field above 12 makes it day first, a second above 12 month first, and equal
    /// fields (`05/05/2020`, which read the same either way) month first; a date that
    /// reads as two different days is `None` (the caller tells the order first, see
    /// [`year_last_fields`]).
    pub(crate) fn detect(text: &[u8], order: Option<DateOrder>) -> Option<TimeLayout> {
        let Some(expected) = std::str::from_utf8(text).ok().and_then(parse_written) else {
            return TimeLayout::detect_ordered(text.trim_ascii(), order);
        };
        let text = text.trim_ascii();
        let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
        let sep = text.get(10).copied().unwrap_or(b'T');
        let candidates = [
            TimeLayout::Epoch(EpochUnit::from_digits(digits)),
            TimeLayout::DateTime { sep, zoned: true },
            TimeLayout::DateTime { sep, zoned: false },
            TimeLayout::Minutes,
            TimeLayout::Date,
            TimeLayout::CompactDate,
            TimeLayout::CompactDateTime,
        ];
        let fits = |layout: &TimeLayout| layout.parse_written(text) == Ok(expected);
        Some(candidates.into_iter().find(fits).unwrap_or(TimeLayout::General))
    }

    /// [`TimeLayout::detect`] for dates written day, month and year apart.
    fn detect_ordered(text: &[u8], order: Option<DateOrder>) -> Option<TimeLayout> {
        let shape = OrderedShape::of(text)?;
        let order = if shape.year_first {
            FieldOrder::YearFirst
        } else {
            let told = match (shape.first > 12, shape.second > 12) {
                (true, false) => Some(DateOrder::DayFirst),
                (false, true) => Some(DateOrder::MonthFirst),
                (false, false) if shape.first == shape.second => Some(DateOrder::MonthFirst),
                _ => None,
            };
            FieldOrder::YearLast(order.or(told)?)
        };
        let layout = TimeLayout::Ordered { order, sep: shape.sep, clock: shape.clock };
        layout.parse_written(text).is_ok().then_some(layout)
    }

    /// Parses one row's time in this layout; times without an offset are `offset`
    /// seconds east of UTC. Surrounding ASCII whitespace is ignored.
    ///
    /// # Errors
    /// [`TimeError`] saying whether the shape, a field's range, or the `i64` range failed.
    #[cfg(test)]
    pub(crate) fn parse(self, text: &[u8], offset: i32) -> Result<TimestampNs, TimeError> {
        match self.parse_written(text)? {
            Written::Instant(nanos) => Ok(TimestampNs::from_nanos(nanos)),
            Written::Civil(nanos) => shift(nanos, offset),
        }
    }

    /// Parses one row's time in this layout, as written: an instant, or a civil time
    /// for the file's zone to place. Surrounding ASCII whitespace is ignored.
    ///
    /// # Errors
    /// [`TimeError`] saying whether the shape, a field's range, or the `i64` range failed.
    #[inline]
    pub(crate) fn parse_written(self, text: &[u8]) -> Result<Written, TimeError> {
        let b = text.trim_ascii();
        match self {
            TimeLayout::Epoch(unit) => parse_epoch(b, unit).map(Written::Instant),
            TimeLayout::DateTime { sep, zoned } => {
                if b.len() < 19 || b[10] != sep || b[13] != b':' || b[16] != b':' || (sep == b't' && !zoned) {
                    return Err(TimeError::Shape);
                }
                let (year, month, day) = date_dashed(b)?;
                let (hour, minute, second) = (num(b, 11, 2)?, num(b, 14, 2)?, num(b, 17, 2)?);
                let (nanos, rest) = match b.get(19) {
                    Some(b'.') => fraction(&b[20..])?,
                    _ => (0, &b[19..]),
                };
                let civil = Civil { year, month, day, hour, minute, second, nanos };
                if zoned {
                    civil.to_nanos(zone(rest)?).map(Written::Instant)
                } else if rest.is_empty() {
                    civil.to_nanos(0).map(Written::Civil)
                } else {
                    Err(TimeError::Shape)
                }
            }
            TimeLayout::Minutes => {
                if b.len() != 16 || b[10] != b' ' || b[13] != b':' {
                    return Err(TimeError::Shape);
                }
                let (year, month, day) = date_dashed(b)?;
                let (hour, minute) = (num(b, 11, 2)?, num(b, 14, 2)?);
                let civil = Civil { year, month, day, hour, minute, second: 0, nanos: 0 };
                civil.to_nanos(0).map(Written::Civil)
            }
            TimeLayout::Date => {
                if b.len() != 10 {
                    return Err(TimeError::Shape);
                }
                let (year, month, day) = date_dashed(b)?;
                Civil::midnight(year, month, day).to_nanos(0).map(Written::Civil)
            }
            TimeLayout::CompactDate => {
                if b.len() != 8 {
                    return Err(TimeError::Shape);
                }
                let (year, month, day) = (num(b, 0, 4)?, num(b, 4, 2)?, num(b, 6, 2)?);
                Civil::midnight(year, month, day).to_nanos(0).map(Written::Civil)
            }
            TimeLayout::CompactDateTime => {
                if b.len() != 18 || b[8] != b' ' {
                    return Err(TimeError::Shape);
                }
                let (year, month, day) = (num(b, 0, 4)?, num(b, 4, 2)?, num(b, 6, 2)?);
                let (hour, minute, second) = (num(b, 9, 2)?, num(b, 11, 2)?, num(b, 13, 2)?);
                let nanos = num(b, 15, 3)? * 1_000_000;
                let civil = Civil { year, month, day, hour, minute, second, nanos };
                civil.to_nanos(0).map(Written::Civil)
            }
            TimeLayout::Ordered { order, sep, clock } => parse_ordered(b, order, sep, clock).map(Written::Civil),
            TimeLayout::General => std::str::from_utf8(b).ok().and_then(parse_written).ok_or(TimeError::Shape),
        }
    }
}

/// A date written day, month and year apart, then its clock: civil nanoseconds.
fn parse_ordered(b: &[u8], order: FieldOrder, sep: u8, clock: Clock) -> Result<i64, TimeError> {
    let mut at = 0;
    let (year, month, day) = match order {
        FieldOrder::YearFirst => {
            let year = digits(b, &mut at, 4, 4)?;
            expect(b, &mut at, sep)?;
            let month = digits(b, &mut at, 1, 2)?;
            expect(b, &mut at, sep)?;
            (year, month, digits(b, &mut at, 1, 2)?)
        }
        FieldOrder::YearLast(date_order) => {
            let first = digits(b, &mut at, 1, 2)?;
            expect(b, &mut at, sep)?;
            let second = digits(b, &mut at, 1, 2)?;
            expect(b, &mut at, sep)?;
            let year = digits(b, &mut at, 4, 4)?;
            match date_order {
                DateOrder::MonthFirst => (year, first, second),
                DateOrder::DayFirst => (year, second, first),
            }
        }
    };
    let mut civil = Civil::midnight(year, month, day);
    if clock != Clock::None {
        expect(b, &mut at, b' ')?;
        civil.hour = digits(b, &mut at, 1, 2)?;
        expect(b, &mut at, b':')?;
        civil.minute = digits(b, &mut at, 2, 2)?;
        if clock == Clock::Seconds {
            expect(b, &mut at, b':')?;
            civil.second = digits(b, &mut at, 2, 2)?;
            if b.get(at) == Some(&b'.') {
                let (nanos, rest) = fraction(&b[at + 1..])?;
                civil.nanos = nanos;
                at = b.len() - rest.len();
            }
        }
    }
    if at != b.len() {
        return Err(TimeError::Shape);
    }
    civil.to_nanos(0)
}

/// `min..=max` ASCII digits at `*at` (no more follow), as a number; moves past them.
#[inline]
fn digits(b: &[u8], at: &mut usize, min: usize, max: usize) -> Result<u32, TimeError> {
    let rest = b.get(*at..).unwrap_or_default();
    let count = rest.iter().take_while(|d| d.is_ascii_digit()).count();
    if count < min || count > max {
        return Err(TimeError::Shape);
    }
    let n = num(rest, 0, count)?;
    *at += count;
    Ok(n)
}

/// The byte `want` at `*at`; moves past it.
#[inline]
fn expect(b: &[u8], at: &mut usize, want: u8) -> Result<(), TimeError> {
    if b.get(*at) != Some(&want) {
        return Err(TimeError::Shape);
    }
    *at += 1;
    Ok(())
}

/// A date and time of day as written, before any range check.
struct Civil {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    /// 0..=60: a leap second counts as the first second of the next minute, as chrono does.
    second: u32,
    nanos: u32,
}

impl Civil {
    fn midnight(year: u32, month: u32, day: u32) -> Civil {
        Civil { year, month, day, hour: 0, minute: 0, second: 0, nanos: 0 }
    }

    /// Nanoseconds since the epoch of this civil time at `zone` seconds east of UTC.
    fn to_nanos(&self, zone: i64) -> Result<i64, TimeError> {
        if !(1..=12).contains(&self.month) {
            return Err(TimeError::Range("month"));
        }
        if self.day < 1 || self.day > days_in_month(self.year, self.month) {
            return Err(TimeError::Range("day"));
        }
        if self.hour > 23 {
            return Err(TimeError::Range("hour"));
        }
        if self.minute > 59 {
            return Err(TimeError::Range("minute"));
        }
        if self.second > 60 {
            return Err(TimeError::Range("second"));
        }
        // Four-digit years keep every term far inside i64; only the nanosecond product
        // can overflow.
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        let seconds = days * 86_400 + i64::from(self.hour * 3_600 + self.minute * 60 + self.second) - zone;
        let mut nanos = i64::from(self.nanos);
        let mut seconds = seconds;
        // As chrono: (s + 1) * 1e9 + (ns - 1e9) reaches i64::MIN's side without a
        // temporary underflow.
        if seconds < 0 {
            seconds += 1;
            nanos -= NANOS_PER_SECOND;
        }
        seconds.checked_mul(NANOS_PER_SECOND).and_then(|s| s.checked_add(nanos)).ok_or(TimeError::Overflow)
    }
}

/// Days from 1970-01-01 to the proleptic Gregorian date `year-month-day`.
///
/// Howard Hinnant's `days_from_civil` (<http://howardhinnant.github.io/date_algorithms.html#days_from_civil>):
/// the year is shifted to start in March, so the leap day falls at the end of it, and
/// counted in 400-year eras of 146,097 days. `month` must be 1..=12 and `day` valid for
/// it; `year` here is 0..=9999, where nothing overflows.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400; // [0, 399]
    let month_from_march = i64::from(if month > 2 { month - 3 } else { month + 9 }); // [0, 11]
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year; // [0, 146096]
    era * 146_097 + day_of_era - 719_468
}

// `u32::is_multiple_of` is Rust 1.87; the workspace's rust-version is 1.85.
#[allow(clippy::manual_is_multiple_of)]
fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// The `len` ASCII digits at `start` as a number.
#[inline]
fn num(b: &[u8], start: usize, len: usize) -> Result<u32, TimeError> {
    let digits = b.get(start..start + len).ok_or(TimeError::Shape)?;
    digits.iter().try_fold(0u32, |n, &d| {
        if d.is_ascii_digit() {
            Ok(n * 10 + u32::from(d - b'0'))
        } else {
            Err(TimeError::Shape)
        }
    })
}

/// `YYYY-MM-DD` at the start of `b`.
#[inline]
fn date_dashed(b: &[u8]) -> Result<(u32, u32, u32), TimeError> {
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return Err(TimeError::Shape);
    }
    Ok((num(b, 0, 4)?, num(b, 5, 2)?, num(b, 8, 2)?))
}

/// A fraction's digits (after the dot): nanoseconds from the first 9, later digits
/// skipped, as chrono does; returns what follows the digits.
fn fraction(b: &[u8]) -> Result<(u32, &[u8]), TimeError> {
    let count = b.iter().take_while(|d| d.is_ascii_digit()).count();
    if count == 0 {
        return Err(TimeError::Shape);
    }
    let kept = count.min(9);
    let mut nanos = num(b, 0, kept)?;
    for _ in kept..9 {
        nanos *= 10;
    }
    Ok((nanos, &b[count..]))
}

/// `Z`, `z` or `±HH:MM` (up to ±23:59) and nothing after: seconds east of UTC.
fn zone(b: &[u8]) -> Result<i64, TimeError> {
    match b {
        [b'Z' | b'z'] => Ok(0),
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (num(b, 1, 2)?, num(b, 4, 2)?);
            if hours > 23 || minutes > 59 {
                return Err(TimeError::Range("offset"));
            }
            let seconds = i64::from(hours * 3_600 + minutes * 60);
            Ok(if *sign == b'-' { -seconds } else { seconds })
        }
        _ => Err(TimeError::Shape),
    }
}

/// `nanos` written at `offset` seconds east of UTC, in UTC.
pub(crate) fn shift(nanos: i64, offset: i32) -> Result<TimestampNs, TimeError> {
    nanos.checked_sub(i64::from(offset) * NANOS_PER_SECOND).map(TimestampNs::from_nanos).ok_or(TimeError::Overflow)
}

fn parse_epoch(b: &[u8], unit: EpochUnit) -> Result<i64, TimeError> {
    if b.is_empty() || b.len() == 8 || EpochUnit::from_digits(b.len()) != unit {
        return Err(TimeError::Shape);
    }
    let mut n: i64 = 0;
    for &d in b {
        if !d.is_ascii_digit() {
            return Err(TimeError::Shape);
        }
        n = n.checked_mul(10).and_then(|n| n.checked_add(i64::from(d - b'0'))).ok_or(TimeError::Overflow)?;
    }
    unit.nanos(n).ok_or(TimeError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    #[test]
    fn each_form_is_recognised_as_its_fixed_layout() {
        let cases: [(&str, TimeLayout); 13] = [
            // TC0..3: epoch numbers by digit count.
            ("1381190400", TimeLayout::Epoch(EpochUnit::Seconds)),
            ("1381190400000", TimeLayout::Epoch(EpochUnit::Millis)),
            ("1381190400000000", TimeLayout::Epoch(EpochUnit::Micros)),
            ("1381190400000000000", TimeLayout::Epoch(EpochUnit::Nanos)),
            // TC4..7: date and time, with and without an offset.
            ("2013-10-08T00:00:17.034Z", TimeLayout::DateTime { sep: b'T', zoned: true }),
            ("2013-10-08 01:00:00+01:00", TimeLayout::DateTime { sep: b' ', zoned: true }),
            ("2013-10-08 00:00:17.034000", TimeLayout::DateTime { sep: b' ', zoned: false }),
            ("2013-10-08T00:00:17", TimeLayout::DateTime { sep: b'T', zoned: false }),
            // TC8..11: minutes, dates, HistData.
            ("2013-10-08 00:01", TimeLayout::Minutes),
            ("2013-10-08", TimeLayout::Date),
            ("20131008", TimeLayout::CompactDate),
            ("20131008 000017034", TimeLayout::CompactDateTime),
            // TC12: unpadded fields: read, but only by the general recogniser.
            ("2013-1-8 0:00:17", TimeLayout::General),
        ];
        for (text, layout) in cases {
            assert_eq!(TimeLayout::detect(text.as_bytes(), None), Some(layout), "{text}");
            assert_eq!(layout.parse(text.as_bytes(), 0).ok(), parse_time(text), "{text}");
        }
        assert_eq!(TimeLayout::detect(b"yesterday", None), None);
    }

    #[test]
    fn out_of_range_fields_and_years_are_errors_not_panics() {
        let date_time = TimeLayout::DateTime { sep: b' ', zoned: false };
        let cases: [(&[u8], TimeLayout, TimeError); 12] = [
            // TC0..5: each field past its range.
            (b"2013-13-08 00:00:00", date_time, TimeError::Range("month")),
            (b"2013-00-08 00:00:00", date_time, TimeError::Range("month")),
            (b"2013-02-29 00:00:00", date_time, TimeError::Range("day")),
            (b"2013-10-08 24:00:00", date_time, TimeError::Range("hour")),
            (b"2013-10-08 00:60:00", date_time, TimeError::Range("minute")),
            (b"2013-10-08 00:00:61", date_time, TimeError::Range("second")),
            // TC6..7: years the i64 nanoseconds do not hold.
            (b"9999-12-31 23:59:59", date_time, TimeError::Overflow),
            (b"0000-01-01", TimeLayout::Date, TimeError::Overflow),
            // TC8..9: epoch numbers too large, or of another unit than the file's.
            (b"99999999999", TimeLayout::Epoch(EpochUnit::Seconds), TimeError::Overflow),
            (b"1381190400000", TimeLayout::Epoch(EpochUnit::Seconds), TimeError::Shape),
            // TC10..11: an offset past 23:59, a missing zone.
            (b"2013-10-08T00:00:00+24:00", TimeLayout::DateTime { sep: b'T', zoned: true }, TimeError::Range("offset")),
            (b"2013-10-08T00:00:00", TimeLayout::DateTime { sep: b'T', zoned: true }, TimeError::Shape),
        ];
        for (text, layout, error) in cases {
            assert_eq!(layout.parse(text, 0), Err(error), "{}", String::from_utf8_lossy(text));
        }
        assert_eq!(TimeLayout::Epoch(EpochUnit::Nanos).parse(b"99999999999999999999", 0), Err(TimeError::Overflow));
        assert_eq!(parse_time_in("2262-04-11 23:47:16", -18_000), None);
        assert_eq!(parse_time("2000-02-29"), TimeLayout::Date.parse(b"2000-02-29", 0).ok());
    }

    #[test]
    fn leap_seconds_and_the_range_edges_agree_with_chrono() {
        for text in [
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5Z",
            "1677-09-21T00:12:43.145224192Z",
            "1677-09-21T00:12:43.145224191Z",
            "2262-04-11T23:47:16.854775807Z",
            "2262-04-11T23:47:16.854775808Z",
        ] {
            let layout = TimeLayout::DateTime { sep: b'T', zoned: true };
            assert_eq!(layout.parse(text.as_bytes(), 0).ok(), parse_time(text), "{text}");
        }
    }

    #[test]
    fn days_from_civil_matches_chrono() {
        for (year, month, day) in [(1970, 1, 1), (1969, 12, 31), (2000, 2, 29), (1677, 9, 21), (2262, 4, 11), (0, 3, 1)]
        {
            let expected = NaiveDate::from_ymd_opt(year as i32, month, day)
                .unwrap()
                .signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
                .num_days();
            assert_eq!(days_from_civil(year, month, day), expected, "{year}-{month}-{day}");
        }
    }

    /// A valid civil time in the i64 nanosecond range, with a fraction of 0..=12 digits.
    fn civil() -> impl Strategy<Value = (u32, u32, u32, u32, u32, u32, String)> {
        (1678u32..=2261, 1u32..=12, 1u32..=31, 0u32..24, 0u32..60, 0u32..60, "[0-9]{0,12}")
            .prop_map(|(y, mo, d, h, mi, s, f)| (y, mo, d.min(days_in_month(y, mo)), h, mi, s, f))
    }

    /// Every fixed layout.
    const FIXED: [TimeLayout; 13] = [
        TimeLayout::Epoch(EpochUnit::Seconds),
        TimeLayout::Epoch(EpochUnit::Millis),
        TimeLayout::Epoch(EpochUnit::Micros),
        TimeLayout::Epoch(EpochUnit::Nanos),
        TimeLayout::DateTime { sep: b'T', zoned: true },
        TimeLayout::DateTime { sep: b't', zoned: true },
        TimeLayout::DateTime { sep: b' ', zoned: true },
        TimeLayout::DateTime { sep: b'T', zoned: false },
        TimeLayout::DateTime { sep: b' ', zoned: false },
        TimeLayout::Minutes,
        TimeLayout::Date,
        TimeLayout::CompactDate,
        TimeLayout::CompactDateTime,
    ];

    /// A zone suffix: `Z` or `±HH:MM`.
    fn zone() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::from("Z")),
            (0u32..24, 0u32..60, any::<bool>())
                .prop_map(|(h, m, neg)| format!("{}{h:02}:{m:02}", if neg { '-' } else { '+' })),
        ]
    }

    /// One valid time written in each date-based fixed layout, with that layout.
    fn forms(
        (y, mo, d, h, mi, s, f): (u32, u32, u32, u32, u32, u32, String),
        zone: &str,
        sep: char,
        millis: u32,
    ) -> [(String, TimeLayout); 6] {
        let date = format!("{y:04}-{mo:02}-{d:02}");
        let time = format!("{h:02}:{mi:02}:{s:02}");
        let frac = if f.is_empty() { String::new() } else { format!(".{f}") };
        [
            (format!("{date}{sep}{time}{frac}{zone}"), TimeLayout::DateTime { sep: sep as u8, zoned: true }),
            (format!("{date}{sep}{time}{frac}"), TimeLayout::DateTime { sep: sep as u8, zoned: false }),
            (format!("{date} {h:02}:{mi:02}"), TimeLayout::Minutes),
            (date.clone(), TimeLayout::Date),
            (format!("{y:04}{mo:02}{d:02}"), TimeLayout::CompactDate),
            (format!("{y:04}{mo:02}{d:02} {h:02}{mi:02}{s:02}{millis:03}"), TimeLayout::CompactDateTime),
        ]
    }

    /// An epoch number of 1 to 19 digits, each digit count equally likely.
    fn epoch_digits() -> impl Strategy<Value = String> {
        (1u32..=19).prop_flat_map(|digits| {
            let low = if digits == 1 { 0 } else { 10i64.pow(digits - 1) };
            let high = if digits == 19 { i64::MAX } else { 10i64.pow(digits) - 1 };
            (low..=high).prop_map(|n| n.to_string())
        })
    }

    proptest! {
        #[test]
        fn fast_parsers_agree_with_chrono(
            civil in civil(),
            zone in zone(),
            offset in -50_400i32..=50_400,
            sep in prop_oneof![Just('T'), Just(' ')],
            millis in 0u32..1000,
        ) {
            for (text, layout) in forms(civil, &zone, sep, millis) {
                let slow = parse_time_in(&text, offset);
                prop_assert!(slow.is_some(), "{text}");
                prop_assert_eq!(TimeLayout::detect(text.as_bytes(), None), Some(layout), "{}", text);
                prop_assert_eq!(layout.parse(text.as_bytes(), offset).ok(), slow, "{}", text);
            }
        }

        #[test]
        fn fast_epoch_agrees_with_chrono(text in epoch_digits(), offset in -50_400i32..=50_400) {
            prop_assume!(text.len() != 8);
            let layout = TimeLayout::Epoch(EpochUnit::from_digits(text.len()));
            let slow = parse_time_in(&text, offset);
            prop_assert_eq!(layout.parse(text.as_bytes(), offset).ok(), slow);
            if slow.is_some() {
                prop_assert_eq!(TimeLayout::detect(text.as_bytes(), None), Some(layout));
            }
        }

        /// Valid times with one byte changed: no panic, and a fixed layout never accepts
        /// what chrono refuses, nor reads it differently.
        #[test]
        fn fast_parsers_never_disagree_on_near_misses(
            civil in civil(),
            zone in zone(),
            sep in prop_oneof![Just('T'), Just(' ')],
            which in 0usize..6,
            at in 0usize..40,
            byte in prop::sample::select(b"0123456789 :.-+TtZz/".to_vec()),
            offset in -50_400i32..=50_400,
        ) {
            let mut text = forms(civil, &zone, sep, 7)[which].0.clone().into_bytes();
            let at = at % text.len();
            text[at] = byte;
            let slow = std::str::from_utf8(&text).ok().and_then(|t| parse_time_in(t, offset));
            for layout in FIXED {
                if let Ok(fast) = layout.parse(&text, offset) {
                    prop_assert_eq!(Some(fast), slow, "{} as {}", String::from_utf8_lossy(&text), layout);
                }
            }
        }

        /// Dates written day, month and year apart, padded or not, with each clock:
        /// detected as their layout and read as chrono's `%m/%d/%Y %H:%M:%S%.f` reads
        /// them.
        #[test]
        fn ordered_dates_agree_with_chrono(
            (y, mo, d, h, mi, s, f) in civil(),
            sep in prop::sample::select(b"/.-".to_vec()),
            pad in any::<bool>(),
            clock in 0usize..3,
            day_first in any::<bool>(),
            year_first in any::<bool>(),
        ) {
            let sep = char::from(sep);
            let year_first = year_first && sep != '-';
            let two = |n: u32| if pad { format!("{n:02}") } else { n.to_string() };
            let (date, format, order) = if year_first {
                (format!("{y:04}{sep}{}{sep}{}", two(mo), two(d)), format!("%Y{sep}%m{sep}%d"), FieldOrder::YearFirst)
            } else if day_first {
                (format!("{}{sep}{}{sep}{y:04}", two(d), two(mo)), format!("%d{sep}%m{sep}%Y"), FieldOrder::YearLast(DateOrder::DayFirst))
            } else {
                (format!("{}{sep}{}{sep}{y:04}", two(mo), two(d)), format!("%m{sep}%d{sep}%Y"), FieldOrder::YearLast(DateOrder::MonthFirst))
            };
            let frac = if f.is_empty() { String::new() } else { format!(".{f}") };
            let (text, format, clock) = match clock {
                0 => (date, format, Clock::None),
                1 => (format!("{date} {}:{mi:02}", two(h)), format!("{format} %H:%M"), Clock::Minutes),
                _ => (format!("{date} {}:{mi:02}:{s:02}{frac}", two(h)), format!("{format} %H:%M:%S%.f"), Clock::Seconds),
            };
            let chrono = if clock == Clock::None {
                NaiveDate::parse_from_str(&text, &format).ok().and_then(|d| d.and_hms_opt(0, 0, 0))
            } else {
                NaiveDateTime::parse_from_str(&text, &format).ok()
            };
            let expected = chrono.and_then(|t| TimestampNs::from_datetime(t.and_utc())).map(|t| Written::Civil(t.nanos()));
            prop_assert!(expected.is_some(), "{}", text);
            let layout = TimeLayout::Ordered { order, sep: sep as u8, clock };
            prop_assert_eq!(layout.parse_written(text.as_bytes()).ok(), expected, "{}", text);
            let given = match order { FieldOrder::YearLast(order) => Some(order), FieldOrder::YearFirst => None };
            prop_assert_eq!(TimeLayout::detect(text.as_bytes(), given), Some(layout), "{}", text);
        }

        /// Near misses of such dates: no panic, and never a time chrono reads otherwise.
        #[test]
        fn ordered_dates_never_disagree_on_near_misses(
            text in "[0-9]{1,4}[/.-][0-9]{1,3}[/.-][0-9]{1,5}( [0-9]{1,3}:[0-9]{1,3}(:[0-9]{1,3}(\\.[0-9]{0,3})?)?)?",
        ) {
            for (order, format) in [
                (FieldOrder::YearLast(DateOrder::MonthFirst), "%m{s}%d{s}%Y"),
                (FieldOrder::YearLast(DateOrder::DayFirst), "%d{s}%m{s}%Y"),
                (FieldOrder::YearFirst, "%Y{s}%m{s}%d"),
            ] {
                for sep in [b'/', b'.', b'-'] {
                    for clock in [Clock::None, Clock::Minutes, Clock::Seconds] {
                        let layout = TimeLayout::Ordered { order, sep, clock };
                        let Ok(fast) = layout.parse_written(text.as_bytes()) else { continue };
                        let date = format.replace("{s}", &char::from(sep).to_string());
                        let slow = match clock {
                            Clock::None => NaiveDate::parse_from_str(&text, &date).ok().and_then(|d| d.and_hms_opt(0, 0, 0)),
                            Clock::Minutes => NaiveDateTime::parse_from_str(&text, &format!("{date} %H:%M")).ok(),
                            Clock::Seconds => NaiveDateTime::parse_from_str(&text, &format!("{date} %H:%M:%S%.f")).ok(),
                        };
                        let slow = slow.and_then(|t| TimestampNs::from_datetime(t.and_utc())).map(|t| Written::Civil(t.nanos()));
                        prop_assert_eq!(Some(fast), slow, "{} as {}", text, layout);
                    }
                }
            }
        }

        /// Any text: no panic, and no disagreement.
        #[test]
        fn fast_parsers_never_disagree_on_any_text(text in "[0-9 :.TtZz+-]{0,40}", offset in -50_400i32..=50_400) {
            let slow = parse_time_in(&text, offset);
            for layout in FIXED {
                if let Ok(fast) = layout.parse(text.as_bytes(), offset) {
                    prop_assert_eq!(Some(fast), slow, "{} as {}", text, layout);
                }
            }
        }
    }
}
