//! EK and AK certificate chains: path building from a leaf to caller-supplied trust anchors
//! at an explicit time. No vendor TPM CA is compiled in; the caller decides which roots (a
//! cloud's vTPM CA, a TPM manufacturer's, a local swtpm CA) it trusts.

use serde::Serialize;

use super::public::PublicKey;
use crate::x509::Certificate;
use crate::{HexBytes, Tee, UnixTime, VerifyError};

/// Longest path accepted, leaf and anchor included. TPM EK chains are 2 to 4 certificates
/// (manufacturer root, one or two intermediates, EK); 8 leaves room without allowing loops.
pub const MAX_CHAIN_LEN: usize = 8;

/// Certificates to verify and the anchors to verify them to.
#[derive(Debug, Clone, Copy)]
pub struct CertChain<'a> {
    /// The end-entity certificate (AK or EK) first, then any intermediates in any order. A
    /// root in here is only trusted if it is also among `anchors`.
    pub certs: &'a [Certificate],
    /// Trusted roots (or pinned intermediates).
    pub anchors: &'a [Certificate],
}

/// What a verified chain says, for claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainClaims {
    /// SHA-256 of the end-entity certificate.
    pub sha256: HexBytes,
    /// Its subject common name (often empty on TPM certificates).
    pub subject: String,
    /// Its issuer common name.
    pub issuer: String,
    /// Its notAfter.
    pub not_after: UnixTime,
    /// SHA-256 of the trust anchor the path ends at.
    pub anchor_sha256: HexBytes,
    /// Certificates in the path, anchor included.
    pub path_len: usize,
}

/// Verifies `chain` at `at` and that its end-entity certificate certifies `key`.
///
/// RFC 5280 6.1, reduced to what TPM chains need: every certificate on the path, the anchor
/// included, is valid at `at` (6.1.3 (a)(2)); each is signed by the next (6.1.3 (a)(1)) whose
/// subject is its issuer (6.1.3 (a)(4)); intermediates are CAs (basicConstraints cA, 6.1.4 (k));
/// the path ends at an anchor. Name constraints, policies and EKU are not evaluated: TPM
/// vendors use EKUs inconsistently (Google's AK certificates carry the EK certificate EKU
/// 2.23.133.8.1).
pub fn verify_chain(
    chain: &CertChain<'_>,
    key: &PublicKey,
    at: UnixTime,
) -> Result<ChainClaims, VerifyError> {
    let chain_err = |detail: String| VerifyError::chain(Tee::Tpm, detail);
    let leaf = chain
        .certs
        .first()
        .ok_or_else(|| chain_err("no certificate".into()))?;
    if chain.anchors.is_empty() {
        return Err(chain_err("no trust anchor configured".into()));
    }
    check_leaf_key(leaf, key)?;
    let mut current = leaf;
    let mut path_len = 1;
    let anchor = loop {
        current.check_valid_at(at, Tee::Tpm)?;
        if let Some(anchor) = chain.anchors.iter().find(|a| *a == current) {
            break anchor;
        }
        if path_len >= MAX_CHAIN_LEN {
            return Err(chain_err(format!(
                "no anchor within {MAX_CHAIN_LEN} certificates"
            )));
        }
        if let Some(anchor) = chain
            .anchors
            .iter()
            .find(|a| current.check_signed_by(a, Tee::Tpm).is_ok())
        {
            anchor.check_valid_at(at, Tee::Tpm)?;
            path_len += 1;
            break anchor;
        }
        let issuer = chain
            .certs
            .iter()
            .skip(1)
            .filter(|c| *c != current && current.names_issuer(c))
            .find(|c| current.check_signed_by(c, Tee::Tpm).is_ok())
            .ok_or_else(|| {
                chain_err(format!(
                    "no trusted issuer for {} (issuer {})",
                    display_name(current),
                    current.issuer_cn()
                ))
            })?;
        if !issuer.is_ca() {
            return Err(chain_err(format!(
                "{} issued {} but is not a CA",
                display_name(issuer),
                display_name(current)
            )));
        }
        current = issuer;
        path_len += 1;
    };
    Ok(ChainClaims {
        sha256: leaf.fingerprint().to_vec().into(),
        subject: leaf.subject_cn().to_string(),
        issuer: leaf.issuer_cn().to_string(),
        not_after: leaf.not_after(),
        anchor_sha256: anchor.fingerprint().to_vec().into(),
        path_len,
    })
}

/// The end-entity certificate must certify exactly the key being used.
fn check_leaf_key(leaf: &Certificate, key: &PublicKey) -> Result<(), VerifyError> {
    let certified = PublicKey::from_certificate(leaf)?;
    if &certified != key {
        return Err(VerifyError::chain(
            Tee::Tpm,
            format!(
                "certificate {} certifies key {}, not {}",
                display_name(leaf),
                hex::encode(certified.fingerprint()),
                hex::encode(key.fingerprint())
            ),
        ));
    }
    Ok(())
}

fn display_name(cert: &Certificate) -> String {
    match cert.subject_cn() {
        "" => format!(
            "certificate {}",
            hex::encode(cert.fingerprint().get(..8).unwrap_or_default())
        ),
        cn => cn.to_string(),
    }
}
