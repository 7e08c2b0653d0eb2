//! TPM 2.0: quotes, certifications, AK enrollment and measured boot, in pure Rust (no TSS).
//!
//! ```text
//! TPMS_ATTEST ──signature──▶ AK ──(optional) AK certificate chain──▶ caller's anchors
//!      │                      └─ TPM2_ActivateCredential with our MakeCredential ─▶ EK ─▶ EK chain
//!      ├─ extraData == nonce
//!      └─ pcrDigest == H(selected PCR values) ◀── event log replay
//! ```
//!
//! - [`verify_quote`]: a TPM2_Quote with its PCR values and event log → [`VerifiedEvidence`]
//!   with [`TpmClaims`].
//! - [`verify_certify`]: a TPM2_Certify of a key (such as the P-256 token-binding key) by the
//!   AK → [`CertifiedKey`].
//! - [`make_credential`] and [`check_activated_secret`]: AK enrollment against an EK.
//! - [`verify_chain`]: EK and AK certificate chains to caller-supplied anchors (no vendor TPM
//!   CA is built in).
//! - [`EventLog`]: the TCG PC Client crypto-agile event log, parsed and replayed.
//! - Parsers for [`Attest`] (`TPMS_ATTEST`), [`Public`] (`TPMT_PUBLIC` / `TPM2B_PUBLIC`) and
//!   [`Signature`] (`TPMT_SIGNATURE` or a bare RSASSA signature).
//!
//! Every parser is total and bounded: TPM2B sizes are checked against their type's maximum
//! and the input left; PCR selections are limited to [`MAX_PCR_BANKS`] banks of
//! [`MAX_PCRS`] PCRs; event logs to [`MAX_EVENT_LOG_BYTES`], [`MAX_EVENTS`] events and
//! [`MAX_EVENT_DATA_BYTES`] per event.
//!
//! References: TPM 2.0 Library rev 1.59 Part 1 (Architecture), Part 2 (Structures), Part 3
//! (Commands); TCG PC Client Platform Firmware Profile 1.05 (event log); TCG PC Client
//! Platform TPM Profile 1.05 (24 PCRs).
//!
//! [`VerifiedEvidence`]: crate::VerifiedEvidence

pub mod alg;
mod certify;
mod chain;
mod claims;
mod credential;
mod der;
mod eventlog;
mod events;
mod pcrs;
mod public;
mod quote;
mod structures;

pub use alg::{HashAlg, ObjectAttributes};
pub use certify::{verify_certify, CertifiedKey, CertifyEvidence, CertifyOptions};
pub use chain::{verify_chain, CertChain, ChainClaims, MAX_CHAIN_LEN};
pub use claims::{AkClaims, Clock, EventClaims, EventLogClaims, SignatureClaims, TpmClaims};
pub use credential::{
    check_activated_secret, kdfa, kdfe, make_credential, make_credential_with_seed, Credential,
    IDENTITY_LABEL,
};
pub use eventlog::{
    Event, EventLog, LogAlgorithm, MAX_EVENTS, MAX_EVENT_DATA_BYTES, MAX_EVENT_LOG_BYTES,
};
pub use events::{
    decode as decode_event_data, type_name as event_type_name, EventData, EFI_GLOBAL_VARIABLE,
};
pub use pcrs::{PcrValues, MAX_PCR_JSON_BYTES};
pub use public::{
    AttestationKey, EccCurve, Parameters, Public, PublicKey, Scheme, SymmetricDef, Unique,
};
pub use quote::{check_ak_attributes, verify_quote, QuoteEvidence, QuoteOptions};
pub use structures::{
    Attest, Attested, CertifyInfo, ClockInfo, PcrSelection, QuoteInfo, Signature,
    BARE_RSA_SIGNATURE_LENGTHS, MAX_PCRS, MAX_PCR_BANKS,
};

use crate::VerifyError;

/// `TPM_RH_OWNER`: the storage hierarchy's handle, which is also its qualified name.
pub const TPM_RH_OWNER: u32 = 0x4000_0001;
/// `TPM_RH_ENDORSEMENT`: the endorsement hierarchy (EKs, and AKs created as primaries there,
/// such as GCE's).
pub const TPM_RH_ENDORSEMENT: u32 = 0x4000_000B;

/// The qualified name of an object (Part 1, 16.6): `nameAlg ‖ H_nameAlg(parent QN ‖ Name)`,
/// with the object's nameAlg taken from its Name. A hierarchy's qualified name is its handle,
/// so a primary key in the endorsement hierarchy has
/// `qualified_name(&TPM_RH_ENDORSEMENT.to_be_bytes(), &name)`; a child of a key has its
/// parent's qualified name here. Compare the result with a quote's qualifiedSigner through
/// [`QuoteOptions::expected_qualified_signer`].
pub fn qualified_name(parent_qualified_name: &[u8], name: &[u8]) -> Result<Vec<u8>, VerifyError> {
    let hash = match name {
        [hi, lo, digest @ ..] => HashAlg::from_tpm(u16::from_be_bytes([*hi, *lo]))
            .filter(|h| h.digest_len() == digest.len()),
        _ => None,
    }
    .ok_or_else(|| VerifyError::malformed("TPM2B_NAME", "not a digest Name"))?;
    let mut qn = hash.tpm_id().to_be_bytes().to_vec();
    qn.extend(hash.digest_parts(&[parent_qualified_name, name]));
    Ok(qn)
}
