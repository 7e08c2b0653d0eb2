//! X.509 certificates: parsing (with `x509-parser`) into an owned form, and the few checks a
//! chain needs (issuer name, signature by the issuer's key, validity at a time).
//!
//! Every vendor chain in this crate goes through here; vendor modules add their own rules
//! (AMD's extensions, AWS's pinned root) on top.

use x509_parser::oid_registry::Oid;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::signature_algorithm::SignatureAlgorithm;

use crate::crypto::{self, SignatureScheme};
use crate::{Tee, UnixTime, VerifyError};

/// Upper bound on certificates accepted in one bundle; a real chain has at most five.
pub const MAX_BUNDLE_CERTS: usize = 16;
/// Upper bound on a certificate bundle's size in bytes.
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;

/// The type of key in a certificate's SubjectPublicKeyInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// RSA (rsaEncryption or RSASSA-PSS SPKI).
    Rsa,
    /// ECDSA on NIST P-256.
    EcP256,
    /// ECDSA on NIST P-384.
    EcP384,
    /// Anything else.
    Other,
}

/// How a certificate says it was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SignedWith {
    /// RSASSA-PSS with a supported hash/MGF/salt combination.
    RsaPss(SignatureScheme),
    /// RSASSA-PKCS1-v1_5 with the given scheme.
    RsaPkcs1(SignatureScheme),
    /// ecdsa-with-SHA256.
    EcdsaSha256,
    /// ecdsa-with-SHA384.
    EcdsaSha384,
    /// Not supported; the text says what it was.
    Unsupported(String),
}

/// A parsed certificate, owning its bytes.
#[derive(Debug, Clone)]
pub struct Certificate {
    der: Vec<u8>,
    fingerprint: [u8; 32],
    tbs: Vec<u8>,
    signed_with: SignedWith,
    signature: Vec<u8>,
    subject_raw: Vec<u8>,
    issuer_raw: Vec<u8>,
    subject_cn: String,
    issuer_cn: String,
    not_before: UnixTime,
    not_after: UnixTime,
    key_type: KeyType,
    public_key: Vec<u8>,
    extensions: Vec<(String, Vec<u8>)>,
    is_ca: bool,
}

const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_SHA256_RSA: &str = "1.2.840.113549.1.1.11";
const OID_SHA384_RSA: &str = "1.2.840.113549.1.1.12";
const OID_SHA512_RSA: &str = "1.2.840.113549.1.1.13";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const OID_SHA384: &str = "2.16.840.1.101.3.4.2.2";
const OID_SHA512: &str = "2.16.840.1.101.3.4.2.3";
const OID_MGF1: &str = "1.2.840.113549.1.1.8";

