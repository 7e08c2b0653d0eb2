//! The binding key where the hardware cannot hold one: a P-256 key generated in this process's
//! memory (encrypted memory inside a confidential VM), never written anywhere.

use attest_proto::crypto::MemoryKey;
use attest_proto::EcJwk;

use crate::error::Error;

/// A fresh in-memory binding key and its JWK.
pub fn generate() -> Result<(MemoryKey, EcJwk), Error> {
    let key = MemoryKey::generate()?;
    let jwk = EcJwk::from_point(key.public_point())?;
    Ok((key, jwk))
}
