//! Validation at load, in one place: every value of the [`Settings`] is range-checked,
//! the rule strategy's parameters are parsed, and the data and decision files are
//! looked for, before a session opens a store or reads a tick.
//!
//! Every problem names the key (`venue.commission_rate`), the value, what is allowed,
//! and where the value came from: the config file, an environment variable
//! (`LEDGER_VENUE__COMMISSION_RATE`) or a flag (`--cash`). All problems are collected
//! and reported together, one a line ([`ConfigError`]); everything echoed is made
//! terminal-safe ([`describe::safe`]).
//!
//! # Decimals written as TOML floats
//! A TOML float is binary: `commission_rate = 0.001` reaches the settings as the f64
//! nearest 0.001, which serde turns back into the shortest text that reads as that f64
//! (`0.001`). That is exact for the short decimals people write, so such floats are
//! accepted. A float whose text has more digits than an f64 holds
//! (`0.12345678901234567891`) would silently become another number: it is refused with a
//! hint to quote it, as are `nan` and `inf`. `LEDGER_*` values holding a `.` are read as
//! floats by figment and checked the same way (quote them as `"..."` to keep the text);
//! floats inside an environment value's array or table are not checked.
//!
//! # Layout
//! - [`settings`]: the ranges, section by section.
//! - [`rule_strategy`]: the one parser of the rule strategies' parameters (the pipeline
//!   builds its provider with it).
//! - [`toml_floats`], [`env_floats`], [`figment_problems`]: problems met while reading.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use figment::error::Kind;
use figment::providers::Env;
use figment::value::magic::RelativePathBuf;
use figment::Figment;
use ledger_adapters::market_data::{DateOrder, TimeZone};
use ledger_core::ids::{IdError, InstrumentId};
use ledger_core::strategy::RuleSizing;
use rust_decimal::Decimal;

use super::{AgentConfig, AnthropicConfig, Config, OpenAiConfig, ProviderConfig, Settings};
use crate::args::SessionFlags;
use crate::describe::{self, quoted};
use ledger_adapters::llm::prompt::PromptTemplate;
use ledger_adapters::llm::tools::{Tool, ALL_TOOLS};

/// The most starting cash. rust_decimal keeps 96 bits (|x| < 7.9e28) and its operators
/// panic on overflow; the engine multiplies cash by leverage (up to 100), fractions and
/// rates, and divides it by prices. At most 1e15 keeps every such product many digits
/// below that limit.
const MAX_STARTING_CASH: Decimal = Decimal::from_parts(2_764_472_320, 232_830, 0, false, 0);
/// Longest indicator period, bars: an SMA keeps its window (16 bytes a bar), so a period
/// must stay far from what would exhaust memory, and no data set needs more.
pub const MAX_PERIOD: usize = 100_000;
/// Decimal places of the account currency: cents to satoshis.
const MAX_MONEY_DECIMALS: u32 = 8;
/// One hour, nanoseconds: the longest group-durability interval (a longer one would
/// leave appends unflushed, and unacknowledged, for longer than anyone waits).
const HOUR_NS: i64 = 3_600 * 1_000_000_000;

/// A minute in nanoseconds.
const MINUTE_NS: i64 = 60 * 1_000_000_000;
/// 366 days, nanoseconds: the longest rate window. The risk engine subtracts it from
/// tick times, which must not overflow for any tick time after 1678.
const MAX_RATE_WINDOW_NS: i64 = 366 * 86_400 * 1_000_000_000;
/// The largest `group_events`.
const MAX_GROUP_EVENTS: u64 = 10_000_000;
/// The largest `cycles_per_append` (a batch is held in memory until appended).
const MAX_CYCLES_PER_APPEND: usize = 65_536;

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key, `section.key` (`data.files[0]`, `provider.params.fast`).
    key: String,
    /// The value as written or resolved, if there is one to show.
    value: Option<String>,
    /// What is wrong, or what is allowed.
    rule: String,
    /// Where the value came from (`config FILE`, `environment LEDGER_...`, `flag --cash`).
    origin: Option<String>,
}

impl Problem {
    fn new(key: impl Into<String>, value: Option<String>, rule: impl Into<String>) -> Self {
        Problem { key: key.into(), value, rule: rule.into(), origin: None }
    }