impl Certificate {
    /// Parses one DER certificate; the input must hold exactly one certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, VerifyError> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| VerifyError::malformed("certificate", e))?;
        if !rest.is_empty() {
            return Err(VerifyError::TrailingData {
                what: "certificate",
                extra: rest.len(),
            });
        }
        Self::from_parsed(&cert)
    }

    fn from_parsed(cert: &X509Certificate<'_>) -> Result<Self, VerifyError> {
        let tbs = &cert.tbs_certificate;
        check_outer_der(cert.as_raw(), tbs.as_ref())?;
        if cert.signature_algorithm != tbs.signature {
            return Err(VerifyError::malformed(
                "certificate",
                "signatureAlgorithm differs from the TBS signature field (RFC 5280 4.1.1.2)",
            ));
        }
        // RFC 5280 4.1.1.3 / 4.1.2.7: signatures and keys are whole octets; a non-zero
        // unused-bits count would let the encoding change without changing the signed bytes.
        if cert.signature_value.unused_bits != 0
            || tbs.subject_pki.subject_public_key.unused_bits != 0
        {
            return Err(VerifyError::malformed(
                "certificate",
                "BIT STRING with unused bits in the signature or public key",
            ));
        }
        let der = cert.as_raw().to_vec();
        let spki = &tbs.subject_pki;
        let key_type = key_type(
            &spki.algorithm.algorithm,
            spki.algorithm.parameters.as_ref(),
        );
        let extensions = tbs
            .extensions()
            .iter()
            .map(|e| (e.oid.to_id_string(), e.value.to_vec()))
            .collect();
        Ok(Certificate {
            fingerprint: crypto::sha256(&der),
            der,
            tbs: tbs.as_ref().to_vec(),
            signed_with: signed_with(cert),
            signature: cert.signature_value.data.to_vec(),
            subject_raw: tbs.subject.as_raw().to_vec(),
            issuer_raw: tbs.issuer.as_raw().to_vec(),
            subject_cn: common_name(&tbs.subject),
            issuer_cn: common_name(&tbs.issuer),
            not_before: UnixTime::from_secs(tbs.validity.not_before.timestamp()),
            not_after: UnixTime::from_secs(tbs.validity.not_after.timestamp()),
            key_type,
            public_key: spki.subject_public_key.data.to_vec(),
            extensions,
            is_ca: tbs.is_ca(),
        })
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-256 over the DER encoding.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// Subject common name (empty if none).
    pub fn subject_cn(&self) -> &str {
        &self.subject_cn
    }

    /// Issuer common name (empty if none).
    pub fn issuer_cn(&self) -> &str {
        &self.issuer_cn
    }

    /// notBefore.
    pub fn not_before(&self) -> UnixTime {
        self.not_before
    }

    /// notAfter.
    pub fn not_after(&self) -> UnixTime {
        self.not_after
    }

    /// Key type of the subject public key.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The subjectPublicKey bits: PKCS#1 RSAPublicKey for RSA, an uncompressed point for EC.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// Whether basicConstraints marks this certificate as a CA.
    pub fn is_ca(&self) -> bool {
        self.is_ca
    }

    /// Whether subject and issuer names are the same.
    pub fn is_self_issued(&self) -> bool {
        self.subject_raw == self.issuer_raw
    }

    /// The raw extnValue of the extension with this dotted OID, if present once.
    pub fn extension(&self, oid: &str) -> Option<&[u8]> {
        let mut found = self.extensions.iter().filter(|(o, _)| o == oid);
        match (found.next(), found.next()) {
            (Some((_, value)), None) => Some(value),
            _ => None,
        }
    }

    /// Whether this certificate's issuer name is `issuer`'s subject name.
    pub fn names_issuer(&self, issuer: &Certificate) -> bool {
        self.issuer_raw == issuer.subject_raw
    }

    /// Checks that `issuer` issued this certificate: names chain and the signature verifies under
    /// the issuer's key (RFC 5280 6.1.3 (a)(1) and (a)(4)).
    pub fn check_signed_by(&self, issuer: &Certificate, tee: Tee) -> Result<(), VerifyError> {
        if !self.names_issuer(issuer) {
            return Err(VerifyError::chain(
                tee,
                format!(
                    "{} is issued by {}, not by {}",
                    self.subject_cn, self.issuer_cn, issuer.subject_cn
                ),
            ));
        }
        let scheme = match (&self.signed_with, issuer.key_type) {
            (SignedWith::RsaPss(s) | SignedWith::RsaPkcs1(s), KeyType::Rsa) => *s,
            (SignedWith::EcdsaSha256, KeyType::EcP256) => SignatureScheme::EcdsaP256Sha256Der,
            (SignedWith::EcdsaSha384, KeyType::EcP384) => SignatureScheme::EcdsaP384Sha384Der,
            (SignedWith::Unsupported(what), _) => {
                return Err(VerifyError::UnsupportedAlgorithm {
                    tee,
                    detail: format!("certificate {} signed with {what}", self.subject_cn),
                })
            }
            (with, key) => {
                return Err(VerifyError::chain(
                    tee,
                    format!(
                        "{} is signed with {with:?} but its issuer {} has a {key:?} key",
                        self.subject_cn, issuer.subject_cn
                    ),
                ))
            }
        };
        crypto::verify(scheme, &issuer.public_key, &self.tbs, &self.signature).map_err(|_| {
            VerifyError::chain(
                tee,
                format!(
                    "signature on {} does not verify under {}",
                    self.subject_cn, issuer.subject_cn
                ),
            )
        })
    }

    /// Checks notBefore <= `at` <= notAfter (RFC 5280 6.1.3 (a)(2)).
    pub fn check_valid_at(&self, at: UnixTime, tee: Tee) -> Result<(), VerifyError> {
        ValidityWindow::of(self).check(at, tee)
    }
}

/// A certificate's validity window, kept by verified-chain caches after the certificate itself
/// is dropped, so a cached chain is still checked at every verification time.
#[derive(Debug, Clone)]
pub struct ValidityWindow {
    subject: String,
    not_before: UnixTime,
    not_after: UnixTime,
}

impl ValidityWindow {
    /// The window of `cert`.
    pub fn of(cert: &Certificate) -> Self {
        ValidityWindow {
            subject: cert.subject_cn.clone(),
            not_before: cert.not_before,
            not_after: cert.not_after,
        }
    }

