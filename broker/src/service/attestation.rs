//! The bootstrap exchange: challenge → attest (evidence + binding key → token) → refresh
//! (DPoP-bound).

use attest_verifiers::snp::VerifyOptions as SnpOptions;
use attest_verifiers::{UnixTime, VerifiedEvidence};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::Span;

use super::error::ApiError;
use super::extract::{Bootstrap, JsonBody};
use super::AppState;
use crate::audit::NewAuditEntry;
use crate::crypto;
use crate::jose::{self, EcJwk};
use crate::policy::{self, Mode, Policy};
use crate::store::{Issuance, OnceKind, TokenRecord, UseOnce};
use crate::tokens::{self, AttestationSummary, Confirmation, TokenClaims};

/// Largest decoded evidence blob accepted.
const MAX_EVIDENCE_BYTES: usize = 64 * 1024;
/// Accepted clock skew for DPoP `iat`, seconds (RFC 9449 §11.1 leaves it to the server).
const DPOP_IAT_WINDOW: i64 = 60;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/challenge", post(challenge))
        .route("/v1/attest", post(attest))
        .route("/v1/token/refresh", post(refresh))
}

/// `SHA-512("attest-broker/v1" ‖ nonce ‖ jkt)`: what evidence user data must commit to
/// (defined once, in `attest-proto`, for both sides).
pub use attest_proto::attestation_binding as binding;

#[derive(Serialize)]
struct ChallengeResponse {
    nonce: String,
    expires_in: i64,
}

/// Domain separation for the challenge MAC.
const NONCE_MAC_CONTEXT: &[u8] = b"attest-broker/v1 challenge";

/// A challenge nonce: 32 bytes = 16 random ‖ expiry (u64 big-endian) ‖ the first 8 bytes of
/// HMAC-SHA-256(server key, context ‖ random ‖ expiry). Self-authenticating, so issuing one
/// writes nothing; its single use is recorded when it is used.
/// See docs/decisions/0008-stateless-challenges.md.
fn new_nonce(key: &[u8], expires_at: i64) -> Result<[u8; 32], ApiError> {
    let random = crypto::random::<16>().map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut nonce = [0u8; 32];
    let (r, rest) = nonce.split_at_mut(16);
    let (exp, mac) = rest.split_at_mut(8);
    r.copy_from_slice(&random);
    exp.copy_from_slice(&expires_at.to_be_bytes());
    let tag = crypto::hmac_sha256(
        key,
        &[NONCE_MAC_CONTEXT, &random, &expires_at.to_be_bytes()].concat(),
    );
    mac.copy_from_slice(tag.get(..8).unwrap_or(&[0; 8]));
    Ok(nonce)
}

/// Why a presented nonce is unusable before any store lookup.
fn check_nonce(key: &[u8], nonce: &[u8], now: i64) -> Result<i64, ApiError> {
    let (Some(random), Some(exp), Some(mac)) =
        (nonce.get(..16), nonce.get(16..24), nonce.get(24..32))
    else {
        return Err(ApiError::bad(
            "nonce.malformed",
            "nonce must be the 32-byte base64url value from /v1/challenge",
        ));
    };
    let tag = crypto::hmac_sha256(key, &[NONCE_MAC_CONTEXT, random, exp].concat());
    if nonce.len() != 32 || !crypto::ct_eq(tag.get(..8).unwrap_or(&[]), mac) {
        return Err(ApiError::bad(
            "nonce.unknown",
            "nonce was not issued by this broker",
        ));
    }
    let expires_at = i64::from_be_bytes(exp.try_into().unwrap_or([0; 8]));
    if expires_at < now {
        return Err(ApiError::bad(
            "nonce.expired",
            "nonce expired; request a new challenge",
        ));
    }
    Ok(expires_at)
}

async fn challenge(State(state): State<AppState>) -> Result<Json<ChallengeResponse>, ApiError> {
    let ttl = state.settings.nonce_ttl_secs;
    let nonce = new_nonce(&state.hmac_key, state.now() + ttl)?;
    state.challenges.issued();
    Ok(Json(ChallengeResponse {
        nonce: jose::b64(&nonce),
        expires_in: ttl,
    }))
}

