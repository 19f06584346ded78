//! `ledger audit export`: one pass over the run's records, in seq order, each checked
//! against the chain, folded into audit rows ([`AuditFold`]), and written as it comes:
//! the rows with their hash chain, the records themselves, the Merkle tree over them.
//! Memory holds one row and the orders still working, never the run.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};

use anyhow::{anyhow, bail, Context, Result};
use ledger_core::chain::Hash32;
use ledger_core::codec;
use ledger_core::event::SCHEMA_VERSION;
use ledger_core::ids::{RunId, Seq};
use ledger_core::log::{EventLog, LogError, RecordSource};
use ledger_core::time::TimestampNs;
use ledger_projections::audit::{self, AuditFold, AuditRow, AuditState, RowChain, Ts, COLUMNS};
use ledger_projections::merkle::{self, RangeHasher, TreeBuilder};
use ledger_projections::note::Checkpoint;

use super::manifest::{self, *};
use super::{columns, read_signer};
use crate::args::{AuditExportArgs, AuditFormat};
use crate::describe;
use crate::store::Ledger;
use crate::Outcome;

/// A `--from` or `--to` bound.
#[derive(Debug, Clone, Copy)]
enum Bound {
    Seq(u64),
    Time(TimestampNs),
}

impl Bound {
    fn parse(flag: &str, text: &str) -> Result<Bound> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().map(Bound::Seq).map_err(|_| anyhow!("{flag} {text}: seq out of range"));
        }
        let time = chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| anyhow!("{flag} {}: neither a seq nor an RFC 3339 time ({e})", describe::safe(text)))?;
        TimestampNs::from_datetime(time.to_utc())
            .map(Bound::Time)
            .ok_or_else(|| anyhow!("{flag} {}: outside the nanosecond range", describe::safe(text)))
    }

    /// Whether a row opening at `seq`, `ts` is at or after this bound.
    fn at_or_after(self, seq: Seq, ts: TimestampNs) -> bool {
        match self {
            Bound::Seq(from) => seq.get() >= from,
            Bound::Time(from) => ts >= from,
        }
    }

    /// Whether a row opening at `seq`, `ts` is at or before this bound.
    fn at_or_before(self, seq: Seq, ts: TimestampNs) -> bool {
        match self {
            Bound::Seq(to) => seq.get() <= to,
            Bound::Time(to) => ts <= to,
        }
    }
}

/// Where the export stands in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Folding the run up to the range (nothing written).
    Before,
    /// Writing.
    In,
    /// Past the range.
    After,
}

/// The row file, as JSON Lines or CSV, hashed as written.
enum RowSink {
    Jsonl(HashingWriter<BufWriter<File>>),
    Csv(Box<csv::Writer<HashingWriter<BufWriter<File>>>>),
}

impl RowSink {
    fn write(&mut self, row: &AuditRow, canonical: &[u8], hash: &Hash32) -> Result<()> {
        match self {
            RowSink::Jsonl(out) => audit::write_jsonl_line(canonical, hash, out)?,
            RowSink::Csv(out) => out.write_record(row.csv_cells(hash)?)?,
        }
        Ok(())
    }

    fn finish(self) -> Result<String> {
        Ok(match self {
            RowSink::Jsonl(out) => out.finish()?,
            RowSink::Csv(out) => out.into_inner().map_err(|e| anyhow!("writing rows: {}", e.error()))?.finish()?,
        })
    }
}

/// The records of the range: `u32` little-endian length, then the record as stored,
/// framed here and written by the writer thread.
struct RecordSink {
    framed: Vec<u8>,
    tree: TreeBuilder,
    count: u64,
    first: Seq,
    last: Seq,
    last_hash: Hash32,
}

impl RecordSink {
    fn write(&mut self, seq: Seq, bytes: &[u8], hash: Hash32) -> Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| anyhow!("record {seq} is over 4 GiB"))?;
        self.framed.extend_from_slice(&len.to_le_bytes());
        self.framed.extend_from_slice(bytes);
        self.tree.push(bytes);
        if self.count == 0 {
            self.first = seq;
        }
        self.count += 1;
        (self.last, self.last_hash) = (seq, hash);
        Ok(())
    }
}

/// Rows handed to the writer thread at a time.
const ROW_BATCH: usize = 512;
/// Bytes of framed records handed to the writer thread at a time (at most).
const RECORD_BATCH: usize = 1 << 20;

/// What the reading thread hands the writer: rows, and the records read since the last
/// batch, framed.
type Batch = (Vec<AuditRow>, Vec<u8>);

