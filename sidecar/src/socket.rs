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
/// Proofs being signed or waiting for the signer at once. A TPM signs one at a time (tens of
/// milliseconds on some chips); beyond this, agents get `429 proof.busy` rather than queueing
/// without bound in front of the exchange loop's own refresh proofs.
const MAX_PENDING_PROOFS: usize = 4;

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
    proof_slots: Arc<tokio::sync::Semaphore>,
}

impl SocketState {
    /// State for `shared`, admitting `allowed_uids`, serving `audiences` (empty: the default).
    pub fn new(shared: Arc<Shared>, allowed_uids: &[u32], audiences: &[String]) -> Self {
        SocketState {
            shared,
            allowed_uids: Arc::new(allowed_uids.iter().copied().collect()),
            audiences: Arc::new(audiences.to_vec()),
            proof_slots: Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_PROOFS)),
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
        if self.0 == StatusCode::SERVICE_UNAVAILABLE || self.0 == StatusCode::TOO_MANY_REQUESTS {
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
    let Ok(permit) = state.proof_slots.clone().try_acquire_owned() else {
        return Err(ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "proof.busy",
            "too many proofs are being signed; retry shortly",
        ));
    };
    let shared = state.shared.clone();
    let token = current.token.clone();
    let signed = tokio::task::spawn_blocking(move || {
        let proof = shared.dpop_proof(&request.method, &request.url, Some(&token));
        drop(permit);
        proof
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
    use crate::backend::Attester;
    use crate::broker::{BrokerApi, Issued};
    use attest_proto::crypto::MemoryKey;
    use attest_proto::EcJwk;
    use axum::body::Body;
    use axum::extract::connect_info::MockConnectInfo;
    use std::time::{Duration, Instant};
    use tower::ServiceExt;

    /// A binding key in memory whose signatures take `delay` (a slow TPM).
    #[derive(Debug)]
    struct SlowSigner {
        key: MemoryKey,
        jwk: EcJwk,
        delay: Duration,
    }

    impl Attester for SlowSigner {
        fn kind(&self) -> &'static str {
            "test"
        }
        fn jwk(&self) -> &EcJwk {
            &self.jwk
        }
        fn evidence(&mut self, _nonce: &[u8]) -> Result<serde_json::Value, Error> {
            Ok(serde_json::Value::Null)
        }
        fn enroll(&mut self, _broker: &BrokerApi) -> Result<(), Error> {
            Ok(())
        }
        fn sign(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
            std::thread::sleep(self.delay);
            Ok(self.key.sign(message)?)
        }
    }

    fn app(delay: Duration, with_token: bool, uid: u32) -> Router {
        let key = MemoryKey::generate().unwrap();
        let jwk = EcJwk::from_point(key.public_point()).unwrap();
        let shared = Arc::new(Shared::new(
            Box::new(SlowSigner { key, jwk, delay }),
            "http://127.0.0.1:1",
        ));
        if with_token {
            let issued = Issued {
                token: zeroize::Zeroizing::new("header.payload.sig".into()),
                expires_in: 60,
                scope: "s".into(),
            };
            shared.store("tools", issued, Instant::now());
        }
        let state = SocketState::new(shared, &[1000], &["tools".to_string()]);
        router(state).layer(MockConnectInfo(Caller {
            uid: Some(uid),
            pid: Some(1),
        }))
    }

    async fn call(
        app: Router,
        method: &str,
        uri: &str,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    fn code(v: &serde_json::Value) -> &str {
        v.pointer("/error/code")
            .and_then(|c| c.as_str())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn the_socket_api_answers_each_case_with_its_code() {
        let proof_body = r#"{"method":"POST","url":"https://tools.example/x"}"#;
        let ok = app(Duration::ZERO, true, 1000);
        let (s, v) = call(ok.clone(), "GET", "/v1/token", "").await;
        assert_eq!(
            (s, v["access_token"].as_str()),
            (StatusCode::OK, Some("header.payload.sig"))
        );
        let (s, v) = call(ok.clone(), "GET", "/v1/token?aud=tools", "").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = call(ok.clone(), "POST", "/v1/dpop", proof_body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["dpop"].as_str().unwrap().split('.').count(), 3);
        let cases = [
            (
                app(Duration::ZERO, true, 1001),
                "GET",
                "/v1/token",
                "",
                StatusCode::FORBIDDEN,
                "caller.forbidden",
            ),
            (
                app(Duration::ZERO, true, 1001),
                "POST",
                "/v1/dpop",
                proof_body,
                StatusCode::FORBIDDEN,
                "caller.forbidden",
            ),
            (
                app(Duration::ZERO, false, 1000),
                "GET",
                "/v1/token",
                "",
                StatusCode::SERVICE_UNAVAILABLE,
                "token.unavailable",
            ),
            (
                ok.clone(),
                "GET",
                "/v1/token?aud=payments",
                "",
                StatusCode::NOT_FOUND,
                "audience.unknown",
            ),
            (
                ok.clone(),
                "POST",
                "/v1/dpop",
                "{",
                StatusCode::BAD_REQUEST,
                "request.malformed",
            ),
            (
                ok.clone(),
                "POST",
                "/v1/dpop",
                r#"{"method":"get","url":"https://x"}"#,
                StatusCode::BAD_REQUEST,
                "request.invalid",
            ),
            (
                ok.clone(),
                "POST",
                "/v1/dpop",
                r#"{"method":"GET","url":"file:///etc/passwd"}"#,
                StatusCode::BAD_REQUEST,
                "request.invalid",
            ),
            (
                ok.clone(),
                "POST",
                "/v1/dpop",
                r#"{"method":"GET","url":"https://x","extra":1}"#,
                StatusCode::BAD_REQUEST,
                "request.malformed",
            ),
        ];
        for (app, method, uri, body, status, expected) in cases {
            let (s, v) = call(app, method, uri, body).await;
            assert_eq!((s, code(&v)), (status, expected), "{method} {uri} {body}");
        }
        let big = format!(
            r#"{{"method":"GET","url":"https://x/{}"}}"#,
            "a".repeat(MAX_BODY)
        );
        let (s, _) = call(ok, "POST", "/v1/dpop", &big).await;
        assert!(s.is_client_error(), "{s}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_proof_requests_is_bounded() {
        let slow = app(Duration::from_millis(200), true, 1000);
        let body = r#"{"method":"POST","url":"https://tools.example/x"}"#;
        let calls: Vec<_> = (0..12)
            .map(|_| tokio::spawn(call(slow.clone(), "POST", "/v1/dpop", body)))
            .collect();
        let mut answered = Vec::new();
        for c in calls {
            let (s, v) = c.await.unwrap();
            answered.push((s, code(&v).to_string()));
        }
        let ok = answered
            .iter()
            .filter(|(s, _)| *s == StatusCode::OK)
            .count();
        let busy = answered
            .iter()
            .filter(|(s, c)| *s == StatusCode::TOO_MANY_REQUESTS && c == "proof.busy")
            .count();
        assert_eq!(ok + busy, 12, "{answered:?}");
        assert!((1..=MAX_PENDING_PROOFS).contains(&ok), "{answered:?}");
    }

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