/// Evidence in an attestation request.
#[derive(Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum Evidence {
    /// A SEV-SNP report (base64) and its VCEK/VLEK (base64 DER, or PEM text).
    #[serde(rename = "sev-snp")]
    SevSnp { report: String, certs: String },
    /// An AWS Nitro Enclaves attestation document (COSE_Sign1, base64). Its `nonce` field
    /// carries the binding.
    #[serde(rename = "aws-nitro")]
    AwsNitro { document: String },
    /// A TPM 2.0 quote by the agent's enrolled AK, its PCR values, and TPM2_Certify of the
    /// TPM-resident binding key; both carry the first 32 bytes of the binding as
    /// qualifying data.
    #[serde(rename = "tpm")]
    Tpm {
        quote: String,
        signature: String,
        pcrs: serde_json::Value,
        #[serde(default)]
        event_log: Option<String>,
        binding_key_public: String,
        certify: String,
        certify_signature: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttestRequest {
    nonce: String,
    binding_key: EcJwk,
    evidence: Evidence,
    #[serde(default)]
    audience: Option<String>,
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    appraisal: Option<policy::Appraisal>,
}

fn decode_blob(field: &'static str, text: &str) -> Result<Vec<u8>, ApiError> {
    if text.trim_start().starts_with("-----BEGIN") {
        return Ok(text.as_bytes().to_vec());
    }
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| ApiError::bad("evidence.malformed", format!("{field} is not base64")))?;
    if bytes.len() > MAX_EVIDENCE_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(bytes)
}