    /// Whether this is a TOML parser's error that names no key.
    pub fn is_toml_parse_error(&self) -> bool {
        self.key.is_empty() && self.rule.starts_with("TOML parse error")
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every part may hold input: escaped here, whatever the caller did.
        if !self.key.is_empty() {
            f.write_str(&describe::safe(&self.key))?;
            if let Some(value) = &self.value {
                write!(f, " = {}", describe::safe(value))?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&describe::safe(&self.rule))?;
        if let Some(origin) = &self.origin {
            write!(f, " ({})", describe::safe(origin))?;
        }
        Ok(())
    }
}

/// Everything wrong with a configuration, one problem a line, terminal-safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl ConfigError {
    /// The problems, in the order they were found.
    #[cfg(test)]
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "invalid configuration: {one}"),
            all => {
                write!(f, "invalid configuration, {} problems:", all.len())?;
                for problem in all {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where each value came from: a flag, else the figment provider (the config file or
/// the environment) that supplied it.
pub struct Origins<'a> {
    figment: &'a Figment,
    flags: &'a SessionFlags,
}

impl<'a> Origins<'a> {
    pub fn new(figment: &'a Figment, flags: &'a SessionFlags) -> Self {
        Origins { figment, flags }
    }

    /// `flag --cash`, `environment LEDGER_VENUE__SLIPPAGE_BPS`, `config FILE`, or
    /// `default`.
    pub fn of(&self, key: &str) -> String {
        let key = key.split('[').next().unwrap_or(key);
        if let Some(flag) = self.flag(key) {
            return format!("flag {flag}");
        }
        // A key may be written in its short spelling (`cooldown` for `cooldown_ns`), and
        // one data file as `file`.
        let mut spellings = vec![key.to_string()];
        if let Some(short) = key.strip_suffix("_ns") {
            spellings.push(short.to_string());
        }
        if key == "data.files" {
            spellings.push("data.file".to_string());
        }
        for spelling in &spellings {
            if let Some(metadata) = self.figment.find_metadata(spelling) {
                if let Some(origin) = provider_origin(metadata, spelling, self.flags.config.as_deref()) {
                    return origin;
                }
            }
        }
        match &self.flags.config {
            Some(path) => format!("config {}", describe::path(path)),
            None => "default".to_string(),
        }
    }

    /// The flag that set `key`, if one did.
    fn flag(&self, key: &str) -> Option<String> {
        let flags = self.flags;
        let set = match key {
            "account.starting_cash" => flags.cash.is_some(),
            "data.files" => !flags.data.is_empty(),
            "data.instrument" => flags.instrument.is_some(),
            "data.utc_offset" => flags.utc_offset.is_some(),
            "data.tz" => flags.tz.is_some(),
            "data.date_format" => flags.date_format.is_some(),
            "data.time_column" => flags.time_column.is_some(),
            "venue.commission_rate" => flags.commission.is_some(),
            "venue.slippage_bps" => flags.slippage_bps.is_some(),
            "venue.fill_model" => flags.fill_model.is_some(),
            "provider.strategy" => flags.strategy.is_some(),
            "provider.file" => {
                return (flags.strategy.as_deref() == Some("script")).then(|| "--param file=".to_string())
            }
            _ => {
                let name = key.strip_prefix("provider.params.")?;
                let given = flags.param.iter().any(|p| p.split_once('=').is_some_and(|(k, _)| k.trim() == name));
                return given.then(|| format!("--param {name}="));
            }
        };
        let flag = match key {
            "account.starting_cash" => "--cash",
            "data.files" => "--data",
            "data.instrument" => "--instrument",
            "data.utc_offset" => "--utc-offset",
            "data.tz" => "--tz",
            "data.date_format" => "--date-format",
            "data.time_column" => "--time-column",
            "venue.commission_rate" => "--commission",
            "venue.slippage_bps" => "--slippage-bps",
            "venue.fill_model" => "--fill-model",
            _ => "--strategy",
        };
        set.then(|| flag.to_string())
    }
}

/// `config FILE` or `environment LEDGER_...` for a value of `key` from the provider
/// `metadata` describes.
fn provider_origin(metadata: &figment::Metadata, key: &str, config: Option<&Path>) -> Option<String> {
    match &metadata.source {
        Some(figment::Source::File(file)) => Some(format!("config {}", describe::path(config.unwrap_or(file)))),
        _ if metadata.name.contains("environment") => Some(format!("environment {}", env_var(key))),
        _ => None,
    }
}

/// The environment variable of `key`: `venue.slippage_bps` is `LEDGER_VENUE__SLIPPAGE_BPS`.
fn env_var(key: &str) -> String {
    let parts: Vec<String> = key.split('.').map(str::to_ascii_uppercase).collect();
    format!("LEDGER_{}", parts.join("__"))
}

/// The environment the settings read: `LEDGER_<SECTION>__<KEY>`.
pub fn env() -> Env {
    Env::prefixed("LEDGER_").split("__").filter(|key| key.as_str().contains('.'))
}

/// Problems gathered against their origins.
pub struct Checker<'a> {
    origins: &'a Origins<'a>,
    problems: Vec<Problem>,
}

impl<'a> Checker<'a> {
    pub fn new(origins: &'a Origins<'a>) -> Self {
        Checker { origins, problems: Vec::new() }
    }

    /// Records a problem with `key`, its origin looked up. One problem a key: the first
    /// found (a float refused as read is not refused again as out of range).
    fn add(&mut self, mut problem: Problem) {
        if !problem.key.is_empty() && self.problems.iter().any(|p| p.key == problem.key) {
            return;
        }
        if problem.origin.is_none() {
            problem.origin = Some(self.origins.of(&problem.key));
        }
        self.problems.push(problem);
    }

    /// Records a problem with `key` unless `ok`: `value` is shown, `rule` says what is
    /// allowed (`must be in [0, 1)`).
    fn check(&mut self, key: &str, value: impl fmt::Display, ok: bool, rule: &str) {
        if !ok {
            self.add(Problem::new(key, Some(value.to_string()), rule));
        }
    }

    /// Like [`Checker::check`], for a value that may be unset (then nothing is checked).
    fn check_opt<T: fmt::Display + Copy>(&mut self, key: &str, value: Option<T>, ok: impl Fn(T) -> bool, rule: &str) {
        if let Some(value) = value {
            self.check(key, value, ok(value), rule);
        }
    }

    /// Adds problems found elsewhere (their origins looked up where missing).
    pub fn extend(&mut self, problems: impl IntoIterator<Item = Problem>) {
        for problem in problems {
            self.add(problem);
        }
    }

    /// `Ok` when nothing was found, else every problem.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems: self.problems })
        }
    }
}

/// A problem with a flag itself (a malformed `--param`, a flag that does not apply).
pub fn flag_problem(flag: &str, rule: impl Into<String>) -> Problem {
    Problem { key: String::new(), value: None, rule: rule.into(), origin: Some(format!("flag {flag}")) }
}

/// Problems of the file as read, before paths are resolved: `file` and `files` both set.
pub fn before_paths(file: &Config<RelativePathBuf>, checker: &mut Checker<'_>) {
    if file.data.file.is_some() && !file.data.files.is_empty() {
        checker.add(Problem::new(
            "data.file",
            None,
            "data.file and data.files are both set: use files = [...] (one or several files) or file = \"...\" (one)",
        ));
    }
}

