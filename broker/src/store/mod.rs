//! Persistent state behind one trait, so the broker runs on SQLite (one file, the embedded
//! default) or a shared database for several replicas.
//!
//! Methods are synchronous; the service calls them on the blocking pool. Every method that
//! must be atomic with its audit entry takes the entry and writes both in one transaction.

mod checkpoint;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod test_support;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditEntry, NewAuditEntry};

/// A storage failure. Never shown to clients (they get a 500 with a request id); logged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Database(String),
    /// A row that must be unique already exists.
    #[error("already exists")]
    Conflict,
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// Stored data failed to decode.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// A tenant: the unit of isolation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tenant {
    /// Tenant id.
    pub id: String,
    /// Creation time (unix seconds).
    pub created_at: i64,
    /// Every token of this tenant issued before this time is revoked (emergency revocation).
    pub revoked_before: Option<i64>,
}

/// An agent: one host identity within a tenant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Agent {
    /// Tenant id.
    pub tenant: String,
    /// Agent id, unique within the tenant.
    pub agent_id: String,
    /// Agent class: selects the policy.
    pub class: String,
    /// Creation time.
    pub created_at: i64,
    /// Every token of this agent issued before this time is revoked.
    pub revoked_before: Option<i64>,
}

/// A bootstrap credential: the id is public, the secret is stored only as a keyed hash.
#[derive(Debug, Clone)]
pub struct BootstrapCredential {
    /// Public credential id (the prefix of the secret string).
    pub id: String,
    /// Tenant id.
    pub tenant: String,
    /// Agent id.
    pub agent_id: String,
    /// HMAC-SHA-256(server key, secret).
    pub hash: [u8; 32],
    /// Creation time.
    pub created_at: i64,
    /// Expiry time, if any.
    pub expires_at: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
}

/// An admin credential: global (tenant `None`) or scoped to one tenant.
#[derive(Debug, Clone)]
pub struct AdminCredential {
    /// Public id.
    pub id: String,
    /// Tenant scope; `None` is global.
    pub tenant: Option<String>,
    /// HMAC-SHA-256(server key, secret).
    pub hash: [u8; 32],
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
}

/// A stored policy version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyRecord {
    /// Tenant id.
    pub tenant: String,
    /// Agent class the policy applies to.
    pub class: String,
    /// Version, starting at 1.
    pub version: i64,
    /// The policy document (JSON).
    pub body: serde_json::Value,
    /// Creation time.
    pub created_at: i64,
}

/// An issued access token (never its value: only its id and facts).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenRecord {
    /// Token id (`jti`).
    pub jti: String,
    /// Tenant id.
    pub tenant: String,
    /// Agent id (`sub`).
    pub agent_id: String,
    /// Signing key id.
    pub kid: String,
    /// Issued at.
    pub iat: i64,
    /// Expires at.
    pub exp: i64,
    /// When the evidence behind it was verified.
    pub attested_at: i64,
    /// `cnf.jkt`.
    pub jkt: String,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
    /// SHA-256 of the exact token string that was issued: presenting a token whose hash
    /// matches proves it is one of ours without another signature check.
    #[serde(skip)]
    pub token_hash: [u8; 32],
}

/// An issued token with the revocation state of its tenant and agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenState {
    /// The issued token.
    pub record: TokenRecord,
    /// The tenant's revoke-before time.
    pub tenant_revoked_before: Option<i64>,
    /// The agent's revoke-before time.
    pub agent_revoked_before: Option<i64>,
}

/// A signing key's metadata (the private key lives in a file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Key id.
    pub kid: String,
    /// Public JWK (JSON).
    pub public_jwk: String,
    /// Creation time.
    pub created_at: i64,
    /// When it stopped signing new tokens.
    pub retired_at: Option<i64>,
    /// When it was revoked (its tokens are inactive).
    pub revoked_at: Option<i64>,
}

