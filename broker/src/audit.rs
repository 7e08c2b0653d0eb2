//! The tamper-evident audit log: an append-only chain where each entry carries the SHA-256 of
//! its predecessor. Editing, removing or reordering any entry breaks the chain;
//! [`verify_chain`] says where. (Cutting entries off the end is only visible against a head
//! hash recorded elsewhere: `admin audit verify` prints the head to keep.)
//!
//! No secret and no token value ever goes into an entry: only ids, decisions and reasons.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto;

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// An entry to append (sequence number and hashes are assigned by the store).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NewAuditEntry {
    /// Unix seconds.
    pub at: i64,
    /// Tenant the action concerns, if any.
    pub tenant: Option<String>,
    /// Who acted: `admin:<id>`, `agent:<tenant>/<agent>`, `anonymous`, `broker`.
    pub actor: String,
    /// What happened: `token.issue`, `attest.deny`, `admin.agent.create`, ….
    pub action: String,
    /// What it was done to (agent id, jti, key id…).
    pub subject: String,
    /// `allow`, `deny`, `shadow-deny`, or empty.
    pub decision: String,
    /// Reasons and other facts (never secrets).
    pub details: Value,
}

impl NewAuditEntry {
    /// An entry with empty decision and details.
    pub fn new(at: i64, tenant: Option<&str>, actor: &str, action: &str, subject: &str) -> Self {
        NewAuditEntry {
            at,
            tenant: tenant.map(str::to_string),
            actor: actor.to_string(),
            action: action.to_string(),
            subject: subject.to_string(),
            decision: String::new(),
            details: Value::Null,
        }
    }

    /// Sets the decision.
    pub fn decision(mut self, decision: &str) -> Self {
        self.decision = decision.to_string();
        self
    }

    /// Sets the details.
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// A stored entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// The entry's content.
    #[serde(flatten)]
    pub entry: NewAuditEntry,
    /// Hash of the previous entry (hex).
    pub prev_hash: String,
    /// This entry's hash (hex).
    pub hash: String,
}

/// The fields a hash covers, in a fixed order (`details` keys are sorted by serde_json).
#[derive(Serialize)]
struct Hashed<'a> {
    seq: i64,
    at: i64,
    tenant: &'a Option<String>,
    actor: &'a str,
    action: &'a str,
    subject: &'a str,
    decision: &'a str,
    details: &'a Value,
}

/// SHA-256(prev_hash ‖ canonical JSON of the entry with its sequence number).
pub fn entry_hash(seq: i64, entry: &NewAuditEntry, prev_hash: &[u8; 32]) -> [u8; 32] {
    let canonical = serde_json::to_vec(&Hashed {
        seq,
        at: entry.at,
        tenant: &entry.tenant,
        actor: &entry.actor,
        action: &entry.action,
        subject: &entry.subject,
        decision: &entry.decision,
        details: &entry.details,
    })
    .unwrap_or_default();
    let mut input = prev_hash.to_vec();
    input.extend_from_slice(&canonical);
    crypto::sha256(&input)
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Sequence numbers are not 1, 2, 3, … (an entry was removed or reordered).
    #[error("entry at position {position} has seq {seq}, expected {expected}")]
    Sequence {
        /// Index in the list.
        position: usize,
        /// Its seq.
        seq: i64,
        /// The seq it should have.
        expected: i64,
    },
    /// An entry's prev_hash is not its predecessor's hash.
    #[error("entry {seq}: prev_hash does not match entry {}'s hash", seq - 1)]
    Link {
        /// The entry.
        seq: i64,
    },
    /// An entry's content does not match its hash (it was edited).
    #[error("entry {seq}: content does not match its hash (edited)")]
    Content {
        /// The entry.
        seq: i64,
    },
}

/// Verifies a whole chain from the first entry; returns the head hash (hex) on success.
pub fn verify_chain(entries: &[AuditEntry]) -> Result<String, ChainError> {
    let mut prev = GENESIS;
    for (position, e) in entries.iter().enumerate() {
        let expected = i64::try_from(position)
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        if e.seq != expected {
            return Err(ChainError::Sequence {
                position,
                seq: e.seq,
                expected,
            });
        }
        if e.prev_hash != hex::encode(prev) {
            return Err(ChainError::Link { seq: e.seq });
        }
        let hash = entry_hash(e.seq, &e.entry, &prev);
        if e.hash != hex::encode(hash) {
            return Err(ChainError::Content { seq: e.seq });
        }
        prev = hash;
    }
    Ok(hex::encode(prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let entry =
                    NewAuditEntry::new(seq * 10, Some("t"), "admin:x", "a.b", &format!("s{seq}"))
                        .details(serde_json::json!({"n": seq}));
                let hash = entry_hash(seq, &entry, &prev);
                let e = AuditEntry {
                    seq,
                    entry,
                    prev_hash: hex::encode(prev),
                    hash: hex::encode(hash),
                };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn detects_edit_removal_and_reordering() {
        let good = chain(5);
        assert!(verify_chain(&good).is_ok());
        let mut edited = good.clone();
        edited[2].entry.subject = "other".into();
        assert_eq!(verify_chain(&edited), Err(ChainError::Content { seq: 3 }));
        let mut removed = good.clone();
        removed.remove(1);
        assert!(matches!(
            verify_chain(&removed),
            Err(ChainError::Sequence { .. })
        ));
        let mut renumbered = removed.clone();
        for (i, e) in renumbered.iter_mut().enumerate() {
            e.seq = i as i64 + 1;
        }
        assert!(verify_chain(&renumbered).is_err());
        let mut reordered = good.clone();
        reordered.swap(1, 2);
        assert!(verify_chain(&reordered).is_err());
        let mut details = good;
        details[4].entry.details = serde_json::json!({"n": 6});
        assert_eq!(verify_chain(&details), Err(ChainError::Content { seq: 5 }));
    }
}
