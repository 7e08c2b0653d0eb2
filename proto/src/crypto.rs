//! The crate's crypto backend: the only module here that calls `aws-lc-rs`.

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// The crypto backend failed (no randomness, a key that cannot be made).
#[derive(Debug, thiserror::Error)]
#[error("crypto failure: {0}")]
pub struct CryptoError(pub &'static str);

/// `N` random bytes from the system CSPRNG.
pub fn random<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| CryptoError("system randomness unavailable"))?;
    Ok(out)
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// SHA-512 over the concatenation of `parts`.
pub fn sha512_parts(parts: &[&[u8]]) -> [u8; 64] {
    let mut ctx = digest::Context::new(&digest::SHA512);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; 64];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// An ES256 key that lives only in this process's memory: generated here, never serialised.
/// aws-lc frees key material with `OPENSSL_free`, which cleanses it, so the private scalar is
/// zeroed when the key is dropped.
pub struct MemoryKey {
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for MemoryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryKey(P-256)")
    }
}

impl MemoryKey {
    /// A fresh P-256 key.
    pub fn generate() -> Result<Self, CryptoError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| CryptoError("cannot generate a P-256 key"))?;
        Ok(MemoryKey { pair })
    }

    /// The uncompressed public point (0x04 ‖ x ‖ y).
    pub fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// ES256 signature (`r ‖ s`, 64 bytes) over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(|_| CryptoError("signing failed"))?;
        Ok(sig.as_ref().to_vec())
    }
}
