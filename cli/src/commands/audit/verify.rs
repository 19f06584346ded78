//! `ledger audit verify DIR`: everything an export claims, checked from the folder
//! alone, every failure collected (never stopping at the first):
//!
//! - the sha256 of every file the manifest lists, and no file it does not;
//! - the records: framing, each one's hash over its bytes chained from the one before
//!   (from the manifest's `prev_hash`), contiguous seqs, the last hash, the RFC 9162
//!   Merkle root and tree size;
//! - the rows: each `row_hash` over the row's canonical JSON, each `prev_row_hash`
//!   link, and each row equal to the row folded again from the records;
//! - the trail: seqs ascending and inside the range, every order following an approved
//!   verdict of its row (or its row's kill-switch trip, or the close at the end of the
//!   data), every fill of an order the trail knows, times that run forward;
//! - the counts; the signed checkpoint (`--pubkey`); the consistency proof against an
//!   earlier export (`--previous`); and with the ledger (`--data-dir`) the records
//!   against the ledger's and the starting state against the run's events before it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::mpsc;

use anyhow::{anyhow, bail, Result};
use ledger_core::chain::Hash32;
use ledger_core::codec;
use ledger_core::ids::{RunId, Seq};
use ledger_core::log::{self, RecordSource};
use ledger_projections::audit::{self, AuditFold, AuditRow, AuditState, Ts};
use ledger_projections::merkle::{self, TreeBuilder};
use ledger_projections::note::{Checkpoint, VerifierKey};
use serde_json::{Map, Value};

use super::manifest::{self, *};
use super::{cell_value, read_verifier};
use crate::args::AuditVerifyArgs;
use crate::describe;
use crate::store::Ledger;
use crate::Outcome;

/// Rows handed to the rows thread at a time.
const ROW_BATCH: usize = 256;

/// Failures listed in full; beyond this many only their number is printed.
const LISTED: usize = 200;

/// What the checks found.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    passed: Vec<String>,
}

impl Report {
    fn fail(&mut self, text: impl Into<String>) {
        self.failures.push(text.into());
    }
}

/// records.bin read record by record: `u32` little-endian length, then the record.
struct Records<R: Read> {
    input: BufReader<R>,
    index: u64,
}

impl<R: Read> Records<R> {
    /// The next record, `None` at a clean end, or what is wrong with the framing.
    fn next_record(&mut self, buffer: &mut Vec<u8>) -> Option<Result<(), String>> {
        let mut len = [0u8; 4];
        match self.input.read(&mut len[..1]) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => return Some(Err(e.to_string())),
        }
        if let Err(e) = self.input.read_exact(&mut len[1..]) {
            return Some(Err(format!("cut inside a length prefix ({e})")));
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > codec::DECODE_LIMIT * 2 {
            return Some(Err(format!("length prefix {len} is beyond any record")));
        }
        buffer.resize(len, 0);
        if let Err(e) = self.input.read_exact(buffer) {
            return Some(Err(format!("cut inside a record of {len} bytes ({e})")));
        }
        self.index += 1;
        Some(Ok(()))
    }
}

/// A stored row as read: a JSON line (without its newline), or the cells of a CSV record.
enum Stored {
    Line(Vec<u8>),
    Cells(csv::StringRecord),
}

/// The row file read row by row, with line numbers, hashed as it is read.
enum Rows {
    Jsonl { input: BufReader<HashingReader<File>>, line: u64 },
    Csv { reader: csv::Reader<HashingReader<File>>, record: csv::StringRecord },
}

impl Rows {
    fn next_row(&mut self) -> Option<(u64, Result<Stored, String>)> {
        match self {
            Rows::Jsonl { input, line } => {
                let mut text = Vec::with_capacity(2048);
                match input.read_until(b'\n', &mut text) {
                    Ok(0) => return None,
                    Ok(_) => {}
                    Err(e) => return Some((*line + 1, Err(e.to_string()))),
                }
                *line += 1;
                if text.last() == Some(&b'\n') {
                    text.pop();
                }
                Some((*line, Ok(Stored::Line(text))))
            }
            Rows::Csv { reader, record } => {
                let line = reader.position().line();
                match reader.read_record(record) {
                    Ok(false) => None,
                    Err(e) => Some((line, Err(e.to_string()))),
                    Ok(true) => Some((line, Ok(Stored::Cells(record.clone())))),
                }
            }
        }
    }
}

