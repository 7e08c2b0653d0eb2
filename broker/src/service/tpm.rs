//! TPM AK enrollment (TCG "credential activation"): the agent presents its EK (with the EK
//! certificate chaining to a configured EK CA) and an AK; the broker makes a credential for
//! (EK, AK name) with a random secret; only the TPM that holds that EK, with that AK loaded,
//! can recover the secret with TPM2_ActivateCredential. Returning it proves the AK lives in
//! that TPM, and the AK becomes the agent's for TPM quotes.

use attest_verifiers::tpm::{self, CertChain, Public};
use attest_verifiers::x509::{self, Certificate};
use attest_verifiers::UnixTime;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Bootstrap, JsonBody};
use super::AppState;
use crate::audit::NewAuditEntry;
use crate::crypto;
use crate::store::TpmEnrollment;

/// How long the agent has to activate a credential.
const ENROLLMENT_TTL_SECS: i64 = 300;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tpm/enroll", post(enroll))
        .route("/v1/tpm/activate", post(activate))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollRequest {
    /// EK public area, base64 (TPM2B_PUBLIC or TPMT_PUBLIC).
    ek_public: String,
    /// EK certificate, base64 DER.
    ek_certificate: String,
    /// Intermediate CA certificates, base64 DER.
    #[serde(default)]
    ek_chain: Vec<String>,
    /// AK public area, base64 (TPM2B_PUBLIC or TPMT_PUBLIC).
    ak_public: String,
}

fn b64(field: &'static str, text: &str) -> Result<Vec<u8>, ApiError> {
    STANDARD
        .decode(text.trim())
        .map_err(|_| ApiError::bad("request.malformed", format!("{field} is not base64")))
}

fn rejected(e: attest_verifiers::VerifyError) -> ApiError {
    let code = e.code().to_string();
    ApiError::Forbidden("enrollment.rejected", e.to_string(), vec![code])
}

/// A public area in either wire form.
fn parse_public(bytes: &[u8]) -> Result<Public, attest_verifiers::VerifyError> {
    Public::parse_tpm2b(bytes).or_else(|_| Public::parse(bytes))
}

