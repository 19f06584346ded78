//! Configuration in two stages, as ripgrep parses flags: the TOML file and the
//! `LEDGER_<SECTION>__<KEY>` environment (merged by figment, in that order), then the
//! command line's flags, merged in one place ([`Settings::resolve`]) into one validated
//! [`Settings`] that a run uses and records.
//!
//! - Unknown keys are an error that names the key and the file.
//! - Every value is range-checked at load ([`validate`]); all problems are reported
//!   together, each naming the key, the value, the allowed range and its origin.
//! - Paths in the file are relative to the file's folder; paths in flags and the
//!   environment to the working directory.
//! - Durations are written as text (`"500ms"`, `"2m"`) or as nanoseconds.
//! - Secrets are never configuration values: a provider that needs a key names the
//!   environment variable holding it (`api_key_env`).
//! - The effective settings are hashed (SHA-256 of their canonical JSON: fixed field
//!   order, maps sorted) into `RunStarted.config_hash`, and recorded beside it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use figment::providers::{Format, Toml};
use figment::value::magic::RelativePathBuf;
use figment::Figment;
use ledger_core::chain::Hash32;
use ledger_core::exits::ExitPolicy;
use ledger_core::risk::{KillSwitchLimits, RiskLimits};
use ledger_core::venue::PaperConfig;
use rust_decimal::Decimal;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::args::SessionFlags;
use crate::describe;

mod binance;
mod validate;

pub use binance::{BinanceConfig, BinanceMode, DEFAULT_BACKOFF_MAX_NS, DEFAULT_BACKOFF_NS, DEFAULT_CONNECTION_AGE_NS};

pub use validate::{derived_instrument, parse_utc_offset, rule_strategy, strategies_help, ConfigError, RuleStrategy};
use validate::{flag_problem, Checker, Origins};

/// Everything a run or a backtest is configured by, validated. `P` is how paths are
/// held: [`RelativePathBuf`] as read from a file, [`PathBuf`] once resolved.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "P: Deserialize<'de>"))]
pub struct Config<P> {
    /// Account settings.
    #[serde(default)]
    pub account: AccountConfig,
    /// Market data.
    #[serde(default = "DataConfig::default")]
    pub data: DataConfig<P>,
    /// The decision provider.
    #[serde(default = "ProviderConfig::default")]
    pub provider: ProviderConfig<P>,
    /// The paper venue.
    #[serde(default)]
    pub venue: PaperConfig,
    /// Risk limits.
    #[serde(default)]
    pub risk: RiskLimits,
    /// Kill-switch thresholds.
    #[serde(default)]
    pub kill_switch: KillSwitchLimits,
    /// Protective exits placed on every entry whose decision sets none. Left out of
    /// the canonical JSON when off, so configurations without exits keep their hash.
    #[serde(default, skip_serializing_if = "ExitPolicy::is_off")]
    pub exits: ExitPolicy,
    /// Storage settings.
    #[serde(default)]
    pub ledger: LedgerConfig,
    /// A session on Binance spot instead of data files (`[binance]`); left out of the
    /// canonical JSON when unset, so other configurations keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binance: Option<BinanceConfig>,
    /// Whether `venue.fill_model` was set (by the file, the environment or
    /// `--fill-model`); when not, the session takes the model its data fills on (bars:
    /// `next_open`, quotes: `quote`, trades: `trade`). Not a key of the file.
    #[serde(skip)]
    pub fill_model_configured: bool,
    /// The LLM response cache's folder (`--llm-cache`); not recorded, since answers
    /// from the cache are the answers recorded when it was filled. Not a key of the file.
    #[serde(skip)]
    pub llm_cache: Option<PathBuf>,
    /// Answer LLM requests from the cache alone (`--llm-cache-only`). Not a key of the file.
    #[serde(skip)]
    pub llm_cache_only: bool,
}

/// The settings a run uses: every path resolved.
pub type Settings = Config<PathBuf>;

/// Account settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountConfig {
    /// Starting cash, account currency.
    pub starting_cash: Decimal,
}

impl Default for AccountConfig {
    fn default() -> Self {
        AccountConfig { starting_cash: Decimal::from(100_000) }
    }
}