/// A pending TPM AK enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmEnrollment {
    /// Public id.
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// Agent.
    pub agent_id: String,
    /// The AK's public area (TPMT_PUBLIC).
    pub ak_public: Vec<u8>,
    /// SHA-256 of the EK certificate the credential was made for.
    pub ek_sha256: [u8; 32],
    /// HMAC-SHA-256 (server key) of the credential's secret.
    pub secret_hash: [u8; 32],
    /// After this the enrollment cannot be completed.
    pub expires_at: i64,
    /// When it was completed.
    pub completed_at: Option<i64>,
}

/// What a single-use value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnceKind {
    /// A challenge nonce (`/v1/challenge`).
    Challenge = 1,
    /// A DPoP proof id (`jkt|jti`).
    Dpop = 2,
}

/// A single-use value to record, atomically with what it authorises.
#[derive(Debug, Clone, Copy)]
pub struct UseOnce<'a> {
    /// What it is.
    pub kind: OnceKind,
    /// SHA-256 of the value.
    pub hash: &'a [u8; 32],
    /// After this time the value is refused anyway, so the record can go. It must be a
    /// function of the value itself (a nonce's embedded expiry, a proof's signed `iat` plus
    /// the window): it is part of the record's key.
    pub expires_at: i64,
}

/// One token issuance, owned, for [`Store::issue_tokens`] (group commit).
#[derive(Debug, Clone)]
pub struct Issuance {
    /// The token's record.
    pub token: TokenRecord,
    /// Its audit entry.
    pub audit: NewAuditEntry,
    /// A single-use value consumed with it: kind, SHA-256, expiry.
    pub once: Option<(OnceKind, [u8; 32], i64)>,
}

/// A revocation request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revocation {
    /// One token.
    Token {
        /// Token id.
        jti: String,
    },
    /// Every token of one agent issued before now, and its bootstrap credentials.
    Agent {
        /// Agent id.
        agent_id: String,
    },
    /// Every token of the tenant issued before now.
    Tenant,
}

/// Filter for audit queries.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this tenant's entries.
    pub tenant: Option<String>,
    /// Entries with a sequence number above this.
    pub after_seq: i64,
    /// At most this many.
    pub limit: i64,
}

/// The broker's persistent state.
pub trait Store: Send + Sync {
    /// Creates the schema or migrates it to the current version.
    fn migrate(&self) -> StoreResult<()>;

    /// Creates a tenant.
    fn create_tenant(&self, tenant: &Tenant, audit: &NewAuditEntry) -> StoreResult<()>;
    /// One tenant.
    fn tenant(&self, id: &str) -> StoreResult<Option<Tenant>>;
    /// All tenants.
    fn tenants(&self) -> StoreResult<Vec<Tenant>>;

    /// Stores an admin credential.
    fn add_admin_credential(
        &self,
        cred: &AdminCredential,
        audit: &NewAuditEntry,
    ) -> StoreResult<()>;
    /// Looks an admin credential up by id.
    fn admin_credential(&self, id: &str) -> StoreResult<Option<AdminCredential>>;

    /// Stores a new policy version for (tenant, class); returns the version.
    fn put_policy(
        &self,
        tenant: &str,
        class: &str,
        body: &serde_json::Value,
        now: i64,
        audit: &NewAuditEntry,
    ) -> StoreResult<i64>;
    /// The latest version number of a policy, if any.
    fn latest_policy_version(&self, tenant: &str, class: &str) -> StoreResult<Option<i64>>;
    /// The latest (or a given) version of a policy.
    fn policy(
        &self,
        tenant: &str,
        class: &str,
        version: Option<i64>,
    ) -> StoreResult<Option<PolicyRecord>>;

    /// Creates an agent.
    fn create_agent(&self, agent: &Agent, audit: &NewAuditEntry) -> StoreResult<()>;
    /// One agent.
    fn agent(&self, tenant: &str, agent_id: &str) -> StoreResult<Option<Agent>>;
    /// A tenant's agents.
    fn agents(&self, tenant: &str) -> StoreResult<Vec<Agent>>;

