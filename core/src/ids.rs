//! Typed identifiers and sequence numbers.
//!
//! Every identifier is a newtype with a private inner value, validated on construction,
//! so a run id cannot be passed where a sequence is expected and a malformed instrument
//! symbol never reaches an event.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    /// The text was empty.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which identifier kind was being parsed.
        kind: &'static str,
    },
    /// The text was longer than the identifier allows.
    #[error("{kind} {text:?} is longer than {max} bytes")]
    TooLong {
        /// Which identifier kind was being parsed.
        kind: &'static str,
        /// The refused text.
        text: String,
        /// The maximum length in bytes.
        max: usize,
    },
    /// The text held a character outside `A-Z a-z 0-9 . _ - / :`.
    #[error("{kind} {text:?} has a character outside A-Z a-z 0-9 . _ - / :")]
    BadChar {
        /// Which identifier kind was being parsed.
        kind: &'static str,
        /// The refused text.
        text: String,
    },
    /// A number was expected.
    #[error("{kind} {text:?} is not a positive whole number")]
    NotANumber {
        /// Which identifier kind was being parsed.
        kind: &'static str,
        /// The refused text.
        text: String,
    },
}

/// Position of an event in the ledger: global, gapless, starting at 1.
///
/// `Seq(0)` never names an event; it is the head of an empty ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(u64);

impl Seq {
    /// The head of an empty ledger (no event has this sequence).
    pub const ZERO: Seq = Seq(0);

    /// Wraps a raw sequence number.
    pub const fn new(value: u64) -> Self {
        Seq(value)
    }

    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The sequence right after this one.
    ///
    /// # Panics
    /// At `u64::MAX`, which no ledger reaches (a broken invariant).
    pub fn next(self) -> Seq {
        Seq(self.0.checked_add(1).expect("sequence overflow")) // invariant
    }

    /// The sequence `n` after this one.
    ///
    /// # Panics
    /// On overflow of `u64`, which no ledger reaches.
    pub fn plus(self, n: u64) -> Seq {
        Seq(self.0.checked_add(n).expect("sequence overflow")) // invariant
    }

    /// Big-endian key bytes, so that sled orders keys by sequence and appends at the tail.
    pub const fn to_key(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! number_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(u64);

        impl $name {
            /// Wraps a raw number.
            pub const fn new(value: u64) -> Self {
                Self(value)
            }

            /// The raw number.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                text.trim().parse::<u64>().map(Self).map_err(|_| IdError::NotANumber {
                    kind: $kind,
                    text: text.to_string(),
                })
            }
        }
    };
}

number_id!(
    /// A run: one live session, paper session or replay. Numbered from 1 in the order
    /// runs start in one ledger.
    RunId,
    "run id"
);
number_id!(
    /// One pipeline cycle inside a run (tick -> decision -> verdict -> order -> fill),
    /// numbered from 1 within the run.
    CycleId,
    "cycle id"
);
number_id!(
    /// A fill reported by a venue, unique within a run.
    FillId,
    "fill id"
);

/// Maximum length in bytes of an inline identifier.
pub const INLINE_ID_MAX: usize = 31;

/// A short identifier stored inline (no heap), so cloning one per tick costs nothing.
///
/// Invariant: `bytes[..len]` is ASCII from `A-Z a-z 0-9 . _ - / :`, `1 <= len <= 31`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct InlineId {
    len: u8,
    bytes: [u8; INLINE_ID_MAX],
}

impl InlineId {
    fn parse(kind: &'static str, text: &str) -> Result<Self, IdError> {
        if text.is_empty() {
            return Err(IdError::Empty { kind });
        }
        if text.len() > INLINE_ID_MAX {
            return Err(IdError::TooLong { kind, text: text.to_string(), max: INLINE_ID_MAX });
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':');
        if !text.bytes().all(allowed) {
            return Err(IdError::BadChar { kind, text: text.to_string() });
        }
        let mut bytes = [0u8; INLINE_ID_MAX];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(InlineId { len: text.len() as u8, bytes })
    }

    fn as_str(&self) -> &str {
        // Constructed only from validated ASCII, so this cannot fail.
        let text = std::str::from_utf8(&self.bytes[..self.len as usize]);
        text.expect("inline id is ASCII") // invariant
    }
}

macro_rules! inline_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(InlineId);

        impl $name {
            /// Validates and wraps `text`.
            ///
            /// # Errors
            /// Empty text, more than 31 bytes, or a character outside `A-Z a-z 0-9 . _ - / :`.
            pub fn new(text: &str) -> Result<Self, IdError> {
                InlineId::parse($kind, text).map(Self)
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                Self::new(text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::new(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

inline_id!(
    /// An instrument symbol as the venue spells it, e.g. `SPY`, `BTC-USD`, `EUR/USD`.
    InstrumentId,
    "instrument id"
);
inline_id!(
    /// The id we give an order before the venue sees it; unique within a ledger, so a
    /// retried submission can be recognised and never sent twice.
    ClientOrderId,
    "client order id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instrument_ids_are_validated() {
        // TC0: ordinary symbols pass and print as given.
        for ok in ["SPY", "BTC-USD", "EUR/USD", "6EH4", "BTC-PERP.BINANCE"] {
            assert_eq!(InstrumentId::new(ok).map(|id| id.to_string()), Ok(ok.to_string()));
        }
        // TC1: empty, too long and odd characters are refused with the kind named.
        assert_eq!(InstrumentId::new(""), Err(IdError::Empty { kind: "instrument id" }));
        assert!(matches!(InstrumentId::new(&"X".repeat(32)), Err(IdError::TooLong { max: 31, .. })));
        assert!(matches!(InstrumentId::new("SP Y"), Err(IdError::BadChar { .. })));
        assert!(matches!(InstrumentId::new("SPÝ"), Err(IdError::BadChar { .. })));
    }

    #[test]
    fn seq_keys_sort_like_numbers() {
        let keys: Vec<[u8; 8]> = [1u64, 255, 256, 1 << 40].iter().map(|&n| Seq::new(n).to_key()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn run_ids_parse_from_text() {
        assert_eq!("7".parse::<RunId>(), Ok(RunId::new(7)));
        assert!(matches!("run-7".parse::<RunId>(), Err(IdError::NotANumber { .. })));
    }
}
