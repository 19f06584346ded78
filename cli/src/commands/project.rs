//! `ledger project`: a remote projection. A separate process, on any machine that
//! reaches NATS, follows a ledger's stream with a durable pull consumer, checks every
//! record against the hash chain (a gap or a bad link stops it, naming the seq), and
//! folds the events into the same folds as the local ledger: the runs index, the kill
//! switch and each run's report (its portfolio included); with `--run`, that run's
//! audit rows too, chained as `ledger audit export --run` chains them (its row count and
//! last row hash are printed: the same as the export's manifest).
//!
//! Its state (the folds, the seq and hash they cover) is kept in a file, written
//! before the consumer acknowledges what it covers: restarted, the projection loads it
//! and the consumer delivers what came after (anything delivered again is passed over).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ledger_adapters::clock::WallClock;
use ledger_adapters::nats::{NatsLink, NatsOptions};
use ledger_core::chain::Hash32;
use ledger_core::codec;
use ledger_core::event::EventRef;
use ledger_core::ids::{RunId, Seq};
use ledger_core::log::Head;
use ledger_core::time::Clock;
use ledger_projections::audit::{AuditFold, AuditRow, RowChain};
use ledger_projections::kill_switch::KillSwitchFold;
use ledger_projections::report::ReportFold;
use ledger_projections::runs::RunsFold;
use ledger_projections::Fold;
use serde::{Deserialize, Serialize};

use crate::args::ProjectArgs;
use crate::commands::report;
use crate::describe;
use crate::Outcome;

/// What a projection keeps between runs of `ledger project`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ProjectState {
    /// The ledger followed (from its messages' `Nats-Msg-Id`).
    ledger_id: Option<String>,
    /// The last seq folded.
    covers: Seq,
    /// Its hash: the next record must chain from it.
    hash: Hash32,
    /// The runs index.
    runs: RunsFold,
    /// The operator's kill switch.
    kill_switch: KillSwitchFold,
    /// Each run's report (only `--run`'s when one is given).
    reports: BTreeMap<u64, ReportFold>,
    /// `--run`'s audit rows, as JSON ([`ProjectedAudit`]: rows leave empty fields out,
    /// which the state file's binary form cannot carry).
    audit: Option<String>,
}

/// A run's audit trail as a projection keeps it: the fold (its open row included), the
/// row chain, and the rows closed so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProjectedAudit {
    fold: AuditFold,
    chain: RowChain,
    rows: u64,
}

impl ProjectedAudit {
    fn new(run: RunId) -> Self {
        ProjectedAudit { fold: AuditFold::new(run), chain: RowChain::new(), rows: 0 }
    }

    fn apply(&mut self, event: &EventRef<'_>) -> Result<()> {
        self.fold.apply(event);
        self.chain_closed()
    }

    /// Chains the rows the fold has closed.
    fn chain_closed(&mut self) -> Result<()> {
        let rows: Vec<AuditRow> = self.fold.take_rows().collect();
        for mut row in rows {
            self.chain.link(&mut row).context("chaining an audit row")?;
            self.rows += 1;
        }
        Ok(())
    }

    /// The row count and last row hash with the open row closed, as an export of the
    /// run so far would have them.
    fn head(&self) -> Result<(u64, Hash32)> {
        let mut ended = self.clone();
        ended.fold.finish();
        ended.chain_closed()?;
        Ok((ended.rows, ended.chain.last()))
    }
}