fn open_rows(dir: &Path, manifest: &Manifest, report: &mut Report) -> Option<(String, Rows)> {
    let (name, csv) = match manifest.filters.format.as_str() {
        "jsonl" => (ROWS_JSONL, false),
        "csv" => (ROWS_CSV, true),
        other => {
            report.fail(format!("manifest.json: unknown row format {:?}", describe::safe(other)));
            return None;
        }
    };
    let path = dir.join(name);
    let file = match File::open(&path) {
        Ok(file) => HashingReader::new(file),
        Err(e) => {
            report.fail(format!("{name}: cannot be read ({e})"));
            return None;
        }
    };
    if !csv {
        return Some((name.into(), Rows::Jsonl { input: BufReader::with_capacity(1 << 16, file), line: 0 }));
    }
    let mut reader =
        csv::ReaderBuilder::new().has_headers(true).flexible(true).buffer_capacity(1 << 16).from_reader(file);
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(e) => {
            report.fail(format!("{name}: the header row does not read ({e})"));
            return None;
        }
    };
    let listed: Vec<&str> = manifest.columns.iter().map(|c| c.name.as_str()).collect();
    if header != listed {
        report.fail(format!("{name}: the header row is not the manifest's columns"));
    }
    Some((name.into(), Rows::Csv { reader, record: csv::StringRecord::new() }))
}

/// The checks on the rows as they are read, alongside the rows folded again.
struct RowCheck {
    file: String,
    /// `(name, type)` of each column, for CSV cells.
    kinds: Vec<(String, String)>,
    first_seq: u64,
    last_seq: u64,
    /// The previous row's stored `row_hash`.
    prev_hash: String,
    last_row_seq: u64,
    last_cycle_ts: Option<Ts>,
    known_orders: BTreeSet<String>,
    counts: Counts,
    rows_read: u64,
    line_buffer: Vec<u8>,
}