async fn attest(
    State(state): State<AppState>,
    Bootstrap(cred): Bootstrap,
    JsonBody(req): JsonBody<AttestRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let now = state.now();
    let span = Span::current();
    span.record("tenant", cred.tenant.as_str());
    span.record("agent", cred.agent_id.as_str());
    let actor = format!("agent:{}/{}", cred.tenant, cred.agent_id);
    let nonce = jose::b64_decode(&req.nonce).map_err(|_| {
        ApiError::bad(
            "nonce.malformed",
            "nonce must be the 32-byte base64url value from /v1/challenge",
        )
    })?;
    let jkt = req
        .binding_key
        .thumbprint()
        .map_err(|e| ApiError::bad("binding_key.invalid", e.to_string()))?;
    let jkt_b64 = jose::b64(&jkt);

    // The nonce must be ours, unexpired and unused; it is consumed, even when the evidence
    // fails, in the same transaction as the decision's audit entry.
    let nonce_expires = match check_nonce(&state.hmac_key, &nonce, now) {
        Ok(exp) => exp,
        Err(e) => return deny(&state, &cred.tenant, &actor, &cred.agent_id, now, e, None).await,
    };
    let nonce_hash = crypto::sha256(&nonce);
    let once = UseOnce {
        kind: OnceKind::Challenge,
        hash: &nonce_hash,
        expires_at: nonce_expires,
    };
    let store = state.store.clone();
    let (tenant_id, agent_id) = (cred.tenant.clone(), cred.agent_id.clone());
    let (used, agent) = state
        .blocking(move || {
            Ok::<_, crate::store::StoreError>((
                store.was_used(UseOnce {
                    kind: OnceKind::Challenge,
                    hash: &nonce_hash,
                    expires_at: nonce_expires,
                })?,
                store.agent(&tenant_id, &agent_id)?,
            ))
        })
        .await?;
    let Some(agent) = agent else {
        return Err(ApiError::unauthorized(
            "bootstrap.invalid",
            "agent no longer exists",
        ));
    };
    if used {
        return deny(
            &state,
            &cred.tenant,
            &actor,
            &cred.agent_id,
            now,
            replayed(),
            None,
        )
        .await;
    }
    let (policy, policy_version) = state
        .policy(&agent.tenant, &agent.class)
        .await?
        .ok_or_else(|| {
            ApiError::Forbidden(
                "policy.missing",
                format!("no policy for agent class {:?}", agent.class),
                vec!["policy.missing".into()],
            )
        })?;

    // Verify the evidence and its binding to this nonce and this key.
    let expected = binding(&nonce, &jkt);
    let ak = match &req.evidence {
        Evidence::Tpm { .. } => {
            let store = state.store.clone();
            let (t, a) = (agent.tenant.clone(), agent.agent_id.clone());
            state.blocking(move || store.agent_ak(&t, &a)).await?
        }
        _ => None,
    };
    let verified = match verify_evidence(
        &state,
        &req.evidence,
        now,
        &expected,
        ak.as_deref(),
        &req.binding_key,
    ) {
        Ok(v) => v,
        Err(e) => {
            let code = e.code().to_string();
            state.metrics.denied(std::slice::from_ref(&code));
            let audit = NewAuditEntry::new(
                now,
                Some(&cred.tenant),
                &actor,
                "attest.deny",
                &cred.agent_id,
            )
            .decision("deny")
            .details(json!({"reasons": [code], "message": e.to_string()}));
            consume_with_audit(&state, audit, once).await?;
            span.record("decision", "deny");
            return Err(ApiError::Forbidden(
                "evidence.rejected",
                e.to_string(),
                vec![code],
            ));
        }
    };
    span.record("tee", verified.claims().tee().as_str());

    // Appraise.
    let appraisal = policy::appraise(&policy, verified.claims());
    let failures: Vec<String> = appraisal.failures().iter().map(|s| s.to_string()).collect();
    if !failures.is_empty() && policy.mode == Mode::Enforce {
        state.metrics.denied(&failures);
        let audit = NewAuditEntry::new(now, Some(&cred.tenant), &actor, "attest.deny", &cred.agent_id)
            .decision("deny")
            .details(json!({"reasons": failures, "policy": agent.class, "policy_version": policy_version, "checks": appraisal.checks}));
        consume_with_audit(&state, audit, once).await?;
        span.record("decision", "deny");
        return Err(ApiError::Forbidden(
            "policy.denied",
            "evidence does not satisfy the agent's policy".into(),
            failures,
        ));
    }
    let decision = if failures.is_empty() {
        "allow"
    } else {
        "shadow-deny"
    };
    span.record("decision", decision);

    let audience = match req.audience {
        Some(aud) if policy.audiences.contains(&aud) => aud,
        Some(aud) => {
            return Err(ApiError::Forbidden(
                "policy.audience",
                format!("audience {aud:?} is not allowed for this agent"),
                vec!["policy.audience".into()],
            ))
        }
        None => policy.audiences.first().cloned().unwrap_or_default(),
    };
    let summary = AttestationSummary::from_evidence(&verified, &agent.class, policy_version);
    let claims = new_claims(
        &state,
        &policy,
        &agent.tenant,
        &agent.agent_id,
        audience,
        jkt_b64,
        summary,
        now,
    )?;
    let details = json!({"decision": decision, "reasons": failures, "policy": agent.class, "policy_version": policy_version, "tee": verified.claims().tee().as_str(), "jkt": claims.cnf.jkt});
    let response = issue(
        &state,
        claims,
        &actor,
        "token.issue",
        decision,
        details,
        Some(once),
    )
    .await
    .map_err(|e| match e {
        ApiError::Unauthorized("once.replayed", _) => replayed(),
        other => other,
    })?;
    state
        .metrics
        .issued(verified.claims().tee().as_str(), "attest");
    Ok(Json(TokenResponse {
        appraisal: Some(appraisal),
        ..response
    }))
}