/// The files' sha256 and the last row's hash, as written.
struct Written {
    rows_sha: String,
    records_sha: String,
    last_row_hash: Hash32,
}

/// Serializes, chains and writes the rows it is sent, and writes the records (on a
/// thread of its own: the two halves of an export take about the same time).
fn write_files(
    mut sink: RowSink,
    mut records: HashingWriter<BufWriter<File>>,
    batches: Receiver<Batch>,
    used: SyncSender<Vec<AuditRow>>,
) -> Result<Written> {
    let mut chain = RowChain::new();
    for (mut rows, framed) in batches {
        records.write_all(&framed)?;
        for row in rows.iter_mut() {
            let (canonical, hash) = chain.link(row)?;
            sink.write(row, canonical, &hash)?;
        }
        // The rows go back to be dropped where they were made: their text is shared
        // with the fold's, and reference counts bouncing between the cores cost a fifth
        // of the export. (Dropped here when the reader is not taking them.)
        let _ = used.try_send(rows);
    }
    Ok(Written { rows_sha: sink.finish()?, records_sha: records.finish()?, last_row_hash: chain.last() })
}

/// The export in progress.
struct Exporter {
    from: Option<Bound>,
    to: Option<Bound>,
    phase: Phase,
    fold: AuditFold,
    start_state: Option<AuditState>,
    /// Seq of the range's first record (the first row's opener), once known.
    range_first: Option<u64>,
    /// The chain link before the range's first record.
    range_prev: Hash32,
    /// Seq and stored hash of the last record read.
    prev: Option<(Seq, Hash32)>,
    expected: Seq,
    /// Rows and records for the writer thread, sent in batches.
    rows: Option<SyncSender<Batch>>,
    /// Batches the writer is done with, to drop here and reuse.
    used: Option<Receiver<Vec<AuditRow>>>,
    batch: Vec<AuditRow>,
    records: RecordSink,
    /// Records of other runs met inside the range, written once a later record of the
    /// trail shows they are inside it.
    pending: Vec<(Seq, Vec<u8>, Hash32)>,
    counts: Counts,
    config_hashes: Vec<String>,
    first_ts: Option<Ts>,
    last_ts: Option<Ts>,
    failure: Option<anyhow::Error>,
}

impl Exporter {
    fn take(&mut self, seq: Seq, bytes: &[u8], last: Seq) -> ControlFlow<()> {
        if seq > last {
            return ControlFlow::Break(());
        }
        match self.step(seq, bytes) {
            Ok(flow) => flow,
            Err(error) => {
                self.failure = Some(error);
                ControlFlow::Break(())
            }
        }
    }