impl RowCheck {
    /// The stored row as a JSON object.
    fn parse(&self, stored: &Stored) -> Result<Map<String, Value>, String> {
        match stored {
            Stored::Line(text) => match serde_json::from_slice(text) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(_) => Err("not a JSON object".to_string()),
                Err(e) => Err(format!("not JSON: {e}")),
            },
            Stored::Cells(cells) => {
                if cells.len() != self.kinds.len() {
                    return Err(format!("{} cells for {} columns", cells.len(), self.kinds.len()));
                }
                let mut map = Map::new();
                for ((name, kind), cell) in self.kinds.iter().zip(cells.iter()) {
                    if let Some(value) = cell_value(cell, kind).map_err(|e| format!("column {name}: {e}"))? {
                        map.insert(name.clone(), value);
                    }
                }
                Ok(map)
            }
        }
    }

    /// Whether the stored row is, byte for byte, `expected` linked to the row before
    /// and carrying the hash of its canonical form: then its hash, its link and its
    /// contents are all as they must be. Returns that hash.
    fn same(&mut self, stored: &Stored, expected: &mut AuditRow) -> Option<String> {
        expected.prev_row_hash.clone_from(&self.prev_hash);
        let mut canonical = Vec::with_capacity(2048);
        serde_json::to_writer(&mut canonical, &*expected).ok()?;
        let hash = Hash32::digest(&canonical);
        let same = match stored {
            Stored::Line(text) => {
                self.line_buffer.clear();
                audit::write_jsonl_line(&canonical, &hash, &mut self.line_buffer).ok()?;
                self.line_buffer.strip_suffix(b"\n") == Some(text.as_slice())
            }
            Stored::Cells(cells) => expected.csv_cells(&hash).is_ok_and(|expected| {
                expected.len() == cells.len() && expected.iter().zip(cells.iter()).all(|(e, c)| e == c)
            }),
        };
        same.then(|| audit::hex(&hash))
    }

    /// Checks a stored row that is not byte for byte the expected one: its hash, its
    /// link, how it differs from the row folded from the records (`expected`, when
    /// there is one), and the trail's rules.
    fn check_slow(&mut self, line: u64, mut row: Map<String, Value>, expected: Option<AuditRow>, report: &mut Report) {
        self.rows_read += 1;
        let seq = row.get("first_seq").and_then(Value::as_u64).unwrap_or_default();
        let at = format!("{} line {line} (seq {seq})", self.file);
        let stored = match row.remove("row_hash") {
            Some(Value::String(hash)) => hash,
            _ => {
                report.fail(format!("{at}: no row_hash"));
                String::new()
            }
        };
        match audit::canonical(&Value::Object(row.clone())) {
            Ok(bytes) if Hash32::digest(&bytes).to_hex() == stored => {}
            Ok(_) => report.fail(format!("{at}: row_hash does not match the row's contents")),
            Err(e) => report.fail(format!("{at}: the row does not canonicalize ({e})")),
        }
        let link = row.get("prev_row_hash").and_then(Value::as_str).unwrap_or_default().to_string();
        if link != self.prev_hash {
            report.fail(format!("{at}: prev_row_hash does not link to the row before (a row removed, added or moved)"));
        }
        match expected {
            Some(mut folded) => {
                folded.prev_row_hash = link;
                if let Ok(Value::Object(folded)) = serde_json::to_value(&folded) {
                    let fields: BTreeSet<&String> =
                        folded.keys().chain(row.keys()).filter(|k| folded.get(*k) != row.get(*k)).collect();
                    if !fields.is_empty() {
                        let names: Vec<String> = fields.iter().map(|f| describe::safe(f).into_owned()).collect();
                        report.fail(format!("{at}: differs from the row the records give: {}", names.join(", ")));
                    }
                }
            }
            None => report.fail(format!("{at}: a row the records do not give")),
        }
        match serde_json::from_value::<AuditRow>(Value::Object(row)) {
            Ok(row) => self.rules(&at, &row, report),
            Err(e) => report.fail(format!("{at}: not an audit row ({e})")),
        }
        self.prev_hash = stored;
    }

    fn accept(&mut self, line: u64, row: &AuditRow, hash: String, report: &mut Report) {
        self.rows_read += 1;
        let at = format!("{} line {line} (seq {})", self.file, row.first_seq);
        self.rules(&at, row, report);
        self.prev_hash = hash;
    }

    /// The trail's rules, and the counts.
    fn rules(&mut self, at: &str, row: &AuditRow, report: &mut Report) {
        let seqs = &row.event_seqs;
        if seqs.is_empty() {
            report.fail(format!("{at}: no event_seqs"));
        }
        if seqs.windows(2).any(|w| w[0] >= w[1]) {
            report.fail(format!("{at}: event_seqs are not ascending"));
        }
        if let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) {
            if first <= self.last_row_seq {
                report
                    .fail(format!("{at}: seq {first} is not after the previous row's last seq {}", self.last_row_seq));
            }
            if first < self.first_seq || last > self.last_seq {
                report.fail(format!(
                    "{at}: seqs {first}..={last} outside the range {}..={}",
                    self.first_seq, self.last_seq
                ));
            }
            if row.first_seq != first || row.last_seq != last {
                report.fail(format!("{at}: first_seq/last_seq are not its events' first and last"));
            }
            self.last_row_seq = last;
        }
        if row.ts_recorded > row.ts_recorded_last {
            report.fail(format!("{at}: its events were recorded out of time order"));
        }
        if !row.tick_kind.is_empty() {
            if let Some(last) = self.last_cycle_ts.filter(|last| row.ts_event < *last) {
                report.fail(format!("{at}: tick time {} is before the previous cycle's {last}", row.ts_event));
            }
            self.last_cycle_ts = Some(row.ts_event);
        }
        let trip_seq = row.kill_switch.as_ref().map(|k| k.seq);
        for order in &row.orders {
            let ok = match order.origin.as_str() {
                "verdict" => row.verdict == "approved" && order.cause_seq.is_some_and(|c| c == row.verdict_seq),
                "kill_switch" => order.cause_seq.is_some() && order.cause_seq == trip_seq,
                "close_at_end" => order.cause_seq.is_none(),
                "protective_exit" => order.protects.as_ref().is_some_and(|entry| self.known_orders.contains(entry)),
                _ => false,
            };
            if !ok {
                report.fail(format!(
                    "{at}: order {} does not follow an approved verdict, a kill-switch trip, an entry it protects or the close at the end",
                    describe::safe(&order.client_order_id)
                ));
            }
            self.known_orders.insert(order.client_order_id.clone());
        }
        for fill in &row.fills {
            if !self.known_orders.contains(&fill.client_order_id) {
                report.fail(format!(
                    "{at}: fill of order {} that the trail does not hold",
                    describe::safe(&fill.client_order_id)
                ));
            }
        }
        let counts = &mut self.counts;
        counts.rows += 1;
        counts.events += seqs.len() as u64;
        *counts.by_row_kind.entry(row.row_kind.to_string()).or_default() += 1;
        if row.row_kind == "cycle" {
            let verdict = if row.verdict.is_empty() { "none" } else { &*row.verdict };
            *counts.by_verdict.entry(verdict.to_string()).or_default() += 1;
        }
        counts.orders += row.orders.len() as u64;
        counts.fills += row.fills.len() as u64;
    }
}

