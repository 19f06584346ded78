//! The response cache: every LLM call's outcome kept in a folder, keyed by the SHA-256
//! of the canonical request (provider, endpoint and the request body, whose fields are
//! written in a fixed order), so a backtest run again makes no call and records the
//! same events (the same body, reason and latency).
//!
//! # Layout
//! `DIR/calls.jsonl`: one line per call, `{"key": "<64 hex>", "call": {...}}`, appended
//! with one `write` each (`O_APPEND`, so processes sharing the folder do not interleave
//! lines). Opening the cache reads the file once and keeps, per key, where its line is
//! (48 bytes a call: a year of minute bars asked of a model is about 25 MB of index);
//! a hit reads that line back with one positioned read. A line cut short by a crash is
//! skipped (and counted) when the file is read, so the call is asked again; the same
//! key twice (two processes asked at once) keeps the first. Entries are never fsynced:
//! a cache is a copy of answers, not the record (the ledger is).
//!
//! Caches written before this layout (`DIR/<2 hex>/<64 hex>.json`, one file per call)
//! are still read, entry by entry, when a key is not in `calls.jsonl`.
//!
//! Failures are kept too (a timeout's reason and latency): a cached run reproduces the
//! recorded one exactly. In cache-only mode a miss makes no call: it is counted
//! ([`ResponseCache::misses`]) for the command to report as an error.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The file the calls are appended to, in the cache's folder.
pub const CALLS_FILE: &str = "calls.jsonl";

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

/// A line of `calls.jsonl`.
#[derive(Serialize, Deserialize)]
struct Line<K, C> {
    key: K,
    call: C,
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

/// Where a call's line is in `calls.jsonl`: byte offset and length (without the newline).
#[derive(Debug, Clone, Copy)]
struct Span {
    offset: u64,
    len: u32,
}

/// A request key: the SHA-256 of the request.
type Key = [u8; 32];

/// The open `calls.jsonl` and its index, shared by the cache's clones.
#[derive(Debug)]
struct Pack {
    /// Opened for reading and appending (`O_APPEND`).
    file: File,
    index: RwLock<HashMap<Key, Span>>,
    /// Held while a line is appended and its offset read back.
    appending: Mutex<()>,
}

/// A folder of cached calls; clones share the index and the miss count.
#[derive(Debug, Clone)]
pub struct ResponseCache {
    dir: PathBuf,
    only: bool,
    pack: Arc<Pack>,
    /// Lines of `calls.jsonl` skipped when it was read (cut short by a crash).
    skipped: u64,
    misses: Arc<AtomicU64>,
    first_miss: Arc<Mutex<Option<String>>>,
}

impl ResponseCache {
    /// The cache in `dir`, created unless `only` (cache-only mode: answers come from the
    /// cache alone, and the folder must exist). Reads `calls.jsonl` once to index it.
    ///
    /// # Errors
    /// The folder cannot be created, or is missing in cache-only mode; `calls.jsonl`
    /// cannot be opened or read.
    pub fn open(dir: &Path, only: bool) -> Result<ResponseCache, CacheError> {
        let error = |message: String| CacheError { path: dir.to_path_buf(), message };
        match only {
            true if !dir.is_dir() => {
                return Err(error("no such folder (--llm-cache-only reads an existing cache)".into()))
            }
            true => {}
            false => std::fs::create_dir_all(dir).map_err(|e| error(e.to_string()))?,
        }
        let path = dir.join(CALLS_FILE);
        let file_error = |message: String| CacheError { path: path.clone(), message };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| file_error(e.to_string()))?;
        let (index, skipped) = read_index(&file).map_err(|e| file_error(e.to_string()))?;
        if !only {
            end_last_line(&file).map_err(|e| file_error(e.to_string()))?;
        }
        if skipped > 0 {
            tracing::warn!(path = %path.display(), skipped, "LLM cache: skipped lines cut short (asked again)");
        }
        Ok(ResponseCache {
            dir: dir.to_path_buf(),
            only,
            pack: Arc::new(Pack { file, index: RwLock::new(index), appending: Mutex::new(()) }),
            skipped,
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

    /// Lines of `calls.jsonl` skipped when the cache was opened (cut short by a crash).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Where a cache of the layout before `calls.jsonl` kept the request `key`.
    fn legacy_path(&self, key: &str) -> PathBuf {
        self.dir.join(key.get(..2).unwrap_or("00")).join(format!("{key}.json"))
    }

    /// The cached outcome of the request `key` (64 hex digits), if any.
    ///
    /// # Errors
    /// An entry that cannot be read or parsed.
    pub fn get(&self, key: &str) -> Result<Option<CachedCall>, CacheError> {
        let span = match parse_key(key) {
            Some(k) => self.pack.index.read().ok().and_then(|index| index.get(&k).copied()),
            None => None,
        };
        let Some(span) = span else { return self.get_legacy(key) };
        let path = self.dir.join(CALLS_FILE);
        let mut line = vec![0; span.len as usize];
        self.pack
            .file
            .read_exact_at(&mut line, span.offset)
            .map_err(|e| CacheError { path: path.clone(), message: format!("reading {key}: {e}") })?;
        serde_json::from_slice::<Line<&str, CachedCall>>(&line)
            .map(|line| Some(line.call))
            .map_err(|e| CacheError { path, message: format!("entry {key}: {e}") })
    }

    fn get_legacy(&self, key: &str) -> Result<Option<CachedCall>, CacheError> {
        let path = self.legacy_path(key);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                return Ok(None)
            }
            Err(e) => return Err(CacheError { path, message: e.to_string() }),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| CacheError { path, message: e.to_string() })
    }