/// Market data: one file, or several merged by time into one stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "P: Deserialize<'de>"))]
pub struct DataConfig<P> {
    /// Market data files (CSV or JSONL, optionally gzipped), merged by time.
    #[serde(default)]
    pub files: Vec<P>,
    /// One file: the same as `files = [file]`.
    #[serde(default, skip_serializing)]
    pub file: Option<P>,
    /// Instrument symbol of a single file; default: each file's name up to its first
    /// `_`, `-` or `.`, upper-cased.
    #[serde(default)]
    pub instrument: Option<String>,
    /// Sort each file's rows by time instead of refusing out-of-order rows (holds that
    /// file in memory).
    #[serde(default)]
    pub sort: bool,
    /// Offset of times written without one, `+HH:MM` or `-HH:MM` (default UTC).
    #[serde(default)]
    pub utc_offset: Option<String>,
    /// Skip bad rows (counted in the run's `RunStopped`) instead of refusing the file.
    #[serde(default)]
    pub lenient: bool,
    /// IANA time zone of times written without an offset (`America/New_York`), daylight
    /// saving included; not with `utc_offset`. (Left out of the recorded settings when
    /// unset, as the next two, so that settings written before them hash the same.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// Order of day and month in dates written with the year last: `MM/DD/YYYY` or
    /// `DD/MM/YYYY` (default: told by the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_format: Option<String>,
    /// Header name of the column holding the times (default: the first known time name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<String>,
}

impl<P> DataConfig<P> {
    fn default() -> Self {
        DataConfig {
            files: Vec::new(),
            file: None,
            instrument: None,
            sort: false,
            utc_offset: None,
            lenient: false,
            tz: None,
            date_format: None,
            time_column: None,
        }
    }
}

/// Who decides: a tagged enum, `kind = "rules" | "script" | "openai" | "anthropic"`.
/// Read through [`ProviderFile`], so each kind's keys are checked against the kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    try_from = "ProviderFile<P>",
    bound(deserialize = "P: Deserialize<'de>")
)]
pub enum ProviderConfig<P> {
    /// A built-in rule strategy.
    Rules {
        /// `sma-cross` or `ema-rsi`.
        strategy: String,
        /// Its parameters (`fast`, `slow`, `short`, `size_pct`, ...), as text.
        params: BTreeMap<String, String>,
    },
    /// Decisions from a JSONL file keyed by tick time.
    Script {
        /// The decisions file.
        file: P,
    },
    /// An OpenAI-compatible chat-completions server (DeepSeek, OpenAI, vLLM, Ollama,
    /// llama.cpp).
    Openai(OpenAiConfig<P>),
    /// Anthropic's Messages API.
    Anthropic(AnthropicConfig<P>),
}

/// The settings of an OpenAI-compatible provider (`[provider] kind = "openai"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenAiConfig<P> {
    /// The model name.
    pub model: String,
    /// The server's base URL, up to the API version (`https://api.openai.com/v1`);
    /// requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// The environment variable that holds the API key (the key is never
    /// configured); unset for a server that takes none (a local Ollama).
    pub api_key_env: Option<String>,
    /// Sampling temperature, 0..2; unset leaves the server's default.
    pub temperature: Option<Decimal>,
    /// Sampling seed, for servers that honour it.
    pub seed: Option<u64>,
    /// Most completion tokens; unset leaves the server's default.
    pub max_tokens: Option<u32>,
    /// Time budget of one request, retries included, nanoseconds (in a file:
    /// `timeout = "30s"`).
    pub timeout_ns: i64,
    /// Attempts after the first for a refused connection, HTTP 429 or 5xx.
    pub max_retries: u32,
    /// Wait before the first retry, doubled before each next one, nanoseconds (in a
    /// file: `retry_backoff = "500ms"`).
    pub retry_backoff_ns: i64,
    /// Tools, rounds, token prices and the prompt template.
    #[serde(flatten)]
    pub agent: AgentConfig<P>,
}

