//! The embedded default store: one SQLite file in WAL mode.
//!
//! `synchronous=NORMAL` in WAL mode loses no committed transaction when the process dies
//! (kill -9): a commit is in the WAL file before the call returns. Only a power loss can cost
//! the last transactions; set `synchronous = "full"` in the config where that matters.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use super::checkpoint::Checkpointer;
use super::{
    AdminCredential, Agent, AuditQuery, BootstrapCredential, Issuance, PolicyRecord, Revocation,
    SigningKeyRecord, Store, StoreError, StoreResult, Tenant, TokenRecord, TokenState,
    TpmEnrollment, UseOnce,
};
use crate::audit::{self, AuditEntry, NewAuditEntry};

/// The schema, applied idempotently at start.
const SCHEMA: &str = include_str!("schema.sql");
/// Schema version stored in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 3;

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Checkpoints the WAL of a file database in the background (none in memory).
    _checkpointer: Option<Checkpointer>,
    /// An exclusive lock on `<database>.lock` while this store is open (none in memory).
    _lock: Option<std::fs::File>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(err, _)
            if err.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict
        }
        other => StoreError::Database(other.to_string()),
    }
}

fn hash32(bytes: Vec<u8>) -> StoreResult<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("hash is not 32 bytes".into()))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file; `full_sync` trades speed for durability
    /// across power loss. One broker process owns a database file: a second one opening it is
    /// refused.
    pub fn open(path: &Path, full_sync: bool) -> StoreResult<Self> {
        let lock = lock_database(path)?;
        let conn = open_file(path)?;
        let mut store = Self::configure(conn, full_sync)?;
        store.with(|c| {
            // Checkpoints run on their own connection (store/checkpoint.rs), not in commits.
            c.pragma_update(None, "wal_autocheckpoint", 0).map_err(db)
        })?;
        store._checkpointer = Some(Checkpointer::start(path, store.conn.clone())?);
        store._lock = Some(lock);
        Ok(store)
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> StoreResult<Self> {
        Self::configure(Connection::open_in_memory().map_err(db)?, false)
    }

    fn configure(conn: Connection, full_sync: bool) -> StoreResult<Self> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(
            None,
            "synchronous",
            if full_sync { "FULL" } else { "NORMAL" },
        )
        .map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        let store = SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            _checkpointer: None,
            _lock: None,
        };
        store.migrate()?;
        Ok(store)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::Database("connection lock poisoned".into()))?;
        f(&mut conn)
    }

    /// A write transaction that commits only when `f` returns true (false rolls back).
    fn tx_if(&self, f: impl FnOnce(&Connection) -> StoreResult<bool>) -> StoreResult<bool> {
        self.with(|conn| in_transaction(conn, f))
    }

    fn tx<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        self.with(|conn| {
            let mut out = None;
            in_transaction(conn, |c| {
                out = Some(f(c)?);
                Ok(true)
            })?;
            out.ok_or_else(|| StoreError::Database("transaction produced nothing".into()))
        })
    }
}

/// Opens a connection to the database file with SQLite's `unix-excl` VFS: the process takes
/// the file's lock once and keeps the WAL index in its own memory, so connections in this
/// process (the store's and the checkpointer's) share the file without a `fcntl` lock and
/// unlock per transaction, and other processes cannot open it while the broker runs.
pub(super) fn open_file(path: &Path) -> StoreResult<Connection> {
    use rusqlite::OpenFlags;
    Connection::open_with_flags_and_vfs(path, OpenFlags::default(), c"unix-excl").map_err(db)
}

