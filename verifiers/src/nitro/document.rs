//! The attestation document: a COSE_Sign1 (RFC 9052 4.2) whose payload is a CBOR map, as the
//! Nitro Secure Module produces it (AWS, "Nitro Enclaves attestation process", section 3.2
//! "Attestation document specification").
//!
//! [`parse`] is total and bounded: any byte string gives a [`Document`] or a typed error, the
//! input is capped at [`MAX_DOCUMENT_BYTES`], nesting at [`cbor::MAX_DEPTH`], and every field
//! is checked for type and size here, before any signature or chain work.
//!
//! Choices where the specification leaves room (see `docs/decisions/0003-cbor-cose.md`):
//! - the COSE tag 18 is optional (the NSM emits untagged documents); any other tag is refused;
//! - the protected header must be exactly `{1: -35}` (alg ES384) and the unprotected header
//!   empty, as the NSM writes them;
//! - payload keys outside the specification are **rejected**, as are duplicate keys, and
//!   indefinite-length encodings anywhere.

use std::collections::BTreeMap;

use ciborium::value::Value;
use coset::iana;
use coset::{AsCborValue, CoseSign1, HeaderBuilder};

use super::cbor;
use crate::{Tee, VerifyError};

/// Largest document accepted. Real documents are about 4.5 KiB; the specification's field
/// limits (certificates of at most 1024 bytes, public_key 1024, user_data and nonce 512 each)
/// keep an honest one well below this.
pub const MAX_DOCUMENT_BYTES: usize = 32 * 1024;
/// CBOR tag of COSE_Sign1 (RFC 9052 2, table 1).
pub const COSE_SIGN1_TAG: u64 = 18;
/// ES384 signature: raw `r ‖ s`, 48 bytes each, big-endian (RFC 9053 2.1).
pub const SIGNATURE_LEN: usize = 96;
/// Length of each PCR for the only accepted digest, SHA384.
pub const PCR_LEN: usize = 48;
/// PCR indices run from 0 to 31 (specification: `index => pcr`, index `.within [0..31]`).
pub const MAX_PCR_INDEX: u8 = 31;
/// Certificates are `bytes .size (1..1024)` in the specification.
pub const MAX_CERT_BYTES: usize = 1024;
/// Upper bound on `cabundle` entries; AWS sends 4 (root, regional, zonal, instance).
pub const MAX_CABUNDLE: usize = 8;
/// `public_key` is `bytes .size (1..1024)`.
pub const MAX_PUBLIC_KEY_BYTES: usize = 1024;
/// `user_data` is `bytes .size (0..512)`.
pub const MAX_USER_DATA_BYTES: usize = 512;
/// `nonce` is `bytes .size (0..512)`.
pub const MAX_NONCE_BYTES: usize = 512;
/// Latest timestamp accepted: 9999-12-31T23:59:59.999Z, the end of RFC 3339's range.
const MAX_TIMESTAMP_MS: u64 = 253_402_300_799_999;

const COSE: &str = "COSE_Sign1";
const PAYLOAD: &str = "Nitro attestation document";

/// A parsed attestation document whose structure has been checked; nothing about it is
/// verified yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Whether the COSE_Sign1 carried CBOR tag 18.
    pub tagged: bool,
    /// `module_id`: the enclave's identifier (`i-…-enc…`), non-empty.
    pub module_id: String,
    /// `digest`: always `"SHA384"` once parsed.
    pub digest: String,
    /// `timestamp`: milliseconds since the Unix epoch, UTC.
    pub timestamp_ms: u64,
    /// `pcrs`: index → value, 48 bytes each.
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// `certificate`: the enclave's signing certificate, DER.
    pub certificate: Vec<u8>,
    /// `cabundle`: issuing certificates, DER, root first.
    pub cabundle: Vec<Vec<u8>>,
    /// `public_key`, when present and not null.
    pub public_key: Option<Vec<u8>>,
    /// `user_data`, when present and not null.
    pub user_data: Option<Vec<u8>>,
    /// `nonce`, when present and not null.
    pub nonce: Option<Vec<u8>>,
    signature: [u8; SIGNATURE_LEN],
    to_be_signed: Vec<u8>,
}

impl Document {
    /// The COSE signature, `r ‖ s`.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The bytes the signature covers: the COSE `Sig_structure`
    /// `["Signature1", protected, h'', payload]` (RFC 9052 4.4).
    pub fn to_be_signed(&self) -> &[u8] {
        &self.to_be_signed
    }
}