/// The settings of an Anthropic provider (`[provider] kind = "anthropic"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnthropicConfig<P> {
    /// The model name (`claude-sonnet-4-5`, ...).
    pub model: String,
    /// The API's base URL (default `https://api.anthropic.com/v1`); requests go to
    /// `{base_url}/messages`.
    pub base_url: String,
    /// The environment variable that holds the API key.
    pub api_key_env: String,
    /// Sampling temperature, 0..1; unset leaves the API's default.
    pub temperature: Option<Decimal>,
    /// Most output tokens of one response (default 1024; the API requires one).
    pub max_tokens: u32,
    /// Time budget of one request, retries included, nanoseconds.
    pub timeout_ns: i64,
    /// Attempts after the first for a refused connection, HTTP 429, 529 or 5xx.
    pub max_retries: u32,
    /// Wait before the first retry, doubled before each next one, nanoseconds.
    pub retry_backoff_ns: i64,
    /// Tools, rounds, token prices and the prompt template.
    #[serde(flatten)]
    pub agent: AgentConfig<P>,
}

/// What an LLM provider of either kind may add: tools (a tool-calling agent), token
/// prices (the cost recorded in `ModelCalled`, which the daily budget guard sums) and
/// a prompt template. Each is left out of the canonical JSON when unset, so earlier
/// configurations keep their hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentConfig<P> {
    /// The tools the model may call: `get_quote`, `get_portfolio`, `get_technicals`,
    /// `get_recent_bars`, `check_risk`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Most tool rounds per decision (default 3 when tools are given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tool_rounds: Option<u32>,
    /// Price of a million prompt tokens, US dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_per_mtok_in: Option<Decimal>,
    /// Price of a million completion tokens, US dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_per_mtok_out: Option<Decimal>,
    /// A minijinja template file for the user message, replacing the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_template: Option<P>,
}

/// Tool rounds per decision when tools are given and `max_tool_rounds` is not.
pub const DEFAULT_MAX_TOOL_ROUNDS: u32 = 3;
/// Anthropic's base URL when none is configured.
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com/v1";
/// Anthropic's `max_tokens` when none is configured.
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u32 = 1024;

impl<P> AgentConfig<P> {
    /// The same settings with the template's path mapped by `f`.
    fn map_path<Q>(self, f: impl FnOnce(P) -> Q) -> AgentConfig<Q> {
        AgentConfig {
            tools: self.tools,
            max_tool_rounds: self.max_tool_rounds,
            price_per_mtok_in: self.price_per_mtok_in,
            price_per_mtok_out: self.price_per_mtok_out,
            prompt_template: self.prompt_template.map(f),
        }
    }
}

impl<P> ProviderConfig<P> {
    fn default() -> Self {
        ProviderConfig::Rules { strategy: "sma-cross".into(), params: BTreeMap::new() }
    }
}

/// The kinds of provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ProviderKind {
    Rules,
    Script,
    Openai,
    Anthropic,
}

/// `[provider]` as written: every key of every kind, checked against the kind when it
/// becomes a [`ProviderConfig`]. (serde's internally tagged enums buffer the section,
/// which loses figment's key paths and its file-relative paths: `kind = "script"`
/// with a `file` could not be read that way.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "P: Deserialize<'de>"))]
struct ProviderFile<P> {
    kind: ProviderKind,
    strategy: Option<String>,
    params: Option<Scalars>,
    file: Option<P>,
    model: Option<String>,
    base_url: Option<String>,
    api_key_env: Option<String>,
    temperature: Option<Decimal>,
    seed: Option<u64>,
    max_tokens: Option<u32>,
    #[serde(default, alias = "timeout_ns", with = "ledger_core::time::duration_ns")]
    timeout: Option<i64>,
    max_retries: Option<u32>,
    #[serde(default, alias = "retry_backoff_ns", with = "ledger_core::time::duration_ns")]
    retry_backoff: Option<i64>,
    tools: Option<Vec<String>>,
    max_tool_rounds: Option<u32>,
    price_per_mtok_in: Option<Decimal>,
    price_per_mtok_out: Option<Decimal>,
    prompt_template: Option<P>,
}

/// Default time budget of one LLM decision, nanoseconds (30 s).
pub const DEFAULT_LLM_TIMEOUT_NS: i64 = 30_000_000_000;
/// Default retries of an LLM call.
pub const DEFAULT_LLM_RETRIES: u32 = 2;
/// Default wait before the first retry of an LLM call, nanoseconds (500 ms).
pub const DEFAULT_LLM_BACKOFF_NS: i64 = 500_000_000;

