//! TPM 2.0 constants: algorithm identifiers (TPM 2.0 Library Part 2, rev 1.59, 6.3
//! `TPM_ALG_ID`), ECC curves (6.4 `TPM_ECC_CURVE`), structure tags (6.9 `TPM_ST`), the
//! `TPM_GENERATED_VALUE` magic (6.2) and object attributes (8.3 `TPMA_OBJECT`).

use std::fmt;

use serde::Serialize;

use crate::crypto;

/// `TPM_GENERATED_VALUE`: every structure the TPM signs for attestation starts with it, so a
/// restricted signing key never signs outside data that looks like an attestation.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_CERTIFY`: a TPMS_ATTEST produced by TPM2_Certify.
pub const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;
/// `TPM_ST_ATTEST_QUOTE`: a TPMS_ATTEST produced by TPM2_Quote.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;

/// `TPM_ALG_RSA`.
pub const TPM_ALG_RSA: u16 = 0x0001;
/// `TPM_ALG_SHA1`.
pub const TPM_ALG_SHA1: u16 = 0x0004;
/// `TPM_ALG_HMAC`.
pub const TPM_ALG_HMAC: u16 = 0x0005;
/// `TPM_ALG_AES`.
pub const TPM_ALG_AES: u16 = 0x0006;
/// `TPM_ALG_MGF1`.
pub const TPM_ALG_MGF1: u16 = 0x0007;
/// `TPM_ALG_KEYEDHASH`.
pub const TPM_ALG_KEYEDHASH: u16 = 0x0008;
/// `TPM_ALG_XOR`.
pub const TPM_ALG_XOR: u16 = 0x000A;
/// `TPM_ALG_SHA256`.
pub const TPM_ALG_SHA256: u16 = 0x000B;
/// `TPM_ALG_SHA384`.
pub const TPM_ALG_SHA384: u16 = 0x000C;
/// `TPM_ALG_SHA512`.
pub const TPM_ALG_SHA512: u16 = 0x000D;
/// `TPM_ALG_NULL`.
pub const TPM_ALG_NULL: u16 = 0x0010;
/// `TPM_ALG_RSASSA` (RSASSA-PKCS1-v1_5).
pub const TPM_ALG_RSASSA: u16 = 0x0014;
/// `TPM_ALG_RSAES` (RSAES-PKCS1-v1_5).
pub const TPM_ALG_RSAES: u16 = 0x0015;
/// `TPM_ALG_RSAPSS`.
pub const TPM_ALG_RSAPSS: u16 = 0x0016;
/// `TPM_ALG_OAEP`.
pub const TPM_ALG_OAEP: u16 = 0x0017;
/// `TPM_ALG_ECDSA`.
pub const TPM_ALG_ECDSA: u16 = 0x0018;
/// `TPM_ALG_ECDH`.
pub const TPM_ALG_ECDH: u16 = 0x0019;
/// `TPM_ALG_ECDAA`.
pub const TPM_ALG_ECDAA: u16 = 0x001A;
/// `TPM_ALG_SM2`.
pub const TPM_ALG_SM2: u16 = 0x001B;
/// `TPM_ALG_ECSCHNORR`.
pub const TPM_ALG_ECSCHNORR: u16 = 0x001C;
/// `TPM_ALG_ECMQV`.
pub const TPM_ALG_ECMQV: u16 = 0x001D;
/// `TPM_ALG_KDF1_SP800_56A`.
pub const TPM_ALG_KDF1_SP800_56A: u16 = 0x0020;
/// `TPM_ALG_KDF2`.
pub const TPM_ALG_KDF2: u16 = 0x0021;
/// `TPM_ALG_KDF1_SP800_108`.
pub const TPM_ALG_KDF1_SP800_108: u16 = 0x0022;
/// `TPM_ALG_ECC`.
pub const TPM_ALG_ECC: u16 = 0x0023;
/// `TPM_ALG_SYMCIPHER`.
pub const TPM_ALG_SYMCIPHER: u16 = 0x0025;
/// `TPM_ALG_CFB`.
pub const TPM_ALG_CFB: u16 = 0x0043;

/// `TPM_ECC_NIST_P256`.
pub const TPM_ECC_NIST_P256: u16 = 0x0003;
/// `TPM_ECC_NIST_P384`.
pub const TPM_ECC_NIST_P384: u16 = 0x0004;

