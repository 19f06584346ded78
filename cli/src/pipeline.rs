//! Wiring and the session loop: the provider, the feed, the venue, the risk engine and
//! the folds from validated [`Settings`], and [`execute`], which pulls cycles from a
//! feed and runs them through a [`Runner`] (pacing, stop requests, publishing).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ledger_adapters::clock::WallClock;
use ledger_adapters::llm::agent::AgentSettings;
use ledger_adapters::llm::anthropic::{AnthropicProvider, AnthropicSettings};
use ledger_adapters::llm::cache::ResponseCache;
use ledger_adapters::llm::openai::{OpenAiProvider, OpenAiSettings};
use ledger_adapters::llm::prompt::PromptTemplate;
use ledger_adapters::llm::tools::Tool;
use ledger_adapters::llm::ApiKey;
use ledger_adapters::market_data::{
    describe_source, DataError, DateOrder, FileFeed, MergedFeed, ReadOptions, TimeZone,
};
use ledger_adapters::script::ScriptProvider;
use ledger_adapters::sled_log::Durability;
use ledger_core::decision::DecisionProvider;
use ledger_core::engine::RunSpec;
use ledger_core::event::{Payload, RunMode, TickData, VenueNotice};
use ledger_core::feed::{MarketFeed, Tick};
use ledger_core::ids::{InstrumentId, RunId};
use ledger_core::log::EventLog;
use ledger_core::portfolio::Portfolio;
use ledger_core::replay::RecordedRun;
use ledger_core::risk::{KillSwitch, RiskEngine};
use ledger_core::runner::{Observer, ResumeFrom, RunParts, Runner};
use ledger_core::strategy::{EmaRsi, SmaCross};
use ledger_core::time::{Clock, TimestampNs};
use ledger_core::venue::{FillModel, PaperVenue, Venue};

use crate::config::{self, DurabilityMode, LedgerConfig, ProviderConfig, RuleStrategy, Settings};
use crate::describe;
use crate::outbox::NatsOutbox;
use crate::session_link::{OperatorCommand, PositionStatus, SessionLink, SessionStatus};

/// The LLM response cache the settings name (`--llm-cache`), opened.
///
/// # Errors
/// The folder cannot be created, or is missing with `--llm-cache-only`.
pub fn llm_cache(settings: &Settings) -> Result<Option<ResponseCache>> {
    match &settings.llm_cache {
        None => Ok(None),
        Some(dir) => Ok(Some(ResponseCache::open(dir, settings.llm_cache_only)?)),
    }
}

/// Fails when a cache-only session met requests its cache does not hold (each was
/// held without a call).
///
/// # Errors
/// The count of missed requests, the first one's SHA-256 and the folder.
pub fn check_llm_cache(cache: Option<&ResponseCache>) -> Result<()> {
    let Some(cache) = cache else { return Ok(()) };
    match cache.misses() {
        (0, _) => Ok(()),
        (n, first) => bail!(
            "--llm-cache-only: {n} request(s) not in the cache {} (the first: {}); each was held without a call. \
             Run without --llm-cache-only to ask the model and fill the cache",
            describe::path(cache.dir()),
            first.unwrap_or_default()
        ),
    }
}

