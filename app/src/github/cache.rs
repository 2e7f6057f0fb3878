//! Conditional requests: every successful GET answer that carries an `ETag` is remembered per
//! caller and URL, the next GET of that URL sends `If-None-Match`, and GitHub's `304 Not
//! Modified` — which does not count against the rate limit — is answered from here with the
//! remembered body and `Link` header, so callers read the same typed result either way.
//!
//! Why not octocrab's own cache layer: it keys by URL alone (not by who asked), stores a body
//! even when reading it failed half-way (a truncated body would then be served forever), panics
//! on a 304 it has no body for, and grows without bound. This one stores only complete answers,
//! is bounded in entries and in bytes, and a 304 it cannot serve is an error, not a panic.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use bytes::Bytes;

use super::client::Auth;

/// Most answers remembered; the oldest is forgotten first.
pub const MAX_ENTRIES: usize = 4096;
/// Answers larger than this are not remembered (a page of 100 pull requests is about 2 MB).
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Most bytes of answers remembered in all; the oldest are forgotten first.
pub const MAX_BYTES: usize = 128 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub auth: Auth,
    /// Path and query relative to the API base.
    pub url: String,
}

/// A remembered answer.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub etag: String,
    pub body: Bytes,
    pub link: Option<String>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    order: VecDeque<Key>,
    bytes: usize,
}

/// The cache; shared by all clones of a client.
#[derive(Default)]
pub(crate) struct ConditionalCache {
    inner: Mutex<Inner>,
}

impl ConditionalCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, key: &Key) -> Option<Entry> {
        self.lock().entries.get(key).cloned()
    }

    /// Remembers a complete answer.
    pub fn put(&self, key: Key, entry: Entry) {
        if entry.body.len() > MAX_BODY {
            self.forget(&key);
            return;
        }
        let mut inner = self.lock();
        inner.bytes += entry.body.len();
        match inner.entries.insert(key.clone(), entry) {
            Some(old) => inner.bytes -= old.body.len(),
            None => inner.order.push_back(key),
        }
        while inner.entries.len() > MAX_ENTRIES || inner.bytes > MAX_BYTES {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.body.len();
            }
        }
    }

    pub fn forget(&self, key: &Key) {
        let mut inner = self.lock();
        if let Some(gone) = inner.entries.remove(key) {
            inner.bytes -= gone.body.len();
            inner.order.retain(|k| k != key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> Key {
        Key {
            auth: Auth::Installation(1),
            url: format!("/x?page={n}"),
        }
    }

    fn entry(body: &str) -> Entry {
        Entry {
            etag: "W/\"1\"".into(),
            body: Bytes::from(body.to_owned()),
            link: None,
        }
    }

    #[test]
    fn entries_are_per_caller_and_bounded() {
        let cache = ConditionalCache::default();
        cache.put(key(1), entry("a"));
        let other = Key {
            auth: Auth::App,
            ..key(1)
        };
        assert!(cache.get(&other).is_none(), "another caller's answer");
        assert_eq!(cache.get(&key(1)).map(|e| e.body), Some(Bytes::from("a")));
        for n in 0..MAX_ENTRIES + 10 {
            cache.put(key(n + 2), entry("b"));
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert!(cache.get(&key(1)).is_none(), "the oldest went first");
        let big = Entry {
            body: Bytes::from(vec![b'x'; MAX_BODY + 1]),
            ..entry("")
        };
        cache.put(key(1), big);
        assert!(cache.get(&key(1)).is_none(), "too large to keep");
    }
}