/// Parses a COSE_Sign1 attestation document (raw CBOR, tagged or untagged).
pub fn parse(doc: &[u8]) -> Result<Document, VerifyError> {
    if doc.len() > MAX_DOCUMENT_BYTES {
        return Err(VerifyError::malformed(
            COSE,
            format!(
                "{} bytes exceeds the {MAX_DOCUMENT_BYTES}-byte limit",
                doc.len()
            ),
        ));
    }
    let (tagged, value) = match cbor::decode(doc, COSE)? {
        Value::Tag(COSE_SIGN1_TAG, inner) => (true, *inner),
        Value::Tag(tag, _) => {
            return Err(VerifyError::malformed(
                COSE,
                format!("CBOR tag {tag}; only 18 (COSE_Sign1) or no tag is accepted"),
            ))
        }
        other => (false, other),
    };
    // coset decodes the protected header bstr itself; bound that input first.
    if let Some(Value::Bytes(protected)) = value.as_array().and_then(|a| a.first()) {
        if !protected.is_empty() {
            cbor::decode(protected, "COSE protected header")?;
        }
    }
    let sign1 = CoseSign1::from_cbor_value(value).map_err(|e| VerifyError::malformed(COSE, e))?;
    check_headers(&sign1)?;
    let signature = <[u8; SIGNATURE_LEN]>::try_from(sign1.signature.as_slice()).map_err(|_| {
        VerifyError::Length {
            what: "COSE_Sign1 ES384 signature",
            expected: SIGNATURE_LEN,
            actual: sign1.signature.len(),
        }
    })?;
    if sign1.payload.is_none() {
        return Err(VerifyError::malformed(
            COSE,
            "detached (nil) payload; the document must be embedded",
        ));
    }
    let to_be_signed = sign1.tbs_data(&[]);
    let payload = sign1.payload.unwrap_or_default();
    let fields = parse_payload(&payload)?;
    Ok(Document {
        tagged,
        module_id: fields.module_id,
        digest: fields.digest,
        timestamp_ms: fields.timestamp_ms,
        pcrs: fields.pcrs,
        certificate: fields.certificate,
        cabundle: fields.cabundle,
        public_key: fields.public_key,
        user_data: fields.user_data,
        nonce: fields.nonce,
        signature,
        to_be_signed,
    })
}

/// Protected header exactly `{1: -35}`; unprotected header empty (RFC 9052 3; the NSM writes
/// nothing else, and an unexpected `crit` or key id must not be silently ignored).
fn check_headers(sign1: &CoseSign1) -> Result<(), VerifyError> {
    let expected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES384)
        .build();
    let protected = &sign1.protected.header;
    if protected.alg != expected.alg {
        return Err(VerifyError::UnsupportedAlgorithm {
            tee: Tee::AwsNitro,
            detail: format!("COSE alg {:?}; only ES384 (-35) is accepted", protected.alg),
        });
    }
    if *protected != expected {
        return Err(VerifyError::malformed(
            "COSE protected header",
            "parameters other than alg ES384",
        ));
    }
    if !sign1.unprotected.is_empty() {
        return Err(VerifyError::malformed(
            "COSE unprotected header",
            "must be empty",
        ));
    }
    Ok(())
}

/// The payload fields, checked.
struct Fields {
    module_id: String,
    digest: String,
    timestamp_ms: u64,
    pcrs: BTreeMap<u8, Vec<u8>>,
    certificate: Vec<u8>,
    cabundle: Vec<Vec<u8>>,
    public_key: Option<Vec<u8>>,
    user_data: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
}

/// The payload keys of the specification, in the NSM's order.
const KEYS: [&str; 9] = [
    "module_id",
    "digest",
    "timestamp",
    "pcrs",
    "certificate",
    "cabundle",
    "public_key",
    "user_data",
    "nonce",
];

fn malformed(detail: impl std::fmt::Display) -> VerifyError {
    VerifyError::malformed(PAYLOAD, detail)
}

