//! Signed checkpoints: a Merkle tree head (origin, size, root) in the C2SP
//! `tlog-checkpoint` text form, signed with Ed25519 in the C2SP `signed-note` form, and
//! the key formats of Go's `golang.org/x/mod/sumdb/note` (which C2SP describes), so any
//! note verifier can check our checkpoints and ours can check theirs.
//!
//! ```text
//! <origin>\n                          checkpoint: the tree's name
//! <tree size, decimal>\n
//! <root hash, base64>\n
//! [<extension line>\n ...]            ours: `manifest-sha256 <hex>` in audit exports
//! \n
//! — <key name> <base64(key id (4 bytes, big-endian) || Ed25519 signature (64 bytes))>\n
//! ```
//! The signature covers the text up to and including the newline before the blank line.
//! Key id: the first 4 bytes of `SHA-256(key name || 0x0A || 0x01 || public key)`.
//! Keys: `PRIVATE+KEY+<name>+<key id, 8 hex>+<base64(0x01 || 32-byte seed)>` (secret) and
//! `<name>+<key id, 8 hex>+<base64(0x01 || 32-byte public key)>` (public).

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use ledger_core::chain::Hash32;
use sha2::{Digest, Sha256};

/// The C2SP signature type byte of Ed25519.
const ED25519: u8 = 0x01;

/// Why a key, a checkpoint or a note was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteError(pub String);

impl fmt::Display for NoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoteError {}

fn err(text: impl Into<String>) -> NoteError {
    NoteError(text.into())
}

/// A key name: non-empty, no spaces, no `+`, no control characters.
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control()) {
        return Err(err(format!("key name {name:?} must be non-empty, without spaces or '+'")));
    }
    Ok(())
}

/// The key id of the Ed25519 public key `public` under `name`.
fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let digest =
        Sha256::new().chain_update(name.as_bytes()).chain_update([b'\n', ED25519]).chain_update(public).finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A signer: a name and an Ed25519 secret key.
pub struct SignerKey {
    name: String,
    key: SigningKey,
}

impl SignerKey {
    /// The signer for a 32-byte secret seed (from a good random source) under `name`.
    ///
    /// # Errors
    /// A name with spaces or `+`, or empty.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(SignerKey { name: name.to_string(), key: SigningKey::from_bytes(&seed) })
    }

    /// Parses the secret key form `PRIVATE+KEY+<name>+<id>+<base64>`.
    ///
    /// # Errors
    /// Any other form, a wrong key id or algorithm.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim();
        let rest = text.strip_prefix("PRIVATE+KEY+").ok_or_else(|| err("not a secret key (PRIVATE+KEY+...)"))?;
        let (name, id, bytes) = split_key(rest)?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| err("secret key is not 32 bytes"))?;
        let signer = SignerKey::from_seed(name, seed)?;
        if signer.verifier().id != id {
            return Err(err("secret key's id does not match its key"));
        }
        Ok(signer)
    }

    /// The secret key form, one line.
    pub fn encode(&self) -> String {
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(&self.key.to_bytes());
        format!("PRIVATE+KEY+{}+{:08x}+{}", self.name, self.verifier().id, BASE64.encode(bytes))
    }

    /// The matching verifier (public key).
    pub fn verifier(&self) -> VerifierKey {
        let key = self.key.verifying_key();
        VerifierKey { name: self.name.clone(), id: key_id(&self.name, key.as_bytes()), key }
    }

    /// `text` (which must end in a newline) signed: the signed note.
    ///
    /// # Errors
    /// A text that does not end in a newline or holds control characters.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.key.sign(text.as_bytes());
        let mut bytes = self.verifier().id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&signature.to_bytes());
        Ok(format!("{text}\n\u{2014} {} {}\n", self.name, BASE64.encode(bytes)))
    }
}

/// A verifier: a name, a key id and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses the public key form `<name>+<id>+<base64>`.
    ///
    /// # Errors
    /// Any other form, a wrong key id, algorithm or point.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (name, id, bytes) = split_key(text.trim())?;
        check_name(name)?;
        let public: [u8; 32] = bytes.try_into().map_err(|_| err("public key is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| err("public key is not a valid Ed25519 point"))?;
        if key_id(name, &public) != id {
            return Err(err("public key's id does not match its key"));
        }
        Ok(VerifierKey { name: name.to_string(), id, key })
    }

    /// The public key form, one line.
    pub fn encode(&self) -> String {
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, BASE64.encode(bytes))
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signed text of `note` if a signature line of this key (its name and id)
    /// verifies over it.
    ///
    /// # Errors
    /// A malformed note, no signature by this key, or one that does not verify.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let at = note.rfind("\n\n").ok_or_else(|| err("not a signed note: no blank line before the signatures"))?;
        let (text, signatures) = (&note[..=at], &note[at + 2..]);
        check_text(text)?;
        if !signatures.ends_with('\n') {
            return Err(err("not a signed note: the signature lines do not end in a newline"));
        }
        let mut known = false;
        for line in signatures.lines() {
            let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| err(format!("not a signature line: {line:?}")))?;
            let (name, b64) = rest.split_once(' ').ok_or_else(|| err(format!("not a signature line: {line:?}")))?;
            let bytes = BASE64.decode(b64).map_err(|_| err(format!("signature of {name} is not base64")))?;
            if name != self.name || bytes.len() < 4 || bytes[..4] != self.id.to_be_bytes() {
                continue; // another key's: ignored, as C2SP says
            }
            known = true;
            let signature =
                Signature::from_slice(&bytes[4..]).map_err(|_| err(format!("signature of {name} is not 64 bytes")))?;
            if self.key.verify(text.as_bytes(), &signature).is_err() {
                return Err(err(format!("the signature of {name} does not verify over the note")));
            }
        }
        if !known {
            return Err(err(format!("no signature by key {}+{:08x}", self.name, self.id)));
        }
        Ok(text)
    }
}