/// Builds the decision provider the settings name, answering LLM requests from `cache`
/// when one is given.
///
/// # Errors
/// An unknown strategy or parameter, a parameter that does not parse or is out of
/// range ([`config::rule_strategy`], already checked when the settings were resolved),
/// an unreadable decisions file, an LLM server's unset key variable or unusable base
/// URL, an unknown tool, or a prompt template that does not compile.
pub fn provider(settings: &Settings, cache: Option<&ResponseCache>) -> Result<Box<dyn DecisionProvider>> {
    let (strategy, params) = match &settings.provider {
        ProviderConfig::Rules { strategy, params } => (strategy.as_str(), params),
        ProviderConfig::Script { file } => return Ok(Box::new(ScriptProvider::open(file)?)),
        ProviderConfig::Openai(openai) => {
            let key = match &openai.api_key_env {
                None => None,
                Some(var) => Some(api_key(var)?),
            };
            let settings = OpenAiSettings {
                base_url: openai.base_url.clone(),
                model: openai.model.clone(),
                temperature: openai.temperature,
                seed: openai.seed,
                max_tokens: openai.max_tokens,
                timeout: nanos(openai.timeout_ns),
                max_retries: openai.max_retries,
                retry_backoff: nanos(openai.retry_backoff_ns),
            };
            let provider = OpenAiProvider::new(settings, agent_settings(&openai.agent)?, key)?;
            return Ok(match cache {
                Some(cache) => Box::new(provider.with_cache(cache.clone())),
                None => Box::new(provider),
            });
        }
        ProviderConfig::Anthropic(anthropic) => {
            let settings = AnthropicSettings {
                base_url: anthropic.base_url.clone(),
                model: anthropic.model.clone(),
                max_tokens: anthropic.max_tokens,
                temperature: anthropic.temperature,
                timeout: nanos(anthropic.timeout_ns),
                max_retries: anthropic.max_retries,
                retry_backoff: nanos(anthropic.retry_backoff_ns),
            };
            let key = Some(api_key(&anthropic.api_key_env)?);
            let provider = AnthropicProvider::new(settings, agent_settings(&anthropic.agent)?, key)?;
            return Ok(match cache {
                Some(cache) => Box::new(provider.with_cache(cache.clone())),
                None => Box::new(provider),
            });
        }
    };
    Ok(match config::rule_strategy(strategy, params)? {
        RuleStrategy::SmaCross { fast, slow, sizing } => Box::new(SmaCross::new(fast, slow, sizing)),
        RuleStrategy::EmaRsi { fast, slow, rsi, overbought, oversold, sizing } => {
            Box::new(EmaRsi::new(fast, slow, rsi, overbought, oversold, sizing))
        }
    })
}

/// The API key in the environment variable `var` (named in errors; its value never).
fn api_key(var: &str) -> Result<ApiKey> {
    std::env::var(var)
        .ok()
        .as_deref()
        .and_then(ApiKey::new)
        .with_context(|| format!("provider.api_key_env: the environment variable {var} is not set or is empty"))
}

/// A duration in configured nanoseconds (validated non-negative).
fn nanos(ns: i64) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// An LLM provider's tools, rounds, prices and prompt template, as the adapters take them.
///
/// # Errors
/// An unknown tool (checked when the settings were resolved), or a template that
/// cannot be read or compiled (named with its file and line).
fn agent_settings(agent: &config::AgentConfig<std::path::PathBuf>) -> Result<AgentSettings> {
    let mut tools = Vec::with_capacity(agent.tools.len());
    for name in &agent.tools {
        tools.push(Tool::from_name(name).with_context(|| format!("provider.tools: no tool named {name:?}"))?);
    }
    let template = match &agent.prompt_template {
        None => None,
        Some(path) => Some(PromptTemplate::load(path).map_err(anyhow::Error::msg)?),
    };
    Ok(AgentSettings {
        tools,
        max_tool_rounds: agent.max_tool_rounds.unwrap_or(config::DEFAULT_MAX_TOOL_ROUNDS),
        price_per_mtok_in: agent.price_per_mtok_in,
        price_per_mtok_out: agent.price_per_mtok_out,
        template,
    })
}

/// The instrument of `file`: as configured, else derived from the file name.
fn instrument(configured: Option<&str>, file: &Path) -> Result<InstrumentId> {
    let text = match configured {
        Some(symbol) => symbol.to_string(),
        None => config::derived_instrument(file),
    };
    InstrumentId::new(&text).with_context(|| format!("instrument for {} (set --instrument)", describe::path(file)))
}

