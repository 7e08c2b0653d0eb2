//! The HTTP error type: every failure maps to a status and a stable code; internals are
//! logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::StoreError;

/// An error answered to a client.
#[derive(Debug)]
pub enum ApiError {
    /// 400: malformed request.
    BadRequest(&'static str, String),
    /// 401: missing or bad credential.
    Unauthorized(&'static str, String),
    /// 403: authenticated but not allowed; `reasons` lists failed checks.
    Forbidden(&'static str, String, Vec<String>),
    /// 404.
    NotFound(&'static str, String),
    /// 409: conflict or replay.
    Conflict(&'static str, String),
    /// 413: body too large.
    PayloadTooLarge,
    /// 408: the client did not send its request body in time.
    BodyTimeout,
    /// 429: too many outstanding requests of a kind.
    TooManyRequests(&'static str, String),
    /// 503: every processing slot is taken; the client may retry in a second.
    Busy,
    /// 500: logged in full, sent as a generic message.
    Internal(String),
}

impl ApiError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(c, _)
            | ApiError::Unauthorized(c, _)
            | ApiError::Forbidden(c, _, _)
            | ApiError::NotFound(c, _)
            | ApiError::Conflict(c, _)
            | ApiError::TooManyRequests(c, _) => c,
            ApiError::PayloadTooLarge => "request.too_large",
            ApiError::BodyTimeout => "request.timeout",
            ApiError::Busy => "server.busy",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(..) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(..) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(..) => StatusCode::FORBIDDEN,
            ApiError::NotFound(..) => StatusCode::NOT_FOUND,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// 400 with a code and message.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest(code, message.into())
    }

    /// 401 with a code and message.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unauthorized(code, message.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => ApiError::Conflict("conflict", "already exists".into()),
            StoreError::NotFound => ApiError::NotFound("not_found", "no such object".into()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let body = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                json!({"error": {"code": code, "message": "internal error; see the broker log"}})
            }
            ApiError::Forbidden(_, message, reasons) => {
                json!({"error": {"code": code, "message": message, "reasons": reasons}})
            }
            ApiError::PayloadTooLarge => {
                json!({"error": {"code": code, "message": "request body too large"}})
            }
            ApiError::BodyTimeout => {
                json!({"error": {"code": code, "message": "the request body did not arrive in time"}})
            }
            ApiError::Busy => {
                json!({"error": {"code": code, "message": "the broker is at capacity; retry shortly"}})
            }
            ApiError::BadRequest(_, m)
            | ApiError::Unauthorized(_, m)
            | ApiError::NotFound(_, m)
            | ApiError::Conflict(_, m)
            | ApiError::TooManyRequests(_, m) => json!({"error": {"code": code, "message": m}}),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            if let Ok(v) = "DPoP algs=\"ES256\"".parse() {
                response.headers_mut().insert("www-authenticate", v);
            }
        }
        response
    }
}