/// A note text: ends in a newline, no control characters but newlines.
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(err("a note's text must end in a newline and hold no control characters"));
    }
    Ok(())
}

/// `<name>+<hex id>+<base64(0x01 || key)>` split and decoded.
fn split_key(text: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    // base64 holds '+' too: the name and the id do not.
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(err("a key is NAME+ID+BASE64"));
    };
    let id = (id.len() == 8)
        .then(|| u32::from_str_radix(id, 16).ok())
        .flatten()
        .ok_or_else(|| err("key id is not 8 hex digits"))?;
    let bytes = BASE64.decode(b64).map_err(|_| err("key is not base64"))?;
    match bytes.split_first() {
        Some((&ED25519, key)) => Ok((name, id, key.to_vec())),
        _ => Err(err("key algorithm is not Ed25519 (0x01)")),
    }
}

/// A tree head in the C2SP `tlog-checkpoint` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The tree's (log's) name: no spaces, no `+`.
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// RFC 9162 root hash.
    pub root: Hash32,
    /// Extension lines (ours: `manifest-sha256 <hex>`).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text.
    pub fn to_text(&self) -> String {
        let mut text = format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.root.as_bytes()));
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Parses a note text (the part a signature covers).
    ///
    /// # Errors
    /// Fewer than three lines, a size that is not a decimal, a root that is not 32
    /// bytes of base64, empty extension lines.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let body = text.strip_suffix('\n').ok_or_else(|| err("checkpoint does not end in a newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
            return Err(err("a checkpoint has an origin, a size and a root line"));
        };
        if origin.is_empty() {
            return Err(err("checkpoint origin is empty"));
        }
        let size = size
            .parse::<u64>()
            .ok()
            .filter(|_| size.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| err(format!("checkpoint size {size:?} is not a decimal number")))?;
        let root: [u8; 32] = BASE64
            .decode(root)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| err("checkpoint root is not 32 bytes of base64"))?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(err("checkpoint has an empty extension line"));
        }
        Ok(Checkpoint { origin: origin.to_string(), size, root: Hash32::from_bytes(root), extensions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> SignerKey {
        SignerKey::from_seed("example.com/ledger", [7; 32]).expect("a good name")
    }

    #[test]
    fn keys_round_trip_through_their_text_forms() {
        let key = signer();
        let again = SignerKey::parse(&key.encode()).expect("parses");
        assert_eq!(again.encode(), key.encode());
        assert_eq!(VerifierKey::parse(&key.verifier().encode()), Ok(key.verifier()));
        // A key id that does not match is refused.
        let public = key.verifier().encode();
        let tampered = public.replace(&format!("+{:08x}+", key.verifier().id), "+00000000+");
        assert!(VerifierKey::parse(&tampered).is_err());
    }

    #[test]
    fn go_note_vector_verifies() {
        // golang.org/x/mod/sumdb/note's example (note_test.go): key PeterNeumann.
        let verifier = VerifierKey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
            .expect("Go's public key parses");
        let note = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let text =
            "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        assert_eq!(verifier.open(note), Ok(text));
        // Its secret key signs the same bytes (Ed25519 is deterministic).
        let signer = SignerKey::parse("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
            .expect("Go's secret key parses");
        assert_eq!(signer.sign(text).as_deref(), Ok(note));
    }

    #[test]
    fn sign_then_open_and_tampering_fails() {
        let key = signer();
        let checkpoint = Checkpoint {
            origin: "ledger/x".into(),
            size: 3,
            root: Hash32::digest(b"r"),
            extensions: vec!["manifest-sha256 00".into()],
        };
        let note = key.sign(&checkpoint.to_text()).expect("signs");
        let text = key.verifier().open(&note).expect("verifies");
        assert_eq!(Checkpoint::parse(text), Ok(checkpoint));
        // TC: a changed size.
        assert!(key.verifier().open(&note.replacen("\n3\n", "\n4\n", 1)).is_err());
        // TC: another key's signature only.
        let other = SignerKey::from_seed("example.com/ledger", [8; 32]).expect("name");
        assert!(key.verifier().open(&other.sign("ledger/x\n3\nAAAA\n").expect("signs")).is_err());
    }
}
