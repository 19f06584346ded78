//! Market data readers on the real fixtures, and clear errors on bad input: files as
//! streams ([`FileFeed`]), several merged by time ([`MergedFeed`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use ledger_adapters::market_data::{
    describe_source, read_ticks, DataError, DateOrder, FileFeed, MergedFeed, ReadOptions, TimeZone,
};
use ledger_core::event::{Side, TickData, Trade};
use ledger_core::feed::{MarketFeed, Tick};
use ledger_core::ids::InstrumentId;
use ledger_core::time::TimestampNs;
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name)
}

fn options() -> ReadOptions {
    ReadOptions::new(InstrumentId::new("X").unwrap())
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

/// Every tick of a feed, or its first error.
fn collect<F: MarketFeed>(feed: &mut F) -> Result<Vec<Tick>, F::Error> {
    let mut ticks = Vec::new();
    while let Some(tick) = feed.next_tick()? {
        ticks.push(tick);
    }
    Ok(ticks)
}

/// FNV-1a over each tick's time and data (Debug, which shows each decimal's scale).
fn digest(ticks: &[Tick]) -> u64 {
    ticks
        .iter()
        .flat_map(|t| format!("{} {:?}\n", t.ts.nanos(), t.data).into_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Row counts and digests of the reader before streaming (`read_ticks` on a whole
/// `Vec`, chrono per row), recorded once when the new reader was compared with it tick
/// by tick: the stream must give the same ticks.
const FIXTURES: [(&str, usize, u64); 7] = [
    ("bcheur-kraken-trades-2023-01-02.csv", 486, 0x5b42922e3d188c16),
    ("btcperp-1m-2022-01.csv", 10_000, 0x04117ec7c99f4677),
    ("eurusd-histdata-est-2020-01-01.csv", 500, 0x6af8ffaf04b29809),
    ("eurusd-quotes-2014-05-08.csv", 5_000, 0x4e34e20005e96ece),
    ("spy-daily-1998-2021.csv", 5_849, 0xe0602e3bdd878512),
    ("spy-daily-1998-q1.csv", 60, 0x5168fec44ab6b128),
    ("xrpeth-aggtrades-2019-10-11.csv", 3_000, 0x13b86dc44f78af61),
];

/// As [`FIXTURES`], for `../shared/data` (row counts as its README says).
const SHARED: [(&str, usize, u64); 18] = [
    ("backtrader_yahoo_ORCL_daily_1995-2014.csv", 5_036, 0x0ca22514afd1e754),
    ("freqtrade_binance_XRP-ETH_aggtrades_2019-10-11_13.csv", 12_477, 0x9d94cff5f59c49a6),
    ("freqtrade_bittrex_ETH-BTC_5m_2018-01.csv", 5_760, 0xeb6931d3ce879366),
    ("freqtrade_kraken_BCHEUR_trades_2023-01-02.csv", 486, 0x5b42922e3d188c16),
    ("hftbacktest_binance_spot_BTCUSDT_bookticker_2024-08-08T2354_0005.csv.gz", 73_174, 0xfc277ebdd2240ee1),
    ("hftbacktest_binance_spot_BTCUSDT_trades_2024-08-08T2354_0005.csv.gz", 19_904, 0xa9ee712c0ca8bb17),
    ("lean_AAPL_daily_unadjusted_1998-2021.csv", 5_849, 0x6bffe01a46c6a363),
    ("lean_SPY_1m_trade_bars_2013-10-07_11.csv", 4_128, 0x916eaa81331ec6e3),
    ("lean_SPY_daily_unadjusted_1998-2021.csv", 5_849, 0xe0602e3bdd878512),
    ("lean_SPY_trade_ticks_2013-10-08.csv.gz", 451_545, 0x43a7b75a7e96a7a4),
    ("lean_coinbase_BTCUSD_daily_2014-12_2018-08.csv", 1_318, 0xf9abe1406d651ccc),
    ("lean_fxcm_EURUSD_quote_ticks_2014-05-08.csv.gz", 167_466, 0x9f8bf9a176d79950),
    ("nautilus_btc-perp_1m_2021-12-31_2022-02-01.csv", 45_031, 0xcce7a2d5fc001ea1),
    ("nautilus_cme_6EH4_1m_2024-01.csv.gz", 29_996, 0xcaeb125c3e94c0b2),
    ("nautilus_fxcm_GBPUSD_1m_bid_2012-02.csv", 30_117, 0x1e41ca441dfdf888),
    ("nautilus_histdata_EURUSD_quote_ticks_2020-01-01.csv", 9_500, 0x7555eb218b8b0c1f),
    ("nautilus_truefx_USDJPY_quote_ticks_2013-01-01.csv", 1_000, 0x6167fce7b7c6c6ff),
    ("hftbacktest_binance_spot_BTCUSDT_rawfeed_20240808.gz", 0, 0),
];

#[test]
fn fixtures_stream_the_same_ticks_as_before() {
    for (name, rows, expected) in FIXTURES {
        let mut feed = FileFeed::open(&fixture(name), &options()).unwrap();
        let ticks = collect(&mut feed).unwrap();
        assert_eq!((ticks.len(), digest(&ticks)), (rows, expected), "{name}");
        assert!(feed.next_tick().unwrap().is_none(), "{name}: the end stays the end");
    }
}

#[test]
fn shared_data_streams_the_same_ticks_as_before() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if !dir.is_dir() {
        println!("skipped: {} is not here", dir.display());
        return;
    }
    for (name, rows, expected) in SHARED {
        let path = dir.join(name);
        let result = FileFeed::open(&path, &options()).and_then(|mut feed| collect(&mut feed));
        if rows == 0 {
            // Raw websocket capture, not a table: no time column.
            assert!(matches!(result, Err(DataError::Layout { .. })), "{name}");
            continue;
        }
        let ticks = result.unwrap();
        assert_eq!((ticks.len(), digest(&ticks)), (rows, expected), "{name}");
    }
    // The header lies about its columns: refused at the first row, naming it.
    let error = FileFeed::open(&dir.join("backtrader_unlabeled-index-future_1m_2006-01_02.csv"), &options())
        .unwrap_err()
        .to_string();
    assert!(
        error.ends_with("backtrader_unlabeled-index-future_1m_2006-01_02.csv:2: column *: 8 fields, the header has 7"),
        "{error}"
    );
}

#[test]
fn a_gzip_file_streams_member_after_member_and_a_truncated_one_fails_at_its_end() {
    let rows = |from: u32, to: u32| -> Vec<u8> {
        (from..to)
            // Five decimals, so that the bid stays below the ask (`1.9,1.10` is crossed).
            .map(|i| format!("{},1.{i:05},1.{:05}\n", 1_400_000_000_000u64 + u64::from(i), i + 1))
            .collect::<String>()
            .into_bytes()
    };
    let gzip = |bytes: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    };
    // TC0: two gzip members, as `cat a.gz b.gz` makes: every row of both.
    let mut two = gzip(&[b"ts_ms,bid,ask\n".as_slice(), &rows(0, 30_000)].concat());
    two.extend(gzip(&rows(30_000, 60_000)));
    let (_dir, path) = temp_file("q.csv.gz", &two);
    let ticks = collect(&mut FileFeed::open(&path, &options()).unwrap()).unwrap();
    assert_eq!(ticks.len(), 60_000);
    assert_eq!(ticks[59_999].ts, TimestampNs::from_nanos(1_400_000_059_999_000_000));
    // TC1: cut short: the rows before the cut come first, then an I/O error.
    let whole = gzip(&[b"ts_ms,bid,ask\n".as_slice(), &rows(0, 60_000)].concat());
    let (_dir, path) = temp_file("cut.csv.gz", &whole[..whole.len() / 2]);
    let mut feed = FileFeed::open(&path, &options()).unwrap();
    let mut given = 0;
    let error = loop {
        match feed.next_tick() {
            Ok(Some(_)) => given += 1,
            Ok(None) => panic!("a truncated gzip must not end quietly"),
            Err(error) => break error,
        }
    };
    assert!(given > 1_000 && given < 60_000, "{given}");
    assert!(matches!(error, DataError::Io { .. }), "{error:?}");
    assert!(feed.next_tick().unwrap().is_none(), "after an error the feed gives nothing more");
}

#[test]
fn a_row_out_of_order_comes_after_the_rows_before_it_and_names_its_line() {
    let contents = b"ts_utc,price,size\n2020-01-01T00:00:01Z,10,1\n2020-01-01T00:00:02Z,11,1\n2020-01-01T00:00:02Z,12,1\n2020-01-01T00:00:01.5Z,13,1\n";
    let (_dir, path) = temp_file("t.csv", contents);
    let mut feed = FileFeed::open(&path, &options()).unwrap();
    assert_eq!(feed.next_tick().unwrap().unwrap().ts.to_rfc3339(), "2020-01-01T00:00:01.000000Z");
    assert!(feed.next_tick().unwrap().is_some());
    assert!(feed.next_tick().unwrap().is_some(), "an equal time is in order");
    match feed.next_tick() {
        Err(DataError::OutOfOrder { line: 5, time, previous, .. }) => {
            assert_eq!(
                (time.to_rfc3339(), previous.to_rfc3339()),
                ("2020-01-01T00:00:01.500000Z".into(), "2020-01-01T00:00:02.000000Z".into())
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_time_on_line_n_names_line_n_the_column_and_the_layout() {
    // TC0: a minute-bar file whose fourth line is not a time of its layout.
    let (_dir, path) = temp_file(
        "m.csv",
        b"timestamp,open,high,low,close\n2022-01-01 00:00:00.000000,1,2,0.5,1.5\n2022-01-01 00:01:00.000000,1,2,0.5,1.5\n2022-01-01 00:02,1,2,0.5,1.5\n",
    );
    let mut feed = FileFeed::open(&path, &options()).unwrap();
    assert_eq!(collect_until_error(&mut feed), 2, "the good rows come first");
    let text = FileFeed::open(&path, &options()).and_then(|mut f| collect(&mut f)).unwrap_err().to_string();
    assert!(
        text.ends_with("m.csv:4: column timestamp: \"2022-01-01 00:02\" does not match the file's time layout, YYYY-MM-DD HH:MM:SS[.fraction] (set by line 2)"),
        "{text}"
    );
    // TC1: the right shape, a field out of range.
    let (_dir, path) =
        temp_file("d.csv", b"date,open,high,low,close\n2020-02-28,1,2,0.5,1.5\n2020-02-30,1,2,0.5,1.5\n");
    let error = read_ticks(&path, &options()).unwrap_err();
    assert!(matches!(&error, DataError::Row { line: 3, column, .. } if column == "date"), "{error:?}");
    assert!(
        error.to_string().contains("\"2020-02-30\": day out of range (the file's time layout is YYYY-MM-DD"),
        "{error}"
    );
    // TC2: a year that i64 nanoseconds do not hold is an error, not an overflow.
    let (_dir, path) =
        temp_file("y.csv", b"date,open,high,low,close\n2020-02-28,1,2,0.5,1.5\n9999-12-31,1,2,0.5,1.5\n");
    let text = read_ticks(&path, &options()).unwrap_err().to_string();
    assert!(text.contains("y.csv:3: column date: \"9999-12-31\": outside the years 1677..2262"), "{text}");
    // TC3: a first row that is no time at all fails the open.
    let (_dir, path) = temp_file("n.csv", b"date,open,high,low,close\nsoon,1,2,0.5,1.5\n");
    let text = FileFeed::open(&path, &options()).unwrap_err().to_string();
    assert!(text.ends_with("n.csv:2: column date: \"soon\" is not a time we read"), "{text}");
}

/// Ticks given before the feed's first error (which must come).
fn collect_until_error(feed: &mut FileFeed) -> usize {
    let mut given = 0;
    loop {
        match feed.next_tick() {
            Ok(Some(_)) => given += 1,
            Ok(None) => panic!("an error was expected"),
            Err(_) => return given,
        }
    }
}

#[test]
fn bars_get_their_interval_from_the_first_rows_and_a_later_bad_row_waits_its_turn() {
    // 5-minute bars, an hour's gap, and a bad value on the last line (inside the
    // look-ahead): the open succeeds, the bars come with their interval, then the error.
    let mut text = String::from("timestamp,open,high,low,close\n");
    for minute in [0, 5, 10, 15, 75, 80] {
        text.push_str(&format!("2022-01-01 {:02}:{:02}:00,1,2,0.5,1.5\n", minute / 60, minute % 60));
    }
    text.push_str("2022-01-01 01:25:00,1,2,0.5,x\n2022-01-01 01:30:00,1,2,0.5,1.5\n");
    let (_dir, path) = temp_file("b.csv", text.as_bytes());
    let mut feed = FileFeed::open(&path, &options()).unwrap();
    for _ in 0..6 {
        let tick = feed.next_tick().unwrap().unwrap();
        assert!(matches!(tick.data, TickData::Bar(b) if b.interval_ns == 300_000_000_000));
    }
    let error = feed.next_tick().unwrap_err();
    assert!(matches!(&error, DataError::Row { line: 8, column, .. } if column == "close"), "{error:?}");
    assert!(feed.next_tick().unwrap().is_none(), "nothing after the error, though line 9 is good");
}

#[test]
fn describe_source_names_the_file_and_its_size() {
    let path = fixture("spy-daily-1998-q1.csv");
    assert_eq!(describe_source(&path).unwrap(), format!("{} (3250 bytes)", path.display()));
    assert!(matches!(describe_source(Path::new("/no/such/file.csv")), Err(DataError::Io { .. })));
}

/// A trade at `ts` seconds whose price tells where it came from: feed * 1000 + position.
fn trade(ts: i64, feed: usize, position: usize) -> Tick {
    Tick {
        ts: TimestampNs::from_nanos(ts * 1_000_000_000),
        instrument: InstrumentId::new(&format!("F{feed}")).unwrap(),
        data: TickData::Trade(Trade {
            price: Decimal::from(feed * 1_000 + position + 1),
            size: Decimal::ONE,
            aggressor: None,
        }),
    }
}

/// A feed over ticks in memory, failing after `fail_after` ticks when set.
struct VecFeed {
    ticks: std::vec::IntoIter<Tick>,
    fail_after: Option<usize>,
    given: usize,
}

impl VecFeed {
    fn new(ticks: Vec<Tick>) -> Self {
        VecFeed { ticks: ticks.into_iter(), fail_after: None, given: 0 }
    }
}

impl MarketFeed for VecFeed {
    type Error = std::io::Error;

    fn next_tick(&mut self) -> Result<Option<Tick>, std::io::Error> {
        if self.fail_after == Some(self.given) {
            return Err(std::io::Error::other("feed broke"));
        }
        self.given += 1;
        Ok(self.ticks.next())
    }
}

#[test]
fn merged_feeds_interleave_by_time_ties_in_list_order() {
    let a = VecFeed::new(vec![trade(1, 0, 0), trade(3, 0, 1), trade(3, 0, 2)]);
    let b = VecFeed::new(vec![trade(0, 1, 0), trade(3, 1, 1), trade(5, 1, 2)]);
    let c = VecFeed::new(vec![]);
    let merged = collect(&mut MergedFeed::new(vec![a, c, b])).unwrap();
    let order: Vec<(i64, String)> =
        merged.iter().map(|t| (t.ts.nanos() / 1_000_000_000, t.data.reference_price().to_string())).collect();
    let expected = [(0, "1001"), (1, "1"), (3, "2"), (3, "3"), (3, "1002"), (5, "1003")];
    assert_eq!(order, expected.map(|(t, p)| (t, p.to_string())));
    // An error in any feed comes out of the merge.
    let broken = VecFeed { fail_after: Some(1), ..VecFeed::new(vec![trade(0, 0, 0), trade(1, 0, 1)]) };
    let mut merged = MergedFeed::new(vec![VecFeed::new(vec![trade(2, 1, 0)]), broken]);
    assert_eq!(merged.next_tick().unwrap().unwrap().ts.nanos(), 0);
    assert!(merged.next_tick().is_err());
}

#[test]
fn merged_file_feeds_show_one_portfolio_every_instrument() {
    let (_dir_a, a) = temp_file("a.csv", b"ts,price,qty\n2020-01-01T00:00:01Z,10,1\n2020-01-01T00:00:03Z,11,1\n");
    let (_dir_b, b) = temp_file(
        "b.jsonl",
        b"{\"ts\": 1577836801000, \"bid\": 1, \"ask\": 2}\n{\"ts\": 1577836802000, \"bid\": 1, \"ask\": 2}\n",
    );
    let btc = ReadOptions { instrument: InstrumentId::new("BTC").unwrap(), ..options() };
    let eur = ReadOptions { instrument: InstrumentId::new("EUR").unwrap(), ..options() };
    let feeds = vec![FileFeed::open(&a, &btc).unwrap(), FileFeed::open(&b, &eur).unwrap()];
    let merged = collect(&mut MergedFeed::new(feeds)).unwrap();
    let seen: Vec<(i64, String)> =
        merged.iter().map(|t| (t.ts.nanos() / 1_000_000_000 - 1_577_836_800, t.instrument.to_string())).collect();
    assert_eq!(seen, [(1, "BTC".into()), (1, "EUR".into()), (2, "EUR".into()), (3, "BTC".into())]);
}

proptest! {
    /// The merge of sorted streams is sorted by time, stable (ties by feed, then by each
    /// feed's own order) and holds exactly the input ticks: it equals a stable sort of the
    /// streams laid end to end.
    #[test]
    fn a_merge_is_a_stable_sort_of_its_inputs(gaps in prop::collection::vec(prop::collection::vec(0i64..3, 0..40), 0..6)) {
        let streams: Vec<Vec<Tick>> = gaps
            .iter()
            .enumerate()
            .map(|(feed, gaps)| {
                gaps.iter().scan(0, |ts, gap| { *ts += gap; Some(*ts) }).enumerate().map(|(position, ts)| trade(ts, feed, position)).collect()
            })
            .collect();
        let mut expected: Vec<Tick> = streams.concat();
        expected.sort_by_key(|t| t.ts);
        let merged = collect(&mut MergedFeed::new(streams.into_iter().map(VecFeed::new).collect())).unwrap();
        prop_assert_eq!(merged, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// No file content makes the reader panic: known headers over arbitrary rows, and
    /// arbitrary bytes, as CSV, headerless CSV and JSONL, sorted or not.
    #[test]
    fn no_file_content_panics(
        header in prop::sample::select(vec![
            "timestamp,open,high,low,close,volume\n",
            "date,time,open,high,low,close\n",
            "ts_utc,bid,ask,bid_qty,ask_qty\n",
            "ts_ms,price,qty,is_buyer_maker\n",
            ",open,high,low,close\n",
            "Price,Close,High,Low,Open\nTicker,X,X,X,X\nDate,,,,\n",
            "date;open;high;low;close\n",
            "",
        ]),
        body in "([0-9]{1,20}|[-:., TZ+e\"/;\t]|2020-0[1-9]-[0-3][0-9]|[01][0-9]/[0-3][0-9]/2021|2021-03-14 0[1-3]:[0-5][0-9]|\n){0,200}",
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        sort in any::<bool>(),
        offset in -86_400i32..86_400,
        zone in any::<bool>(),
        date_order in prop::sample::select(vec![None, Some(DateOrder::MonthFirst), Some(DateOrder::DayFirst)]),
    ) {
        let time_zone = zone.then(|| TimeZone::named("America/New_York").unwrap());
        let o = ReadOptions { sort, utc_offset_seconds: offset, time_zone, date_order, ..options() };
        let text = format!("{header}{body}");
        for (name, contents) in [("f.csv", text.as_bytes()), ("f.jsonl", text.as_bytes()), ("g.csv", &bytes[..]), ("g.ndjson", &bytes[..])] {
            let (_dir, path) = temp_file(name, contents);
            let _ = read_ticks(&path, &o);
        }
    }
}

/// Rows per second streaming `$BARS_CSV` (a big bar CSV; run in release mode).
#[test]
#[ignore]
fn throughput_bars() {
    let Ok(path) = std::env::var("BARS_CSV") else {
        println!("skipped: set BARS_CSV to a bar CSV");
        return;
    };
    let start = std::time::Instant::now();
    let mut feed = FileFeed::open(Path::new(&path), &options()).unwrap();
    let mut rows = 0u64;
    while feed.next_tick().unwrap().is_some() {
        rows += 1;
    }
    let elapsed = start.elapsed();
    println!("{rows} rows in {elapsed:?}: {:.0} rows/s", rows as f64 / elapsed.as_secs_f64());
}

#[test]
fn lines_are_counted_right_across_quoted_newlines_crlf_and_blank_lines() {
    // csv's own record position is off in CRLF files and after blank lines: each case
    // has its bad row on line 5 (and the good ones before it read).
    let cases: [(&str, &[u8]); 5] = [
        (
            "TC0 a quoted field over two lines",
            b"ts,price,size,note\n1577836801,10,1,\"two\nlines\"\n1577836802,10,1,x\n1577836803,10,x,x\n",
        ),
        ("TC1 CRLF", b"ts,price,size\r\n1577836801,10,1\r\n1577836802,10,1\r\n1577836803,10,1\r\n1577836804,10,x\r\n"),
        ("TC2 blank lines", b"ts,price,size\n\n1577836801,10,1\n\n1577836804,10,x\n"),
        (
            "TC3 a blank CRLF line and no newline at the end",
            b"ts,price,size\r\n1577836801,10,1\r\n\r\n1577836803,10,1\r\n1577836804,10,x",
        ),
        (
            "TC4 a quoted CRLF newline, then spaces on a line",
            b"ts,price,size,note\r\n1577836801,10,1,\"a\r\nb\"\r\n   \r\n1577836804,10,x,y\r\n",
        ),
    ];
    for (label, contents) in cases {
        let (_dir, path) = temp_file("l.csv", contents);
        let error = read_ticks(&path, &options()).unwrap_err();
        assert!(matches!(&error, DataError::Row { line: 5, column, .. } if column == "size"), "{label}: {error:?}");
    }
}

#[test]
fn new_rules_refuse_with_file_line_column_and_rule() {
    let cases: [(&str, &str, &[u8], &str); 10] = [
        (
            "TC0 trade size zero",
            "t.csv",
            b"ts,price,size\n1577836801,10,0\n",
            "t.csv:2: column size: trade size 0 is not positive",
        ),
        (
            "TC1 negative volume",
            "b.csv",
            b"date,open,high,low,close,volume\n2020-01-02,1,2,0.5,1.5,-3\n",
            "b.csv:2: column volume: volume -3 is negative",
        ),
        (
            "TC2 negative quote size",
            "q.csv",
            b"ts,bid,ask,bid_size\n1577836801,1,2,-1\n",
            "q.csv:2: column bid_size: bid size -1 is negative",
        ),
        (
            "TC3 grossly crossed quote",
            "q.csv",
            b"ts,bid,ask\n1577836801,1.1,1.2\n1577836802,110,1.2\n",
            "q.csv:3: column bid: bid 110 is more than 1% above ask 1.2",
        ),
        (
            "TC4 duplicate header",
            "d.csv",
            b"ts,price,size,Price\n1577836801,10,1,11\n",
            "d.csv:1: column price: the header names columns 2 and 4 both \"price\"",
        ),
        (
            "TC5 too many digits",
            "x.csv",
            b"ts,price,size\n1577836801,1.23456789012345678901234567890123,1\n",
            "x.csv:2: column price: \"1.23456789012345678901234567890123\" does not fit exactly in 28 digits",
        ),
        ("TC6 1e400", "x.csv", b"ts,price,size\n1577836801,1e400,1\n", "does not fit exactly in 28 digits"),
        (
            "TC7 NaN",
            "x.csv",
            b"ts,price,size\n1577836801,NaN,1\n",
            "x.csv:2: column price: \"NaN\" is not a decimal number",
        ),
        (
            "TC8 JSON duplicate key",
            "j.jsonl",
            b"{\"ts\":1577836801,\"price\":1,\"size\":1}\n{\"ts\":1577836802,\"price\":1,\"size\":1,\"Size\":2}\n",
            "j.jsonl:2: column Size: the key \"Size\" appears twice",
        ),
        (
            "TC9 JSON nested",
            "j.jsonl",
            b"{\"ts\":1577836801,\"price\":{\"v\":1},\"size\":1}\n",
            "column price: the value of \"price\" is a nested object",
        ),
    ];
    for (label, name, contents, expected) in cases {
        let (_dir, path) = temp_file(name, contents);
        let text = read_ticks(&path, &options()).unwrap_err().to_string();
        assert!(text.contains(expected), "{label}: {text}");
    }
    // A crossed quote within 1% is real data (FXCM's EURUSD has 18,285): read.
    let (_dir, path) = temp_file("q.csv", b"ts,bid,ask\n1577836801,1.39150,1.39148\n1577836802,1.0099,1\n");
    assert_eq!(read_ticks(&path, &options()).unwrap().len(), 2);
}

#[test]
fn jsonl_numbers_are_exact_decimals_and_null_is_absent() {
    let (_dir, path) = temp_file(
        "t.jsonl",
        b"\xEF\xBB\xBF{\"ts\": 1570752011620, \"price\": 0.30000000000000004, \"qty\": 1.5e1, \"side\": null}\n",
    );
    let ticks = read_ticks(&path, &options()).unwrap();
    assert!(
        matches!(&ticks[0].data, TickData::Trade(t) if t.price == dec!(0.30000000000000004) && t.size == dec!(15) && t.aggressor.is_none()),
        "{:?}",
        ticks[0]
    );
}

#[test]
fn lenient_skips_bad_rows_counts_them_and_still_stops_on_order_and_io() {
    let lenient = ReadOptions { lenient: true, ..options() };
    // Lines 3 (not a number), 4 (field count), 5 (size 0), 7 (bad time) are bad.
    let contents = b"ts,price,size\n1577836801,10,1\n1577836802,x,1\n1577836803,10\n1577836804,10,0\n1577836805,10,1\nsoon,10,1\n1577836807,10,1\n";
    let (_dir, path) = temp_file("t.csv", contents);
    let mut feed = FileFeed::open(&path, &lenient).unwrap();
    let ticks = collect(&mut feed).unwrap();
    assert_eq!((ticks.len(), feed.skipped_rows()), (3, 4));
    // Strict: the first bad row ends it.
    assert!(matches!(read_ticks(&path, &options()), Err(DataError::Row { line: 3, .. })));
    // A bad first row is skipped too; the time layout comes from the first good one.
    let (_dir, path) = temp_file("f.csv", b"ts,price,size\nnow,10,1\n1577836801,10,1\n");
    let mut feed = FileFeed::open(&path, &lenient).unwrap();
    assert_eq!((collect(&mut feed).unwrap().len(), feed.skipped_rows()), (1, 1));
    // Out of order still stops, after the skipped row is counted.
    let (_dir, path) = temp_file("o.csv", b"ts,price,size\n1577836802,10,1\n1577836803,x,1\n1577836801,10,1\n");
    let mut feed = FileFeed::open(&path, &lenient).unwrap();
    assert!(matches!(collect(&mut feed), Err(DataError::OutOfOrder { line: 4, .. })));
    assert_eq!(feed.skipped_rows(), 1);
    // A header problem still stops.
    let (_dir, path) = temp_file("h.csv", b"ts,price,size,size\n1577836802,10,1,1\n");
    assert!(matches!(FileFeed::open(&path, &lenient), Err(DataError::Row { line: 1, .. })));
    // Without lenient nothing is counted.
    let (_dir, path) = temp_file("g.csv", b"ts,price,size\n1577836801,10,1\n");
    let mut feed = FileFeed::open(&path, &options()).unwrap();
    collect(&mut feed).unwrap();
    assert_eq!(feed.skipped_rows(), 0);
}

/// How one read of a corpus file ended: ticks and skipped rows, an error's text, or a
/// panic.
fn corpus_outcome(path: &Path, o: ReadOptions) -> Result<Result<(usize, u64), String>, ()> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut feed = FileFeed::open(path, &o).map_err(|e| e.to_string())?;
        let ticks = collect(&mut feed).map_err(|e| e.to_string())?;
        Ok((ticks.len(), feed.skipped_rows()))
    }))
    .map_err(|_| ())
}

/// Every file of tests/corpus/market-data (damaged market data, made by its make.py)
/// read strictly and leniently ends as its line of expected.tsv says, and none panics.
/// All mismatches are reported together.
#[test]
fn the_damaged_data_corpus_ends_as_expected_and_never_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/market-data");
    let expected = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let mut failures = Vec::new();
    let mut listed = std::collections::HashSet::new();
    for line in expected.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, strict, message, lenient, extra, given] = fields[..] else { panic!("expected.tsv: {line:?}") };
        listed.insert(name.to_string());
        // The options column: `-`, or `key=value` pairs split by `;`.
        let mut read = options();
        for pair in given.split(';').filter(|p| *p != "-") {
            match pair.split_once('=') {
                Some(("tz", zone)) => read.time_zone = Some(TimeZone::named(zone).unwrap()),
                Some(("date_format", pattern)) => read.date_order = DateOrder::from_pattern(pattern),
                Some(("time_column", column)) => read.time_column = Some(column.to_string()),
                _ => panic!("expected.tsv: unknown option {pair:?}"),
            }
        }
        let path = dir.join(name);
        let cases = [
            ("strict", false, strict, if strict == "ok" { "0" } else { message }),
            ("lenient", true, lenient, if extra == "=" { message } else { extra }),
        ];
        for (how, lenient, want, detail) in cases {
            match (corpus_outcome(&path, ReadOptions { lenient, ..read.clone() }), want) {
                (Err(()), _) => failures.push(format!("{name}: the {how} read panicked")),
                (Ok(Ok((_, skipped))), "ok") if detail.parse() == Ok(skipped) => {}
                (Ok(Err(text)), "error") if detail == "-" || text.contains(detail) => {}
                (Ok(got), _) => failures.push(format!("{name}: {how}: expected {want} {detail:?}, got {got:?}")),
            }
        }
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !["expected.tsv", "make.py", "README.md"].contains(&name.as_str()) && !listed.contains(&name) {
            failures.push(format!("{name}: not in expected.tsv"));
        }
    }
    assert!(listed.len() >= 60, "only {} corpus files", listed.len());
    assert!(failures.is_empty(), "{} of {} corpus files:\n{}", failures.len(), listed.len(), failures.join("\n"));
}

// The files quants have: pandas' and yfinance's layouts, other separators, dates with
// the year last, wall-clock times in a named zone, a time column of another name.

/// Ticks as (time, data) pairs, to compare files that hold the same rows.
fn rows_of(path: &Path, options: &ReadOptions) -> Vec<(TimestampNs, TickData)> {
    read_ticks(path, options).unwrap_or_else(|e| panic!("{e}")).into_iter().map(|t| (t.ts, t.data)).collect()
}

#[test]
fn pandas_and_spreadsheet_layouts_read_to_the_same_bars_as_the_original() {
    // The first 252 bars of the real SPY file (1998).
    let original: Vec<_> = rows_of(&fixture("spy-daily-1998-2021.csv"), &options()).into_iter().take(252).collect();
    // TC0: pandas' `df.to_csv()`: an empty first header cell over the index (the dates),
    // floats written short (97.31 for 97.3100: the same decimal value).
    let pandas = rows_of(&fixture("spy-daily-pandas-1998.csv"), &options());
    assert_eq!(pandas, original);
    // TC1: `;` between fields, DD/MM/YYYY dates (day first is told by 13/01/1998 on line 9).
    let dmy = rows_of(&fixture("spy-daily-dmy-semicolon-1998.csv"), &options());
    assert_eq!(dmy, original);
    // TC2: tabs, MM/DD/YYYY dates, CRLF line ends.
    let mdy = rows_of(&fixture("spy-daily-mdy-1998.tsv"), &options());
    assert_eq!(mdy, original);
    // TC3: the order given instead of told.
    let given = ReadOptions { date_order: Some(DateOrder::DayFirst), ..options() };
    assert_eq!(rows_of(&fixture("spy-daily-dmy-semicolon-1998.csv"), &given), original);
    // TC4: the wrong order given: the first date that cannot be one is named.
    let wrong = ReadOptions { date_order: Some(DateOrder::MonthFirst), ..options() };
    let text = read_ticks(&fixture("spy-daily-dmy-semicolon-1998.csv"), &wrong).unwrap_err().to_string();
    assert!(
        text.ends_with("spy-daily-dmy-semicolon-1998.csv:9: column date: \"13/01/1998\": month out of range (the file's time layout is MM/DD/YYYY, set by line 2)"),
        "{text}"
    );
}

#[test]
fn yfinance_multi_row_headers_read_to_the_same_bars_as_yahoos_layout() {
    let yahoo = rows_of(&fixture("orcl-daily-yahoo-1995.csv"), &options());
    let yfinance = rows_of(&fixture("orcl-daily-yfinance-1995.csv"), &options());
    assert_eq!(yfinance.len(), 252);
    assert_eq!(yfinance, yahoo);
    let TickData::Bar(first) = &yfinance[0].1 else { panic!("bars expected") };
    // Close, not Adj Close (1.883304): bars are traded as printed.
    assert_eq!((first.open, first.close), (dec!(2.179012), dec!(2.117284)));
    assert_eq!(first.interval_ns, 86_400_000_000_000);
    // A data row right after the header's first row (no Ticker or Date rows): read,
    // with its line counted.
    let (_dir, path) = temp_file("p.csv", b",Close,High,Low,Open,Volume\n1995-01-03,2,2,1,1,5\n1995-01-04,2,x,1,1,5\n");
    let text = read_ticks(&path, &options()).unwrap_err().to_string();
    assert!(text.ends_with("p.csv:3: column high: \"x\" is not a decimal number"), "{text}");
}

#[test]
fn a_yfinance_file_of_several_tickers_reads_the_instruments_columns() {
    let contents = b"Price,Close,Close,High,High,Low,Low,Open,Open,Volume,Volume\nTicker,AAPL,SPY,AAPL,SPY,AAPL,SPY,AAPL,SPY,AAPL,SPY\nDate,,,,,,,,,,\n2020-01-02,75.09,324.87,75.15,324.89,73.8,322.53,74.06,323.54,135480400,59151200\n";
    let (_dir, path) = temp_file("two.csv", contents);
    let spy = ReadOptions { instrument: InstrumentId::new("SPY").unwrap(), ..options() };
    let ticks = read_ticks(&path, &spy).unwrap();
    assert!(matches!(&ticks[0].data, TickData::Bar(b) if b.close == dec!(324.87) && b.volume == Some(dec!(59151200))));
    let aapl = ReadOptions { instrument: InstrumentId::new("aapl").unwrap(), ..options() };
    assert!(matches!(&read_ticks(&path, &aapl).unwrap()[0].data, TickData::Bar(b) if b.close == dec!(75.09)));
    let text = read_ticks(&path, &options()).unwrap_err().to_string();
    assert!(text.contains("several tickers (AAPL, SPY) and none is the instrument X: set --instrument"), "{text}");
}

#[test]
fn wall_clock_times_in_new_york_read_to_the_utc_bars() {
    // Real SPY minute bars written in New York time (EDT that day) under "Local time".
    let new_york = ReadOptions {
        time_zone: Some(TimeZone::named("America/New_York").unwrap()),
        time_column: Some("Local Time".into()),
        ..options()
    };
    let local = rows_of(&fixture("spy-1m-newyork-2013-10-07.csv"), &new_york);
    assert_eq!(local.len(), 828);
    assert_eq!(local[0].0.to_rfc3339(), "2013-10-07T08:00:00.000000Z");
    let shared =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/lean_SPY_1m_trade_bars_2013-10-07_11.csv");
    if shared.is_file() {
        let utc: Vec<_> = rows_of(&shared, &options()).into_iter().take(828).collect();
        assert_eq!(local, utc);
    }
    // Without --time-column the header names no time; without the zone, times are UTC.
    let text = read_ticks(&fixture("spy-1m-newyork-2013-10-07.csv"), &options()).unwrap_err().to_string();
    assert!(text.contains("no time column") && text.contains("--time-column"), "{text}");
    let utc = ReadOptions { time_column: Some("local_time".into()), ..options() };
    assert_eq!(
        rows_of(&fixture("spy-1m-newyork-2013-10-07.csv"), &utc)[0].0.to_rfc3339(),
        "2013-10-07T04:00:00.000000Z"
    );
    let missing = ReadOptions { time_column: Some("when".into()), ..options() };
    let text = read_ticks(&fixture("spy-1m-newyork-2013-10-07.csv"), &missing).unwrap_err().to_string();
    assert!(text.contains("no column \"when\" to take the times from (--time-column)"), "{text}");
}

#[test]
fn daylight_saving_gaps_are_refused_and_folds_read_in_order() {
    let new_york = ReadOptions { time_zone: Some(TimeZone::named("America/New_York").unwrap()), ..options() };
    // TC0: 2021-03-14 02:30 does not exist in New York: refused, naming line and column.
    let (_dir, path) = temp_file(
        "gap.csv",
        b"time,price,size\n2021-03-14 01:59:00,10,1\n2021-03-14 02:30:00,10,1\n2021-03-14 03:00:00,10,1\n",
    );
    let error = read_ticks(&path, &new_york).unwrap_err();
    assert!(matches!(&error, DataError::Row { line: 3, column, .. } if column == "time"), "{error:?}");
    let text = error.to_string();
    assert!(
        text.ends_with("gap.csv:3: column time: \"2021-03-14 02:30:00\" in America/New_York: does not exist there: the clocks jumped from UTC-05:00 to UTC-04:00 over it (a daylight saving gap)"),
        "{text}"
    );
    // Leniently, that row is skipped and the others read.
    let mut feed = FileFeed::open(&path, &ReadOptions { lenient: true, ..new_york.clone() }).unwrap();
    assert_eq!((collect(&mut feed).unwrap().len(), feed.skipped_rows()), (2, 1));
    // TC1: minute bars through the fold of 2021-11-07: 01:00..01:59 twice (EDT, then
    // EST), every bar one minute after the one before.
    let mut contents = String::from("date,time,open,high,low,close\n");
    for _pass in 0..2 {
        for minute in 0..60 {
            contents.push_str(&format!("2021-11-07,01:{minute:02}:00,1,1,1,1\n"));
        }
    }
    contents.push_str("2021-11-07,02:00:00,1,1,1,1\n");
    let (_dir, path) = temp_file("fold.csv", contents.as_bytes());
    let ticks = read_ticks(&path, &new_york).unwrap();
    assert_eq!(ticks.len(), 121);
    assert_eq!(ticks[0].ts.to_rfc3339(), "2021-11-07T05:00:00.000000Z");
    assert_eq!(ticks[60].ts.to_rfc3339(), "2021-11-07T06:00:00.000000Z");
    assert!(ticks.windows(2).all(|w| w[1].ts.nanos() - w[0].ts.nanos() == 60_000_000_000));
    // TC2: times with an offset and epoch numbers are instants: the zone does not move them.
    let (_dir, path) = temp_file("z.csv", b"ts,price,size\n2021-11-07T01:30:00-04:00,10,1\n");
    assert_eq!(read_ticks(&path, &new_york).unwrap()[0].ts.to_rfc3339(), "2021-11-07T05:30:00.000000Z");
}

#[test]
fn dates_that_read_two_ways_everywhere_are_refused_naming_the_first_row() {
    // Every date of the first twelve days of January reads as a day of another month.
    let mut contents = String::from("Date,Open,High,Low,Close\n");
    for day in 1..=12 {
        contents.push_str(&format!("01/{day:02}/1998,1,1,1,1\n"));
    }
    let (_dir, path) = temp_file("a.csv", contents.as_bytes());
    let error = read_ticks(&path, &options()).unwrap_err();
    assert!(matches!(&error, DataError::AmbiguousDates { line: 3, .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.ends_with("a.csv:3: column date: \"01/02/1998\" is 2 January (MM/DD/YYYY) or 1 February (DD/MM/YYYY), and no row of the file has a day above 12 to tell which: pass --date-format MM/DD/YYYY or --date-format DD/MM/YYYY"),
        "{text}"
    );
    // Not a bad row: --lenient refuses it too.
    assert!(matches!(
        read_ticks(&path, &ReadOptions { lenient: true, ..options() }),
        Err(DataError::AmbiguousDates { .. })
    ));
    // Given the order, it reads.
    let given = ReadOptions { date_order: Some(DateOrder::DayFirst), ..options() };
    let ticks = read_ticks(&path, &given).unwrap();
    assert_eq!(ticks[1].ts.to_rfc3339(), "1998-02-01T00:00:00.000000Z");
    // A date that reads the same both ways (01/01) is no ambiguity.
    let (_dir, path) = temp_file("b.csv", b"Date,Open,High,Low,Close\n01/01/1998,1,1,1,1\n");
    assert_eq!(read_ticks(&path, &options()).unwrap()[0].ts.to_rfc3339(), "1998-01-01T00:00:00.000000Z");
    // Told by a late row, and a later row that contradicts it is named with both lines.
    let (_dir, path) =
        temp_file("c.csv", b"Date,Open,High,Low,Close\n01/02/1998,1,1,1,1\n01/13/1998,1,1,1,1\n14/01/1998,1,1,1,1\n");
    let text = read_ticks(&path, &options()).unwrap_err().to_string();
    assert!(
        text.ends_with("c.csv:4: column date: \"14/01/1998\": month out of range (the file's time layout is MM/DD/YYYY, set by line 2; day and month told by line 3)"),
        "{text}"
    );
}

#[test]
fn dates_with_the_year_last_or_first_and_their_clocks() {
    // (label, time text, order given, expected UTC)
    let cases: [(&str, &str, Option<DateOrder>, &str); 7] = [
        ("TC0: MM/DD/YYYY", "01/13/2020", None, "2020-01-13T00:00:00.000000Z"),
        ("TC1: unpadded, minutes", "1/13/2020 9:30", None, "2020-01-13T09:30:00.000000Z"),
        ("TC2: DD.MM.YYYY with seconds and a fraction", "13.01.2020 09:30:15.25", None, "2020-01-13T09:30:15.250000Z"),
        ("TC3: DD-MM-YYYY", "13-01-2020", None, "2020-01-13T00:00:00.000000Z"),
        ("TC4: YYYY/MM/DD", "2020/01/02 09:30:00", None, "2020-01-02T09:30:00.000000Z"),
        ("TC5: YYYY.MM.DD (MetaTrader)", "2020.01.02 09:30", None, "2020-01-02T09:30:00.000000Z"),
        ("TC6: the order given", "02/01/2020", Some(DateOrder::DayFirst), "2020-01-02T00:00:00.000000Z"),
    ];
    for (label, time, date_order, expected) in cases {
        let (_dir, path) = temp_file("d.csv", format!("time,price,size\n{time},10,1\n").as_bytes());
        let ticks =
            read_ticks(&path, &ReadOptions { date_order, ..options() }).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(ticks[0].ts.to_rfc3339(), expected, "{label}");
    }
    // A later row in another shape is refused by the file's layout.
    let (_dir, path) = temp_file("e.csv", b"time,price,size\n01/13/2020 09:30,10,1\n01/13/2020 09:31:00,10,1\n");
    let text = read_ticks(&path, &options()).unwrap_err().to_string();
    assert!(text.ends_with("e.csv:3: column time: \"01/13/2020 09:31:00\" does not match the file's time layout, MM/DD/YYYY HH:MM (set by line 2)"), "{text}");
}

#[test]
fn the_separator_is_told_by_the_first_line_outside_quotes() {
    // (label, contents, ticks)
    let cases: [(&str, &[u8], usize); 4] = [
        ("TC0: a quoted header name holding commas", b"\"ts, utc\";price;size\n1577836801;10;1\n", 1),
        ("TC1: blank lines before the header", b"\n\n  \nts\tprice\tsize\n1577836801\t10\t1\n", 1),
        ("TC2: headerless, semicolons", b"1577836801;10;1\n1577836802;11;2\n", 2),
        ("TC3: a comma file whose header has one tab", b"ts,price,size,note\ta\n1577836801,10,1,x\n", 1),
    ];
    for (label, contents, count) in cases {
        let (_dir, path) = temp_file("s.csv", contents);
        let o = ReadOptions { time_column: label.starts_with("TC0").then(|| "ts, utc".to_string()), ..options() };
        assert_eq!(read_ticks(&path, &o).map(|t| t.len()).map_err(|e| e.to_string()), Ok(count), "{label}");
    }
    // A decimal comma (with `;` between fields) is not a number, and the message says so.
    let (_dir, path) = temp_file("c.csv", b"ts;price;size\n1577836801;10,5;1\n");
    let text = read_ticks(&path, &options()).unwrap_err().to_string();
    assert!(text.ends_with("c.csv:2: column price: \"10,5\" is not a decimal number (write decimals with a point, without thousands separators)"), "{text}");
}

/// A resumed run passes over the ticks it has recorded: `skip_ticks(n)` returns the
/// n-th tick and leaves the feed where reading n ticks would, for CSV (bars, whose first
/// rows are read ahead for the interval, and quotes) and JSON lines, at any n; past the
/// end it gives `None`.
#[test]
fn skipping_ticks_lands_where_reading_them_does() {
    let jsonl: String = (0..40)
        .map(|i| format!("{{\"ts\": {}, \"price\": \"{}.5\", \"qty\": 1}}\n\n", 1_570_752_011_620i64 + i, i))
        .collect();
    let (_dir, trades) = temp_file("t.jsonl", jsonl.as_bytes());
    let files = [fixture("btcperp-1m-2022-01.csv"), fixture("eurusd-quotes-2014-05-08.csv"), trades];
    for path in &files {
        let all = read_ticks(path, &options()).unwrap();
        for n in [0usize, 1, 2, 5, 21, 22, 23, 39, all.len() - 1, all.len()] {
            let mut feed = FileFeed::open(path, &options()).unwrap();
            let last = feed.skip_ticks(n as u64).unwrap();
            assert_eq!(last.as_ref(), n.checked_sub(1).and_then(|i| all.get(i)), "{path:?} n={n}");
            assert_eq!(feed.next_tick().unwrap().as_ref(), all.get(n), "{path:?} after n={n}");
        }
        let mut feed = FileFeed::open(path, &options()).unwrap();
        assert_eq!(feed.skip_ticks(all.len() as u64 + 1).unwrap(), None, "{path:?} past the end");
    }
}
