//! `ledger audit`: export a run's audit trail ([`export`]), verify an export with
//! nothing but its folder ([`verify`]), make a signing key ([`keygen`]). The folder's
//! format is in [`manifest`] and docs/audit-format.md.

mod export;
pub(crate) mod manifest;
mod verify;

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ledger_projections::audit::COLUMNS;
use ledger_projections::note::{SignerKey, VerifierKey};

use crate::args::{AuditCommand, AuditKeygenArgs, GlobalArgs};
use crate::describe;
use crate::Outcome;

pub fn run(global: &GlobalArgs, command: AuditCommand) -> Result<Outcome> {
    match command {
        AuditCommand::Export(args) => export::run(&global.data_dir, &args),
        AuditCommand::Verify(args) => verify::run(global.data_dir_given.then_some(global.data_dir.as_path()), &args),
        AuditCommand::Keygen(args) => keygen(&args),
    }
}

/// The row file's columns as the manifest lists them.
fn columns() -> Vec<manifest::Column> {
    COLUMNS.iter().map(|(name, kind)| manifest::Column { name: name.to_string(), kind: kind.name().into() }).collect()
}

/// A CSV cell read back as the value it holds; `None` for an empty text or JSON cell
/// (the member is absent from the row's JSON).
fn cell_value(text: &str, kind: &str) -> Result<Option<serde_json::Value>, String> {
    match kind {
        "string" | "json" if text.is_empty() => Ok(None),
        "string" => Ok(Some(serde_json::Value::String(text.to_string()))),
        "integer" => text
            .parse::<u64>()
            .map(|n| Some(serde_json::Value::from(n)))
            .map_err(|_| format!("{:?} is not an integer", describe::safe(text))),
        "json" => serde_json::from_str(text).map(Some).map_err(|e| format!("not JSON: {e}")),
        other => Err(format!("unknown column type {:?}", describe::safe(other))),
    }
}

fn read_key_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading key {}", describe::path(path)))
}

/// The secret key in `path`.
pub(crate) fn read_signer(path: &Path) -> Result<SignerKey> {
    SignerKey::parse(&read_key_file(path)?).map_err(|e| anyhow!("key {}: {e}", describe::path(path)))
}

/// The public key in `path`.
pub(crate) fn read_verifier(path: &Path) -> Result<VerifierKey> {
    VerifierKey::parse(&read_key_file(path)?).map_err(|e| anyhow!("public key {}: {e}", describe::path(path)))
}

/// `ledger audit keygen`: a fresh Ed25519 key pair from the operating system's random
/// source.
fn keygen(args: &AuditKeygenArgs) -> Result<Outcome> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| anyhow!("no random source: {e}"))?;
    let signer = SignerKey::from_seed(&args.name, seed).map_err(|e| anyhow!("--name: {e}"))?;
    let public_path = {
        let mut name = args.out.clone().into_os_string();
        name.push(".pub");
        std::path::PathBuf::from(name)
    };
    for path in [&args.out, &public_path] {
        if path.exists() {
            bail!("{} exists: a key is never overwritten", describe::path(path));
        }
    }
    write_secret(&args.out, format!("{}\n", signer.encode()).as_bytes())?;
    let public = signer.verifier().encode();
    std::fs::write(&public_path, format!("{public}\n"))
        .with_context(|| format!("writing {}", describe::path(&public_path)))?;
    println!("secret key: {}", describe::path(&args.out));
    println!("public key: {} ({public})", describe::path(&public_path));
    Ok(Outcome::Ok)
}

/// Writes a file only its owner can read.
fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("creating {}", describe::path(path)))?;
    file.write_all(bytes).with_context(|| format!("writing {}", describe::path(path)))
}
