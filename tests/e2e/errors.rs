//! Bad input: clear errors naming what is wrong, exit code 2, nothing written.

use crate::harness::Ledger;

#[test]
fn a_malformed_data_file_names_file_and_line() {
    let ledger = Ledger::new();
    let run = ledger.run(&["replay", "--data", "fixtures/malformed-extra-time-field.csv"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("malformed-extra-time-field.csv:2: column *: 8 fields, the header has 7"),
        "{}",
        run.stderr
    );
    assert!(!ledger.data_dir().exists(), "nothing should be written for bad input");
}

#[test]
fn an_unknown_config_key_names_the_key_and_the_file() {
    let ledger = Ledger::new();
    let config = ledger.dir.path().join("bad.toml");
    std::fs::write(&config, "[venue]\nfill_modle = \"close\"\n").unwrap();
    let run = ledger.run(&["replay", "--config", config.to_str().unwrap(), "--data", "fixtures/spy-daily-1998-q1.csv"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("bad.toml")
            && run.stderr.contains("venue.fill_modle: unknown key; the keys in [venue] are"),
        "{}",
        run.stderr
    );
}

#[test]
fn reading_commands_refuse_a_missing_ledger() {
    let ledger = Ledger::new();
    for args in [&["verify"][..], &["runs"], &["events"], &["report", "--run", "1"]] {
        let run = ledger.run(args);
        assert_eq!(run.code, 2, "{args:?}");
        assert!(run.stderr.contains("no ledger at"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn unknown_strategy_and_bad_params_are_errors() {
    let ledger = Ledger::new();
    let data = "fixtures/spy-daily-1998-q1.csv";
    let cases: [(&[&str], &str); 3] = [
        (&["--strategy", "moon"], "unknown strategy \"moon\""),
        (&["--param", "fast=30", "--param", "slow=10"], "needs 0 < fast < slow"),
        (&["--param", "speed=1"], "unknown parameter \"speed\""),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["replay", "--data", data];
        args.extend_from_slice(extra);
        let run = ledger.run(&args);
        assert_eq!(run.code, 2, "{extra:?}");
        assert!(run.stderr.contains(expected), "{extra:?}: {}", run.stderr);
    }
}

#[test]
fn every_command_has_help_with_an_example() {
    let ledger = Ledger::new();
    for command in ["runs", "events", "verify", "replay", "run", "report", "kill-switch", "checkpoint", "audit"] {
        let help = ledger.ok(&[command, "--help"]);
        assert!(help.contains("Example"), "{command} --help has no example");
    }
    for command in ["export", "verify", "keygen"] {
        let help = ledger.ok(&["audit", command, "--help"]);
        assert!(help.contains("Example"), "audit {command} --help has no example");
    }
}

#[test]
fn a_fill_model_that_cannot_fill_on_the_data_is_refused_with_the_fix() {
    let ledger = Ledger::new();
    let config = ledger.dir.path().join("bars.toml");
    std::fs::write(&config, "[venue]\nfill_model = \"next_open\"\n").unwrap();
    let data = "fixtures/eurusd-quotes-2014-05-08.csv";
    let run = ledger.run(&["replay", "--data", data, "--config", config.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("holds quotes, which fill model \"next_open\" cannot fill on"), "{}", run.stderr);
    assert!(run.stderr.contains("fill_model = \"quote\""), "{}", run.stderr);
}

#[test]
fn a_bad_value_is_named_with_its_origin_and_all_problems_come_together() {
    let ledger = Ledger::new();
    let config = ledger.dir.path().join("ranges.toml");
    std::fs::write(&config, "[venue]\ncommission_rate = \"1.5\"\n[ledger]\ncycles_per_append = 0\n").unwrap();
    let config = config.to_str().unwrap();
    let mut command = ledger.command(&[
        "replay",
        "--config",
        config,
        "--data",
        "fixtures/spy-daily-1998-q1.csv",
        "--cash=-5",
        "--param",
        "fast=0",
    ]);
    command.env("LEDGER_KILL_SWITCH__MAX_DRAWDOWN", "2").env("LEDGER_RISK__COOLDOWN", "-1");
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // (label, the line that must be there)
    let cases = [
        ("TC0: the file", format!("venue.commission_rate = 1.5: must be in [0, 1) (a fraction of notional: 0.001 = 0.1%) (config {config})")),
        ("TC1: the file, a second problem", format!("ledger.cycles_per_append = 0: must be in [1, 65536] (config {config})")),
        ("TC2: a flag", "account.starting_cash = -5: must be > 0 and at most 1e15 (1000000000000000) (flag --cash)".to_string()),
        ("TC3: a --param", "provider.params.fast = \"0\": must be a whole number of bars in [1, 100000] (flag --param fast=)".to_string()),
        ("TC4: the environment", "kill_switch.max_drawdown = 2: must be in (0, 1] (a fraction) (environment LEDGER_KILL_SWITCH__MAX_DRAWDOWN)".to_string()),
        ("TC5: the environment, by a key's short spelling", "risk.cooldown_ns = -1: must be >= 0 ns when set (environment LEDGER_RISK__COOLDOWN)".to_string()),
    ];
    for (label, line) in &cases {
        assert!(stderr.lines().any(|l| l.trim() == line), "{label}: no line {line:?} in\n{stderr}");
    }
    assert!(stderr.starts_with("error: invalid configuration, 6 problems:\n"), "{stderr}");
    assert!(!ledger.data_dir().exists(), "nothing should be written for bad input");
}

#[test]
fn a_decimal_with_more_digits_than_a_float_holds_must_be_quoted() {
    let ledger = Ledger::new();
    let config = ledger.dir.path().join("float.toml");
    std::fs::write(&config, "[venue]\ncommission_rate = 0.00100000000000000000001\n").unwrap();
    let run = ledger.run(&["replay", "--config", config.to_str().unwrap(), "--data", "fixtures/spy-daily-1998-q1.csv"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("venue.commission_rate = 0.00100000000000000000001: has more digits than a float holds (it would be read as 0.001): quote it, commission_rate = \"0.00100000000000000000001\""),
        "{}",
        run.stderr
    );
    // Quoted, it is exact and accepted; a short float is accepted as written.
    for text in ["\"0.00100000000000000000001\"", "0.001"] {
        std::fs::write(&config, format!("[venue]\ncommission_rate = {text}\n")).unwrap();
        ledger.ok(&[
            "replay",
            "--config",
            config.to_str().unwrap(),
            "--data",
            "fixtures/spy-daily-1998-q1.csv",
            "--in-memory",
        ]);
    }
}

#[test]
fn kill_switch_flags_are_required_trimmed_bounded_and_printable() {
    let ledger = Ledger::new();
    ledger.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv"]);
    let long_by = "b".repeat(65);
    let long_reason = "r".repeat(501);
    // (label, trip args, what stderr must say)
    let cases: [(&str, Vec<&str>, &str); 8] = [
        ("TC0: --reason missing", vec!["--by", "alice"], "--reason <REASON>"),
        ("TC1: --by blank", vec!["--by", "   ", "--reason", "drill"], "--by must not be empty"),
        ("TC2: --reason empty", vec!["--by", "alice", "--reason", ""], "--reason must not be empty"),
        ("TC3: --by too long", vec!["--by", &long_by, "--reason", "drill"], "--by is 65 characters long: at most 64"),
        (
            "TC4: --reason too long",
            vec!["--by", "alice", "--reason", &long_reason],
            "--reason is 501 characters long: at most 500",
        ),
        (
            "TC5: a newline in --reason",
            vec!["--by", "alice", "--reason", "drill\nerror: forged"],
            "--reason \"drill\\u{a}error: forged\": control characters are not allowed (found \\u{a})",
        ),
        ("TC6: an escape in --by", vec!["--by", "al\u{1b}[2Jice", "--reason", "drill"], "--by \"al\\u{1b}[2Jice\""),
        ("TC7: a bidi override in --reason", vec!["--by", "alice", "--reason", "\u{202e}llird"], "(found \\u{202e})"),
    ];
    for (label, extra, expected) in &cases {
        for command in ["trip", "reset"] {
            let mut args = vec!["kill-switch", command];
            args.extend(extra.iter().copied());
            let run = ledger.run(&args);
            assert_eq!(run.code, 2, "{label} {command}: {}", run.stderr);
            assert!(run.stderr.contains(expected), "{label} {command}: {}", run.stderr);
            assert_eq!(crate::harness::first_control(&run.stderr), None, "{label} {command}: {:?}", run.stderr);
        }
    }
    assert!(!ledger.ok(&["runs"]).contains("operator"), "a refused command records nothing");
    // At the limits, and trimmed: recorded.
    let (by, reason) = (format!("  {}  ", "b".repeat(64)), "r".repeat(500));
    ledger.ok(&["kill-switch", "trip", "--by", &by, "--reason", &reason]);
    ledger.ok(&["kill-switch", "reset", "--by", " bob ", "--reason", " drill over\t"]);
    let operator = ledger.ok(&["events", "--run", "0", "--json"]);
    assert!(operator.contains(&format!("tripped by {}: {reason}", "b".repeat(64))), "{operator}");
    assert!(operator.contains("\"by\":\"bob\",\"reason\":\"drill over\""), "{operator}");
}