/// What reading the records and rows gave.
struct DataSummary {
    records: u64,
    root: Hash32,
    /// The sha256 of the data files, hashed as they were read (or why not).
    hashes: BTreeMap<String, std::io::Result<String>>,
}

/// The stored rows, lined up with the rows folded from the records by their first seq:
/// a row removed or added is one failure, not a shift of every row after it.
struct Lineup {
    rows: Option<Rows>,
    peeked: Option<(u64, Result<Stored, String>)>,
}

impl Lineup {
    fn next(&mut self) -> Option<(u64, Result<Stored, String>)> {
        self.peeked.take().or_else(|| self.rows.as_mut().and_then(Rows::next_row))
    }

    /// Compares the next stored rows with `expected`, the next row the records give.
    fn compare(&mut self, expected: &mut AuditRow, check: &mut RowCheck, report: &mut Report) {
        if self.rows.is_none() {
            return;
        }
        let want = expected.first_seq;
        loop {
            let Some((line, stored)) = self.next() else {
                report.fail(format!("{}: the row of seq {want} is missing (the records give it)", check.file));
                return;
            };
            let stored = match stored {
                Ok(stored) => stored,
                Err(e) => {
                    report.fail(format!("{} line {line}: {e}", check.file));
                    continue;
                }
            };
            if let Some(hash) = check.same(&stored, expected) {
                check.accept(line, expected, hash, report);
                return;
            }
            let row = match check.parse(&stored) {
                Ok(row) => row,
                Err(e) => {
                    report.fail(format!("{} line {line}: {e}", check.file));
                    continue;
                }
            };
            let seq = row.get("first_seq").and_then(Value::as_u64).unwrap_or_default();
            if seq > want && seq <= check.last_seq {
                report.fail(format!("{}: the row of seq {want} is missing (the records give it)", check.file));
                self.peeked = Some((line, Ok(stored)));
                return;
            }
            if seq < want {
                check.check_slow(line, row, None, report);
                continue;
            }
            check.check_slow(line, row, Some(expected.clone()), report);
            return;
        }
    }

    /// The row file's sha256, once every row is read.
    fn file_hash(self) -> Option<std::io::Result<String>> {
        Some(match self.rows? {
            Rows::Jsonl { input, .. } => input.into_inner().finish(),
            Rows::Csv { reader, .. } => reader.into_inner().finish(),
        })
    }

    /// Stored rows after the last one the records give.
    fn rest(&mut self, check: &mut RowCheck, report: &mut Report) {
        while let Some((line, stored)) = self.next() {
            match stored.and_then(|s| check.parse(&s)) {
                Ok(row) => check.check_slow(line, row, None, report),
                Err(e) => report.fail(format!("{} line {line}: {e}", check.file)),
            }
        }
    }
}