fn parse_payload(payload: &[u8]) -> Result<Fields, VerifyError> {
    let Value::Map(entries) = cbor::decode(payload, PAYLOAD)? else {
        return Err(malformed("payload is not a CBOR map"));
    };
    let mut slots: [Option<Value>; KEYS.len()] = Default::default();
    for (key, value) in entries {
        let Value::Text(key) = key else {
            return Err(malformed(format!(
                "map key is a {}, expected text",
                kind(&key)
            )));
        };
        let slot = KEYS
            .iter()
            .position(|k| *k == key)
            .and_then(|i| slots.get_mut(i))
            .ok_or_else(|| {
                let shown: String = key.chars().take(64).collect();
                malformed(format!("unknown key {shown:?}"))
            })?;
        if slot.replace(value).is_some() {
            return Err(malformed(format!("duplicate key {key:?}")));
        }
    }
    let [module_id, digest, timestamp, pcrs, certificate, cabundle, public_key, user_data, nonce] =
        slots;
    let required = |value: Option<Value>, key: &str| {
        value.ok_or_else(|| malformed(format!("missing required key {key:?}")))
    };

    let module_id = text(required(module_id, "module_id")?, "module_id")?;
    if module_id.is_empty() {
        return Err(malformed("module_id is empty"));
    }
    let digest = text(required(digest, "digest")?, "digest")?;
    if digest != "SHA384" {
        return Err(VerifyError::UnsupportedAlgorithm {
            tee: Tee::AwsNitro,
            detail: format!("document digest {digest:?}; only SHA384 is accepted"),
        });
    }
    let timestamp_ms = uint(required(timestamp, "timestamp")?, "timestamp")?;
    if timestamp_ms > MAX_TIMESTAMP_MS {
        return Err(malformed(format!(
            "timestamp {timestamp_ms} is beyond the year 9999"
        )));
    }
    let pcrs = parse_pcrs(required(pcrs, "pcrs")?)?;
    let certificate = bytes(
        required(certificate, "certificate")?,
        "certificate",
        1,
        MAX_CERT_BYTES,
    )?;
    let Value::Array(bundle) = required(cabundle, "cabundle")? else {
        return Err(malformed("cabundle is not an array"));
    };
    if bundle.is_empty() || bundle.len() > MAX_CABUNDLE {
        return Err(malformed(format!(
            "cabundle has {} certificates, expected 1 to {MAX_CABUNDLE}",
            bundle.len()
        )));
    }
    let cabundle = bundle
        .into_iter()
        .map(|c| bytes(c, "cabundle certificate", 1, MAX_CERT_BYTES))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Fields {
        module_id,
        digest,
        timestamp_ms,
        pcrs,
        certificate,
        cabundle,
        public_key: optional_bytes(public_key, "public_key", 1, MAX_PUBLIC_KEY_BYTES)?,
        user_data: optional_bytes(user_data, "user_data", 0, MAX_USER_DATA_BYTES)?,
        nonce: optional_bytes(nonce, "nonce", 0, MAX_NONCE_BYTES)?,
    })
}

/// `pcrs`: a map of 1 to 32 entries, index 0..=31 → a 48-byte value (SHA384), no duplicates.
fn parse_pcrs(value: Value) -> Result<BTreeMap<u8, Vec<u8>>, VerifyError> {
    let Value::Map(entries) = value else {
        return Err(malformed("pcrs is not a map"));
    };
    if entries.is_empty() || entries.len() > usize::from(MAX_PCR_INDEX) + 1 {
        return Err(malformed(format!(
            "pcrs has {} entries, expected 1 to 32",
            entries.len()
        )));
    }
    let mut pcrs = BTreeMap::new();
    for (index, value) in entries {
        let index = index
            .as_integer()
            .and_then(|i| u8::try_from(i).ok())
            .filter(|i| *i <= MAX_PCR_INDEX)
            .ok_or_else(|| malformed(format!("PCR index ({}) is not 0..=31", kind(&index))))?;
        let value = bytes(value, "PCR value", PCR_LEN, PCR_LEN)?;
        if pcrs.insert(index, value).is_some() {
            return Err(malformed(format!("duplicate PCR index {index}")));
        }
    }
    Ok(pcrs)
}

/// The CBOR type of a value, for error messages (never its content, which may be large).
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) => "integer",
        Value::Bytes(_) => "byte string",
        Value::Float(_) => "float",
        Value::Text(_) => "text string",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
        Value::Tag(..) => "tagged item",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        _ => "other value",
    }
}

fn text(value: Value, key: &str) -> Result<String, VerifyError> {
    value
        .into_text()
        .map_err(|v| malformed(format!("{key} is a {}, expected a text string", kind(&v))))
}

fn uint(value: Value, key: &str) -> Result<u64, VerifyError> {
    value
        .as_integer()
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| malformed(format!("{key} is not an unsigned 64-bit integer")))
}

fn bytes(value: Value, key: &str, min: usize, max: usize) -> Result<Vec<u8>, VerifyError> {
    let bytes = value
        .into_bytes()
        .map_err(|v| malformed(format!("{key} is a {}, expected a byte string", kind(&v))))?;
    if bytes.len() < min || bytes.len() > max {
        return Err(malformed(format!(
            "{key} is {} bytes, expected {min} to {max}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// An optional field: absent or CBOR null gives `None`.
fn optional_bytes(
    value: Option<Value>,
    key: &str,
    min: usize,
    max: usize,
) -> Result<Option<Vec<u8>>, VerifyError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => bytes(v, key, min, max).map(Some),
    }
}
