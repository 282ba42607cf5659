//! Request journal: one entry per API request. Never holds token values or bodies.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One API request as seen by the emulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// 1-based, increasing across the emulator's life (not reset by `clear_journal`).
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub method: String,
    /// Full request path, e.g. `/client/v4/zones`.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    pub status: u16,
    /// Id of the presented token (as returned by token verify), never the token itself.
    pub token_id: Option<String>,
    /// Whether the call could change state: any method but GET/HEAD, except D1
    /// `/query` and `/raw` calls whose statements are all read-only.
    pub mutating: bool,
    pub duration_ms: u64,
    /// The client's `User-Agent` (which program, and which replica, sent the request).
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// Entries kept; the oldest are dropped beyond this (long-running sandboxes).
pub const JOURNAL_CAPACITY: usize = 100_000;

#[derive(Default)]
pub(crate) struct Journal {
    inner: Mutex<JournalInner>,
}

#[derive(Default)]
struct JournalInner {
    next_seq: u64,
    entries: Vec<JournalEntry>,
}

impl Journal {
    pub(crate) fn record(&self, mut entry: JournalEntry) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.next_seq += 1;
        entry.seq = inner.next_seq;
        if inner.entries.len() >= JOURNAL_CAPACITY {
            let excess = inner.entries.len() + 1 - JOURNAL_CAPACITY;
            inner.entries.drain(..excess);
        }
        inner.entries.push(entry);
    }

    pub(crate) fn entries(&self) -> Vec<JournalEntry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).entries.clone()
    }

    pub(crate) fn clear(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> JournalEntry {
        JournalEntry {
            seq: 0,
            at: Utc::now(),
            method: "GET".into(),
            path: path.into(),
            query: None,
            status: 200,
            token_id: None,
            mutating: false,
            duration_ms: 0,
            user_agent: None,
        }
    }

    #[test]
    fn sequence_keeps_growing_after_clear() {
        let j = Journal::default();
        j.record(entry("/a"));
        j.record(entry("/b"));
        assert_eq!(j.entries().iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        j.clear();
        assert!(j.entries().is_empty());
        j.record(entry("/c"));
        assert_eq!(j.entries()[0].seq, 3);
    }
}
