#!/usr/bin/env python3
"""The peer of the whole-process benchmark: the same SMA cross in backtesting.py 0.6.6.

    backtesting_peer.py FILE.csv

Runs backtesting.py's classic `SmaCross` example (n1=10, n2=30, `crossover`, close then
reverse, so shorts included) on a series written by make-series.py: fills at the next
bar's open (backtesting.py's default), commission 0.001 of notional per fill, starting cash
10,000,000 as in btc-sma.toml. Prints one JSON line on stdout:

    {"peer": "backtesting.py", "bars": ..., "run_s": ..., "script_s": ..., "trades": ..., "equity_final": ...}

`run_s` is `bt.run()` alone (the simulation plus backtesting.py's statistics); `script_s`
is this script from its first line, imports and CSV loading included. The driver also times
the whole Python process with /usr/bin/time -v (interpreter start-up included).
"""

import time

SCRIPT_START = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402

import backtesting  # noqa: E402
import pandas as pd  # noqa: E402
from backtesting import Backtest, Strategy  # noqa: E402
from backtesting.lib import crossover  # noqa: E402

try:
    # 0.6.x has it: trades in multiples of `fractional_unit` (0.001 BTC, the ledger's
    # lot_size) instead of whole BTC (~40,000 each).
    from backtesting.lib import FractionalBacktest
except ImportError:  # older releases: whole units, which 10,000,000 of cash makes ~250 of
    FractionalBacktest = None

CASH = 10_000_000
COMMISSION = 0.001
LOT = 0.001


def SMA(values, n):
    """Simple moving average, as backtesting.test.SMA (defined here so that importing
    backtesting.test does not load its sample data sets)."""
    return pd.Series(values).rolling(n).mean()


class SmaCross(Strategy):
    """backtesting.py's README example, unchanged."""

    n1 = 10
    n2 = 30

    def init(self):
        close = self.data.Close
        self.sma1 = self.I(SMA, close, self.n1)
        self.sma2 = self.I(SMA, close, self.n2)

    def next(self):
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()
            self.sell()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: backtesting_peer.py FILE.csv")
    data = pd.read_csv(sys.argv[1], index_col=0, parse_dates=True)
    data = data.rename(
        columns={"open": "Open", "high": "High", "low": "Low", "close": "Close", "volume": "Volume"}
    )
    if FractionalBacktest is not None:
        bt = FractionalBacktest(data, SmaCross, cash=CASH, commission=COMMISSION, fractional_unit=LOT)
    else:
        bt = Backtest(data, SmaCross, cash=CASH, commission=COMMISSION)

    run_start = time.perf_counter()
    stats = bt.run()
    run_s = time.perf_counter() - run_start

    print(
        json.dumps(
            {
                "peer": "backtesting.py",
                "version": backtesting.__version__,
                "fractional_unit": LOT if FractionalBacktest is not None else 1,
                "bars": len(data),
                "run_s": round(run_s, 3),
                "script_s": round(time.perf_counter() - SCRIPT_START, 3),
                "trades": int(stats["# Trades"]),
                "equity_final": round(float(stats["Equity Final [$]"]), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
