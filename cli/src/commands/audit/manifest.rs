//! `manifest.json` of an audit export, and the names and framing of its files
//! (docs/audit-format.md).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use ledger_core::chain::Hash32;
use ledger_projections::audit::AuditState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::describe;

/// The format name and version written into every manifest.
pub const FORMAT: &str = "ledger-audit-export/1";
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The ledger records of the range.
pub const RECORDS: &str = "records.bin";
/// The signed checkpoint (with `--sign`).
pub const CHECKPOINT: &str = "checkpoint.txt";
/// Rows as JSON Lines.
pub const ROWS_JSONL: &str = "rows.jsonl";
/// Rows as CSV.
pub const ROWS_CSV: &str = "rows.csv";
/// The extension line of a checkpoint that binds the manifest.
pub const MANIFEST_EXTENSION: &str = "manifest-sha256 ";

/// Everything about an export but its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// `run-<id>-seq-<first>-<last>-<first 16 hex of the Merkle root>`: the same for the
    /// same range of the same ledger.
    pub export_id: String,
    /// When the export was written, RFC 3339 UTC with nanoseconds (the one field that
    /// differs between two exports of the same range).
    pub created_at: String,
    /// Version of the `ledger` that wrote the export.
    pub software_version: String,
    /// The event schema version of this build.
    pub schema_version: u16,
    /// The exported run.
    pub run: RunSection,
    /// What was asked for.
    pub filters: Filters,
    /// What was exported.
    pub range: RangeSection,
    /// Counts, recomputed by the verifier.
    pub counts: Counts,
    /// The ledger's hash chain around the range.
    pub chain: ChainSection,
    /// The RFC 9162 tree over the records.
    pub merkle: MerkleSection,
    /// The last row's hash (the head of the row chain).
    pub last_row_hash: String,
    /// Configuration hashes in force: the run's and every limits change in range.
    pub config_hashes: Vec<String>,
    /// The row file's columns (the CSV header) with how each cell holds its value.
    pub columns: Vec<Column>,
    /// The audit fold's state before the first row (account, working orders).
    pub start_state: AuditState,
    /// A proof that this export extends an earlier one, if asked for.
    pub consistency: Option<Consistency>,
    /// sha256 of every data file, by name.
    pub files: BTreeMap<String, String>,
}

/// The exported run, from its `RunStarted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSection {
    /// Run id.
    pub run_id: u64,
    /// `Live`, `Paper` or `Replay`.
    pub mode: String,
    /// SHA-256 of its configuration.
    pub config_hash: String,
    /// Software version that wrote it.
    pub software_version: String,
    /// Seq of its first event.
    pub first_seq: u64,
    /// Seq of its last event at export time.
    pub last_seq: u64,
}

/// The export's flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filters {
    /// `--run`.
    pub run: u64,
    /// `--from` as given.
    pub from: Option<String>,
    /// `--to` as given.
    pub to: Option<String>,
    /// `jsonl` or `csv`.
    pub format: String,
}

/// The exported seqs and times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeSection {
    /// First exported record (the first row's first event).
    pub first_seq: u64,
    /// Last exported record (the last row's last event).
    pub last_seq: u64,
    /// `ts_event` of the first row.
    pub first_ts_event: String,
    /// `ts_event` of the last row.
    pub last_ts_event: String,
}

/// Counts of what was exported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Rows.
    pub rows: u64,
    /// Records in records.bin (`last_seq - first_seq + 1`).
    pub records: u64,
    /// Events the rows cover (the run's, and operator events in range).
    pub events: u64,
    /// Rows by `row_kind`.
    pub by_row_kind: BTreeMap<String, u64>,
    /// Cycle rows by verdict: `approved`, `denied`, `none`.
    pub by_verdict: BTreeMap<String, u64>,
    /// Orders submitted.
    pub orders: u64,
    /// Fills.
    pub fills: u64,
}

/// The ledger's chain around the range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSection {
    /// Hash of the record before the first exported one (zeros if that is seq 1): the
    /// link the first record chains from.
    pub prev_hash: String,
    /// Stored hash of the last exported record.
    pub last_hash: String,
    /// The ledger's head when exported.
    pub ledger_head_seq: u64,
    /// Its hash.
    pub ledger_head_hash: String,
    /// Hash of the ledger's first record: its identity in origins.
    pub genesis_hash: String,
}

/// The Merkle tree over the exported records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleSection {
    /// The tree's name in checkpoints: `ledger/<genesis 16 hex>/run-<id>/from-seq-<first>`.
    pub origin: String,
    /// Leaves: the records.
    pub tree_size: u64,
    /// RFC 9162 root, hex.
    pub root: String,
}

/// One column of the row file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Name.
    pub name: String,
    /// `string`, `integer` or `json`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A consistency proof from an earlier export's tree to this one's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consistency {
    /// The earlier export.
    pub previous_export_id: String,
    /// Its tree size.
    pub previous_tree_size: u64,
    /// Its root, hex.
    pub previous_root: String,
    /// RFC 9162 consistency proof, hex hashes in order.
    pub proof: Vec<String>,
}

/// The origin of a ledger's checkpoints: `ledger/<first 16 hex of its first record's hash>`.
pub fn ledger_origin(genesis: &Hash32) -> String {
    format!("ledger/{}", &genesis.to_hex()[..16])
}

/// Reads and parses `DIR/manifest.json`.
///
/// # Errors
/// A missing or unreadable file, or JSON that is not a manifest.
pub fn read(dir: &Path) -> Result<(Manifest, Vec<u8>)> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", describe::path(&path)))?;
    let manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not an export manifest", describe::path(&path)))?;
    Ok((manifest, bytes))
}

/// A writer that hashes what it writes (SHA-256), for the manifest's file hashes.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256::new() }
    }

    /// Flushes and returns the hash of everything written, hex.
    ///
    /// # Errors
    /// The flush's.
    pub fn finish(mut self) -> std::io::Result<String> {
        self.inner.flush()?;
        Ok(Hash32::from_bytes(self.hasher.finalize().into()).to_hex())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what is read through it (SHA-256): a verifier hashes each data
/// file as it reads it, once.
pub struct HashingReader<R: Read> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new() }
    }

    /// Reads the rest (what the reader above did not need) and returns the hash of all
    /// of it, hex.
    ///
    /// # Errors
    /// Read errors.
    pub fn finish(mut self) -> std::io::Result<String> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok(Hash32::from_bytes(self.hasher.finalize().into()).to_hex())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// SHA-256 of a file, hex, read in chunks.
///
/// # Errors
/// Read errors.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(Hash32::from_bytes(hasher.finalize().into()).to_hex())
}
