//! Wiring: strategies, venue, risk and the log, from a validated [`Config`].

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ledger_adapters::market_data::{read_ticks, ReadOptions};
use ledger_adapters::sled_log::Durability;
use ledger_core::decision::DecisionProvider;
use ledger_core::engine::Tick;
use ledger_core::ids::InstrumentId;
use ledger_core::strategy::{EmaRsi, RuleSizing, SmaCross};
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
        "ema-rsi" => &[
            "fast",
            "slow",
            "rsi",
            "overbought",
            "oversold",
            "short",
            "size_pct",
        ],
        other => bail!("unknown strategy {other:?}: choose sma-cross or ema-rsi"),
    };
    if let Some(unknown) = params.keys().find(|k| !known.contains(&k.as_str())) {
        bail!(
            "unknown parameter {unknown:?} for {}: known are {known:?}",
            config.strategy.name
        );
    }
    fn get<T: std::str::FromStr>(
        params: &std::collections::BTreeMap<String, String>,
        key: &str,
        default: T,
    ) -> Result<T> {
        match params.get(key) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| anyhow::anyhow!("parameter {key}={text:?} does not parse")),
        }
    }
    let size_pct: Decimal = get(params, "size_pct", Decimal::ONE)?;
    if size_pct <= Decimal::ZERO || size_pct > Decimal::ONE {
        bail!("parameter size_pct={size_pct} must be in (0, 1]");
    }
    let sizing = RuleSizing {
        size_pct,
        allow_short: get(params, "short", true)?,
    };
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
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            name.split(['_', '-', '.'])
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase()
        }
    };
    InstrumentId::new(&text)
        .with_context(|| format!("instrument for {} (set --instrument)", file.display()))
}

/// Reads the configured data file.
///
/// # Errors
/// No file configured, or a [`ledger_adapters::market_data::DataError`].
pub fn ticks(config: &Config) -> Result<(Vec<Tick>, String)> {
    let Some(file) = &config.data.file else {
        bail!("no market data: pass --data FILE or set [data] file")
    };
    let instrument = instrument(config, file)?;
    let ticks = read_ticks(
        file,
        &ReadOptions {
            instrument,
            sort: config.data.sort,
        },
    )?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let source = format!(
        "{} sha256:{}",
        file.display(),
        ledger_core::chain::Hash32::digest(&bytes)
    );
    Ok((ticks, source))
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
