//! `ledger verify`: re-reads every record and checks contiguity, decoding and the chain,
//! then checks the folds the ledger keeps as snapshots (the runs index, the kill switch)
//! against the same folds made from the events as they are read. With `--checkpoint`
//! and `--pubkey`, also that the ledger still extends a signed checkpoint
//! ([`super::checkpoint::check`]).

use std::path::Path;

use anyhow::Result;
use ledger_core::verify::{verify_with, Verdict};
use ledger_projections::kill_switch::KillSwitchFold;
use ledger_projections::runs::RunsFold;
use ledger_projections::{Fold, Folds};

use crate::args::VerifyArgs;
use crate::describe;
use crate::store::Ledger;
use crate::Outcome;

pub fn run(data_dir: &Path, args: &VerifyArgs) -> Result<Outcome> {
    let outcome = verify_chain(data_dir)?;
    let (Some(checkpoint), Some(pubkey)) = (&args.checkpoint, &args.pubkey) else { return Ok(outcome) };
    let ledger = Ledger::open_snapshots_only(data_dir)?;
    match super::checkpoint::check(&ledger.log, checkpoint, pubkey)? {
        Ok(extends) => {
            println!("ok: {extends}");
            Ok(outcome)
        }
        Err(problem) => {
            println!("FAILED: {}", describe::safe(&problem));
            Ok(Outcome::CheckFailed)
        }
    }
}

fn verify_chain(data_dir: &Path) -> Result<Outcome> {
    // The kept folds as their snapshots left them, caught up here with the same events
    // that fresh folds see from seq 1: they must come out equal.
    let Ledger { log, runs: mut kept_runs, kill_switch: mut kept_kill, snapshot_beyond_head } =
        Ledger::open_snapshots_only(data_dir)?;
    let (mut runs, mut kill_switch) = (RunsFold::default(), KillSwitchFold::default());
    let mut folds = Folds::new().with(&mut runs).with(&mut kill_switch).with(&mut kept_runs).with(&mut kept_kill);
    let verdict = verify_with(&log, Some(&mut |event| folds.apply(&event.as_ref())))?;
    drop(folds);
    if let (Verdict::Intact { records, .. }, Some(covers)) = (&verdict, snapshot_beyond_head) {
        println!(
            "FAILED at seq {}: missing records: the ledger's snapshots cover seq {covers} ({records} events before it are intact)",
            records + 1
        );
        return Ok(Outcome::CheckFailed);
    }
    if matches!(verdict, Verdict::Intact { .. }) {
        let stale = [("runs index", runs != kept_runs), ("kill switch", kill_switch != kept_kill)];
        if let Some((name, _)) = stale.iter().find(|(_, differs)| *differs) {
            println!(
                "FAILED: the {name} kept as a snapshot does not match the events (covers seq {}); the records are intact: delete the ledger's snapshots to rebuild it",
                runs.covers()
            );
            return Ok(Outcome::CheckFailed);
        }
    }
    match verdict {
        Verdict::Intact { records: 0, .. } => {
            println!("ok: the ledger is empty");
            Ok(Outcome::Ok)
        }
        Verdict::Intact { records, head } => {
            println!("ok: {records} events, seq 1..={}, chain intact, head {}", head.seq, head.hash);
            Ok(Outcome::Ok)
        }
        Verdict::Broken(failure) => {
            println!(
                "FAILED at seq {}: {} ({} events before it are intact)",
                failure.seq,
                describe::safe(&failure.problem.to_string()),
                failure.good_records
            );
            Ok(Outcome::CheckFailed)
        }
    }
}