impl<P> TryFrom<ProviderFile<P>> for ProviderConfig<P> {
    type Error = String;

    /// # Errors
    /// A key the kind does not take, or one it needs missing; the message starts with
    /// the key (`provider.file: ...`).
    fn try_from(f: ProviderFile<P>) -> Result<Self, String> {
        let given = [
            ("strategy", f.strategy.is_some()),
            ("params", f.params.is_some()),
            ("file", f.file.is_some()),
            ("model", f.model.is_some()),
            ("base_url", f.base_url.is_some()),
            ("api_key_env", f.api_key_env.is_some()),
            ("temperature", f.temperature.is_some()),
            ("seed", f.seed.is_some()),
            ("max_tokens", f.max_tokens.is_some()),
            ("timeout", f.timeout.is_some()),
            ("max_retries", f.max_retries.is_some()),
            ("retry_backoff", f.retry_backoff.is_some()),
            ("tools", f.tools.is_some()),
            ("max_tool_rounds", f.max_tool_rounds.is_some()),
            ("price_per_mtok_in", f.price_per_mtok_in.is_some()),
            ("price_per_mtok_out", f.price_per_mtok_out.is_some()),
            ("prompt_template", f.prompt_template.is_some()),
        ];
        let (name, takes, needs): (&str, &[&str], &[&str]) = match f.kind {
            ProviderKind::Rules => ("rules", &["strategy", "params"], &["strategy"]),
            ProviderKind::Script => ("script", &["file"], &["file"]),
            ProviderKind::Openai => (
                "openai",
                &[
                    "model",
                    "base_url",
                    "api_key_env",
                    "temperature",
                    "seed",
                    "max_tokens",
                    "timeout",
                    "max_retries",
                    "retry_backoff",
                    "tools",
                    "max_tool_rounds",
                    "price_per_mtok_in",
                    "price_per_mtok_out",
                    "prompt_template",
                ],
                &["model", "base_url"],
            ),
            ProviderKind::Anthropic => (
                "anthropic",
                &[
                    "model",
                    "base_url",
                    "api_key_env",
                    "temperature",
                    "max_tokens",
                    "timeout",
                    "max_retries",
                    "retry_backoff",
                    "tools",
                    "max_tool_rounds",
                    "price_per_mtok_in",
                    "price_per_mtok_out",
                    "prompt_template",
                ],
                &["model", "api_key_env"],
            ),
        };
        if let Some((extra, _)) = given.iter().find(|(key, set)| *set && !takes.contains(key)) {
            return Err(format!("provider.{extra}: not a key of kind = \"{name}\", which takes {}", takes.join(", ")));
        }
        if let Some(missing) = needs.iter().find(|key| given.iter().any(|(k, set)| k == *key && !set)) {
            return Err(format!("provider.{missing}: missing; kind = \"{name}\" needs {}", needs.join(", ")));
        }
        let missing = || "provider: incomplete".to_string(); // unreachable: checked above
        let agent = AgentConfig {
            max_tool_rounds: f.max_tool_rounds.or(f.tools.as_ref().map(|_| DEFAULT_MAX_TOOL_ROUNDS)),
            tools: f.tools.unwrap_or_default(),
            price_per_mtok_in: f.price_per_mtok_in,
            price_per_mtok_out: f.price_per_mtok_out,
            prompt_template: f.prompt_template,
        };
        Ok(match f.kind {
            ProviderKind::Rules => ProviderConfig::Rules {
                strategy: f.strategy.ok_or_else(missing)?,
                params: f.params.map(|p| p.0).unwrap_or_default(),
            },
            ProviderKind::Script => ProviderConfig::Script { file: f.file.ok_or_else(missing)? },
            ProviderKind::Openai => ProviderConfig::Openai(OpenAiConfig {
                model: f.model.ok_or_else(missing)?,
                base_url: f.base_url.ok_or_else(missing)?,
                api_key_env: f.api_key_env,
                temperature: f.temperature,
                seed: f.seed,
                max_tokens: f.max_tokens,
                timeout_ns: f.timeout.unwrap_or(DEFAULT_LLM_TIMEOUT_NS),
                max_retries: f.max_retries.unwrap_or(DEFAULT_LLM_RETRIES),
                retry_backoff_ns: f.retry_backoff.unwrap_or(DEFAULT_LLM_BACKOFF_NS),
                agent,
            }),
            ProviderKind::Anthropic => ProviderConfig::Anthropic(AnthropicConfig {
                model: f.model.ok_or_else(missing)?,
                base_url: f.base_url.unwrap_or_else(|| DEFAULT_ANTHROPIC_BASE_URL.to_string()),
                api_key_env: f.api_key_env.ok_or_else(missing)?,
                temperature: f.temperature,
                max_tokens: f.max_tokens.unwrap_or(DEFAULT_ANTHROPIC_MAX_TOKENS),
                timeout_ns: f.timeout.unwrap_or(DEFAULT_LLM_TIMEOUT_NS),
                max_retries: f.max_retries.unwrap_or(DEFAULT_LLM_RETRIES),
                retry_backoff_ns: f.retry_backoff.unwrap_or(DEFAULT_LLM_BACKOFF_NS),
                agent,
            }),
        })
    }
}