/// The records and rows, read together: the rows folded again from the records are
/// compared with the stored ones as both stream past.
fn check_data(dir: &Path, manifest: &Manifest, report: &mut Report) -> DataSummary {
    let rows = open_rows(dir, manifest, report);
    let records_path = dir.join(RECORDS);
    let records = match File::open(&records_path) {
        Ok(file) => Some(Records { input: BufReader::with_capacity(1 << 16, HashingReader::new(file)), index: 0 }),
        Err(e) => {
            report.fail(format!("{RECORDS}: cannot be read ({e})"));
            None
        }
    };
    let mut check = RowCheck {
        file: rows.as_ref().map(|(name, _)| name.clone()).unwrap_or_default(),
        kinds: manifest.columns.iter().map(|c| (c.name.clone(), c.kind.clone())).collect(),
        first_seq: manifest.range.first_seq,
        last_seq: manifest.range.last_seq,
        prev_hash: Hash32::ZERO.to_hex(),
        last_row_seq: 0,
        last_cycle_ts: None,
        known_orders: manifest.start_state.working.keys().map(|id| id.to_string()).collect(),
        counts: Counts::default(),
        rows_read: 0,
        line_buffer: Vec::new(),
    };
    let mut lineup = Lineup { rows: rows.map(|(_, rows)| rows), peeked: None };
    // The stored rows are read and compared on a thread of their own, fed the rows the
    // records give in batches: the records and the rows take about the same time.
    let (send, receive) = mpsc::sync_channel::<Vec<AuditRow>>(4);
    // Compared batches come back to be dropped where they were made (their text is
    // shared with the fold's: reference counts bouncing between cores cost a fifth).
    let (used_send, used) = mpsc::sync_channel::<Vec<AuditRow>>(8);
    let rows_thread = std::thread::spawn(move || {
        let mut report = Report::default();
        for mut batch in receive {
            for row in batch.iter_mut() {
                lineup.compare(row, &mut check, &mut report);
            }
            let _ = used_send.try_send(batch);
        }
        lineup.rest(&mut check, &mut report);
        (check, report, lineup.file_hash())
    });
    let mut batch = Vec::with_capacity(ROW_BATCH);
    let mut fold = AuditFold::resume(manifest.start_state.clone());
    let mut tree = TreeBuilder::new();
    let mut prev = Hash32::from_hex(&manifest.chain.prev_hash).unwrap_or_else(|e| {
        report.fail(format!("manifest.json: chain.prev_hash: {e}"));
        Hash32::ZERO
    });
    let mut last_hash = None;
    let first = manifest.range.first_seq;
    let mut hashes = BTreeMap::new();
    // When the latest event of the open row was recorded.
    let mut row_recorded = None;
    if let Some(mut records) = records {
        let mut buffer = Vec::new();
        while let Some(framed) = records.next_record(&mut buffer) {
            let seq = Seq::new(first.saturating_add(records.index.saturating_sub(1)));
            let at = format!("{RECORDS} record {} (seq {seq})", records.index);
            if let Err(e) = framed {
                report.fail(format!("{RECORDS} after record {}: {e}", records.index));
                break;
            }
            tree.push(&buffer);
            let frame = match codec::frame(&buffer) {
                Ok(frame) => frame,
                Err(e) => {
                    report.fail(format!("{at}: {e}"));
                    continue;
                }
            };
            let linked = frame.stored_prev_hash.is_none_or(|stored| stored == prev);
            if !linked || frame.computed_hash(seq, &prev) != frame.stored_hash {
                report.fail(format!("{at}: its hash does not match its bytes chained from the record before"));
            }
            match codec::decode_record(seq, &prev, &buffer) {
                Ok(event) => {
                    let event = event.as_ref();
                    // A cycle's events are recorded in time order: tick, decision,
                    // verdict, orders, reports.
                    if fold.opens_row(&event) {
                        row_recorded = None;
                    }
                    if fold.is_relevant(&event) {
                        if let Some(before) = row_recorded.filter(|before| event.ts_recorded < *before) {
                            report.fail(format!(
                                "{at}: recorded at {}, before the event ahead of it in its row ({})",
                                Ts(event.ts_recorded),
                                Ts(before)
                            ));
                        }
                        row_recorded = Some(event.ts_recorded);
                    }
                    fold.apply(&event);
                    batch.extend(fold.take_rows());
                    if batch.len() >= ROW_BATCH {
                        // The rows thread ends only when this sender is dropped.
                        let next = match used.try_recv() {
                            Ok(mut used) => {
                                used.clear();
                                used
                            }
                            Err(_) => Vec::with_capacity(ROW_BATCH),
                        };
                        let _ = send.send(std::mem::replace(&mut batch, next));
                    }
                }
                Err(e) => report.fail(format!("{at}: does not decode: {e}")),
            }
            prev = frame.stored_hash;
            last_hash = Some(frame.stored_hash);
        }
        fold.finish();
        batch.extend(fold.take_rows());
        let count = records.index;
        hashes.insert(RECORDS.to_string(), records.input.into_inner().finish());
        if count != manifest.counts.records || count != manifest.merkle.tree_size {
            report.fail(format!(
                "{RECORDS}: {count} records, the manifest says {} (tree size {})",
                manifest.counts.records, manifest.merkle.tree_size
            ));
        }
        if count > 0 && first.saturating_add(count - 1) != manifest.range.last_seq {
            report.fail(format!(
                "{RECORDS}: seqs {first}..={}, the manifest says the range ends at {}",
                first.saturating_add(count - 1),
                manifest.range.last_seq
            ));
        }
        if last_hash.map(|h| h.to_hex()) != Some(manifest.chain.last_hash.clone()) {
            report.fail(format!("{RECORDS}: the last record's hash is not the manifest's chain.last_hash"));
        }
        if tree.root().to_hex() != manifest.merkle.root {
            report.fail(format!(
                "{RECORDS}: the Merkle root is {}, the manifest says {}",
                tree.root(),
                describe::safe(&manifest.merkle.root)
            ));
        }
    }
    let _ = send.send(batch);
    drop(send);
    let Ok((check, rows_report, rows_hash)) = rows_thread.join() else {
        report.fail("reading the rows failed (a bug)");
        return DataSummary { records: tree.size(), root: tree.root(), hashes };
    };
    report.failures.extend(rows_report.failures);
    if let Some(hash) = rows_hash {
        hashes.insert(check.file.clone(), hash);
    }
    if check.prev_hash != manifest.last_row_hash {
        report.fail(format!(
            "{}: the last row's hash is not the manifest's last_row_hash (rows cut off the end?)",
            check.file
        ));
    }
    let expected = Counts { records: manifest.counts.records, ..check.counts.clone() };
    if expected != manifest.counts {
        report.fail(format!(
            "manifest.json: counts {} but the rows give {}",
            serde_json::to_string(&manifest.counts).unwrap_or_default(),
            serde_json::to_string(&expected).unwrap_or_default()
        ));
    }
    if check.rows_read > 0 {
        report.passed.push(format!(
            "{} rows (row hashes and chain, folded again from the records), {} records seq {}..={} (hash chain), Merkle root {}",
            check.rows_read,
            manifest.counts.records,
            manifest.range.first_seq,
            manifest.range.last_seq,
            tree.root()
        ));
    }
    DataSummary { records: tree.size(), root: tree.root(), hashes }
}

