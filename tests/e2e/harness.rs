//! Runs the real binary (found through `CARGO_BIN_EXE_ledger`) from the workspace root,
//! so fixture paths in events are the same on every machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Ledger {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ledger {
    pub fn new() -> Self {
        Ledger { dir: tempfile::tempdir().expect("temp dir") }
    }

    /// A copy of the ledger directory `fixtures/<name>` as the data dir (sled writes on
    /// open, so a fixture is never opened in place).
    pub fn from_fixture(name: &str) -> Self {
        let ledger = Ledger::new();
        let target = ledger.data_dir();
        std::fs::create_dir_all(&target).unwrap();
        for entry in std::fs::read_dir(workspace_root().join("fixtures").join(name)).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                continue; // sled's empty blobs/ folder, which git does not keep; sled makes it
            }
            std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
        }
        ledger
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("ledger-data")
    }

    /// `ledger --data-dir <temp> ARGS`, from the workspace root, logging warnings.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
        command.current_dir(workspace_root()).arg("--data-dir").arg(self.data_dir()).args(args).env("RUST_LOG", "warn");
        command
    }

    /// Runs `ledger --data-dir <temp> ARGS` and returns its exit code and output.
    pub fn run(&self, args: &[&str]) -> Run {
        let output: Output = self.command(args).output().expect("the ledger binary runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `ledger ... ARGS` with the API key `key` in the environment variable `var`,
    /// for a model server on loopback (which a proxy configured on the machine must not
    /// take: `NO_PROXY` names it).
    pub fn run_with_key(&self, args: &[&str], var: &str, key: &str) -> Run {
        let output = self
            .command(args)
            .env(var, key)
            .env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1")
            .output()
            .expect("the ledger binary runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs and insists on exit 0.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(run.code, 0, "ledger {args:?} failed:\n{}\n{}", run.stdout, run.stderr);
        run.stdout
    }
}

/// A ledger holding one backtest: SMA 2/5 on the first 60 SPY days of 1998 (run 1, seq
/// 1..=227: a few trades).
pub fn small_ledger() -> Ledger {
    let ledger = Ledger::new();
    ledger.ok(&[
        "replay",
        "--data",
        "fixtures/spy-daily-1998-q1.csv",
        "--strategy",
        "sma-cross",
        "--param",
        "fast=2",
        "--param",
        "slow=5",
    ]);
    ledger
}

pub fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The absolute path of a file in fixtures/, for configs written outside the repository
/// (paths in a config file are relative to its own folder).
pub fn fixture(name: &str) -> String {
    workspace_root().join("fixtures").join(name).display().to_string()
}

/// The first character in `text` that would act on a terminal (a C0 control other than
/// the newlines that end lines, DEL, C1, a bidi control, U+2028/U+2029), if any: what
/// the binary prints for people must hold none.
pub fn first_control(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        c != '\n'
            && matches!(
                c,
                '\u{0}'..='\u{1f}'
                    | '\u{7f}'..='\u{9f}'
                    | '\u{61c}'
                    | '\u{200e}'
                    | '\u{200f}'
                    | '\u{2028}'
                    | '\u{2029}'
                    | '\u{202a}'..='\u{202e}'
                    | '\u{2066}'..='\u{2069}'
            )
    })
}
