//! Diagnostics through `tracing` to stderr: human format by default, JSON on request,
//! level from `RUST_LOG` (default `info`). Results go to stdout, never diagnostics.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::args::LogFormat;

/// The directive that leaves sled's records out.
const SLED_OFF: &str = "sled=off";
/// The directive that keeps the NATS client's connection notes ("connected", "event:
/// closed") out at the default level: the outbox reports what matters itself.
const NATS_QUIET: &str = "async_nats=warn";

/// Installs the global subscriber. sled's own log records are left out unless
/// `RUST_LOG` names sled: every sled failure reaches the ledger as an error, reported
/// once with what was being done and where (its own records repeat it in debug form,
/// "hit error while writing iobuf ...: Io(Os { code: 27, ... })", and its recovery
/// notes are internal).
pub fn init(format: LogFormat) {
    let directives = std::env::var("RUST_LOG").ok().filter(|d| !d.trim().is_empty());
    let names_sled = directives.as_deref().is_some_and(|d| d.contains("sled"));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // SLED_OFF is a constant directive; were it ever malformed, sled's lines would show.
    let filter = match (names_sled, SLED_OFF.parse()) {
        (false, Ok(directive)) => filter.add_directive(directive),
        _ => filter,
    };
    let names_nats = directives.as_deref().is_some_and(|d| d.contains("async_nats"));
    let filter = match (names_nats, NATS_QUIET.parse()) {
        (false, Ok(directive)) => filter.add_directive(directive),
        _ => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