    fn step(&mut self, seq: Seq, bytes: &[u8]) -> Result<ControlFlow<()>> {
        if seq != self.expected {
            return Err(LogError::Gap { expected: self.expected, found: seq }.into());
        }
        self.expected = seq.next();
        let frame = codec::frame(bytes).map_err(|error| LogError::Codec { seq, error })?;
        let prev_hash = match self.prev {
            Some((_, hash)) => hash,
            None if seq == Seq::new(1) => Hash32::ZERO,
            None => {
                // The record before the run: only its hash is needed, as the first link.
                self.prev = Some((seq, frame.stored_hash));
                return Ok(ControlFlow::Continue(()));
            }
        };
        let linked = frame.stored_prev_hash.is_none_or(|stored| stored == prev_hash);
        if !linked || frame.computed_hash(seq, &prev_hash) != frame.stored_hash {
            return Err(LogError::HashMismatch { seq }.into());
        }
        self.prev = Some((seq, frame.stored_hash));
        let envelope = codec::decode_record(seq, &prev_hash, bytes).map_err(|error| LogError::Codec { seq, error })?;
        let event = envelope.as_ref();
        if self.fold.opens_row(&event) {
            match self.phase {
                Phase::Before if self.from.is_none_or(|b| b.at_or_after(seq, event.ts_event)) => {
                    if self.to.is_some_and(|b| !b.at_or_before(seq, event.ts_event)) {
                        // The first row in range opens after --to: nothing to export.
                        return Ok(ControlFlow::Break(()));
                    }
                    self.phase = Phase::In;
                    self.start_state = Some(self.fold.state().clone());
                    self.range_first = Some(seq.get());
                    self.range_prev = prev_hash;
                }
                Phase::In if self.to.is_some_and(|b| !b.at_or_before(seq, event.ts_event)) => {
                    self.phase = Phase::After;
                    self.fold.finish();
                    self.write_rows()?;
                    return Ok(ControlFlow::Break(()));
                }
                _ => {}
            }
        }
        self.fold.apply(&event);
        self.write_rows()?;
        if self.phase == Phase::In {
            if self.fold.is_relevant(&event) {
                for (seq, bytes, hash) in std::mem::take(&mut self.pending) {
                    self.records.write(seq, &bytes, hash)?;
                }
                self.records.write(seq, bytes, frame.stored_hash)?;
            } else {
                self.pending.push((seq, bytes.to_vec(), frame.stored_hash));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Writes the rows the fold closed, if they are in the range.
    fn write_rows(&mut self) -> Result<()> {
        let rows: Vec<AuditRow> = self.fold.take_rows().collect();
        for row in rows {
            if self.range_first.is_none_or(|first| row.first_seq < first) {
                continue;
            }
            self.count(&row);
            self.batch.push(row);
        }
        if self.batch.len() >= ROW_BATCH || self.records.framed.len() >= RECORD_BATCH {
            self.send_rows()?;
        }
        Ok(())
    }

    /// Hands the rows and records batched so far to the writer thread.
    fn send_rows(&mut self) -> Result<()> {
        let next = match self.used.as_ref().and_then(|used| used.try_recv().ok()) {
            Some(mut used) => {
                used.clear();
                used
            }
            None => Vec::with_capacity(ROW_BATCH),
        };
        let rows = std::mem::replace(&mut self.batch, next);
        let framed = std::mem::replace(&mut self.records.framed, Vec::with_capacity(RECORD_BATCH + (64 << 10)));
        let sent = self.rows.as_ref().is_some_and(|sender| sender.send((rows, framed)).is_ok());
        if !sent {
            bail!("the row writer stopped");
        }
        Ok(())
    }

    fn count(&mut self, row: &AuditRow) {
        let counts = &mut self.counts;
        counts.rows += 1;
        counts.events += row.event_seqs.len() as u64;
        *counts.by_row_kind.entry(row.row_kind.to_string()).or_default() += 1;
        if row.row_kind == "cycle" {
            let verdict = if row.verdict.is_empty() { "none" } else { &*row.verdict };
            *counts.by_verdict.entry(verdict.to_string()).or_default() += 1;
        }
        counts.orders += row.orders.len() as u64;
        counts.fills += row.fills.len() as u64;
        for hash in [Some(&*row.config_hash), limits_hash(row)].into_iter().flatten() {
            if !hash.is_empty() && !self.config_hashes.iter().any(|h| h == hash) {
                self.config_hashes.push(hash.to_string());
            }
        }
        self.first_ts.get_or_insert(row.ts_event);
        self.last_ts = Some(row.ts_event);
    }
}

/// The new limits' hash of a limits-change row.
fn limits_hash(row: &AuditRow) -> Option<&str> {
    row.detail.as_ref()?.limits_config_hash.as_deref()
}

/// The stored hash of the record at `seq`.
fn stored_hash(source: &dyn RecordSource, seq: Seq) -> Result<Option<Hash32>> {
    let mut found = None;
    let mut error = None;
    source.visit_records(seq, &mut |at, bytes| {
        if at == seq {
            match codec::frame(bytes) {
                Ok(frame) => found = Some(frame.stored_hash),
                Err(e) => error = Some(LogError::Codec { seq, error: e }),
            }
        }
        ControlFlow::Break(())
    })?;
    match error {
        Some(e) => Err(e.into()),
        None => Ok(found),
    }
}

/// Creates `dir`, which must not exist or be empty.
fn prepare_out_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", describe::path(dir)))?;
        if entries.next().is_some() {
            bail!("{} is not empty: an export goes into a new folder", describe::path(dir));
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", describe::path(dir)))
}

fn create(dir: &Path, name: &str) -> Result<BufWriter<File>> {
    let path = dir.join(name);
    let file = File::create(&path).with_context(|| format!("creating {}", describe::path(&path)))?;
    Ok(BufWriter::with_capacity(1 << 16, file))
}

/// The consistency proof from the previous export's tree (`old` leaves, `old_root`) to
/// this export's `new` leaves, read back from the records just written.
fn consistency(dir: &Path, old: u64, old_root: &Hash32, new: u64) -> Result<Vec<Hash32>> {
    let path = dir.join(RECORDS);
    let mut input = std::io::BufReader::new(File::open(&path)?);
    let mut hasher = RangeHasher::new(&merkle::consistency_ranges(old, new));
    let mut prefix = TreeBuilder::new();
    let mut buffer = Vec::new();
    for _ in 0..new {
        let mut len = [0u8; 4];
        input.read_exact(&mut len)?;
        buffer.resize(u32::from_le_bytes(len) as usize, 0);
        input.read_exact(&mut buffer)?;
        let leaf = merkle::leaf_hash(&buffer);
        hasher.push_leaf_hash(leaf);
        if prefix.size() < old {
            prefix.push_leaf_hash(leaf);
        }
    }
    if prefix.root() != *old_root {
        bail!(
            "the ledger no longer extends the previous export: its first {old} records hash to {}, the previous export's to {old_root}",
            prefix.root()
        );
    }
    hasher.finish().ok_or_else(|| anyhow!("records.bin is shorter than it was written"))
}

pub fn run(data_dir: &Path, args: &AuditExportArgs) -> Result<Outcome> {
    let from = args.from.as_deref().map(|t| Bound::parse("--from", t)).transpose()?;
    let to = args.to.as_deref().map(|t| Bound::parse("--to", t)).transpose()?;
    let signer = args.sign.as_deref().map(read_signer).transpose()?;
    let previous = args.previous.as_deref().map(manifest::read).transpose()?.map(|(m, _)| m);
    let ledger = Ledger::open_existing(data_dir)?;
    let run = RunId::new(args.run);
    let Some(summary) = ledger.runs.get(run).cloned() else {
        bail!("no run {run} in the ledger (see `ledger runs`)");
    };
    if summary.mode.is_none() {
        bail!("run {run} has no RunStarted: it holds operator commands, exported with the runs they fall in");
    }
    let head = ledger.log.head();
    let genesis = stored_hash(&ledger.log, Seq::new(1))?.ok_or_else(|| anyhow!("the ledger is empty"))?;
    prepare_out_dir(&args.out)?;
    let rows_name = match args.format {
        AuditFormat::Jsonl => ROWS_JSONL,
        AuditFormat::Csv => ROWS_CSV,
    };
    let rows = match args.format {
        AuditFormat::Jsonl => RowSink::Jsonl(HashingWriter::new(create(&args.out, rows_name)?)),
        AuditFormat::Csv => {
            let mut csv = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(HashingWriter::new(create(&args.out, rows_name)?));
            csv.write_record(COLUMNS.iter().map(|(name, _)| *name))?;
            RowSink::Csv(Box::new(csv))
        }
    };
    let records_out = HashingWriter::new(create(&args.out, RECORDS)?);
    let records = RecordSink {
        framed: Vec::new(),
        tree: TreeBuilder::new(),
        count: 0,
        first: Seq::ZERO,
        last: Seq::ZERO,
        last_hash: Hash32::ZERO,
    };
    let mut exporter = Exporter {
        from,
        to,
        phase: Phase::Before,
        fold: AuditFold::new(run),
        start_state: None,
        range_first: None,
        range_prev: Hash32::ZERO,
        prev: None,
        expected: Seq::new(summary.first_seq.get().saturating_sub(1).max(1)),
        rows: None,
        used: None,
        batch: Vec::with_capacity(ROW_BATCH),
        records,
        pending: Vec::new(),
        counts: Counts::default(),
        config_hashes: Vec::new(),
        first_ts: None,
        last_ts: None,
        failure: None,
    };
    let last = summary.last_seq;
    let (sender, receiver) = mpsc::sync_channel(4);
    let (used_sender, used) = mpsc::sync_channel(8);
    exporter.rows = Some(sender);
    exporter.used = Some(used);
    let written = std::thread::scope(|scope| -> Result<Written> {
        let writer = scope.spawn(move || write_files(rows, records_out, receiver, used_sender));
        let read = ledger.log.visit_records(exporter.expected, &mut |seq, bytes| exporter.take(seq, bytes, last));
        let done = read.map_err(anyhow::Error::from).and_then(|()| {
            if let Some(error) = exporter.failure.take() {
                return Err(error.context(format!("exporting run {run} (`ledger verify` checks the whole ledger)")));
            }
            if exporter.phase == Phase::Before {
                bail!("run {run} has no rows in the range asked for");
            }
            if exporter.phase == Phase::In {
                exporter.fold.finish();
                exporter.write_rows()?;
            }
            exporter.send_rows()
        });
        exporter.rows = None;
        let written = writer.join().map_err(|_| anyhow!("the row writer failed"))?;
        // A failure of the writer shows first as a failed send: report the writer's.
        let written = written?;
        done.map(|()| written)
    })?;
    let Written { rows_sha, records_sha, last_row_hash } = written;
    let info = exporter.fold.state().info.clone();
    let Exporter { records, counts, config_hashes, start_state, range_prev, first_ts, last_ts, .. } = exporter;
    let RecordSink { tree, count, first, last, last_hash, .. } = records;
    let root = tree.root();
    let origin = format!("{}/run-{run}/from-seq-{first}", ledger_origin(&genesis));
    let consistency = match &previous {
        None => None,
        Some(old) => {
            if old.merkle.origin != origin {
                bail!(
                    "the previous export is of another tree ({}, this one {origin}): a consistency proof needs the same run from the same seq",
                    describe::safe(&old.merkle.origin)
                );
            }
            let old_root =
                Hash32::from_hex(&old.merkle.root).map_err(|e| anyhow!("previous manifest: merkle.root: {e}"))?;
            if old.merkle.tree_size > count {
                bail!("the previous export has {} records, more than this one's {count}", old.merkle.tree_size);
            }
            let proof = consistency(&args.out, old.merkle.tree_size, &old_root, count)?;
            Some(Consistency {
                previous_export_id: old.export_id.clone(),
                previous_tree_size: old.merkle.tree_size,
                previous_root: old_root.to_hex(),
                proof: proof.iter().map(Hash32::to_hex).collect(),
            })
        }
    };
    let manifest = Manifest {
        format: FORMAT.into(),
        export_id: format!("run-{run}-seq-{first}-{last}-{}", &root.to_hex()[..16]),
        created_at: audit::rfc3339_nanos(
            TimestampNs::from_datetime(chrono::Utc::now()).ok_or_else(|| anyhow!("the clock is out of range"))?,
        ),
        software_version: env!("CARGO_PKG_VERSION").into(),
        schema_version: SCHEMA_VERSION,
        run: RunSection {
            run_id: run.get(),
            mode: summary.mode.map(|m| format!("{m:?}")).unwrap_or_default(),
            config_hash: info.config_hash.to_string(),
            software_version: info.software_version.to_string(),
            first_seq: summary.first_seq.get(),
            last_seq: summary.last_seq.get(),
        },
        filters: Filters {
            run: run.get(),
            from: args.from.clone(),
            to: args.to.clone(),
            format: rows_name.rsplit('.').next().unwrap_or_default().into(),
        },
        range: RangeSection {
            first_seq: first.get(),
            last_seq: last.get(),
            first_ts_event: first_ts.map(|t| t.to_string()).unwrap_or_default(),
            last_ts_event: last_ts.map(|t| t.to_string()).unwrap_or_default(),
        },
        counts: Counts { records: count, ..counts },
        chain: ChainSection {
            prev_hash: range_prev.to_hex(),
            last_hash: last_hash.to_hex(),
            ledger_head_seq: head.seq.get(),
            ledger_head_hash: head.hash.to_hex(),
            genesis_hash: genesis.to_hex(),
        },
        merkle: MerkleSection { origin: origin.clone(), tree_size: count, root: root.to_hex() },
        last_row_hash: last_row_hash.to_hex(),
        config_hashes,
        columns: columns(),
        start_state: start_state.unwrap_or_else(|| AuditState::new(run)),
        consistency,
        files: [(rows_name.to_string(), rows_sha), (RECORDS.to_string(), records_sha)].into_iter().collect(),
    };
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    manifest_bytes.push(b'\n');
    let manifest_path = args.out.join(MANIFEST);
    std::fs::write(&manifest_path, &manifest_bytes)
        .with_context(|| format!("writing {}", describe::path(&manifest_path)))?;
    if let Some(signer) = signer {
        let checkpoint = Checkpoint {
            origin,
            size: count,
            root,
            extensions: vec![format!("{MANIFEST_EXTENSION}{}", Hash32::digest(&manifest_bytes).to_hex())],
        };
        let note = signer.sign(&checkpoint.to_text()).map_err(|e| anyhow!("signing the checkpoint: {e}"))?;
        let path = args.out.join(CHECKPOINT);
        std::fs::write(&path, note).with_context(|| format!("writing {}", describe::path(&path)))?;
    }
    println!(
        "exported run {run}: {} rows, {count} records (seq {first}..={last}), Merkle root {root}{}, into {}",
        manifest.counts.rows,
        if args.sign.is_some() { ", checkpoint signed" } else { "" },
        describe::path(&args.out)
    );
    Ok(Outcome::Ok)
}
