//! Wiring: strategies, venue, risk and the log, from a validated [`Config`].

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ledger_adapters::clock::WallClock;
use ledger_adapters::market_data::{read_ticks, ReadOptions};
use ledger_adapters::script::ScriptProvider;
use ledger_adapters::sled_log::Durability;
use ledger_core::bus::{EventBus, Outbox};
use ledger_core::decision::DecisionProvider;
use ledger_core::engine::{Engine, RunSpec, Tick};
use ledger_core::event::{Payload, RunMode, TickData};
use ledger_core::ids::{InstrumentId, RunId, Seq};
use ledger_core::log::EventLog;
use ledger_core::risk::{KillSwitch, RiskEngine};
use ledger_core::strategy::{EmaRsi, RuleSizing, SmaCross};
use ledger_core::time::{Clock, SimulatedClock, TimestampNs};
use ledger_core::venue::{FillModel, PaperVenue};
use rust_decimal::Decimal;

use crate::config::{Config, LedgerConfig};

/// Builds the rules provider the config names.
///
/// # Errors
/// An unknown strategy or parameter, or a parameter that does not parse.
pub fn provider(config: &Config) -> Result<Box<dyn DecisionProvider>> {
    let params = &config.strategy.params;
    let known: &[&str] = match config.strategy.name.as_str() {
        "sma-cross" => &["fast", "slow", "short", "size_pct"],
        "ema-rsi" => &["fast", "slow", "rsi", "overbought", "oversold", "short", "size_pct"],
        other => bail!("unknown strategy {other:?}: choose sma-cross or ema-rsi"),
    };
    if let Some(unknown) = params.keys().find(|k| !known.contains(&k.as_str())) {
        bail!("unknown parameter {unknown:?} for {}: known are {known:?}", config.strategy.name);
    }
    fn get<T: std::str::FromStr>(
        params: &std::collections::BTreeMap<String, String>,
        key: &str,
        default: T,
    ) -> Result<T> {
        match params.get(key) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| anyhow::anyhow!("parameter {key}={text:?} does not parse")),
        }
    }
    if config.strategy.name == "script" {
        let Some(file) = params.get("file") else { bail!("the script strategy needs --param file=DECISIONS.jsonl") };
        return Ok(Box::new(ScriptProvider::open(Path::new(file))?));
    }
    let size_pct: Decimal = get(params, "size_pct", Decimal::ONE)?;
    if size_pct <= Decimal::ZERO || size_pct > Decimal::ONE {
        bail!("parameter size_pct={size_pct} must be in (0, 1]");
    }
    let sizing = RuleSizing { size_pct, allow_short: get(params, "short", true)? };
    Ok(match config.strategy.name.as_str() {
        "sma-cross" => {
            let (fast, slow) = (get(params, "fast", 10usize)?, get(params, "slow", 30usize)?);
            if fast == 0 || slow == 0 || fast >= slow {
                bail!("sma-cross needs 0 < fast < slow, got fast={fast} slow={slow}");
            }
            Box::new(SmaCross::new(fast, slow, sizing))
        }
        _ => Box::new(EmaRsi::new(
            get(params, "fast", 20)?,
            get(params, "slow", 50)?,
            get(params, "rsi", 14)?,
            get(params, "overbought", 70.0)?,
            get(params, "oversold", 30.0)?,
            sizing,
        )),
    })
}

/// The instrument: as configured, else derived from the file name.
///
/// # Errors
/// An invalid symbol.
pub fn instrument(config: &Config, file: &Path) -> Result<InstrumentId> {
    let text = match &config.data.instrument {
        Some(symbol) => symbol.clone(),
        None => {
            let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            name.split(['_', '-', '.']).next().unwrap_or_default().to_ascii_uppercase()
        }
    };
    InstrumentId::new(&text).with_context(|| format!("instrument for {} (set --instrument)", file.display()))
}

/// Reads the configured data file.
///
/// # Errors
/// No file configured, or a [`ledger_adapters::market_data::DataError`].
pub fn ticks(config: &Config) -> Result<(Vec<Tick>, String)> {
    let Some(file) = &config.data.file else { bail!("no market data: pass --data FILE or set [data] file") };
    let instrument = instrument(config, file)?;
    let utc_offset_seconds = match &config.data.utc_offset {
        None => 0,
        Some(text) => parse_utc_offset(text)?,
    };
    let ticks = read_ticks(file, &ReadOptions { instrument, sort: config.data.sort, utc_offset_seconds })?;
    check_fill_model(config.venue.fill_model, &ticks[0].data, file)?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let source = format!("{} sha256:{}", file.display(), ledger_core::chain::Hash32::digest(&bytes));
    Ok((ticks, source))
}

