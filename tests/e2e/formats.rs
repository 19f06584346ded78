//! The files quants have, through the binary: backtests on pandas', yfinance's and
//! spreadsheets' layouts read to the same report as the source's own layout, a zone by
//! name, the session flags that override the config, and the fill model that follows
//! the data unless one is configured.

use crate::harness::Ledger;

/// The report of an in-memory backtest of `args` (run 1 either way, so reports compare).
fn report(ledger: &Ledger, args: &[&str]) -> String {
    let mut all = vec!["replay", "--in-memory", "--commission", "0.001", "--cash", "10000"];
    all.extend(args);
    ledger.ok(&all)
}

#[test]
fn backtests_on_yfinance_pandas_and_spreadsheet_layouts_match_the_source_layout() {
    let ledger = Ledger::new();
    // TC0: yfinance's three-row header against Yahoo's own layout of the same ORCL rows.
    let yahoo = report(&ledger, &["--data", "fixtures/orcl-daily-yahoo-1995.csv"]);
    let yfinance = report(&ledger, &["--data", "fixtures/orcl-daily-yfinance-1995.csv"]);
    assert!(yahoo.contains("| Ticks ") && yahoo.contains("252"), "{yahoo}");
    assert_eq!(yfinance, yahoo);
    // TC1: pandas' unnamed index, `;` with DD/MM/YYYY, tabs with MM/DD/YYYY: one report
    // (pandas writes 97.31 for 97.3100: the open position's prices show the scale).
    let args = ["--strategy", "sma-cross", "--param", "fast=5", "--param", "slow=20"];
    let dmy = report(&ledger, &[&["--data", "fixtures/spy-daily-dmy-semicolon-1998.csv"][..], &args].concat());
    assert!(dmy.contains("| # Trades ") && dmy.contains("| 13 "), "{dmy}");
    let mdy = report(&ledger, &[&["--data", "fixtures/spy-daily-mdy-1998.tsv"][..], &args].concat());
    assert_eq!(mdy, dmy);
    let pandas = report(&ledger, &[&["--data", "fixtures/spy-daily-pandas-1998.csv"][..], &args].concat());
    let metrics = |report: &str| report.split("| open position").next().unwrap_or_default().to_string();
    assert_eq!(metrics(&pandas), metrics(&dmy));
    // TC2: New York wall-clock minute bars under "Local time": placed at their UTC instants.
    let args = ["--data", "fixtures/spy-1m-newyork-2013-10-07.csv", "--tz", "America/New_York"];
    let new_york = report(&ledger, &[&args[..], &["--time-column", "Local time"]].concat());
    assert!(new_york.contains("2013-10-07T08:00:00.000000Z"), "{new_york}");
}

#[test]
fn bad_layouts_and_zones_are_named() {
    let ledger = Ledger::new();
    let dir = ledger.dir.path();
    // (label, args, stderr part)
    let ambiguous = dir.join("ambiguous.csv");
    std::fs::write(&ambiguous, "Date,Open,High,Low,Close\n01/02/1998,1,1,1,1\n01/03/1998,1,1,1,1\n").unwrap();
    let ambiguous = ambiguous.to_str().unwrap();
    let cases: [(&str, Vec<&str>, &str); 5] = [
        (
            "TC0: dates that read two ways",
            vec!["--data", ambiguous],
            "ambiguous.csv:2: column date: \"01/02/1998\" is 2 January (MM/DD/YYYY) or 1 February (DD/MM/YYYY)",
        ),
        (
            "TC1: an unknown zone",
            vec!["--data", "fixtures/spy-daily-1998-q1.csv", "--tz", "Mars/Olympus"],
            "data.tz = \"Mars/Olympus\": is not a time zone of the IANA database (e.g. America/New_York, Europe/London, Asia/Tokyo, UTC) (flag --tz)",
        ),
        (
            "TC2: a zone and an offset",
            vec!["--data", "fixtures/spy-daily-1998-q1.csv", "--tz", "UTC", "--utc-offset", "-05:00"],
            "cannot be used with",
        ),
        (
            "TC3: a date format of no order",
            vec!["--data", "fixtures/spy-daily-1998-q1.csv", "--date-format", "YYYY-MM-DD"],
            "data.date_format = \"YYYY-MM-DD\": must be MM/DD/YYYY or DD/MM/YYYY (flag --date-format)",
        ),
        (
            "TC4: a time column the header does not have",
            vec!["--data", "fixtures/spy-daily-1998-q1.csv", "--time-column", "when"],
            "no column \"when\" to take the times from (--time-column)",
        ),
    ];
    for (label, args, expected) in cases {
        let run = ledger.run(&[&["replay", "--in-memory"][..], &args].concat());
        assert_eq!(run.code, 2, "{label}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{label}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{label}");
    }
    // With the order given, the same file reads.
    ledger.ok(&["replay", "--in-memory", "--data", ambiguous, "--date-format", "DD/MM/YYYY"]);
}

