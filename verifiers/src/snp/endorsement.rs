//! The endorsement key (VCEK or VLEK) that signs a report: its chain to a pinned ARK, the
//! TCB and hwID facts its AMD extensions carry, and a cache of chains already verified.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::anchors::{AmdTrustAnchors, Generation};
use crate::crypto::{self, SignatureScheme, VerifyingKey};
use crate::x509::{self, Certificate, KeyType, ValidityWindow};
use crate::{HexBytes, Tee, UnixTime, VerifyError};

/// AMD's VCEK extension OIDs (AMD "Versioned Chip Endorsement Key (VCEK) Certificate and KDS
/// Interface Specification", table "VCEK Certificate Extensions").
mod oid {
    pub const BOOTLOADER: &str = "1.3.6.1.4.1.3704.1.3.1";
    pub const TEE: &str = "1.3.6.1.4.1.3704.1.3.2";
    pub const SNP: &str = "1.3.6.1.4.1.3704.1.3.3";
    pub const MICROCODE: &str = "1.3.6.1.4.1.3704.1.3.8";
    pub const FMC: &str = "1.3.6.1.4.1.3704.1.3.9";
    pub const HW_ID: &str = "1.3.6.1.4.1.3704.1.4";
}

/// Which key signs the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Signer {
    /// Versioned Chip Endorsement Key: per chip and TCB, issued by the ASK.
    Vcek,
    /// Versioned Loaded Endorsement Key: per cloud provider, issued by the ASVK.
    Vlek,
}

impl Signer {
    /// `"VCEK"` or `"VLEK"`.
    pub fn name(self) -> &'static str {
        match self {
            Signer::Vcek => "VCEK",
            Signer::Vlek => "VLEK",
        }
    }
}

/// TCB security patch levels from the endorsement certificate's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CertTcb {
    pub bootloader: u64,
    pub tee: u64,
    pub snp: u64,
    pub microcode: u64,
    /// Turin only.
    pub fmc: Option<u64>,
}

/// A VCEK/VLEK whose chain to a trusted ARK verified, with everything the per-report checks
/// need. Time-independent; validity is checked per report against the stored windows.
#[derive(Debug)]
pub(crate) struct Endorsement {
    pub generation: Generation,
    pub signer: Signer,
    pub key: VerifyingKey,
    /// hwID (VCEK only): 64 bytes, or 8 on Turin.
    pub hw_id: Option<Vec<u8>>,
    pub tcb: CertTcb,
    /// SHA-256 of the VCEK/VLEK certificate.
    pub fingerprint: HexBytes,
    /// Whether the chain ends at a compiled-in AMD root.
    pub builtin_root: bool,
    chain_validity: [ValidityWindow; 3],
}

impl Endorsement {
    /// Checks that every certificate of the chain is valid at `at`.
    pub fn check_valid_at(&self, at: UnixTime) -> Result<(), VerifyError> {
        self.chain_validity
            .iter()
            .try_for_each(|v| v.check(at, Tee::SevSnp))
    }
}

/// Verifies the endorsement certificate(s) in `bundle` to `anchors`.
///
/// The bundle holds exactly one VCEK or VLEK (the only non-CA certificate) and optionally the
/// ASK/ASVK and ARK; those extras are accepted only if they are byte-identical to a trusted
/// anchor, and are never used as anchors themselves.
pub(crate) fn verify_chain(
    bundle: &[u8],
    anchors: &AmdTrustAnchors,
) -> Result<Endorsement, VerifyError> {
    let certs = x509::parse_bundle(bundle)?;
    let (leaves, extras): (Vec<_>, Vec<_>) = certs.iter().partition(|c| !c.is_ca());
    let [leaf] = leaves.as_slice() else {
        return Err(VerifyError::chain(
            Tee::SevSnp,
            format!(
                "expected exactly one VCEK or VLEK in the certificate input, found {}",
                leaves.len()
            ),
        ));
    };
    if let Some(stranger) = extras.iter().find(|c| !anchors.contains(c)) {
        return Err(VerifyError::chain(
            Tee::SevSnp,
            format!(
                "certificate {:?} in the input is not a pinned AMD certificate",
                stranger.subject_cn()
            ),
        ));
    }
    let signer = match leaf.subject_cn() {
        "SEV-VCEK" => Signer::Vcek,
        "SEV-VLEK" => Signer::Vlek,
        other => {
            return Err(VerifyError::chain(
                Tee::SevSnp,
                format!("leaf certificate {other:?} is neither SEV-VCEK nor SEV-VLEK"),
            ))
        }
    };
    if leaf.key_type() != KeyType::EcP384 {
        return Err(VerifyError::chain(
            Tee::SevSnp,
            format!("{} key is not ECDSA P-384", signer.name()),
        ));
    }

    // The generation comes from the issuing certificate, never from the report.
    let mut last_error = None;
    for set in anchors.sets() {
        let intermediate = match signer {
            Signer::Vcek => set.ask(),
            Signer::Vlek => set.asvk(),
        };
        let Some(intermediate) = intermediate.filter(|i| leaf.names_issuer(i)) else {
            continue;
        };
        match leaf.check_signed_by(intermediate, Tee::SevSnp) {
            Ok(()) => {
                let mut e = endorsement(leaf, intermediate, set.ark(), set.generation(), signer)?;
                e.builtin_root = set.is_builtin();
                return Ok(e);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        let role = match signer {
            Signer::Vcek => "ASK",
            Signer::Vlek => "ASVK",
        };
        VerifyError::chain(
            Tee::SevSnp,
            format!(
                "{} issuer {:?} is not a trusted AMD {role}",
                signer.name(),
                leaf.issuer_cn()
            ),
        )
    }))
}

