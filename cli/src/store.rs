//! Opening the ledger in the data directory, for commands that read or write it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ledger_adapters::sled_log::{Durability, SledLog};

/// Opens an existing ledger; a missing directory is an error rather than a new, empty
/// ledger, so a mistyped `--data-dir` is noticed.
pub fn open_existing(data_dir: &Path) -> Result<SledLog> {
    if !SledLog::exists(data_dir) {
        bail!("no ledger at {} (set --data-dir or LEDGER_DATA_DIR)", data_dir.display());
    }
    SledLog::open(data_dir, Durability::Strict).with_context(|| format!("opening ledger at {}", data_dir.display()))
}

/// Opens the ledger in `data_dir`, creating it if it does not exist yet.
pub fn open_or_create(data_dir: &Path, durability: Durability) -> Result<SledLog> {
    SledLog::open(data_dir, durability).with_context(|| format!("opening ledger at {}", data_dir.display()))
}
