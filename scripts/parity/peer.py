#!/usr/bin/env python3
"""backtesting.py 0.6.6 on the parity test's runs: an SMA cross, printed as JSON.

    peer.py --data FILE --fast N --slow N --commission RATE --cash CASH [--long-only] [--finalize]
            [--sl FRACTION] [--tp FRACTION] [--trail FRACTION]

The strategy is backtesting.py's README `SmaCross` (`lib.crossover` of two `SMA`s of the
close): on a cross up `position.close()` then `buy()`; on a cross down `position.close()`
then `sell()` (with `--long-only`, only the close). Fills at the next bar's open (its
default), commission a fraction of notional on entry and exit, no spread, whole units,
`buy()`/`sell()` of all the equity available (its default size). `--finalize` runs with
`finalize_trades=True`.

Protective exits as the ledger places them (`[exits]`): `--sl` and `--tp` give every
entry a stop-loss and a take-profit that fraction from the close it was decided at
(`buy(sl=close * (1 - sl), tp=close * (1 + tp))`, mirrored for shorts); `--trail` gives
it a stop that fraction from its fill price (the next bar's open), then moved after
every bar toward that bar's high (a long) or low (a short), never back, as the ledger's
trailing stop does. The trailing stops move before the signal's orders are placed, so
a close goes first in backtesting.py's queue, as in the ledger.

Prints one JSON object: the bars, every closed trade (size, entry and exit bar, time and
price, P&L, return), the trades still open, and every statistic of `compute_stats` under
its own name (NaN as null, Timedeltas in days, Timestamps as ISO text).
"""

import argparse
import json
import math
import warnings

import backtesting
import numpy as np
import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover


def SMA(values, n):
    """Simple moving average, as backtesting.test.SMA."""
    return pd.Series(values).rolling(n).mean()


class SmaCross(Strategy):
    fast = 10
    slow = 30
    long_only = False
    sl = 0.0
    tp = 0.0
    trail = 0.0

    def init(self):
        close = self.data.Close
        self.sma1 = self.I(SMA, close, self.fast)
        self.sma2 = self.I(SMA, close, self.slow)
        # The whole series of opens (init sees all the data): a trailing stop starts at
        # its distance from the fill price, the next bar's open.
        self.opens = np.asarray(self.data.Open)

    def next(self):
        if self.trail:
            for trade in self.trades:
                if trade.is_long:
                    trade.sl = max(trade.sl or -np.inf, self.data.High[-1] * (1 - self.trail))
                else:
                    trade.sl = min(trade.sl or np.inf, self.data.Low[-1] * (1 + self.trail))
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy(**self.exits(1))
        elif crossover(self.sma2, self.sma1):
            self.position.close()
            if not self.long_only:
                self.sell(**self.exits(-1))

    def exits(self, sign):
        """The sl and tp of an entry on the side `sign` (1 long, -1 short)."""
        price = self.data.Close[-1]
        exits = {}
        if self.sl:
            exits["sl"] = price * (1 - sign * self.sl)
        if self.tp:
            exits["tp"] = price * (1 + sign * self.tp)
        if self.trail and len(self.data) < len(self.opens):
            exits["sl"] = self.opens[len(self.data)] * (1 - sign * self.trail)
        return exits


def plain(value):
    """A statistic as JSON: numbers as floats (NaN as None), Timedeltas in days,
    Timestamps as ISO text."""
    if isinstance(value, pd.Timedelta):
        return None if pd.isna(value) else value / pd.Timedelta(days=1)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return None if math.isnan(number) else (str(number) if math.isinf(number) else number)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--fast", type=int, required=True)
    parser.add_argument("--slow", type=int, required=True)
    parser.add_argument("--commission", type=float, required=True)
    parser.add_argument("--cash", type=float, required=True)
    parser.add_argument("--long-only", action="store_true")
    parser.add_argument("--finalize", action="store_true")
    parser.add_argument("--sl", type=float, default=0.0)
    parser.add_argument("--tp", type=float, default=0.0)
    parser.add_argument("--trail", type=float, default=0.0)
    args = parser.parse_args()

    data = pd.read_csv(args.data, index_col=0, parse_dates=True)
    data.columns = [c.capitalize() for c in data.columns]
    data = data[["Open", "High", "Low", "Close"] + (["Volume"] if "Volume" in data.columns else [])]
    bt = Backtest(
        data,
        SmaCross,
        cash=args.cash,
        commission=args.commission,
        finalize_trades=args.finalize,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = bt.run(
            fast=args.fast,
            slow=args.slow,
            long_only=args.long_only,
            sl=args.sl,
            tp=args.tp,
            trail=args.trail,
        )
    trades = stats["_trades"]
    strategy = stats["_strategy"]
    open_trades = [
        {"size": int(t.size), "entry_bar": int(t.entry_bar), "entry_price": float(t.entry_price)}
        for t in strategy._broker.trades
    ]
    out = {
        "peer": "backtesting.py",
        "version": backtesting.__version__,
        "bars": len(data),
        "trades": [
            {
                "size": int(t.Size),
                "entry_bar": int(t.EntryBar),
                "exit_bar": int(t.ExitBar),
                "entry_price": float(t.EntryPrice),
                "exit_price": float(t.ExitPrice),
                "entry_time": t.EntryTime.isoformat(),
                "exit_time": t.ExitTime.isoformat(),
                "pnl": float(t.PnL),
                "return_pct": float(t.ReturnPct) * 100,
            }
            for t in trades.itertuples()
        ],
        "open_trades": open_trades,
        "stats": {key: plain(value) for key, value in stats.items() if not key.startswith("_")},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
