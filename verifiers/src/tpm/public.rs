//! TPM object public areas (`TPMT_PUBLIC`, `TPM2B_PUBLIC`; TPM 2.0 Library Part 2, rev 1.59,
//! 12.2), their Names (Part 1, 16), and the public keys they hold, which also come as X.509
//! SubjectPublicKeyInfo.

use super::alg::{
    HashAlg, ObjectAttributes, TPM_ALG_ECC, TPM_ALG_ECDAA, TPM_ALG_ECDH, TPM_ALG_ECDSA,
    TPM_ALG_ECMQV, TPM_ALG_ECSCHNORR, TPM_ALG_KDF1_SP800_108, TPM_ALG_KDF1_SP800_56A, TPM_ALG_KDF2,
    TPM_ALG_KEYEDHASH, TPM_ALG_MGF1, TPM_ALG_NULL, TPM_ALG_OAEP, TPM_ALG_RSA, TPM_ALG_RSAES,
    TPM_ALG_RSAPSS, TPM_ALG_RSASSA, TPM_ALG_SM2, TPM_ALG_SYMCIPHER, TPM_ALG_XOR, TPM_ECC_NIST_P256,
    TPM_ECC_NIST_P384,
};
use super::der;
use super::structures::{Signature, MAX_DIGEST_BYTES, MAX_ECC_KEY_BYTES, MAX_RSA_KEY_BYTES};
use crate::crypto::{self, SignatureScheme};
use crate::reader::Reader;
use crate::x509::{self, Certificate, KeyType, SubjectPublicKey};
use crate::{Tee, VerifyError};

/// `TPMT_SYM_DEF_OBJECT` (Part 2, 11.1.7) when not `TPM_ALG_NULL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymmetricDef {
    /// Block cipher (`TPM_ALG_AES`, …).
    pub algorithm: u16,
    /// Key size in bits.
    pub key_bits: u16,
    /// Mode (`TPM_ALG_CFB` for storage keys).
    pub mode: u16,
}

/// An asymmetric or KDF scheme (`TPMT_RSA_SCHEME`, `TPMT_ECC_SCHEME`, `TPMT_KDF_SCHEME`) when not
/// `TPM_ALG_NULL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    /// The scheme's `TPM_ALG_ID`.
    pub scheme: u16,
    /// Its hash (`TPM_ALG_NULL` for RSAES, which has none).
    pub hash: u16,
    /// ECDAA's commit count.
    pub count: Option<u16>,
}

/// `TPMU_PUBLIC_PARMS` for the two asymmetric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parameters {
    /// `TPMS_RSA_PARMS` (Part 2, 12.2.3.5).
    Rsa {
        /// Symmetric algorithm of a storage key (None for signing keys).
        symmetric: Option<SymmetricDef>,
        /// Default scheme (mandatory for a restricted signing key).
        scheme: Option<Scheme>,
        /// Modulus size in bits.
        key_bits: u16,
        /// Public exponent; 0 means 65537.
        exponent: u32,
    },
    /// `TPMS_ECC_PARMS` (Part 2, 12.2.3.6).
    Ecc {
        /// Symmetric algorithm of a storage key.
        symmetric: Option<SymmetricDef>,
        /// Default scheme.
        scheme: Option<Scheme>,
        /// `TPM_ECC_CURVE`.
        curve: u16,
        /// Key derivation function.
        kdf: Option<Scheme>,
    },
}

impl Parameters {
    /// The symmetric definition (storage keys such as EKs).
    pub fn symmetric(&self) -> Option<SymmetricDef> {
        match self {
            Parameters::Rsa { symmetric, .. } | Parameters::Ecc { symmetric, .. } => *symmetric,
        }
    }

    /// The key's default scheme.
    pub fn scheme(&self) -> Option<Scheme> {
        match self {
            Parameters::Rsa { scheme, .. } | Parameters::Ecc { scheme, .. } => *scheme,
        }
    }
}

