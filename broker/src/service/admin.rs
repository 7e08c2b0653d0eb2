//! The admin API: tenants, admin credentials, policies, agents, bootstrap credentials,
//! revocations, signing keys and the audit log. Every call is authenticated; a tenant-scoped
//! credential sees and touches only its tenant; every change is audited in the same
//! transaction.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Admin, JsonBody};
use super::AppState;
use crate::audit::NewAuditEntry;
use crate::crypto;
use crate::jose;
use crate::policy::Policy;
use crate::store::{AdminCredential, Agent, AuditQuery, BootstrapCredential, Revocation, Tenant};

/// Largest page of audit entries.
const MAX_AUDIT_PAGE: i64 = 10_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants", post(create_tenant).get(list_tenants))
        .route(
            "/v1/admin/tenants/{tenant}/admin-credentials",
            post(create_admin_credential),
        )
        .route(
            "/v1/admin/tenants/{tenant}/policies/{class}",
            get(get_policy).put(put_policy),
        )
        .route(
            "/v1/admin/tenants/{tenant}/agents",
            post(create_agent).get(list_agents),
        )
        .route(
            "/v1/admin/tenants/{tenant}/agents/{agent}/bootstrap-credentials",
            post(issue_bootstrap),
        )
        .route(
            "/v1/admin/tenants/{tenant}/bootstrap-credentials/{id}",
            delete(revoke_bootstrap),
        )
        .route("/v1/admin/tenants/{tenant}/revocations", post(revoke))
        .route("/v1/admin/tenants/{tenant}/audit", get(tenant_audit))
        .route("/v1/admin/audit", get(global_audit))
        .route("/v1/admin/keys/rotate", post(rotate_key))
        .route("/v1/admin/keys/{kid}/revoke", post(revoke_key))
}

/// Ids: 1–64 characters of `[A-Za-z0-9._-]`, so they are safe in paths, logs and audit.
fn check_id(what: &'static str, id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= crate::policy::MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(
            "request.invalid_id",
            format!("{what} must be 1-64 characters of A-Z a-z 0-9 . _ -"),
        ))
    }
}

/// A new secret `<prefix>_<id>.<43 chars of base64url randomness>` (256 bits), its id and
/// its keyed hash.
fn new_secret(state: &AppState, prefix: &str) -> Result<(String, String, [u8; 32]), ApiError> {
    let id = hex::encode(crypto::random::<8>().map_err(|e| ApiError::Internal(e.to_string()))?);
    let random = jose::b64(&crypto::random::<32>().map_err(|e| ApiError::Internal(e.to_string()))?);
    let secret = format!("{prefix}_{id}.{random}");
    let hash = crypto::hmac_sha256(&state.hmac_key, secret.as_bytes());
    Ok((secret, id, hash))
}

async fn existing_tenant(state: &AppState, admin: &Admin, tenant: &str) -> Result<(), ApiError> {
    admin.check_tenant(tenant)?;
    let store = state.store.clone();
    let t = tenant.to_string();
    match state.blocking(move || store.tenant(&t)).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(
            "tenant.unknown",
            format!("no tenant {tenant:?}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    id: String,
}

async fn create_tenant(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(req): JsonBody<NewTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    admin.check_global()?;
    check_id("tenant id", &req.id)?;
    let now = state.now();
    let tenant = Tenant {
        id: req.id.clone(),
        created_at: now,
        revoked_before: None,
    };
    let audit = NewAuditEntry::new(
        now,
        Some(&req.id),
        &admin.actor(),
        "admin.tenant.create",
        &req.id,
    );
    let store = state.store.clone();
    let t = tenant.clone();
    state
        .blocking(move || store.create_tenant(&t, &audit))
        .await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

async fn list_tenants(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Json<Vec<Tenant>>, ApiError> {
    let store = state.store.clone();
    let all = state.blocking(move || store.tenants()).await?;
    Ok(Json(
        all.into_iter()
            .filter(|t| admin.check_tenant(&t.id).is_ok())
            .collect(),
    ))
}

async fn create_admin_credential(
    State(state): State<AppState>,
    admin: Admin,
    Path(tenant): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin.check_global()?;
    existing_tenant(&state, &admin, &tenant).await?;
    let (secret, id, hash) = new_secret(&state, "aba")?;
    let now = state.now();
    let cred = AdminCredential {
        id: id.clone(),
        tenant: Some(tenant.clone()),
        hash,
        revoked_at: None,
    };
    let audit = NewAuditEntry::new(
        now,
        Some(&tenant),
        &admin.actor(),
        "admin.credential.create",
        &id,
    );
    let store = state.store.clone();
    state
        .blocking(move || store.add_admin_credential(&cred, &audit))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "tenant": tenant, "credential": secret})),
    ))
}

