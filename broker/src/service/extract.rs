//! Request extractors: JSON bodies with our error codes, and the two credentials (admin
//! bearer tokens and agent bootstrap secrets).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;
use crate::crypto;
use crate::store::{AdminCredential, BootstrapCredential};

/// The whole body: too large → 413, unreadable → 400 `request.malformed`.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::bad("request.malformed", "could not read the request body")
        }
    })
}

/// The secret in `Authorization: <scheme> <prefix>_<id>.<random>` and its public id.
fn presented_secret(
    parts: &Parts,
    scheme: &str,
    prefix: &str,
    missing: ApiError,
    invalid: impl Fn() -> ApiError,
) -> Result<(zeroize::Zeroizing<String>, String), ApiError> {
    let secret = zeroize::Zeroizing::new(authorization(parts, scheme).ok_or(missing)?.to_string());
    let id = split_secret(&secret, prefix)
        .ok_or_else(&invalid)?
        .to_string();
    Ok((secret, id))
}

/// Whether `secret` hashes (HMAC-SHA-256 under the server key) to `stored`, in constant time.
fn secret_matches(state: &AppState, secret: &str, stored: &[u8; 32]) -> bool {
    crypto::ct_eq(
        &crypto::hmac_sha256(&state.hmac_key, secret.as_bytes()),
        stored,
    )
}

/// A JSON body: malformed → 400 `request.malformed`, too large → 413.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad("request.malformed", format!("invalid JSON body: {e}")))
    }
}

/// A form body (RFC 7662/7009 endpoints).
pub struct FormBody(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for FormBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ApiError::bad("request.malformed", "form body is not UTF-8"))?;
        let mut pairs = Vec::new();
        for part in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((form_decode(k)?, form_decode(v)?));
        }
        Ok(FormBody(pairs))
    }
}

impl FormBody {
    /// The single value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn form_decode(s: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad("request.malformed", "bad form encoding");
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().ok_or_else(bad)?;
                let lo = bytes.next().ok_or_else(bad)?;
                let hex = [hi, lo];
                let text = std::str::from_utf8(&hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(text, 16).map_err(|_| bad())?);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// The value of an `Authorization: <scheme> <value>` header.
pub fn authorization<'a>(parts: &'a Parts, scheme: &str) -> Option<&'a str> {
    let value = parts.headers.get("authorization")?.to_str().ok()?;
    let (got, rest) = value.split_once(' ')?;
    got.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// A secret string `<prefix>_<id>.<random>`: the id (public) and the whole string (to hash).
pub fn split_secret<'a>(secret: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = secret.strip_prefix(prefix)?.strip_prefix('_')?;
    let (id, random) = rest.split_once('.')?;
    (!id.is_empty() && id.len() <= 64 && !random.is_empty() && secret.len() <= 256).then_some(id)
}

/// An authenticated admin.
#[derive(Debug, Clone)]
pub struct Admin(pub AdminCredential);

impl Admin {
    /// `admin:<id>` for the audit log.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.0.id)
    }

    /// Whether this admin may act on `tenant`.
    pub fn check_tenant(&self, tenant: &str) -> Result<(), ApiError> {
        match &self.0.tenant {
            None => Ok(()),
            Some(own) if own == tenant => Ok(()),
            Some(_) => Err(ApiError::Forbidden(
                "auth.tenant_scope",
                "this admin credential is scoped to another tenant".into(),
                Vec::new(),
            )),
        }
    }

    /// Whether this is a global admin.
    pub fn check_global(&self) -> Result<(), ApiError> {
        match self.0.tenant {
            None => Ok(()),
            Some(_) => Err(ApiError::Forbidden(
                "auth.global_only",
                "this operation needs a global admin credential".into(),
                Vec::new(),
            )),
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bad = || ApiError::unauthorized("auth.invalid", "invalid admin credential");
        let missing = ApiError::unauthorized("auth.missing", "admin bearer credential required");
        let (secret, id) = presented_secret(parts, "Bearer", "aba", missing, bad)?;
        let store = state.store.clone();
        let cred = state
            .blocking(move || store.admin_credential(&id))
            .await?
            .ok_or_else(bad)?;
        if !secret_matches(state, secret.as_str(), &cred.hash) || cred.revoked_at.is_some() {
            return Err(bad());
        }
        Ok(Admin(cred))
    }
}

/// An agent authenticated by its bootstrap secret (`Authorization: Bootstrap abs_<id>.<…>`).
#[derive(Debug, Clone)]
pub struct Bootstrap(pub BootstrapCredential);

impl FromRequestParts<AppState> for Bootstrap {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bad = || ApiError::unauthorized("bootstrap.invalid", "invalid bootstrap credential");
        let missing = ApiError::unauthorized("bootstrap.missing", "bootstrap credential required");
        let (secret, id) = presented_secret(parts, "Bootstrap", "abs", missing, bad)?;
        let store = state.store.clone();
        let cred = state
            .blocking(move || store.bootstrap_credential(&id))
            .await?
            .ok_or_else(bad)?;
        if !secret_matches(state, secret.as_str(), &cred.hash) {
            return Err(bad());
        }
        let now = state.now();
        if cred.revoked_at.is_some() {
            return Err(ApiError::unauthorized(
                "bootstrap.revoked",
                "bootstrap credential revoked",
            ));
        }
        if cred.expires_at.is_some_and(|t| t < now) {
            return Err(ApiError::unauthorized(
                "bootstrap.expired",
                "bootstrap credential expired",
            ));
        }
        Ok(Bootstrap(cred))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_format() {
        assert_eq!(split_secret("abs_0123.xyz", "abs"), Some("0123"));
        assert_eq!(split_secret("abs_0123xyz", "abs"), None);
        assert_eq!(split_secret("aba_0123.xyz", "abs"), None);
        assert_eq!(split_secret("abs_.xyz", "abs"), None);
        assert_eq!(split_secret("abs_1.", "abs"), None);
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a%20b+c").unwrap(), "a b c");
        assert!(form_decode("%zz").is_err());
        assert!(form_decode("%4").is_err());
    }
}