/// `TPMU_PUBLIC_ID`: the public key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unique {
    /// RSA modulus (`TPM2B_PUBLIC_KEY_RSA`).
    Rsa(Vec<u8>),
    /// ECC point (`TPMS_ECC_POINT`).
    Ecc {
        /// x coordinate.
        x: Vec<u8>,
        /// y coordinate.
        y: Vec<u8>,
    },
}

/// A parsed `TPMT_PUBLIC` (Part 2, 12.2.4) of an RSA or ECC object, with its marshalled bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Public {
    raw: Vec<u8>,
    /// Algorithm computing the object's Name.
    pub name_alg: HashAlg,
    /// `TPMA_OBJECT`.
    pub attributes: ObjectAttributes,
    /// Policy digest for the object's admin role.
    pub auth_policy: Vec<u8>,
    /// Type-specific parameters.
    pub parameters: Parameters,
    /// The public key.
    pub unique: Unique,
}

impl Public {
    /// Parses a marshalled `TPMT_PUBLIC`, exactly (no `TPM2B` size in front).
    pub fn parse(data: &[u8]) -> Result<Self, VerifyError> {
        let mut r = Reader::new("TPMT_PUBLIC", data);
        let public = read_public(&mut r, data)?;
        r.finish()?;
        Ok(public)
    }

    /// Parses a `TPM2B_PUBLIC` (Part 2, 12.2.5): a u16 size, then exactly that many bytes of
    /// `TPMT_PUBLIC`.
    pub fn parse_tpm2b(data: &[u8]) -> Result<Self, VerifyError> {
        let mut r = Reader::new("TPM2B_PUBLIC", data);
        let inner = r.tpm2b(usize::from(u16::MAX))?;
        r.finish()?;
        Public::parse(inner)
    }

    /// The marshalled `TPMT_PUBLIC`.
    pub fn marshalled(&self) -> &[u8] {
        &self.raw
    }

    /// The object's Name: `nameAlg ‖ H_nameAlg(TPMT_PUBLIC)` (Part 1, 16).
    pub fn name(&self) -> Vec<u8> {
        let mut name = self.name_alg.tpm_id().to_be_bytes().to_vec();
        name.extend(self.name_alg.digest(&self.raw));
        name
    }

    /// The public key, checked to be a key this crate can use (RSA 2048/3072/4096 with a
    /// modulus of exactly `keyBits`, or a P-256 / P-384 point).
    pub fn public_key(&self) -> Result<PublicKey, VerifyError> {
        match (&self.parameters, &self.unique) {
            (
                Parameters::Rsa {
                    key_bits, exponent, ..
                },
                Unique::Rsa(modulus),
            ) => {
                if modulus.len() * 8 != usize::from(*key_bits) {
                    return Err(VerifyError::malformed(
                        "TPMT_PUBLIC",
                        format!("{}-byte modulus for keyBits {key_bits}", modulus.len()),
                    ));
                }
                // Part 2, 12.2.3.5: an exponent of zero means the default, 2^16 + 1.
                let exponent = if *exponent == 0 { 65537 } else { *exponent };
                PublicKey::rsa(modulus, exponent)
            }
            (Parameters::Ecc { curve, .. }, Unique::Ecc { x, y }) => {
                let curve = match *curve {
                    TPM_ECC_NIST_P256 => EccCurve::P256,
                    TPM_ECC_NIST_P384 => EccCurve::P384,
                    other => {
                        return Err(VerifyError::UnsupportedAlgorithm {
                            tee: Tee::Tpm,
                            detail: format!("ECC curve {other:#06x}"),
                        })
                    }
                };
                PublicKey::ecc(curve, x, y)
            }
            _ => Err(VerifyError::malformed(
                "TPMT_PUBLIC",
                "parameters and unique are of different types",
            )),
        }
    }

    /// Whether `cert` certifies this object's public key.
    pub fn matches_certificate(&self, cert: &Certificate) -> Result<bool, VerifyError> {
        Ok(self.public_key()? == PublicKey::from_certificate(cert)?)
    }
}