async fn put_policy(
    State(state): State<AppState>,
    admin: Admin,
    Path((tenant, class)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    check_id("agent class", &class)?;
    existing_tenant(&state, &admin, &tenant).await?;
    Policy::from_json(&body).map_err(|e| ApiError::bad("policy.invalid", e.to_string()))?;
    let now = state.now();
    let audit = NewAuditEntry::new(
        now,
        Some(&tenant),
        &admin.actor(),
        "admin.policy.put",
        &class,
    )
    .details(json!({"policy": body}));
    let store = state.store.clone();
    let (t, c) = (tenant.clone(), class.clone());
    let version = state
        .blocking(move || store.put_policy(&t, &c, &body, now, &audit))
        .await?;
    Ok(Json(
        json!({"tenant": tenant, "class": class, "version": version}),
    ))
}

#[derive(Deserialize)]
struct PolicyQuery {
    version: Option<i64>,
}

async fn get_policy(
    State(state): State<AppState>,
    admin: Admin,
    Path((tenant, class)): Path<(String, String)>,
    Query(q): Query<PolicyQuery>,
) -> Result<Json<Value>, ApiError> {
    existing_tenant(&state, &admin, &tenant).await?;
    let store = state.store.clone();
    let record = state
        .blocking(move || store.policy(&tenant, &class, q.version))
        .await?
        .ok_or_else(|| ApiError::NotFound("policy.unknown", "no such policy".into()))?;
    Ok(Json(
        serde_json::to_value(record).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAgent {
    agent_id: String,
    class: String,
}

async fn create_agent(
    State(state): State<AppState>,
    admin: Admin,
    Path(tenant): Path<String>,
    JsonBody(req): JsonBody<NewAgent>,
) -> Result<(StatusCode, Json<Agent>), ApiError> {
    check_id("agent id", &req.agent_id)?;
    check_id("agent class", &req.class)?;
    existing_tenant(&state, &admin, &tenant).await?;
    let now = state.now();
    let agent = Agent {
        tenant: tenant.clone(),
        agent_id: req.agent_id.clone(),
        class: req.class.clone(),
        created_at: now,
        revoked_before: None,
    };
    let audit = NewAuditEntry::new(
        now,
        Some(&tenant),
        &admin.actor(),
        "admin.agent.create",
        &req.agent_id,
    )
    .details(json!({"class": req.class}));
    let store = state.store.clone();
    let a = agent.clone();
    state
        .blocking(move || store.create_agent(&a, &audit))
        .await?;
    Ok((StatusCode::CREATED, Json(agent)))
}

async fn list_agents(
    State(state): State<AppState>,
    admin: Admin,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<Agent>>, ApiError> {
    existing_tenant(&state, &admin, &tenant).await?;
    let store = state.store.clone();
    Ok(Json(state.blocking(move || store.agents(&tenant)).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewBootstrap {
    /// Lifetime in seconds; none: until revoked.
    #[serde(default)]
    ttl_secs: Option<i64>,
    /// Revoke the agent's other bootstrap credentials (rotation).
    #[serde(default)]
    rotate: bool,
}

async fn issue_bootstrap(
    State(state): State<AppState>,
    admin: Admin,
    Path((tenant, agent)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: NewBootstrap = if body.is_empty() {
        NewBootstrap::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad("request.malformed", format!("invalid JSON body: {e}")))?
    };
    existing_tenant(&state, &admin, &tenant).await?;
    let store = state.store.clone();
    let (t, a) = (tenant.clone(), agent.clone());
    if state.blocking(move || store.agent(&t, &a)).await?.is_none() {
        return Err(ApiError::NotFound(
            "agent.unknown",
            format!("no agent {agent:?}"),
        ));
    }
    if req.ttl_secs.is_some_and(|t| t <= 0) {
        return Err(ApiError::bad(
            "request.invalid",
            "ttl_secs must be positive",
        ));
    }
    let (secret, id, hash) = new_secret(&state, "abs")?;
    let now = state.now();
    let cred = BootstrapCredential {
        id: id.clone(),
        tenant: tenant.clone(),
        agent_id: agent.clone(),
        hash,
        created_at: now,
        expires_at: req.ttl_secs.map(|t| now.saturating_add(t)),
        revoked_at: None,
    };
    let action = if req.rotate {
        "admin.bootstrap.rotate"
    } else {
        "admin.bootstrap.issue"
    };
    let audit = NewAuditEntry::new(now, Some(&tenant), &admin.actor(), action, &agent)
        .details(json!({"credential_id": id, "expires_at": cred.expires_at}));
    let store = state.store.clone();
    let expires_at = cred.expires_at;
    state
        .blocking(move || store.add_bootstrap_credential(&cred, req.rotate, &audit))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "agent_id": agent, "secret": secret, "expires_at": expires_at})),
    ))
}

async fn revoke_bootstrap(
    State(state): State<AppState>,
    admin: Admin,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    existing_tenant(&state, &admin, &tenant).await?;
    let now = state.now();
    let audit = NewAuditEntry::new(
        now,
        Some(&tenant),
        &admin.actor(),
        "admin.bootstrap.revoke",
        &id,
    );
    let store = state.store.clone();
    let (t, i) = (tenant.clone(), id.clone());
    state
        .blocking(move || store.revoke_bootstrap_credential(&t, &i, now, &audit))
        .await?;
    Ok(Json(json!({"revoked": id})))
}

async fn revoke(
    State(state): State<AppState>,
    admin: Admin,
    Path(tenant): Path<String>,
    JsonBody(what): JsonBody<Revocation>,
) -> Result<Json<Value>, ApiError> {
    existing_tenant(&state, &admin, &tenant).await?;
    let now = state.now();
    let (action, subject) = match &what {
        Revocation::Token { jti } => ("admin.revoke.token", jti.clone()),
        Revocation::Agent { agent_id } => ("admin.revoke.agent", agent_id.clone()),
        Revocation::Tenant => ("admin.revoke.tenant", tenant.clone()),
    };
    let audit = NewAuditEntry::new(now, Some(&tenant), &admin.actor(), action, &subject)
        .details(json!({"revoked_before": now}));
    let store = state.store.clone();
    let (t, w) = (tenant.clone(), what.clone());
    state
        .blocking(move || store.revoke(&t, &w, now, &audit))
        .await?;
    Ok(Json(json!({"revoked": what, "at": now})))
}

#[derive(Deserialize)]
struct AuditParams {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    1000
}

async fn tenant_audit(
    State(state): State<AppState>,
    admin: Admin,
    Path(tenant): Path<String>,
    Query(p): Query<AuditParams>,
) -> Result<Json<Value>, ApiError> {
    existing_tenant(&state, &admin, &tenant).await?;
    audit_page(&state, Some(tenant), p).await
}

async fn global_audit(
    State(state): State<AppState>,
    admin: Admin,
    Query(p): Query<AuditParams>,
) -> Result<Json<Value>, ApiError> {
    admin.check_global()?;
    audit_page(&state, None, p).await
}

async fn audit_page(
    state: &AppState,
    tenant: Option<String>,
    p: AuditParams,
) -> Result<Json<Value>, ApiError> {
    let query = AuditQuery {
        tenant,
        after_seq: p.after.max(0),
        limit: p.limit.clamp(1, MAX_AUDIT_PAGE),
    };
    let store = state.store.clone();
    let entries = state.blocking(move || store.audit(&query)).await?;
    Ok(Json(json!({"entries": entries})))
}

async fn rotate_key(State(state): State<AppState>, admin: Admin) -> Result<Json<Value>, ApiError> {
    admin.check_global()?;
    let now = state.now();
    let keys = state.keys.clone();
    let store = state.store.clone();
    let actor = admin.actor();
    let kid = state
        .blocking(move || {
            keys.rotate(store.as_ref(), now, &actor)
                .map_err(|e| ApiError::Internal(e.to_string()))
        })
        .await?;
    Ok(Json(json!({"active_kid": kid})))
}

async fn revoke_key(
    State(state): State<AppState>,
    admin: Admin,
    Path(kid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.check_global()?;
    if state.keys.active().kid == kid {
        return Err(ApiError::Conflict(
            "key.active",
            "rotate first: the active signing key cannot be revoked".into(),
        ));
    }
    let now = state.now();
    let audit = NewAuditEntry::new(now, None, &admin.actor(), "admin.key.revoke", &kid);
    let store = state.store.clone();
    let keys = state.keys.clone();
    let k = kid.clone();
    state
        .blocking(move || {
            store.revoke_signing_key(&k, now, &audit)?;
            keys.reload(store.as_ref())
                .map_err(|e| ApiError::Internal(e.to_string()))
        })
        .await?;
    Ok(Json(json!({"revoked": kid})))
}