/// Checks every value of `s`.
pub fn settings(s: &Settings, c: &mut Checker<'_>) {
    let zero = Decimal::ZERO;
    let one = Decimal::ONE;
    let hundred = Decimal::ONE_HUNDRED;

    let cash = s.account.starting_cash;
    c.check(
        "account.starting_cash",
        cash,
        cash > zero && cash <= MAX_STARTING_CASH,
        "must be > 0 and at most 1e15 (1000000000000000)",
    );

    let v = &s.venue;
    c.check(
        "venue.commission_rate",
        v.commission_rate,
        v.commission_rate >= zero && v.commission_rate < one,
        "must be in [0, 1) (a fraction of notional: 0.001 = 0.1%)",
    );
    c.check("venue.commission_per_unit", v.commission_per_unit, v.commission_per_unit >= zero, "must be >= 0");
    c.check("venue.commission_min", v.commission_min, v.commission_min >= zero, "must be >= 0");
    c.check(
        "venue.slippage_bps",
        v.slippage_bps,
        v.slippage_bps >= zero && v.slippage_bps < Decimal::from(10_000),
        "must be in [0, 10000) (basis points; 10000 would fill a sell at a price of 0 or less)",
    );
    c.check("venue.lot_size", v.lot_size, v.lot_size > zero, "must be > 0");
    c.check_opt("venue.price_increment", v.price_increment, |p| p > zero, "must be > 0 when set");
    c.check(
        "venue.money_decimals",
        v.money_decimals,
        v.money_decimals <= MAX_MONEY_DECIMALS,
        "must be in [0, 8] (decimal places of the account currency)",
    );
    c.check(
        "venue.max_leverage",
        v.max_leverage,
        v.max_leverage >= one && v.max_leverage <= hundred,
        "must be in [1, 100] (1 = no leverage)",
    );

    let r = &s.risk;
    c.check_opt("risk.max_price_age_ns", r.max_price_age_ns, |ns| ns > 0, "must be > 0 ns when set");
    c.check_opt("risk.min_confidence", r.min_confidence, |x| x >= zero && x <= one, "must be in [0, 1]");
    c.check_opt(
        "risk.max_position_pct",
        r.max_position_pct,
        |x| x > zero && x <= hundred,
        "must be in (0, 100] (a fraction of equity: 0.5 = 50%)",
    );
    for (key, value) in [
        ("risk.max_position_value", r.max_position_value),
        ("risk.min_position_value", r.min_position_value),
        ("risk.max_order_notional", r.max_order_notional),
        ("risk.max_order_qty", r.max_order_qty),
        ("risk.max_gross_leverage", r.max_gross_leverage),
        ("risk.price_collar_bps", r.price_collar_bps),
    ] {
        c.check_opt(key, value, |x| x > zero, "must be > 0 when set");
    }
    if let (Some(min), Some(max)) = (r.min_position_value, r.max_position_value) {
        c.check(
            "risk.min_position_value",
            min,
            min <= max,
            &format!("must be at most risk.max_position_value ({max})"),
        );
    }
    c.check_opt("risk.max_open_positions", r.max_open_positions, |n| n >= 1, "must be >= 1 when set");
    c.check_opt("risk.daily_loss_cap", r.daily_loss_cap, |x| x > zero && x <= one, "must be in (0, 1] (a fraction)");
    c.check_opt("risk.max_trades_per_day", r.max_trades_per_day, |n| n >= 1, "must be >= 1 when set");
    c.check_opt("risk.cooldown_ns", r.cooldown_ns, |ns| ns >= 0, "must be >= 0 ns when set");
    c.check_opt(
        "risk.rate_window_ns",
        r.rate_window_ns,
        |ns| ns > 0 && ns <= MAX_RATE_WINDOW_NS,
        "must be > 0 and at most 366 days (31622400000000000 ns) when set",
    );
    c.check_opt("risk.max_decisions_per_window", r.max_decisions_per_window, |n| n >= 1, "must be >= 1 when set");
    c.check_opt("risk.max_orders_per_window", r.max_orders_per_window, |n| n >= 1, "must be >= 1 when set");

    c.check_opt(
        "risk.max_loss_at_stop",
        r.max_loss_at_stop,
        |x| x > zero && x <= one,
        "must be in (0, 1] (a fraction)",
    );
    if let Some((key, value)) = s.exits.invalid_setting() {
        let range = if key == "take_profit_pct" {
            "must be > 0 (a fraction: 0.05 = 5%)"
        } else {
            "must be in (0, 1) (a fraction: 0.02 = 2%)"
        };
        c.check(&format!("exits.{key}"), value, false, range);
    }

    let k = &s.kill_switch;
    c.check_opt("kill_switch.max_gain", k.max_gain, |x| x > zero, "must be > 0 when set (a fraction: 0.5 = +50%)");
    c.check_opt("kill_switch.max_loss", k.max_loss, |x| x > zero && x <= one, "must be in (0, 1] (a fraction)");
    c.check_opt("kill_switch.max_drawdown", k.max_drawdown, |x| x > zero && x <= one, "must be in (0, 1] (a fraction)");
    c.check_opt(
        "kill_switch.max_consecutive_failures",
        k.max_consecutive_failures,
        |n| n >= 1,
        "must be >= 1 when set",
    );

    let l = &s.ledger;
    c.check(
        "ledger.group_events",
        l.group_events,
        (1..=MAX_GROUP_EVENTS).contains(&l.group_events),
        "must be in [1, 10000000]",
    );
    c.check_opt(
        "ledger.group_interval_ns",
        l.group_interval_ns,
        |ns| ns > 0 && ns <= HOUR_NS,
        "must be > 0 and at most 1h (3600000000000 ns) when set",
    );
    c.check(
        "ledger.cycles_per_append",
        l.cycles_per_append,
        (1..=MAX_CYCLES_PER_APPEND).contains(&l.cycles_per_append),
        "must be in [1, 65536]",
    );

    data(s, c);
    provider(s, c);
}

