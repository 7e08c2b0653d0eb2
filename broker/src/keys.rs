//! The broker's own keys: token-signing keys (ES256, rotated with overlap) and the server key
//! that bootstrap secrets and admin tokens are hashed with. Private keys live only in files
//! with owner-only permissions under `<data_dir>/keys/` (never in the database, the
//! environment or a log); the database holds the public halves and their lifecycle.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use zeroize::Zeroizing;

use crate::audit::NewAuditEntry;
use crate::crypto::{self, SigningKey};
use crate::jose::EcJwk;
use crate::policy::MAX_TTL_SECS;
use crate::store::{SigningKeyRecord, Store};

/// A key problem at start-up or rotation.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Crypto or store failure.
    #[error("{0}")]
    Other(String),
}

fn file_err(path: &Path, message: impl std::fmt::Display) -> KeyError {
    KeyError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Creates `dir` (mode 0700) if needed and refuses one that others can read.
pub fn ensure_private_dir(dir: &Path) -> Result<(), KeyError> {
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let mode = std::fs::metadata(dir)
        .map_err(|e| file_err(dir, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| file_err(dir, e))?;
    }
    Ok(())
}

/// Writes a new file readable by the owner only; never overwrites.
pub fn write_private_file(path: &Path, data: &[u8]) -> Result<(), KeyError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| file_err(path, e))?;
    file.write_all(data).map_err(|e| file_err(path, e))?;
    file.sync_all().map_err(|e| file_err(path, e))
}

/// Reads a secret file, refusing one that group or others may read.
pub fn read_private_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let meta = std::fs::metadata(path).map_err(|e| file_err(path, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(file_err(
            path,
            format!(
                "permissions {:o} allow group or others to read it; chmod 600",
                meta.permissions().mode() & 0o777
            ),
        ));
    }
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| file_err(path, e))
}

/// Loads the server HMAC key, creating it on first start.
pub fn load_or_create_hmac_key(dir: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let path = dir.join("server-hmac.key");
    if !path.exists() {
        let key = crypto::random::<32>().map_err(|e| KeyError::Other(e.to_string()))?;
        write_private_file(&path, &key)?;
    }
    let key = read_private_file(&path)?;
    if key.len() != 32 {
        return Err(file_err(&path, "server HMAC key must be 32 bytes"));
    }
    Ok(key)
}

/// The key new tokens are signed with.
#[derive(Debug)]
pub struct ActiveKey {
    /// Key id (RFC 7638 thumbprint of its public JWK).
    pub kid: String,
    /// The private key.
    pub key: SigningKey,
}

/// All signing keys the broker knows: the active one and the public halves of the others.
#[derive(Debug)]
pub struct KeyRing {
    dir: PathBuf,
    active: RwLock<Arc<ActiveKey>>,
    records: RwLock<HashMap<String, SigningKeyRecord>>,
}

impl KeyRing {
    /// Loads the keys recorded in the store, creating the first one if there is none.
    pub fn load_or_create(dir: &Path, store: &dyn Store, now: i64) -> Result<Self, KeyError> {
        ensure_private_dir(dir)?;
        let records = store
            .signing_keys()
            .map_err(|e| KeyError::Other(e.to_string()))?;
        let active_record = records
            .iter()
            .rev()
            .find(|r| r.retired_at.is_none() && r.revoked_at.is_none());
        let active = match active_record {
            Some(r) => load_key(dir, &r.kid)?,
            None => create_key(dir, store, now, "broker", false)?,
        };
        let ring = KeyRing {
            dir: dir.to_path_buf(),
            active: RwLock::new(Arc::new(active)),
            records: RwLock::new(HashMap::new()),
        };
        ring.reload(store)?;
        Ok(ring)
    }

