//! WAL checkpoints off the commit path. SQLite's automatic checkpoint runs inside the commit
//! that crosses its threshold, so every issuance queued behind that commit waited for the copy
//! of ~1,000 pages and two `fsync`s (the p99 of refresh, docs/benchmarks.md). Instead, a thread
//! with its own connection runs PASSIVE checkpoints, which copy committed frames into the
//! database file while commits go on. Once the log is long, it takes the store's connection
//! (so it waits its turn instead of polling for the write lock) and runs a RESTART checkpoint
//! on it: that copies only the few frames committed since, and the next commit starts the log
//! from its beginning again, so the WAL file does not grow without bound.

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::{StoreError, StoreResult};

/// How often the checkpointer looks at the log.
const INTERVAL: Duration = Duration::from_millis(50);
/// Log length (frames, 4 KiB each) from which the log is restarted.
const RESTART_FRAMES: i64 = 2_000;
/// How long a PASSIVE checkpoint waits for a lock before trying again next time.
const PASSIVE_WAIT: Duration = Duration::from_millis(20);

/// Runs checkpoints until dropped; the last one runs as it stops.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the WAL of the database at `path` (already in WAL mode), whose
    /// writes all go through `writer`.
    pub fn start(path: &Path, writer: Arc<Mutex<Connection>>) -> StoreResult<Self> {
        let failed = |e: &dyn std::fmt::Display| StoreError::Database(format!("checkpointer: {e}"));
        let conn = super::sqlite::open_file(path)?;
        conn.busy_timeout(PASSIVE_WAIT).map_err(|e| failed(&e))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || run(&conn, &writer, &stopped))
            .map_err(|e| failed(&e))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `(log frames, frames checkpointed)` after a checkpoint in `mode`, or None if it could not
/// run (busy, or an error worth no more than a retry at the next interval).
fn checkpoint(conn: &Connection, mode: &str) -> Option<(i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })
    .ok()
    .filter(|(busy, _, _)| *busy == 0)
    .map(|(_, log, done)| (log, done))
}

fn run(conn: &Connection, writer: &Mutex<Connection>, stopped: &mpsc::Receiver<()>) {
    loop {
        let stopping = !matches!(
            stopped.recv_timeout(INTERVAL),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        if let Some((log, _)) = checkpoint(conn, "PASSIVE") {
            if log >= RESTART_FRAMES || (stopping && log > 0) {
                let restarted = writer
                    .lock()
                    .ok()
                    .and_then(|writer| checkpoint(&writer, "RESTART"));
                if restarted.is_none() {
                    tracing::warn!(log, "WAL checkpoint (RESTART) failed; retrying");
                }
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::sqlite::SqliteStore;
    use crate::store::test_support::{create_tenant_t, issuance};
    use crate::store::Store;

    /// With no checkpoint in the commits, the log would hold every page written (~40 MB
    /// here); the background checkpointer keeps restarting it, and what was committed is in
    /// the database file once the store closes.
    #[test]
    fn the_log_stays_bounded_and_everything_reaches_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.db");
        let wal = dir.path().join("broker.db-wal");
        const TOKENS: usize = 3_000;
        let mut largest_wal = 0;
        {
            let store = SqliteStore::open(&path, false).unwrap();
            create_tenant_t(&store);
            for i in 0..TOKENS {
                let mut item = issuance(&format!("{i:08}"), None);
                item.audit = item
                    .audit
                    .details(serde_json::json!({"padding": "x".repeat(2_000)}));
                assert!(store.issue_token(&item.token, &item.audit, None).unwrap());
                largest_wal = largest_wal.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
            }
        }
        assert!(
            largest_wal < 24 * 1024 * 1024,
            "the log grew to {largest_wal} bytes"
        );
        assert!(largest_wal > 0, "the database is in WAL mode");
        let reopened = SqliteStore::open(&path, false).unwrap();
        let entries = reopened
            .audit(&crate::store::AuditQuery {
                tenant: None,
                after_seq: 0,
                limit: 10_000,
            })
            .unwrap();
        assert_eq!(entries.len(), TOKENS + 1);
        assert!(crate::audit::verify_chain(&entries).is_ok());
    }
}
