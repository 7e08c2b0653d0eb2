//! The agents' unix socket: HTTP/1.1, `GET /v1/token?aud=` for the current token and
//! `POST /v1/dpop` for a proof (by the binding key) to send with it. Every connection's peer
//! is identified with SO_PEERCRED and must be an allowed uid; the socket file itself is 0600
//! (or 0660 with a configured group).

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::UnixListener;

use crate::config::SocketConfig;
use crate::error::Error;
use crate::exchange::Shared;

/// Largest request body (a proof request is a method and a URL).
const MAX_BODY: usize = 16 * 1024;
/// Longest URL a proof may name.
const MAX_URL: usize = 2048;

/// The connecting process, from SO_PEERCRED.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// Its uid, `None` if the kernel gave no credentials.
    pub uid: Option<u32>,
    /// Its pid, when known.
    pub pid: Option<i32>,
}

impl Connected<IncomingStream<'_, UnixListener>> for Caller {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(cred) => Caller {
                uid: Some(cred.uid()),
                pid: cred.pid(),
            },
            Err(_) => Caller {
                uid: None,
                pid: None,
            },
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct SocketState {
    shared: Arc<Shared>,
    allowed_uids: Arc<BTreeSet<u32>>,
    audiences: Arc<Vec<String>>,
}

impl SocketState {
    /// State for `shared`, admitting `allowed_uids`, serving `audiences` (empty: the default).
    pub fn new(shared: Arc<Shared>, allowed_uids: &[u32], audiences: &[String]) -> Self {
        SocketState {
            shared,
            allowed_uids: Arc::new(allowed_uids.iter().copied().collect()),
            audiences: Arc::new(audiences.to_vec()),
        }
    }

    /// The token map key for a requested audience, or why it is not served.
    fn audience(&self, requested: Option<&str>) -> Result<String, ApiError> {
        match requested {
            None | Some("") => Ok(self.audiences.first().cloned().unwrap_or_default()),
            Some(aud) if self.audiences.iter().any(|a| a == aud) => Ok(aud.to_string()),
            Some(_) => Err(ApiError(
                StatusCode::NOT_FOUND,
                "audience.unknown",
                "this sidecar holds no token for that audience (see broker.audiences)",
            )),
        }
    }
}

/// An error answer: `{"error": {"code", "message"}}`.
#[derive(Debug)]
struct ApiError(StatusCode, &'static str, &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.0,
            Json(json!({"error": {"code": self.1, "message": self.2}})),
        )
            .into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

fn unavailable() -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "token.unavailable",
        "no valid token yet (attesting, or the broker is unreachable); retry shortly",
    )
}

/// The router, with the caller check in front of every route.
pub fn router(state: SocketState) -> Router {
    Router::new()
        .route("/v1/token", get(token))
        .route("/v1/dpop", post(proof))
        .route("/healthz", get(health))
        .layer(middleware::from_fn_with_state(state.clone(), admit))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn admit(
    State(state): State<SocketState>,
    ConnectInfo(caller): ConnectInfo<Caller>,
    request: Request,
    next: Next,
) -> Response {
    match caller.uid {
        Some(uid) if state.allowed_uids.contains(&uid) => next.run(request).await,
        _ => {
            tracing::warn!(uid = ?caller.uid, pid = ?caller.pid, path = %request.uri().path(), "caller refused");
            ApiError(
                StatusCode::FORBIDDEN,
                "caller.forbidden",
                "this uid may not use the sidecar (socket.allowed_uids)",
            )
            .into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    aud: Option<String>,
}

async fn token(
    State(state): State<SocketState>,
    ConnectInfo(caller): ConnectInfo<Caller>,
    Query(query): Query<TokenQuery>,
) -> Result<Response, ApiError> {
    let audience = state.audience(query.aud.as_deref())?;
    let current = state.shared.current(&audience).ok_or_else(unavailable)?;
    tracing::debug!(uid = ?caller.uid, audience = %audience, "token served");
    Ok(Json(json!({
        "access_token": current.token.as_str(),
        "token_type": "DPoP",
        "expires_in": current.expires_in,
        "scope": current.scope,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofRequest {
    method: String,
    url: String,
    #[serde(default)]
    aud: Option<String>,
}

async fn proof(
    State(state): State<SocketState>,
    ConnectInfo(caller): ConnectInfo<Caller>,
    body: Result<Json<ProofRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "request.malformed",
            "body must be JSON {\"method\", \"url\", \"aud\"?}",
        )
    })?;
    let method_ok = !request.method.is_empty()
        && request.method.len() <= 16
        && request.method.bytes().all(|b| b.is_ascii_uppercase());
    let url_ok = request.url.len() <= MAX_URL
        && (request.url.starts_with("https://") || request.url.starts_with("http://"))
        && !request.url.chars().any(char::is_control);
    if !method_ok || !url_ok {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "request.invalid",
            "method must be an uppercase HTTP method and url an http(s) URL",
        ));
    }
    let audience = state.audience(request.aud.as_deref())?;
    let current = state.shared.current(&audience).ok_or_else(unavailable)?;
    let shared = state.shared.clone();
    let token = current.token.clone();
    let signed = tokio::task::spawn_blocking(move || {
        shared.dpop_proof(&request.method, &request.url, Some(&token))
    })
    .await;
    let proof = match signed {
        Ok(Ok(proof)) => proof,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "signing a DPoP proof failed");
            return Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "signer.unavailable",
                "the binding key could not sign; see the sidecar log",
            ));
        }
        Err(_) => return Err(unavailable()),
    };
    tracing::debug!(uid = ?caller.uid, audience = %audience, "proof served");
    Ok(Json(json!({
        "access_token": current.token.as_str(),
        "token_type": "DPoP",
        "dpop": proof,
        "expires_in": current.expires_in,
    }))
    .into_response())
}

