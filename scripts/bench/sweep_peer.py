#!/usr/bin/env python3
"""The peer of the sweep benchmark: backtesting.py 0.6.6's `Backtest.optimize` on the grid
`ledger sweep` runs.

    sweep_peer.py FILE.csv CASH LOT

The classic `SmaCross` (as backtesting_peer.py: `crossover`, close then reverse), next-open
fills, commission 0.001, over n1 = 5..30, n2 = 20..100 step 10 with n1 < n2, maximizing
'Sharpe Ratio' (backtesting.py's grid method, its own multiprocessing). LOT below 1 uses
`FractionalBacktest` with that unit. Prints one JSON line on stdout:

    {"peer": "backtesting.py optimize", "bars": ..., "combinations": ..., "optimize_s": ..., "best": {...}}
"""

import json
import sys
import time

import pandas as pd
from backtesting import Backtest
from backtesting.lib import FractionalBacktest

# The same strategy as the whole-process benchmark's peer (this folder).
from backtesting_peer import SmaCross


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: sweep_peer.py FILE.csv CASH LOT")
    path, cash, lot = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    data = pd.read_csv(path, index_col=0, parse_dates=True)
    data = data.rename(columns=str.capitalize)
    if lot < 1:
        bt = FractionalBacktest(data, SmaCross, cash=cash, commission=0.001, fractional_unit=lot)
    else:
        bt = Backtest(data, SmaCross, cash=cash, commission=0.001)
    n1, n2 = range(5, 31), range(20, 101, 10)
    combinations = sum(1 for a in n1 for b in n2 if a < b)
    start = time.perf_counter()
    stats = bt.optimize(n1=n1, n2=n2, constraint=lambda p: p.n1 < p.n2, maximize="Sharpe Ratio")
    optimize_s = time.perf_counter() - start
    best = {"n1": int(stats._strategy.n1), "n2": int(stats._strategy.n2), "sharpe": float(stats["Sharpe Ratio"])}
    print(json.dumps({"peer": "backtesting.py optimize", "bars": len(data), "combinations": combinations,
                      "optimize_s": round(optimize_s, 3), "best": best}))


if __name__ == "__main__":
    main()
