//! Claims from a verified TPM quote, serialised for policies and people.

use std::collections::BTreeMap;

use serde::Serialize;

use super::alg::HashAlg;
use super::chain::ChainClaims;
use super::eventlog::Event;
use super::events::{self, EventData};
use super::pcrs::PcrValues;
use super::public::AttestationKey;
use super::structures::{Attest, ClockInfo, QuoteInfo, Signature};
use crate::HexBytes;

/// `TPMS_CLOCK_INFO`, as claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Clock {
    /// Milliseconds the TPM has been powered since its last Clear.
    pub clock: u64,
    /// TPM Resets since the last Clear (a reboot increments it).
    pub reset_count: u32,
    /// TPM Restarts / Resumes since the last Reset.
    pub restart_count: u32,
    /// Whether the clock value is known not to have gone backwards.
    pub safe: bool,
}

impl From<ClockInfo> for Clock {
    fn from(c: ClockInfo) -> Self {
        Clock {
            clock: c.clock,
            reset_count: c.reset_count,
            restart_count: c.restart_count,
            safe: c.safe,
        }
    }
}

/// The signature scheme the quote was verified under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SignatureClaims {
    /// `rsassa`, `rsapss` or `ecdsa`.
    pub scheme: &'static str,
    /// Hash of the signed TPMS_ATTEST (and of pcrDigest).
    pub hash: HashAlg,
}

/// The attestation key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AkClaims {
    /// `rsa-2048`, `ecc-p256`, ….
    pub key_type: &'static str,
    /// SHA-256 of its DER SubjectPublicKeyInfo.
    pub spki_sha256: HexBytes,
    /// Its TPM Name, when the AK came as a TPM public area.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<HexBytes>,
    /// Its objectAttributes (checked), when the AK came as a TPM public area.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Vec<&'static str>>,
    /// The verified AK certificate chain, when one was required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<ChainClaims>,
}

impl AkClaims {
    pub(crate) fn new(ak: &AttestationKey, certificate: Option<ChainClaims>) -> Self {
        let key = ak.public_key();
        AkClaims {
            key_type: key.key_type(),
            spki_sha256: key.fingerprint().into(),
            name: ak.tpm_public().map(|p| p.name().into()),
            attributes: ak.tpm_public().map(|p| p.attributes.names()),
            certificate,
        }
    }
}

/// One measured-boot event the quote vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventClaims {
    /// Position in the log (the Spec ID header is 0).
    pub index: usize,
    /// PCR extended.
    pub pcr: u8,
    /// Event type name (`EV_SEPARATOR`, …, or hex).
    pub event_type: String,
    /// Event type value.
    #[serde(skip)]
    pub event_type_value: u32,
    /// Digests of the banks that verified this PCR.
    pub digests: BTreeMap<HashAlg, HexBytes>,
    /// Whether each of those digests is the hash of the event data (true for events that
    /// measure their own data, such as Secure Boot variables and separators; false where the
    /// digest is of something else, such as a PE image's Authenticode hash).
    pub data_verified: bool,
    /// The decoded event data, for types that have a decoding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<EventData>,
}

impl EventClaims {
    pub(crate) fn new(event: &Event, banks: &[HashAlg]) -> Self {
        let digests: BTreeMap<HashAlg, HexBytes> = banks
            .iter()
            .filter_map(|b| event.digest(*b).map(|d| (*b, d.to_vec().into())))
            .collect();
        let data_verified = banks
            .iter()
            .all(|b| event.digest(*b) == Some(b.digest(&event.data).as_slice()));
        EventClaims {
            index: event.sequence,
            pcr: event.pcr,
            event_type: event.type_name(),
            event_type_value: event.event_type,
            digests,
            data_verified,
            data: events::decode(event.event_type, &event.data),
        }
    }
}

/// What a verified event log shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventLogClaims {
    /// Banks the log was checked in (those both the log and the quote have).
    pub verified_banks: Vec<HashAlg>,
    /// PCRs whose replay matched the quote in at least one bank.
    pub verified_pcrs: Vec<u8>,
    /// The TPM's startup locality, from a StartupLocality event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_locality: Option<u8>,
    /// Whether UEFI Secure Boot was on, from the verified `SecureBoot` variable measurement;
    /// `None` if the verified part of the log does not say.
    pub secure_boot: Option<bool>,
    /// Events left out because their PCR was not quoted.
    pub unverified_events: usize,
    /// The events on verified PCRs, in log order.
    pub events: Vec<EventClaims>,
}

/// Claims from a verified TPM 2.0 quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TpmClaims {
    /// `quote`.
    pub attest_type: &'static str,
    /// extraData: the qualifying data (nonce) the quote was made over.
    pub nonce: HexBytes,
    /// qualifiedSigner: the AK's qualified name as the TPM reports it.
    pub qualified_signer: HexBytes,
    /// firmwareVersion (vendor-defined), as hex.
    #[serde(serialize_with = "hex_u64")]
    pub firmware_version: u64,
    /// The TPM clock.
    pub clock: Clock,
    /// The signature scheme.
    pub signature: SignatureClaims,
    /// pcrDigest from the quote.
    pub pcr_digest: HexBytes,
    /// The quote's PCR selection: bank → indices, as the TPM selected them.
    pub pcr_select: BTreeMap<HashAlg, Vec<u8>>,
    /// The selected PCR values, verified against pcrDigest: bank → index → value. Empty when
    /// no PCR values were supplied (then only `pcr_digest` is attested).
    pub pcrs: BTreeMap<HashAlg, BTreeMap<u8, HexBytes>>,
    /// The attestation key.
    pub ak: AkClaims,
    /// The measured-boot event log, when one was supplied and replayed to the PCRs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_log: Option<EventLogClaims>,
}

impl TpmClaims {
    pub(crate) fn new(
        attest: &Attest,
        quote: &QuoteInfo,
        signature: &Signature,
        pcrs: &PcrValues,
        ak: AkClaims,
        event_log: Option<EventLogClaims>,
    ) -> Self {
        let mut pcr_select: BTreeMap<HashAlg, Vec<u8>> = BTreeMap::new();
        for selection in &quote.pcr_select {
            let indices = pcr_select.entry(selection.hash).or_default();
            indices.extend(&selection.pcrs);
            indices.sort_unstable();
            indices.dedup();
        }
        TpmClaims {
            attest_type: "quote",
            nonce: attest.extra_data.clone().into(),
            qualified_signer: attest.qualified_signer.clone().into(),
            firmware_version: attest.firmware_version,
            clock: attest.clock_info.into(),
            signature: SignatureClaims {
                scheme: signature.scheme_name(),
                hash: signature.hash(),
            },
            pcr_digest: quote.pcr_digest.clone().into(),
            pcr_select,
            pcrs: pcrs
                .banks()
                .iter()
                .map(|(bank, values)| {
                    let values = values.iter().map(|(i, v)| (*i, v.clone().into())).collect();
                    (*bank, values)
                })
                .collect(),
            ak,
            event_log,
        }
    }
}

fn hex_u64<S: serde::Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{value:#018x}"))
}