fn verify_evidence(
    state: &AppState,
    evidence: &Evidence,
    now: i64,
    expected: &[u8; 64],
    enrolled_ak: Option<&[u8]>,
    binding_key: &EcJwk,
) -> Result<VerifiedEvidence, attest_verifiers::VerifyError> {
    let at = UnixTime::from_secs(now);
    match evidence {
        Evidence::SevSnp { report, certs } => {
            let report = decode_blob("report", report).map_err(|_| malformed("report"))?;
            let certs = decode_blob("certs", certs).map_err(|_| malformed("certs"))?;
            let opts = SnpOptions {
                at,
                expected_report_data: Some(expected),
            };
            state.snp.verify(&report, &certs, &opts)
        }
        Evidence::AwsNitro { document } => {
            let document = decode_blob("document", document).map_err(|_| malformed("document"))?;
            let opts = attest_verifiers::nitro::VerifyOptions {
                at,
                expected_nonce: Some(expected),
                expected_user_data: None,
            };
            state.nitro.verify(&document, &opts)
        }
        Evidence::Tpm {
            quote,
            signature,
            pcrs,
            event_log,
            binding_key_public,
            certify,
            certify_signature,
        } => {
            use attest_verifiers::tpm::{self, AttestationKey, Signature};
            use attest_verifiers::{Tee, VerifyError};
            let ak_bytes = enrolled_ak.ok_or_else(|| VerifyError::Chain {
                tee: Tee::Tpm,
                detail: "this agent has no enrolled AK: run /v1/tpm/enroll first".into(),
            })?;
            let ak = AttestationKey::parse(ak_bytes)?;
            let blob = |name: &'static str, text: &str| {
                decode_blob(name, text).map_err(|_| malformed(name))
            };
            let attest = blob("quote", quote)?;
            let sig = Signature::parse(&blob("signature", signature)?)?;
            let pcr_values = tpm::PcrValues::from_json(pcrs.to_string().as_bytes())?;
            let log = match event_log {
                Some(b) => Some(tpm::EventLog::parse(&blob("event_log", b)?)?),
                None => None,
            };
            let qualifying = expected.get(..32).unwrap_or(expected);
            let verified = tpm::verify_quote(
                &tpm::QuoteEvidence {
                    attest: &attest,
                    signature: &sig,
                    ak: &ak,
                    pcrs: Some(&pcr_values),
                    event_log: log.as_ref(),
                },
                &tpm::QuoteOptions {
                    at,
                    expected_nonce: Some(qualifying),
                    ak_chain: None,
                    expected_qualified_signer: None,
                },
            )?;
            let binding_public = blob("binding_key_public", binding_key_public)?;
            let binding_public = tpm::Public::parse_tpm2b(&binding_public)
                .or_else(|_| tpm::Public::parse(&binding_public))?;
            let certify_attest = blob("certify", certify)?;
            let certify_sig = Signature::parse(&blob("certify_signature", certify_signature)?)?;
            let certified = tpm::verify_certify(
                &tpm::CertifyEvidence {
                    attest: &certify_attest,
                    signature: &certify_sig,
                    ak: &ak,
                    certified: &binding_public,
                },
                &tpm::CertifyOptions {
                    at,
                    expected_qualifying_data: Some(qualifying),
                    ak_chain: None,
                },
            )?;
            check_tpm_binding_key(certified.public(), binding_key)?;
            Ok(verified)
        }
    }
}

/// The TPM-certified key must be a non-exportable P-256 signing key (fixedTPM, fixedParent,
/// sensitiveDataOrigin, sign, not decrypt) and exactly the JWK the token is bound to.
fn check_tpm_binding_key(
    public: &attest_verifiers::tpm::Public,
    jwk: &EcJwk,
) -> Result<(), attest_verifiers::VerifyError> {
    use attest_verifiers::tpm::{ObjectAttributes as A, Parameters, Unique};
    use attest_verifiers::{Tee, VerifyError};
    let bad = |detail: &str| VerifyError::Chain {
        tee: Tee::Tpm,
        detail: format!("binding key: {detail}"),
    };
    let a = public.attributes;
    let required = A::FIXED_TPM | A::FIXED_PARENT | A::SENSITIVE_DATA_ORIGIN | A::SIGN_ENCRYPT;
    if !a.contains(required) || a.contains(A::DECRYPT) {
        return Err(bad(
            "not a non-exportable signing key (fixedTPM, fixedParent, sensitiveDataOrigin, sign)",
        ));
    }
    const TPM_ECC_NIST_P256: u16 = 0x0003;
    let (
        Parameters::Ecc {
            curve: TPM_ECC_NIST_P256,
            ..
        },
        Unique::Ecc { x, y },
    ) = (&public.parameters, &public.unique)
    else {
        return Err(bad("not an ECC P-256 key"));
    };
    let pad = |v: &[u8]| {
        let mut out = [0u8; 32];
        let n = v.len().min(32);
        if let (Some(dst), Some(src)) = (out.get_mut(32 - n..), v.get(v.len() - n..)) {
            dst.copy_from_slice(src);
        }
        out
    };
    let point = jwk
        .to_point()
        .map_err(|_| bad("binding_key is not a P-256 JWK"))?;
    let mut certified = vec![0x04];
    certified.extend_from_slice(&pad(x));
    certified.extend_from_slice(&pad(y));
    if x.len() > 32 || y.len() > 32 || certified != point {
        return Err(bad("the certified key is not the binding_key presented"));
    }
    Ok(())
}

