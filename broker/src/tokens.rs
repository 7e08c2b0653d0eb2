//! Access tokens: hardware-bound JWTs (`typ: at+jwt`, ES256, `cnf.jkt`).
//!
//! An [`AttestationSummary`] can only come from [`attest_verifiers::VerifiedEvidence`] or from
//! a token of ours whose signature verified ([`VerifiedToken`]), so no code path can mint a
//! token for evidence that skipped verification.

use attest_verifiers::{Claims, VerifiedEvidence};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::crypto::CryptoError;
use crate::jose::{self, JoseError, UnverifiedJws};
use crate::keys::KeyRing;

/// What a token says about the attestation behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationSummary {
    tee: String,
    measurement: String,
    policy: String,
    policy_version: i64,
    attested_at: i64,
    vendor_root: bool,
    debug: bool,
}

impl AttestationSummary {
    /// From evidence that verified, appraised under (class, version).
    pub fn from_evidence(evidence: &VerifiedEvidence, class: &str, policy_version: i64) -> Self {
        let claims = evidence.claims();
        let (measurement, vendor_root) = match claims {
            Claims::SevSnp(c) => (c.measurement.to_string(), c.vendor_root),
            Claims::Tpm(c) => (c.pcr_digest.to_string(), true),
            Claims::AwsNitro(c) => (c.pcr(0).map(hex::encode).unwrap_or_default(), c.vendor_root),
            _ => (String::new(), false),
        };
        AttestationSummary {
            tee: claims.tee().to_string(),
            measurement,
            policy: class.to_string(),
            policy_version,
            attested_at: evidence.verified_at().as_secs(),
            vendor_root,
            debug: claims.debug(),
        }
    }

    /// When the evidence was verified.
    pub fn attested_at(&self) -> i64 {
        self.attested_at
    }

    /// The agent class whose policy admitted it.
    pub fn policy_class(&self) -> &str {
        &self.policy
    }

    /// The evidence kind.
    pub fn tee(&self) -> &str {
        &self.tee
    }
}

/// `cnf` (RFC 7800 / RFC 9449 §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 7638 thumbprint of the binding key, base64url.
    pub jkt: String,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Issuer.
    pub iss: String,
    /// Agent id.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Token id.
    pub jti: String,
    /// Space-separated scopes.
    pub scope: String,
    /// Tenant.
    pub tenant: String,
    /// Key binding.
    pub cnf: Confirmation,
    /// Attestation summary.
    pub att: AttestationSummary,
    /// Budget and capability claims from the policy.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub budget: Map<String, Value>,
}

/// Signs `claims` with the active key; returns the token and the key id.
pub fn mint(keys: &KeyRing, claims: &TokenClaims) -> Result<(String, String), CryptoError> {
    let active = keys.active();
    let token = jose::sign_jwt(&active.key, &active.kid, "at+jwt", claims)?;
    Ok((token, active.kid.clone()))
}

/// A token of ours whose signature, type and issuer verified (status not yet checked).
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// Its claims.
    pub claims: TokenClaims,
    /// The key it was signed with.
    pub kid: String,
}

/// Why a presented token is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWS, or bad header.
    #[error("{0}")]
    Jose(#[from] JoseError),
    /// Signed by a key we do not know or revoked.
    #[error("unknown or revoked signing key")]
    UnknownKey,
    /// Wrong `typ` or `iss`.
    #[error("not an access token of this issuer")]
    NotOurs,
}

/// Decodes a token's claims without checking its signature: only for looking the token up by
/// `jti` and comparing its hash with the one recorded at issuance (see
/// [`crate::store::TokenRecord::token_hash`]), which authenticates it exactly.
pub fn decode_unverified(token: &str) -> Result<TokenClaims, TokenError> {
    let jws = UnverifiedJws::parse(token)?;
    if jws.header_str("typ") != Some("at+jwt") {
        return Err(TokenError::NotOurs);
    }
    jws.payload_unverified().map_err(TokenError::Jose)
}

/// Verifies a token's signature with our keys, its `typ` and its issuer.
pub fn verify(keys: &KeyRing, issuer: &str, token: &str) -> Result<VerifiedToken, TokenError> {
    let jws = UnverifiedJws::parse(token)?;
    if jws.header_str("typ") != Some("at+jwt") {
        return Err(TokenError::NotOurs);
    }
    let kid = jws
        .header_str("kid")
        .ok_or(TokenError::UnknownKey)?
        .to_string();
    let point = keys.verification_key(&kid).ok_or(TokenError::UnknownKey)?;
    let claims: TokenClaims = jws.verify(&point)?;
    if claims.iss != issuer {
        return Err(TokenError::NotOurs);
    }
    Ok(VerifiedToken { claims, kid })
}
