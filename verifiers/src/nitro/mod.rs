//! AWS Nitro Enclaves: attestation documents verified to the pinned AWS Nitro root.
//!
//! ```text
//! COSE_Sign1 ──ES384──▶ certificate ──▶ cabundle[n-1] ──▶ … ──▶ cabundle[0] == pinned root
//!   (payload: module_id, digest, timestamp, pcrs, certificate, cabundle,
//!             public_key, user_data, nonce)
//! ```
//!
//! [`NitroVerifier::verify`] runs, in order: document parsing ([`document::parse`]: COSE
//! envelope, ES384 header, payload fields by type and size), the certificate chain (cached by
//! certificate fingerprints once a document under it has verified), certificate validity at
//! the verification time, the COSE signature, and the optional expected nonce and user data
//! (exact length, never padded).
//!
//! Documents are CBOR; decoding goes through `ciborium` (bounded by a pre-scan, see `cbor`)
//! and the COSE structure through `coset` (`docs/decisions/0003-cbor-cose.md`).

mod anchors;
mod cbor;
mod chain;
mod claims;
pub mod document;

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;

pub use anchors::{NitroRoot, NitroTrustAnchors, AWS_NITRO_ROOT_SHA256};
pub use cbor::MAX_DEPTH as MAX_CBOR_DEPTH;
pub use claims::NitroClaims;

use chain::{ChainCache, VerifiedChain};
use document::Document;

use crate::{Claims, Tee, UnixTime, VerifiedEvidence, VerifyError};

/// What a verification is checked against besides the trust anchors.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// Verification time. Always explicit: enclave certificates live about three hours.
    pub at: UnixTime,
    /// If set, the document's `nonce` must equal this exactly (same length, same bytes; a
    /// document without a nonce never matches).
    pub expected_nonce: Option<&'a [u8]>,
    /// If set, the document's `user_data` must equal this exactly.
    pub expected_user_data: Option<&'a [u8]>,
}

impl VerifyOptions<'_> {
    /// Options with a verification time and no expected nonce or user data.
    pub fn at(at: UnixTime) -> Self {
        VerifyOptions {
            at,
            expected_nonce: None,
            expected_user_data: None,
        }
    }
}

/// Verifies Nitro attestation documents to a fixed set of roots, caching verified chains.
///
/// Cheap to share across threads (`&self` everywhere). A second document from the same enclave
/// certificate costs CBOR parsing and one P-384 verification.
#[derive(Debug)]
pub struct NitroVerifier {
    anchors: NitroTrustAnchors,
    cache: ChainCache,
}

impl Default for NitroVerifier {
    /// A verifier trusting only the pinned AWS Nitro root.
    fn default() -> Self {
        NitroVerifier::new(NitroTrustAnchors::builtin())
    }
}

impl NitroVerifier {
    /// A verifier trusting exactly `anchors`.
    pub fn new(anchors: NitroTrustAnchors) -> Self {
        NitroVerifier {
            anchors,
            cache: ChainCache::default(),
        }
    }

    /// The trusted roots.
    pub fn anchors(&self) -> &NitroTrustAnchors {
        &self.anchors
    }

    /// Number of certificate chains in the cache.
    pub fn cached_chains(&self) -> usize {
        self.cache.len()
    }

    /// Verifies a COSE_Sign1 attestation document (raw bytes; see [`decode_input`] for base64).
    pub fn verify(
        &self,
        doc: &[u8],
        opts: &VerifyOptions<'_>,
    ) -> Result<VerifiedEvidence, VerifyError> {
        let document = document::parse(doc)?;
        let (key, cached) = self.cache.lookup(&document.certificate, &document.cabundle);
        let chain = match cached {
            Some(chain) => chain,
            None => Arc::new(chain::verify_chain(
                &document.certificate,
                &document.cabundle,
                &self.anchors,
            )?),
        };
        chain.check_valid_at(opts.at)?;
        check_signature(&document, &chain)?;
        // The chain is cached only once a document signed under it verified.
        self.cache.insert(key, Arc::clone(&chain));
        check_binding(document.nonce.as_deref(), opts.expected_nonce, "nonce")?;
        check_binding(
            document.user_data.as_deref(),
            opts.expected_user_data,
            "user_data",
        )?;
        let claims = NitroClaims::new(document, &chain);
        Ok(VerifiedEvidence::new(Claims::AwsNitro(claims), opts.at))
    }
}