#[test]
fn the_fill_model_follows_the_data_unless_configured() {
    let ledger = Ledger::new();
    // TC0: quotes and trades without a fill model: filled at the quote, at the trade.
    let quotes = ["replay", "--data", "fixtures/eurusd-quotes-2014-05-08.csv", "--strategy", "ema-rsi"];
    ledger.ok(&quotes);
    let trades = ["replay", "--data", "fixtures/xrpeth-aggtrades-2019-10-11.csv", "--cash", "10"];
    ledger.ok(&trades);
    let events = ledger.ok(&["events", "--json"]);
    let started: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["payload"]["type"] == "RunStarted" || e["payload"].get("RunStarted").is_some())
        .collect();
    let configs: Vec<String> = started.iter().map(|e| e.to_string()).collect();
    assert_eq!(configs.len(), 2, "{events}");
    assert!(configs[0].contains(r#"\"fill_model\":\"quote\""#), "{}", configs[0]);
    assert!(configs[1].contains(r#"\"fill_model\":\"trade\""#), "{}", configs[1]);
    assert!(events.contains("OrderFilled"), "quotes and trades fill");
    // TC1: a model set that cannot fill on the data is refused, with the fix.
    let run = ledger.run(&[&quotes[..], &["--fill-model", "next_open", "--in-memory"]].concat());
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("holds quotes, which fill model \"next_open\" cannot fill on"), "{}", run.stderr);
    assert!(run.stderr.contains("--fill-model quote"), "{}", run.stderr);
    // TC2: the config's model too.
    let config = ledger.dir.path().join("close.toml");
    std::fs::write(&config, "[venue]\nfill_model = \"close\"\n").unwrap();
    let run = ledger.run(&[&trades[..], &["--in-memory", "--config", config.to_str().unwrap()]].concat());
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("holds trades, which fill model \"close\" cannot fill on"), "{}", run.stderr);
    // TC3: a bars file, then a quotes file, with no model set: one model cannot fill both.
    let run = ledger.run(&[
        "replay",
        "--in-memory",
        "--data",
        "fixtures/spy-daily-1998-q1.csv",
        "--data",
        "fixtures/eurusd-quotes-2014-05-08.csv",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("taken from the first file's data"), "{}", run.stderr);
}

#[test]
fn session_flags_override_the_config_and_are_recorded() {
    let ledger = Ledger::new();
    ledger.ok(&[
        "replay",
        "--config",
        "fixtures/spy-backtest.toml",
        "--data",
        "fixtures/spy-daily-1998-q1.csv",
        "--commission",
        "0.0005",
        "--slippage-bps",
        "2.5",
        "--fill-model",
        "close",
        "--cash",
        "50000",
    ]);
    let events = ledger.ok(&["events", "--limit", "1", "--json"]);
    for part in [
        r#"\"commission_rate\":\"0.0005\""#,
        r#"\"slippage_bps\":\"2.5\""#,
        r#"\"fill_model\":\"close\""#,
        r#"\"starting_cash\":\"50000\""#,
    ] {
        assert!(events.contains(part), "{part} not in {events}");
    }
    // A flag out of range is named as the flag.
    let run = ledger.run(&["replay", "--in-memory", "--data", "fixtures/spy-daily-1998-q1.csv", "--commission", "1.5"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("venue.commission_rate = 1.5: must be in [0, 1)")
            && run.stderr.contains("(flag --commission)"),
        "{}",
        run.stderr
    );
    // --help lists each strategy's parameters and defaults.
    for command in ["replay", "run"] {
        let help = ledger.ok(&[command, "--help"]);
        for part in
            ["sma-cross", "ema-rsi", "fast        [10]", "slow        [50]", "overbought  [70]", "size_pct    [1]"]
        {
            assert!(help.contains(part), "{command} --help lacks {part:?}");
        }
    }
}