fn read_public(r: &mut Reader<'_>, whole: &[u8]) -> Result<Public, VerifyError> {
    let object_type = r.u16_be()?;
    let name_id = r.u16_be()?;
    let attributes = ObjectAttributes(r.u32_be()?);
    let auth_policy = r.tpm2b(MAX_DIGEST_BYTES)?.to_vec();
    let parameters = match object_type {
        TPM_ALG_RSA => {
            let symmetric = symmetric_def(r)?;
            let scheme = asym_scheme(r, "TPMT_RSA_SCHEME")?;
            let key_bits = r.u16_be()?;
            let exponent = r.u32_be()?;
            Parameters::Rsa {
                symmetric,
                scheme,
                key_bits,
                exponent,
            }
        }
        TPM_ALG_ECC => {
            let symmetric = symmetric_def(r)?;
            let scheme = asym_scheme(r, "TPMT_ECC_SCHEME")?;
            let curve = r.u16_be()?;
            let kdf = kdf_scheme(r)?;
            Parameters::Ecc {
                symmetric,
                scheme,
                curve,
                kdf,
            }
        }
        TPM_ALG_KEYEDHASH | TPM_ALG_SYMCIPHER => {
            return Err(VerifyError::UnsupportedAlgorithm {
                tee: Tee::Tpm,
                detail: format!("object type {object_type:#06x} (only RSA and ECC keys)"),
            })
        }
        other => {
            return Err(VerifyError::malformed(
                "TPMT_PUBLIC",
                format!("unknown object type {other:#06x}"),
            ))
        }
    };
    let unique = match object_type {
        TPM_ALG_RSA => Unique::Rsa(r.tpm2b(MAX_RSA_KEY_BYTES)?.to_vec()),
        _ => Unique::Ecc {
            x: r.tpm2b(MAX_ECC_KEY_BYTES)?.to_vec(),
            y: r.tpm2b(MAX_ECC_KEY_BYTES)?.to_vec(),
        },
    };
    // nameAlg TPM_ALG_NULL would make the Name a handle; such objects cannot be attested.
    let name_alg = HashAlg::from_tpm(name_id).ok_or_else(|| VerifyError::UnsupportedAlgorithm {
        tee: Tee::Tpm,
        detail: format!("nameAlg {name_id:#06x}"),
    })?;
    let used = whole.len() - r.remaining();
    Ok(Public {
        raw: whole.get(..used).unwrap_or_default().to_vec(),
        name_alg,
        attributes,
        auth_policy,
        parameters,
        unique,
    })
}

/// `TPMT_SYM_DEF_OBJECT`: an algorithm, then (unless NULL) keyBits and mode.
fn symmetric_def(r: &mut Reader<'_>) -> Result<Option<SymmetricDef>, VerifyError> {
    match r.u16_be()? {
        TPM_ALG_NULL => Ok(None),
        TPM_ALG_XOR => Err(VerifyError::malformed(
            "TPMT_SYM_DEF_OBJECT",
            "XOR is not an object symmetric algorithm",
        )),
        algorithm => Ok(Some(SymmetricDef {
            algorithm,
            key_bits: r.u16_be()?,
            mode: r.u16_be()?,
        })),
    }
}

/// `TPMT_RSA_SCHEME` / `TPMT_ECC_SCHEME`: a scheme, then its details (Part 2, 11.2.3).
fn asym_scheme(r: &mut Reader<'_>, what: &'static str) -> Result<Option<Scheme>, VerifyError> {
    let scheme = r.u16_be()?;
    match scheme {
        TPM_ALG_NULL => Ok(None),
        TPM_ALG_RSAES => Ok(Some(Scheme {
            scheme,
            hash: TPM_ALG_NULL,
            count: None,
        })),
        TPM_ALG_ECDAA => Ok(Some(Scheme {
            scheme,
            hash: r.u16_be()?,
            count: Some(r.u16_be()?),
        })),
        TPM_ALG_RSASSA | TPM_ALG_RSAPSS | TPM_ALG_OAEP | TPM_ALG_ECDSA | TPM_ALG_ECDH
        | TPM_ALG_SM2 | TPM_ALG_ECSCHNORR | TPM_ALG_ECMQV => Ok(Some(Scheme {
            scheme,
            hash: r.u16_be()?,
            count: None,
        })),
        other => Err(VerifyError::malformed(
            what,
            format!("unknown scheme {other:#06x}"),
        )),
    }
}