fn malformed(what: &'static str) -> attest_verifiers::VerifyError {
    attest_verifiers::VerifyError::Malformed {
        what,
        detail: "not base64 or too large".into(),
    }
}

fn replayed() -> ApiError {
    ApiError::Conflict("nonce.replayed", "nonce already used".into())
}

/// Records a denial (and uses the nonce) in one transaction; a nonce used concurrently by
/// another request turns the answer into a replay.
async fn consume_with_audit(
    state: &AppState,
    audit: NewAuditEntry,
    once: UseOnce<'_>,
) -> Result<(), ApiError> {
    let store = state.store.clone();
    let (kind, hash, expires_at) = (once.kind, *once.hash, once.expires_at);
    let fresh = state
        .blocking(move || {
            store.append_audit(
                &audit,
                Some(UseOnce {
                    kind,
                    hash: &hash,
                    expires_at,
                }),
            )
        })
        .await?;
    if fresh {
        Ok(())
    } else {
        Err(replayed())
    }
}

async fn deny(
    state: &AppState,
    tenant: &str,
    actor: &str,
    agent: &str,
    now: i64,
    error: ApiError,
    once: Option<UseOnce<'_>>,
) -> Result<Json<TokenResponse>, ApiError> {
    let code = error.code().to_string();
    state.metrics.denied(std::slice::from_ref(&code));
    let audit = NewAuditEntry::new(now, Some(tenant), actor, "attest.deny", agent)
        .decision("deny")
        .details(json!({"reasons": [code]}));
    match once {
        Some(once) => consume_with_audit(state, audit, once).await?,
        None => {
            let store = state.store.clone();
            state
                .blocking(move || store.append_audit(&audit, None))
                .await?;
        }
    }
    Span::current().record("decision", "deny");
    Err(error)
}

/// A token id: 6 bytes of milliseconds since the epoch, then 10 random bytes (80 bits),
/// base64url. Ids issued close in time share their leading characters, so new rows of the
/// token table land on a few recent pages instead of a random one each, which keeps each
/// issuance's commit small (docs/benchmarks.md).
fn new_jti() -> Result<String, ApiError> {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let random = crypto::random::<10>().map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut id = [0u8; 16];
    let (time, rest) = id.split_at_mut(6);
    time.copy_from_slice(millis.to_be_bytes().get(10..16).unwrap_or(&[0; 6]));
    rest.copy_from_slice(&random);
    Ok(jose::b64(&id))
}

#[allow(clippy::too_many_arguments)]
fn new_claims(
    state: &AppState,
    policy: &Policy,
    tenant: &str,
    agent_id: &str,
    audience: String,
    jkt: String,
    att: AttestationSummary,
    now: i64,
) -> Result<TokenClaims, ApiError> {
    let jti = new_jti()?;
    let ttl = i64::try_from(
        policy
            .token_ttl_secs
            .clamp(policy::MIN_TTL_SECS, policy::MAX_TTL_SECS),
    )
    .unwrap_or(900);
    Ok(TokenClaims {
        iss: state.settings.issuer.clone(),
        sub: agent_id.to_string(),
        aud: audience,
        iat: now,
        nbf: now,
        exp: now + ttl,
        jti,
        scope: policy.scopes_for(tenant, agent_id).join(" "),
        tenant: tenant.to_string(),
        cnf: Confirmation { jkt },
        att,
        budget: policy.budget.clone(),
    })
}