impl ProjectState {
    fn load(path: &Path) -> Result<ProjectState> {
        match std::fs::read(path) {
            Ok(bytes) => codec::decode_meta(&bytes)
                .with_context(|| format!("reading the projection's state {}", describe::path(path))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(ProjectState::default()),
            Err(error) => Err(error).with_context(|| format!("reading {}", describe::path(path))),
        }
    }

    /// Writes the state to a file beside `path`, flushes it to disk and renames it over
    /// `path`: a crash leaves the old state or the new one.
    fn save(&self, path: &Path) -> Result<()> {
        let bytes = codec::encode_meta(self).context("encoding the projection's state")?;
        let temporary = path.with_extension("state.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, path)
        };
        write().with_context(|| format!("writing the projection's state {}", describe::path(path)))
    }
}

pub fn run(args: &ProjectArgs) -> Result<Outcome> {
    let path = args.state.clone().unwrap_or_else(|| PathBuf::from(format!("ledger-project-{}.state", args.durable)));
    let mut state = ProjectState::load(&path)?;
    let only = args.run.map(RunId::new);
    let options = NatsOptions::from_env(&args.nats, &args.stream.nats_stream, args.stream.nats_replicas);
    let link = NatsLink::connect(&options, false)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).context("installing the Ctrl-C handler")?;
    if state.covers > Seq::ZERO {
        tracing::info!(covers = %state.covers, state = %path.display(), "continuing the projection");
    }
    let until = args.until.map(Seq::new);
    let mut lags: Vec<i64> = Vec::new();
    let (mut following_since, mut backlog) = (None::<i64>, 0u64);
    let mut failure = None;
    let (start_covers, start_hash) = (state.covers, state.hash);
    let audit: Option<ProjectedAudit> =
        match (&state.audit, only) {
            (Some(json), Some(_)) => Some(serde_json::from_str(json).with_context(|| {
                format!("reading the audit rows of the projection's state {}", describe::path(&path))
            })?),
            (None, Some(run)) if start_covers == Seq::ZERO => Some(ProjectedAudit::new(run)),
            (None, Some(run)) => {
                tracing::warn!(%run, "the projection's state was started without --run: it keeps no audit rows");
                None
            }
            _ => None,
        };
    let shared = std::cell::RefCell::new(&mut state);
    let audit = std::cell::RefCell::new(audit);
    let done_already = until.is_some_and(|until| until <= start_covers);
    let result = if done_already {
        Ok(())
    } else {
        link.follow(
            &args.durable,
            Head { seq: start_covers, hash: start_hash },
            args.idle.map(Into::into),
            &stop,
            &mut |incoming| {
                let mut state = shared.borrow_mut();
                match &state.ledger_id {
                    Some(id) if *id != incoming.ledger_id => {
                        failure = Some(anyhow::anyhow!(
                            "seq {}: the stream holds ledger {}, the projection's state {} was made from ledger {id}",
                            incoming.event.header.seq,
                            incoming.ledger_id,
                            describe::path(&path)
                        ));
                        return Ok(ControlFlow::Break(()));
                    }
                    Some(_) => {}
                    None => state.ledger_id = Some(incoming.ledger_id.clone()),
                }
                let event = incoming.event.as_ref();
                state.runs.apply(&event);
                state.kill_switch.apply(&event);
                let run = event.run_id;
                if run.get() != 0 && only.is_none_or(|only| only == run) {
                    state.reports.entry(run.get()).or_insert_with(|| ReportFold::new(run)).apply(&event);
                }
                if let Some(audit) = audit.borrow_mut().as_mut() {
                    if let Err(error) = audit.apply(&event) {
                        failure = Some(error);
                        return Ok(ControlFlow::Break(()));
                    }
                }
                state.covers = event.seq;
                state.hash = incoming.event.header.hash;
                if args.lag {
                    // Events recorded before the first message arrived were waiting when
                    // the projection started (a backlog, not following): counted apart.
                    let now = WallClock.now().nanos();
                    let since = *following_since.get_or_insert(now);
                    let recorded = incoming.event.header.ts_recorded.nanos();
                    if recorded >= since {
                        lags.push(now - recorded);
                    } else {
                        backlog += 1;
                    }
                }
                Ok(if until.is_some_and(|until| event.seq >= until) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            },
            &mut || {
                let mut state = shared.borrow_mut();
                state.audit = audit.borrow().as_ref().map(serde_json::to_string).transpose().map_err(|e| {
                    ledger_adapters::nats::NatsError::Log(ledger_core::log::LogError::storage(
                        "encoding the projection's audit rows",
                        std::io::Error::other(e.to_string()),
                    ))
                })?;
                state.save(&path).map_err(|e| {
                    ledger_adapters::nats::NatsError::Log(ledger_core::log::LogError::storage(
                        "saving the projection's state",
                        std::io::Error::other(format!("{e:#}")),
                    ))
                })?;
                Ok(ControlFlow::Continue(()))
            },
        )
    };
    if let Some(failure) = failure {
        return Err(failure);
    }
    result?;
    let audit = audit.into_inner();
    state.audit = audit.as_ref().map(serde_json::to_string).transpose().context("encoding the audit rows")?;
    state.save(&path)?;
    if args.lag {
        print_lag(&mut lags, backlog);
    }
    eprintln!(
        "projected seq 1..={} of ledger {} (head hash {}); state in {}",
        state.covers,
        state.ledger_id.as_deref().unwrap_or("none"),
        state.hash,
        describe::path(&path)
    );
    let run = only.or_else(|| state.runs.iter().filter(|info| info.mode.is_some()).last().map(|info| info.run_id));
    let Some(run) = run else {
        bail!("no run in the stream yet (projected through seq {})", state.covers);
    };
    match state.reports.get(&run.get()) {
        Some(fold) => report::print(&fold.report(), args.json)?,
        None => bail!("no run {run} in the stream yet (projected through seq {})", state.covers),
    }
    if let Some(audit) = &audit {
        let (rows, last) = audit.head()?;
        eprintln!(
            "audit: run {run}: {rows} rows, last row hash {last} (as `ledger audit export --run {run}` chains them)"
        );
    }
    Ok(Outcome::Ok)
}

/// `lag: N events recorded while following, p50 X ms, p99 Y ms, max Z ms; M waiting at
/// the start` on stderr.
fn print_lag(lags: &mut [i64], backlog: u64) {
    if lags.is_empty() {
        eprintln!("lag: no events recorded while following; {backlog} waiting at the start");
        return;
    }
    lags.sort_unstable();
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize] as f64 / 1e6;
    eprintln!(
        "lag: {} events recorded while following, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {backlog} waiting at the start",
        lags.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