/// The data files exist; the instruments and the UTC offset parse.
fn data(s: &Settings, c: &mut Checker<'_>) {
    let d = &s.data;
    for (i, file) in d.files.iter().enumerate() {
        let key = format!("data.files[{i}]");
        if let Some(rule) = unreadable(file) {
            c.add(Problem::new(key, Some(quoted(&file.display().to_string())), rule));
        }
    }
    match &d.instrument {
        Some(text) if d.files.len() > 1 => c.add(Problem::new(
            "data.instrument",
            Some(quoted(text)),
            format!(
                "names the instrument of a single file; with {} files each is named from its file name",
                d.files.len()
            ),
        )),
        Some(text) => {
            if let Err(error) = InstrumentId::new(text) {
                c.add(Problem::new("data.instrument", Some(quoted(text)), id_rule(&error)));
            }
        }
        None => {
            for (i, file) in d.files.iter().enumerate() {
                let name = derived_instrument(file);
                if let Err(error) = InstrumentId::new(&name) {
                    c.add(Problem::new(
                        format!("data.files[{i}]"),
                        Some(quoted(&file.display().to_string())),
                        format!(
                            "the instrument named from the file name, {}, {}: set data.instrument (or --instrument)",
                            quoted(&name),
                            id_rule(&error)
                        ),
                    ));
                }
            }
        }
    }
    if let Some(text) = &d.utc_offset {
        if let Err(rule) = parse_utc_offset(text) {
            c.add(Problem::new("data.utc_offset", Some(quoted(text)), rule));
        }
    }
    if let Some(text) = &d.tz {
        if d.utc_offset.is_some() {
            c.add(Problem::new(
                "data.tz",
                Some(quoted(text)),
                "and data.utc_offset are both set: a zone's offsets come from its rules; set one of them",
            ));
        } else if let Err(error) = TimeZone::named(text) {
            c.add(Problem::new("data.tz", Some(quoted(text)), error.to_string().replace(&format!("{text:?} "), "")));
        }
    }
    if let Some(text) = &d.date_format {
        if DateOrder::from_pattern(text).is_none() {
            c.add(Problem::new("data.date_format", Some(quoted(text)), "must be MM/DD/YYYY or DD/MM/YYYY"));
        }
    }
    if let Some(text) = &d.time_column {
        if text.trim().is_empty() {
            c.add(Problem::new("data.time_column", Some(quoted(text)), "must name a column of the header"));
        }
    }
}

/// Why `file` cannot be read as a data or decisions file, if it cannot.
fn unreadable(file: &Path) -> Option<String> {
    match std::fs::metadata(file) {
        Err(error) => Some(format!("cannot be read: {error}")),
        Ok(meta) if meta.is_dir() => Some("is a directory, not a file".to_string()),
        Ok(_) => None,
    }
}

/// What is wrong with an instrument symbol, without echoing it (the caller shows it).
fn id_rule(error: &IdError) -> String {
    match error {
        IdError::Empty { .. } => "must not be empty".to_string(),
        IdError::TooLong { max, .. } => format!("is longer than {max} bytes"),
        _ => "has a character outside A-Z a-z 0-9 . _ - / :".to_string(),
    }
}

/// The instrument symbol a file's name gives: its name up to the first `_`, `-` or `.`,
/// upper-cased.
pub fn derived_instrument(file: &Path) -> String {
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    name.split(['_', '-', '.']).next().unwrap_or_default().to_ascii_uppercase()
}

/// Parses `+HH:MM` / `-HH:MM` (hours 0..=23, minutes 0..=59, one or two digits each)
/// into seconds east of UTC.
///
/// # Errors
/// The rule the text breaks, for a message.
pub fn parse_utc_offset(text: &str) -> Result<i32, String> {
    let bad = || "expected +HH:MM or -HH:MM (hours 0..=23, minutes 0..=59), e.g. \"-05:00\" for EST".to_string();
    let (sign, rest) = match text.trim().split_at_checked(1) {
        Some(("+", rest)) => (1, rest),
        Some(("-", rest)) => (-1, rest),
        _ => return Err(bad()),
    };
    let (hours, minutes) = rest.split_once(':').ok_or_else(bad)?;
    let number = |part: &str| -> Result<i32, String> {
        if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    let (hours, minutes) = (number(hours)?, number(minutes)?);
    if hours > 23 || minutes > 59 {
        return Err(bad());
    }
    Ok(sign * (hours * 3600 + minutes * 60))
}

/// The provider: a rule strategy's parameters parse and are in range; a decisions file
/// exists; an LLM server's URL, sampling and retry settings are in range and its key's
/// variable is set; an agent's tools, rounds, prices and prompt template are valid.
fn provider(s: &Settings, c: &mut Checker<'_>) {
    match &s.provider {
        ProviderConfig::Rules { strategy, params } => {
            if let Err(error) = rule_strategy(strategy, params) {
                c.extend(error.problems);
            }
        }
        ProviderConfig::Script { file } => {
            if let Some(rule) = unreadable(file) {
                c.add(Problem::new("provider.file", Some(quoted(&file.display().to_string())), rule));
            }
        }
        ProviderConfig::Openai(OpenAiConfig {
            model,
            base_url,
            api_key_env,
            temperature,
            max_tokens,
            timeout_ns,
            max_retries,
            retry_backoff_ns,
            seed: _,
            agent,
        }) => {
            let server = LlmServer { model, base_url, api_key_env: api_key_env.as_deref(), max_tokens: *max_tokens };
            llm_server(c, &server, *timeout_ns, *max_retries, *retry_backoff_ns);
            c.check_opt(
                "provider.temperature",
                *temperature,
                |t| t >= Decimal::ZERO && t <= Decimal::TWO,
                "must be in [0, 2]",
            );
            llm_agent(c, agent);
        }
        ProviderConfig::Anthropic(AnthropicConfig {
            model,
            base_url,
            api_key_env,
            temperature,
            max_tokens,
            timeout_ns,
            max_retries,
            retry_backoff_ns,
            agent,
        }) => {
            let server = LlmServer { model, base_url, api_key_env: Some(api_key_env), max_tokens: Some(*max_tokens) };
            llm_server(c, &server, *timeout_ns, *max_retries, *retry_backoff_ns);
            c.check_opt(
                "provider.temperature",
                *temperature,
                |t| t >= Decimal::ZERO && t <= Decimal::ONE,
                "must be in [0, 1] for anthropic",
            );
            llm_agent(c, agent);
        }
    }
}

/// What both LLM kinds configure about their server.
struct LlmServer<'a> {
    model: &'a str,
    base_url: &'a str,
    api_key_env: Option<&'a str>,
    max_tokens: Option<u32>,
}

