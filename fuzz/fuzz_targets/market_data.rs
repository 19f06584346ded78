//! Arbitrary bytes as a market data file, CSV and JSONL, read through `FileFeed` to
//! the end, strict and lenient, half of them with times in New York's zone. Besides "no panic": a file read strictly without error
//! reads the same leniently, with nothing skipped; a lenient read gives ticks in time
//! order and counts no more skipped rows than the file has lines.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ledger_adapters::market_data::{FileFeed, ReadOptions, TimeZone};
use ledger_core::feed::{MarketFeed, Tick};
use ledger_core::ids::InstrumentId;
use libfuzzer_sys::fuzz_target;

/// A folder of this process's own, for the one file each read needs.
fn folder() -> &'static PathBuf {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    FOLDER.get_or_init(|| {
        let folder = std::env::temp_dir().join(format!("ledger-fuzz-market-data-{}", std::process::id()));
        std::fs::create_dir_all(&folder).expect("a temp folder");
        folder
    })
}

/// Every tick and the skipped count, or the error's text (which must not panic either).
/// With `zone`, times without an offset are New York's (daylight saving gaps and folds).
fn read(path: &std::path::Path, lenient: bool, zone: bool) -> Result<(Vec<Tick>, u64), String> {
    let time_zone = zone.then(|| TimeZone::named("America/New_York").expect("a known zone"));
    let options =
        ReadOptions { lenient, time_zone, ..ReadOptions::new(InstrumentId::new("FUZZ").expect("a valid id")) };
    let mut feed = FileFeed::open(path, &options).map_err(|e| e.to_string())?;
    let mut ticks = Vec::new();
    loop {
        match feed.next_tick() {
            Ok(Some(tick)) => ticks.push(tick),
            Ok(None) => break,
            Err(error) => {
                // After an error, the feed gives nothing more.
                assert!(matches!(feed.next_tick(), Ok(None)), "a feed went on after its error");
                return Err(error.to_string());
            }
        }
    }
    Ok((ticks, feed.skipped_rows()))
}

fuzz_target!(|data: &[u8]| {
    for name in ["f.csv", "f.jsonl"] {
        let path = folder().join(name);
        std::fs::write(&path, data).expect("the temp file is written");
        // Half the inputs read in a zone with daylight saving (by their first byte).
        let zone = data.first().is_some_and(|b| b % 2 == 1);
        let strict = read(&path, false, zone);
        let lenient = read(&path, true, zone);
        if let Ok((ticks, skipped)) = &strict {
            assert_eq!(*skipped, 0, "a strict read skipped rows");
            assert_eq!(lenient.as_ref().ok(), Some(&(ticks.clone(), 0)), "a good file reads the same leniently");
        }
        if let Ok((ticks, skipped)) = &lenient {
            assert!(ticks.windows(2).all(|w| w[0].ts <= w[1].ts), "ticks out of order");
            let lines = data.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
            assert!(*skipped <= lines, "{skipped} rows skipped of {lines} lines");
        }
    }
});