    /// Checks notBefore <= `at` <= notAfter (RFC 5280 6.1.3 (a)(2)).
    pub fn check(&self, at: UnixTime, tee: Tee) -> Result<(), VerifyError> {
        if at < self.not_before {
            return Err(VerifyError::CertNotYetValid {
                tee,
                subject: self.subject.clone(),
                not_before: self.not_before,
                at,
            });
        }
        if at > self.not_after {
            return Err(VerifyError::CertExpired {
                tee,
                subject: self.subject.clone(),
                not_after: self.not_after,
                at,
            });
        }
        Ok(())
    }
}

/// One DER TLV: (tag, content, whole encoding, rest).
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// Reads one DER TLV with a definite, minimally encoded length (X.690 10.1).
fn der_tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(n)?;
        rest = after;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        // Minimal: no leading zero byte, and long form only from 128.
        if bytes.first() == Some(&0) || len < 0x80 {
            return None;
        }
        len
    };
    let (content, after) = rest.split_at_checked(len)?;
    let header = input.len() - rest.len();
    let whole = input.get(..header + len)?;
    Some((tag, content, whole, after))
}

/// RFC 5280 4.1 framing, byte for byte: `Certificate ::= SEQUENCE { tbsCertificate,
/// signatureAlgorithm, signatureValue BIT STRING }` with DER lengths and nothing after, and the
/// outer signatureAlgorithm byte-identical to the (signed) one inside the TBS (4.1.1.2).
/// x509-parser tolerates some re-encodings of the unsigned outer parts; refusing them keeps a
/// certificate's fingerprint a function of its signed content.
fn check_outer_der(der: &[u8], tbs: &[u8]) -> Result<(), VerifyError> {
    let bad = |what: &str| VerifyError::malformed("certificate", format!("not DER: {what}"));
    let (tag, content, _, rest) = der_tlv(der).ok_or_else(|| bad("outer SEQUENCE"))?;
    if tag != 0x30 || !rest.is_empty() {
        return Err(bad("outer SEQUENCE"));
    }
    let (tbs_tag, tbs_content, tbs_whole, rest) =
        der_tlv(content).ok_or_else(|| bad("tbsCertificate"))?;
    if tbs_tag != 0x30 || tbs_whole != tbs {
        return Err(bad("tbsCertificate"));
    }
    let (alg_tag, _, alg_whole, rest) = der_tlv(rest).ok_or_else(|| bad("signatureAlgorithm"))?;
    let (sig_tag, sig_content, _, rest) = der_tlv(rest).ok_or_else(|| bad("signatureValue"))?;
    if alg_tag != 0x30 || sig_tag != 0x03 || sig_content.first() != Some(&0) || !rest.is_empty() {
        return Err(bad("signatureAlgorithm or signatureValue"));
    }
    // Inside the TBS: [0] version (optional), serialNumber, signature AlgorithmIdentifier.
    let (mut tag, _, _, mut fields) = der_tlv(tbs_content).ok_or_else(|| bad("TBS fields"))?;
    if tag == 0xa0 {
        (tag, _, _, fields) = der_tlv(fields).ok_or_else(|| bad("TBS serialNumber"))?;
    }
    if tag != 0x02 {
        return Err(bad("TBS serialNumber"));
    }
    let (_, _, inner_alg, _) = der_tlv(fields).ok_or_else(|| bad("TBS signature"))?;
    if inner_alg != alg_whole {
        return Err(VerifyError::malformed(
            "certificate",
            "signatureAlgorithm differs from the TBS signature field (RFC 5280 4.1.1.2)",
        ));
    }
    Ok(())
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for Certificate {}

/// A public key read from a SubjectPublicKeyInfo (RFC 5280 4.1.2.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectPublicKey {
    /// rsaEncryption (RFC 8017 A.1.1): big-endian modulus and exponent, leading zeros removed.
    Rsa {
        /// The modulus n.
        modulus: Vec<u8>,
        /// The public exponent e.
        exponent: Vec<u8>,
    },
    /// id-ecPublicKey on P-256 or P-384 (RFC 5480): the uncompressed SEC 1 point.
    Ec {
        /// [`KeyType::EcP256`] or [`KeyType::EcP384`].
        curve: KeyType,
        /// `04 ‖ X ‖ Y`.
        point: Vec<u8>,
    },
}

/// Upper bound on a public key file (an RSA-8192 SPKI in PEM is under 2 KiB).
pub const MAX_PUBLIC_KEY_BYTES: usize = 16 * 1024;

