//! Group commit for token issuance: handlers hand their issuance (token record, audit entry,
//! consumed nonce or proof id) to one writer thread and await its durable result; the writer
//! takes everything queued while the previous commit ran and records it in one transaction
//! ([`Store::issue_tokens`]). Under load many issuances share one WAL write; alone, an
//! issuance commits at once. The answer to the client is still sent only after its commit.

use std::sync::mpsc;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::store::{Issuance, Store, StoreError, StoreResult};

/// Most issuances in one commit (bounds the latency a large batch adds to its first member).
const MAX_BATCH: usize = 64;

struct Job {
    issuance: Issuance,
    reply: oneshot::Sender<StoreResult<bool>>,
}

/// The queue to the writer thread.
#[derive(Debug)]
pub struct IssueQueue {
    sender: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("jti", &self.issuance.token.jti)
            .finish()
    }
}

impl IssueQueue {
    /// Starts the writer thread over `store`. It ends when the queue is dropped.
    pub fn start(store: Arc<dyn Store>) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(store.as_ref(), &receiver))?;
        Ok(IssueQueue { sender })
    }

    /// Records `issuance` (false: its single-use value was already used) once it is durable.
    pub async fn issue(&self, issuance: Issuance) -> StoreResult<bool> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Job { issuance, reply })
            .map_err(|_| StoreError::Database("the store writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Database("the store writer dropped an issuance".into()))?
    }
}

fn write_loop(store: &dyn Store, receiver: &mpsc::Receiver<Job>) {
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (issuances, replies): (Vec<Issuance>, Vec<_>) =
            jobs.into_iter().map(|j| (j.issuance, j.reply)).unzip();
        let results = store.issue_tokens(&issuances);
        for (reply, result) in replies.into_iter().zip(results) {
            // A client that went away still had its issuance recorded (and audited).
            let _ = reply.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::test_support::{create_tenant_t, issuance};
    use crate::store::AuditQuery;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_issuances_commit_independently_and_keep_the_audit_chain() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        create_tenant_t(store.as_ref());
        let queue = Arc::new(IssueQueue::start(store.clone()).unwrap());
        let mut tasks = Vec::new();
        for i in 0..200u8 {
            let queue = queue.clone();
            // Every nonce is used twice: exactly one of each pair may win.
            let once = [i % 100; 32];
            tasks.push(tokio::spawn(async move {
                queue.issue(issuance(&format!("jti-{i}"), Some(once))).await
            }));
        }
        let mut won = 0;
        for task in tasks {
            if task.await.unwrap().unwrap() {
                won += 1;
            }
        }
        assert_eq!(won, 100, "one issuance per single-use value");
        // A failing issuance (a duplicate token id) fails alone within its batch.
        assert!(queue.issue(issuance("dup", None)).await.unwrap());
        let results = store.issue_tokens(&[issuance("dup", None), issuance("fresh", None)]);
        assert!(results[0].is_err(), "{:?}", results[0]);
        assert!(matches!(results[1], Ok(true)));
        let entries = store
            .audit(&AuditQuery {
                tenant: None,
                after_seq: 0,
                limit: 1000,
            })
            .unwrap();
        let issued = entries
            .iter()
            .filter(|e| e.entry.action == "token.issue")
            .count();
        assert_eq!(issued, 102, "only the winners (and dup, fresh) are audited");
        assert!(crate::audit::verify_chain(&entries).is_ok());
    }
}
