//! The document's certificate chain, `certificate` → `cabundle[n-1]` → … → `cabundle[0]`, to a
//! trusted root, and a cache of chains already verified.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::anchors::NitroTrustAnchors;
use crate::crypto::{self, SignatureScheme, VerifyingKey};
use crate::x509::{Certificate, KeyType, ValidityWindow};
use crate::{HexBytes, Tee, UnixTime, VerifyError};

/// A chain whose signatures verified up to a trusted root: the enclave certificate's key and
/// the facts the per-document checks need. Time-independent; validity is checked per document
/// against the stored windows.
#[derive(Debug)]
pub(crate) struct VerifiedChain {
    /// The enclave (leaf) certificate's P-384 key, parsed once.
    pub key: VerifyingKey,
    /// SHA-256 of the enclave certificate.
    pub leaf_sha256: HexBytes,
    /// Whether the chain ends at the compiled-in AWS root.
    pub vendor_root: bool,
    /// Leaf first, root last.
    validity: Vec<ValidityWindow>,
}

impl VerifiedChain {
    /// Checks that every certificate of the chain is valid at `at` (RFC 5280 6.1.3 (a)(2)).
    pub fn check_valid_at(&self, at: UnixTime) -> Result<(), VerifyError> {
        self.validity
            .iter()
            .try_for_each(|v| v.check(at, Tee::AwsNitro))
    }
}

/// Verifies `leaf` → `cabundle[n-1]` → … → `cabundle[0]`, with `cabundle[0]` byte-identical to
/// a trusted root.
///
/// Rules: each certificate is issued (names and ECDSA P-384/SHA-384 signature) by the next one
/// up (RFC 5280 6.1.3 (a)(1), (a)(4)); every issuer is a CA (RFC 5280 4.2.1.9); the enclave
/// certificate is not a CA; every key is P-384 (the NSM's hierarchy uses nothing else).
pub(crate) fn verify_chain(
    leaf: &[u8],
    cabundle: &[Vec<u8>],
    anchors: &NitroTrustAnchors,
) -> Result<VerifiedChain, VerifyError> {
    let (root_der, intermediates) = cabundle
        .split_first()
        .ok_or_else(|| VerifyError::chain(Tee::AwsNitro, "cabundle is empty"))?;
    let root = anchors.find(root_der).ok_or_else(|| {
        VerifyError::chain(
            Tee::AwsNitro,
            format!(
                "cabundle[0] (SHA-256 {}) is not a trusted root",
                hex::encode(crypto::sha256(root_der))
            ),
        )
    })?;
    // Root first, leaf last.
    let mut chain = Vec::with_capacity(cabundle.len() + 1);
    chain.push(root.certificate().clone());
    for der in intermediates {
        chain.push(Certificate::from_der(der)?);
    }
    let leaf = Certificate::from_der(leaf)?;
    if leaf.is_ca() {
        return Err(VerifyError::chain(
            Tee::AwsNitro,
            format!("enclave certificate {:?} is a CA", leaf.subject_cn()),
        ));
    }
    chain.push(leaf);

    let mut issuer: Option<&Certificate> = None;
    for (position, cert) in chain.iter().enumerate() {
        if cert.key_type() != KeyType::EcP384 {
            return Err(VerifyError::chain(
                Tee::AwsNitro,
                format!("certificate {:?} key is not ECDSA P-384", cert.subject_cn()),
            ));
        }
        if let Some(issuer) = issuer {
            if !issuer.is_ca() {
                return Err(VerifyError::chain(
                    Tee::AwsNitro,
                    format!(
                        "cabundle[{}] {:?} issues a certificate but is not a CA",
                        position - 1,
                        issuer.subject_cn()
                    ),
                ));
            }
            cert.check_signed_by(issuer, Tee::AwsNitro)?;
        }
        issuer = Some(cert);
    }

    let leaf = chain
        .last()
        .ok_or_else(|| VerifyError::chain(Tee::AwsNitro, "empty chain"))?;
    let key = VerifyingKey::new(SignatureScheme::EcdsaP384Sha384Fixed, leaf.public_key()).map_err(
        |_| {
            VerifyError::chain(
                Tee::AwsNitro,
                "enclave certificate key is not a P-384 point",
            )
        },
    )?;
    Ok(VerifiedChain {
        key,
        leaf_sha256: HexBytes::from(leaf.fingerprint().to_vec()),
        vendor_root: root.is_builtin(),
        validity: chain.iter().rev().map(ValidityWindow::of).collect(),
    })
}

/// Upper bound on cached chains; when reached, the cache is cleared. Enclave certificates live
/// about 3 hours, so a fleet re-fills it at one chain verification per enclave and rotation.
const CACHE_CAPACITY: usize = 4096;

/// Verified chains keyed by the fingerprints of the exact certificates: SHA-256 over the
/// SHA-256 of the enclave certificate and of each `cabundle` entry in order.
///
/// A chain is inserted only after a document signed under it has fully verified
/// ([`ChainCache::insert`] is the caller's last step), so documents with broken signatures —
/// including ones carrying re-encoded variants of real certificates, which a lenient DER
/// parser may accept — can neither fill nor flush the cache.
#[derive(Debug, Default)]
pub(crate) struct ChainCache {
    entries: RwLock<HashMap<[u8; 32], Arc<VerifiedChain>>>,
}

/// The cache key of a chain.
pub(crate) type ChainKey = [u8; 32];

impl ChainCache {
    /// The key of these certificates, and their verified chain if it is cached.
    pub fn lookup(
        &self,
        leaf: &[u8],
        cabundle: &[Vec<u8>],
    ) -> (ChainKey, Option<Arc<VerifiedChain>>) {
        let mut fingerprints = Vec::with_capacity(32 * (cabundle.len() + 1));
        fingerprints.extend_from_slice(&crypto::sha256(leaf));
        for der in cabundle {
            fingerprints.extend_from_slice(&crypto::sha256(der));
        }
        let key = crypto::sha256(&fingerprints);
        let hit = self.entries.read().ok().and_then(|m| m.get(&key).cloned());
        (key, hit)
    }

    /// Caches a chain under which a document has just verified.
    pub fn insert(&self, key: ChainKey, chain: Arc<VerifiedChain>) {
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= CACHE_CAPACITY && !map.contains_key(&key) {
                map.clear();
            }
            map.insert(key, chain);
        }
    }

    /// Number of cached chains.
    pub fn len(&self) -> usize {
        self.entries.read().map(|m| m.len()).unwrap_or(0)
    }
}
