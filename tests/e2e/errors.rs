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
    for command in ["runs", "events", "verify", "replay", "run", "report", "kill-switch"] {
        let help = ledger.ok(&[command, "--help"]);
        assert!(help.contains("Example"), "{command} --help has no example");
    }
}

#[test]
fn a_fill_model_that_cannot_fill_on_the_data_is_refused_with_the_fix() {
    let ledger = Ledger::new();
    let run = ledger.run(&["replay", "--data", "fixtures/eurusd-quotes-2014-05-08.csv"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("holds quotes, which fill model NextOpen cannot fill on"), "{}", run.stderr);
    assert!(run.stderr.contains("fill_model = \"quote\""), "{}", run.stderr);
}
