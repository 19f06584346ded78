//! The response cache: every LLM call's outcome kept in a folder, keyed by the SHA-256
//! of the canonical request (provider, endpoint and the request body, whose fields are
//! written in a fixed order), so a backtest run again makes no call and records the
//! same events (the same body, reason and latency).
//!
//! One file per request, `DIR/<first 2 hex>/<64 hex>.json`, written to a temporary
//! name and renamed, so a crash never leaves half an entry. Failures are kept too
//! (a timeout's reason and latency): a cached run reproduces the recorded one exactly;
//! delete an entry to ask again. In cache-only mode a miss makes no call: it is counted
//! ([`ResponseCache::misses`]) for the command to report as an error.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One call's outcome, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedCall {
    /// The 2xx body, when the call succeeded.
    pub body: Option<String>,
    /// The failure reason (naming the endpoint, never the key), when it failed.
    pub failure: Option<String>,
    /// The error body of a failed call (empty when there was none).
    #[serde(default)]
    pub error_body: String,
    /// Wall time of the call with its retries, microseconds.
    pub latency_us: u64,
    /// HTTP status of the last response, when one came (absent in entries written
    /// before it was kept).
    #[serde(default)]
    pub http_status: Option<u16>,
}

/// A cache entry that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("LLM cache {path}: {message}")]
pub struct CacheError {
    /// The folder or entry.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// A folder of cached calls; clones share the miss count.
#[derive(Debug, Clone)]
pub struct ResponseCache {
    dir: PathBuf,
    only: bool,
    misses: Arc<AtomicU64>,
    first_miss: Arc<Mutex<Option<String>>>,
}

impl ResponseCache {
    /// The cache in `dir`, created unless `only` (cache-only mode: answers come from the
    /// cache alone, and the folder must exist).
    ///
    /// # Errors
    /// The folder cannot be created, or is missing in cache-only mode.
    pub fn open(dir: &Path, only: bool) -> Result<ResponseCache, CacheError> {
        let error = |message: String| CacheError { path: dir.to_path_buf(), message };
        match only {
            true if !dir.is_dir() => {
                return Err(error("no such folder (--llm-cache-only reads an existing cache)".into()))
            }
            true => {}
            false => std::fs::create_dir_all(dir).map_err(|e| error(e.to_string()))?,
        }
        Ok(ResponseCache {
            dir: dir.to_path_buf(),
            only,
            misses: Arc::new(AtomicU64::new(0)),
            first_miss: Arc::new(Mutex::new(None)),
        })
    }

    /// The key of a request: SHA-256, lowercase hex, of `provider`, `endpoint` and
    /// `body`, each followed by a newline.
    pub fn key(provider: &str, endpoint: &str, body: &str) -> String {
        let mut hasher = Sha256::new();
        for part in [provider, endpoint, body] {
            hasher.update(part.as_bytes());
            hasher.update(b"\n");
        }
        hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether answers come from the cache alone.
    pub fn only(&self) -> bool {
        self.only
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key.get(..2).unwrap_or("00")).join(format!("{key}.json"))
    }

    /// The cached outcome of the request `key`, if any.
    ///
    /// # Errors
    /// An entry that cannot be read or parsed.
    pub fn get(&self, key: &str) -> Result<Option<CachedCall>, CacheError> {
        let path = self.path(key);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CacheError { path, message: e.to_string() }),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| CacheError { path, message: e.to_string() })
    }

    /// Keeps the outcome of the request `key`.
    ///
    /// # Errors
    /// The entry cannot be written.
    pub fn put(&self, key: &str, call: &CachedCall) -> Result<(), CacheError> {
        let path = self.path(key);
        let error = |message: String| CacheError { path: path.clone(), message };
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(|e| error(e.to_string()))?;
        }
        let text = serde_json::to_string_pretty(call).map_err(|e| error(e.to_string()))?;
        let temporary = path.with_extension(format!("json.{}.tmp", std::process::id()));
        std::fs::write(&temporary, text).map_err(|e| error(e.to_string()))?;
        std::fs::rename(&temporary, &path).map_err(|e| error(e.to_string()))
    }

    /// Counts a miss in cache-only mode.
    pub fn miss(&self, key: &str) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_miss.lock() {
            first.get_or_insert_with(|| key.to_string());
        }
    }

    /// Misses in cache-only mode so far, and the key of the first.
    pub fn misses(&self) -> (u64, Option<String>) {
        let first = self.first_miss.lock().ok().and_then(|first| first.clone());
        (self.misses.load(Ordering::Relaxed), first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_by_request_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::open(&dir.path().join("cache"), false).unwrap();
        let key = ResponseCache::key("openai", "http://x/v1/chat/completions", "{}");
        // TC0: a different body is a different key.
        assert_ne!(key, ResponseCache::key("openai", "http://x/v1/chat/completions", "{ }"));
        assert_eq!(cache.get(&key).unwrap(), None);
        let call = CachedCall {
            body: Some("{\"choices\":[]}".into()),
            failure: None,
            error_body: String::new(),
            latency_us: 42,
            http_status: Some(200),
        };
        cache.put(&key, &call).unwrap();
        // TC1: what was put is what is got, from a cache opened anew.
        let again = ResponseCache::open(&dir.path().join("cache"), true).unwrap();
        assert_eq!(again.get(&key).unwrap(), Some(call));
        // TC2: cache-only needs the folder.
        let error = ResponseCache::open(&dir.path().join("none"), true).unwrap_err().to_string();
        assert!(error.contains("none: no such folder"), "{error}");
        // TC3: a damaged entry is an error naming it.
        std::fs::write(again.path(&key), "{").unwrap();
        assert!(again.get(&key).unwrap_err().to_string().contains(&key));
    }
}