/// Signs the token, then records it (with its hash) and its audit entry in one transaction,
/// before answering. With `dpop`, the proof id is recorded in the same transaction; a replayed
/// proof issues nothing.
async fn issue(
    state: &AppState,
    claims: TokenClaims,
    actor: &str,
    action: &str,
    decision: &str,
    mut details: serde_json::Value,
    once: Option<UseOnce<'_>>,
) -> Result<TokenResponse, ApiError> {
    let (token, kid) =
        tokens::mint(&state.keys, &claims).map_err(|e| ApiError::Internal(e.to_string()))?;
    // Policies are bounded so this cannot happen with one accepted today; one stored before
    // those bounds could still mint a token the broker would not read back.
    if token.len() > jose::MAX_JWS_LEN {
        return Err(ApiError::Forbidden(
            "policy.token_too_large",
            format!(
                "the policy's scopes and budget make a {}-byte token; at most {}",
                token.len(),
                jose::MAX_JWS_LEN
            ),
            vec!["policy.token_too_large".into()],
        ));
    }
    if let serde_json::Value::Object(map) = &mut details {
        map.insert("jti".into(), claims.jti.clone().into());
        map.insert("exp".into(), claims.exp.into());
        map.insert("kid".into(), kid.clone().into());
    }
    let record = TokenRecord {
        jti: claims.jti.clone(),
        tenant: claims.tenant.clone(),
        agent_id: claims.sub.clone(),
        kid,
        iat: claims.iat,
        exp: claims.exp,
        attested_at: claims.att.attested_at(),
        jkt: claims.cnf.jkt.clone(),
        revoked_at: None,
        token_hash: crypto::sha256(token.as_bytes()),
    };
    let audit = NewAuditEntry::new(claims.iat, Some(&claims.tenant), actor, action, &claims.jti)
        .decision(decision)
        .details(details);
    let issuance = Issuance {
        token: record,
        audit,
        once: once.map(|o| (o.kind, *o.hash, o.expires_at)),
    };
    let issued = state.issues.issue(issuance).await?;
    if !issued {
        return Err(ApiError::unauthorized(
            "once.replayed",
            "single-use value already used",
        ));
    }
    Ok(TokenResponse {
        access_token: token,
        token_type: "DPoP",
        expires_in: claims.exp - claims.iat,
        scope: claims.scope,
        appraisal: None,
    })
}

/// Authenticates a presented access token and checks it is active: it must be byte-for-byte
/// a token this broker issued (its SHA-256 equals the issuance record's), signed by a key that
/// is not revoked, unexpired, and neither it, its agent nor its tenant revoked since. Returns
/// the claims, or the reason code it is not active.
pub async fn authenticate_token(
    state: &AppState,
    token: &str,
    now: i64,
) -> Result<Result<TokenClaims, &'static str>, ApiError> {
    let Ok(claims) = tokens::decode_unverified(token) else {
        return Ok(Err("token.invalid"));
    };
    let store = state.store.clone();
    let jti = claims.jti.clone();
    let Some(found) = state.blocking(move || store.token_state(&jti)).await? else {
        return Ok(Err("token.unknown"));
    };
    let r = &found.record;
    if !crypto::ct_eq(&crypto::sha256(token.as_bytes()), &r.token_hash) {
        return Ok(Err("token.invalid"));
    }
    let revoked_before = |t: Option<i64>| t.is_some_and(|b| r.iat <= b);
    Ok(if state.keys.verification_key(&r.kid).is_none() {
        Err("token.revoked")
    } else if r.exp <= now {
        Err("token.expired")
    } else if r.revoked_at.is_some()
        || revoked_before(found.tenant_revoked_before)
        || revoked_before(found.agent_revoked_before)
    {
        Err("token.revoked")
    } else {
        Ok(claims)
    })
}