    /// Re-reads key lifecycle from the store (rotations and revocations by other replicas).
    pub fn reload(&self, store: &dyn Store) -> Result<(), KeyError> {
        let records = store
            .signing_keys()
            .map_err(|e| KeyError::Other(e.to_string()))?;
        let newest_active = records
            .iter()
            .rev()
            .find(|r| r.retired_at.is_none() && r.revoked_at.is_none())
            .map(|r| r.kid.clone());
        if let Some(kid) = newest_active {
            if self.active().kid != kid {
                let key = load_key(&self.dir, &kid)?;
                if let Ok(mut slot) = self.active.write() {
                    *slot = Arc::new(key);
                }
            }
        }
        if let Ok(mut map) = self.records.write() {
            *map = records.into_iter().map(|r| (r.kid.clone(), r)).collect();
        }
        Ok(())
    }

    /// The key to sign new tokens with.
    pub fn active(&self) -> Arc<ActiveKey> {
        match self.active.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The public point of a key that may still verify tokens (not revoked).
    pub fn verification_key(&self, kid: &str) -> Option<Vec<u8>> {
        let map = self.records.read().ok()?;
        let record = map.get(kid).filter(|r| r.revoked_at.is_none())?;
        let jwk: EcJwk = serde_json::from_str(&record.public_jwk).ok()?;
        jwk.to_point().ok()
    }

    /// The JWKS: every key not revoked whose tokens may still be alive.
    pub fn jwks(&self, now: i64) -> Vec<EcJwk> {
        let Ok(map) = self.records.read() else {
            return Vec::new();
        };
        let mut keys: Vec<_> = map
            .values()
            .filter(|r| r.revoked_at.is_none())
            .filter(|r| r.retired_at.is_none_or(|t| t + MAX_TTL_SECS as i64 >= now))
            .collect();
        keys.sort_by_key(|r| (r.created_at, r.kid.clone()));
        keys.iter()
            .filter_map(|r| serde_json::from_str(&r.public_jwk).ok())
            .collect()
    }

    /// Creates a new active key; the previous ones retire (stay in the JWKS until their tokens
    /// have expired).
    pub fn rotate(&self, store: &dyn Store, now: i64, actor: &str) -> Result<String, KeyError> {
        let key = create_key(&self.dir, store, now, actor, true)?;
        let kid = key.kid.clone();
        if let Ok(mut slot) = self.active.write() {
            *slot = Arc::new(key);
        }
        self.reload(store)?;
        Ok(kid)
    }
}

fn key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("signing-{kid}.p8"))
}

fn load_key(dir: &Path, kid: &str) -> Result<ActiveKey, KeyError> {
    let path = key_path(dir, kid);
    let pkcs8 = read_private_file(&path)?;
    let key = SigningKey::from_pkcs8(&pkcs8).map_err(|e| file_err(&path, e))?;
    Ok(ActiveKey {
        kid: kid.to_string(),
        key,
    })
}

fn create_key(
    dir: &Path,
    store: &dyn Store,
    now: i64,
    actor: &str,
    retire_others: bool,
) -> Result<ActiveKey, KeyError> {
    let (key, pkcs8) = SigningKey::generate().map_err(|e| KeyError::Other(e.to_string()))?;
    let mut jwk =
        EcJwk::from_point(key.public_point()).map_err(|e| KeyError::Other(e.to_string()))?;
    let kid = jwk.jkt().map_err(|e| KeyError::Other(e.to_string()))?;
    write_private_file(&key_path(dir, &kid), &pkcs8)?;
    jwk.kid = Some(kid.clone());
    jwk.use_ = Some("sig".into());
    jwk.alg = Some("ES256".into());
    let record = SigningKeyRecord {
        kid: kid.clone(),
        public_jwk: serde_json::to_string(&jwk).map_err(|e| KeyError::Other(e.to_string()))?,
        created_at: now,
        retired_at: None,
        revoked_at: None,
    };
    let audit = NewAuditEntry::new(now, None, actor, "key.create", &kid);
    store
        .add_signing_key(&record, retire_others.then_some(now), &audit)
        .map_err(|e| KeyError::Other(e.to_string()))?;
    Ok(ActiveKey { kid, key })
}