/// A session's market data: the feed, where it comes from, and its instruments.
pub struct MarketData {
    /// The ticks, in time order.
    pub feed: FileCycles,
    /// Provenance recorded in `RunStarted`.
    pub source: String,
    /// The instruments, one per file.
    pub instruments: Vec<InstrumentId>,
}

/// Opens the configured data files as one stream of ticks, merged by time when there
/// are several. When the settings do not name a fill model
/// ([`Settings::fill_model_configured`]), it is set to the one the first file's data
/// fills on (bars: `next_open`, quotes: `quote`, trades: `trade`), before the run records
/// its settings.
///
/// # Errors
/// No file configured, an unreadable file, a fill model that cannot fill on the data
/// (one configured, or the first file's where a later file holds another kind), or a
/// [`DataError`] naming the file, line and column.
pub fn market_data(settings: &mut Settings) -> Result<MarketData> {
    let data = &settings.data;
    if data.files.is_empty() {
        bail!("no market data: pass --data FILE or set [data] files");
    }
    if data.instrument.is_some() && data.files.len() > 1 {
        bail!(
            "--instrument names the instrument of a single file; with several files each is named from its file name"
        );
    }
    let utc_offset_seconds = match &data.utc_offset {
        None => 0,
        Some(text) => config::parse_utc_offset(text)
            .map_err(|rule| anyhow::anyhow!("utc_offset {}: {rule}", describe::quoted(text)))?,
    };
    let time_zone = match &data.tz {
        None => None,
        Some(name) => {
            Some(TimeZone::named(name).map_err(|e| anyhow::anyhow!("tz: {}", describe::safe(&e.to_string())))?)
        }
    };
    let date_order = match &data.date_format {
        None => None,
        Some(text) => Some(
            DateOrder::from_pattern(text)
                .with_context(|| format!("date_format {}: must be MM/DD/YYYY or DD/MM/YYYY", describe::quoted(text)))?,
        ),
    };
    let mut feeds = Vec::new();
    let mut instruments = Vec::new();
    let mut sources = Vec::new();
    let (files, instrument_flag, time_column) = (data.files.clone(), data.instrument.clone(), data.time_column.clone());
    let (sort, lenient) = (data.sort, data.lenient);
    for file in &files {
        let instrument = instrument(instrument_flag.as_deref(), file)?;
        let options = ReadOptions {
            sort,
            utc_offset_seconds,
            lenient,
            time_zone: time_zone.clone(),
            date_order,
            time_column: time_column.clone(),
            ..ReadOptions::new(instrument)
        };
        let mut feed = FileFeed::open(file, &options)?;
        let first = feed.next_tick()?;
        if let Some(first) = &first {
            if !settings.fill_model_configured && feeds.is_empty() {
                settings.venue.fill_model = fill_model_for(&first.data);
            }
            check_fill_model(settings.venue.fill_model, settings.fill_model_configured, &first.data, file)?;
        }
        sources.push(describe_source(file)?);
        instruments.push(instrument);
        feeds.push(Peeked { first, rest: feed });
    }
    let feed =
        if feeds.len() == 1 { Feed::One(Box::new(feeds.remove(0))) } else { Feed::Merged(MergedFeed::new(feeds)) };
    Ok(MarketData { feed: FileCycles { feed, wall_clock: false }, source: sources.join(", "), instruments })
}

/// The fill model that fills on ticks like `data`: the default when none is configured.
fn fill_model_for(data: &TickData) -> FillModel {
    match data {
        TickData::Bar(_) => FillModel::NextOpen,
        TickData::Quote(_) => FillModel::Quote,
        TickData::Trade(_) => FillModel::Trade,
    }
}

/// A feed whose first tick was read ahead (to check the fill model against the data).
struct Peeked {
    first: Option<Tick>,
    rest: FileFeed,
}

impl MarketFeed for Peeked {
    type Error = DataError;

    fn next_tick(&mut self) -> Result<Option<Tick>, DataError> {
        match self.first.take() {
            Some(tick) => Ok(Some(tick)),
            None => self.rest.next_tick(),
        }
    }
}

