//! Time: UTC nanoseconds since the Unix epoch, and the [`Clock`] that hands it to the core.
//!
//! Storage keeps `i64` nanoseconds (fixed width, exact); JSON shows RFC 3339 with
//! microseconds, the form people and other tools read.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time: nanoseconds since 1970-01-01T00:00:00Z (UTC), signed.
///
/// Range: about 1677-09-21 to 2262-04-11, the range of `i64` nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TimestampNs(i64);

/// Nanoseconds in one second.
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
/// Nanoseconds in one UTC day (86,400 s; UTC days here ignore leap seconds, as Unix time does).
pub const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SECOND;

impl TimestampNs {
    /// Wraps nanoseconds since the Unix epoch (UTC).
    pub const fn from_nanos(nanos: i64) -> Self {
        TimestampNs(nanos)
    }

    /// Nanoseconds since the Unix epoch (UTC).
    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// Converts a chrono UTC time, or `None` outside the `i64` nanosecond range.
    pub fn from_datetime(time: DateTime<Utc>) -> Option<Self> {
        time.timestamp_nanos_opt().map(TimestampNs)
    }

    /// This instant as a chrono UTC time.
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.0)
    }

    /// RFC 3339 in UTC with microseconds, e.g. `2013-10-08T13:30:00.000000Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime().to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    /// The UTC day this instant falls in, as whole days since the epoch (floor).
    pub const fn utc_day(self) -> i64 {
        self.0.div_euclid(NANOS_PER_DAY)
    }
}

impl fmt::Display for TimestampNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for TimestampNs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_rfc3339())
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for TimestampNs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            let time = DateTime::parse_from_rfc3339(&text).map_err(serde::de::Error::custom)?;
            TimestampNs::from_datetime(time.with_timezone(&Utc))
                .ok_or_else(|| serde::de::Error::custom("timestamp outside 1677..2262"))
        } else {
            i64::deserialize(deserializer).map(TimestampNs)
        }
    }
}

/// Where a run's caller gets "now" from, once per cycle. Nothing in `ledger-core` reads
/// the wall clock: live and paper runs pass the time of a wall clock (in
/// `ledger-adapters`) with each tick; backtests pass the data's time, and replays the
/// recorded time, which is what makes replays byte-identical.
pub trait Clock {
    /// The current time, UTC nanoseconds.
    fn now(&self) -> TimestampNs;
}

/// Serde for optional durations kept as `i64` nanoseconds: written as the number, read
/// from a number of nanoseconds or from text such as `"2m"`, `"500ms"`, `"1h 30m"`
/// (humantime's forms). Use as `#[serde(default, with = "crate::time::duration_ns")]`.
pub mod duration_ns {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Nanos(i64),
        Text(String),
    }

    /// Serializes the nanoseconds as a number.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(value: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
        value.serialize(serializer)
    }

    /// Reads nanoseconds, or a duration in words.
    ///
    /// # Errors
    /// Text that is not a duration, or one beyond `i64` nanoseconds (about 292 years).
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        match Option::<Written>::deserialize(deserializer)? {
            None => Ok(None),
            Some(Written::Nanos(nanos)) => Ok(Some(nanos)),
            Some(Written::Text(text)) => {
                let duration = humantime::parse_duration(&text).map_err(|e| {
                    serde::de::Error::custom(format!("{text:?} is not a duration (e.g. \"500ms\", \"2m\"): {e}"))
                })?;
                i64::try_from(duration.as_nanos())
                    .map(Some)
                    .map_err(|_| serde::de::Error::custom(format!("{text:?} is too long a duration")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_is_rfc3339_with_micros_and_round_trips() {
        let ts = TimestampNs::from_nanos(1_381_239_000_123_456_000);
        let json = serde_json::to_string(&ts).unwrap();
        assert_eq!(json, "\"2013-10-08T13:30:00.123456Z\"");
        assert_eq!(serde_json::from_str::<TimestampNs>(&json).unwrap(), ts);
    }

    #[test]
    fn utc_day_floors_before_the_epoch() {
        assert_eq!(TimestampNs::from_nanos(0).utc_day(), 0);
        assert_eq!(TimestampNs::from_nanos(-1).utc_day(), -1);
        assert_eq!(TimestampNs::from_nanos(NANOS_PER_DAY).utc_day(), 1);
    }
}
