//! `ledger verify`: re-reads every record and checks contiguity, decoding and the chain.

use std::path::Path;

use anyhow::Result;
use ledger_core::verify::{verify, Verdict};

use crate::describe;
use crate::store::Ledger;
use crate::Outcome;

pub fn run(data_dir: &Path) -> Result<Outcome> {
    let ledger = Ledger::open_existing(data_dir)?;
    match verify(&ledger.log)? {
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