/// One file read directly, or several merged by time.
enum Feed {
    One(Box<Peeked>),
    Merged(MergedFeed<Peeked>),
}

/// Refuses a fill model that cannot fill on the file's kind of data (orders would wait
/// forever), naming the model that can. `configured`: the model was set (else it was
/// taken from an earlier file, which holds another kind of data).
fn check_fill_model(model: FillModel, configured: bool, data: &TickData, file: &Path) -> Result<()> {
    if !model.fills_on(data) {
        let (kind, suggestion) = match data {
            TickData::Bar(_) => ("bars", "next_open\" (or \"close"),
            TickData::Quote(_) => ("quotes", "quote"),
            TickData::Trade(_) => ("trades", "trade"),
        };
        let model = serde_json::to_string(&model).unwrap_or_default();
        if !configured {
            bail!(
                "{} holds {kind}, which fill model {model} (taken from the first file's data) cannot fill on: one session fills every file with one model, so the files must hold one kind of data",
                describe::path(file)
            );
        }
        bail!(
            "{} holds {kind}, which fill model {model} cannot fill on: set [venue] fill_model = \"{suggestion}\" in the config or --fill-model {} (or leave it unset: it follows the data)",
            describe::path(file),
            suggestion.split('"').next().unwrap_or(suggestion)
        );
    }
    Ok(())
}

/// The durability the settings ask for.
pub fn durability(ledger: &LedgerConfig) -> Durability {
    match ledger.durability {
        DurabilityMode::Strict => Durability::Strict,
        DurabilityMode::Group => Durability::Group {
            max_events: ledger.group_events.max(1),
            max_delay: Duration::from_nanos(ledger.group_interval_ns.unwrap_or(0).max(0) as u64),
        },
    }
}

/// Where a session's cycles come from: each tick with the time its cycle runs at.
pub trait Cycles {
    /// The next tick and its cycle's time, or `None` at the end.
    ///
    /// # Errors
    /// The source's (a bad row, a damaged record).
    fn next_cycle(&mut self) -> Result<Option<(Tick, TimestampNs)>>;

    /// Rows of market data skipped as bad so far (`--lenient`).
    fn skipped_rows(&self) -> u64 {
        0
    }

    /// Whether the ticks are live (an exchange's stream): a resumed run goes on with
    /// the next tick, its recorded ticks being in the record only.
    fn is_live(&self) -> bool {
        false
    }

    /// Passes over the next `n` cycles (a resumed run's, already recorded) and returns
    /// the last of them.
    ///
    /// # Errors
    /// As [`Cycles::next_cycle`].
    fn skip(&mut self, n: u64) -> Result<Option<(Tick, TimestampNs)>> {
        let mut last = None;
        for _ in 0..n {
            match self.next_cycle()? {
                Some(cycle) => last = Some(cycle),
                None => return Ok(None),
            }
        }
        Ok(last)
    }

    /// Operator commands to run before the cycle `next_cycle` returned last (a recorded
    /// run's), with their times.
    fn take_commands(&mut self) -> Vec<(Payload, TimestampNs)> {
        Vec::new()
    }

    /// The venue these cycles come with (a live exchange's own, when it trades), taken
    /// once; `None`: the paper venue.
    fn take_venue(&mut self) -> Option<Box<dyn Venue>> {
        None
    }

    /// What a live feed reported since the last call (gaps, lost connections), with
    /// the local time each was seen: recorded before the next cycle.
    fn take_notices(&mut self) -> Vec<(VenueNotice, TimestampNs)> {
        Vec::new()
    }
}

/// Cycles from market data files, streamed. A backtest's cycles run at the data's
/// time; a paper or live session's at the wall clock's, read once per cycle.
pub struct FileCycles {
    feed: Feed,
    wall_clock: bool,
}

impl FileCycles {
    /// Runs the cycles at the wall clock's time (paper and live sessions).
    pub fn at_wall_clock(mut self) -> Self {
        self.wall_clock = true;
        self
    }
}