/// Parses one SubjectPublicKeyInfo: a PEM `PUBLIC KEY` block or DER, nothing else around it.
pub fn parse_public_key(input: &[u8]) -> Result<SubjectPublicKey, VerifyError> {
    const WHAT: &str = "SubjectPublicKeyInfo";
    if input.len() > MAX_PUBLIC_KEY_BYTES {
        return Err(VerifyError::malformed(
            WHAT,
            format!("{} bytes exceeds {MAX_PUBLIC_KEY_BYTES}", input.len()),
        ));
    }
    let pem_der;
    let der = if input.trim_ascii_start().starts_with(b"-----BEGIN") {
        let mut blocks = x509_parser::pem::Pem::iter_from_buffer(input);
        let pem = match (blocks.next(), blocks.next()) {
            (Some(pem), None) => pem.map_err(|e| VerifyError::malformed(WHAT, e))?,
            _ => {
                return Err(VerifyError::malformed(
                    WHAT,
                    "expected exactly one PEM block",
                ))
            }
        };
        if pem.label != "PUBLIC KEY" {
            return Err(VerifyError::malformed(
                WHAT,
                format!("unexpected PEM block {:?}", pem.label),
            ));
        }
        pem_der = pem.contents;
        pem_der.as_slice()
    } else {
        input
    };
    let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
        .map_err(|e| VerifyError::malformed(WHAT, e))?;
    if !rest.is_empty() {
        return Err(VerifyError::TrailingData {
            what: WHAT,
            extra: rest.len(),
        });
    }
    if spki.subject_public_key.unused_bits != 0 {
        return Err(VerifyError::malformed(WHAT, "BIT STRING with unused bits"));
    }
    let key_type = key_type(
        &spki.algorithm.algorithm,
        spki.algorithm.parameters.as_ref(),
    );
    decode_public_key(key_type, &spki.subject_public_key.data)
}

fn decode_public_key(key_type: KeyType, bits: &[u8]) -> Result<SubjectPublicKey, VerifyError> {
    const WHAT: &str = "subjectPublicKey";
    let strip = |b: &[u8]| {
        b.get(b.iter().take_while(|&&x| x == 0).count()..)
            .unwrap_or_default()
            .to_vec()
    };
    match key_type {
        KeyType::Rsa => {
            let (rest, key) = x509_parser::public_key::RSAPublicKey::from_der(bits)
                .map_err(|e| VerifyError::malformed(WHAT, e))?;
            if !rest.is_empty() {
                return Err(VerifyError::TrailingData {
                    what: WHAT,
                    extra: rest.len(),
                });
            }
            Ok(SubjectPublicKey::Rsa {
                modulus: strip(key.modulus),
                exponent: strip(key.exponent),
            })
        }
        KeyType::EcP256 | KeyType::EcP384 => {
            let expected = if key_type == KeyType::EcP256 { 65 } else { 97 };
            if bits.len() != expected || bits.first() != Some(&4) {
                return Err(VerifyError::malformed(
                    WHAT,
                    "EC point is not an uncompressed point on its curve",
                ));
            }
            Ok(SubjectPublicKey::Ec {
                curve: key_type,
                point: bits.to_vec(),
            })
        }
        KeyType::Other => Err(VerifyError::malformed(
            WHAT,
            "neither an RSA nor a P-256/P-384 key",
        )),
    }
}

impl Certificate {
    /// The subject public key, decoded (RSA modulus/exponent or EC point).
    pub fn subject_public_key(&self) -> Result<SubjectPublicKey, VerifyError> {
        decode_public_key(self.key_type, &self.public_key)
    }
}

/// Parses a bundle: PEM with one or more `CERTIFICATE` blocks, or DER (one certificate or
/// several concatenated). Bounded by [`MAX_BUNDLE_BYTES`] and [`MAX_BUNDLE_CERTS`].
pub fn parse_bundle(input: &[u8]) -> Result<Vec<Certificate>, VerifyError> {
    if input.len() > MAX_BUNDLE_BYTES {
        return Err(VerifyError::malformed(
            "certificate bundle",
            format!(
                "{} bytes exceeds the {MAX_BUNDLE_BYTES}-byte limit",
                input.len()
            ),
        ));
    }
    let trimmed = input.trim_ascii_start();
    let certs = if trimmed.starts_with(b"-----BEGIN") {
        parse_pem_bundle(input)?
    } else {
        parse_der_sequence(input)?
    };
    if certs.is_empty() {
        return Err(VerifyError::malformed(
            "certificate bundle",
            "no certificate found",
        ));
    }
    Ok(certs)
}