    /// Stores a bootstrap credential; with `replace`, revokes the agent's other credentials in
    /// the same transaction (rotation).
    fn add_bootstrap_credential(
        &self,
        cred: &BootstrapCredential,
        replace: bool,
        audit: &NewAuditEntry,
    ) -> StoreResult<()>;
    /// Looks a bootstrap credential up by id.
    fn bootstrap_credential(&self, id: &str) -> StoreResult<Option<BootstrapCredential>>;
    /// Revokes one bootstrap credential of a tenant.
    fn revoke_bootstrap_credential(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
        audit: &NewAuditEntry,
    ) -> StoreResult<()>;

    /// Records a pending TPM AK enrollment.
    fn start_tpm_enrollment(&self, e: &TpmEnrollment, audit: &NewAuditEntry) -> StoreResult<()>;
    /// A TPM AK enrollment by id.
    fn tpm_enrollment(&self, id: &str) -> StoreResult<Option<TpmEnrollment>>;
    /// Completes an enrollment: the agent's AK becomes the enrollment's (replacing any earlier
    /// one). False, changing nothing, if it was already completed.
    fn complete_tpm_enrollment(
        &self,
        id: &str,
        now: i64,
        audit: &NewAuditEntry,
    ) -> StoreResult<bool>;
    /// The AK public area (TPMT_PUBLIC) an agent enrolled, if any.
    fn agent_ak(&self, tenant: &str, agent_id: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Whether a single-use value was already used.
    fn was_used(&self, once: UseOnce<'_>) -> StoreResult<bool>;
    /// Checks the database answers.
    fn ping(&self) -> StoreResult<()>;

    /// Records an issued token and its audit entry atomically. With `once`, first records that
    /// single-use value in the same transaction; returns false, changing nothing, if it was
    /// used before (a replay).
    fn issue_token(
        &self,
        token: &TokenRecord,
        audit: &NewAuditEntry,
        once: Option<UseOnce<'_>>,
    ) -> StoreResult<bool>;
    /// Records several issuances, each as [`Store::issue_token`] would and independently of
    /// the others (one's replay or failure changes nothing of the rest), ideally in one
    /// durable commit. One result per issuance, in order.
    fn issue_tokens(&self, batch: &[Issuance]) -> Vec<StoreResult<bool>> {
        batch
            .iter()
            .map(|i| {
                let once = i.once.as_ref().map(|(kind, hash, expires_at)| UseOnce {
                    kind: *kind,
                    hash,
                    expires_at: *expires_at,
                });
                self.issue_token(&i.token, &i.audit, once)
            })
            .collect()
    }
    /// An issued token and its tenant's and agent's revocation state, by token id.
    fn token_state(&self, jti: &str) -> StoreResult<Option<TokenState>>;
    /// Number of issued tokens not yet expired nor revoked.
    fn active_tokens(&self, now: i64) -> StoreResult<i64>;

    /// Applies a revocation within a tenant.
    fn revoke(
        &self,
        tenant: &str,
        what: &Revocation,
        now: i64,
        audit: &NewAuditEntry,
    ) -> StoreResult<()>;

    /// Records a signing key.
    fn add_signing_key(
        &self,
        key: &SigningKeyRecord,
        retire_others_at: Option<i64>,
        audit: &NewAuditEntry,
    ) -> StoreResult<()>;
    /// All signing keys.
    fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Revokes a signing key.
    fn revoke_signing_key(&self, kid: &str, now: i64, audit: &NewAuditEntry) -> StoreResult<()>;

    /// Appends an audit entry on its own; with `once`, also uses that value in the same
    /// transaction (false, changing nothing, if it was used before).
    fn append_audit(&self, entry: &NewAuditEntry, once: Option<UseOnce<'_>>) -> StoreResult<bool>;
    /// Audit entries in order.
    fn audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;

    /// Removes records of single-use values past their expiry; returns rows removed.
    fn sweep(&self, now: i64) -> StoreResult<u64>;
}