/// An LLM server's model, URL, key variable, token limit and retry settings.
fn llm_server(c: &mut Checker<'_>, server: &LlmServer<'_>, timeout_ns: i64, max_retries: u32, retry_backoff_ns: i64) {
    let LlmServer { model, base_url, api_key_env, max_tokens } = *server;
    c.check("provider.model", quoted(model), !model.trim().is_empty(), "must name the model");
    if let Some((rule, shown)) = base_url_problem(base_url) {
        let value = shown.then(|| quoted(base_url));
        c.add(Problem::new("provider.base_url", Some(value.unwrap_or_else(|| "(not shown)".into())), rule));
    }
    if let Some(var) = api_key_env {
        let set = std::env::var_os(var).is_some_and(|v| !v.to_string_lossy().trim().is_empty());
        c.check(
            "provider.api_key_env",
            quoted(var),
            set,
            "names an environment variable that is not set (or is empty): export the API key in it",
        );
    }
    c.check_opt("provider.max_tokens", max_tokens, |n| n >= 1, "must be >= 1 when set");
    c.check(
        "provider.timeout",
        timeout_ns,
        timeout_ns > 0 && timeout_ns <= HOUR_NS,
        "must be > 0 and at most 1h (3600000000000 ns)",
    );
    c.check("provider.max_retries", max_retries, max_retries <= 10, "must be in [0, 10]");
    c.check(
        "provider.retry_backoff",
        retry_backoff_ns,
        (0..=MINUTE_NS).contains(&retry_backoff_ns),
        "must be in [0, 1m] (60000000000 ns)",
    );
}

/// An LLM provider's tools (known, each once), rounds, prices and template (it reads
/// and compiles: its error names the file and line).
fn llm_agent(c: &mut Checker<'_>, agent: &AgentConfig<std::path::PathBuf>) {
    for (i, name) in agent.tools.iter().enumerate() {
        let known = Tool::from_name(name).is_some();
        let names: Vec<&str> = ALL_TOOLS.iter().map(|t| t.name()).collect();
        let rule = format!("not a tool: the tools are {}", names.join(", "));
        c.check(&format!("provider.tools[{i}]"), quoted(name), known, &rule);
        let repeated = agent.tools[..i].contains(name);
        c.check(&format!("provider.tools[{i}]"), quoted(name), !repeated, "is listed twice");
    }
    c.check_opt("provider.max_tool_rounds", agent.max_tool_rounds, |n| (1..=20).contains(&n), "must be in [1, 20]");
    for (key, price) in [
        ("provider.price_per_mtok_in", agent.price_per_mtok_in),
        ("provider.price_per_mtok_out", agent.price_per_mtok_out),
    ] {
        c.check_opt(key, price, |p| p >= Decimal::ZERO, "must be >= 0 (US dollars per million tokens)");
    }
    if let Some(path) = &agent.prompt_template {
        if let Err(error) = PromptTemplate::load(path) {
            c.add(Problem::new("provider.prompt_template", Some(quoted(&path.display().to_string())), &error));
        }
    }
}

/// What is wrong with an LLM server's base URL, if anything, and whether the URL may
/// be shown: it must be `http://` or `https://` with a host, and hold no credentials
/// (they would be recorded with it; such a URL is not shown).
fn base_url_problem(url: &str) -> Option<(&'static str, bool)> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let authority = rest.and_then(|rest| rest.split('/').next()).unwrap_or_default();
    match rest {
        None => Some(("must start with http:// or https://", true)),
        Some(_) if authority.contains('@') => {
            Some(("must not hold credentials: name the key's environment variable in api_key_env", false))
        }
        Some(_) if authority.is_empty() => Some(("must name a host", true)),
        Some(_) => None,
    }
}

/// One parameter of a rule strategy, as `--help` lists it.
#[derive(Debug, Clone, Copy)]
pub struct ParamDoc {
    /// The name, as `--param NAME=VALUE` and `[provider] params` take it.
    pub name: &'static str,
    /// The default, as text ([`rule_strategy`] uses the same; a test keeps them equal).
    pub default: &'static str,
    /// What it is, with its range.
    pub meaning: &'static str,
}

/// A rule strategy and its parameters, as `--help` lists them.
#[derive(Debug, Clone, Copy)]
pub struct StrategyDoc {
    /// The name, as `--strategy` takes it.
    pub name: &'static str,
    /// What it does, in a line.
    pub summary: &'static str,
    /// Its parameters, in the order they are listed.
    pub params: &'static [ParamDoc],
}

/// The parameters every rule strategy takes.
const SIZING_PARAMS: [ParamDoc; 2] = [
    ParamDoc { name: "short", default: "true", meaning: "go short on a sell signal (true/false)" },
    ParamDoc { name: "size_pct", default: "1", meaning: "fraction of equity per position, in (0, 1]" },
];

/// The rule strategies and their parameters with their defaults: what `--help` lists.
pub const STRATEGIES: [StrategyDoc; 2] = [
    StrategyDoc {
        name: "sma-cross",
        summary: "long when the fast simple moving average crosses above the slow one, short (or flat) below",
        params: &[
            ParamDoc { name: "fast", default: "10", meaning: "fast SMA period, bars (1..100000, < slow)" },
            ParamDoc { name: "slow", default: "30", meaning: "slow SMA period, bars (<= 100000)" },
            SIZING_PARAMS[0],
            SIZING_PARAMS[1],
        ],
    },
    StrategyDoc {
        name: "ema-rsi",
        summary: "EMA crossover, entries filtered by RSI: no long when overbought, no short when oversold",
        params: &[
            ParamDoc { name: "fast", default: "20", meaning: "fast EMA period, bars (1..100000, < slow)" },
            ParamDoc { name: "slow", default: "50", meaning: "slow EMA period, bars (<= 100000)" },
            ParamDoc { name: "rsi", default: "14", meaning: "RSI period, bars (2..100000)" },
            ParamDoc { name: "overbought", default: "70", meaning: "RSI level, (oversold, 100]" },
            ParamDoc { name: "oversold", default: "30", meaning: "RSI level, [0, overbought)" },
            SIZING_PARAMS[0],
            SIZING_PARAMS[1],
        ],
    },
];

