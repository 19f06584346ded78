//! The run configuration: a TOML file (`--config`), overridden by flags. Unknown keys are
//! an error naming the key and the file. The effective configuration is hashed (SHA-256
//! of its canonical JSON: fixed field order, maps sorted) into `RunStarted.config_hash`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ledger_core::chain::Hash32;
use ledger_core::risk::{KillSwitchLimits, RiskLimits};
use ledger_core::venue::PaperConfig;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Everything a run or a backtest is configured by.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Account settings.
    pub account: AccountConfig,
    /// Market data.
    pub data: DataConfig,
    /// The decision provider.
    pub strategy: StrategyConfig,
    /// The paper venue.
    pub venue: PaperConfig,
    /// Risk limits.
    pub risk: RiskLimits,
    /// Kill-switch thresholds.
    pub kill_switch: KillSwitchLimits,
    /// Storage settings.
    pub ledger: LedgerConfig,
}

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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Market data file (CSV or JSONL, optionally gzipped).
    pub file: Option<PathBuf>,
    /// Instrument symbol; default: the file name up to its first `_`, `-` or `.`, upper-cased.
    pub instrument: Option<String>,
    /// Sort rows by time instead of refusing out-of-order rows.
    pub sort: bool,
    /// Offset of times written without one, `+HH:MM` or `-HH:MM` (default UTC).
    pub utc_offset: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrategyConfig {
    /// `sma-cross` or `ema-rsi`.
    pub name: String,
    /// Strategy parameters (`fast`, `slow`, `short`, `size_pct`, ...), as text.
    pub params: BTreeMap<String, String>,
}

impl Default for StrategyConfig {
    fn default() -> Self {
        StrategyConfig { name: "sma-cross".into(), params: BTreeMap::new() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// `strict` (flush every append) or `group` (flush every `group_events` or `group_ms`).
    pub durability: String,
    /// Group durability: pending events that force a flush.
    pub group_events: u64,
    /// Group durability: milliseconds that force a flush.
    pub group_ms: u64,
    /// Cycles gathered into one append.
    pub cycles_per_append: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig { durability: "group".into(), group_events: 10_000, group_ms: 50, cycles_per_append: 256 }
    }
}

impl Config {
    /// Reads `path`, or the defaults when `None`.
    ///
    /// # Errors
    /// Unreadable file, invalid TOML, or an unknown key (named, with the file).
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        let config: Config = toml::from_str(&text).with_context(|| format!("config {}", path.display()))?;
        Ok(config)
    }

    /// The canonical JSON form: struct fields in declaration order, maps sorted.
    pub fn canonical_json(&self) -> String {
        // Serializing plain data to JSON cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The configuration a run recorded in its `RunStarted`, checked against its hash.
    ///
    /// # Errors
    /// The recorded JSON does not match its hash or does not parse.
    pub fn from_recorded(json: &str, hash: &Hash32) -> Result<Config> {
        if Hash32::digest(json.as_bytes()) != *hash {
            bail!("the recorded configuration does not match its config_hash {}", hash.short());
        }
        serde_json::from_str(json).context("parsing the recorded configuration")
    }

    /// Applies `k=v` strategy parameters from the command line.
    ///
    /// # Errors
    /// A parameter without `=`.
    pub fn set_params(&mut self, params: &[String]) -> Result<()> {
        for param in params {
            let Some((key, value)) = param.split_once('=') else {
                bail!("--param {param:?}: expected KEY=VALUE");
            };
            self.strategy.params.insert(key.trim().to_string(), value.trim().to_string());
        }
        Ok(())
    }
}