async fn enroll(
    State(state): State<AppState>,
    Bootstrap(cred): Bootstrap,
    JsonBody(req): JsonBody<EnrollRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now = state.now();
    if state.tpm_ek_roots.is_empty() {
        return Err(ApiError::Forbidden(
            "enrollment.no_ek_roots",
            "this broker trusts no EK CA ([trust] tpm_ek_roots)".into(),
            vec!["enrollment.no_ek_roots".into()],
        ));
    }
    let ek = parse_public(&b64("ek_public", &req.ek_public)?).map_err(rejected)?;
    let ak = parse_public(&b64("ak_public", &req.ak_public)?).map_err(rejected)?;
    tpm::check_ak_attributes(&ak).map_err(rejected)?;
    let mut certs = vec![
        Certificate::from_der(&b64("ek_certificate", &req.ek_certificate)?).map_err(rejected)?,
    ];
    for (i, c) in req.ek_chain.iter().enumerate().take(x509::MAX_BUNDLE_CERTS) {
        let der = b64("ek_chain", c).map_err(|_| {
            ApiError::bad("request.malformed", format!("ek_chain[{i}] is not base64"))
        })?;
        certs.push(Certificate::from_der(&der).map_err(rejected)?);
    }
    let ek_key = ek.public_key().map_err(rejected)?;
    let chain = CertChain {
        certs: &certs,
        anchors: &state.tpm_ek_roots,
    };
    tpm::verify_chain(&chain, &ek_key, UnixTime::from_secs(now)).map_err(rejected)?;

    let secret = crypto::random::<32>().map_err(|e| ApiError::Internal(e.to_string()))?;
    let credential = tpm::make_credential(&ek, &ak.name(), &secret).map_err(rejected)?;
    let id = hex::encode(crypto::random::<12>().map_err(|e| ApiError::Internal(e.to_string()))?);
    let ek_sha256 = *certs
        .first()
        .map(Certificate::fingerprint)
        .unwrap_or(&[0; 32]);
    let enrollment = TpmEnrollment {
        id: id.clone(),
        tenant: cred.tenant.clone(),
        agent_id: cred.agent_id.clone(),
        ak_public: ak.marshalled().to_vec(),
        ek_sha256,
        secret_hash: crypto::hmac_sha256(&state.hmac_key, &secret),
        expires_at: now + ENROLLMENT_TTL_SECS,
        completed_at: None,
    };
    let actor = format!("agent:{}/{}", cred.tenant, cred.agent_id);
    let audit = NewAuditEntry::new(now, Some(&cred.tenant), &actor, "tpm.enroll.start", &cred.agent_id)
        .details(json!({"enrollment": id, "ak_name": hex::encode(ak.name()), "ek_certificate_sha256": hex::encode(ek_sha256)}));
    let store = state.store.clone();
    state
        .blocking(move || store.start_tpm_enrollment(&enrollment, &audit))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "enrollment_id": id,
            "credential_blob": STANDARD.encode(credential.id_object()),
            "encrypted_secret": STANDARD.encode(credential.encrypted_secret()),
            "expires_in": ENROLLMENT_TTL_SECS,
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateRequest {
    enrollment_id: String,
    /// The secret TPM2_ActivateCredential returned, base64.
    secret: String,
}

async fn activate(
    State(state): State<AppState>,
    Bootstrap(cred): Bootstrap,
    JsonBody(req): JsonBody<ActivateRequest>,
) -> Result<Json<Value>, ApiError> {
    let now = state.now();
    let secret = zeroize::Zeroizing::new(b64("secret", &req.secret)?);
    let store = state.store.clone();
    let id = req.enrollment_id.clone();
    let enrollment = state
        .blocking(move || store.tpm_enrollment(&id))
        .await?
        .filter(|e| e.tenant == cred.tenant && e.agent_id == cred.agent_id)
        .ok_or_else(|| {
            ApiError::NotFound(
                "enrollment.unknown",
                "no such enrollment for this agent".into(),
            )
        })?;
    let actor = format!("agent:{}/{}", cred.tenant, cred.agent_id);
    let fail = |code: &'static str, message: &str| {
        ApiError::Forbidden(code, message.into(), vec![code.into()])
    };
    if enrollment.completed_at.is_some() {
        return Err(ApiError::Conflict(
            "enrollment.completed",
            "enrollment already completed".into(),
        ));
    }
    if enrollment.expires_at < now {
        return Err(fail(
            "enrollment.expired",
            "enrollment expired; enroll again",
        ));
    }
    if !crypto::ct_eq(
        &crypto::hmac_sha256(&state.hmac_key, &secret),
        &enrollment.secret_hash,
    ) {
        let audit = NewAuditEntry::new(
            now,
            Some(&cred.tenant),
            &actor,
            "tpm.enroll.deny",
            &cred.agent_id,
        )
        .decision("deny")
        .details(json!({"enrollment": enrollment.id, "reasons": ["tpm.credential"]}));
        let store = state.store.clone();
        state
            .blocking(move || store.append_audit(&audit, None))
            .await?;
        return Err(fail(
            "tpm.credential",
            "the secret does not match the credential",
        ));
    }
    let ak_name = parse_public(&enrollment.ak_public)
        .map(|p| hex::encode(p.name()))
        .unwrap_or_default();
    let audit = NewAuditEntry::new(
        now,
        Some(&cred.tenant),
        &actor,
        "tpm.enroll.complete",
        &cred.agent_id,
    )
    .decision("allow")
    .details(json!({"enrollment": enrollment.id, "ak_name": ak_name}));
    let store = state.store.clone();
    let id = enrollment.id.clone();
    if !state
        .blocking(move || store.complete_tpm_enrollment(&id, now, &audit))
        .await?
    {
        return Err(ApiError::Conflict(
            "enrollment.completed",
            "enrollment already completed".into(),
        ));
    }
    Ok(Json(json!({"enrolled": true, "ak_name": ak_name})))
}
