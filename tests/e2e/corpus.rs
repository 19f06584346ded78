//! The bad-input corpus of configurations (`tests/corpus/config/`): each file a real
//! mistake (a value out of range, a wrong type, an unknown key, a bad duration or
//! parameter, a missing file, broken TOML), listed in `expected.tsv` with the exit code
//! and a part of the message. Every one is refused with its message, never a panic,
//! and nothing printed can act on a terminal. A few files at the edges of the ranges
//! are accepted.

use std::collections::BTreeSet;

use crate::harness::{first_control, workspace_root, Ledger};

const CORPUS: &str = "tests/corpus/config";
const DATA: &str = "fixtures/spy-daily-1998-q1.csv";

/// One row of `expected.tsv`.
struct Case {
    file: String,
    code: i32,
    with_data: bool,
    expected: Option<String>,
}

fn cases() -> Vec<Case> {
    let table = std::fs::read_to_string(workspace_root().join(CORPUS).join("expected.tsv")).unwrap();
    table
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 4, "expected.tsv: 4 tab-separated fields: {line:?}");
            Case {
                file: fields[0].to_string(),
                code: fields[1].parse().unwrap(),
                with_data: match fields[2] {
                    "yes" => true,
                    "no" => false,
                    other => panic!("expected.tsv: --data column is yes or no, not {other:?}"),
                },
                expected: (fields[3] != "-").then(|| fields[3].to_string()),
            }
        })
        .collect()
}

#[test]
fn every_config_of_the_corpus_is_refused_with_its_message_and_no_panic() {
    let cases = cases();
    // The table and the folder agree: every file is checked, every row names a file.
    let files: BTreeSet<String> = std::fs::read_dir(workspace_root().join(CORPUS))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    let listed: BTreeSet<String> = cases.iter().map(|c| c.file.clone()).collect();
    assert_eq!(files, listed, "tests/corpus/config and its expected.tsv list different files");
    assert_eq!(listed.len(), cases.len(), "a file is listed twice");
    let mistakes = cases.iter().filter(|c| c.code != 0).count();
    assert!(mistakes >= 60, "the corpus holds {mistakes} mistakes; at least 60 are wanted");

    let ledger = Ledger::new();
    let mut failures = Vec::new();
    for case in &cases {
        let config = format!("{CORPUS}/{}", case.file);
        let mut args = vec!["replay", "--config", &config, "--in-memory"];
        if case.with_data {
            args.extend(["--data", DATA]);
        }
        let run = ledger.run(&args);
        let mut wrong = Vec::new();
        if run.code != case.code {
            wrong.push(format!("exit {} (expected {})", run.code, case.code));
        }
        if let Some(expected) = &case.expected {
            if !run.stderr.contains(expected.as_str()) {
                wrong.push(format!("stderr lacks {expected:?}"));
            }
        }
        if case.code == 0 && !run.stdout.contains("| Ticks ") {
            wrong.push("no report on stdout".to_string());
        }
        if run.stderr.contains("panicked") {
            wrong.push("panicked".to_string());
        }
        if let Some(c) = first_control(&run.stderr).or_else(|| first_control(&run.stdout)) {
            wrong.push(format!("a raw control character {c:?} was printed"));
        }
        if !wrong.is_empty() {
            failures.push(format!("{}: {}\n  stderr: {}", case.file, wrong.join("; "), run.stderr.trim_end()));
        }
    }
    assert!(!ledger.data_dir().exists(), "--in-memory writes nothing");
    assert!(failures.is_empty(), "{} of {} corpus cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
