#!/usr/bin/env python3
"""Writes the damaged market data files of this folder and expected.tsv.

Each case: a file name, its bytes, and its expected outcome read strictly and leniently
(see README.md here). Rows are cut from the real files in ../shared/data (named in the
comments) or written by hand, then damaged. Run it from anywhere; it rewrites the folder.
"""
import gzip
import io
import os

HERE = os.path.dirname(os.path.abspath(__file__))

# Real rows, as the files in shared/data have them.
SPY_DAILY = b"date,open,high,low,close,volume\n1998-01-02,97.3100,97.5600,96.6900,97.3600,2150000\n1998-01-05,97.8700,98.1800,96.4400,97.4100,4410200\n1998-01-06,96.8800,97.2500,96.3800,96.8800,3180500\n"
YAHOO = b"Date,Open,High,Low,Close,Adj Close,Volume\n1995-01-03,2.179012,2.191358,2.117284,2.117284,1.883304,36301200\n1995-01-04,2.123457,2.148148,2.092592,2.135803,1.899776,46051600\n"
EURUSD_HEAD = b"ts_utc,bid,ask\n"
EURUSD = [b"2014-05-08T05:00:17.007Z,1.39147,1.39148", b"2014-05-08T05:00:17.264Z,1.39147,1.39149", b"2014-05-08T05:00:54.152Z,1.39154,1.39153", b"2014-05-08T05:05:19.908Z,1.39143,1.39142", b"2014-05-08T05:14:52.364Z,1.39148,1.39147"]
KRAKEN = [b"1672620536,90.070000,1.10000000", b"1672621569,90.000000,0.05000000", b"1672621572,89.900000,0.16781327"]
HISTDATA = [b"20200101 170000065,1.121200,1.121720,0", b"20200101 170010447,1.121200,1.121920,0", b"20200101 170010498,1.121170,1.121610,0"]
GBPUSD = b"timestamp,open,high,low,close\n2012-02-01 00:00:00+00:00,1.57597,1.57606,1.57576,1.57576\n2012-02-01 00:01:00+00:00,1.57576,1.57583,1.57543,1.57543\n"
SPY_1M_HEAD = b"ts_utc_bar_open,open,high,low,close,volume\n"
SPY_1M = [b"2013-10-07T08:00:00.000Z,167.4100,167.4100,167.2500,167.2700,3197", b"2013-10-07T08:01:00.000Z,167.2500,167.2500,167.2500,167.2500,1150"]
AGG_HEAD = b"ts_ms,ts_utc,agg_id,price,qty,first_trade_id,last_trade_id,is_buyer_maker\n"
AGG = [b"1570752011620,2019-10-11T00:00:11.620Z,13519807,0.00141342,23.00000000,15373518,15373518,true", b"1570752011620,2019-10-11T00:00:11.620Z,13519808,0.00141266,54.00000000,15373519,15373519,true"]
TRUEFX = b"timestamp,bid,ask\n2013-01-01 22:00:00.295000+00:00,86.655,86.728\n2013-01-01 22:02:35.907000+00:00,86.657,86.728\n"
BOOK_HEAD = b"local_ts_ns,tx_ts_ms,update_id,bid,bid_qty,ask,ask_qty\n"
BOOK = [b"1723161254087891268,,50093239212,61837.63000000,3.78826000,61837.64000000,1.54698000", b"1723161254116723068,,50093239219,61837.63000000,3.78826000,61837.64000000,1.60520000"]
INDEX_FUTURE = b"Date,Open,High,Low,Close,Volume,OpenInterest\r\n2006-01-02,09:01:00,3602.00,3603.00,3597.00,3599.00,5699,0\r\n2006-01-02,09:02:00,3600.00,3601.00,3598.00,3599.00,894,0\r\n"
TRADES_HEAD = b"ts_utc,price,size\n"
# Quotes in time order, for files cut short.
MANY_QUOTES = b"".join(b"2014-05-08T05:%02d:%02d.000Z,1.3%04d,1.3%04d\n" % (i // 60, i % 60, i, i + 1) for i in range(600))


def lines(*rows):
    return b"".join(r + b"\n" for r in rows)


def gz(data):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as f:
        f.write(data)
    return out.getvalue()


def jl(*objs):
    return b"".join(o.encode() + b"\n" for o in objs)


T = ['"ts": 1570752011620', '"ts": 1570752011621', '"ts": 1570752011622']
# (file, bytes, strict, message, lenient, skipped count or lenient message)
# strict: ok or error; message: a part of the strict error ("-" for ok);
# lenient: ok (then the skipped count) or error (then a part of its message, "=" for the strict one's).
CASES = [
    # The file as a whole.
    ("empty.csv", b"", "error", "no data rows", "error", "="),
    ("empty.jsonl", b"", "error", "no data rows", "error", "="),
    ("only-blank-lines.csv", b"\n\n\r\n  \n", "error", "no data rows", "error", "="),
    ("header-only.csv", TRADES_HEAD, "error", "no data rows", "error", "="),
    ("header-only-crlf.csv", b"ts_utc,bid,ask\r\n", "error", "no data rows", "error", "="),
    ("bom-only.csv", b"\xef\xbb\xbf", "error", "no data rows", "error", "="),
    ("unknown-layout.csv", b"when,what\n1,2\n", "error", "no time column", "error", "="),
    ("no-price-columns.csv", b"timestamp,foo,bar\n2020-01-01,1,2\n", "error", "is neither bars", "error", "="),
    ("bars-without-close.csv", b"timestamp,open,high,low\n2020-01-01,1,2,0.5\n", "error", "is neither bars", "error", "="),
    ("headerless-five-columns.csv", b"1672620536,90.07,1.1,3,4\n", "error", "no header and 5 columns", "error", "="),
    # Separators other than `,` are told from the first line.
    ("tab-separated.csv", b"ts\tprice\tsize\n1577836801\t10\t1\n", "ok", "-", "ok", "0"),
    ("semicolon-separated.csv", b"ts;price;size\n1577836801;10;1\n", "ok", "-", "ok", "0"),
    ("lone-cr-line-ends.csv", b"ts,price,size\r1577836801,10,1\r1577836802,10,1\r", "error", "is neither bars", "error", "="),
    ("nul-in-header.csv", b"ts\x00,price,size\n1577836801,10,1\n", "error", "no time column", "error", "="),
    ("raw-websocket-line.csv", b'1723161254087891268 {"stream":"btcusdt@trade","data":{"e":"trade","p":"61837.64"}}\n', "error", "no time column", "error", "="),
    ("not-gzip.csv.gz", TRADES_HEAD + b"2020-01-01T00:00:01Z,10,1\n", "error", "invalid gzip header", "error", "="),
    ("truncated.csv.gz", gz(EURUSD_HEAD + MANY_QUOTES)[:200], "error", "incomplete deflate stream", "error", "="),
    ("json-first-line-not-json.jsonl", b"ts,price,size\n1577836801,10,1\n", "error", "expected `{`", "error", "="),
    ("json-first-line-duplicate-key.jsonl", jl('{"ts": 1, "price": 1, "size": 1, "TS": 2}'), "error", "appears twice", "error", "="),
    # Header names.
    ("duplicate-header.csv", b"ts,price,size,price\n1577836801,10,1,11\n", "error", ":1: column price: the header names columns 2 and 4 both", "error", "="),
    ("duplicate-header-case.csv", b"Date,Open,High,Low,Close,close,Volume\n1998-01-02,97.31,97.56,96.69,97.36,97.36,2150000\n", "error", "columns 5 and 6 both \"close\"", "error", "="),
    ("duplicate-header-spaces.csv", b"Date,Open,High,Low,Close,Adj Close,adj_close\n1995-01-03,2.1,2.2,2.0,2.1,1.8,1.8\n", "error", "columns 6 and 7 both \"adj_close\"", "error", "="),
    ("header-with-spaces.csv", b" Date , Open , High , Low , Close , Volume \n1998-01-02,97.31,97.56,96.69,97.36,2150000\n", "ok", "-", "ok", "0"),
    ("trailing-comma-everywhere.csv", b"ts,price,size,\n1577836801,10,1,\n1577836802,10,1,\n", "ok", "-", "ok", "0"),
    ("two-empty-header-names.csv", b"ts,price,size,,\n1577836801,10,1,,\n", "ok", "-", "ok", "0"),
    # Field counts.
    ("extra-time-field-crlf.csv", INDEX_FUTURE, "error", ":2: column *: 8 fields, the header has 7", "error", "no data rows"),
    ("missing-field.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:02Z,10", b"2020-01-01T00:00:03Z,10,1"), "error", ":3: column *: 2 fields, the header has 3", "ok", "1"),
    ("trailing-comma-rows.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:02Z,10,1,"), "error", ":3: column *: 4 fields", "ok", "1"),
    ("thousands-unquoted.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:02Z,1,234.5,1"), "error", ":3: column *: 4 fields", "ok", "1"),
    ("quoted-unclosed.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b'2020-01-01T00:00:02Z,"10,1', b"2020-01-01T00:00:03Z,10,1"), "error", ":3: column *: a quoted field is still open", "ok", "1"),
    ("quoted-unclosed-no-newline.csv", TRADES_HEAD + b'2020-01-01T00:00:01Z,10,1\n2020-01-01T00:00:02Z,10,"1', "error", ":3: column *: a quoted field is still open at the end of the file", "ok", "1"),
    ("quoted-last-field-newline.csv", b'ts_utc,price,size,note\n2020-01-01T00:00:01Z,10,1,"a\n"\n2020-01-01T00:00:02Z,10,0,"b\n"\n', "error", ":4: column size: trade size 0", "ok", "1"),
    # Quoting, line ends, BOM, blank lines.
    ("quoted-fields.csv", b'"ts_utc","price","size"\n"2020-01-01T00:00:01Z","10.5","1"\n', "ok", "-", "ok", "0"),
    ("quoted-thousands.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b'2020-01-01T00:00:02Z,"1,234.5",1'), "error", ":3: column price: \"1,234.5\" is not a decimal number", "ok", "1"),
    ("quoted-newline-then-bad-row.csv", b'ts_utc,price,size,note\n2020-01-01T00:00:01Z,10,1,"two\nlines"\n2020-01-01T00:00:02Z,10,1,x\n2020-01-01T00:00:03Z,x,1,y\n', "error", ":5: column price", "ok", "1"),
    ("crlf.csv", EURUSD_HEAD.replace(b"\n", b"\r\n") + b"".join(r + b"\r\n" for r in EURUSD), "ok", "-", "ok", "0"),
    ("crlf-bad-row.csv", b"ts_utc,bid,ask\r\n" + EURUSD[0] + b"\r\n2014-05-08T05:00:17.264Z,1.39147,\r\n" + EURUSD[2] + b"\r\n", "error", ":3: column ask: \"\" is not a decimal number", "ok", "1"),
    ("crlf-blank-lines-bad-row.csv", b"ts_utc,bid,ask\r\n\r\n" + EURUSD[0] + b"\r\n\r\n2014-05-08T05:00:17.264Z,x,1.39149\r\n", "error", ":5: column bid", "ok", "1"),
    ("bom.csv", b"\xef\xbb\xbf" + SPY_DAILY, "ok", "-", "ok", "0"),
    ("bom-headerless.csv", b"\xef\xbb\xbf" + lines(*KRAKEN), "ok", "-", "ok", "0"),
    ("bom.jsonl", b"\xef\xbb\xbf" + jl("{%s, \"price\": \"0.5\", \"qty\": 2}" % T[0]), "ok", "-", "ok", "0"),
    ("blank-lines.csv", b"\n" + TRADES_HEAD + b"\n" + lines(b"2020-01-01T00:00:01Z,10,1", b"", b"   ", b"2020-01-01T00:00:02Z,x,1"), "error", ":7: column price", "ok", "1"),
    ("no-newline-at-end.csv", TRADES_HEAD + b"2020-01-01T00:00:01Z,10,1\n2020-01-01T00:00:02Z,10,-1", "error", ":3: column size: trade size -1 is not positive", "ok", "1"),
    # Bytes that are not text.
    ("nul-in-price.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:02Z,1\x000,1"), "error", ":3: column price: \"1\\0", "ok", "1"),
    ("nul-bytes-row.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"\x00\x00\x00\x00"), "error", ":3: column *: 1 fields", "ok", "1"),
    ("non-utf8-price.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:02Z,1\xff0,1"), "error", ":3: column price", "ok", "1"),
    ("non-utf8-time.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:0\xff,10,1"), "error", ":3: column ts_utc", "ok", "1"),
    ("non-utf8-extra-header.csv", b"ts_utc,price,size,\xff\xfe\n2020-01-01T00:00:01Z,10,1,x\n", "ok", "-", "ok", "0"),
    ("non-utf8-line.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0]) + b'{"ts": 1570752011621, "price": "0.\xff", "qty": 2}\n', "error", ":2: column *: not UTF-8", "ok", "1"),
    ("latin1-header.csv", b"ts_utc,price,size,b\xf6rse\n2020-01-01T00:00:01Z,10,1,x\n", "ok", "-", "ok", "0"),
    # Numbers.
    ("huge-integer.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:02Z," + b"9" * 200 + b",1"), "error", "does not fit exactly in 28 digits", "ok", "1"),
    ("decimal-max-plus-one.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:02Z,79228162514264337593543950336,1"), "error", "does not fit exactly in 28 digits", "error", "no data rows"),
    ("decimal-max.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:02Z,79228162514264337593543950335,1"), "ok", "-", "ok", "0"),
    ("too-many-decimals.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:02Z,1.23456789012345678901234567890123,1"), "error", "\"1.23456789012345678901234567890123\" does not fit exactly in 28 digits", "ok", "1"),
    ("twenty-nine-places.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:02Z,0.00000000000000000000000000001,1"), "error", "does not fit exactly in 28 digits", "error", "no data rows"),
    ("nan.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:02Z,NaN,1"), "error", "\"NaN\" is not a decimal number", "ok", "1"),
    ("inf.csv", EURUSD_HEAD + lines(EURUSD[0], b"2014-05-08T05:00:17.264Z,inf,1.39149", b"2014-05-08T05:00:54.152Z,1.39154,-Infinity"), "error", "\"inf\" is not a decimal number", "ok", "2"),
    ("exponent-400.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:02Z,1e400,1"), "error", "\"1e400\" does not fit exactly in 28 digits", "ok", "1"),
    ("exponent-negative-30.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:02Z,10,1e-30"), "error", "\"1e-30\" does not fit exactly", "error", "no data rows"),
    ("exponent-huge.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:02Z,1e99999999999999999999,1"), "error", "does not fit exactly", "error", "no data rows"),
    ("exponents.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,1.5e2,1E+1", b"2020-01-01T00:00:02Z,15000e-2,.5"), "ok", "-", "ok", "0"),
    ("exponent-without-digits.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:02Z,1e,1"), "error", "\"1e\" is not a decimal number", "ok", "1"),
    ("negative-zero-price.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:02Z,-0,1"), "error", ":3: column price: price 0 is not positive", "ok", "1"),
    ("negative-zero-volume.csv", SPY_1M_HEAD + lines(SPY_1M[0][:-4] + b"-0", SPY_1M[1][:-4] + b"-0.0"), "ok", "-", "ok", "0"),
    ("plus-sign.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,+10,+1"), "ok", "-", "ok", "0"),
    ("thousands-underscore.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:02Z,1_000,1"), "error", "\"1_000\" is not a decimal number", "ok", "1"),
    ("hex-number.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:02Z,0x10,1"), "error", "\"0x10\" is not a decimal number", "ok", "1"),
    ("space-inside-number.csv", TRADES_HEAD + lines(b"2020-01-01T00:00:01Z,10,1", b"2020-01-01T00:00:02Z,1 0,1"), "error", "\"1 0\" is not a decimal number", "ok", "1"),
    ("yahoo-null-row.csv", YAHOO + b"1995-01-05,null,null,null,null,null,null\n1995-01-06,2.1,2.2,2.0,2.1,1.8,100\n", "error", ":4: column open: \"null\" is not a decimal number", "ok", "1"),
    # The rules on values.
    ("negative-price-bar.csv", SPY_DAILY + b"1998-01-07,-96.8800,97.2500,96.3800,96.8800,3180500\n", "error", ":5: column open: price -96.8800 is not positive", "ok", "1"),
    ("zero-price-trade.csv", AGG_HEAD + lines(AGG[0], AGG[1].replace(b"0.00141266", b"0.00000000")), "error", ":3: column price: price 0.00000000 is not positive", "ok", "1"),
    ("zero-bid-quote.csv", EURUSD_HEAD + lines(EURUSD[0], b"2014-05-08T05:00:17.264Z,0,1.39149"), "error", ":3: column bid: price 0 is not positive", "ok", "1"),
    ("zero-trade-size.csv", lines(KRAKEN[0], KRAKEN[1].replace(b"0.05000000", b"0.00000000"), KRAKEN[2]), "error", ":2: column size: trade size 0.00000000 is not positive", "ok", "1"),
    ("negative-trade-size.csv", AGG_HEAD + lines(AGG[0], AGG[1].replace(b",54.0", b",-54.0")), "error", ":3: column qty: trade size -54.00000000 is not positive", "ok", "1"),
    ("negative-volume.csv", SPY_DAILY + b"1998-01-07,96.8800,97.2500,96.3800,96.8800,-5\n", "error", ":5: column volume: volume -5 is negative", "ok", "1"),
    ("negative-ask-size.csv", BOOK_HEAD + lines(BOOK[0], BOOK[1].replace(b",1.60520000", b",-1.60520000")), "error", ":3: column ask_qty: ask size -1.60520000 is negative", "ok", "1"),
    ("negative-bid-size.csv", BOOK_HEAD + lines(BOOK[0].replace(b",3.78826000", b",-3.78826000"), BOOK[1]), "error", ":2: column bid_qty: bid size -3.78826000 is negative", "ok", "1"),
    ("high-below-close.csv", GBPUSD + b"2012-02-01 00:02:00+00:00,1.57543,1.57500,1.57500,1.57560\n", "error", ":4: column high: high 1.57500 / low 1.57500 do not contain open 1.57543 and close 1.57560", "ok", "1"),
    ("low-above-open.csv", SPY_DAILY.replace(b"96.6900", b"97.5000"), "error", ":2: column high: high 97.5600 / low 97.5000 do not contain open 97.3100", "ok", "1"),
    ("high-below-low.csv", SPY_1M_HEAD + lines(SPY_1M[0], b"2013-10-07T08:01:00.000Z,167.2500,167.2000,167.3000,167.2500,1150"), "error", ":3: column high", "ok", "1"),
    ("crossed-quotes-real.csv", EURUSD_HEAD + lines(*EURUSD), "ok", "-", "ok", "0"),
    ("crossed-quote-100x.csv", EURUSD_HEAD + lines(EURUSD[0], b"2014-05-08T05:00:17.264Z,139.147,1.39149", EURUSD[2]), "error", ":3: column bid: bid 139.147 is more than 1% above ask 1.39149", "ok", "1"),
    ("crossed-quote-2pct.csv", TRUEFX + b"2013-01-01 22:03:00.000000+00:00,88.500,86.728\n", "error", ":4: column bid: bid 88.500 is more than 1% above ask 86.728", "ok", "1"),
    ("crossed-quote-just-under-1pct.csv", TRUEFX + b"2013-01-01 22:03:00.000000+00:00,87.595,86.728\n", "ok", "-", "ok", "0"),
    ("headerless-quotes-bad-ask.csv", lines(HISTDATA[0], b"20200101 170010447,1.121200,abc,0", HISTDATA[2]), "error", ":2: column ask: \"abc\" is not a decimal number", "ok", "1"),
    # Times, in each layout.
    ("bad-time-rfc3339.csv", EURUSD_HEAD + lines(EURUSD[0], b"2014-05-08T25:00:17.264Z,1.39147,1.39149"), "error", ":3: column ts_utc: \"2014-05-08T25:00:17.264Z\": hour out of range", "ok", "1"),
    ("bad-time-date.csv", SPY_DAILY + b"1998-02-30,96.8800,97.2500,96.3800,96.8800,3180500\n", "error", ":5: column date: \"1998-02-30\": day out of range", "ok", "1"),
    ("bad-time-date-time-split.csv", INDEX_FUTURE.replace(b"Date,Open", b"Date,Time,Open").replace(b"09:02:00", b"09:62:00"), "error", ":3: column date", "ok", "1"),
    ("bad-time-epoch-ms.csv", b"ts_ms,price,qty\n1570752011620,0.00141342,23.00000000\n1570752011,0.00141266,54.00000000\n", "error", ":3: column ts_ms: \"1570752011\" does not match the file's time layout, epoch milliseconds", "ok", "1"),
    ("bad-time-epoch-ns.csv", BOOK_HEAD + lines(BOOK[0], BOOK[1].replace(b"1723161254116723068", b"172316125411672306x")), "error", ":3: column local_ts_ns", "ok", "1"),
    ("bad-time-compact.csv", lines(HISTDATA[0], HISTDATA[1].replace(b"170010447", b"1700104"), HISTDATA[2]), "error", ":2: column time: \"20200101 1700104\" does not match the file's time layout, YYYYMMDD HHMMSSmmm", "ok", "1"),
    ("bad-time-minutes.csv", b"timestamp,open,high,low,close\n2022-01-01 00:00,1,2,0.5,1.5\n2022-01-01 00:61,1,2,0.5,1.5\n", "error", ":3: column timestamp: \"2022-01-01 00:61\": minute out of range", "ok", "1"),
    ("bad-time-zoned.csv", GBPUSD + b"2012-02-01 00:02:00+24:00,1.57543,1.57560,1.57500,1.57560\n", "error", ":4: column timestamp: \"2012-02-01 00:02:00+24:00\": offset out of range", "ok", "1"),
    ("bad-time-layout-change.csv", TRUEFX + b"2013-01-01T22:03:00Z,86.657,86.728\n", "error", ":4: column timestamp: \"2013-01-01T22:03:00Z\" does not match the file's time layout", "ok", "1"),
    ("bad-time-first-row.csv", TRADES_HEAD + lines(b"soon,10,1", b"2020-01-01T00:00:01Z,10,1"), "error", ":2: column ts_utc: \"soon\" is not a time we read", "ok", "1"),
    ("time-year-9999.csv", SPY_DAILY + b"9999-12-31,96.8800,97.2500,96.3800,96.8800,3180500\n", "error", ":5: column date: \"9999-12-31\": outside the years 1677..2262", "ok", "1"),
    ("time-epoch-ns-past-i64.csv", BOOK_HEAD + lines(BOOK[0], BOOK[1].replace(b"1723161254116723068", b"9923161254116723068")), "error", ":3: column local_ts_ns: \"9923161254116723068\": outside the years 1677..2262", "ok", "1"),
    ("time-year-1500-first-row.csv", b"date,open,high,low,close\n1500-01-01,1,2,0.5,1.5\n", "error", ":2: column date: \"1500-01-01\" is not a time we read", "error", "no data rows"),
    ("out-of-order.csv", EURUSD_HEAD + lines(EURUSD[1], EURUSD[0]), "error", ":3: time 2014-05-08T05:00:17.007000Z is before", "error", "="),
    ("out-of-order-after-bad-row.csv", EURUSD_HEAD + lines(EURUSD[1], b"2014-05-08T05:00:18.000Z,x,1", EURUSD[0]), "error", ":3: column bid", "error", ":4: time 2014-05-08T05:00:17.007000Z is before"),
    # gzip.
    ("bad-row.csv.gz", gz(EURUSD_HEAD + lines(EURUSD[0], b"2014-05-08T05:00:17.264Z,1.39147", EURUSD[2])), "error", ":3: column *: 2 fields", "ok", "1"),
    ("truncated-after-rows.csv.gz", gz(EURUSD_HEAD + MANY_QUOTES)[:-12], "error", "incomplete deflate stream", "error", "="),
    ("truncated-trailer.csv.gz", gz(EURUSD_HEAD + MANY_QUOTES)[:-4], "error", "unexpected end of file", "error", "="),
    ("two-members-second-bad.csv.gz", gz(EURUSD_HEAD + MANY_QUOTES[:100]) + gz(b"2014-05-08T06:00:00.000Z,1.4,x\n"), "error", ":4: column ts_utc: \"2014-05-08T05:00:02014-05-08T06:00:00.000Z\" does not match", "ok", "1"),
    # JSON lines.
    ("json-duplicate-key.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0], '{%s, "price": "0.5", "qty": 2, "Qty": 3}' % T[1]), "error", ":2: column Qty: the key \"Qty\" appears twice (first as \"qty\")", "ok", "1"),
    ("json-nested-object.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0], '{%s, "price": {"value": "0.5"}, "qty": 2}' % T[1]), "error", ":2: column price: the value of \"price\" is a nested object or array", "ok", "1"),
    ("json-nested-array.jsonl", jl('{%s, "bid": 1, "ask": 2}' % T[0], '{%s, "bid": [1], "ask": 2}' % T[1]), "error", "nested object or array", "ok", "1"),
    ("json-wrong-types.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0], '{%s, "price": true, "qty": 2}' % T[1], '{%s, "price": "abc", "qty": 2}' % T[2]), "error", ":2: column price: \"true\" is not a decimal number", "ok", "2"),
    ("json-time-as-object.jsonl", jl('{"ts": {"s": 1}, "price": "0.5", "qty": 2}'), "error", "nested object or array", "error", "="),
    ("json-null-price.jsonl", jl('{%s, "price": null, "qty": 2}' % T[0], '{%s, "price": "0.5", "qty": 2}' % T[1]), "error", ":1: column price: \"\" is not a decimal number", "ok", "1"),
    ("json-missing-key.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0], '{%s, "qty": 2}' % T[1]), "error", ":2: column price: \"\" is not a decimal number", "ok", "1"),
    ("json-array-row.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0], '[1570752011621, "0.5", 2]'), "error", ":2: column *: invalid JSON at byte 1: expected `{`", "ok", "1"),
    ("json-trailing-text.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0], '{%s, "price": "0.5", "qty": 2} {}' % T[1]), "error", "text after the object", "ok", "1"),
    ("json-unclosed.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0], '{%s, "price": "0.5", "qty": 2' % T[1]), "error", ":2: column *: invalid JSON", "ok", "1"),
    ("json-nan-literal.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0], '{%s, "price": NaN, "qty": 2}' % T[1]), "error", "expected a value", "ok", "1"),
    ("json-number-1e400.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0], '{%s, "price": 1e400, "qty": 2}' % T[1]), "error", "\"1e400\" does not fit exactly in 28 digits", "ok", "1"),
    ("json-leading-zero.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0], '{%s, "price": 00.5, "qty": 2}' % T[1]), "error", "is not a JSON number", "ok", "1"),
    ("json-exact-float.jsonl", jl('{%s, "price": 0.30000000000000004, "qty": 12345678901234567890.123456}' % T[0]), "ok", "-", "ok", "0"),
    ("json-escapes-and-blank-lines.jsonl", b"\n" + jl('{"t\\u0073": 1570752011620, "price": "0.5", "qty": 2, "note": "a\\"b\\n"}') + b"\n  \n" + jl('{%s, "price": "0.5", "qty": 2}' % T[1]), "ok", "-", "ok", "0"),
    ("json-crlf.jsonl", b'{"ts": 1570752011620, "bid": 1, "ask": 2}\r\n{"ts": 1570752011621, "bid": 1, "ask": 300}\r\n', "ok", "-", "ok", "0"),
    ("json-bad-escape.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0], '{%s, "price": "0.\\x5", "qty": 2}' % T[1]), "error", ":2: column *: invalid JSON", "ok", "1"),
    ("json-unpaired-surrogate.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0], '{%s, "price": "\\ud800", "qty": 2}' % T[1]), "error", ":2: column *: invalid JSON", "ok", "1"),
    ("json-control-char-in-string.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0]) + b'{"ts": 1570752011621, "price": "0.\x015", "qty": 2}\n', "error", ":2: column *: invalid JSON", "ok", "1"),
    ("json-nul-line.jsonl", jl('{%s, "price": "0.5", "qty": 2}' % T[0]) + b"\x00\x00\x00\n", "error", ":2: column *: invalid JSON", "ok", "1"),

    # The files quants have: pandas' and yfinance's layouts, `;` and tabs, dates with the
    # year last, zones by name, a time column by name. Rows cut from the real files
    # (spy-daily, ORCL from Yahoo), written as those tools write them, then broken. The
    # last field, when there, is the read's options (see README.md).
    ("pandas-index.csv", b",open,high,low,close,volume\n1998-01-02,97.31,97.53,96.53,97.36,2150000\n1998-01-05,97.84,98.44,96.78,97.75,4030800\n", "ok", "-", "ok", "0"),
    ("pandas-index-bad-time.csv", b",open,high,low,close,volume\n1998-01-02,97.31,97.53,96.53,97.36,2150000\n1998-01-0x,97.84,98.44,96.78,97.75,4030800\n", "error", ":3: column (index): \"1998-01-0x\" does not match", "ok", "1"),
    ("pandas-index-nan-row.csv", b",open,high,low,close,volume\n1998-01-02,97.31,97.53,96.53,97.36,2150000\n1998-01-05,,,,,\n", "error", ":3: column open: \"\" is not a decimal number", "ok", "1"),
    ("pandas-range-index-and-time-column.csv", b",date,open,high,low,close\n0,1998-01-02,97.31,97.53,96.53,97.36\n1,1998-01-05,97.84,98.44,96.78,97.75\n", "ok", "-", "ok", "0"),
    ("yfinance-header.csv", b"Price,Adj Close,Close,High,Low,Open,Volume\nTicker,ORCL,ORCL,ORCL,ORCL,ORCL,ORCL\nDate,,,,,,\n1995-01-03,1.883304,2.117284,2.191358,2.117284,2.179012,36301200\n1995-01-04,1.899776,2.135803,2.148148,2.092592,2.123457,46051600\n", "ok", "-", "ok", "0"),
    ("yfinance-header-crlf-bad-row.csv", b"Price,Adj Close,Close,High,Low,Open,Volume\r\nTicker,ORCL,ORCL,ORCL,ORCL,ORCL,ORCL\r\nDate,,,,,,\r\n1995-01-03,1.883304,2.117284,2.191358,2.117284,2.179012,36301200\r\n1995-01-04,1.899776,2.135803,2.148148,2.092592,-2.123457,46051600\r\n", "error", ":5: column open: price -2.123457 is not positive", "ok", "1"),
    ("yfinance-header-only.csv", b"Price,Close,High,Low,Open,Volume\nTicker,ORCL,ORCL,ORCL,ORCL,ORCL\nDate,,,,,\n", "error", "no data rows", "error", "="),
    ("yfinance-two-tickers.csv", b"Price,Close,Close,High,High,Low,Low,Open,Open\nTicker,ORCL,SPY,ORCL,SPY,ORCL,SPY,ORCL,SPY\nDate,,,,,,,,\n1998-01-02,2.1,97.36,2.2,97.53,2.0,96.53,2.1,97.31\n", "error", "several tickers (ORCL, SPY) and none is the instrument X", "error", "="),
    ("yfinance-short-ticker-row.csv", b"Price,Close,High,Low,Open\nTicker,ORCL\nDate,,,,\n1995-01-03,2.117284,2.191358,2.117284,2.179012\n", "error", "no time column", "error", "="),
    ("semicolon-decimal-comma.csv", b"Date;Open;High;Low;Close\n13.01.1998;97,31;97,53;96,53;97,36\n", "error", ":2: column open: \"97,31\" is not a decimal number (write decimals with a point", "error", "no data rows"),
    ("tab-quoted-fields.csv", b"\"date\"\t\"open\"\t\"high\"\t\"low\"\t\"close\"\n\"1998-01-02\"\t\"97.31\"\t\"97.53\"\t\"96.53\"\t\"97.36\"\n", "ok", "-", "ok", "0"),
    ("dmy-told-by-line-4.csv", b"Date;Open;High;Low;Close\n02/01/1998;97.31;97.53;96.53;97.36\n12/01/1998;97.84;98.44;96.78;97.75\n13/01/1998;97.25;97.28;96.19;96.63\n", "ok", "-", "ok", "0"),
    ("dates-ambiguous-everywhere.csv", b"Date,Open,High,Low,Close\n02/01/1998,97.31,97.53,96.53,97.36\n05/01/1998,97.84,98.44,96.78,97.75\n", "error", ":2: column date: \"02/01/1998\" is 1 February (MM/DD/YYYY) or 2 January (DD/MM/YYYY), and no row of the file has a day above 12", "error", "="),
    ("dates-ambiguous-given-dmy.csv", b"Date,Open,High,Low,Close\n02/01/1998,97.31,97.53,96.53,97.36\n05/01/1998,97.84,98.44,96.78,97.75\n", "ok", "-", "ok", "0", "date_format=DD/MM/YYYY"),
    ("dates-contradicting.csv", b"Date,Open,High,Low,Close\n01/13/1998,97.31,97.53,96.53,97.36\n14/01/1998,97.84,98.44,96.78,97.75\n", "error", ":3: column date: \"14/01/1998\": month out of range (the file's time layout is MM/DD/YYYY, set by line 2)", "ok", "1"),
    ("dates-no-day-or-month.csv", b"Date,Open,High,Low,Close\n32/13/1998,97.31,97.53,96.53,97.36\n", "error", ":2: column date: \"32/13/1998\" is not a time we read", "error", "no data rows"),
    ("dates-two-digit-year.csv", b"Date,Open,High,Low,Close\n01/13/98,97.31,97.53,96.53,97.36\n", "error", ":2: column date: \"01/13/98\" is not a time we read", "error", "no data rows"),
    ("dates-year-first-dots.csv", b"time,bid,ask\n2014.05.08 05:00:17,1.39147,1.39148\n2014.05.08 05:00:18,1.39147,1.39149\n", "ok", "-", "ok", "0"),
    ("dst-gap-new-york.csv", b"time,price,size\n2021-03-14 01:59:00,10,1\n2021-03-14 02:30:00,10,1\n2021-03-14 03:00:00,10,1\n", "error", ":3: column time: \"2021-03-14 02:30:00\" in America/New_York: does not exist there", "ok", "1", "tz=America/New_York"),
    ("dst-fold-new-york.csv", b"time,price,size\n2021-11-07 01:30:00,10,1\n2021-11-07 01:59:00,10,1\n2021-11-07 01:00:00,10,1\n2021-11-07 01:30:00,10,1\n", "ok", "-", "ok", "0", "tz=America/New_York"),
    ("dst-fold-out-of-order.csv", b"time,price,size\n2021-11-07 01:59:00,10,1\n2021-11-07 01:00:00,10,1\n2021-11-07 00:30:00,10,1\n", "error", ":4: time 2021-11-07T04:30:00.000000Z is before", "error", "=", "tz=America/New_York"),
    ("time-column-missing.csv", b"ts,price,size\n1577836801,10,1\n", "error", "no column \"when\" to take the times from", "error", "=", "time_column=when"),
    ("time-column-local-receive.csv", b"local_ts_ns,trade_ts_ms,price,qty\n1723161254087891268,1723161252000,61837.63,0.1\n1723161254116723068,1723161252100,61837.64,0.2\n", "ok", "-", "ok", "0", "time_column=Local TS NS"),
]


def main():
    for name in os.listdir(HERE):
        if name not in ("make.py", "README.md"):
            os.remove(os.path.join(HERE, name))
    rows = ["# file\tstrict\tmessage\tlenient\tskipped (lenient ok) or message (lenient error; = for the strict one)\toptions"]
    seen = set()
    for name, data, strict, message, lenient, extra, *options in CASES:
        assert name not in seen, name
        seen.add(name)
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        assert "\t" not in message and "\t" not in extra
        rows.append("\t".join([name, strict, message or "-", lenient, extra, ";".join(options) or "-"]))
    with open(os.path.join(HERE, "expected.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    print(f"{len(CASES)} files")


if __name__ == "__main__":
    main()