/// Takes the exclusive lock on `<path>.lock` (released when the file closes, also when the
/// process dies).
fn lock_database(path: &Path) -> StoreResult<std::fs::File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .map_err(|e| StoreError::Database(format!("{}: {e}", Path::new(&name).display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Database(format!(
            "{} is in use by another broker process",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Database(format!(
            "{}: cannot lock: {e}",
            Path::new(&name).display()
        ))),
    }
}

/// Runs `f` in a `BEGIN IMMEDIATE` transaction, committing when it returns true and rolling
/// back when it returns false or fails. The three statements are prepared once per connection
/// (rusqlite's `Transaction` would parse them on every call, a measurable share of an
/// issuance).
fn in_transaction(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<bool>,
) -> StoreResult<bool> {
    let run = |sql: &str| -> StoreResult<()> {
        conn.prepare_cached(sql)
            .map_err(db)?
            .execute([])
            .map_err(db)?;
        Ok(())
    };
    if !conn.is_autocommit() {
        // A transaction left open by a failed rollback: end it before starting ours.
        let _ = run("ROLLBACK");
    }
    run("BEGIN IMMEDIATE")?;
    let result = f(conn);
    match result {
        Ok(true) => match run("COMMIT") {
            Ok(()) => Ok(true),
            Err(e) => {
                let _ = run("ROLLBACK");
                Err(e)
            }
        },
        other => {
            run("ROLLBACK")?;
            other
        }
    }
}

/// Inside a transaction: the single-use value (false if already used), the token, its audit
/// entry.
fn record_issuance(
    tx: &Connection,
    t: &TokenRecord,
    audit: &NewAuditEntry,
    once: Option<UseOnce<'_>>,
) -> StoreResult<bool> {
    if let Some(once) = once {
        if !use_once(tx, once)? {
            return Ok(false);
        }
    }
    tx.prepare_cached(
        "INSERT INTO tokens (jti, tenant, agent_id, kid, iat, exp, attested_at, jkt, token_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .map_err(db)?
    .execute(params![
        t.jti,
        t.tenant,
        t.agent_id,
        t.kid,
        t.iat,
        t.exp,
        t.attested_at,
        t.jkt,
        t.token_hash.as_slice()
    ])
    .map_err(db)?;
    append(tx, audit)?;
    Ok(true)
}

/// Records a single-use value inside `tx`; false if it was already used.
fn use_once(tx: &Connection, once: UseOnce<'_>) -> StoreResult<bool> {
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO used_once (expires_at, kind, hash) VALUES (?1, ?2, ?3)",
        )
        .map_err(db)?
        .execute(params![
            once.expires_at,
            once.kind as i64,
            once.hash.as_slice()
        ])
        .map_err(db)?;
    Ok(inserted == 1)
}

/// Appends an audit entry inside `tx`, chaining it to the current head.
fn append(tx: &Connection, entry: &NewAuditEntry) -> StoreResult<()> {
    let head: Option<(i64, Vec<u8>)> = tx
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        .map_err(db)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(db)?;
    let (seq, prev) = match head {
        Some((seq, hash)) => (seq + 1, hash32(hash)?),
        None => (1, audit::GENESIS),
    };
    let hash = audit::entry_hash(seq, entry, &prev);
    tx.prepare_cached("INSERT INTO audit (seq, at, tenant, actor, action, subject, decision, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)").map_err(db)?.execute(params![
            seq,
            entry.at,
            entry.tenant,
            entry.actor,
            entry.action,
            entry.subject,
            entry.decision,
            entry.details.to_string(),
            prev.as_slice(),
            hash.as_slice()
        ],
    )
    .map_err(db)?;
    Ok(())
}

fn tenant_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: r.get(0)?,
        created_at: r.get(1)?,
        revoked_before: r.get(2)?,
    })
}

fn agent_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Agent> {
    Ok(Agent {
        tenant: r.get(0)?,
        agent_id: r.get(1)?,
        class: r.get(2)?,
        created_at: r.get(3)?,
        revoked_before: r.get(4)?,
    })
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        jti: r.get(0)?,
        tenant: r.get(1)?,
        agent_id: r.get(2)?,
        kid: r.get(3)?,
        iat: r.get(4)?,
        exp: r.get(5)?,
        attested_at: r.get(6)?,
        jkt: r.get(7)?,
        revoked_at: r.get(8)?,
        token_hash: [0; 32],
    })
}

