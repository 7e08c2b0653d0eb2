//! The crypto backend: the only module that calls `aws-lc-rs`.
//!
//! Why aws-lc-rs: see `docs/decisions/0001-crypto-backend.md`.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};

/// A signature scheme this crate verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SignatureScheme {
    /// RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32.
    RsaPssSha256,
    /// RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48 (AMD's certificates).
    RsaPssSha384,
    /// RSASSA-PSS, SHA-512, MGF1-SHA-512, salt 64.
    RsaPssSha512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RsaPkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1Sha512,
    /// ECDSA P-256 SHA-256, DER-encoded signature.
    EcdsaP256Sha256Der,
    /// ECDSA P-384 SHA-384, DER-encoded signature.
    EcdsaP384Sha384Der,
    /// ECDSA P-384 SHA-384, fixed-width big-endian `r ‖ s`.
    EcdsaP384Sha384Fixed,
}

impl SignatureScheme {
    fn algorithm(self) -> &'static dyn VerificationAlgorithm {
        use SignatureScheme as S;
        match self {
            S::RsaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
            S::RsaPssSha384 => &signature::RSA_PSS_2048_8192_SHA384,
            S::RsaPssSha512 => &signature::RSA_PSS_2048_8192_SHA512,
            S::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            S::RsaPkcs1Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            S::RsaPkcs1Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            S::EcdsaP256Sha256Der => &signature::ECDSA_P256_SHA256_ASN1,
            S::EcdsaP384Sha384Der => &signature::ECDSA_P384_SHA384_ASN1,
            S::EcdsaP384Sha384Fixed => &signature::ECDSA_P384_SHA384_FIXED,
        }
    }
}

/// The signature did not verify, or the key was unusable for the scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadSignature;

/// A public key parsed once for one scheme, for repeated verifications.
///
/// RSA keys are PKCS#1 `RSAPublicKey` DER; EC keys are SEC1 uncompressed points — exactly the
/// contents of an X.509 `subjectPublicKey` BIT STRING.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    key: ParsedPublicKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyingKey")
    }
}

impl VerifyingKey {
    /// Parses `public_key` for `scheme`; rejects keys of the wrong type, curve or size.
    pub(crate) fn new(scheme: SignatureScheme, public_key: &[u8]) -> Result<Self, BadSignature> {
        ParsedPublicKey::new(scheme.algorithm(), public_key)
            .map(|key| VerifyingKey { key })
            .map_err(|_| BadSignature)
    }

    /// Verifies `sig` over `message`.
    pub(crate) fn verify(&self, message: &[u8], sig: &[u8]) -> Result<(), BadSignature> {
        self.key.verify_sig(message, sig).map_err(|_| BadSignature)
    }
}

/// One-shot verification of `sig` over `message` with `public_key` under `scheme`.
pub(crate) fn verify(
    scheme: SignatureScheme,
    public_key: &[u8],
    message: &[u8],
    sig: &[u8],
) -> Result<(), BadSignature> {
    signature::UnparsedPublicKey::new(scheme.algorithm(), public_key)
        .verify(message, sig)
        .map_err(|_| BadSignature)
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn garbage_keys_are_rejected_not_panicking() {
        assert!(VerifyingKey::new(SignatureScheme::EcdsaP384Sha384Fixed, &[4, 1, 2]).is_err());
        assert!(verify(SignatureScheme::RsaPssSha384, b"", b"m", b"s").is_err());
    }
}
