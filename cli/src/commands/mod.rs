//! One module per subcommand; [`dispatch`] routes to them.
//!
//! While a session runs, it holds the ledger: the commands that can be answered by the
//! session (`status`, `runs`, `events`, `kill-switch`) go through its control endpoint
//! ([`access`]); the others are refused with [`crate::control::SessionRunning`].

mod audit;
mod checkpoint;
mod counterfactual;
mod events;
pub(crate) mod kill_switch;
mod project;
mod publish;
mod rebuild;
mod replay;
pub(crate) mod report;
mod restore;
mod rows;
mod run;
mod runs;
mod status;
mod sweep;
mod verify;

use std::path::Path;

use anyhow::Result;

use crate::args::{Cli, Command};
use crate::control::{self, Client};
use crate::store::Ledger;
use crate::Outcome;

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> Result<Outcome> {
    let data_dir = &cli.global.data_dir;
    match cli.command {
        Command::Status(args) => status::run(data_dir, &args),
        Command::Runs(args) => runs::run(data_dir, args.json),
        Command::Events(args) => events::run(data_dir, &args),
        Command::Verify(args) => verify::run(data_dir, &args),
        Command::Checkpoint(args) => checkpoint::run(data_dir, &args),
        Command::Audit { command } => audit::run(&cli.global, command),
        Command::Replay(args) => replay::run(data_dir, &args),
        Command::Run(args) => run::run(data_dir, &args),
        Command::KillSwitch { command } => kill_switch::run(data_dir, &command),
        Command::Report(args) if args.trades || args.equity => rows::run(data_dir, &args),
        Command::Report(args) => report::run(data_dir, &args),
        Command::Rebuild(args) => rebuild::run(data_dir, &args),
        Command::Sweep(args) => sweep::run(data_dir, &args),
        Command::Publish(args) => publish::run(data_dir, &args),
        Command::Project(args) => project::run(&args),
        Command::Restore(args) => restore::run(data_dir, &args),
    }
}

/// How a command reaches the ledger: through the running session, or directly.
pub enum Access {
    /// A session is running: ask it.
    Session(Client),
    /// No session: the ledger, open (and locked) for this command.
    Ledger(Box<Ledger>),
}

/// The running session's endpoint if one answers, else the ledger opened directly (a
/// session that took the lock in between is found on the second look).
///
/// # Errors
/// No ledger there, the lock held by a process that serves no endpoint, or the errors of
/// [`Ledger::open_existing`].
pub fn access(data_dir: &Path) -> Result<Access> {
    if let Some(client) = Client::connect(data_dir) {
        return Ok(Access::Session(client));
    }
    match Ledger::open_existing(data_dir) {
        Ok(ledger) => Ok(Access::Ledger(Box::new(ledger))),
        Err(error) if control::is_locked(&error) => Client::connect(data_dir).map(Access::Session).ok_or(error),
        Err(error) => Err(error),
    }
}
