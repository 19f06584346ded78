//! `ledger runs`: one row per run from the runs index: mode, seq range, events, start
//! and stop, and, read from the ledger, the strategy and its parameters, the data, and
//! the run's return and Sharpe ratio (from its report fold's snapshot, caught up with the
//! events after it). Stored text is escaped for the terminal; `--json` is exact. While a
//! session runs, the index it last published (without what only the ledger holds).

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use ledger_core::event::{Envelope, Payload};
use ledger_core::log::{EventCursor, EventLog};
use ledger_projections::runs::RunSummary;
use ledger_projections::{fold_range, Fold};
use serde::Serialize;

use crate::commands::{access, Access};
use crate::describe;
use crate::store::Ledger;
use crate::Outcome;

/// One run as `ledger runs` shows it.
#[derive(Debug, Serialize)]
struct RunRow<'a> {
    #[serde(flatten)]
    summary: &'a RunSummary,
    /// Decision provider and strategy or model, e.g. `rules:sma-cross`.
    strategy: Option<String>,
    /// Its parameters, `k=v` sorted.
    params: Option<String>,
    /// Where the market data came from.
    data: Option<String>,
    /// Return over the run, percent (backtesting.py's `Return [%]`).
    return_pct: Option<f64>,
    /// Sharpe ratio (backtesting.py's definition).
    sharpe_ratio: Option<f64>,
}

pub fn run(data_dir: &Path, json: bool) -> Result<Outcome> {
    let rows: Vec<(RunSummary, Details)> = match access(data_dir)? {
        Access::Session(mut session) => session.runs()?.into_iter().map(|r| (r, Details::default())).collect(),
        Access::Ledger(ledger) => {
            let runs: Vec<RunSummary> = ledger.runs.iter().cloned().collect();
            runs.into_iter()
                .map(|r| {
                    let d = details(&ledger, &r);
                    (r, d)
                })
                .collect()
        }
    };
    let mut out = std::io::stdout().lock();
    if json {
        for (summary, d) in &rows {
            let row = RunRow {
                summary,
                strategy: d.strategy.clone(),
                params: d.params.clone(),
                data: d.data.clone(),
                return_pct: d.return_pct,
                sharpe_ratio: d.sharpe_ratio,
            };
            serde_json::to_writer(&mut out, &row)?;
            writeln!(out)?;
        }
        return Ok(Outcome::Ok);
    }
    writeln!(out, "{}", table(&rows))?;
    Ok(Outcome::Ok)
}

/// What the ledger says of a run beyond its index entry.
#[derive(Debug, Default)]
struct Details {
    strategy: Option<String>,
    params: Option<String>,
    data: Option<String>,
    return_pct: Option<f64>,
    sharpe_ratio: Option<f64>,
}

/// The run's `RunStarted` (its strategy, parameters and data) and its report (from the
/// report fold's snapshot and the events after it; a run without one shows none: folding
/// every old run would read the whole ledger). What cannot be read is left out.
fn details(ledger: &Ledger, run: &RunSummary) -> Details {
    let mut details = Details::default();
    if run.mode.is_none() {
        return details; // operator commands
    }
    let mut cursor = EventCursor::new(&ledger.log, run.first_seq, run.first_seq);
    if let Ok(Some(Envelope { payload: Payload::RunStarted(started), .. })) = cursor.next_event() {
        details.strategy = Some(format!("{}:{}", started.provider, started.model));
        details.params = Some(started.params.to_string());
        details.data = Some(started.data_source.to_string());
    }
    if let Ok(Some(mut report)) = ledger.report_state(run.run_id) {
        let caught_up = report.covers() >= run.last_seq
            || fold_range(&ledger.log, report.covers().next(), run.last_seq, &mut report).is_ok();
        if caught_up && ledger.log.head().seq >= run.last_seq {
            let report = report.report();
            details.return_pct = Some(report.return_pct);
            details.sharpe_ratio = Some(report.sharpe_ratio);
        }
    }
    details
}

fn table(rows: &[(RunSummary, Details)]) -> comfy_table::Table {
    let header =
        ["run", "mode", "strategy", "params", "data", "return %", "sharpe", "events", "seqs", "started", "stopped"];
    let mut table = describe::table(header);
    let number = |x: Option<f64>| x.filter(|x| x.is_finite()).map_or_else(|| "-".to_string(), |x| format!("{x:.2}"));
    for (info, d) in rows {
        let text =
            |t: &Option<String>| t.as_deref().map_or_else(|| "-".to_string(), |t| describe::safe(t).into_owned());
        table.add_row([
            info.run_id.to_string(),
            info.mode.map_or_else(|| "operator".to_string(), |m| format!("{m:?}")),
            text(&d.strategy),
            text(&d.params),
            text(&d.data),
            number(d.return_pct),
            number(d.sharpe_ratio),
            info.event_count.to_string(),
            format!("{}..{}", info.first_seq, info.last_seq),
            info.started.to_rfc3339(),
            match (&info.stopped, &info.stop_reason) {
                (Some(at), Some(reason)) => format!("{} ({})", at.to_rfc3339(), describe::safe(reason)),
                _ if info.mode.is_some() => "- (interrupted or running)".to_string(),
                _ => "-".to_string(),
            },
        ]);
    }
    table
}
