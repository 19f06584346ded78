#!/usr/bin/env python3
"""Builds N-bar CSV series for the whole-process benchmark from the real BTC-PERP file.

The source (45,031 one-minute bars) is repeated back to back; each copy's times are shifted
past the previous copy by the file's span plus one bar (one minute), so the series stays
strictly increasing with no gap and no overlap. Prices, volumes and the layout (header,
`YYYY-MM-DD HH:MM:SS.ffffff` times, `\\n` line ends) are kept exactly as the source writes
them: only the timestamp column is rewritten.

    make-series.py [--work-dir DIR] [--source FILE] N [N ...]

Prints one path per size, `DIR/btcperp_1m_N.csv`. A file that already exists with N data
rows is reused; one with another row count (e.g. left by an interrupted run) is rebuilt.
Python 3 standard library only.
"""

import argparse
import os
import sys
from datetime import datetime, timedelta

DEFAULT_SOURCE = "/work/shared/data/nautilus_btc-perp_1m_2021-12-31_2022-02-01.csv"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
BAR = timedelta(minutes=1)


def count_rows(path):
    """Data rows (lines after the header) of a file, by counting newlines in big blocks."""
    lines = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            lines += block.count(b"\n")
    return lines - 1


def read_source(path):
    """The header line and the rows as (time, rest of the line after the first comma)."""
    with open(path, newline="") as f:
        header = f.readline()
        if not header.startswith("timestamp,"):
            sys.exit(f"make-series: {path}: expected a `timestamp,...` header, got {header!r}")
        rows = []
        for number, line in enumerate(f, start=2):
            stamp, sep, rest = line.partition(",")
            if not sep or not line.endswith("\n"):
                sys.exit(f"make-series: {path}:{number}: malformed row {line!r}")
            rows.append((datetime.strptime(stamp, TIME_FORMAT), rest))
    if not rows:
        sys.exit(f"make-series: {path}: no rows")
    return header, rows


def write_series(header, rows, n, path):
    """Writes `n` rows to `path` atomically (a temporary file renamed at the end)."""
    span = rows[-1][0] - rows[0][0] + BAR
    tmp = f"{path}.tmp{os.getpid()}"
    written = 0
    copy = 0
    with open(tmp, "w", newline="", buffering=1 << 22) as out:
        out.write(header)
        while written < n:
            shift = span * copy
            take = rows[: n - written]
            # One write per copy: the timestamp is the only field that changes.
            out.write(
                "".join(
                    f"{(t + shift).strftime(TIME_FORMAT)},{rest}" for t, rest in take
                )
            )
            written += len(take)
            copy += 1
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="+", type=int, metavar="N", help="rows per series")
    parser.add_argument("--work-dir", default="/tmp/ledger-bench")
    parser.add_argument("--source", default=DEFAULT_SOURCE)
    args = parser.parse_args()

    os.makedirs(args.work_dir, exist_ok=True)
    source = None
    for n in args.sizes:
        if n <= 0:
            sys.exit(f"make-series: size must be positive, got {n}")
        path = os.path.join(args.work_dir, f"btcperp_1m_{n}.csv")
        if os.path.exists(path) and count_rows(path) == n:
            print(f"make-series: reusing {path}", file=sys.stderr)
        else:
            if source is None:
                source = read_source(args.source)
            print(f"make-series: writing {path} ({n:,} rows)", file=sys.stderr)
            write_series(*source, n, path)
        print(path)


if __name__ == "__main__":
    main()