impl Store for SqliteStore {
    fn migrate(&self) -> StoreResult<()> {
        self.with(|conn| {
            let version: i64 = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(db)?;
            if version > SCHEMA_VERSION {
                return Err(StoreError::Database(format!(
                    "database schema version {version} is newer than this broker ({SCHEMA_VERSION})"
                )));
            }
            // The whole upgrade is one transaction: a crash leaves the old version intact.
            conn.execute_batch("BEGIN IMMEDIATE").map_err(db)?;
            let upgraded = (|| {
                if version == 1 {
                    // v2 stores the hash of each issued token; tokens issued before cannot be
                    // authenticated any more and read as inactive.
                    conn.execute_batch(
                        "ALTER TABLE tokens ADD COLUMN token_hash BLOB NOT NULL DEFAULT x''",
                    )
                    .map_err(db)?;
                }
                if version == 2 {
                    // v3 keys used_once by expiry first; the rows move over unchanged. (A
                    // DPoP proof recorded in the last two minutes before the upgrade was keyed
                    // by its arrival, not its iat, so a replay of it would not be found; it
                    // could only mint a token bound to the same key, useless without it.)
                    conn.execute_batch("ALTER TABLE used_once RENAME TO used_once_v2")
                        .map_err(db)?;
                }
                conn.execute_batch(SCHEMA).map_err(db)?;
                if version == 2 {
                    conn.execute_batch(
                        "INSERT INTO used_once (expires_at, kind, hash)
                             SELECT expires_at, kind, hash FROM used_once_v2;
                         DROP TABLE used_once_v2;",
                    )
                    .map_err(db)?;
                }
                conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(db)
            })();
            match upgraded {
                Ok(()) => conn.execute_batch("COMMIT").map_err(db),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(e)
                }
            }
        })
    }

    fn create_tenant(&self, tenant: &Tenant, audit: &NewAuditEntry) -> StoreResult<()> {
        self.tx(|tx| {
            tx.prepare_cached("INSERT INTO tenants (id, created_at) VALUES (?1, ?2)")
                .map_err(db)?
                .execute(params![tenant.id, tenant.created_at])
                .map_err(db)?;
            append(tx, audit)
        })
    }

    fn tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
        self.with(|c| {
            c.prepare_cached("SELECT id, created_at, revoked_before FROM tenants WHERE id = ?1")
                .map_err(db)?
                .query_row([id], tenant_row)
                .optional()
                .map_err(db)
        })
    }

    fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.with(|c| {
            let mut stmt = c
                .prepare_cached("SELECT id, created_at, revoked_before FROM tenants ORDER BY id")
                .map_err(db)?;
            let rows = stmt.query_map([], tenant_row).map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
    }

    fn add_admin_credential(
        &self,
        cred: &AdminCredential,
        audit: &NewAuditEntry,
    ) -> StoreResult<()> {
        self.tx(|tx| {
            tx.prepare_cached("INSERT INTO admin_credentials (id, tenant, hash, created_at) VALUES (?1, ?2, ?3, ?4)").map_err(db)?.execute(params![cred.id, cred.tenant, cred.hash.as_slice(), audit.at],
            )
            .map_err(db)?;
            append(tx, audit)
        })
    }

    fn admin_credential(&self, id: &str) -> StoreResult<Option<AdminCredential>> {
        let row = self.with(|c| {
            c.prepare_cached(
                "SELECT id, tenant, hash, revoked_at FROM admin_credentials WHERE id = ?1",
            )
            .map_err(db)?
            .query_row([id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, Vec<u8>>(2)?, r.get(3)?))
            })
            .optional()
            .map_err(db)
        })?;
        row.map(|(id, tenant, hash, revoked_at)| {
            Ok(AdminCredential {
                id,
                tenant,
                hash: hash32(hash)?,
                revoked_at,
            })
        })
        .transpose()
    }

    fn put_policy(
        &self,
        tenant: &str,
        class: &str,
        body: &serde_json::Value,
        now: i64,
        audit: &NewAuditEntry,
    ) -> StoreResult<i64> {
        self.tx(|tx| {
            let version: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM policies WHERE tenant = ?1 AND class = ?2",
                    params![tenant, class],
                    |r| r.get(0),
                )
                .map_err(db)?;
            tx.prepare_cached("INSERT INTO policies (tenant, class, version, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5)").map_err(db)?.execute(params![tenant, class, version, body.to_string(), now],
            )
            .map_err(db)?;
            let mut audit = audit.clone();
            if let serde_json::Value::Object(map) = &mut audit.details {
                map.insert("version".into(), version.into());
            }
            append(tx, &audit)?;
            Ok(version)
        })
    }

    fn latest_policy_version(&self, tenant: &str, class: &str) -> StoreResult<Option<i64>> {
        self.with(|c| {
            c.prepare_cached("SELECT MAX(version) FROM policies WHERE tenant = ?1 AND class = ?2")
                .map_err(db)?
                .query_row(params![tenant, class], |r| r.get(0))
                .map_err(db)
        })
    }

    fn policy(
        &self,
        tenant: &str,
        class: &str,
        version: Option<i64>,
    ) -> StoreResult<Option<PolicyRecord>> {
        let row = self.with(|c| {
            let q = "SELECT tenant, class, version, body, created_at FROM policies
                     WHERE tenant = ?1 AND class = ?2 AND (?3 IS NULL OR version = ?3)
                     ORDER BY version DESC LIMIT 1";
            c.prepare_cached(q)
                .map_err(db)?
                .query_row(params![tenant, class, version], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get::<_, String>(3)?,
                        r.get(4)?,
                    ))
                })
                .optional()
                .map_err(db)
        })?;
        row.map(|(tenant, class, version, body, created_at)| {
            Ok(PolicyRecord {
                tenant,
                class,
                version,
                body: serde_json::from_str(&body)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                created_at,
            })
        })
        .transpose()
    }

    fn create_agent(&self, agent: &Agent, audit: &NewAuditEntry) -> StoreResult<()> {
        self.tx(|tx| {
            tx.prepare_cached(
                "INSERT INTO agents (tenant, agent_id, class, created_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(db)?
            .execute(params![
                agent.tenant,
                agent.agent_id,
                agent.class,
                agent.created_at
            ])
            .map_err(db)?;
            append(tx, audit)
        })
    }

    fn agent(&self, tenant: &str, agent_id: &str) -> StoreResult<Option<Agent>> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT tenant, agent_id, class, created_at, revoked_before FROM agents
                 WHERE tenant = ?1 AND agent_id = ?2",
            )
            .map_err(db)?
            .query_row(params![tenant, agent_id], agent_row)
            .optional()
            .map_err(db)
        })
    }

    fn agents(&self, tenant: &str) -> StoreResult<Vec<Agent>> {
        self.with(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT tenant, agent_id, class, created_at, revoked_before FROM agents
                     WHERE tenant = ?1 ORDER BY agent_id",
                )
                .map_err(db)?;
            let rows = stmt.query_map([tenant], agent_row).map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
    }

    fn add_bootstrap_credential(
        &self,
        cred: &BootstrapCredential,
        replace: bool,
        audit: &NewAuditEntry,
    ) -> StoreResult<()> {
        self.tx(|tx| {
            if replace {
                tx.prepare_cached("UPDATE bootstrap_credentials SET revoked_at = ?3
                     WHERE tenant = ?1 AND agent_id = ?2 AND revoked_at IS NULL").map_err(db)?.execute(params![cred.tenant, cred.agent_id, cred.created_at],
                )
                .map_err(db)?;
            }
            tx.prepare_cached("INSERT INTO bootstrap_credentials (id, tenant, agent_id, hash, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)").map_err(db)?.execute(params![
                    cred.id,
                    cred.tenant,
                    cred.agent_id,
                    cred.hash.as_slice(),
                    cred.created_at,
                    cred.expires_at
                ],
            )
            .map_err(db)?;
            append(tx, audit)
        })
    }

    fn bootstrap_credential(&self, id: &str) -> StoreResult<Option<BootstrapCredential>> {
        let row = self.with(|c| {
            c.prepare_cached(
                "SELECT id, tenant, agent_id, hash, created_at, expires_at, revoked_at
                 FROM bootstrap_credentials WHERE id = ?1",
            )
            .map_err(db)?
            .query_row([id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .optional()
            .map_err(db)
        })?;
        row.map(
            |(id, tenant, agent_id, hash, created_at, expires_at, revoked_at)| {
                Ok(BootstrapCredential {
                    id,
                    tenant,
                    agent_id,
                    hash: hash32(hash)?,
                    created_at,
                    expires_at,
                    revoked_at,
                })
            },
        )
        .transpose()
    }

    fn revoke_bootstrap_credential(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
        audit: &NewAuditEntry,
    ) -> StoreResult<()> {
        self.tx(|tx| {
            let n = tx
                .execute(
                    "UPDATE bootstrap_credentials SET revoked_at = COALESCE(revoked_at, ?3)
                     WHERE tenant = ?1 AND id = ?2",
                    params![tenant, id, now],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            append(tx, audit)
        })
    }

    fn start_tpm_enrollment(&self, e: &TpmEnrollment, audit: &NewAuditEntry) -> StoreResult<()> {
        self.tx(|tx| {
            tx.prepare_cached(
                "INSERT INTO tpm_enrollments (id, tenant, agent_id, ak_public, ek_sha256, secret_hash, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(db)?
            .execute(params![
                e.id,
                e.tenant,
                e.agent_id,
                e.ak_public,
                e.ek_sha256.as_slice(),
                e.secret_hash.as_slice(),
                e.expires_at
            ])
            .map_err(db)?;
            append(tx, audit)
        })
    }

    fn tpm_enrollment(&self, id: &str) -> StoreResult<Option<TpmEnrollment>> {
        let row = self.with(|c| {
            c.prepare_cached(
                "SELECT id, tenant, agent_id, ak_public, ek_sha256, secret_hash, expires_at, completed_at
                 FROM tpm_enrollments WHERE id = ?1",
            )
            .map_err(db)?
            .query_row([id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .optional()
            .map_err(db)
        })?;
        row.map(
            |(id, tenant, agent_id, ak_public, ek, secret, expires_at, completed_at)| {
                Ok(TpmEnrollment {
                    id,
                    tenant,
                    agent_id,
                    ak_public,
                    ek_sha256: hash32(ek)?,
                    secret_hash: hash32(secret)?,
                    expires_at,
                    completed_at,
                })
            },
        )
        .transpose()
    }

    fn complete_tpm_enrollment(
        &self,
        id: &str,
        now: i64,
        audit: &NewAuditEntry,
    ) -> StoreResult<bool> {
        self.tx_if(|tx| {
            let done = tx
                .prepare_cached(
                    "UPDATE tpm_enrollments SET completed_at = ?2 WHERE id = ?1 AND completed_at IS NULL",
                )
                .map_err(db)?
                .execute(params![id, now])
                .map_err(db)?;
            if done == 0 {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT OR REPLACE INTO agent_aks (tenant, agent_id, ak_public, ek_sha256, enrolled_at)
                 SELECT tenant, agent_id, ak_public, ek_sha256, ?2 FROM tpm_enrollments WHERE id = ?1",
            )
            .map_err(db)?
            .execute(params![id, now])
            .map_err(db)?;
            append(tx, audit)?;
            Ok(true)
        })
    }

    fn agent_ak(&self, tenant: &str, agent_id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.with(|c| {
            c.prepare_cached("SELECT ak_public FROM agent_aks WHERE tenant = ?1 AND agent_id = ?2")
                .map_err(db)?
                .query_row(params![tenant, agent_id], |r| r.get(0))
                .optional()
                .map_err(db)
        })
    }

    fn was_used(&self, once: UseOnce<'_>) -> StoreResult<bool> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT 1 FROM used_once WHERE expires_at = ?1 AND kind = ?2 AND hash = ?3",
            )
            .map_err(db)?
            .query_row(
                params![once.expires_at, once.kind as i64, once.hash.as_slice()],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(db)
        })
    }

    fn ping(&self) -> StoreResult<()> {
        self.with(|c| {
            c.prepare_cached("SELECT 1")
                .map_err(db)?
                .query_row([], |_| Ok(()))
                .map_err(db)
        })
    }

    fn issue_token(
        &self,
        t: &TokenRecord,
        audit: &NewAuditEntry,
        once: Option<UseOnce<'_>>,
    ) -> StoreResult<bool> {
        self.tx_if(|tx| record_issuance(tx, t, audit, once))
    }

    /// One transaction for the whole batch. An issuance whose single-use value was already
    /// used writes nothing (that check comes first), so it needs no rollback; if any issuance
    /// fails outright, the batch's transaction is rolled back and each issuance is retried in
    /// its own, so a failure stays with the issuance that caused it. The audit chain continues
    /// from the last entry that stayed.
    fn issue_tokens(&self, batch: &[Issuance]) -> Vec<StoreResult<bool>> {
        let record = |c: &Connection, item: &Issuance| {
            let once = item.once.as_ref().map(|(kind, hash, expires_at)| UseOnce {
                kind: *kind,
                hash,
                expires_at: *expires_at,
            });
            record_issuance(c, &item.token, &item.audit, once)
        };
        let mut results: Vec<StoreResult<bool>> = Vec::with_capacity(batch.len());
        let together = self.with(|conn| {
            in_transaction(conn, |c| {
                for item in batch {
                    results.push(Ok(record(c, item)?));
                }
                Ok(true)
            })
        });
        if together.is_ok() {
            return results;
        }
        batch
            .iter()
            .map(|item| self.tx_if(|c| record(c, item)))
            .collect()
    }

    fn token_state(&self, jti: &str) -> StoreResult<Option<TokenState>> {
        let row = self.with(|c| {
            c.prepare_cached(
                "SELECT t.jti, t.tenant, t.agent_id, t.kid, t.iat, t.exp, t.attested_at, t.jkt,
                        t.revoked_at, t.token_hash, n.revoked_before, a.revoked_before
                 FROM tokens t
                 JOIN tenants n ON n.id = t.tenant
                 JOIN agents a ON a.tenant = t.tenant AND a.agent_id = t.agent_id
                 WHERE t.jti = ?1",
            )
            .map_err(db)?
            .query_row([jti], |r| {
                Ok((
                    token_row(r)?,
                    r.get::<_, Vec<u8>>(9)?,
                    r.get::<_, Option<i64>>(10)?,
                    r.get::<_, Option<i64>>(11)?,
                ))
            })
            .optional()
            .map_err(db)
        })?;
        let Some((mut record, hash, tenant_revoked_before, agent_revoked_before)) = row else {
            return Ok(None);
        };
        // Rows from before schema v2 have an empty hash and never authenticate.
        record.token_hash = hash.try_into().unwrap_or([0; 32]);
        Ok(Some(TokenState {
            record,
            tenant_revoked_before,
            agent_revoked_before,
        }))
    }

    fn active_tokens(&self, now: i64) -> StoreResult<i64> {
        self.with(|c| {
            c.prepare_cached("SELECT COUNT(*) FROM tokens WHERE exp > ?1 AND revoked_at IS NULL")
                .map_err(db)?
                .query_row([now], |r| r.get(0))
                .map_err(db)
        })
    }

    fn revoke(
        &self,
        tenant: &str,
        what: &Revocation,
        now: i64,
        audit: &NewAuditEntry,
    ) -> StoreResult<()> {
        self.tx(|tx| {
            let n = match what {
                Revocation::Token { jti } => tx
                    .execute(
                        "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?3) WHERE tenant = ?1 AND jti = ?2",
                        params![tenant, jti, now],
                    )
                    .map_err(db)?,
                Revocation::Agent { agent_id } => {
                    tx.prepare_cached("UPDATE bootstrap_credentials SET revoked_at = COALESCE(revoked_at, ?3)
                         WHERE tenant = ?1 AND agent_id = ?2").map_err(db)?.execute(params![tenant, agent_id, now],
                    )
                    .map_err(db)?;
                    tx.prepare_cached("UPDATE agents SET revoked_before = ?3 WHERE tenant = ?1 AND agent_id = ?2").map_err(db)?.execute(params![tenant, agent_id, now],
                    )
                    .map_err(db)?
                }
                Revocation::Tenant => tx
                    .execute(
                        "UPDATE tenants SET revoked_before = ?2 WHERE id = ?1",
                        params![tenant, now],
                    )
                    .map_err(db)?,
            };
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            append(tx, audit)
        })
    }

    fn add_signing_key(
        &self,
        key: &SigningKeyRecord,
        retire_others_at: Option<i64>,
        audit: &NewAuditEntry,
    ) -> StoreResult<()> {
        self.tx(|tx| {
            if let Some(at) = retire_others_at {
                tx.prepare_cached(
                    "UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL",
                )
                .map_err(db)?
                .execute([at])
                .map_err(db)?;
            }
            tx.prepare_cached(
                "INSERT INTO signing_keys (kid, public_jwk, created_at) VALUES (?1, ?2, ?3)",
            )
            .map_err(db)?
            .execute(params![key.kid, key.public_jwk, key.created_at])
            .map_err(db)?;
            append(tx, audit)
        })
    }

    fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.with(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT kid, public_jwk, created_at, retired_at, revoked_at FROM signing_keys
                     ORDER BY created_at, kid",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(SigningKeyRecord {
                        kid: r.get(0)?,
                        public_jwk: r.get(1)?,
                        created_at: r.get(2)?,
                        retired_at: r.get(3)?,
                        revoked_at: r.get(4)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
    }

    fn revoke_signing_key(&self, kid: &str, now: i64, audit: &NewAuditEntry) -> StoreResult<()> {
        self.tx(|tx| {
            let n = tx
                .execute(
                    "UPDATE signing_keys SET revoked_at = COALESCE(revoked_at, ?2),
                            retired_at = COALESCE(retired_at, ?2) WHERE kid = ?1",
                    params![kid, now],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            append(tx, audit)
        })
    }

    fn append_audit(&self, entry: &NewAuditEntry, once: Option<UseOnce<'_>>) -> StoreResult<bool> {
        self.tx_if(|tx| {
            if let Some(once) = once {
                if !use_once(tx, once)? {
                    return Ok(false);
                }
            }
            append(tx, entry)?;
            Ok(true)
        })
    }

    fn audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        self.with(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, at, tenant, actor, action, subject, decision, details, prev_hash, hash
                     FROM audit WHERE seq > ?1 AND (?2 IS NULL OR tenant = ?2)
                     ORDER BY seq LIMIT ?3",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![query.after_seq, query.tenant, query.limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        NewAuditEntry {
                            at: r.get(1)?,
                            tenant: r.get(2)?,
                            actor: r.get(3)?,
                            action: r.get(4)?,
                            subject: r.get(5)?,
                            decision: r.get(6)?,
                            details: serde_json::Value::Null,
                        },
                        r.get::<_, String>(7)?,
                        r.get::<_, Vec<u8>>(8)?,
                        r.get::<_, Vec<u8>>(9)?,
                    ))
                })
                .map_err(db)?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, mut entry, details, prev, hash) = row.map_err(db)?;
                entry.details = serde_json::from_str(&details)
                    .map_err(|e| StoreError::Corrupt(format!("audit {seq} details: {e}")))?;
                out.push(AuditEntry {
                    seq,
                    entry,
                    prev_hash: hex::encode(prev),
                    hash: hex::encode(hash),
                });
            }
            Ok(out)
        })
    }

    fn sweep(&self, now: i64) -> StoreResult<u64> {
        self.tx(|tx| {
            let n = tx
                .prepare_cached("DELETE FROM used_once WHERE expires_at < ?1")
                .map_err(db)?
                .execute([now])
                .map_err(db)?;
            Ok(n as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OnceKind;

    /// A database written by the previous release (schema v2) opens, and what it recorded as
    /// used stays used under the v3 key.
    #[test]
    fn a_version_2_database_migrates_with_its_used_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.db");
        let nonce_hash = [5u8; 32];
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(include_str!("testdata/schema_v2.sql"))
                .unwrap();
            conn.execute(
                "INSERT INTO used_once (kind, hash, expires_at) VALUES (1, ?1, 1000)",
                [nonce_hash.as_slice()],
            )
            .unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
        }
        let once = UseOnce {
            kind: OnceKind::Challenge,
            hash: &nonce_hash,
            expires_at: 1000,
        };
        for _ in 0..2 {
            // Opening twice: the upgrade runs once, then the schema is already current.
            let store = SqliteStore::open(&path, false).unwrap();
            assert!(store.was_used(once).unwrap(), "the v2 record is found");
            let again = store
                .with(|c| in_transaction(c, |tx| use_once(tx, once)))
                .unwrap();
            assert!(!again, "and the value cannot be used again");
            let version: i64 = store
                .with(|c| {
                    c.pragma_query_value(None, "user_version", |r| r.get(0))
                        .map_err(db)
                })
                .unwrap();
            assert_eq!(version, SCHEMA_VERSION);
            let leftover: i64 = store
                .with(|c| {
                    c.query_row(
                        "SELECT COUNT(*) FROM sqlite_master WHERE name = 'used_once_v2'",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(db)
                })
                .unwrap();
            assert_eq!(leftover, 0);
            let table: String = store
                .with(|c| {
                    c.query_row(
                        "SELECT sql FROM sqlite_master WHERE name = 'used_once'",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(db)
                })
                .unwrap();
            assert!(
                table.contains("PRIMARY KEY (expires_at, kind, hash)"),
                "{table}"
            );
        }
    }

    /// A second store (another broker process) on the same file is refused while the first is
    /// open, and allowed once it has closed.
    #[test]
    fn one_store_owns_a_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.db");
        let first = SqliteStore::open(&path, false).unwrap();
        let err = SqliteStore::open(&path, false).unwrap_err();
        assert!(
            err.to_string().contains("in use by another broker"),
            "{err}"
        );
        drop(first);
        SqliteStore::open(&path, false).unwrap();
    }

    /// A database from a newer broker is refused, not silently downgraded.
    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = SqliteStore::open(&path, false).unwrap_err();
        assert!(err.to_string().contains("newer than this broker"), "{err}");
    }

    /// A value is keyed by its expiry too: the same hash under another expiry is another value
    /// (expiry is a function of the value, so a real replay always carries the same one).
    #[test]
    fn single_use_values_are_used_once_and_swept_after_expiry() {
        let store = SqliteStore::in_memory().unwrap();
        let hash = [9u8; 32];
        let once = UseOnce {
            kind: OnceKind::Dpop,
            hash: &hash,
            expires_at: 500,
        };
        assert!(!store.was_used(once).unwrap());
        assert!(store
            .with(|c| in_transaction(c, |tx| use_once(tx, once)))
            .unwrap());
        assert!(store.was_used(once).unwrap());
        assert!(!store
            .was_used(UseOnce {
                kind: OnceKind::Challenge,
                ..once
            })
            .unwrap());
        assert_eq!(store.sweep(500).unwrap(), 0, "not yet past its expiry");
        assert_eq!(store.sweep(501).unwrap(), 1);
        assert!(!store.was_used(once).unwrap());
    }
}
