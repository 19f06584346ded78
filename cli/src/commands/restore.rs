//! `ledger restore --from-nats URL`: a lost or damaged ledger rebuilt from its NATS
//! stream. Every message carries its stored record, so the ledger written is byte for
//! byte the one published: the chain is checked as it is read and again as it is
//! appended, and `ledger verify` gives the same head hash. The restored ledger keeps
//! its id and knows the stream holds all of it, so publishing goes on.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ledger_adapters::nats::{NatsLink, NatsOptions};
use ledger_adapters::sled_log::{Durability, SledLog};
use ledger_core::log::EventLog;

use crate::args::RestoreArgs;
use crate::describe;
use crate::Outcome;

/// Records appended per segment.
const RECORDS_PER_APPEND: usize = 1_000;

pub fn run(data_dir: &Path, args: &RestoreArgs) -> Result<Outcome> {
    if SledLog::exists(data_dir) {
        let log = SledLog::open(data_dir, Durability::Strict)
            .with_context(|| format!("opening {}", describe::path(data_dir)))?;
        if log.head().seq.get() > 0 {
            bail!(
                "{} already holds a ledger (head seq {}): restore into a new --data-dir",
                describe::path(data_dir),
                log.head().seq
            );
        }
    }
    let options = NatsOptions::from_env(&args.from_nats, &args.stream.nats_stream, args.stream.nats_replicas);
    let link = NatsLink::connect(&options, false)?;
    let mut log = SledLog::open(data_dir, Durability::GROUP_DEFAULT)
        .with_context(|| format!("creating the ledger at {}", describe::path(data_dir)))?;
    let mut batch = Vec::with_capacity(RECORDS_PER_APPEND);
    let mut ledger_id = None;
    let mut failure = None;
    let last = link.read_all(&mut |event| {
        if ledger_id.is_none() {
            ledger_id = Some(event.ledger_id.clone());
        }
        batch.push(event.record);
        if batch.len() >= RECORDS_PER_APPEND {
            if let Err(error) = log.append_stored(&batch) {
                failure = Some(error);
                return Err(ledger_adapters::nats::NatsError::Log(ledger_core::log::LogError::WriterStopped(
                    "the restore stopped at a failed append".into(),
                )));
            }
            batch.clear();
        }
        Ok(())
    });
    if let Some(failure) = failure {
        return Err(anyhow::Error::new(failure).context(format!("restoring into {}", describe::path(data_dir))));
    }
    let last = last?;
    log.append_stored(&batch)?;
    if let Some(id) = &ledger_id {
        log.set_ledger_id(id)?;
    }
    log.sync()?;
    log.outbox_mark().record(last)?;
    let head = log.head();
    println!(
        "restored {} events from stream {} at {} into {}: head seq {}, hash {}",
        head.seq,
        describe::safe(&options.stream),
        describe::safe(&options.display_url()),
        describe::path(data_dir),
        head.seq,
        head.hash
    );
    Ok(Outcome::Ok)
}
