//! Configuration in two stages, as ripgrep parses flags: the TOML file and the
//! `LEDGER_<SECTION>__<KEY>` environment (merged by figment, in that order), then the
//! command line's flags, merged in one place ([`Settings::resolve`]) into one validated
//! [`Settings`] that a run uses and records.
//!
//! - Unknown keys are an error that names the key and the file.
//! - Paths in the file are relative to the file's folder; paths in flags and the
//!   environment to the working directory.
//! - Durations are written as text (`"500ms"`, `"2m"`) or as nanoseconds.
//! - Secrets are never configuration values: a provider that needs a key names the
//!   environment variable holding it (`api_key_env`).
//! - The effective settings are hashed (SHA-256 of their canonical JSON: fixed field
//!   order, maps sorted) into `RunStarted.config_hash`, and recorded beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use figment::providers::{Env, Format, Toml};
use figment::value::magic::RelativePathBuf;
use figment::Figment;
use ledger_core::chain::Hash32;
use ledger_core::risk::{KillSwitchLimits, RiskLimits};
use ledger_core::venue::PaperConfig;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

use crate::args::SessionFlags;

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
    /// Storage settings.
    #[serde(default)]
    pub ledger: LedgerConfig,
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
}

impl<P> DataConfig<P> {
    fn default() -> Self {
        DataConfig { files: Vec::new(), file: None, instrument: None, sort: false, utc_offset: None, lenient: false }
    }
}

/// Who decides: a tagged enum, `kind = "rules" | "script" | "openai" | "anthropic"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProviderConfig<P> {
    /// A built-in rule strategy.
    Rules {
        /// `sma-cross` or `ema-rsi`.
        strategy: String,
        /// Its parameters (`fast`, `slow`, `short`, `size_pct`, ...), as text.
        #[serde(default, deserialize_with = "scalars")]
        params: BTreeMap<String, String>,
    },
    /// Decisions from a JSONL file keyed by tick time.
    Script {
        /// The decisions file.
        file: P,
    },
    /// An OpenAI-compatible chat-completions server (DeepSeek, OpenAI, vLLM, Ollama).
    Openai {
        /// The model name.
        model: String,
        /// The server's base URL.
        base_url: String,
        /// The environment variable that holds the API key (the key is never configured).
        api_key_env: String,
    },
    /// Anthropic's Messages API.
    Anthropic {
        /// The model name.
        model: String,
        /// The environment variable that holds the API key.
        api_key_env: String,
    },
}

impl<P> ProviderConfig<P> {
    fn default() -> Self {
        ProviderConfig::Rules { strategy: "sma-cross".into(), params: BTreeMap::new() }
    }
}

/// Strategy parameters written as strings, numbers or booleans, kept as text.
fn scalars<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let map = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Scalar::Text(s) => s,
                Scalar::Int(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (k, text)
        })
        .collect())
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
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            durability: DurabilityMode::Group,
            group_events: 10_000,
            group_interval_ns: Some(50_000_000),
            cycles_per_append: 256,
        }
    }
}

impl Settings {
    /// The settings of a session: the file named by `--config` (if any), then the
    /// `LEDGER_<SECTION>__<KEY>` environment, then the flags.
    ///
    /// # Errors
    /// An unreadable or invalid file, an unknown key (named, with the file), a value of
    /// the wrong type, or a flag that does not apply.
    pub fn resolve(flags: &SessionFlags) -> Result<Settings> {
        let mut figment = Figment::new();
        if let Some(path) = &flags.config {
            if !path.is_file() {
                bail!("config {}: no such file", path.display());
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Env::prefixed("LEDGER_").split("__").filter(|key| key.as_str().contains('.')));
        let file: Config<RelativePathBuf> = figment.extract().map_err(|error| {
            let file = flags.config.as_ref().map_or_else(String::new, |p| format!("config {}: ", p.display()));
            anyhow::anyhow!("{file}{}", error_text(&error))
        })?;
        let mut settings = file.resolve_paths();
        settings.apply(flags)?;
        Ok(settings)
    }

    /// Applies the flags over the file and environment.
    fn apply(&mut self, flags: &SessionFlags) -> Result<()> {
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
        if let Some(cash) = flags.cash {
            self.account.starting_cash = cash;
        }
        let mut params = BTreeMap::new();
        for param in &flags.param {
            let Some((key, value)) = param.split_once('=') else {
                bail!("--param {param:?}: expected KEY=VALUE");
            };
            params.insert(key.trim().to_string(), value.trim().to_string());
        }
        match (&flags.strategy, &mut self.provider) {
            (Some(name), _) if name == "script" => {
                let Some(file) = params.remove("file") else {
                    bail!("--strategy script needs --param file=DECISIONS.jsonl");
                };
                if let Some(extra) = params.keys().next() {
                    bail!("--param {extra}: the script provider takes only file=");
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
            (None, _) if !params.is_empty() => {
                bail!("--param applies to rule strategies; the config names another provider")
            }
            (None, _) => {}
        }
        Ok(())
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
            },
            provider: match self.provider {
                ProviderConfig::Rules { strategy, params } => ProviderConfig::Rules { strategy, params },
                ProviderConfig::Script { file } => ProviderConfig::Script { file: resolve(file) },
                ProviderConfig::Openai { model, base_url, api_key_env } => {
                    ProviderConfig::Openai { model, base_url, api_key_env }
                }
                ProviderConfig::Anthropic { model, api_key_env } => ProviderConfig::Anthropic { model, api_key_env },
            },
            venue: self.venue,
            risk: self.risk,
            kill_switch: self.kill_switch,
            ledger: self.ledger,
        }
    }
}

/// A figment error as one line per problem: the key, what is wrong, and where the value
/// came from (the file, or the environment variable).
fn error_text(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| {
            let source = e.metadata.as_ref().and_then(|m| m.source.as_ref()).map(|s| format!(" (from {s})"));
            let key = if e.path.is_empty() { String::new() } else { format!("key {}: ", e.path.join(".")) };
            format!("{key}{}{}", e.kind, source.unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join("; ")
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
}

impl RecordedSettings {
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