/// The strategies' parameters and defaults as `ledger replay --help` and `ledger run
/// --help` print them.
pub fn strategies_help() -> String {
    let mut text = String::from("Strategies (--strategy NAME, --param KEY=VALUE; defaults in brackets):");
    for strategy in STRATEGIES {
        text.push_str(&format!("\n  {}: {}", strategy.name, strategy.summary));
        for param in strategy.params {
            text.push_str(&format!("\n    {:<11} [{}] {}", param.name, param.default, param.meaning));
        }
    }
    text.push_str("\n  script: decisions from a JSONL file: --param file=DECISIONS.jsonl");
    text
}

/// A rule strategy with its parameters parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleStrategy {
    /// SMA crossover: fast and slow periods, bars.
    SmaCross { fast: usize, slow: usize, sizing: RuleSizing },
    /// EMA crossover filtered by RSI: periods in bars, RSI levels in [0, 100].
    EmaRsi { fast: usize, slow: usize, rsi: usize, overbought: f64, oversold: f64, sizing: RuleSizing },
}

/// Parses a rule strategy's parameters (text, as configured) and checks them:
/// periods in `1..=100000` (RSI from 2), `fast < slow`, `size_pct` in (0, 1], `short` a
/// boolean, RSI levels finite with `0 <= oversold < overbought <= 100`. Unset
/// parameters take their defaults (sma-cross 10/30; ema-rsi 20/50, RSI 14, 70/30;
/// `short = true`, `size_pct = 1`).
///
/// # Errors
/// Every problem: an unknown strategy or parameter (the known ones named), a value that
/// does not parse or is out of range. Their origins are looked up by the caller.
pub fn rule_strategy(strategy: &str, params: &BTreeMap<String, String>) -> Result<RuleStrategy, ConfigError> {
    let mut problems = Vec::new();
    let known: &[&str] = match strategy {
        "sma-cross" => &["fast", "slow", "short", "size_pct"],
        "ema-rsi" => &["fast", "slow", "rsi", "overbought", "oversold", "short", "size_pct"],
        "script" => {
            problems.push(Problem::new(
                "provider.strategy",
                Some(quoted(strategy)),
                "the script strategy needs --param file=DECISIONS.jsonl (or [provider] kind = \"script\" and file)",
            ));
            return Err(ConfigError { problems });
        }
        other => {
            problems.push(Problem::new(
                "provider.strategy",
                Some(quoted(other)),
                format!("unknown strategy {}: choose sma-cross, ema-rsi or script", quoted(other)),
            ));
            return Err(ConfigError { problems });
        }
    };
    for (name, value) in params.iter().filter(|(k, _)| !known.contains(&k.as_str())) {
        problems.push(Problem::new(
            format!("provider.params.{name}"),
            Some(quoted(value)),
            format!("unknown parameter {} of {strategy}; the known ones are {}", quoted(name), known.join(", ")),
        ));
    }
    let mut params = Params { params, problems };
    let size_pct = params.get("size_pct", Decimal::ONE, "a decimal in (0, 1]", |text| {
        parse_decimal(text).filter(|x| *x > Decimal::ZERO && *x <= Decimal::ONE)
    });
    let short = params.get("short", true, "true or false", |text| match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    });
    let (default_fast, default_slow) = if strategy == "sma-cross" { (10, 30) } else { (20, 50) };
    let fast = params.period("fast", default_fast, 1);
    let slow = params.period("slow", default_slow, 1);
    if let (Some(fast), Some(slow)) = (fast, slow) {
        if fast >= slow {
            let value = params.params.get("fast").map_or_else(|| fast.to_string(), |text| quoted(text));
            params.problems.push(Problem::new(
                "provider.params.fast",
                Some(value),
                format!("must be less than slow ({slow}): {strategy} needs 0 < fast < slow"),
            ));
        }
    }
    let mut ema_rsi = None;
    if strategy == "ema-rsi" {
        let rsi = params.period("rsi", 14, 2);
        let level = |text: &str| text.parse::<f64>().ok().filter(|x| x.is_finite() && (0.0..=100.0).contains(x));
        let rule = "a finite number in [0, 100]";
        let overbought = params.get("overbought", 70.0, rule, level);
        let oversold = params.get("oversold", 30.0, rule, level);
        if let (Some(overbought), Some(oversold)) = (overbought, oversold) {
            if oversold >= overbought {
                params.problems.push(Problem::new(
                    "provider.params.oversold",
                    Some(oversold.to_string()),
                    format!("must be below overbought ({overbought}): ema-rsi needs 0 <= oversold < overbought <= 100"),
                ));
            }
        }
        ema_rsi = Some((rsi, overbought, oversold));
    }
    let Params { problems, .. } = params;
    // A parameter that did not parse is None and left a problem.
    let (Some(fast), Some(slow), Some(size_pct), Some(allow_short), true) =
        (fast, slow, size_pct, short, problems.is_empty())
    else {
        return Err(ConfigError { problems });
    };
    let sizing = RuleSizing { size_pct, allow_short };
    match ema_rsi {
        None => Ok(RuleStrategy::SmaCross { fast, slow, sizing }),
        Some((Some(rsi), Some(overbought), Some(oversold))) => {
            Ok(RuleStrategy::EmaRsi { fast, slow, rsi, overbought, oversold, sizing })
        }
        Some(_) => Err(ConfigError { problems }),
    }
}

/// Parameters being parsed, with the problems met so far.
struct Params<'a> {
    params: &'a BTreeMap<String, String>,
    problems: Vec<Problem>,
}

