//! The one error type of this crate: every rejection has a stable dotted code.

use std::fmt;

use crate::time::UnixTime;
use crate::Tee;

/// Why a piece of evidence was rejected.
///
/// [`VerifyError::code`] gives a stable dotted code (`snp.signature`, `parse.truncated`, …) that
/// callers may match on and that the broker puts in its JSON errors; the `Display` text is for
/// humans and may change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The input ended before a structure was complete.
    #[error("{what}: truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A fixed-size structure had the wrong size.
    #[error("{what}: expected {expected} bytes, got {actual}")]
    Length {
        /// The structure.
        what: &'static str,
        /// Its defined size.
        expected: usize,
        /// The size given.
        actual: usize,
    },
    /// Bytes were left over after a complete structure.
    #[error("{what}: {extra} trailing bytes after the structure")]
    TrailingData {
        /// The structure.
        what: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
    /// The input is not a well-formed instance of the structure.
    #[error("{what}: malformed: {detail}")]
    Malformed {
        /// The structure.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A structure version this verifier does not accept.
    #[error("{tee}: unsupported {what} version {version}")]
    UnsupportedVersion {
        /// Evidence kind.
        tee: Tee,
        /// The versioned structure.
        what: &'static str,
        /// The version found.
        version: u64,
    },
    /// An algorithm this verifier does not accept.
    #[error("{tee}: unsupported algorithm: {detail}")]
    UnsupportedAlgorithm {
        /// Evidence kind.
        tee: Tee,
        /// Which algorithm.
        detail: String,
    },
    /// The evidence signature does not verify under the endorsed key.
    #[error("{tee}: evidence signature does not verify")]
    Signature {
        /// Evidence kind.
        tee: Tee,
    },
    /// The certificate chain does not lead to a trusted root.
    #[error("{tee}: certificate chain: {detail}")]
    Chain {
        /// Evidence kind.
        tee: Tee,
        /// What failed.
        detail: String,
    },
    /// A certificate in the chain had expired at the verification time.
    #[error("{tee}: certificate {subject} expired at {not_after} (verification time {at})")]
    CertExpired {
        /// Evidence kind.
        tee: Tee,
        /// Subject common name of the certificate.
        subject: String,
        /// Its notAfter.
        not_after: UnixTime,
        /// The verification time.
        at: UnixTime,
    },
    /// A certificate in the chain was not yet valid at the verification time.
    #[error("{tee}: certificate {subject} not valid before {not_before} (verification time {at})")]
    CertNotYetValid {
        /// Evidence kind.
        tee: Tee,
        /// Subject common name of the certificate.
        subject: String,
        /// Its notBefore.
        not_before: UnixTime,
        /// The verification time.
        at: UnixTime,
    },
    /// The report names a different signing key kind than the certificate (VCEK vs VLEK).
    #[error("snp: report says it is signed by the {report}, certificate is a {cert}")]
    SnpSignerMismatch {
        /// Signer named in the report's signer_info.
        report: &'static str,
        /// Signer the certificate is.
        cert: &'static str,
    },
    /// The VCEK's hwID extension differs from the report's chip_id.
    #[error("snp: VCEK hwID {cert} does not match report chip_id {report}")]
    SnpHwIdMismatch {
        /// hwID in the certificate (hex).
        cert: String,
        /// chip_id in the report (hex, compared prefix).
        report: String,
    },
    /// A TCB SPL in the VCEK differs from the report's reported_tcb.
    #[error("snp: certificate {component} SPL {cert} does not match reported_tcb {report}")]
    SnpTcbMismatch {
        /// Which TCB component (bootloader, tee, snp, microcode, fmc).
        component: &'static str,
        /// Value in the certificate.
        cert: u64,
        /// Value in the report.
        report: u8,
    },
    /// The report's CPUID says one product generation, the certificate another.
    #[error("snp: report CPUID is {report}, certificate chain is {cert}")]
    SnpGenerationMismatch {
        /// Generation from the report's CPUID fields.
        report: String,
        /// Generation from the certificate issuer.
        cert: String,
    },
    /// A reserved field that must be zero is not.
    #[error("{tee}: reserved field {field} is not zero")]
    ReservedNotZero {
        /// Evidence kind.
        tee: Tee,
        /// Which field.
        field: &'static str,
    },
    /// The evidence's user data does not equal what the caller expected.
    #[error("{tee}: {field} does not match the expected value")]
    BindingMismatch {
        /// Evidence kind.
        tee: Tee,
        /// The field compared (report_data, nonce, …).
        field: &'static str,
    },
    /// The PCR values supplied do not hash to the quote's pcrDigest.
    #[error("tpm: the PCR values hash to {computed}, the quote's pcrDigest is {quoted}")]
    TpmPcrDigest {
        /// pcrDigest in the quote (hex).
        quoted: String,
        /// Digest of the supplied values (hex).
        computed: String,
    },
    /// The attestation key's objectAttributes are not those of a restricted signing key that
    /// never leaves its TPM.
    #[error("tpm: AK objectAttributes {attributes:#010x}: {detail}")]
    TpmAkAttributes {
        /// TPMA_OBJECT of the AK.
        attributes: u32,
        /// Which rule failed.
        detail: String,
    },
    /// A certified key's objectAttributes do not make it a TPM-bound signing key.
    #[error("tpm: certified key objectAttributes {attributes:#010x}: {detail}")]
    TpmKeyAttributes {
        /// TPMA_OBJECT of the certified key.
        attributes: u32,
        /// Which rule failed.
        detail: String,
    },
    /// The attestation's qualifiedSigner is not the expected qualified name.
    #[error("tpm: qualifiedSigner {actual} is not the expected {expected}")]
    TpmQualifiedSigner {
        /// Expected qualified name (hex).
        expected: String,
        /// qualifiedSigner in the attestation (hex).
        actual: String,
    },
    /// The attestation structure is of another type than the one being verified.
    #[error("tpm: attestation type {actual:#06x}, expected {expected:#06x}")]
    TpmAttestType {
        /// TPM_ST expected (0x8018 quote, 0x8017 certify).
        expected: u16,
        /// TPM_ST found.
        actual: u16,
    },
    /// TPM2_Certify vouches for another object than the key presented.
    #[error("tpm: certified Name {actual} is not the Name of the presented key {expected}")]
    TpmCertifiedName {
        /// Name of the presented key (hex).
        expected: String,
        /// Name in the attestation (hex).
        actual: String,
    },
    /// The measured-boot event log does not replay to the quoted PCR values.
    #[error("tpm: event log: {detail}")]
    TpmEventLog {
        /// What does not match.
        detail: String,
    },
    /// A credential (TPM2_MakeCredential) cannot be made, or the secret an attester returned
    /// from TPM2_ActivateCredential is wrong.
    #[error("tpm: credential: {detail}")]
    TpmCredential {
        /// What failed.
        detail: String,
    },
}

/// `"<prefix>.<suffix>"` for the evidence kind, as a `&'static str`.
macro_rules! per_tee {
    ($tee:expr, $suffix:literal) => {
        match $tee {
            Tee::SevSnp => concat!("snp.", $suffix),
            Tee::Tpm => concat!("tpm.", $suffix),
            Tee::AwsNitro => concat!("nitro.", $suffix),
        }
    };
}

impl VerifyError {
    /// The stable dotted code of this error.
    pub fn code(&self) -> &'static str {
        use VerifyError as E;
        match self {
            E::Truncated { .. } => "parse.truncated",
            E::Length { .. } => "parse.length",
            E::TrailingData { .. } => "parse.trailing",
            E::Malformed { .. } => "parse.malformed",
            E::UnsupportedVersion { tee, .. } => per_tee!(tee, "version"),
            E::UnsupportedAlgorithm { tee, .. } => per_tee!(tee, "algorithm"),
            E::Signature { tee } => per_tee!(tee, "signature"),
            E::Chain { tee, .. } => per_tee!(tee, "chain"),
            E::CertExpired { tee, .. } => per_tee!(tee, "cert_expired"),
            E::CertNotYetValid { tee, .. } => per_tee!(tee, "cert_not_yet_valid"),
            E::SnpSignerMismatch { .. } => "snp.signer_mismatch",
            E::SnpHwIdMismatch { .. } => "snp.hwid_mismatch",
            E::SnpTcbMismatch { .. } => "snp.tcb_mismatch",
            E::SnpGenerationMismatch { .. } => "snp.generation_mismatch",
            E::ReservedNotZero { tee, .. } => per_tee!(tee, "reserved"),
            E::BindingMismatch { tee, field } => match (tee, *field) {
                (Tee::SevSnp, _) => "snp.report_data",
                (Tee::Tpm, _) => "tpm.nonce",
                (Tee::AwsNitro, "user_data") => "nitro.user_data",
                (Tee::AwsNitro, _) => "nitro.nonce",
            },
            E::TpmPcrDigest { .. } => "tpm.pcr_digest",
            E::TpmAkAttributes { .. } => "tpm.ak_attributes",
            E::TpmKeyAttributes { .. } => "tpm.key_attributes",
            E::TpmQualifiedSigner { .. } => "tpm.qualified_signer",
            E::TpmAttestType { .. } => "tpm.attest_type",
            E::TpmCertifiedName { .. } => "tpm.certified_name",
            E::TpmEventLog { .. } => "tpm.event_log",
            E::TpmCredential { .. } => "tpm.credential",
        }
    }

    pub(crate) fn chain(tee: Tee, detail: impl fmt::Display) -> Self {
        VerifyError::Chain {
            tee,
            detail: detail.to_string(),
        }
    }

    pub(crate) fn malformed(what: &'static str, detail: impl fmt::Display) -> Self {
        VerifyError::Malformed {
            what,
            detail: detail.to_string(),
        }
    }
}