/// Refuses a fill model that cannot fill on the file's kind of data (orders would wait
/// forever), naming the model that can.
///
/// # Errors
/// The mismatch, with the setting to use.
fn check_fill_model(model: FillModel, data: &TickData, file: &Path) -> Result<()> {
    if !model.fills_on(data) {
        let (kind, suggestion) = match data {
            TickData::Bar(_) => ("bars", "next_open\" (or \"close"),
            TickData::Quote(_) => ("quotes", "quote"),
            TickData::Trade(_) => ("trades", "trade"),
        };
        bail!(
            "{} holds {kind}, which fill model {model:?} cannot fill on: set [venue] fill_model = \"{suggestion}\" in the config",
            file.display()
        );
    }
    Ok(())
}

/// Parses `+HH:MM` / `-HH:MM` into seconds east of UTC.
///
/// # Errors
/// Any other form.
fn parse_utc_offset(text: &str) -> Result<i32> {
    let bad = || anyhow::anyhow!("utc_offset {text:?}: expected +HH:MM or -HH:MM, e.g. -05:00 for EST");
    let (sign, rest) = match text.trim().split_at_checked(1) {
        Some(("+", rest)) => (1, rest),
        Some(("-", rest)) => (-1, rest),
        _ => return Err(bad()),
    };
    let (hours, minutes) = rest.split_once(':').ok_or_else(bad)?;
    let (hours, minutes): (i32, i32) = (hours.parse().map_err(|_| bad())?, minutes.parse().map_err(|_| bad())?);
    if hours > 23 || minutes > 59 {
        return Err(bad());
    }
    Ok(sign * (hours * 3600 + minutes * 60))
}

/// The durability the config asks for.
///
/// # Errors
/// An unknown mode.
pub fn durability(ledger: &LedgerConfig) -> Result<Durability> {
    Ok(match ledger.durability.as_str() {
        "strict" => Durability::Strict,
        "group" => Durability::Group {
            max_events: ledger.group_events.max(1),
            max_delay: Duration::from_millis(ledger.group_ms),
        },
        other => bail!("unknown durability {other:?}: choose strict or group"),
    })
}

/// How a session is played: its mode, pace, provenance and how it is stopped.
pub struct Session<'a> {
    /// Paper or replay (live venues are not wired yet).
    pub mode: RunMode,
    /// 0 = as fast as possible; 1 = the data's own pace; 2 = twice as fast, ...
    pub speed: f64,
    /// Where the data came from, recorded in `RunStarted`.
    pub source: &'a str,
    /// The replayed run, if any.
    pub parent: Option<RunId>,
    /// Set from another thread (Ctrl-C) to stop after the current cycle.
    pub stop: Option<&'a AtomicBool>,
    /// Whether the kill switch starts tripped. Paper and live runs take the ledger's
    /// persisted state; a backtest is a simulation and starts armed; a replay of a
    /// recorded run starts as the original did.
    pub kill_switch_tripped: bool,
}

impl<'a> Session<'a> {
    /// A replay-mode backtest as fast as possible.
    pub fn backtest(source: &'a str) -> Self {
        Session { mode: RunMode::Replay, speed: 0.0, source, parent: None, stop: None, kill_switch_tripped: false }
    }
}

/// The clock of a session: the data's time in replays (byte-identical reruns), the
/// wall clock in paper and live runs.
enum SessionClock {
    Simulated(SimulatedClock),
    Wall(WallClock),
}

impl Clock for SessionClock {
    fn now(&self) -> TimestampNs {
        match self {
            SessionClock::Simulated(clock) => clock.now(),
            SessionClock::Wall(clock) => clock.now(),
        }
    }
}

/// Ticks above which a progress bar is worth drawing (on a terminal only).
const PROGRESS_MIN_TICKS: usize = 200_000;

