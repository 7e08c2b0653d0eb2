//! TPM2_Quote verification (TPM 2.0 Library Part 3, rev 1.59, 18.4).

use super::alg::{ObjectAttributes, TPM_ALG_NULL, TPM_ST_ATTEST_QUOTE};
use super::chain::{self, CertChain, ChainClaims};
use super::claims::{AkClaims, TpmClaims};
use super::eventlog::{self, EventLog};
use super::pcrs::{self, PcrValues};
use super::public::{AttestationKey, Public, PublicKey};
use super::structures::{Attest, Attested, QuoteInfo, Signature};
use crate::{Claims, Tee, UnixTime, VerifiedEvidence, VerifyError};

/// A quote and what came with it from the attester.
#[derive(Debug, Clone, Copy)]
pub struct QuoteEvidence<'a> {
    /// The marshalled TPMS_ATTEST, exactly the bytes the TPM signed.
    pub attest: &'a [u8],
    /// The signature over them.
    pub signature: &'a Signature,
    /// The attestation key.
    pub ak: &'a AttestationKey,
    /// PCR values, checked against pcrDigest; without them only pcrDigest is attested.
    pub pcrs: Option<&'a PcrValues>,
    /// The measured-boot event log, checked against the quoted PCR values (needs `pcrs`).
    pub event_log: Option<&'a EventLog>,
}

/// What a quote is verified against.
#[derive(Debug, Clone, Copy)]
pub struct QuoteOptions<'a> {
    /// Verification time (certificate validity). Always explicit.
    pub at: UnixTime,
    /// extraData must equal this exactly. `None` skips the check: only for evidence whose
    /// freshness is established another way.
    pub expected_nonce: Option<&'a [u8]>,
    /// If set, the AK must be certified by this chain (its first certificate's key must be
    /// the AK).
    pub ak_chain: Option<CertChain<'a>>,
    /// If set, qualifiedSigner must equal this (see [`super::qualified_name`]).
    pub expected_qualified_signer: Option<&'a [u8]>,
}

impl QuoteOptions<'_> {
    /// Options with a verification time and nothing else.
    pub fn at(at: UnixTime) -> Self {
        QuoteOptions {
            at,
            expected_nonce: None,
            ak_chain: None,
            expected_qualified_signer: None,
        }
    }
}

/// Verifies a TPM 2.0 quote.
///
/// In order: the TPMS_ATTEST parses and is a quote; an AK given as a TPM public area is a
/// restricted, fixed signing key whose scheme is the signature's; the AK chain, if required;
/// the signature over the raw TPMS_ATTEST; extraData against the nonce; qualifiedSigner, if
/// expected; pcrDigest against the supplied PCR values; the event log against those values.
pub fn verify_quote(
    evidence: &QuoteEvidence<'_>,
    opts: &QuoteOptions<'_>,
) -> Result<VerifiedEvidence, VerifyError> {
    let attest = Attest::parse(evidence.attest)?;
    let quote = check_quote_type(&attest)?;
    if let Some(public) = evidence.ak.tpm_public() {
        check_ak_attributes(public)?;
        check_scheme(public, evidence.signature)?;
    }
    let certificate = check_ak_chain(evidence.ak.public_key(), opts)?;
    check_signature(
        evidence.attest,
        evidence.signature,
        evidence.ak.public_key(),
    )?;
    check_nonce(&attest, opts.expected_nonce)?;
    check_qualified_signer(&attest, opts.expected_qualified_signer)?;
    let pcrs = match evidence.pcrs {
        Some(values) => check_pcr_digest(quote, values, evidence.signature)?,
        None => PcrValues::new(),
    };
    let event_log = evidence
        .event_log
        .map(|log| check_event_log(log, &pcrs))
        .transpose()?;
    let claims = TpmClaims::new(
        &attest,
        quote,
        evidence.signature,
        &pcrs,
        AkClaims::new(evidence.ak, certificate),
        event_log,
    );
    Ok(VerifiedEvidence::new(Claims::Tpm(claims), opts.at))
}

/// The attestation must be a quote (`TPM_ST_ATTEST_QUOTE`, Part 2, 10.12.12).
pub(crate) fn check_quote_type(attest: &Attest) -> Result<&QuoteInfo, VerifyError> {
    match &attest.attested {
        Attested::Quote(q) => Ok(q),
        Attested::Certify(_) => Err(VerifyError::TpmAttestType {
            expected: TPM_ST_ATTEST_QUOTE,
            actual: attest.attest_type,
        }),
    }
}

