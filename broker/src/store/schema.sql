-- attest-broker schema, version 3. Tables keyed by random ids are WITHOUT ROWID: one
-- b-tree per table instead of two, so fewer pages per commit. Times are unix seconds; hashes are raw bytes.
CREATE TABLE IF NOT EXISTS tenants (
    id              TEXT PRIMARY KEY,
    created_at      INTEGER NOT NULL,
    revoked_before  INTEGER
);
CREATE TABLE IF NOT EXISTS admin_credentials (
    id          TEXT PRIMARY KEY,
    tenant      TEXT REFERENCES tenants(id),
    hash        BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE TABLE IF NOT EXISTS policies (
    tenant      TEXT NOT NULL REFERENCES tenants(id),
    class       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, class, version)
);
CREATE TABLE IF NOT EXISTS agents (
    tenant          TEXT NOT NULL REFERENCES tenants(id),
    agent_id        TEXT NOT NULL,
    class           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    revoked_before  INTEGER,
    PRIMARY KEY (tenant, agent_id)
);
CREATE TABLE IF NOT EXISTS bootstrap_credentials (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    agent_id    TEXT NOT NULL,
    hash        BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER,
    FOREIGN KEY (tenant, agent_id) REFERENCES agents(tenant, agent_id)
);
-- Used single-use values: challenge nonces (kind 1) and DPoP proof ids (kind 2). Nonces are
-- self-authenticating (MAC and expiry inside), so only their use is stored. The key leads with
-- the expiry, which each value determines (a nonce carries it; a proof's is its signed iat plus
-- the window), so new rows append to the last pages instead of a random page each, and the
-- sweep deletes a range.
CREATE TABLE IF NOT EXISTS used_once (
    expires_at  INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    hash        BLOB NOT NULL,
    PRIMARY KEY (expires_at, kind, hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens (
    jti         TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    agent_id    TEXT NOT NULL,
    kid         TEXT NOT NULL,
    iat         INTEGER NOT NULL,
    exp         INTEGER NOT NULL,
    attested_at INTEGER NOT NULL,
    jkt         TEXT NOT NULL,
    revoked_at  INTEGER,
    token_hash  BLOB NOT NULL   -- SHA-256 of the exact token string issued
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tokens_exp ON tokens(exp);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid         TEXT PRIMARY KEY,
    public_jwk  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER,
    revoked_at  INTEGER
);
CREATE TABLE IF NOT EXISTS audit (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    tenant      TEXT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    decision    TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_tenant ON audit(tenant, seq);
-- TPM AK enrollment: a credential made for (EK, AK name) waits for the secret it protects.
CREATE TABLE IF NOT EXISTS tpm_enrollments (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    agent_id      TEXT NOT NULL,
    ak_public     BLOB NOT NULL,
    ek_sha256     BLOB NOT NULL,
    secret_hash   BLOB NOT NULL,
    expires_at    INTEGER NOT NULL,
    completed_at  INTEGER
);
-- The AK each agent proved lives in its TPM.
CREATE TABLE IF NOT EXISTS agent_aks (
    tenant       TEXT NOT NULL,
    agent_id     TEXT NOT NULL,
    ak_public    BLOB NOT NULL,
    ek_sha256    BLOB NOT NULL,
    enrolled_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, agent_id),
    FOREIGN KEY (tenant, agent_id) REFERENCES agents(tenant, agent_id)
);
