//! Claims from a verified Nitro attestation document.

use std::collections::BTreeMap;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::chain::VerifiedChain;
use super::document::Document;
use crate::HexBytes;

/// Claims from a verified AWS Nitro Enclaves attestation document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NitroClaims {
    /// The enclave's module id, `i-<instance>-enc<enclave>`.
    pub module_id: String,
    /// Document timestamp, RFC 3339 with milliseconds (UTC).
    pub timestamp: String,
    /// Document timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Digest of the PCRs (always `SHA384`).
    pub digest: String,
    /// PCR index → value (48 bytes, hex); JSON keys are the decimal indices `"0"`..`"15"`.
    pub pcrs: BTreeMap<u8, HexBytes>,
    /// A debug-mode enclave: PCR0, PCR1 and PCR2 all zero (the NSM zeroes them when the
    /// enclave runs with `--debug-mode`, whose console lets the parent read enclave memory). A
    /// document without one of these PCRs counts as debug too.
    pub debug: bool,
    /// `public_key` from the enclave, if any.
    pub public_key: Option<HexBytes>,
    /// `user_data` from the enclave, if any.
    pub user_data: Option<HexBytes>,
    /// `nonce` from the enclave, if any.
    pub nonce: Option<HexBytes>,
    /// SHA-256 fingerprint of the enclave (leaf) certificate.
    pub certificate_sha256: HexBytes,
    /// Whether the chain ends at the compiled-in AWS root (false: caller-supplied roots, such
    /// as simulated hardware).
    pub vendor_root: bool,
}

impl NitroClaims {
    pub(crate) fn new(doc: Document, chain: &VerifiedChain) -> Self {
        let debug = (0..3u8).all(|i| doc.pcrs.get(&i).is_none_or(|v| v.iter().all(|b| *b == 0)));
        NitroClaims {
            timestamp: rfc3339_ms(doc.timestamp_ms),
            timestamp_ms: doc.timestamp_ms,
            module_id: doc.module_id,
            digest: doc.digest,
            pcrs: doc
                .pcrs
                .into_iter()
                .map(|(i, v)| (i, HexBytes::from(v)))
                .collect(),
            debug,
            public_key: doc.public_key.map(HexBytes::from),
            user_data: doc.user_data.map(HexBytes::from),
            nonce: doc.nonce.map(HexBytes::from),
            certificate_sha256: chain.leaf_sha256.clone(),
            vendor_root: chain.vendor_root,
        }
    }

    /// The value of PCR `index`, if the document has it.
    pub fn pcr(&self, index: u8) -> Option<&[u8]> {
        self.pcrs.get(&index).map(HexBytes::as_slice)
    }
}

/// `2022-10-13T08:58:02.136Z`; the parser bounds timestamps to RFC 3339's range.
fn rfc3339_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{ms}ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_milliseconds() {
        assert_eq!(rfc3339_ms(1_665_651_482_136), "2022-10-13T08:58:02.136Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
    }
}