impl Params<'_> {
    /// The parameter `name` parsed by `parse`, or `default` when unset; `None` (and a
    /// problem saying `rule`) when it does not parse.
    fn get<T>(&mut self, name: &str, default: T, rule: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
        let Some(text) = self.params.get(name) else { return Some(default) };
        let parsed = parse(text.trim());
        if parsed.is_none() {
            self.problems.push(Problem::new(
                format!("provider.params.{name}"),
                Some(quoted(text)),
                format!("must be {rule}"),
            ));
        }
        parsed
    }

    /// A period in bars, `min..=MAX_PERIOD`.
    fn period(&mut self, name: &str, default: usize, min: usize) -> Option<usize> {
        let rule = format!("a whole number of bars in [{min}, {MAX_PERIOD}]");
        self.get(name, default, &rule, |text| text.parse().ok().filter(|n| (min..=MAX_PERIOD).contains(n)))
    }
}

/// A decimal written plainly (`0.001`) or in scientific notation (`1e-3`).
fn parse_decimal(text: &str) -> Option<Decimal> {
    Decimal::from_str(text).ok().or_else(|| Decimal::from_scientific(text).ok())
}

/// Why the float written as `text` cannot stand for the decimal it reads as, if it
/// cannot: it is not finite, out of a decimal's range, or has more digits than an f64
/// holds. (serde reads an f64 into a decimal through its shortest text, as here.)
/// `quote` says how to write the text instead.
fn inexact_float(text: &str, quote: &str) -> Option<String> {
    let read = text.parse::<f64>().ok().filter(|f| f.is_finite());
    let Some(read) = read else {
        return Some("is not a finite number".to_string());
    };
    let Ok(as_read) = Decimal::from_str(&read.to_string()) else {
        return Some("is out of the range of a decimal (about 7.9e28)".to_string());
    };
    match parse_decimal(text) {
        Some(meant) if meant == as_read => None,
        _ => Some(format!("has more digits than a float holds (it would be read as {as_read}): quote it, {quote}")),
    }
}

/// Problems with the numbers of a TOML document: each float that cannot stand for the
/// decimal its text says, each integer beyond 64 bits.
///
/// # Errors
/// The text is not TOML: the message, after `origin` and the line and column.
pub fn toml_floats(text: &str, origin: &str) -> Result<Vec<Problem>, String> {
    let document = toml::de::DeTable::parse(text).map_err(|error| {
        let at = error.span().map(|span| line_column(text, span.start)).unwrap_or_default();
        format!("{origin}{at}: invalid TOML: {}", error.message().trim().replace('\n', "; "))
    })?;
    let mut numbers = Vec::new();
    walk_table(document.get_ref(), "", &mut numbers);
    Ok(numbers
        .into_iter()
        .filter_map(|(key, written)| {
            let (text, rule) = match written {
                Written::Float(text) => {
                    let quote = format!("{} = \"{text}\"", key.rsplit('.').next().unwrap_or(&key));
                    let rule = inexact_float(&text, &quote)?;
                    (text, rule)
                }
                Written::Integer(text) => (text, "is beyond a TOML integer (at most 9223372036854775807)".to_string()),
            };
            Some(Problem { key, value: Some(text), rule, origin: Some(origin.to_string()) })
        })
        .collect())
}

/// `:LINE:COLUMN` of a byte offset, 1-based.
fn line_column(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(":{line}:{column}")
}

/// A number as written in a TOML document.
enum Written {
    /// A float's text (`FromStr` form: no underscores).
    Float(String),
    /// An integer's digits that do not fit a TOML integer (i64).
    Integer(String),
}

fn walk_table(table: &toml::de::DeTable<'_>, prefix: &str, out: &mut Vec<(String, Written)>) {
    for (key, value) in table {
        let key = if prefix.is_empty() { key.get_ref().to_string() } else { format!("{prefix}.{}", key.get_ref()) };
        walk_value(value.get_ref(), key, out);
    }
}