impl Cycles for FileCycles {
    fn next_cycle(&mut self) -> Result<Option<(Tick, TimestampNs)>> {
        let tick = match &mut self.feed {
            Feed::One(feed) => feed.next_tick()?,
            Feed::Merged(feed) => feed.next_tick()?,
        };
        Ok(tick.map(|tick| {
            let now = if self.wall_clock { WallClock.now() } else { tick.ts };
            (tick, now)
        }))
    }

    /// A single file is skipped without parsing the rows passed over
    /// ([`FileFeed::skip_ticks`]); merged files tick by tick (which file's rows come
    /// next is known only from their times).
    fn skip(&mut self, n: u64) -> Result<Option<(Tick, TimestampNs)>> {
        let Feed::One(feed) = &mut self.feed else {
            let mut last = None;
            for _ in 0..n {
                match self.next_cycle()? {
                    Some(cycle) => last = Some(cycle),
                    None => return Ok(None),
                }
            }
            return Ok(last);
        };
        let tick = match (n, feed.first.take()) {
            (0, first) => {
                feed.first = first;
                return Ok(None);
            }
            (1, Some(first)) => Some(first),
            (n, Some(_)) => feed.rest.skip_ticks(n - 1)?,
            (n, None) => feed.rest.skip_ticks(n)?,
        };
        Ok(tick.map(|tick| {
            let now = if self.wall_clock { WallClock.now() } else { tick.ts };
            (tick, now)
        }))
    }

    fn skipped_rows(&self) -> u64 {
        match &self.feed {
            Feed::One(feed) => feed.rest.skipped_rows(),
            Feed::Merged(feed) => feed.feeds().map(|f| f.rest.skipped_rows()).sum(),
        }
    }
}

impl Cycles for RecordedRun<'_> {
    fn next_cycle(&mut self) -> Result<Option<(Tick, TimestampNs)>> {
        Ok(RecordedRun::next_cycle(self)?)
    }

    fn take_commands(&mut self) -> Vec<(Payload, TimestampNs)> {
        RecordedRun::take_commands(self)
    }

    fn take_venue(&mut self) -> Option<Box<dyn Venue>> {
        RecordedRun::take_venue(self).map(|venue| Box::new(venue) as Box<dyn Venue>)
    }
}

/// How a session is played: its mode, pace, provenance and how it is stopped.
pub struct Session<'a> {
    /// The run's id.
    pub run_id: RunId,
    /// Paper or replay (live venues are not wired yet).
    pub mode: RunMode,
    /// 0 = as fast as possible; 1 = the data's own pace; 2 = twice as fast, ...
    pub speed: f64,
    /// Where the data came from, recorded in `RunStarted`.
    pub source: &'a str,
    /// The instruments traded.
    pub instruments: Vec<InstrumentId>,
    /// The replayed run, if any.
    pub parent: Option<RunId>,
    /// Set from another thread (Ctrl-C) to stop after the current cycle.
    pub stop: Option<&'a AtomicBool>,
    /// Whether the kill switch starts tripped. Paper and live runs take the operator's
    /// switch; a backtest is a simulation and starts armed; a replay of a recorded run
    /// starts as the original did.
    pub kill_switch_tripped: bool,
    /// An interrupted run to continue instead of starting a new one (`run_id` is then
    /// that run's).
    pub resume: Option<ResumeFrom>,
    /// The control endpoint's view of the session, kept current by the loop.
    pub link: Option<&'a SessionLink>,
    /// The NATS outbox, told the durable seq as it moves.
    pub outbox: Option<&'a NatsOutbox>,
}