/// `TPMT_KDF_SCHEME` (Part 2, 11.2.3.3).
fn kdf_scheme(r: &mut Reader<'_>) -> Result<Option<Scheme>, VerifyError> {
    let scheme = r.u16_be()?;
    match scheme {
        TPM_ALG_NULL => Ok(None),
        TPM_ALG_MGF1 | TPM_ALG_KDF1_SP800_56A | TPM_ALG_KDF2 | TPM_ALG_KDF1_SP800_108 => {
            Ok(Some(Scheme {
                scheme,
                hash: r.u16_be()?,
                count: None,
            }))
        }
        other => Err(VerifyError::malformed(
            "TPMT_KDF_SCHEME",
            format!("unknown KDF {other:#06x}"),
        )),
    }
}

/// A NIST curve this crate verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EccCurve {
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
}

impl EccCurve {
    /// Bytes in a coordinate.
    pub fn coordinate_len(self) -> usize {
        match self {
            EccCurve::P256 => 32,
            EccCurve::P384 => 48,
        }
    }

    /// The `TPM_ECC_CURVE`.
    pub fn tpm_id(self) -> u16 {
        match self {
            EccCurve::P256 => TPM_ECC_NIST_P256,
            EccCurve::P384 => TPM_ECC_NIST_P384,
        }
    }
}

/// A public key, whether from a TPM public area or an X.509 SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PublicKey {
    /// RSA.
    Rsa {
        /// Big-endian modulus with no leading zero (256, 384 or 512 bytes).
        modulus: Vec<u8>,
        /// Public exponent.
        exponent: u32,
    },
    /// ECC.
    Ecc {
        /// The curve.
        curve: EccCurve,
        /// x, exactly one coordinate long.
        x: Vec<u8>,
        /// y, exactly one coordinate long.
        y: Vec<u8>,
    },
}

impl PublicKey {
    fn rsa(modulus: &[u8], exponent: u32) -> Result<Self, VerifyError> {
        let bits_ok = [256, 384, 512].contains(&modulus.len())
            && modulus.first().is_some_and(|&b| b & 0x80 != 0);
        if !bits_ok {
            return Err(VerifyError::UnsupportedAlgorithm {
                tee: Tee::Tpm,
                detail: format!(
                    "RSA modulus of {} bytes (2048, 3072 or 4096 bits only)",
                    modulus.len()
                ),
            });
        }
        if exponent < 3 || exponent.is_multiple_of(2) {
            return Err(VerifyError::malformed(
                "RSA public key",
                format!("exponent {exponent}"),
            ));
        }
        Ok(PublicKey::Rsa {
            modulus: modulus.to_vec(),
            exponent,
        })
    }

    fn ecc(curve: EccCurve, x: &[u8], y: &[u8]) -> Result<Self, VerifyError> {
        let pad = |c: &[u8]| -> Result<Vec<u8>, VerifyError> {
            let len = curve.coordinate_len();
            let start = c.iter().take_while(|&&b| b == 0).count();
            let c = c.get(start..).unwrap_or_default();
            if c.len() > len {
                return Err(VerifyError::malformed(
                    "ECC public key",
                    "coordinate longer than the curve",
                ));
            }
            let mut out = vec![0u8; len - c.len()];
            out.extend_from_slice(c);
            Ok(out)
        };
        Ok(PublicKey::Ecc {
            curve,
            x: pad(x)?,
            y: pad(y)?,
        })
    }

    /// From a SubjectPublicKeyInfo, PEM (`PUBLIC KEY`) or DER.
    pub fn from_spki(input: &[u8]) -> Result<Self, VerifyError> {
        Self::from_subject_public_key(x509::parse_public_key(input)?)
    }