/// Strategy parameters written as strings, numbers or booleans, kept as text.
struct Scalars(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Scalars {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Table;
        impl<'de> Visitor<'de> for Table {
            type Value = Scalars;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of parameters, e.g. { fast = 10, slow = 30 }")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalars, A::Error> {
                let mut params = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    params.insert(key, map.next_value::<Scalar>()?.0);
                }
                Ok(Scalars(params))
            }
        }
        deserializer.deserialize_map(Table)
    }
}

/// One parameter: a string, number or boolean, as text.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Scalar;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        deserializer.deserialize_any(Text)
    }
}

/// When appended events are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityMode {
    /// Flush every append before it returns.
    Strict,
    /// Flush every `group_events` events or `group_interval`, and at the end of a run.
    Group,
}

/// Storage settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// `strict` or `group`.
    pub durability: DurabilityMode,
    /// Group durability: pending events that force a flush.
    pub group_events: u64,
    /// Group durability: age of the oldest unflushed append that forces a flush,
    /// nanoseconds (in a file: `group_interval = "50ms"`).
    #[serde(alias = "group_interval", with = "ledger_core::time::duration_ns")]
    pub group_interval_ns: Option<i64>,
    /// Cycles gathered into one append in fast replays (paced runs append every cycle).
    pub cycles_per_append: usize,
    /// Events between session snapshots (the engine, provider and venue state a resumed
    /// run starts from, and the folds); 0 takes none but the folds' at the stop.
    pub snapshot_every: u64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            durability: DurabilityMode::Group,
            group_events: 10_000,
            group_interval_ns: Some(50_000_000),
            cycles_per_append: 256,
            snapshot_every: 100_000,
        }
    }
}