    /// Keeps the outcome of the request `key` (64 hex digits): one line appended to
    /// `calls.jsonl` in one write.
    ///
    /// # Errors
    /// A key that is not 64 hex digits; the line cannot be written.
    pub fn put(&self, key: &str, call: &CachedCall) -> Result<(), CacheError> {
        let path = self.dir.join(CALLS_FILE);
        let error = |message: String| CacheError { path: path.clone(), message };
        let k = parse_key(key).ok_or_else(|| error(format!("{key:?} is not a request key")))?;
        let mut line = serde_json::to_vec(&Line { key, call }).map_err(|e| error(e.to_string()))?;
        let len = u32::try_from(line.len()).map_err(|_| error(format!("entry {key}: over 4 GiB")))?;
        line.push(b'\n');
        // With O_APPEND the write goes to the end of the file, whoever else appends, and
        // leaves this handle's position just after it.
        let appending = self.pack.appending.lock().map_err(|_| error("a writer panicked".into()))?;
        let mut file = &self.pack.file;
        file.write_all(&line).map_err(|e| error(e.to_string()))?;
        let after = file.stream_position().map_err(|e| error(e.to_string()))?;
        drop(appending);
        let offset = after.saturating_sub(line.len() as u64);
        if let Ok(mut index) = self.pack.index.write() {
            index.entry(k).or_insert(Span { offset, len });
        }
        Ok(())
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

/// Ends a last line cut short by a crash with a newline, so the next entry starts a
/// line of its own.
fn end_last_line(file: &File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    let mut last = [0];
    if len > 0 {
        file.read_exact_at(&mut last, len - 1)?;
        if last[0] != b'\n' {
            let mut file = file;
            file.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// A key's 64 lowercase or uppercase hex digits as bytes.
fn parse_key(hex: &str) -> Option<Key> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut key = [0; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = digit(hex[2 * i])? << 4 | digit(hex[2 * i + 1])?;
    }
    Some(key)
}

/// Indexes `calls.jsonl`: each whole line's key and span (the first line of a key
/// wins), and how many lines were skipped (cut short or unreadable). Only the key of
/// each line is parsed.
fn read_index(file: &File) -> std::io::Result<(HashMap<Key, Span>, u64)> {
    #[derive(Deserialize)]
    struct KeyOnly<'a> {
        #[serde(borrow)]
        key: &'a str,
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let (mut index, mut offset, mut skipped) = (HashMap::new(), 0u64, 0u64);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok((index, skipped));
        }
        let whole = line.last() == Some(&b'\n');
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let key = match whole {
            true => serde_json::from_slice::<KeyOnly<'_>>(body).ok().and_then(|k| parse_key(k.key)),
            false => None,
        };
        match (key, u32::try_from(body.len())) {
            (Some(key), Ok(len)) => {
                index.entry(key).or_insert(Span { offset, len });
            }
            _ => skipped += 1,
        }
        offset += read as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(body: &str) -> CachedCall {
        CachedCall {
            body: Some(body.into()),
            failure: None,
            error_body: String::new(),
            latency_us: 42,
            http_status: Some(200),
        }
    }

    #[test]
    fn entries_round_trip_by_request_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::open(&dir.path().join("cache"), false).unwrap();
        let key = ResponseCache::key("openai", "http://x/v1/chat/completions", "{}");
        // TC0: a different body is a different key.
        assert_ne!(key, ResponseCache::key("openai", "http://x/v1/chat/completions", "{ }"));
        assert_eq!(cache.get(&key).unwrap(), None);
        cache.put(&key, &call("{\"choices\":[]}")).unwrap();
        let other = ResponseCache::key("openai", "http://x/v1/chat/completions", "{\"n\":2}");
        let failed = CachedCall {
            body: None,
            failure: Some("timed out".into()),
            error_body: "x\ny".into(),
            latency_us: 7,
            http_status: None,
        };
        cache.put(&other, &failed).unwrap();
        // TC1: what was put is what is got, at once and from a cache opened anew.
        assert_eq!(cache.get(&key).unwrap(), Some(call("{\"choices\":[]}")));
        let again = ResponseCache::open(&dir.path().join("cache"), true).unwrap();
        assert_eq!(again.get(&key).unwrap(), Some(call("{\"choices\":[]}")));
        assert_eq!(again.get(&other).unwrap(), Some(failed));
        // TC2: cache-only needs the folder.
        let error = ResponseCache::open(&dir.path().join("none"), true).unwrap_err().to_string();
        assert!(error.contains("none: no such folder"), "{error}");
        // TC3: one line per call.
        let text = std::fs::read_to_string(dir.path().join("cache").join(CALLS_FILE)).unwrap();
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_skipped_and_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::open(dir.path(), false).unwrap();
        let (a, b) = (ResponseCache::key("p", "e", "a"), ResponseCache::key("p", "e", "b"));
        cache.put(&a, &call("A")).unwrap();
        cache.put(&b, &call("B")).unwrap();
        drop(cache);
        // Cut the last line in the middle, and add a line that is not JSON.
        let path = dir.path().join(CALLS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let cut = text.len() - 10;
        std::fs::write(&path, format!("{}{}", "not json\n", &text[..cut])).unwrap();
        let cache = ResponseCache::open(dir.path(), false).unwrap();
        assert_eq!(cache.skipped(), 2);
        assert_eq!(cache.get(&a).unwrap(), Some(call("A")));
        assert_eq!(cache.get(&b).unwrap(), None);
        // Asked again, it goes on a line of its own after the cut one, and is found from
        // then on.
        cache.put(&b, &call("B2")).unwrap();
        assert_eq!(cache.get(&b).unwrap(), Some(call("B2")));
        let reopened = ResponseCache::open(dir.path(), true).unwrap();
        assert_eq!(reopened.get(&b).unwrap(), Some(call("B2")));
        assert_eq!(reopened.skipped(), 2);
    }

    #[test]
    fn clones_share_entries_and_the_first_answer_of_a_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::open(dir.path(), false).unwrap();
        let clone = cache.clone();
        let key = ResponseCache::key("p", "e", "x");
        clone.put(&key, &call("first")).unwrap();
        cache.put(&key, &call("second")).unwrap();
        assert_eq!(cache.get(&key).unwrap(), Some(call("first")));
        let reopened = ResponseCache::open(dir.path(), true).unwrap();
        assert_eq!(reopened.get(&key).unwrap(), Some(call("first")));
        // A key that is not 64 hex digits is refused, not written.
        assert!(cache.put("zz", &call("x")).is_err());
    }

    #[test]
    fn a_cache_of_the_one_file_per_call_layout_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let key = ResponseCache::key("openai", "http://x/v1/chat/completions", "{}");
        let folder = dir.path().join(&key[..2]);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(format!("{key}.json")), serde_json::to_string(&call("old")).unwrap()).unwrap();
        let cache = ResponseCache::open(dir.path(), true).unwrap();
        assert_eq!(cache.get(&key).unwrap(), Some(call("old")));
        // A damaged old entry is an error naming it.
        std::fs::write(folder.join(format!("{key}.json")), "{").unwrap();
        assert!(cache.get(&key).unwrap_err().to_string().contains(&key));
    }
}
