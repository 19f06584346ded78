//! `ledger`: the one binary of the trading ledger.
//!
//! `main` turns a command's outcome into an exit code and nothing else:
//! 0 success, 1 a check found a problem, 2 an error (bad input, I/O, configuration).
#![forbid(unsafe_code)]

mod args;
mod binance;
mod commands;
mod config;
mod control;
mod describe;
mod html;
mod logging;
mod outbox;
mod pipeline;
mod session_link;
mod store;

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use ledger_core::log::LogError;

/// What a command reports back to `main`.
pub enum Outcome {
    /// Done; exit 0.
    Ok,
    /// A check ran and found a problem (already printed); exit 1.
    CheckFailed,
}

fn main() -> ExitCode {
    let parsed = args::Cli::command().try_get_matches().and_then(|matches| {
        let mut args = args::Cli::from_arg_matches(&matches)?;
        args.global.data_dir_given = matches.value_source("data_dir").is_some_and(|s| s != ValueSource::DefaultValue);
        Ok(args)
    });
    let args = match parsed {
        Ok(args) => args,
        // --help and --version: clap prints them (stdout, exit 0).
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            // clap's errors echo what was typed: escaped line by line, uncoloured.
            let text = error.render().to_string();
            let lines: Vec<_> = text.trim_end().lines().map(describe::safe).collect();
            eprintln!("{}", lines.join("\n"));
            return ExitCode::from(2);
        }
    };
    logging::init(args.global.log_format);
    // Panics are not for users: the storage turns sled's into errors, and any other is a
    // bug, reported below as one line with exit 2 (never 101 with a backtrace).
    std::panic::set_hook(Box::new(|info| {
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(format!("{message}{place}"));
        }
    }));
    let result = std::panic::catch_unwind(|| commands::dispatch(args)).unwrap_or_else(|_| {
        let what = LAST_PANIC.lock().ok().and_then(|mut last| last.take()).unwrap_or_default();
        Err(anyhow::anyhow!("internal error (a bug; please report it): {what}"))
    });
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::CheckFailed) => ExitCode::from(1),
        Err(error) => {
            if is_broken_pipe(&error) {
                return ExitCode::SUCCESS;
            }
            // Every cause made terminal-safe: errors echo paths, keys and values.
            eprintln!("error: {}", describe::error_text(&error));
            if is_data_damage(&error) {
                eprintln!("the ledger's stored data is damaged: `ledger verify` names the first bad record");
            }
            ExitCode::from(2)
        }
    }
}

/// The last panic's message and place, for the one-line report of a bug.
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Whether the error is damage in stored records (not a failure of the storage itself).
fn is_data_damage(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.downcast_ref::<LogError>().is_some_and(LogError::is_data_damage))
}

/// `ledger events | head` closes the pipe early; that is not an error.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|json| json.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}