/// What a run of `session` under `settings` is made of: its spec (the settings'
/// canonical JSON as its config), `provider`, the risk engine, the kill switch and the
/// paper venue.
pub fn run_parts(settings: &Settings, session: &Session<'_>, provider: Box<dyn DecisionProvider>) -> RunParts {
    RunParts {
        spec: RunSpec {
            run_id: session.run_id,
            mode: session.mode,
            config: Arc::from(settings.canonical_json().as_str()),
            software_version: Arc::from(env!("CARGO_PKG_VERSION")),
            instruments: session.instruments.clone(),
            data_source: Arc::from(session.source),
            parent_run: session.parent,
            starting_cash: settings.account.starting_cash,
            venue: Arc::from("paper"),
            exits: settings.exits.clone(),
        },
        provider,
        risk: RiskEngine::new(settings.risk.clone()),
        kill: KillSwitch::new(settings.kill_switch.clone(), session.kill_switch_tripped),
        venue: Box::new(PaperVenue::new(settings.venue.clone())),
    }
}

/// Ticks between progress-bar updates.
const PROGRESS_EVERY: u64 = 4096;

/// Runs `cycles` through a new run on `log`, feeding `observer` (the live folds) as the
/// events are appended. Paced sessions flush after every cycle, fast ones on the group's
/// schedule. Returns the final account.
///
/// # Errors
/// A failed append, flush or read (the run stops there; what was appended stays,
/// chained).
pub fn execute<L: EventLog + ?Sized>(
    log: &mut L,
    observer: &mut dyn Observer,
    settings: &Settings,
    cycles: &mut dyn Cycles,
    provider: Box<dyn DecisionProvider>,
    session: &Session<'_>,
) -> Result<Portfolio> {
    if session.kill_switch_tripped {
        tracing::warn!(
            "the kill switch is tripped: no new positions will be opened (reset with `ledger kill-switch reset`)"
        );
    }
    let paced = session.speed > 0.0;
    let first = cycles.next_cycle()?;
    let start = match (&first, session.mode) {
        (Some((_, now)), _) => *now,
        (None, _) => WallClock.now(),
    };
    let mut parts = run_parts(settings, session, provider);
    if let Some(venue) = cycles.take_venue() {
        parts.spec.venue = Arc::from(venue.name());
        parts.venue = venue;
    }
    let cycles_per_append = if paced { 1 } else { settings.ledger.cycles_per_append };
    let (runner, mut previous_ts, mut next) = match session.resume.clone() {
        None => (Runner::start(log, observer, parts, start, cycles_per_append)?, None, first),
        Some(from) => {
            let (runner, resumed) = Runner::resume(log, observer, parts, from, WallClock.now(), cycles_per_append)?;
            tracing::info!(
                run = %session.run_id,
                cycles = resumed.cycles,
                snapshot_seq = %resumed.snapshot_seq,
                working_orders = resumed.working_orders.len(),
                "resumed the interrupted run"
            );
            let next = match cycles.is_live() {
                true => first,
                false => skip_recorded(first, cycles, &resumed, session.run_id)?,
            };
            (runner, Some(resumed.last_tick_ts), next)
        }
    };
    let mut runner = runner.with_snapshots(settings.ledger.snapshot_every);
    if settings.venue.close_at_end {
        runner = runner.with_close_at_end();
    }
    let progress = progress_bar();
    let (mut count, mut stopped_early, mut last) = (0u64, false, start);
    let mut status = StatusPublisher::new(session);
    status.publish(&runner, None, true);
    while let Some((tick, now)) = next {
        if session.stop.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            stopped_early = true;
            break;
        }
        if let (true, Some(previous)) = (paced, previous_ts) {
            let gap = (tick.ts.nanos().saturating_sub(previous.nanos())).max(0) as f64 / session.speed;
            // Commands that come while the session waits are recorded then, not a gap late.
            let mut serve = || serve_commands(&mut runner, session.link, &mut status);
            if !pace(Duration::from_nanos(gap as u64), session.stop, &mut serve) {
                stopped_early = true;
                break;
            }
        }
        // And those that came with the tick: a trip takes effect before its cycle.
        serve_commands(&mut runner, session.link, &mut status);
        previous_ts = Some(tick.ts);
        for (command, at) in cycles.take_commands() {
            runner.on_recorded_command(command, at)?;
        }
        for (notice, at) in cycles.take_notices() {
            runner.on_notice(notice, at)?;
        }
        runner.on_tick(&tick, now)?;
        last = now;
        if paced {
            let durable = runner.flush()?;
            if let Some(link) = session.link {
                link.set_durable(durable);
            }
            if let Some(outbox) = session.outbox {
                outbox.durable(durable);
            }
        }
        status.publish(&runner, Some((&tick, now)), paced);
        count += 1;
        if count % PROGRESS_EVERY == 0 {
            progress.set_position(count);
            // Fast sessions flush on the group's schedule: the outbox follows it.
            if let Some(outbox) = session.outbox {
                outbox.durable(runner.durable());
            }
        }
        next = match cycles.next_cycle() {
            Ok(next) => next,
            Err(error) => {
                // Bad data ends the run on the record, with the reason, before the error.
                progress.finish_and_clear();
                let reason = format!("stopped by bad market data: {}", describe::safe(&format!("{error:#}")));
                runner.stop(&reason, cycles.skipped_rows(), last)?;
                return Err(error);
            }
        };
    }
    progress.finish_and_clear();
    if let Some(link) = session.link {
        // Commands that came during the last cycle are answered, not dropped.
        for pending in link.take_commands() {
            let _ = pending.reply.send(Err("the session is stopping".into()));
        }
    }
    for (notice, at) in cycles.take_notices() {
        runner.on_notice(notice, at)?;
    }
    let end = if session.mode == RunMode::Replay { last } else { WallClock.now() };
    let reason = if stopped_early { "interrupted" } else { "end of data" };
    if settings.venue.close_at_end && !stopped_early {
        runner.close_out(end)?;
    }
    let portfolio = runner.stop(reason, cycles.skipped_rows(), end)?;
    if let Some(outbox) = session.outbox {
        outbox.durable(log.durable_seq());
    }
    tracing::info!(run = %session.run_id, ticks = count, stopped_early, "run finished");
    Ok(portfolio)
}

