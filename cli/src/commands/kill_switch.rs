//! `ledger kill-switch`: show, trip or reset the kill switch. Trips and resets are events
//! of the operator run (run 0), so they are in the chain like everything else.

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
use crate::store::Ledger;
use crate::Outcome;

/// Operator commands are recorded under this run id.
const OPERATOR_RUN: RunId = RunId::new(0);

pub fn run(data_dir: &Path, command: &KillSwitchCommand) -> Result<Outcome> {
    let mut ledger = Ledger::open_existing(data_dir)?;
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
