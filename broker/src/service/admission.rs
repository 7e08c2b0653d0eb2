//! Request admission. A request's body is read whole first — up to `max_body_bytes` (413 at
//! once when `Content-Length` already says more, 413 as soon as more arrives) and within
//! `client_timeout_secs` (408) — and only then does the request take one of
//! `max_concurrent_requests` processing slots, or get 503 `server.busy` at once when none is
//! free. A client that trickles its body therefore holds a connection (bounded by
//! `max_connections` and the timeout), never a slot other clients need, and a full broker
//! answers at once instead of queueing. Health and metrics routes are outside it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::Semaphore;

use super::error::ApiError;

/// The limits [`admit`] enforces.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    max_body_bytes: usize,
    body_timeout: Duration,
}

impl Admission {
    /// `slots` requests processed at once; bodies up to `max_body_bytes`, sent within
    /// `body_timeout`.
    pub fn new(slots: usize, max_body_bytes: usize, body_timeout: Duration) -> Self {
        Admission {
            // tokio's semaphore holds at most MAX_PERMITS (usize::MAX >> 3).
            slots: Arc::new(Semaphore::new(slots.min(Semaphore::MAX_PERMITS))),
            max_body_bytes,
            body_timeout,
        }
    }
}

/// Middleware: see the module docs.
pub async fn admit(State(admission): State<Arc<Admission>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > admission.max_body_bytes as u64) {
        return ApiError::PayloadTooLarge.into_response();
    }
    let read = Limited::new(body, admission.max_body_bytes).collect();
    let bytes = match tokio::time::timeout(admission.body_timeout, read).await {
        Err(_) => return ApiError::BodyTimeout.into_response(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            return ApiError::PayloadTooLarge.into_response()
        }
        Ok(Err(_)) => {
            return ApiError::bad("request.malformed", "could not read the request body")
                .into_response()
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let Ok(_slot) = admission.slots.clone().try_acquire_owned() else {
        return ApiError::Busy.into_response();
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::Router;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::Notify;

    /// A router whose one handler echoes the body length, waiting for `release` first when the
    /// body is "hold".
    async fn serve(admission: Admission, release: Arc<Notify>) -> std::net::SocketAddr {
        let app = Router::new()
            .route(
                "/",
                post(move |body: axum::body::Bytes| {
                    let release = release.clone();
                    async move {
                        if body.as_ref() == b"hold" {
                            release.notified().await;
                        }
                        body.len().to_string()
                    }
                }),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                Arc::new(admission),
                admit,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Sends `head` then `body` on a fresh connection; the status of the answer.
    async fn send(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> u16 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    fn post_head(len: usize) -> String {
        format!("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n")
    }

    #[test]
    fn any_configured_slot_count_is_accepted() {
        let huge = Admission::new(usize::MAX, 1, Duration::from_secs(1));
        assert_eq!(huge.slots.available_permits(), Semaphore::MAX_PERMITS);
    }

    #[tokio::test]
    async fn a_full_broker_answers_503_at_once_and_recovers() {
        let release = Arc::new(Notify::new());
        let addr = serve(
            Admission::new(1, 1024, Duration::from_secs(5)),
            release.clone(),
        )
        .await;
        let holder = tokio::spawn(async move { send(addr, &post_head(4), b"hold").await });
        // Wait until the holder has its slot: then a second request is refused.
        let mut refused = 0;
        for _ in 0..200 {
            match send(addr, &post_head(2), b"hi").await {
                503 => {
                    refused += 1;
                    break;
                }
                200 => tokio::time::sleep(Duration::from_millis(10)).await,
                other => panic!("unexpected status {other}"),
            }
        }
        assert_eq!(refused, 1, "the second request was never refused");
        release.notify_one();
        assert_eq!(holder.await.unwrap(), 200);
        assert_eq!(send(addr, &post_head(2), b"hi").await, 200);
    }

    #[tokio::test]
    async fn a_trickled_body_holds_no_slot_and_times_out_with_408() {
        let release = Arc::new(Notify::new());
        let addr = serve(Admission::new(1, 1024, Duration::from_millis(500)), release).await;
        // Headers promise 10 bytes; 1 arrives.
        let slow = tokio::spawn(async move { send(addr, &post_head(10), b"x").await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The only slot is still free for a complete request.
        assert_eq!(send(addr, &post_head(2), b"hi").await, 200);
        assert_eq!(slow.await.unwrap(), 408);
    }

    #[tokio::test]
    async fn bodies_over_the_limit_get_413_declared_or_streamed() {
        let addr = serve(
            Admission::new(4, 16, Duration::from_secs(5)),
            Arc::new(Notify::new()),
        )
        .await;
        // Declared too large: refused before any body byte is sent.
        assert_eq!(send(addr, &post_head(300_000), b"").await, 413);
        // Chunked, no length declared: refused once the limit is passed.
        let chunked =
            "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
        assert_eq!(
            send(
                addr,
                chunked,
                b"20\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n0\r\n\r\n"
            )
            .await,
            413
        );
        assert_eq!(send(addr, &post_head(16), &[b'y'; 16]).await, 200);
    }
}