/// Runs `ticks` through a fresh engine on `log` as a new run and returns its id. With a
/// `bus`, every durable event of the run is published through an outbox: after each
/// cycle in paced sessions (which then flush every cycle), at the end in fast ones.
///
/// # Errors
/// A failed append, flush or publish (the run stops there; what was appended stays).
pub fn execute<L: EventLog>(
    log: &mut L,
    config: &Config,
    ticks: &[Tick],
    provider: Box<dyn DecisionProvider>,
    session: &Session<'_>,
    mut bus: Option<&mut dyn EventBus>,
) -> Result<RunId> {
    let mut outbox = Outbox::new(log.head().seq);
    let run_id = log.runs().next_run_id();
    let kill_tripped = session.kill_switch_tripped;
    if kill_tripped {
        tracing::warn!(
            "the kill switch is tripped: no new positions will be opened (reset with `ledger kill-switch reset`)"
        );
    }
    let clock = match session.mode {
        RunMode::Replay => {
            SessionClock::Simulated(SimulatedClock::new(ticks.first().map(|t| t.ts).unwrap_or_default()))
        }
        RunMode::Paper | RunMode::Live => SessionClock::Wall(WallClock),
    };
    let spec = RunSpec {
        run_id,
        mode: session.mode,
        config: Arc::from(config.canonical_json().as_str()),
        software_version: Arc::from(env!("CARGO_PKG_VERSION")),
        instruments: ticks.first().map(|t| vec![t.instrument]).unwrap_or_default(),
        data_source: Arc::from(session.source),
        parent_run: session.parent,
        starting_cash: config.account.starting_cash,
        cycles_per_append: if session.speed > 0.0 { 1 } else { config.ledger.cycles_per_append },
    };
    let venue = Box::new(PaperVenue::new(config.venue.clone()));
    let risk = RiskEngine::new(config.risk.clone());
    let kill = KillSwitch::new(config.kill_switch.clone(), kill_tripped);
    let mut engine = Engine::start(log, &clock, spec, provider, risk, kill, venue)?;
    let progress = progress_bar(ticks.len());
    let mut stopped_early = false;
    for (i, tick) in ticks.iter().enumerate() {
        if session.stop.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            stopped_early = true;
            break;
        }
        if let (true, Some(previous)) = (session.speed > 0.0, i.checked_sub(1).map(|p| &ticks[p])) {
            let gap = (tick.ts.nanos() - previous.ts.nanos()).max(0) as f64 / session.speed;
            if !pace(Duration::from_nanos(gap as u64), session.stop) {
                stopped_early = true;
                break;
            }
        }
        if let SessionClock::Simulated(clock) = &clock {
            clock.set(tick.ts);
        }
        engine.on_tick(tick)?;
        if let (true, Some(bus)) = (session.speed > 0.0, bus.as_deref_mut()) {
            engine.sync()?;
            outbox.forward(engine.log(), bus)?;
        }
        if i % 4096 == 0 {
            progress.set_position(i as u64);
        }
    }
    progress.finish_and_clear();
    engine.stop(if stopped_early { "interrupted" } else { "end of data" })?;
    if let Some(bus) = bus {
        outbox.forward(&*log, bus)?;
    }
    tracing::info!(run = %run_id, ticks = ticks.len(), stopped_early, "run finished");
    Ok(run_id)
}

/// Waits `gap` in slices of at most 100 ms, so a stop request is seen promptly; returns
/// `false` if one came.
fn pace(gap: Duration, stop: Option<&AtomicBool>) -> bool {
    let deadline = std::time::Instant::now() + gap;
    loop {
        if stop.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            return false;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

fn progress_bar(len: usize) -> ProgressBar {
    if len < PROGRESS_MIN_TICKS {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} ticks ({per_sec}, {eta})") {
        bar.set_style(style);
    }
    bar
}

/// Whether the kill switch is tripped now: the last trip or reset in the ledger wins.
///
/// # Errors
/// Storage or decoding errors.
pub fn kill_switch_tripped(log: &dyn EventLog) -> Result<bool> {
    let mut tripped = false;
    log.visit_events(Seq::new(1), &mut |event| {
        match event.payload {
            Payload::KillSwitchTripped(_) => tripped = true,
            Payload::KillSwitchReset(_) => tripped = false,
            _ => {}
        }
        ControlFlow::Continue(())
    })?;
    Ok(tripped)
}