async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<TokenResponse>, ApiError> {
    let now = state.now();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let token_text = header("authorization")
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("DPoP"))
        .map(|(_, t)| t.trim().to_string())
        .ok_or_else(|| {
            ApiError::unauthorized("token.missing", "Authorization: DPoP <token> required")
        })?;
    let proof_text = header("dpop")
        .ok_or_else(|| ApiError::unauthorized("dpop.missing", "DPoP proof header required"))?;
    let claims = match authenticate_token(&state, &token_text, now).await? {
        Ok(claims) => claims,
        Err(code) => return Err(ApiError::unauthorized(code, "token is not active")),
    };
    let span = Span::current();
    span.record("tenant", claims.tenant.as_str());
    span.record("agent", claims.sub.as_str());

    // RFC 9449 §4.3.
    let proof = jose::verify_dpop_proof(proof_text)
        .map_err(|e| ApiError::unauthorized("dpop.invalid", e.to_string()))?;
    let htu = format!("{}/v1/token/refresh", state.settings.issuer);
    let ath = jose::b64(&crypto::sha256(token_text.as_bytes()));
    let c = &proof.claims;
    let problem = if c.htm != "POST" {
        Some("htm must be POST")
    } else if c.htu != htu {
        Some("htu does not match this endpoint")
    } else if now.abs_diff(c.iat) > DPOP_IAT_WINDOW.unsigned_abs() {
        Some("iat is outside the accepted window")
    } else if c.ath.as_deref() != Some(ath.as_str()) {
        Some("ath does not match the access token")
    } else if !crypto::ct_eq(proof.jkt.as_bytes(), claims.cnf.jkt.as_bytes()) {
        Some("proof key is not the key the token is bound to")
    } else if c.jti.is_empty() || c.jti.len() > 256 {
        Some("jti missing or too long")
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(ApiError::unauthorized("dpop.invalid", problem));
    }
    let dpop_jti = crypto::sha256(format!("{}|{}", proof.jkt, c.jti).as_bytes());

    // The attestation must still be young enough for the current policy.
    let (policy, _) = state
        .policy(&claims.tenant, claims.att.policy_class())
        .await?
        .ok_or_else(|| {
            ApiError::Forbidden(
                "policy.missing",
                "agent class has no policy".into(),
                vec!["policy.missing".into()],
            )
        })?;
    let age = now - claims.att.attested_at();
    if age > i64::try_from(policy.max_attestation_age_secs).unwrap_or(i64::MAX) {
        return Err(ApiError::unauthorized(
            "attestation.stale",
            "attestation is too old; attest again",
        ));
    }
    let c = claims;
    let actor = format!("agent:{}/{}", c.tenant, c.sub);
    let claims = new_claims(
        &state,
        &policy,
        &c.tenant,
        &c.sub,
        c.aud.clone(),
        c.cnf.jkt.clone(),
        c.att.clone(),
        now,
    )?;
    let details = json!({"previous_jti": c.jti, "tee": c.att.tee()});
    let response = issue(
        &state,
        claims,
        &actor,
        "token.refresh",
        "allow",
        details,
        Some(UseOnce {
            kind: OnceKind::Dpop,
            hash: &dpop_jti,
            // A function of the signed proof, as the record's key must be; past it the
            // proof's iat is outside the window anyway.
            expires_at: proof.claims.iat.saturating_add(2 * DPOP_IAT_WINDOW),
        }),
    )
    .await
    .map_err(|e| match e {
        ApiError::Unauthorized("once.replayed", _) => {
            ApiError::unauthorized("dpop.replayed", "DPoP proof already used")
        }
        other => other,
    })?;
    state.metrics.issued(c.att.tee(), "refresh");
    Ok(Json(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_are_time_prefixed_and_unique() {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let ids: std::collections::BTreeSet<String> =
            (0..1000).map(|_| new_jti().unwrap()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(5) {
            let raw = jose::b64_decode(id).unwrap();
            assert_eq!(raw.len(), 16);
            let mut time = [0u8; 8];
            time[2..].copy_from_slice(&raw[..6]);
            let ms = u64::from_be_bytes(time);
            assert!(ms.abs_diff(now_ms) < 10_000, "{ms} vs {now_ms}");
        }
    }

    #[test]
    fn nonces_authenticate_themselves_and_expire() {
        let key = [7u8; 32];
        let nonce = new_nonce(&key, 1_000).unwrap();
        assert_eq!(check_nonce(&key, &nonce, 999).unwrap(), 1_000);
        assert_eq!(
            check_nonce(&key, &nonce, 1_001).unwrap_err().code(),
            "nonce.expired"
        );
        assert_eq!(
            check_nonce(&[8u8; 32], &nonce, 999).unwrap_err().code(),
            "nonce.unknown"
        );
        for i in 0..32 {
            let mut forged = nonce;
            forged[i] ^= 1;
            assert!(check_nonce(&key, &forged, 999).is_err(), "byte {i}");
        }
        assert_eq!(
            check_nonce(&key, &nonce[..31], 999).unwrap_err().code(),
            "nonce.malformed"
        );
        let mut longer = nonce.to_vec();
        longer.push(0);
        assert!(check_nonce(&key, &longer, 999).is_err());
        assert_ne!(
            new_nonce(&key, 1_000).unwrap(),
            nonce,
            "random part differs"
        );
    }
}