/// The files the manifest lists have their hashes (those `check_data` read, hashed as
/// it read them); nothing else is in the folder.
fn check_files(dir: &Path, manifest: &Manifest, data: &mut DataSummary, report: &mut Report) -> Result<()> {
    for (name, hash) in &manifest.files {
        if name.contains(['/', '\\']) || name.starts_with('.') {
            report.fail(format!("manifest.json: file name {:?} is not a plain name", describe::safe(name)));
            continue;
        }
        // The data files were hashed as they were read; any other is read here.
        let actual = data.hashes.remove(name).unwrap_or_else(|| manifest::file_sha256(&dir.join(name)));
        match actual {
            Ok(actual) if &actual == hash => {}
            Ok(actual) => report.fail(format!("{name}: sha256 {actual}, the manifest says {}", describe::safe(hash))),
            Err(e) => report.fail(format!("{name}: cannot be read ({e})")),
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != MANIFEST && name != CHECKPOINT && !manifest.files.contains_key(&name) {
            report.fail(format!("{}: a file the manifest does not list", describe::safe(&name)));
        }
    }
    Ok(())
}

/// The checkpoint's signature, and that it names this export's tree and manifest.
fn check_checkpoint(
    dir: &Path,
    manifest_bytes: &[u8],
    manifest: &Manifest,
    verifier: &VerifierKey,
    data: &DataSummary,
    report: &mut Report,
) {
    let failures_before = report.failures.len();
    let path = dir.join(CHECKPOINT);
    let note = match std::fs::read_to_string(&path) {
        Ok(note) => note,
        Err(e) => {
            report.fail(format!("{CHECKPOINT}: cannot be read ({e}); --pubkey needs a signed export"));
            return;
        }
    };
    let text = match verifier.open(&note) {
        Ok(text) => text,
        Err(e) => {
            report.fail(format!("{CHECKPOINT}: {e}"));
            return;
        }
    };
    let checkpoint = match Checkpoint::parse(text) {
        Ok(c) => c,
        Err(e) => {
            report.fail(format!("{CHECKPOINT}: {e}"));
            return;
        }
    };
    if checkpoint.origin != manifest.merkle.origin {
        report.fail(format!("{CHECKPOINT}: origin {} is not the manifest's", describe::safe(&checkpoint.origin)));
    }
    if checkpoint.size != data.records || checkpoint.root != data.root {
        report.fail(format!(
            "{CHECKPOINT}: signs {} records with root {}, the records give {} with root {}",
            checkpoint.size, checkpoint.root, data.records, data.root
        ));
    }
    let bound = format!("{MANIFEST_EXTENSION}{}", Hash32::digest(manifest_bytes).to_hex());
    if !checkpoint.extensions.contains(&bound) {
        report.fail(format!("{CHECKPOINT}: does not sign this manifest.json (its sha256 differs)"));
    }
    if report.failures.len() == failures_before {
        report.passed.push(format!("checkpoint signed by {}", describe::safe(verifier.name())));
    }
}

/// The consistency proof from the earlier export `old_dir`.
fn check_previous(
    old_dir: &Path,
    manifest: &Manifest,
    verifier: Option<&VerifierKey>,
    data: &DataSummary,
    report: &mut Report,
) -> Result<()> {
    let (old, old_bytes) = manifest::read(old_dir)?;
    let mut old_report = Report::default();
    // The earlier export's own root, recomputed from its records when they are there.
    let old_data = check_data(old_dir, &old, &mut old_report);
    if let Some(verifier) = verifier {
        check_checkpoint(old_dir, &old_bytes, &old, verifier, &old_data, &mut old_report);
    }
    for failure in old_report.failures {
        report.fail(format!("previous export {}: {failure}", describe::path(old_dir)));
    }
    let old_root = Hash32::from_hex(&old.merkle.root).map_err(|e| anyhow!("previous manifest: merkle.root: {e}"))?;
    if old.merkle.origin != manifest.merkle.origin {
        report.fail(format!(
            "--previous: another tree ({}; this export is {})",
            describe::safe(&old.merkle.origin),
            describe::safe(&manifest.merkle.origin)
        ));
        return Ok(());
    }
    let Some(proof) = &manifest.consistency else {
        report.fail("manifest.json: no consistency proof (export with --previous to make one)");
        return Ok(());
    };
    if proof.previous_tree_size != old.merkle.tree_size || proof.previous_root != old.merkle.root {
        report.fail("manifest.json: the consistency proof is from another tree than the previous export's");
    }
    let hashes: Result<Vec<Hash32>, String> = proof.proof.iter().map(|h| Hash32::from_hex(h)).collect();
    match hashes {
        Ok(hashes)
            if merkle::verify_consistency(old.merkle.tree_size, data.records, &old_root, &data.root, &hashes) =>
        {
            report.passed.push(format!(
                "extends the previous export {} ({} records)",
                describe::safe(&old.export_id),
                old.merkle.tree_size
            ));
        }
        Ok(_) => report.fail(format!(
            "the consistency proof fails: this export does not extend the previous one ({} records, root {old_root})",
            old.merkle.tree_size
        )),
        Err(e) => report.fail(format!("manifest.json: consistency proof: {e}")),
    }
    Ok(())
}

/// The exported records are the ledger's, and the starting state is the run's.
fn check_ledger(data_dir: &Path, dir: &Path, manifest: &Manifest, report: &mut Report) -> Result<()> {
    let ledger = Ledger::open_existing(data_dir)?;
    let first = Seq::new(manifest.range.first_seq);
    let file = match File::open(dir.join(RECORDS)) {
        Ok(file) => file,
        // Already listed by the folder's own checks.
        Err(_) => return Ok(()),
    };
    let mut records = Records { input: BufReader::new(file), index: 0 };
    let mut buffer = Vec::new();
    let mut differing = 0u64;
    let mut prev_hash = None;
    let before = first.get().checked_sub(1).filter(|&s| s > 0).map(Seq::new);
    ledger.log.visit_records(before.unwrap_or(first), &mut |seq, bytes| {
        if Some(seq) == before {
            prev_hash = codec::frame(bytes).ok().map(|f| f.stored_hash);
            return ControlFlow::Continue(());
        }
        match records.next_record(&mut buffer) {
            Some(Ok(())) if buffer == bytes => {}
            Some(Ok(())) => {
                differing += 1;
                if differing <= 20 {
                    report.fail(format!("seq {seq}: the exported record differs from the ledger's"));
                }
            }
            _ => return ControlFlow::Break(()),
        }
        if seq.get() >= manifest.range.last_seq {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if records.index < manifest.counts.records {
        report.fail(format!("the ledger holds {} of the {} exported records", records.index, manifest.counts.records));
    }
    let expected_prev = prev_hash.unwrap_or(Hash32::ZERO).to_hex();
    if expected_prev != manifest.chain.prev_hash {
        report.fail("manifest.json: chain.prev_hash is not the ledger's hash before the range");
    }
    // The state the rows start from: the run's events before the range, folded.
    let run = manifest.start_state.run;
    let mut fold = AuditFold::new(RunId::new(manifest.run.run_id));
    let run_first = Seq::new(manifest.run.first_seq);
    if run_first < first {
        log::visit_events(&ledger.log as &dyn RecordSource, run_first, &mut |event| {
            if event.header.seq >= first {
                return ControlFlow::Break(());
            }
            fold.apply(&event.as_ref());
            ControlFlow::Continue(())
        })?;
    }
    let state: &AuditState = fold.state();
    if run != state.run || *state != manifest.start_state {
        report.fail("manifest.json: start_state is not the run's state before the range in the ledger");
    }
    if differing > 20 {
        report.fail(format!("... {} exported records in all differ from the ledger's", differing));
    }
    if differing == 0 {
        report.passed.push(format!("the records are the ledger's at {}", describe::path(data_dir)));
    }
    Ok(())
}

pub fn run(ledger_dir: Option<&Path>, args: &AuditVerifyArgs) -> Result<Outcome> {
    let dir = &args.dir;
    if !dir.is_dir() {
        bail!("{} is not a folder", describe::path(dir));
    }
    let (manifest, manifest_bytes) = manifest::read(dir)?;
    if manifest.format != FORMAT {
        bail!(
            "{}: format {:?}, this build reads {FORMAT}",
            describe::path(&dir.join(MANIFEST)),
            describe::safe(&manifest.format)
        );
    }
    let verifier = args.pubkey.as_deref().map(read_verifier).transpose()?;
    let mut report = Report::default();
    let mut data = check_data(dir, &manifest, &mut report);
    let mut files = Report::default();
    check_files(dir, &manifest, &mut data, &mut files)?;
    report.failures.splice(0..0, files.failures);
    match &verifier {
        Some(verifier) => check_checkpoint(dir, &manifest_bytes, &manifest, verifier, &data, &mut report),
        None if dir.join(CHECKPOINT).exists() => {
            report.passed.push(format!("{CHECKPOINT} present, its signature not checked (give --pubkey)"));
        }
        None => {}
    }
    if let Some(old) = &args.previous {
        check_previous(old, &manifest, verifier.as_ref(), &data, &mut report)?;
    }
    if let Some(data_dir) = ledger_dir {
        check_ledger(data_dir, dir, &manifest, &mut report)?;
    }
    // Written, not printed: `| head` closes the pipe, which is no error.
    let mut out = std::io::stdout().lock();
    if report.failures.is_empty() {
        writeln!(out, "ok: {} verifies", describe::path(dir))?;
        for line in &report.passed {
            writeln!(out, "  {line}")?;
        }
        return Ok(Outcome::Ok);
    }
    writeln!(out, "FAILED: {} problem(s) in {}", report.failures.len(), describe::path(dir))?;
    for line in report.failures.iter().take(LISTED) {
        writeln!(out, "  {}", describe::safe(line))?;
    }
    if report.failures.len() > LISTED {
        writeln!(out, "  ... and {} more", report.failures.len() - LISTED)?;
    }
    Ok(Outcome::CheckFailed)
}