fn endorsement(
    leaf: &Certificate,
    intermediate: &Certificate,
    ark: &Certificate,
    generation: Generation,
    signer: Signer,
) -> Result<Endorsement, VerifyError> {
    let key = VerifyingKey::new(SignatureScheme::EcdsaP384Sha384Fixed, leaf.public_key())
        .map_err(|_| VerifyError::chain(Tee::SevSnp, "VCEK public key is not a P-384 point"))?;
    let spl = |oid: &str, name: &str| -> Result<u64, VerifyError> {
        let value = leaf.extension(oid).ok_or_else(|| {
            VerifyError::chain(
                Tee::SevSnp,
                format!("{} has no {name} SPL extension", signer.name()),
            )
        })?;
        der_small_uint(value).ok_or_else(|| {
            VerifyError::malformed(
                "VCEK extension",
                format!("{name} SPL is not a small INTEGER"),
            )
        })
    };
    let tcb = CertTcb {
        bootloader: spl(oid::BOOTLOADER, "bootloader")?,
        tee: spl(oid::TEE, "TEE")?,
        snp: spl(oid::SNP, "SNP")?,
        microcode: spl(oid::MICROCODE, "microcode")?,
        fmc: match generation {
            Generation::Turin => Some(spl(oid::FMC, "FMC")?),
            _ => None,
        },
    };
    let hw_id = match signer {
        Signer::Vlek => None,
        Signer::Vcek => {
            let expected_len = match generation {
                Generation::Turin => 8,
                _ => 64,
            };
            let raw = leaf
                .extension(oid::HW_ID)
                .ok_or_else(|| VerifyError::chain(Tee::SevSnp, "VCEK has no hwID extension"))?;
            Some(hw_id(raw, expected_len).ok_or_else(|| {
                VerifyError::malformed(
                    "VCEK extension",
                    format!("hwID is {} bytes, expected {expected_len}", raw.len()),
                )
            })?)
        }
    };
    Ok(Endorsement {
        generation,
        signer,
        key,
        hw_id,
        tcb,
        fingerprint: HexBytes::from(leaf.fingerprint().to_vec()),
        builtin_root: false,
        chain_validity: [
            ValidityWindow::of(leaf),
            ValidityWindow::of(intermediate),
            ValidityWindow::of(ark),
        ],
    })
}

/// The hwID extnValue: raw bytes as AMD's KDS issues them, or (as some tooling writes them)
/// wrapped in a DER OCTET STRING.
fn hw_id(raw: &[u8], expected_len: usize) -> Option<Vec<u8>> {
    if raw.len() == expected_len {
        return Some(raw.to_vec());
    }
    match raw {
        [0x04, len, rest @ ..]
            if usize::from(*len) == expected_len && rest.len() == expected_len =>
        {
            Some(rest.to_vec())
        }
        _ => None,
    }
}

/// A DER INTEGER holding a non-negative value below 2^63 (the SPL extensions).
fn der_small_uint(value: &[u8]) -> Option<u64> {
    let [0x02, len, content @ ..] = value else {
        return None;
    };
    if usize::from(*len) != content.len() || content.is_empty() || content.len() > 8 {
        return None;
    }
    if content.first().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    Some(
        content
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
    )
}

/// Upper bound on cached chains; when reached, the cache is cleared (a chip fleet re-fills it
/// at one chain verification per VCEK).
const CACHE_CAPACITY: usize = 4096;

/// Verified chains keyed by the SHA-256 of the exact certificate input.
#[derive(Debug, Default)]
pub(crate) struct ChainCache {
    entries: RwLock<HashMap<[u8; 32], Arc<Endorsement>>>,
}

impl ChainCache {
    /// The verified endorsement for `bundle`, from the cache or by verifying it now.
    pub fn get_or_verify(
        &self,
        bundle: &[u8],
        anchors: &AmdTrustAnchors,
    ) -> Result<Arc<Endorsement>, VerifyError> {
        let key = crypto::sha256(bundle);
        if let Some(hit) = self.entries.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(hit);
        }
        let endorsement = Arc::new(verify_chain(bundle, anchors)?);
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= CACHE_CAPACITY {
                map.clear();
            }
            map.insert(key, Arc::clone(&endorsement));
        }
        Ok(endorsement)
    }

    /// Number of cached chains.
    pub fn len(&self) -> usize {
        self.entries.read().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_uint_decoding() {
        assert_eq!(der_small_uint(&[0x02, 0x01, 0x73]), Some(115));
        assert_eq!(der_small_uint(&[0x02, 0x02, 0x00, 0xdb]), Some(219));
        assert_eq!(der_small_uint(&[0x02, 0x01, 0x80]), None);
        assert_eq!(der_small_uint(&[0x02, 0x02, 0x01]), None);
        assert_eq!(der_small_uint(&[0x04, 0x01, 0x01]), None);
        assert_eq!(der_small_uint(&[]), None);
    }

    #[test]
    fn hw_id_forms() {
        let raw = [7u8; 64];
        assert_eq!(hw_id(&raw, 64).unwrap(), raw.to_vec());
        let mut wrapped = vec![0x04, 64];
        wrapped.extend_from_slice(&raw);
        assert_eq!(hw_id(&wrapped, 64).unwrap(), raw.to_vec());
        assert!(hw_id(&raw[..10], 64).is_none());
    }
}