/// Verifies one document with the pinned AWS root and no cache.
pub fn verify(doc: &[u8], opts: &VerifyOptions<'_>) -> Result<VerifiedEvidence, VerifyError> {
    NitroVerifier::default().verify(doc, opts)
}

/// ES384 (ECDSA P-384, SHA-384) over the COSE Sig_structure by the enclave certificate's key
/// (RFC 9052 4.4, RFC 9053 2.1).
fn check_signature(doc: &Document, chain: &VerifiedChain) -> Result<(), VerifyError> {
    chain
        .key
        .verify(doc.to_be_signed(), doc.signature())
        .map_err(|_| VerifyError::Signature { tee: Tee::AwsNitro })
}

/// An expected value must equal the document's field exactly, at its full length.
fn check_binding(
    actual: Option<&[u8]>,
    expected: Option<&[u8]>,
    field: &'static str,
) -> Result<(), VerifyError> {
    match expected {
        Some(expected) if actual != Some(expected) => Err(VerifyError::BindingMismatch {
            tee: Tee::AwsNitro,
            field,
        }),
        _ => Ok(()),
    }
}

/// Documents travel as raw CBOR or as base64 text (the NSM's callers often ship them in JSON).
///
/// Raw when the input starts like a COSE_Sign1 (`0x84`, an array of four, or `0xd2`, tag 18);
/// otherwise, when it is entirely standard-alphabet base64 (padding optional, ASCII whitespace
/// ignored), the decoded bytes; otherwise the input unchanged, for [`document::parse`] to
/// reject. Bounded: text longer than a base64-encoded [`document::MAX_DOCUMENT_BYTES`] plus
/// whitespace is refused before decoding.
pub fn decode_input(input: &[u8]) -> Result<Cow<'_, [u8]>, VerifyError> {
    const WHAT: &str = "base64 Nitro attestation document";
    let text = input.trim_ascii();
    let looks_raw = matches!(input.first(), Some(0x84 | 0xd2));
    let is_base64 = !text.is_empty()
        && text.iter().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=') || b.is_ascii_whitespace()
        });
    if looks_raw || !is_base64 {
        return Ok(Cow::Borrowed(input));
    }
    if text.len() > 2 * document::MAX_DOCUMENT_BYTES {
        return Err(VerifyError::malformed(
            WHAT,
            format!("{} bytes of text is too long", text.len()),
        ));
    }
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine
        .decode(&compact)
        .map(Cow::Owned)
        .map_err(|e| VerifyError::malformed(WHAT, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_is_exact() {
        assert!(check_binding(Some(b"ab"), None, "nonce").is_ok());
        assert!(check_binding(None, None, "nonce").is_ok());
        assert!(check_binding(Some(b"ab"), Some(b"ab"), "nonce").is_ok());
        let err = |a: Option<&[u8]>, e: &[u8], f| check_binding(a, Some(e), f).unwrap_err().code();
        assert_eq!(err(Some(b"ab"), b"ab\0", "nonce"), "nitro.nonce");
        assert_eq!(err(Some(b"ab\0"), b"ab", "nonce"), "nitro.nonce");
        assert_eq!(err(None, b"", "nonce"), "nitro.nonce");
        assert_eq!(err(Some(b"x"), b"y", "user_data"), "nitro.user_data");
    }

    #[test]
    fn input_encodings() {
        let raw = [0x84, 0x40, 0xa0, 0xf6, 0x40];
        assert_eq!(decode_input(&raw).unwrap(), &raw[..]);
        assert_eq!(decode_input(b"hECg9kA=").unwrap(), &raw[..]);
        assert_eq!(decode_input(b"hECg9kA").unwrap(), &raw[..]);
        assert_eq!(decode_input(b" hECg\n9kA=\r\n").unwrap(), &raw[..]);
        // Not base64 at all: passed through for the parser to reject.
        assert_eq!(decode_input(b"hE-g9kA").unwrap(), &b"hE-g9kA"[..]);
        assert_eq!(decode_input(b"").unwrap(), &b""[..]);
        // Base64 alphabet but not decodable.
        assert_eq!(decode_input(b"h").unwrap_err().code(), "parse.malformed");
        let huge = vec![b'A'; 4 * document::MAX_DOCUMENT_BYTES];
        assert_eq!(decode_input(&huge).unwrap_err().code(), "parse.malformed");
    }
}