/// Skips the ticks a resumed run has already recorded: the feed's first `resumed.cycles`
/// ticks (`first` is the feed's first, already read), the last of which must be the
/// run's last recorded tick. Returns the first tick to run.
fn skip_recorded(
    first: Option<(Tick, TimestampNs)>,
    cycles: &mut dyn Cycles,
    resumed: &ledger_core::runner::Resumed,
    run: RunId,
) -> Result<Option<(Tick, TimestampNs)>> {
    if resumed.cycles == 0 {
        return Ok(first);
    }
    let ends_early = || {
        anyhow::anyhow!(
            "run {run} recorded {} ticks but the data ends before that: it is not the data the run was started on",
            resumed.cycles
        )
    };
    // `first` is the first of them; the rest are passed over without parsing.
    let last = match first {
        None => return Err(ends_early()),
        Some(first) if resumed.cycles == 1 => first,
        Some(_) => cycles.skip(resumed.cycles - 1)?.ok_or_else(ends_early)?,
    };
    let next = cycles.next_cycle()?;
    if let Some(ts) = Some(last.0.ts).filter(|ts| *ts != resumed.last_tick_ts) {
        bail!(
            "tick {} of the data is at {} but run {run} recorded it at {}: it is not the data the run was started on",
            resumed.cycles,
            ts,
            resumed.last_tick_ts
        );
    }
    Ok(next)
}

/// Keeps the control endpoint's status of the session current: after every cycle of a
/// paced session, at most every [`STATUS_EVERY`] in a fast one.
struct StatusPublisher<'a> {
    link: Option<&'a SessionLink>,
    outbox: Option<&'a NatsOutbox>,
    base: SessionStatus,
    last: std::time::Instant,
}

/// How often a fast session publishes its status.
const STATUS_EVERY: Duration = Duration::from_millis(100);

