//! Records for store tests: tenant `t`, agent `a`, tokens by id.

use super::{Issuance, OnceKind, Store, Tenant, TokenRecord};
use crate::audit::NewAuditEntry;

/// Creates tenant `t` (with its audit entry).
pub fn create_tenant_t(store: &dyn Store) {
    store
        .create_tenant(
            &Tenant {
                id: "t".into(),
                created_at: 0,
                revoked_before: None,
            },
            &NewAuditEntry::new(0, Some("t"), "admin:x", "admin.tenant.create", "t"),
        )
        .unwrap();
}

/// An issuance of token `jti` to `t/a`, optionally consuming challenge `once`.
pub fn issuance(jti: &str, once: Option<[u8; 32]>) -> Issuance {
    Issuance {
        token: TokenRecord {
            jti: jti.into(),
            tenant: "t".into(),
            agent_id: "a".into(),
            kid: "k".into(),
            iat: 1,
            exp: 100,
            attested_at: 1,
            jkt: "j".into(),
            revoked_at: None,
            token_hash: [7; 32],
        },
        audit: NewAuditEntry::new(1, Some("t"), "agent:t/a", "token.issue", jti),
        once: once.map(|h| (OnceKind::Challenge, h, 100)),
    }
}
