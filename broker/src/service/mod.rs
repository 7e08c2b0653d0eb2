//! The HTTP service: one state type, one router per resource module.

mod admin;
pub mod admission;
mod attestation;
pub mod challenges;
pub mod commit;
pub mod error;
mod extract;
mod introspection;
mod ops;
mod tpm;

use std::sync::Arc;
use std::time::Duration;

use attest_verifiers::nitro::NitroVerifier;
use attest_verifiers::snp::SnpVerifier;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use zeroize::Zeroizing;

use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::store::Store;
use error::ApiError;

pub use attestation::binding as attestation_binding;

/// Settings the handlers need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Issuer URL (`iss`, metadata, DPoP `htu` base).
    pub issuer: String,
    /// Nonce lifetime, seconds.
    pub nonce_ttl_secs: i64,
    /// Warning shown in `/readyz` (simulated roots trusted, dev mode).
    pub warning: Option<String>,
    /// Largest body.
    pub max_body_bytes: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Time a client has to send a request body.
    pub client_timeout: Duration,
    /// Requests processed at once.
    pub max_concurrent_requests: usize,
    /// Run store calls on the async worker (fast, non-fsyncing commits) instead of the
    /// blocking pool (needed when every commit waits for the disk).
    pub inline_store: bool,
}

/// Parsed policies by (tenant, class, version).
pub type PolicyCache =
    std::sync::Mutex<std::collections::HashMap<(String, String, i64), Arc<crate::policy::Policy>>>;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Persistent state.
    pub store: Arc<dyn Store>,
    /// Token issuances, group-committed by one writer thread.
    pub issues: Arc<commit::IssueQueue>,
    /// SEV-SNP verifier with its chain cache.
    pub snp: Arc<SnpVerifier>,
    /// AWS Nitro verifier with its chain cache.
    pub nitro: Arc<NitroVerifier>,
    /// CA certificates EK certificates must chain to for TPM AK enrollment.
    pub tpm_ek_roots: Arc<Vec<attest_verifiers::x509::Certificate>>,
    /// Signing keys.
    pub keys: Arc<KeyRing>,
    /// Server HMAC key for credentials.
    pub hmac_key: Arc<Zeroizing<Vec<u8>>>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Parsed policies by (tenant, class, version); versions are immutable.
    pub policies: Arc<PolicyCache>,
    /// Challenges issued since their count was last audited.
    pub challenges: Arc<challenges::ChallengeCount>,
}

impl AppState {
    /// Runs blocking store work off the async threads.
    pub async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError> {
        if self.settings.inline_store {
            return f().map_err(Into::into);
        }
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))?
            .map_err(Into::into)
    }

    /// The latest policy for (tenant, class) and its version, parsed once per version.
    pub async fn policy(
        &self,
        tenant: &str,
        class: &str,
    ) -> Result<Option<(Arc<crate::policy::Policy>, i64)>, ApiError> {
        let store = self.store.clone();
        let (t, c) = (tenant.to_string(), class.to_string());
        let Some(version) = self
            .blocking(move || store.latest_policy_version(&t, &c))
            .await?
        else {
            return Ok(None);
        };
        let key = (tenant.to_string(), class.to_string(), version);
        if let Some(p) = self.policies.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(Some((p, version)));
        }
        let store = self.store.clone();
        let (t, c) = (tenant.to_string(), class.to_string());
        let Some(record) = self
            .blocking(move || store.policy(&t, &c, Some(version)))
            .await?
        else {
            return Ok(None);
        };
        let policy = Arc::new(
            crate::policy::Policy::from_stored(&record.body)
                .map_err(|e| ApiError::Internal(format!("stored policy invalid: {e}")))?,
        );
        if let Ok(mut map) = self.policies.lock() {
            map.insert(key, policy.clone());
        }
        Ok(Some((policy, version)))
    }

    /// The current time, unix seconds.
    pub fn now(&self) -> i64 {
        now()
    }
}

/// The current time, unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let settings = state.settings.clone();
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
        let id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %id,
            tenant = tracing::field::Empty,
            agent = tracing::field::Empty,
            tee = tracing::field::Empty,
            decision = tracing::field::Empty,
        )
    });
    // Health and metrics stay reachable when every processing slot is taken.
    let admission = Arc::new(admission::Admission::new(
        settings.max_concurrent_requests,
        settings.max_body_bytes,
        settings.client_timeout,
    ));
    let api = Router::new()
        .merge(attestation::router())
        .merge(introspection::router())
        .merge(tpm::router())
        .merge(admin::router())
        .route_layer(axum::middleware::from_fn_with_state(
            admission,
            admission::admit,
        ));
    Router::new()
        .merge(api)
        .merge(ops::router())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::record_metrics,
        ))
        .fallback(|| async { ApiError::NotFound("not_found", "no such endpoint".into()) })
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(trace)
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    settings.request_timeout,
                ))
                .layer(DefaultBodyLimit::max(settings.max_body_bytes)),
        )
        .with_state(state)
}