/// A hash algorithm a TPM uses for PCR banks, Names and signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlg {
    /// SHA-1 (PCR banks and event logs only; never accepted for signatures).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// All supported algorithms.
    pub const ALL: [HashAlg; 4] = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    /// From a `TPM_ALG_ID`; `None` for anything that is not a supported hash.
    pub fn from_tpm(id: u16) -> Option<Self> {
        match id {
            TPM_ALG_SHA1 => Some(HashAlg::Sha1),
            TPM_ALG_SHA256 => Some(HashAlg::Sha256),
            TPM_ALG_SHA384 => Some(HashAlg::Sha384),
            TPM_ALG_SHA512 => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    /// The `TPM_ALG_ID`.
    pub fn tpm_id(self) -> u16 {
        match self {
            HashAlg::Sha1 => TPM_ALG_SHA1,
            HashAlg::Sha256 => TPM_ALG_SHA256,
            HashAlg::Sha384 => TPM_ALG_SHA384,
            HashAlg::Sha512 => TPM_ALG_SHA512,
        }
    }

    /// From the names used in claims and PCR JSON (`sha1`, `sha256`, `sha384`, `sha512`).
    pub fn from_name(name: &str) -> Option<Self> {
        HashAlg::ALL.into_iter().find(|h| h.name() == name)
    }

    /// The lowercase name used in claims.
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    /// Digest size in bytes.
    pub fn digest_len(self) -> usize {
        self.crypto().len()
    }

    /// The algorithm whose digest is `len` bytes long.
    pub fn from_digest_len(len: usize) -> Option<Self> {
        HashAlg::ALL.into_iter().find(|h| h.digest_len() == len)
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        crypto::digest(self.crypto(), &[data])
    }

    pub(crate) fn digest_parts(self, parts: &[&[u8]]) -> Vec<u8> {
        crypto::digest(self.crypto(), parts)
    }

    pub(crate) fn crypto(self) -> crypto::Hash {
        match self {
            HashAlg::Sha1 => crypto::Hash::Sha1,
            HashAlg::Sha256 => crypto::Hash::Sha256,
            HashAlg::Sha384 => crypto::Hash::Sha384,
            HashAlg::Sha512 => crypto::Hash::Sha512,
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for HashAlg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// `TPMA_OBJECT` (Part 2, 8.3): the attributes of a TPM object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectAttributes(pub u32);

impl ObjectAttributes {
    /// The hierarchy of the object may not change (it cannot be duplicated).
    pub const FIXED_TPM: u32 = 1 << 1;
    /// Saved contexts of this object may not be loaded after a TPM Restart.
    pub const ST_CLEAR: u32 = 1 << 2;
    /// The parent of the object may not change.
    pub const FIXED_PARENT: u32 = 1 << 4;
    /// The TPM generated the sensitive part of the object (the private key never existed
    /// outside it).
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    /// User role actions may use an authValue.
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    /// Admin role actions need a policy session.
    pub const ADMIN_WITH_POLICY: u32 = 1 << 7;
    /// Not subject to dictionary-attack protection.
    pub const NO_DA: u32 = 1 << 10;
    /// Duplication needs an inner wrapper.
    pub const ENCRYPTED_DUPLICATION: u32 = 1 << 11;
    /// Key usage is restricted to structures the TPM formats (TPM_GENERATED for signing keys).
    pub const RESTRICTED: u32 = 1 << 16;
    /// A decryption key.
    pub const DECRYPT: u32 = 1 << 17;
    /// A signing key (`sign` / `encrypt`).
    pub const SIGN_ENCRYPT: u32 = 1 << 18;
    /// May sign X.509 certificates.
    pub const X509_SIGN: u32 = 1 << 19;

    const NAMES: [(u32, &'static str); 12] = [
        (Self::FIXED_TPM, "fixedTPM"),
        (Self::ST_CLEAR, "stClear"),
        (Self::FIXED_PARENT, "fixedParent"),
        (Self::SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
        (Self::USER_WITH_AUTH, "userWithAuth"),
        (Self::ADMIN_WITH_POLICY, "adminWithPolicy"),
        (Self::NO_DA, "noDA"),
        (Self::ENCRYPTED_DUPLICATION, "encryptedDuplication"),
        (Self::RESTRICTED, "restricted"),
        (Self::DECRYPT, "decrypt"),
        (Self::SIGN_ENCRYPT, "sign"),
        (Self::X509_SIGN, "x509sign"),
    ];

    /// Whether every bit of `bits` is set.
    pub fn contains(self, bits: u32) -> bool {
        self.0 & bits == bits
    }

    /// The names of the set attributes (Part 2 spelling), in bit order.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(bit, _)| self.contains(*bit))
            .map(|(_, name)| *name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ids_and_names_round_trip() {
        for h in HashAlg::ALL {
            assert_eq!(HashAlg::from_tpm(h.tpm_id()), Some(h));
            assert_eq!(HashAlg::from_name(h.name()), Some(h));
            assert_eq!(HashAlg::from_digest_len(h.digest_len()), Some(h));
        }
        assert_eq!(HashAlg::from_tpm(TPM_ALG_NULL), None);
        assert_eq!(HashAlg::Sha384.digest_len(), 48);
    }

    #[test]
    fn gce_ak_attribute_names() {
        assert_eq!(
            ObjectAttributes(0x0005_0072).names(),
            [
                "fixedTPM",
                "fixedParent",
                "sensitiveDataOrigin",
                "userWithAuth",
                "restricted",
                "sign"
            ]
        );
    }
}
