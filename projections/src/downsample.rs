//! A long series drawn in a bounded number of points: consecutive values merged into
//! buckets of equal count (OHLC per bucket, with the time of its highest and lowest
//! value), so a chart of a million bars keeps its true extremes in a few thousand points.
//!
//! Streaming: the bucket width (values per bucket) starts at 1 and doubles whenever the
//! buckets would exceed the cap, by merging neighbours pairwise; memory is the cap, never
//! the series. Only what is drawn is downsampled: statistics are folded from every event.

use serde::Serialize;

/// Buckets a chart's series is held in by default: a candle per bucket, at most two line
/// points per bucket.
pub const DEFAULT_BUCKETS: usize = 4096;

/// Consecutive values merged: first and last time, open, high, low, close, and when the
/// high and low were. Times are milliseconds since the Unix epoch, UTC (what a plotly date
/// axis reads); values in the series' unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    /// Time of the bucket's first value, ms UTC.
    pub first_ms: f64,
    /// Time of its last value, ms UTC.
    pub last_ms: f64,
    /// The first value's open.
    pub open: f64,
    /// Highest value.
    pub high: f64,
    /// Time of the highest value, ms UTC.
    pub high_ms: f64,
    /// Lowest value.
    pub low: f64,
    /// Time of the lowest value, ms UTC.
    pub low_ms: f64,
    /// The last value's close.
    pub close: f64,
    /// Values merged.
    pub count: u64,
}

impl Bucket {
    fn merge(&mut self, next: &Bucket) {
        self.last_ms = next.last_ms;
        self.close = next.close;
        self.count += next.count;
        // Ties keep the earlier time (a strict comparison).
        if next.high > self.high {
            self.high = next.high;
            self.high_ms = next.high_ms;
        }
        if next.low < self.low {
            self.low = next.low;
            self.low_ms = next.low_ms;
        }
    }
}

/// A series downsampled as it grows: see the module docs.
#[derive(Debug, Clone)]
pub struct Downsampler {
    cap: usize,
    width: u64,
    len: u64,
    buckets: Vec<Bucket>,
}

impl Downsampler {
    /// At most `cap` buckets (rounded up to an even number, at least 2).
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(2).next_multiple_of(2);
        Downsampler { cap, width: 1, len: 0, buckets: Vec::new() }
    }

    /// Adds a bar (or a value: all four the same) at `ms`, after every value so far.
    pub fn push(&mut self, ms: f64, open: f64, high: f64, low: f64, close: f64) {
        let value = Bucket { first_ms: ms, last_ms: ms, open, high, high_ms: ms, low, low_ms: ms, close, count: 1 };
        self.len += 1;
        match self.buckets.last_mut() {
            Some(last) if last.count < self.width => last.merge(&value),
            _ => {
                if self.buckets.len() == self.cap {
                    self.halve();
                }
                self.buckets.push(value);
            }
        }
    }

    /// Adds one value at `ms`.
    pub fn push_value(&mut self, ms: f64, value: f64) {
        self.push(ms, value, value, value, value);
    }

    /// Merges neighbours pairwise: half the buckets, twice the width. Called when every
    /// bucket is full, so all stay aligned on multiples of the width.
    fn halve(&mut self) {
        let merged = self
            .buckets
            .chunks(2)
            .map(|pair| {
                // invariant: `chunks` never yields an empty chunk.
                let mut bucket = pair[0];
                if let Some(next) = pair.get(1) {
                    bucket.merge(next);
                }
                bucket
            })
            .collect();
        self.buckets = merged;
        self.width *= 2;
    }

    /// The buckets, oldest first.
    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    /// Values per bucket (the last may hold fewer); 1 while nothing was merged.
    pub fn width(&self) -> u64 {
        self.width
    }

    /// Values pushed.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The series as a line: each bucket's lowest and highest value at their times (in
    /// time order; one point for a bucket of one value or one time), and the last value.
    /// Unmerged, that is the series itself. Returns the x (ms UTC) and y columns.
    pub fn line(&self) -> Line {
        let mut line = Line::default();
        for b in &self.buckets {
            if b.count == 1 || b.low_ms == b.high_ms {
                line.push(b.high_ms, if b.count == 1 { b.close } else { b.high });
                continue;
            }
            let (first, second) = if b.low_ms < b.high_ms {
                ((b.low_ms, b.low), (b.high_ms, b.high))
            } else {
                ((b.high_ms, b.high), (b.low_ms, b.low))
            };
            line.push(first.0, first.1);
            line.push(second.0, second.1);
        }
        if let Some(last) = self.buckets.last().filter(|b| b.count > 1 && b.last_ms > b.high_ms.max(b.low_ms)) {
            line.push(last.last_ms, last.close);
        }
        line
    }
}

/// Points of a line chart: times (ms UTC) and values, column by column.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Line {
    /// Times, ms since the Unix epoch, UTC, ascending.
    pub x: Vec<f64>,
    /// Values, in the series' unit.
    pub y: Vec<f64>,
}

impl Line {
    fn push(&mut self, x: f64, y: f64) {
        self.x.push(x);
        self.y.push(y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the series and the cap: at most `cap` buckets, every value counted once,
        /// the line and the candles holding the true highest and lowest value at their times,
        /// times ascending, and the last value drawn.
        #[test]
        fn downsampling_keeps_the_extremes_and_bounds_the_points(
            values in proptest::collection::vec(-1e6f64..1e6, 1..3000),
            cap in 2usize..64,
        ) {
            let mut series = Downsampler::new(cap);
            for (i, v) in values.iter().enumerate() {
                series.push_value(i as f64 * 60_000.0, *v);
            }
            let buckets = series.buckets();
            prop_assert!(buckets.len() <= cap.next_multiple_of(2));
            prop_assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), values.len() as u64);
            let max = values.iter().copied().fold(f64::MIN, f64::max);
            let min = values.iter().copied().fold(f64::MAX, f64::min);
            let line = series.line();
            prop_assert!(line.x.len() <= 2 * buckets.len() + 1);
            prop_assert_eq!(line.y.iter().copied().fold(f64::MIN, f64::max), max);
            prop_assert_eq!(line.y.iter().copied().fold(f64::MAX, f64::min), min);
            prop_assert!(line.x.windows(2).all(|w| w[0] <= w[1]));
            let at_max = values.iter().position(|v| *v == max).unwrap_or_default() as f64 * 60_000.0;
            prop_assert!(line.x.iter().zip(&line.y).any(|(x, y)| *x == at_max && *y == max));
            prop_assert_eq!(line.y.last().copied(), values.last().copied());
            prop_assert_eq!(buckets.iter().map(|b| b.high).fold(f64::MIN, f64::max), max);
            prop_assert_eq!(buckets.first().map(|b| b.open), values.first().copied());
        }
    }

    #[test]
    fn a_short_series_is_drawn_as_it_is() {
        let mut series = Downsampler::new(8);
        for (i, v) in [3.0, 1.0, 2.0].into_iter().enumerate() {
            series.push(i as f64, v, v + 1.0, v - 1.0, v);
        }
        assert_eq!((series.width(), series.buckets().len()), (1, 3));
        assert_eq!(series.line(), Line { x: vec![0.0, 1.0, 2.0], y: vec![3.0, 1.0, 2.0] });
        // Ten values into four buckets: width 4 (two halvings), the last bucket partial.
        let mut series = Downsampler::new(4);
        for i in 0..10 {
            series.push_value(i as f64, i as f64);
        }
        assert_eq!(series.width(), 4);
        assert_eq!(series.buckets().iter().map(|b| b.count).collect::<Vec<_>>(), vec![4, 4, 2]);
    }
}