    /// The key a certificate certifies.
    pub fn from_certificate(cert: &Certificate) -> Result<Self, VerifyError> {
        Self::from_subject_public_key(cert.subject_public_key()?)
    }

    fn from_subject_public_key(key: SubjectPublicKey) -> Result<Self, VerifyError> {
        match key {
            SubjectPublicKey::Rsa { modulus, exponent } => {
                let e = match exponent.len() {
                    1..=4 => exponent
                        .iter()
                        .fold(0u32, |acc, &b| (acc << 8) | u32::from(b)),
                    _ => {
                        return Err(VerifyError::UnsupportedAlgorithm {
                            tee: Tee::Tpm,
                            detail: "RSA exponent longer than 32 bits".into(),
                        })
                    }
                };
                PublicKey::rsa(&modulus, e)
            }
            SubjectPublicKey::Ec { curve, point } => {
                let curve = match curve {
                    KeyType::EcP256 => EccCurve::P256,
                    _ => EccCurve::P384,
                };
                let len = curve.coordinate_len();
                let x = point.get(1..1 + len).unwrap_or_default();
                let y = point.get(1 + len..).unwrap_or_default();
                PublicKey::ecc(curve, x, y)
            }
        }
    }

    /// DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        match self {
            PublicKey::Rsa { modulus, exponent } => der::rsa_spki(modulus, *exponent),
            PublicKey::Ecc { curve, .. } => {
                let oid = match curve {
                    EccCurve::P256 => der::OID_P256,
                    EccCurve::P384 => der::OID_P384,
                };
                der::ec_spki(oid, &self.key_bits())
            }
        }
    }

    /// SHA-256 of [`PublicKey::spki_der`] (what `openssl pkey -pubin -outform DER | sha256sum`
    /// prints).
    pub fn fingerprint(&self) -> [u8; 32] {
        crypto::sha256(&self.spki_der())
    }

    /// `rsa-2048`, `rsa-3072`, `rsa-4096`, `ecc-p256` or `ecc-p384`.
    pub fn key_type(&self) -> &'static str {
        match self {
            PublicKey::Rsa { modulus, .. } => match modulus.len() {
                256 => "rsa-2048",
                384 => "rsa-3072",
                _ => "rsa-4096",
            },
            PublicKey::Ecc {
                curve: EccCurve::P256,
                ..
            } => "ecc-p256",
            PublicKey::Ecc { .. } => "ecc-p384",
        }
    }

    /// The subjectPublicKey bits: PKCS#1 `RSAPublicKey` or an uncompressed point.
    fn key_bits(&self) -> Vec<u8> {
        match self {
            PublicKey::Rsa { modulus, exponent } => der::rsa_public_key(modulus, *exponent),
            PublicKey::Ecc { x, y, .. } => {
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(4);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                point
            }
        }
    }

    /// Verifies `sig` over `message` (TPM 2.0 Part 3, 18.4 and 18.2: the TPM signs the
    /// digest of the marshalled TPMS_ATTEST with the signature's hash). Refused as
    /// unsupported: SHA-1 signatures, and ECDSA other than P-256/SHA-256 and P-384/SHA-384.
    pub(crate) fn verify(&self, sig: &Signature, message: &[u8]) -> Result<(), VerifyError> {
        let unsupported = |detail: String| VerifyError::UnsupportedAlgorithm {
            tee: Tee::Tpm,
            detail,
        };
        let bad = || VerifyError::Signature { tee: Tee::Tpm };
        let (scheme, sig_bytes) = match (self, sig) {
            (PublicKey::Rsa { modulus, .. }, Signature::RsaSsa { hash, sig }) => {
                let scheme = match hash {
                    HashAlg::Sha256 => SignatureScheme::RsaPkcs1Sha256,
                    HashAlg::Sha384 => SignatureScheme::RsaPkcs1Sha384,
                    HashAlg::Sha512 => SignatureScheme::RsaPkcs1Sha512,
                    HashAlg::Sha1 => return Err(unsupported("RSASSA with SHA-1".into())),
                };
                if sig.len() != modulus.len() {
                    return Err(bad());
                }
                (scheme, sig.clone())
            }
            (PublicKey::Rsa { modulus, .. }, Signature::RsaPss { hash, sig }) => {
                let scheme = match hash {
                    HashAlg::Sha256 => SignatureScheme::RsaPssSha256,
                    HashAlg::Sha384 => SignatureScheme::RsaPssSha384,
                    HashAlg::Sha512 => SignatureScheme::RsaPssSha512,
                    HashAlg::Sha1 => return Err(unsupported("RSAPSS with SHA-1".into())),
                };
                if sig.len() != modulus.len() {
                    return Err(bad());
                }
                (scheme, sig.clone())
            }
            (PublicKey::Ecc { curve, .. }, Signature::Ecdsa { hash, r, s }) => {
                let scheme = match (curve, hash) {
                    (EccCurve::P256, HashAlg::Sha256) => SignatureScheme::EcdsaP256Sha256Fixed,
                    (EccCurve::P384, HashAlg::Sha384) => SignatureScheme::EcdsaP384Sha384Fixed,
                    (curve, hash) => {
                        return Err(unsupported(format!("ECDSA on {curve:?} with {hash}")))
                    }
                };
                let len = curve.coordinate_len();
                let mut fixed = Vec::with_capacity(2 * len);
                for part in [r, s] {
                    let start = part.iter().take_while(|&&b| b == 0).count();
                    let part = part.get(start..).unwrap_or_default();
                    if part.len() > len {
                        return Err(bad());
                    }
                    fixed.resize(fixed.len() + len - part.len(), 0);
                    fixed.extend_from_slice(part);
                }
                (scheme, fixed)
            }
            // An RSA key cannot have made an ECDSA signature, nor the reverse.
            _ => return Err(bad()),
        };
        crypto::verify(scheme, &self.key_bits(), message, &sig_bytes).map_err(|_| bad())
    }
}