impl Settings {
    /// The settings of a session: the file named by `--config` (if any), then the
    /// `LEDGER_<SECTION>__<KEY>` environment, then the flags, validated.
    ///
    /// # Errors
    /// A missing, unreadable or non-TOML file; otherwise a [`ConfigError`] listing every
    /// problem: an unknown key, a value of the wrong type or out of range, a float that
    /// cannot hold its digits, a missing data file, a bad strategy parameter, a flag that
    /// does not apply.
    pub fn resolve(flags: &SessionFlags) -> Result<Settings> {
        let mut early = Vec::new();
        let mut figment = Figment::new();
        if let Some(path) = &flags.config {
            let shown = describe::path(path);
            if !path.is_file() {
                bail!("config {shown}: no such file");
            }
            let text = std::fs::read_to_string(path).with_context(|| format!("reading config {shown}"))?;
            let origin = format!("config {shown}");
            early.extend(validate::toml_floats(&text, &origin).map_err(anyhow::Error::msg)?);
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = validate::env();
        early.extend(validate::env_floats(&env));
        figment = figment.merge(env);
        let origins = Origins::new(&figment, flags);
        let mut checker = Checker::new(&origins);
        let numbers_refused = !early.is_empty();
        checker.extend(early);
        let file: Config<RelativePathBuf> = match figment.extract() {
            Ok(file) => file,
            Err(error) => {
                // A number refused as read (beyond 64 bits) also fails figment's TOML
                // parser: said once.
                let problems = validate::figment_problems(error, &origins);
                checker.extend(problems.into_iter().filter(|p| !(numbers_refused && p.is_toml_parse_error())));
                checker.finish()?;
                bail!("invalid configuration"); // finish() returned the problems above
            }
        };
        validate::before_paths(&file, &mut checker);
        let mut settings = file.resolve_paths();
        settings.fill_model_configured = flags.fill_model.is_some() || figment.contains("venue.fill_model");
        settings.apply(flags, &mut checker);
        validate::settings(&settings, &mut checker);
        checker.finish()?;
        Ok(settings)
    }

    /// Applies the flags over the file and environment; a flag that is malformed or
    /// does not apply is a problem.
    fn apply(&mut self, flags: &SessionFlags, checker: &mut Checker<'_>) {
        if !flags.data.is_empty() {
            self.data.files = flags.data.clone();
        }
        if let Some(instrument) = &flags.instrument {
            self.data.instrument = Some(instrument.clone());
        }
        self.data.sort |= flags.sort;
        self.data.lenient |= flags.lenient;
        if let Some(offset) = &flags.utc_offset {
            self.data.utc_offset = Some(offset.clone());
        }
        if let Some(tz) = &flags.tz {
            self.data.tz = Some(tz.clone());
        }
        if let Some(date_format) = &flags.date_format {
            self.data.date_format = Some(date_format.clone());
        }
        if let Some(time_column) = &flags.time_column {
            self.data.time_column = Some(time_column.clone());
        }
        if let Some(cash) = flags.cash {
            self.account.starting_cash = cash;
        }
        if let Some(rate) = flags.commission {
            self.venue.commission_rate = rate;
        }
        if let Some(bps) = flags.slippage_bps {
            self.venue.slippage_bps = bps;
        }
        if let Some(model) = flags.fill_model {
            self.venue.fill_model = model.into();
        }
        self.venue.close_at_end |= flags.close_at_end;
        if let Some(pct) = flags.stop_loss_pct {
            self.exits.stop_loss_pct = Some(pct);
        }
        if let Some(pct) = flags.take_profit_pct {
            self.exits.take_profit_pct = Some(pct);
        }
        if let Some(pct) = flags.trailing_stop_pct {
            self.exits.trailing_stop_pct = Some(pct);
        }
        if let Some(dir) = &flags.llm_cache {
            match self.provider {
                ProviderConfig::Openai(_) | ProviderConfig::Anthropic(_) => {
                    (self.llm_cache, self.llm_cache_only) = (Some(dir.clone()), flags.llm_cache_only);
                }
                _ => checker.extend([flag_problem(
                    "--llm-cache",
                    "applies to an LLM provider ([provider] kind = \"openai\" or \"anthropic\")",
                )]),
            }
        }
        let mut params = BTreeMap::new();
        for param in &flags.param {
            let Some((key, value)) = param.split_once('=') else {
                checker.extend([flag_problem("--param", format!("{}: expected KEY=VALUE", describe::quoted(param)))]);
                continue;
            };
            params.insert(key.trim().to_string(), value.trim().to_string());
        }
        match (&flags.strategy, &mut self.provider) {
            (Some(name), _) if name == "script" => {
                let Some(file) = params.remove("file") else {
                    checker
                        .extend([flag_problem("--strategy", "--strategy script needs --param file=DECISIONS.jsonl")]);
                    return;
                };
                for extra in params.keys() {
                    let rule = format!("{}: the script provider takes only file=", describe::quoted(extra));
                    checker.extend([flag_problem("--param", rule)]);
                }
                self.provider = ProviderConfig::Script { file: PathBuf::from(file) };
            }
            (Some(name), ProviderConfig::Rules { strategy, params: existing }) => {
                if strategy != name {
                    existing.clear();
                }
                *strategy = name.clone();
                existing.extend(params);
            }
            (Some(name), _) => {
                self.provider = ProviderConfig::Rules { strategy: name.clone(), params };
            }
            (None, ProviderConfig::Rules { params: existing, .. }) => existing.extend(params),
            (None, _) if !params.is_empty() => checker.extend([flag_problem(
                "--param",
                "applies to rule strategies; the config names another provider (set --strategy too)",
            )]),
            (None, _) => {}
        }
    }

    /// The canonical JSON form: struct fields in declaration order, maps sorted.
    pub fn canonical_json(&self) -> String {
        // Serializing plain data to JSON cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Config<RelativePathBuf> {
    /// Paths from the file made relative to the file's folder; kept relative to the
    /// working directory where they fall under it, so recorded settings do not depend
    /// on where the repository is checked out.
    fn resolve_paths(self) -> Settings {
        let cwd = std::env::current_dir().unwrap_or_default();
        let resolve = |path: RelativePathBuf| -> PathBuf {
            let path = path.relative();
            path.strip_prefix(&cwd).map(Path::to_path_buf).unwrap_or(path)
        };
        let mut files: Vec<PathBuf> = self.data.files.into_iter().map(resolve).collect();
        files.extend(self.data.file.map(resolve));
        Config {
            account: self.account,
            data: DataConfig {
                files,
                file: None,
                instrument: self.data.instrument,
                sort: self.data.sort,
                utc_offset: self.data.utc_offset,
                lenient: self.data.lenient,
                tz: self.data.tz,
                date_format: self.data.date_format,
                time_column: self.data.time_column,
            },
            provider: match self.provider {
                ProviderConfig::Rules { strategy, params } => ProviderConfig::Rules { strategy, params },
                ProviderConfig::Script { file } => ProviderConfig::Script { file: resolve(file) },
                ProviderConfig::Openai(c) => ProviderConfig::Openai(OpenAiConfig {
                    model: c.model,
                    base_url: c.base_url,
                    api_key_env: c.api_key_env,
                    temperature: c.temperature,
                    seed: c.seed,
                    max_tokens: c.max_tokens,
                    timeout_ns: c.timeout_ns,
                    max_retries: c.max_retries,
                    retry_backoff_ns: c.retry_backoff_ns,
                    agent: c.agent.map_path(resolve),
                }),
                ProviderConfig::Anthropic(c) => ProviderConfig::Anthropic(AnthropicConfig {
                    model: c.model,
                    base_url: c.base_url,
                    api_key_env: c.api_key_env,
                    temperature: c.temperature,
                    max_tokens: c.max_tokens,
                    timeout_ns: c.timeout_ns,
                    max_retries: c.max_retries,
                    retry_backoff_ns: c.retry_backoff_ns,
                    agent: c.agent.map_path(resolve),
                }),
            },
            venue: self.venue,
            risk: self.risk,
            kill_switch: self.kill_switch,
            exits: self.exits,
            ledger: self.ledger,
            binance: self.binance,
            fill_model_configured: self.fill_model_configured,
            llm_cache: None,
            llm_cache_only: false,
        }
    }
}

/// What a replay of a recorded run takes from the run's recorded settings: the account,
/// venue, risk and kill-switch settings. Read leniently (other sections are ignored), so
/// settings recorded by any earlier version replay.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedSettings {
    /// Account settings.
    #[serde(default)]
    pub account: AccountConfig,
    /// The paper venue.
    #[serde(default)]
    pub venue: PaperConfig,
    /// Risk limits.
    #[serde(default)]
    pub risk: RiskLimits,
    /// Kill-switch thresholds.
    #[serde(default)]
    pub kill_switch: KillSwitchLimits,
    /// Protective exits.
    #[serde(default)]
    pub exits: ExitPolicy,
    /// The decision provider, as recorded; read only when a replay asks it again
    /// (`--redecide`), so a provider section of an older layout replays its decisions.
    #[serde(default)]
    provider: Option<serde_json::Value>,
}

impl RecordedSettings {
    /// The recorded decision provider's configuration.
    ///
    /// # Errors
    /// The run recorded none, or one this version does not read.
    pub fn provider(&self) -> Result<ProviderConfig<PathBuf>> {
        let recorded = self.provider.clone().context("the run recorded no [provider] configuration")?;
        serde_json::from_value(recorded).context("reading the run's recorded [provider] configuration")
    }

    /// The settings a run recorded in its `RunStarted`, checked against its hash.
    ///
    /// # Errors
    /// The recorded JSON does not match its hash or does not parse.
    pub fn from_recorded(json: &str, hash: &Hash32) -> Result<RecordedSettings> {
        if Hash32::digest(json.as_bytes()) != *hash {
            bail!("the recorded configuration does not match its config_hash {}", hash.short());
        }
        serde_json::from_str(json).context("parsing the recorded configuration")
    }
}
