//! Terminal-safe output: text from data files, decision files, paths, flags (clap's
//! own errors too) and operators is shown with its control characters escaped (`\u{1b}`) in every table,
//! log line and error message, so it cannot move the cursor, recolour, reorder a line
//! or forge a row; `--json` keeps it exact.

use std::path::Path;

use serde_json::Value;

use crate::harness::{first_control, fixture, Ledger};

/// ESC with a colour, then a right-to-left override.
const HOSTILE: &str = "\u{1b}[31m\u{202e}";
/// How [`HOSTILE`] reads once escaped.
const HOSTILE_SHOWN: &str = "\\u{1b}[31m\\u{202e}";

fn copy_fixture(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::copy(fixture("spy-daily-1998-q1.csv"), &path).unwrap();
    path.to_str().unwrap().to_string()
}

fn assert_safe(label: &str, text: &str) {
    assert_eq!(first_control(text), None, "{label}: a raw control character in {text:?}");
}

#[test]
fn a_data_path_with_escapes_is_shown_escaped_and_recorded_exactly() {
    let ledger = Ledger::new();
    let data = copy_fixture(ledger.dir.path(), &format!("spy{HOSTILE}x.csv"));
    // TC0: the instrument named from such a file name is refused, the name escaped.
    let refused = ledger.run(&["replay", "--data", &data]);
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains(&format!("spy{HOSTILE_SHOWN}x.csv")), "{}", refused.stderr);
    assert_safe("TC0 stderr", &refused.stderr);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    // TC1: with --instrument the run goes ahead; the table shows the path escaped.
    let report =
        ledger.ok(&["replay", "--data", &data, "--instrument", "SPY", "--param", "fast=2", "--param", "slow=5"]);
    assert_safe("TC1 report", &report);
    let table = ledger.ok(&["events", "--limit", "3"]);
    assert_safe("TC1 events", &table);
    assert!(table.contains(&format!("spy{HOSTILE_SHOWN}x.csv")), "{table}");
    assert_safe("TC1 runs", &ledger.ok(&["runs"]));
    assert_safe("TC1 report --run", &ledger.ok(&["report", "--run", "1"]));
    // TC2: --json keeps the text exact.
    let json = ledger.ok(&["events", "--limit", "1", "--json"]);
    let started: Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    let source = started["payload"]["RunStarted"]["data_source"].as_str().unwrap();
    assert!(source.starts_with(&data), "{source:?}");
}

#[test]
fn an_instrument_a_config_path_and_a_data_error_echo_input_escaped() {
    let ledger = Ledger::new();
    let dir = ledger.dir.path();
    // TC0: --instrument with an escape and a bidi override.
    let instrument = format!("SPY{HOSTILE}");
    let run = ledger.run(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv", "--instrument", &instrument]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains(&format!("data.instrument = \"SPY{HOSTILE_SHOWN}\"")), "{}", run.stderr);
    assert_safe("TC0", &run.stderr);
    // TC1: a config file whose name holds an escape and whose value is out of range.
    let config = dir.join(format!("bad{HOSTILE}.toml"));
    std::fs::write(&config, "[venue]\nslippage_bps = \"-1\"\n").unwrap();
    let run = ledger.run(&["replay", "--config", config.to_str().unwrap(), "--data", "fixtures/spy-daily-1998-q1.csv"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains(&format!("bad{HOSTILE_SHOWN}.toml")), "{}", run.stderr);
    assert_safe("TC1", &run.stderr);
    // TC2: a value in the file with a newline that would forge a line of its own.
    std::fs::write(&config, "[data]\nutc_offset = \"+01:00\\nerror: forged\"\n").unwrap();
    let run = ledger.run(&["replay", "--config", config.to_str().unwrap(), "--data", "fixtures/spy-daily-1998-q1.csv"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("data.utc_offset = \"+01:00\\u{a}error: forged\""), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    // TC3: a data file the reader refuses, whose name holds a newline: the reader's
    // message names the file, and `main` escapes it.
    let bad = dir.join("bad\nerror: forged.csv");
    std::fs::copy(fixture("malformed-extra-time-field.csv"), &bad).unwrap();
    let run = ledger.run(&["replay", "--data", bad.to_str().unwrap(), "--instrument", "X"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("bad\\u{a}error: forged.csv"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert_safe("TC3", &run.stderr);
    // TC4: a flag value clap refuses is echoed by clap: escaped too.
    let run = ledger.run(&["replay", "--cash", &format!("1{HOSTILE}")]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--cash"), "{}", run.stderr);
    assert_safe("TC4", &run.stderr);
}

#[test]
fn decision_reasons_with_control_characters_are_escaped_in_tables_and_exact_in_json() {
    let ledger = Ledger::new();
    let decisions = ledger.dir.path().join("decisions.jsonl");
    let reason = "buy\\u001b[2J\\nseq 1 | forged row\\u202e";
    std::fs::write(
        &decisions,
        format!(
            "{{\"ts\": \"1998-01-05T00:00:00Z\", \"action\": \"long\", \"size_pct\": 0.5, \"confidence\": 0.9, \"reason\": \"{reason}\"}}\n"
        ),
    )
    .unwrap();
    let param = format!("file={}", decisions.display());
    ledger.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv", "--strategy", "script", "--param", &param]);
    let table = ledger.ok(&["events", "--run", "1"]);
    assert_safe("events table", &table);
    assert!(table.contains("(buy\\u{1b}[2J\\u{a}seq 1 | forged row\\u{202e})"), "{table}");
    // Every row of the table is one line: as many lines as events, plus the header.
    let events = ledger.ok(&["events", "--run", "1", "--json"]);
    assert_eq!(table.lines().count(), events.lines().count() + 2, "{table}");
    // JSON keeps the reason exact.
    let made = events.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).find_map(|e| {
        e["payload"]["DecisionMade"]["parsed"]["reason"].as_str().filter(|r| r.starts_with("buy")).map(str::to_string)
    });
    assert_eq!(made.as_deref(), Some("buy\u{1b}[2J\nseq 1 | forged row\u{202e}"));
}