async fn health(State(state): State<SocketState>) -> Response {
    let audience = state.audience(None).unwrap_or_default();
    let ready = state.shared.current(&audience).is_some();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"token": if ready { "held" } else { "none" }})),
    )
        .into_response()
}

/// Creates the socket: removes a stale socket left by a previous run (never another kind of
/// file), binds, and restricts it to 0600, or to 0660 owned by the configured group.
pub fn bind(config: &SocketConfig) -> Result<std::os::unix::net::UnixListener, Error> {
    let path = &config.path;
    let fail = |message: String| Error::Socket {
        path: path.clone(),
        message,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(fail("another process is serving this socket".into()));
            }
            std::fs::remove_file(path)
                .map_err(|e| fail(format!("removing the stale socket: {e}")))?;
        }
        Ok(_) => {
            return Err(fail(
                "exists and is not a socket; refusing to replace it".into(),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    let gid = config
        .group
        .as_deref()
        .map(group_id)
        .transpose()
        .map_err(fail)?;
    let listener =
        std::os::unix::net::UnixListener::bind(path).map_err(|e| fail(format!("bind: {e}")))?;
    let mode = if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| fail(format!("chown: {e}")))?;
        0o660
    } else {
        0o600
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| fail(format!("chmod: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| fail(e.to_string()))?;
    Ok(listener)
}

/// A group name (from /etc/group) or a numeric gid.
fn group_id(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let text = std::fs::read_to_string("/etc/group").map_err(|e| format!("/etc/group: {e}"))?;
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let gid = fields.nth(1)?.parse::<u32>().ok()?;
            (name == group).then_some(gid)
        })
        .next()
        .ok_or_else(|| format!("socket.group {group:?}: no such group"))
}

/// Serves `router` on `listener` until `shutdown` completes, then removes the socket file.
pub async fn serve(
    listener: std::os::unix::net::UnixListener,
    path: &Path,
    state: SocketState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let fail = |message: String| Error::Socket {
        path: PathBuf::from(path),
        message,
    };
    let listener = UnixListener::from_std(listener).map_err(|e| fail(e.to_string()))?;
    let app = router(state).into_make_service_with_connect_info::<Caller>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| fail(e.to_string()));
    let _ = std::fs::remove_file(path);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_replaces_only_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let config = SocketConfig {
            path: dir.path().join("s.sock"),
            allowed_uids: vec![0],
            group: None,
        };
        let live = bind(&config).unwrap();
        let mode = std::fs::metadata(&config.path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let err = bind(&config).unwrap_err().to_string();
        assert!(err.contains("another process"), "{err}");
        drop(live);
        let again = bind(&config).unwrap();
        drop(again);
        std::fs::remove_file(&config.path).unwrap();
        std::fs::write(&config.path, b"not a socket").unwrap();
        let err = bind(&config).unwrap_err().to_string();
        assert!(err.contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&config.path).unwrap(), b"not a socket");
    }

    #[test]
    fn groups_resolve_by_name_or_number() {
        assert_eq!(group_id("0"), Ok(0));
        assert_eq!(group_id("root"), Ok(0));
        assert!(group_id("no-such-group-here").is_err());
    }
}
