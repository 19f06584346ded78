//! Market data readers on the real fixtures, and clear errors on bad input.

use std::io::Write;
use std::path::{Path, PathBuf};

use ledger_adapters::market_data::{read_ticks, DataError, ReadOptions};
use ledger_core::event::{Side, TickData};
use ledger_core::ids::InstrumentId;
use rust_decimal_macros::dec;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name)
}

fn options() -> ReadOptions {
    ReadOptions { instrument: InstrumentId::new("X").unwrap(), sort: false, utc_offset_seconds: 0 }
}

fn temp_file(name: &str, contents: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::File::create(&path).unwrap().write_all(contents).unwrap();
    (dir, path)
}

#[test]
fn daily_bars_read_exactly_with_their_interval() {
    let ticks = read_ticks(&fixture("spy-daily-1998-2021.csv"), &options()).unwrap();
    assert_eq!(ticks.len(), 5849);
    let TickData::Bar(first) = &ticks[0].data else { panic!("bars expected") };
    assert_eq!((first.open, first.close, first.volume), (dec!(97.3100), dec!(97.3600), Some(dec!(2150000))));
    assert_eq!(first.interval_ns, 86_400_000_000_000);
    assert_eq!(ticks[0].ts.to_rfc3339(), "1998-01-02T00:00:00.000000Z");
}

#[test]
fn minute_bars_quotes_and_trades_read() {
    let bars = read_ticks(&fixture("btcperp-1m-2022-01.csv"), &options()).unwrap();
    assert!(matches!(&bars[0].data, TickData::Bar(b) if b.interval_ns == 60_000_000_000));
    let quotes = read_ticks(&fixture("eurusd-quotes-2014-05-08.csv"), &options()).unwrap();
    assert!(matches!(&quotes[0].data, TickData::Quote(q) if q.bid == dec!(1.39147) && q.ask == dec!(1.39148)));
    let trades = read_ticks(&fixture("xrpeth-aggtrades-2019-10-11.csv"), &options()).unwrap();
    // is_buyer_maker = true: the seller was the aggressor.
    assert!(
        matches!(&trades[0].data, TickData::Trade(t) if t.price == dec!(0.00141342) && t.aggressor == Some(Side::Sell))
    );
    assert_eq!(trades[0].ts.to_rfc3339(), "2019-10-11T00:00:11.620000Z");
}

#[test]
fn gzip_and_jsonl_are_read_transparently() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"ts_utc,bid,ask\n2014-05-08T05:00:17.007Z,1.39147,1.39148\n").unwrap();
    let (_dir, path) = temp_file("q.csv.gz", &gz.finish().unwrap());
    assert_eq!(read_ticks(&path, &options()).unwrap().len(), 1);
    let (_dir, path) =
        temp_file("t.jsonl", b"{\"ts\": 1570752011620, \"price\": \"0.5\", \"qty\": 2, \"side\": \"buy\"}\n");
    let ticks = read_ticks(&path, &options()).unwrap();
    assert!(matches!(&ticks[0].data, TickData::Trade(t) if t.size == dec!(2) && t.aggressor == Some(Side::Buy)));
}

#[test]
fn a_row_with_more_fields_than_the_header_names_file_and_line() {
    let path = fixture("malformed-extra-time-field.csv");
    let error = read_ticks(&path, &options()).unwrap_err();
    assert!(matches!(error, DataError::Row { line: 2, .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("malformed-extra-time-field.csv:2:") && text.contains("8 fields, the header has 7"),
        "{text}"
    );
}

#[test]
fn a_bad_value_names_line_and_column() {
    let (_dir, path) =
        temp_file("b.csv", b"date,open,high,low,close,volume\n2020-01-02,1,2,0.5,1.5,10\n2020-01-03,1,2,0.5,abc,10\n");
    let text = read_ticks(&path, &options()).unwrap_err().to_string();
    assert!(text.ends_with("b.csv:3: column close: \"abc\" is not a decimal number"), "{text}");
    let (_dir, path) = temp_file("c.csv", b"date,open,high,low,close\n2020-01-02,1,2,0.5,-1.5\n");
    let text = read_ticks(&path, &options()).unwrap_err().to_string();
    assert!(text.contains("c.csv:2: column close: price -1.5 is not positive"), "{text}");
    let (_dir, path) = temp_file("d.csv", b"date,open,high,low,close\n2020-01-02,1,2,0.5,3\n");
    let text = read_ticks(&path, &options()).unwrap_err().to_string();
    assert!(text.contains("d.csv:2: column high"), "{text}");
}

#[test]
fn out_of_order_time_is_an_error_unless_sorted() {
    let contents =
        b"ts_utc,price,size\n2020-01-01T00:00:02Z,10,1\n2020-01-01T00:00:01Z,11,1\n2020-01-01T00:00:01Z,12,1\n";
    let (_dir, path) = temp_file("t.csv", contents);
    let text = read_ticks(&path, &options()).unwrap_err().to_string();
    assert!(text.contains("t.csv:3: time 2020-01-01T00:00:01.000000Z is before") && text.contains("--sort"), "{text}");
    let sorted = read_ticks(&path, &ReadOptions { sort: true, ..options() }).unwrap();
    let prices: Vec<_> = sorted
        .iter()
        .map(|t| match &t.data {
            TickData::Trade(t) => t.price,
            _ => unreachable!(),
        })
        .collect();
    // Stable: the two rows sharing a time keep file order.
    assert_eq!(prices, [dec!(11), dec!(12), dec!(10)]);
}

#[test]
fn unknown_layouts_and_empty_files_are_refused() {
    let (_dir, path) = temp_file("u.csv", b"when,what\n1,2\n");
    assert!(matches!(read_ticks(&path, &options()), Err(DataError::Layout { .. })));
    let (_dir, path) = temp_file("e.csv", b"date,open,high,low,close\n");
    assert!(matches!(read_ticks(&path, &options()), Err(DataError::Empty { .. })));
    assert!(matches!(read_ticks(Path::new("/no/such/file.csv"), &options()), Err(DataError::Io { .. })));
}

#[test]
fn headerless_trades_and_quotes_with_a_utc_offset() {
    // Kraken: unix_seconds,price,volume.
    let trades = read_ticks(&fixture("bcheur-kraken-trades-2023-01-02.csv"), &options()).unwrap();
    assert_eq!(trades.len(), 486);
    assert!(matches!(&trades[0].data, TickData::Trade(t) if t.price == dec!(90.070000) && t.size == dec!(1.10000000)));
    assert_eq!(trades[0].ts.to_rfc3339(), "2023-01-02T00:48:56.000000Z");
    // HistData: EST (fixed UTC-5) times without an offset; 17:00 EST is 22:00 UTC.
    let est = ReadOptions { utc_offset_seconds: -5 * 3600, ..options() };
    let quotes = read_ticks(&fixture("eurusd-histdata-est-2020-01-01.csv"), &est).unwrap();
    assert_eq!(quotes[0].ts.to_rfc3339(), "2020-01-01T22:00:00.065000Z");
    assert!(matches!(&quotes[0].data, TickData::Quote(q) if q.bid == dec!(1.121200) && q.ask == dec!(1.121720)));
}
