//! The crypto backend: the only module that calls `aws-lc-rs`.
//!
//! Why aws-lc-rs: see `docs/decisions/0001-crypto-backend.md`.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use aws_lc_rs::{agreement, cipher, constant_time, hmac, iv, rand, rsa};

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
    /// ECDSA P-256 SHA-256, fixed-width big-endian `r ‖ s` (TPM ECDSA keys).
    EcdsaP256Sha256Fixed,
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
            S::EcdsaP256Sha256Fixed => &signature::ECDSA_P256_SHA256_FIXED,
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

/// A hash function. SHA-1 is here only because TPM PCR banks, event logs and old name
/// algorithms use it; no signature in this crate is accepted over SHA-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Hash {
    /// SHA-1 (FIPS 180-4), legacy.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Hash {
    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        }
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            Hash::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha384 => hmac::HMAC_SHA384,
            Hash::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn oaep_algorithm(self) -> &'static rsa::OaepAlgorithm {
        match self {
            Hash::Sha1 => &rsa::OAEP_SHA1_MGF1SHA1,
            Hash::Sha256 => &rsa::OAEP_SHA256_MGF1SHA256,
            Hash::Sha384 => &rsa::OAEP_SHA384_MGF1SHA384,
            Hash::Sha512 => &rsa::OAEP_SHA512_MGF1SHA512,
        }
    }

    /// Output length in bytes.
    pub(crate) fn len(self) -> usize {
        self.digest_algorithm().output_len()
    }
}

/// A crypto operation other than signature verification failed (bad key, bad input size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CryptoFailure;

/// `hash` over the concatenation of `parts`.
pub(crate) fn digest(hash: Hash, parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = digest::Context::new(hash.digest_algorithm());
    for part in parts {
        ctx.update(part);
    }
    ctx.finish().as_ref().to_vec()
}

/// HMAC (RFC 2104) with `hash` and `key` over the concatenation of `parts`.
pub(crate) fn hmac(hash: Hash, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let key = hmac::Key::new(hash.hmac_algorithm(), key);
    let mut ctx = hmac::Context::with_key(&key);
    for part in parts {
        ctx.update(part);
    }
    ctx.sign().as_ref().to_vec()
}

/// RSAES-OAEP (RFC 8017 7.1) encryption of `plaintext` to the RSA key in `spki_der` (a DER
/// SubjectPublicKeyInfo), with `hash` for both OAEP and MGF1 and the given label.
pub(crate) fn rsa_oaep_encrypt(
    spki_der: &[u8],
    hash: Hash,
    label: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoFailure> {
    let key = rsa::PublicEncryptingKey::from_der(spki_der).map_err(|_| CryptoFailure)?;
    let key = rsa::OaepPublicEncryptingKey::new(key).map_err(|_| CryptoFailure)?;
    let mut out = vec![0u8; key.ciphertext_size()];
    let len = key
        .encrypt(hash.oaep_algorithm(), plaintext, &mut out, Some(label))
        .map_err(|_| CryptoFailure)?
        .len();
    out.truncate(len);
    Ok(out)
}

/// NIST curves for ECDH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EcdhCurve {
    /// P-256.
    P256,
    /// P-384.
    P384,
}

/// One-pass ECDH (SP 800-56A C(1e, 1s)): an ephemeral key (`ephemeral_private`, a big-endian
/// scalar, or fresh randomness when `None`) agrees with `peer_point` (uncompressed SEC 1).
/// Returns the shared secret Z (the x-coordinate) and the ephemeral public point.
pub(crate) fn ecdh_ephemeral(
    curve: EcdhCurve,
    peer_point: &[u8],
    ephemeral_private: Option<&[u8]>,
) -> Result<(Vec<u8>, Vec<u8>), CryptoFailure> {
    let alg = match curve {
        EcdhCurve::P256 => &agreement::ECDH_P256,
        EcdhCurve::P384 => &agreement::ECDH_P384,
    };
    let private = match ephemeral_private {
        Some(scalar) => {
            agreement::PrivateKey::from_private_key(alg, scalar).map_err(|_| CryptoFailure)?
        }
        None => agreement::PrivateKey::generate(alg).map_err(|_| CryptoFailure)?,
    };
    let public = private
        .compute_public_key()
        .map_err(|_| CryptoFailure)?
        .as_ref()
        .to_vec();
    let peer = agreement::UnparsedPublicKey::new(alg, peer_point);
    let z = agreement::agree(&private, peer, CryptoFailure, |z| Ok(z.to_vec()))?;
    Ok((z, public))
}

/// AES in CFB-128 mode with an all-zero IV, in place; the key length (16 or 32 bytes) picks
/// AES-128 or AES-256. TPM 2.0 Part 1 24.4 uses this for credential blobs: each key encrypts
/// exactly one message, so the fixed IV is safe there and nowhere else.
pub(crate) fn aes_cfb_zero_iv_encrypt(key: &[u8], data: &mut [u8]) -> Result<(), CryptoFailure> {
    let alg = match key.len() {
        16 => &cipher::AES_128,
        32 => &cipher::AES_256,
        _ => return Err(CryptoFailure),
    };
    let key = cipher::UnboundCipherKey::new(alg, key).map_err(|_| CryptoFailure)?;
    let key = cipher::EncryptingKey::cfb128(key).map_err(|_| CryptoFailure)?;
    let context = cipher::EncryptionContext::Iv128(iv::FixedLength::from([0u8; 16]));
    key.less_safe_encrypt(data, context)
        .map(|_| ())
        .map_err(|_| CryptoFailure)
}

/// Fills `dest` from the system's cryptographically secure random generator.
pub(crate) fn random_fill(dest: &mut [u8]) -> Result<(), CryptoFailure> {
    rand::fill(dest).map_err(|_| CryptoFailure)
}

/// Equality in time independent of the contents (not of the lengths).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
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
    fn hash_and_hmac_known_answers() {
        // FIPS 180-4 "abc" examples.
        assert_eq!(
            hex::encode(digest(Hash::Sha1, &[b"a", b"bc"])),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(digest(Hash::Sha256, &[b"abc"]), sha256(b"abc"));
        assert_eq!(
            hex::encode(digest(Hash::Sha384, &[b"abc"])),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7"
        );
        assert_eq!(Hash::Sha512.len(), 64);
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac(
                Hash::Sha256,
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn aes_cfb_known_answer() {
        // CFB with a zero IV encrypts block 1 as P1 xor AES(K, 0^128); with P1 = 0 that is
        // AES(K, 0^128), here for the SP 800-38A key (computed with an independent AES-ECB).
        let key = hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
        let mut zeros = [0u8; 16];
        aes_cfb_zero_iv_encrypt(&key, &mut zeros).unwrap();
        assert_eq!(hex::encode(zeros), "7df76b0c1ab899b33e42f047b91b546f");
        assert!(aes_cfb_zero_iv_encrypt(&[0u8; 15], &mut [0u8; 4]).is_err());
    }

    #[test]
    fn garbage_keys_are_rejected_not_panicking() {
        assert!(VerifyingKey::new(SignatureScheme::EcdsaP384Sha384Fixed, &[4, 1, 2]).is_err());
        assert!(verify(SignatureScheme::RsaPssSha384, b"", b"m", b"s").is_err());
    }
}
