//! `ledger checkpoint --sign KEY`: a signed checkpoint of the whole ledger (the RFC 9162
//! Merkle root over every record as stored, and the number of records), and the check
//! behind `ledger verify --checkpoint` that the ledger still extends one. Kept outside
//! the ledger, it is what makes a history rewritten with recomputed hashes detectable:
//! the chain alone cannot.

use std::ops::ControlFlow;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ledger_core::chain::Hash32;
use ledger_core::ids::Seq;
use ledger_core::log::{EventLog, RecordSource};
use ledger_core::verify::{verify, Verdict};
use ledger_projections::merkle::TreeBuilder;
use ledger_projections::note::Checkpoint;

use super::audit::manifest::ledger_origin;
use crate::args::CheckpointArgs;
use crate::describe;
use crate::store::Ledger;
use crate::Outcome;

/// The Merkle tree over the first `size` records of `source` (fewer if it holds
/// fewer), and the stored hash of its first record (the ledger's identity).
///
/// # Errors
/// Storage errors, or a record too short to hold a hash.
pub fn ledger_tree(source: &dyn RecordSource, size: u64) -> Result<(TreeBuilder, Option<Hash32>)> {
    let mut tree = TreeBuilder::new();
    let mut genesis = None;
    let mut bad = None;
    if size > 0 {
        source.visit_records(Seq::new(1), &mut |seq, bytes| {
            if seq == Seq::new(1) {
                match ledger_core::codec::frame(bytes) {
                    Ok(frame) => genesis = Some(frame.stored_hash),
                    Err(e) => bad = Some(anyhow!("seq 1: {e}")),
                }
            }
            tree.push(bytes);
            if tree.size() >= size {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
    }
    match bad {
        Some(e) => Err(e),
        None => Ok((tree, genesis)),
    }
}

pub fn run(data_dir: &Path, args: &CheckpointArgs) -> Result<Outcome> {
    let signer = super::audit::read_signer(&args.sign)?;
    let ledger = Ledger::open_existing(data_dir)?;
    // Only an intact ledger is signed.
    if let Verdict::Broken(failure) = verify(&ledger.log)? {
        bail!("the ledger is damaged at seq {}: {} (not signed; see `ledger verify`)", failure.seq, failure.problem);
    }
    let head = ledger.log.head();
    let (tree, genesis) = ledger_tree(&ledger.log, head.seq.get())?;
    let genesis = genesis.ok_or_else(|| anyhow!("the ledger is empty: nothing to sign"))?;
    let checkpoint =
        Checkpoint { origin: ledger_origin(&genesis), size: tree.size(), root: tree.root(), extensions: Vec::new() };
    let note = signer.sign(&checkpoint.to_text()).map_err(|e| anyhow!("signing: {e}"))?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &note).with_context(|| format!("writing {}", describe::path(path)))?;
            println!(
                "checkpoint of {} records (head {}), root {}, written to {}",
                tree.size(),
                head.hash,
                tree.root(),
                describe::path(path)
            );
        }
        None => print!("{note}"),
    }
    Ok(Outcome::Ok)
}

/// `ledger verify --checkpoint FILE --pubkey KEY`: whether the ledger still extends the
/// checkpoint. Returns what is wrong, or `None`.
///
/// # Errors
/// Unreadable files or keys, storage errors.
pub fn check(log: &dyn RecordSource, checkpoint: &Path, pubkey: &Path) -> Result<Result<String, String>> {
    let verifier = super::audit::read_verifier(pubkey)?;
    let note =
        std::fs::read_to_string(checkpoint).with_context(|| format!("reading {}", describe::path(checkpoint)))?;
    let text = match verifier.open(&note) {
        Ok(text) => text,
        Err(e) => return Ok(Err(format!("checkpoint {}: {e}", describe::path(checkpoint)))),
    };
    let signed = match Checkpoint::parse(text) {
        Ok(c) => c,
        Err(e) => return Ok(Err(format!("checkpoint {}: {e}", describe::path(checkpoint)))),
    };
    let (tree, genesis) = ledger_tree(log, signed.size)?;
    let origin = genesis.map(|g| ledger_origin(&g)).unwrap_or_default();
    if signed.origin != origin {
        return Ok(Err(format!(
            "the checkpoint is of another ledger ({}; this one is {origin})",
            describe::safe(&signed.origin)
        )));
    }
    if tree.size() < signed.size {
        return Ok(Err(format!(
            "the ledger holds {} records, fewer than the {} the checkpoint signed: records were removed",
            tree.size(),
            signed.size
        )));
    }
    if tree.root() != signed.root {
        return Ok(Err(format!(
            "the ledger's first {} records hash to {}, the checkpoint signed {}: history up to seq {} was rewritten",
            signed.size,
            tree.root(),
            signed.root,
            signed.size
        )));
    }
    Ok(Ok(format!(
        "extends the checkpoint signed by {} ({} records, root {})",
        describe::safe(verifier.name()),
        signed.size,
        signed.root
    )))
}