fn parse_pem_bundle(input: &[u8]) -> Result<Vec<Certificate>, VerifyError> {
    let mut certs = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(input) {
        let pem = pem.map_err(|e| VerifyError::malformed("PEM certificate", e))?;
        if pem.label != "CERTIFICATE" {
            return Err(VerifyError::malformed(
                "PEM certificate",
                format!("unexpected PEM block {:?}", pem.label),
            ));
        }
        push_bounded(&mut certs, Certificate::from_der(&pem.contents)?)?;
    }
    Ok(certs)
}

fn parse_der_sequence(mut input: &[u8]) -> Result<Vec<Certificate>, VerifyError> {
    let mut certs = Vec::new();
    while !input.is_empty() {
        let (rest, cert) = X509Certificate::from_der(input)
            .map_err(|e| VerifyError::malformed("certificate", e))?;
        push_bounded(&mut certs, Certificate::from_parsed(&cert)?)?;
        input = rest;
    }
    Ok(certs)
}

fn push_bounded(certs: &mut Vec<Certificate>, cert: Certificate) -> Result<(), VerifyError> {
    if certs.len() >= MAX_BUNDLE_CERTS {
        return Err(VerifyError::malformed(
            "certificate bundle",
            format!("more than {MAX_BUNDLE_CERTS} certificates"),
        ));
    }
    certs.push(cert);
    Ok(())
}

fn common_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn key_type(
    algorithm: &Oid<'_>,
    params: Option<&x509_parser::der_parser::asn1_rs::Any<'_>>,
) -> KeyType {
    match algorithm.to_id_string().as_str() {
        OID_RSA_ENCRYPTION | OID_RSASSA_PSS => KeyType::Rsa,
        OID_EC_PUBLIC_KEY => match params
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string())
        {
            Some(curve) if curve == OID_P256 => KeyType::EcP256,
            Some(curve) if curve == OID_P384 => KeyType::EcP384,
            _ => KeyType::Other,
        },
        _ => KeyType::Other,
    }
}

fn signed_with(cert: &X509Certificate<'_>) -> SignedWith {
    let alg = &cert.signature_algorithm;
    let oid = alg.algorithm.to_id_string();
    match oid.as_str() {
        OID_SHA256_RSA => SignedWith::RsaPkcs1(SignatureScheme::RsaPkcs1Sha256),
        OID_SHA384_RSA => SignedWith::RsaPkcs1(SignatureScheme::RsaPkcs1Sha384),
        OID_SHA512_RSA => SignedWith::RsaPkcs1(SignatureScheme::RsaPkcs1Sha512),
        OID_ECDSA_SHA256 => SignedWith::EcdsaSha256,
        OID_ECDSA_SHA384 => SignedWith::EcdsaSha384,
        OID_RSASSA_PSS => pss_scheme(alg),
        other => SignedWith::Unsupported(format!("signature algorithm {other}")),
    }
}

/// RSASSA-PSS parameters (RFC 4055 3.1): the hash, MGF1's hash and the salt length must be one
/// of the three matched combinations aws-lc-rs verifies; trailer field 1.
fn pss_scheme(alg: &x509_parser::x509::AlgorithmIdentifier<'_>) -> SignedWith {
    let Ok(SignatureAlgorithm::RSASSA_PSS(params)) = SignatureAlgorithm::try_from(alg) else {
        return SignedWith::Unsupported("RSASSA-PSS with unreadable parameters".into());
    };
    let hash = params.hash_algorithm_oid().to_id_string();
    let mgf = match params.mask_gen_algorithm() {
        Ok(m) if m.mgf.to_id_string() == OID_MGF1 => m.hash.to_id_string(),
        _ => {
            return SignedWith::Unsupported(
                "RSASSA-PSS with a mask generation other than MGF1".into(),
            )
        }
    };
    let salt = params.salt_length();
    let scheme = match (hash.as_str(), salt) {
        (OID_SHA256, 32) => SignatureScheme::RsaPssSha256,
        (OID_SHA384, 48) => SignatureScheme::RsaPssSha384,
        (OID_SHA512, 64) => SignatureScheme::RsaPssSha512,
        _ => return SignedWith::Unsupported(format!("RSASSA-PSS with hash {hash}, salt {salt}")),
    };
    if mgf != hash || params.trailer_field() != 1 {
        return SignedWith::Unsupported(format!(
            "RSASSA-PSS with MGF1 hash {mgf} and trailer field {}",
            params.trailer_field()
        ));
    }
    SignedWith::RsaPss(scheme)
}