impl<'a> StatusPublisher<'a> {
    fn new(session: &Session<'a>) -> Self {
        let base = SessionStatus {
            run_id: session.run_id.get(),
            mode: format!("{:?}", session.mode),
            pid: std::process::id(),
            started_ns: WallClock.now().nanos(),
            ..SessionStatus::default()
        };
        StatusPublisher { link: session.link, outbox: session.outbox, base, last: std::time::Instant::now() }
    }

    /// Publishes the status after the cycle of `cycle` (its tick and time), if any; at
    /// once when `now`, else when [`STATUS_EVERY`] has passed.
    fn publish<L: EventLog + ?Sized>(
        &mut self,
        runner: &Runner<'_, L>,
        cycle: Option<(&Tick, TimestampNs)>,
        now: bool,
    ) {
        let Some(link) = self.link else { return };
        if !now && self.last.elapsed() < STATUS_EVERY {
            return;
        }
        self.last = std::time::Instant::now();
        // Fast sessions flush on the group's schedule, not per cycle: what is durable
        // now is the log's to say (and followers may read up to it).
        link.set_durable(runner.durable());
        let engine = runner.engine();
        let p = engine.portfolio();
        let positions = p
            .positions
            .iter()
            .map(|(id, pos)| PositionStatus {
                instrument: id.as_str().to_string(),
                qty: pos.qty.to_string(),
                avg_price: pos.avg_price.to_string(),
                mark: pos.mark.to_string(),
                unrealized_pnl: pos.unrealized().to_string(),
            })
            .collect();
        if let Some((tick, at)) = cycle {
            (self.base.last_tick_ns, self.base.last_cycle_ns) = (tick.ts.nanos(), at.nanos());
        }
        link.set_status(SessionStatus {
            cycle: engine.cycles(),
            head_seq: runner.appended().get(),
            durable_seq: link.durable().get(),
            cash: p.cash.to_string(),
            equity: p.equity().to_string(),
            realized_pnl: p.realized_pnl.to_string(),
            fees: p.fees.to_string(),
            positions,
            kill_switch_tripped: engine.kill_switch_tripped(),
            working_orders: engine.open_orders().count() as u64,
            nats: self.outbox.map(NatsOutbox::status),
            ..self.base.clone()
        });
    }
}

/// Records the operator's commands waiting on the control endpoint and answers them
/// (refusing a trip when tripped and a reset when armed).
fn serve_commands<L: EventLog + ?Sized>(
    runner: &mut Runner<'_, L>,
    link: Option<&SessionLink>,
    status: &mut StatusPublisher<'_>,
) {
    let Some(link) = link else { return };
    for pending in link.take_commands() {
        let tripped = runner.engine().kill_switch_tripped();
        let reply = match (&pending.command, tripped) {
            (OperatorCommand::Trip { .. }, true) => Err("the kill switch is already tripped".to_string()),
            (OperatorCommand::Reset { .. }, false) => {
                Err("the kill switch is not tripped; nothing to reset".to_string())
            }
            (command, _) => runner.on_command(&command.to_engine(), WallClock.now()).map_err(|e| e.to_string()),
        };
        if reply.is_ok() {
            link.set_durable(runner.appended()); // `on_command` made it durable
        }
        status.publish(runner, None, true);
        let _ = pending.reply.send(reply); // the operator may have given up waiting
    }
}

/// Waits `gap` in slices of at most 100 ms, serving `serve` (the operator's commands)
/// after each, so a stop request or a command is seen promptly; returns `false` if a
/// stop came.
fn pace(gap: Duration, stop: Option<&AtomicBool>, serve: &mut dyn FnMut()) -> bool {
    let deadline = std::time::Instant::now() + gap;
    loop {
        if stop.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            return false;
        }
        serve();
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// A spinner with the tick count and rate, drawn on a terminal only (indicatif hides
/// it when stderr is not one).
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} ticks ({per_sec}, {elapsed})") {
        bar.set_style(style);
    }
    bar
}