/// An AK is a restricted signing key that cannot leave its TPM (Part 1, 25 "Attestation";
/// Part 2, 8.3 TPMA_OBJECT): `restricted` and `sign` (it signs only TPM_GENERATED structures,
/// so a quote cannot be forged by having it sign chosen data), `fixedTPM` and `fixedParent`
/// (not duplicable), and not `decrypt`.
pub fn check_ak_attributes(ak: &Public) -> Result<(), VerifyError> {
    let a = ak.attributes;
    let required = [
        (ObjectAttributes::RESTRICTED, "restricted"),
        (ObjectAttributes::SIGN_ENCRYPT, "sign"),
        (ObjectAttributes::FIXED_TPM, "fixedTPM"),
        (ObjectAttributes::FIXED_PARENT, "fixedParent"),
    ];
    for (bit, name) in required {
        if !a.contains(bit) {
            return Err(VerifyError::TpmAkAttributes {
                attributes: a.0,
                detail: format!("{name} is not set"),
            });
        }
    }
    if a.contains(ObjectAttributes::DECRYPT) {
        return Err(VerifyError::TpmAkAttributes {
            attributes: a.0,
            detail: "decrypt is set".into(),
        });
    }
    Ok(())
}

/// A restricted signing key signs only with its own scheme (Part 3, 18.1: `inScheme` must be
/// NULL or equal the key's), so a signature in another scheme or hash did not come from it.
pub(crate) fn check_scheme(ak: &Public, sig: &Signature) -> Result<(), VerifyError> {
    match ak.parameters.scheme() {
        Some(scheme)
            if scheme.scheme != sig.scheme_id()
                || (scheme.hash != TPM_ALG_NULL && scheme.hash != sig.hash().tpm_id()) =>
        {
            Err(VerifyError::Signature { tee: Tee::Tpm })
        }
        _ => Ok(()),
    }
}

/// The AK certificate chain, when the options require one.
pub(crate) fn check_ak_chain(
    ak: &PublicKey,
    opts: &QuoteOptions<'_>,
) -> Result<Option<ChainClaims>, VerifyError> {
    opts.ak_chain
        .map(|c| chain::verify_chain(&c, ak, opts.at))
        .transpose()
}

/// The signature verifies under the AK over the raw TPMS_ATTEST (Part 3, 18.4.1).
pub(crate) fn check_signature(
    attest: &[u8],
    sig: &Signature,
    ak: &PublicKey,
) -> Result<(), VerifyError> {
    ak.verify(sig, attest)
}

/// extraData equals the expected qualifying data exactly, at its full length.
pub(crate) fn check_nonce(attest: &Attest, expected: Option<&[u8]>) -> Result<(), VerifyError> {
    match expected {
        Some(nonce) if !crate::crypto::constant_time_eq(nonce, &attest.extra_data) => {
            Err(VerifyError::BindingMismatch {
                tee: Tee::Tpm,
                field: "extraData",
            })
        }
        _ => Ok(()),
    }
}

/// qualifiedSigner equals the expected qualified name (Part 1, 16.6).
pub(crate) fn check_qualified_signer(
    attest: &Attest,
    expected: Option<&[u8]>,
) -> Result<(), VerifyError> {
    match expected {
        Some(qn) if qn != attest.qualified_signer.as_slice() => {
            Err(VerifyError::TpmQualifiedSigner {
                expected: hex::encode(qn),
                actual: hex::encode(&attest.qualified_signer),
            })
        }
        _ => Ok(()),
    }
}

/// pcrDigest equals the signing hash over the supplied values of the quote's own selection, in
/// its order (Part 3, 18.4.1). Returns the values the digest covers.
pub(crate) fn check_pcr_digest(
    quote: &QuoteInfo,
    values: &PcrValues,
    sig: &Signature,
) -> Result<PcrValues, VerifyError> {
    let (computed, used) = pcrs::quoted_values(&quote.pcr_select, values, sig.hash())?;
    if computed != quote.pcr_digest {
        return Err(VerifyError::TpmPcrDigest {
            quoted: hex::encode(&quote.pcr_digest),
            computed: hex::encode(computed),
        });
    }
    Ok(used)
}

/// The event log replays to the quoted PCR values.
fn check_event_log(
    log: &EventLog,
    quoted: &PcrValues,
) -> Result<super::claims::EventLogClaims, VerifyError> {
    if quoted.is_empty() {
        return Err(VerifyError::TpmEventLog {
            detail: "no verified PCR values to replay the log against (supply the PCRs)".into(),
        });
    }
    eventlog::check_against_quote(log, quoted)
}
