//! `ledger status`: the session running on the data directory, asked through its control
//! endpoint; with none running, the ledger itself: the latest run and the kill switch.
//! Either answer is a success (exit 0): "no session" is a state, not an error.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use ledger_core::log::EventLog;
use ledger_core::time::TimestampNs;
use ledger_projections::runs::RunSummary;
use serde_json::json;

use crate::args::StatusArgs;
use crate::commands::{access, Access};
use crate::describe;
use crate::session_link::SessionStatus;
use crate::Outcome;

pub fn run(data_dir: &Path, args: &StatusArgs) -> Result<Outcome> {
    let dir = data_dir.display().to_string();
    let mut out = std::io::stdout().lock();
    match access(data_dir)? {
        Access::Session(mut session) => {
            let status = session.status()?;
            if args.json {
                writeln!(out, "{}", json!({ "running": true, "data_dir": dir, "session": status }))?;
            } else {
                write_session(&mut out, data_dir, &status)?;
            }
        }
        Access::Ledger(ledger) => {
            // Run 0 holds the operator's commands; the latest run is the latest session.
            let latest = ledger.runs.iter().filter(|info| info.mode.is_some()).last();
            let tripped = ledger.kill_switch.is_tripped();
            let acked = ledger.log.outbox_mark().acked()?.get();
            let head = ledger.log.head().seq.get();
            if args.json {
                let value = json!({ "running": false, "data_dir": dir, "latest_run": latest, "kill_switch_tripped": tripped,
                    "nats_acked_seq": acked, "head_seq": head });
                writeln!(out, "{value}")?;
            } else {
                writeln!(out, "no session is running on {}", describe::path(data_dir))?;
                writeln!(out, "latest run:  {}", latest.map_or_else(|| "none".to_string(), describe_run))?;
                writeln!(out, "kill switch: {}", if tripped { "TRIPPED" } else { "armed" })?;
                if acked > 0 {
                    writeln!(
                        out,
                        "nats outbox: acked through seq {acked} of {head} ({} to publish)",
                        head.saturating_sub(acked)
                    )?;
                }
            }
        }
    }
    out.flush()?;
    Ok(Outcome::Ok)
}

/// `3 (Paper), last seq 480, stopped 2024-05-01T10:00:00.000000Z (interrupted)`, or
/// `... interrupted (no RunStopped)` for a run that ended without recording its stop.
fn describe_run(info: &RunSummary) -> String {
    let mode = info.mode.map_or_else(|| "operator".to_string(), |m| format!("{m:?}"));
    let end = match (&info.stopped, &info.stop_reason) {
        (Some(at), Some(reason)) => format!("stopped {} ({})", at.to_rfc3339(), describe::safe(reason)),
        (Some(at), None) => format!("stopped {}", at.to_rfc3339()),
        (None, _) => "interrupted (no RunStopped)".to_string(),
    };
    format!("{} ({mode}), last seq {}, {end}", info.run_id, info.last_seq)
}

fn time(ns: i64) -> String {
    if ns == 0 {
        "none yet".to_string()
    } else {
        TimestampNs::from_nanos(ns).to_rfc3339()
    }
}

fn write_session(out: &mut impl Write, data_dir: &Path, s: &SessionStatus) -> Result<()> {
    let unflushed = s.head_seq.saturating_sub(s.durable_seq);
    writeln!(out, "session running on {}", describe::path(data_dir))?;
    writeln!(
        out,
        "run:            {} ({}), pid {}, started {}",
        s.run_id,
        describe::safe(&s.mode),
        s.pid,
        time(s.started_ns)
    )?;
    writeln!(out, "cycle:          {}", s.cycle)?;
    writeln!(out, "seq:            head {}, durable {} ({unflushed} unflushed)", s.head_seq, s.durable_seq)?;
    writeln!(out, "last tick:      {} (cycle at {})", time(s.last_tick_ns), time(s.last_cycle_ns))?;
    writeln!(out, "cash:           {}", describe::safe(&s.cash))?;
    writeln!(out, "equity:         {}", describe::safe(&s.equity))?;
    writeln!(out, "realized P&L:   {}", describe::safe(&s.realized_pnl))?;
    writeln!(out, "fees:           {}", describe::safe(&s.fees))?;
    writeln!(out, "kill switch:    {}", if s.kill_switch_tripped { "TRIPPED" } else { "armed" })?;
    writeln!(out, "working orders: {}", s.working_orders)?;
    if let Some(nats) = &s.nats {
        let lag = s.durable_seq.saturating_sub(nats.acked_seq);
        let state = match (&nats.error, nats.connected) {
            (Some(error), _) => format!("waiting: {}", describe::safe(error)),
            (None, true) => "connected".to_string(),
            (None, false) => "connecting".to_string(),
        };
        writeln!(
            out,
            "nats outbox:    stream {} at {}: acked through seq {}, lag {lag} events ({state})",
            describe::safe(&nats.stream),
            describe::safe(&nats.url),
            nats.acked_seq
        )?;
    }
    if s.positions.is_empty() {
        writeln!(out, "positions:      none")?;
        return Ok(());
    }
    let mut table = describe::table(["instrument", "qty", "avg price", "mark", "unrealized P&L"]);
    for p in &s.positions {
        table.add_row(
            [&p.instrument, &p.qty, &p.avg_price, &p.mark, &p.unrealized_pnl].map(|text| describe::safe(text)),
        );
    }
    writeln!(out, "{table}")?;
    Ok(())
}
