//! `ledger kill-switch`: show, trip or reset the kill switch. Trips and resets are events
//! of the operator run (run 0), so they are in the chain like everything else.
//!
//! Who and why are stored forever and printed by `ledger events`: `--by` and `--reason`
//! are checked before the ledger is opened ([`operator_text`]): trimmed, not empty, at
//! most [`MAX_BY_CHARS`] and [`MAX_REASON_CHARS`] characters, no control characters.
//!
//! While a session runs, the command goes to it through its control endpoint: the session
//! records it before its next cycle, makes it durable, and answers with the seq.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};
use ledger_adapters::clock::WallClock;
use ledger_core::event::{EventDraft, KillSwitchReset, KillSwitchTripped, KillTrigger, Payload};
use ledger_core::ids::{CycleId, RunId};
use ledger_core::log::EventLog;
use ledger_core::runner::Observer;
use ledger_core::time::Clock;
use ledger_projections::Folds;
use rust_decimal::Decimal;

use crate::args::KillSwitchCommand;
use crate::commands::{access, Access};
use crate::control::Client;
use crate::describe;
use crate::session_link::OperatorCommand;
use crate::store::Ledger;
use crate::Outcome;

/// Operator commands are recorded under this run id.
const OPERATOR_RUN: RunId = RunId::new(0);
/// Longest `--by`, characters.
pub const MAX_BY_CHARS: usize = 64;
/// Longest `--reason`, characters.
pub const MAX_REASON_CHARS: usize = 500;

pub fn run(data_dir: &Path, command: &KillSwitchCommand) -> Result<Outcome> {
    let command = match command {
        KillSwitchCommand::Status => KillSwitchCommand::Status,
        KillSwitchCommand::Trip { by, reason } => KillSwitchCommand::Trip {
            by: operator_text("--by", by, MAX_BY_CHARS)?,
            reason: operator_text("--reason", reason, MAX_REASON_CHARS)?,
        },
        KillSwitchCommand::Reset { by, reason } => KillSwitchCommand::Reset {
            by: operator_text("--by", by, MAX_BY_CHARS)?,
            reason: operator_text("--reason", reason, MAX_REASON_CHARS)?,
        },
    };
    match access(data_dir)? {
        Access::Session(session) => through_session(session, command),
        Access::Ledger(ledger) => direct(*ledger, &command),
    }
}

/// A running session records the command in its ledger (durable before it answers).
fn through_session(mut session: Client, command: KillSwitchCommand) -> Result<Outcome> {
    let (command, done) = match command {
        KillSwitchCommand::Status => {
            let tripped = session.status()?.kill_switch_tripped;
            println!("kill switch: {}", if tripped { "TRIPPED" } else { "armed" });
            return Ok(Outcome::Ok);
        }
        KillSwitchCommand::Trip { by, reason } => (OperatorCommand::Trip { by, reason }, "tripped"),
        KillSwitchCommand::Reset { by, reason } => (OperatorCommand::Reset { by, reason }, "reset"),
    };
    match session.kill_switch(command)? {
        Ok(seq) => println!("kill switch {done} (seq {seq})"),
        Err(refusal) => bail!("{refusal}"),
    }
    Ok(Outcome::Ok)
}

/// No session: the command is recorded here, under the operator run.
fn direct(mut ledger: Ledger, command: &KillSwitchCommand) -> Result<Outcome> {
    let tripped = ledger.kill_switch.is_tripped();
    let (payload, done) = match command {
        KillSwitchCommand::Status => {
            println!("kill switch: {}", if tripped { "TRIPPED" } else { "armed" });
            return Ok(Outcome::Ok);
        }
        KillSwitchCommand::Reset { by, reason } => {
            if !tripped {
                bail!("the kill switch is not tripped; nothing to reset");
            }
            (
                Payload::KillSwitchReset(KillSwitchReset {
                    by: Arc::from(by.as_str()),
                    reason: Arc::from(reason.as_str()),
                }),
                "reset",
            )
        }
        KillSwitchCommand::Trip { by, reason } => {
            if tripped {
                bail!("the kill switch is already tripped");
            }
            let reason = Arc::from(format!("tripped by {by}: {reason}").as_str());
            let trip =
                KillSwitchTripped { trigger: KillTrigger::Command, value: Decimal::ONE, limit: Decimal::ONE, reason };
            (Payload::KillSwitchTripped(trip), "tripped")
        }
    };
    let now = WallClock.now();
    let draft = EventDraft {
        run_id: OPERATOR_RUN,
        cycle_id: CycleId::new(0),
        causation_seq: None,
        ts_event: now,
        ts_recorded: now,
        payload,
    };
    let first = ledger.log.head().seq.next();
    let mut folds = Folds::new().with(&mut ledger.runs).with(&mut ledger.kill_switch);
    folds.observe(first, std::slice::from_ref(&draft));
    drop(folds);
    let receipt = ledger.log.append(&mut vec![draft])?;
    ledger.log.sync()?;
    ledger.save_folds()?;
    println!("kill switch {done} (seq {})", receipt.last);
    Ok(Outcome::Ok)
}

/// An operator's `--by` or `--reason`, trimmed.
///
/// # Errors
/// Empty after trimming, longer than `max` characters, or holding a control character
/// ([`describe::is_control`]); the message names the flag.
pub fn operator_text(flag: &str, text: &str, max: usize) -> Result<String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("{flag} must not be empty");
    }
    if let Some(c) = trimmed.chars().find(|&c| describe::is_control(c)) {
        bail!(
            "{flag} {}: control characters are not allowed (found {})",
            describe::quoted(&trimmed.chars().take(max).collect::<String>()),
            describe::safe(&c.to_string())
        );
    }
    let chars = trimmed.chars().count();
    if chars > max {
        bail!("{flag} is {chars} characters long: at most {max}");
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_text_is_trimmed_bounded_and_printable() {
        // (label, text, max, Ok(stored) or Err(part of the message))
        let cases: [(&str, &str, usize, Result<&str, &str>); 7] = [
            ("TC0: plain", "alice", 64, Ok("alice")),
            ("TC1: trimmed", "  alice \t", 64, Ok("alice")),
            ("TC2: only spaces", "   ", 64, Err("--by must not be empty")),
            ("TC3: too long", "é".repeat(65).leak(), 64, Err("is 65 characters long: at most 64")),
            ("TC4: exactly the limit", "é".repeat(64).leak(), 64, Ok("é".repeat(64).leak())),
            ("TC5: a newline inside", "a\nb", 64, Err("control characters are not allowed (found \\u{a})")),
            ("TC6: a bidi override", "a\u{202e}b", 64, Err("(found \\u{202e})")),
        ];
        for (label, text, max, expected) in cases {
            match (operator_text("--by", text, max), expected) {
                (Ok(stored), Ok(want)) => assert_eq!(stored, want, "{label}"),
                (Err(error), Err(part)) => assert!(error.to_string().contains(part), "{label}: {error}"),
                (got, want) => panic!("{label}: got {got:?}, want {want:?}"),
            }
        }
    }
}