fn walk_value(value: &toml::de::DeValue<'_>, key: String, out: &mut Vec<(String, Written)>) {
    match value {
        toml::de::DeValue::Float(float) => out.push((key, Written::Float(float.as_str().to_string()))),
        toml::de::DeValue::Integer(int) if i64::from_str_radix(int.as_str(), int.radix()).is_err() => {
            out.push((key, Written::Integer(int.as_str().to_string())));
        }
        toml::de::DeValue::Table(table) => walk_table(table, &key, out),
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_value(item.get_ref(), format!("{key}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Problems with `LEDGER_*` values figment reads as floats (a `.` in them) that cannot
/// stand for the decimal their text says.
pub fn env_floats(env: &Env) -> Vec<Problem> {
    env.iter()
        .filter_map(|(key, text)| {
            let value: figment::value::Value = text.parse().ok()?;
            if !matches!(
                value,
                figment::value::Value::Num(_, figment::value::Num::F32(_) | figment::value::Num::F64(_))
            ) {
                return None;
            }
            let var = env_var(key.as_str());
            let rule = inexact_float(&text, &format!("{var}='\"{}\"'", text.trim()))?;
            Some(Problem {
                key: key.as_str().to_string(),
                value: Some(text.trim().to_string()),
                rule,
                origin: Some(format!("environment {var}")),
            })
        })
        .collect()
}

/// A figment error (a wrong type, an unknown or missing key, a bad duration) as
/// problems, one per error, each with its key and origin.
pub fn figment_problems(error: figment::Error, origins: &Origins<'_>) -> Vec<Problem> {
    error
        .into_iter()
        .map(|e| {
            let mut key = e.path.join(".");
            let rule = match &e.kind {
                Kind::UnknownField(found, known) => {
                    // The path names the section, or the section and the key.
                    let section = match e.path.split_last() {
                        Some((last, section)) if last == found => section.join("."),
                        _ => key.clone(),
                    };
                    key = if section.is_empty() { found.clone() } else { format!("{section}.{found}") };
                    unknown_key(&section, known)
                }
                Kind::UnknownVariant(found, known) => {
                    format!("unknown value {}: expected one of {}", quoted(found), known.join(", "))
                }
                Kind::MissingField(field) => {
                    key = if key.is_empty() { field.to_string() } else { format!("{key}.{field}") };
                    "missing: this key is required here".to_string()
                }
                Kind::Message(message) => {
                    // Our own messages may name a key under the error's path first.
                    match message.split_once(": ") {
                        Some((named, rest))
                            if !named.contains(' ') && (key.is_empty() || named.starts_with(key.as_str())) =>
                        {
                            key = named.to_string();
                            rest.to_string()
                        }
                        // ledger_core::time::duration_ns reads a number or text.
                        _ if message.contains("untagged enum Written") => {
                            "expected a duration: text such as \"500ms\" or \"2m\", or whole nanoseconds".to_string()
                        }
                        _ => one_line(message),
                    }
                }
                other => one_line(&other.to_string()),
            };
            problem_at(&e, key, rule, origins)
        })
        .collect()
}

/// "unknown key; the keys in [venue] are ...".
fn unknown_key(section: &str, known: &[&str]) -> String {
    let within = if section.is_empty() { "at the top".to_string() } else { format!("in [{section}]") };
    format!("unknown key; the keys {within} are {}", known.join(", "))
}

/// A problem with `key`, its origin from the error's provider (or looked up).
fn problem_at(e: &figment::Error, key: String, rule: String, origins: &Origins<'_>) -> Problem {
    let origin = e
        .metadata
        .as_ref()
        .and_then(|m| provider_origin(m, &key, origins.flags.config.as_deref()))
        .unwrap_or_else(|| origins.of(&key));
    Problem { key, value: None, rule, origin: Some(origin) }
}

/// A message on one line. A TOML parser's error (a position, the line with a caret,
/// then what is wrong) keeps the position and what is wrong.
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let what: Vec<&str> = lines
        .iter()
        .skip(1)
        .filter(|l| {
            !l.starts_with('|') && !l.split_once(" |").is_some_and(|(n, _)| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .copied()
        .collect();
    match lines.first() {
        Some(first) if first.starts_with("TOML parse error") => format!("{first}: {}", what.join("; ")),
        _ => lines.join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_starting_cash_is_1e15() {
        assert_eq!(MAX_STARTING_CASH, Decimal::from(1_000_000_000_000_000u64));
    }

    #[test]
    fn floats_are_accepted_when_their_text_round_trips() {
        // (label, text, accepted)
        let cases = [
            ("TC0: a short decimal", "0.001", true),
            ("TC1: a whole number", "100000.0", true),
            ("TC2: scientific", "1e-3", true),
            ("TC3: more digits than an f64 holds", "0.12345678901234567891", false),
            ("TC4: nan", "nan", false),
            ("TC5: inf", "inf", false),
            ("TC6: beyond a decimal", "1e30", false),
            ("TC7: 17 significant digits that round-trip", "0.1000000000000000", true),
        ];
        for (label, text, accepted) in cases {
            let refusal = inexact_float(text, "x = \"...\"");
            assert_eq!(refusal.is_none(), accepted, "{label}: {refusal:?}");
        }
    }

    #[test]
    fn utc_offsets_parse_strictly() {
        assert_eq!(parse_utc_offset("-05:00"), Ok(-18_000));
        assert_eq!(parse_utc_offset("+5:30"), Ok(19_800));
        for bad in ["05:00", "+24:00", "+05:60", "-05:+3", "+05", "+005:00", "", "+ 5:00"] {
            assert!(parse_utc_offset(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_help_lists_every_parameter_with_the_default_rule_strategy_uses() {
        for doc in STRATEGIES {
            let defaults = rule_strategy(doc.name, &BTreeMap::new()).unwrap();
            let given: BTreeMap<String, String> =
                doc.params.iter().map(|p| (p.name.to_string(), p.default.to_string())).collect();
            // Every listed name is known, and its listed default is the default.
            assert_eq!(rule_strategy(doc.name, &given).unwrap(), defaults, "{}", doc.name);
            // Every known name is listed: an unknown one's message names the known ones.
            let unknown: BTreeMap<String, String> = [("x".to_string(), "1".to_string())].into();
            let message = rule_strategy(doc.name, &unknown).unwrap_err().to_string();
            let known = message.rsplit("the known ones are ").next().unwrap_or_default();
            let known: Vec<&str> = known.split(" (").next().unwrap_or_default().split(", ").collect();
            let listed: Vec<&str> = doc.params.iter().map(|p| p.name).collect();
            assert_eq!(known, listed, "{}", doc.name);
        }
        let help = strategies_help();
        assert!(
            help.contains("sma-cross") && help.contains("fast        [10]") && help.contains("rsi         [14]"),
            "{help}"
        );
    }

    #[test]
    fn rule_strategy_parameters_are_range_checked() {
        let params = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        // TC0: defaults.
        assert!(matches!(
            rule_strategy("sma-cross", &params(&[])),
            Ok(RuleStrategy::SmaCross { fast: 10, slow: 30, .. })
        ));
        // (label, strategy, params, key named)
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: [Case<'_>; 9] = [
            ("TC1: a period of 2^40 bars", "sma-cross", &[("slow", "1099511627776")], "provider.params.slow"),
            ("TC2: zero", "sma-cross", &[("fast", "0")], "provider.params.fast"),
            ("TC3: fast >= slow for ema-rsi", "ema-rsi", &[("fast", "60")], "provider.params.fast"),
            ("TC4: rsi of 1", "ema-rsi", &[("rsi", "1")], "provider.params.rsi"),
            ("TC5: NaN level", "ema-rsi", &[("overbought", "NaN")], "provider.params.overbought"),
            ("TC6: oversold above overbought", "ema-rsi", &[("oversold", "80")], "provider.params.oversold"),
            ("TC7: short is not a boolean", "sma-cross", &[("short", "yes")], "provider.params.short"),
            ("TC8: size_pct above 1", "sma-cross", &[("size_pct", "1.5")], "provider.params.size_pct"),
            ("TC9: unknown", "sma-cross", &[("speed", "1")], "provider.params.speed"),
        ];
        for (label, strategy, pairs, key) in cases {
            let error = rule_strategy(strategy, &params(pairs)).expect_err(label);
            assert_eq!(error.problems()[0].key, key, "{label}: {error}");
        }
    }
}
