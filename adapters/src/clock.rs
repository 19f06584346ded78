//! The wall clock, for live and paper runs. The core never reads it directly.

use chrono::Utc;
use ledger_core::time::{Clock, TimestampNs};

/// The system's UTC clock, in nanoseconds.
#[derive(Debug, Default, Clone, Copy)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> TimestampNs {
        // chrono covers 1677..2262 in i64 nanoseconds; outside that the clock is broken.
        TimestampNs::from_nanos(Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX))
    }
}
