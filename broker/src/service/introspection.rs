//! Endpoints for relying parties: JWKS, RFC 8414 metadata, RFC 7662 introspection and
//! RFC 7009 revocation.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::attestation::authenticate_token;
use super::error::ApiError;
use super::extract::{Admin, FormBody};
use super::AppState;
use crate::audit::NewAuditEntry;
use crate::store::Revocation;
use crate::tokens;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/v1/introspect", post(introspect))
        .route("/v1/revoke", post(revoke))
}

async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"keys": state.keys.jwks(state.now())}))
}

async fn metadata(State(state): State<AppState>) -> Json<Value> {
    let iss = &state.settings.issuer;
    Json(json!({
        "issuer": iss,
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "token_endpoint": format!("{iss}/v1/attest"),
        "introspection_endpoint": format!("{iss}/v1/introspect"),
        "revocation_endpoint": format!("{iss}/v1/revoke"),
        "token_endpoint_auth_methods_supported": ["bootstrap_secret"],
        "introspection_endpoint_auth_methods_supported": ["bearer"],
        "revocation_endpoint_auth_methods_supported": ["bearer"],
        "dpop_signing_alg_values_supported": ["ES256"],
        "token_types_supported": ["DPoP"],
        "attestation_challenge_endpoint": format!("{iss}/v1/challenge"),
        "token_refresh_endpoint": format!("{iss}/v1/token/refresh"),
    }))
}

/// RFC 7662: `{"active": false}` for anything revoked, expired, unknown, foreign or outside
/// the caller's tenant; the claims for an active token.
async fn introspect(
    State(state): State<AppState>,
    admin: Admin,
    form: FormBody,
) -> Result<Json<Value>, ApiError> {
    let inactive = Json(json!({"active": false}));
    let Some(token) = form.get("token") else {
        return Err(ApiError::bad(
            "request.malformed",
            "token parameter required",
        ));
    };
    let Ok(claims) = authenticate_token(&state, token, state.now()).await? else {
        return Ok(inactive);
    };
    if admin.check_tenant(&claims.tenant).is_err() {
        return Ok(inactive);
    }
    let mut claims =
        serde_json::to_value(&claims).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Value::Object(map) = &mut claims {
        map.insert("active".into(), true.into());
        map.insert("token_type".into(), "DPoP".into());
    }
    Ok(Json(claims))
}

/// RFC 7009: revokes a token the caller may manage; answers 200 whatever the token was
/// (§2.2), so it reveals nothing about unknown tokens.
async fn revoke(
    State(state): State<AppState>,
    admin: Admin,
    form: FormBody,
) -> Result<Json<Value>, ApiError> {
    let Some(token) = form.get("token") else {
        return Err(ApiError::bad(
            "request.malformed",
            "token parameter required",
        ));
    };
    if let Ok(verified) = tokens::verify(&state.keys, &state.settings.issuer, token) {
        let tenant = verified.claims.tenant.clone();
        if admin.check_tenant(&tenant).is_ok() {
            let now = state.now();
            let jti = verified.claims.jti.clone();
            let audit =
                NewAuditEntry::new(now, Some(&tenant), &admin.actor(), "token.revoke", &jti);
            let store = state.store.clone();
            let what = Revocation::Token { jti };
            state
                .blocking(move || match store.revoke(&tenant, &what, now, &audit) {
                    Err(crate::store::StoreError::NotFound) => Ok(()),
                    other => other,
                })
                .await?;
        }
    }
    Ok(Json(json!({})))
}
