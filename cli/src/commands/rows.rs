//! `ledger report --trades` and `--equity`: a run's round-trip trades or its equity curve,
//! row by row as they are folded from its events ([`TradesFold`]), as CSV (RFC 4180,
//! a header row; times RFC 3339 UTC, which pandas reads with `parse_dates`) or as a
//! JSON array of objects (money as decimal strings). Memory does not grow with the run.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Result};
use ledger_core::event::Envelope;
use ledger_core::ids::RunId;
use ledger_core::verify::{verify_range, Verdict};
use ledger_projections::trades::TradesFold;
use std::sync::{Mutex, PoisonError};

use crate::args::{ReportArgs, RowFormat};
use crate::store::Ledger;
use crate::Outcome;

/// Which rows.
enum Rows {
    Trades,
    Equity,
}

pub fn run(data_dir: &Path, args: &ReportArgs) -> Result<Outcome> {
    let rows = match (args.trades, args.equity) {
        (true, false) => Rows::Trades,
        (false, true) => Rows::Equity,
        _ => bail!("--trades and --equity are two outputs: ask for one at a time"),
    };
    let ledger = Ledger::open_existing(data_dir)?;
    let run = RunId::new(args.run.unwrap_or_default());
    let Some(range) = ledger.runs.get(run).map(|r| r.range()) else {
        bail!("no run {run} in the ledger (see `ledger runs`)");
    };
    // The rows are written from `verify_range`'s collector thread, in seq order.
    let writer = Mutex::new(RowWriter::new(std::io::BufWriter::new(std::io::stdout()), args.format));
    let failure = Mutex::new(None);
    let emit = |row: &dyn erased::Row| {
        let mut failure = failure.lock().unwrap_or_else(PoisonError::into_inner);
        if failure.is_none() {
            *failure = writer.lock().unwrap_or_else(PoisonError::into_inner).write(row).err();
        }
    };
    let (trades, equity) = (matches!(rows, Rows::Trades), matches!(rows, Rows::Equity));
    let mut fold = TradesFold::new(
        run,
        |trade| {
            if trades {
                emit(&trade)
            }
        },
        |point| {
            if equity {
                emit(&point)
            }
        },
    );
    let mut apply = |event: &Envelope| fold.apply(&event.as_ref());
    if let Verdict::Broken(problem) = verify_range(&ledger.log, range.first, range.last, Some(&mut apply))? {
        bail!(
            "the record at seq {} of run {run}: {} (`ledger verify` checks the whole ledger)",
            problem.seq,
            problem.problem
        );
    }
    drop(fold);
    if let Some(error) = failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(error);
    }
    let writer = writer.into_inner().unwrap_or_else(PoisonError::into_inner);
    writer.finish()?;
    Ok(Outcome::Ok)
}

/// Rows of one kind, serialized.
mod erased {
    /// A row that serializes (a trade or an equity point).
    pub trait Row {
        fn json(&self) -> serde_json::Result<serde_json::Value>;
    }

    impl<T: serde::Serialize> Row for T {
        fn json(&self) -> serde_json::Result<serde_json::Value> {
            serde_json::to_value(self)
        }
    }
}

/// Writes rows as CSV (the header from the first row's fields) or a JSON array.
struct RowWriter<W: Write> {
    out: W,
    format: RowFormat,
    rows: u64,
}

impl<W: Write> RowWriter<W> {
    fn new(out: W, format: RowFormat) -> Self {
        RowWriter { out, format, rows: 0 }
    }

    fn write(&mut self, row: &dyn erased::Row) -> Result<()> {
        let serde_json::Value::Object(fields) = row.json()? else { bail!("a row that is not an object") };
        match self.format {
            RowFormat::Json => {
                self.out.write_all(if self.rows == 0 { b"[\n" } else { b",\n" })?;
                serde_json::to_writer(&mut self.out, &fields)?;
            }
            RowFormat::Csv => {
                let mut csv = csv::WriterBuilder::new().has_headers(false).from_writer(&mut self.out);
                if self.rows == 0 {
                    csv.write_record(fields.keys())?;
                }
                csv.write_record(fields.values().map(text))?;
                csv.flush()?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        if let RowFormat::Json = self.format {
            self.out.write_all(if self.rows == 0 { b"[]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()?;
        Ok(())
    }
}

/// A field as CSV text: strings as they are (decimals exact), numbers as JSON writes them.
fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