/// The AK (or any signing key) as the verifier receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestationKey {
    /// A TPM public area: its attributes and scheme are checked too.
    Tpm {
        /// The public area.
        public: Public,
        /// Its key.
        key: PublicKey,
    },
    /// A bare SubjectPublicKeyInfo: only the key is known, no attributes.
    Spki(PublicKey),
}

impl AttestationKey {
    /// From a TPM public area.
    pub fn from_public(public: Public) -> Result<Self, VerifyError> {
        let key = public.public_key()?;
        Ok(AttestationKey::Tpm { public, key })
    }

    /// Detects the encoding: PEM SubjectPublicKeyInfo, `TPM2B_PUBLIC` (a u16 size equal to the
    /// rest of the input), DER SubjectPublicKeyInfo (a SEQUENCE tag), else `TPMT_PUBLIC`.
    pub fn parse(input: &[u8]) -> Result<Self, VerifyError> {
        if input.trim_ascii_start().starts_with(b"-----BEGIN") {
            return PublicKey::from_spki(input).map(AttestationKey::Spki);
        }
        match input {
            [hi, lo, rest @ ..] if usize::from(u16::from_be_bytes([*hi, *lo])) == rest.len() => {
                Self::from_public(Public::parse_tpm2b(input)?)
            }
            [0x30, ..] => PublicKey::from_spki(input).map(AttestationKey::Spki),
            _ => Self::from_public(Public::parse(input)?),
        }
    }

    /// The key.
    pub fn public_key(&self) -> &PublicKey {
        match self {
            AttestationKey::Tpm { key, .. } | AttestationKey::Spki(key) => key,
        }
    }

    /// The TPM public area, when the key came as one.
    pub fn tpm_public(&self) -> Option<&Public> {
        match self {
            AttestationKey::Tpm { public, .. } => Some(public),
            AttestationKey::Spki(_) => None,
        }
    }
}
