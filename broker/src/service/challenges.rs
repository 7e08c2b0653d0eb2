//! Challenges in the audit log. `/v1/challenge` is unauthenticated and stores nothing (ADR
//! 0008), so an entry per challenge would let anyone grow the audit log by a row per request.
//! Instead the challenges issued are counted and [`ChallengeCount::flush`] records one
//! `challenge.issued` entry per interval with the count, and each challenge that is used is
//! audited individually in the decision it leads to (`token.issue` / `attest.deny`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::json;

use crate::audit::NewAuditEntry;
use crate::store::{Store, StoreResult};

/// How often the count is written (and on shutdown).
pub const FLUSH_INTERVAL_SECS: u64 = 10;

/// Challenges issued since the last flush.
#[derive(Debug, Default)]
pub struct ChallengeCount {
    issued: AtomicU64,
    /// Start of the current interval (unix seconds); the flush lock.
    since: Mutex<Option<i64>>,
}

impl ChallengeCount {
    /// Counts one issued challenge.
    pub fn issued(&self) {
        self.issued.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends a `challenge.issued` entry for the challenges issued since the last flush (none
    /// if there were none). Returns how many it recorded.
    pub fn flush(&self, store: &dyn Store, now: i64) -> StoreResult<u64> {
        let mut since = self
            .since
            .lock()
            .map_err(|_| crate::store::StoreError::Database("challenge count poisoned".into()))?;
        let from = since.unwrap_or(now);
        let count = self.issued.swap(0, Ordering::Relaxed);
        if count > 0 {
            let entry =
                NewAuditEntry::new(now, None, "anonymous", "challenge.issued", "challenges")
                    .details(json!({"count": count, "from": from, "to": now}));
            if let Err(e) = store.append_audit(&entry, None) {
                // Not lost: counted again at the next flush.
                self.issued.fetch_add(count, Ordering::Relaxed);
                return Err(e);
            }
        }
        *since = Some(now);
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::AuditQuery;

    #[test]
    fn issued_challenges_are_audited_as_a_count_per_interval() {
        let store = SqliteStore::in_memory().unwrap();
        let count = ChallengeCount::default();
        assert_eq!(count.flush(&store, 100).unwrap(), 0, "nothing issued yet");
        for _ in 0..5 {
            count.issued();
        }
        assert_eq!(count.flush(&store, 110).unwrap(), 5);
        assert_eq!(count.flush(&store, 120).unwrap(), 0, "counted once");
        count.issued();
        assert_eq!(count.flush(&store, 130).unwrap(), 1);
        let entries = store
            .audit(&AuditQuery {
                tenant: None,
                after_seq: 0,
                limit: 10,
            })
            .unwrap();
        let counts: Vec<_> = entries
            .iter()
            .map(|e| {
                assert_eq!(e.entry.action, "challenge.issued");
                (
                    e.entry.details["count"].as_u64().unwrap(),
                    e.entry.details["from"].as_i64().unwrap(),
                    e.entry.details["to"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(counts, [(5, 100, 110), (1, 120, 130)]);
        assert!(crate::audit::verify_chain(&entries).is_ok());
    }
}
