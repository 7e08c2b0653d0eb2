//! Verification of hardware attestation evidence, sans-IO.
//!
//! One module per evidence kind ([`snp`], later `tpm` and `nitro`), each with the same shape:
//! parse the evidence totally (any byte string gives `Ok` or a typed [`VerifyError`], never a
//! panic or an unbounded allocation), verify its signature and certificate chain to a pinned
//! vendor root at an explicit time, and return [`VerifiedEvidence`]: normalised [`Claims`] that
//! only this crate can construct, so a caller holding one knows every check ran.
//!
//! Crypto is called from exactly one module (`crypto`, backed by `aws-lc-rs`); certificates are
//! parsed in one module ([`x509`]).

mod crypto;
mod error;
mod hexbytes;
pub mod nitro;
mod reader;
pub mod snp;
mod time;
pub mod tpm;
pub mod x509;

use serde::Serialize;

pub use crate::error::VerifyError;
pub use crate::hexbytes::HexBytes;
pub use crate::time::UnixTime;

/// The kind of trusted execution environment that produced evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Tee {
    /// AMD SEV-SNP confidential VM.
    #[serde(rename = "sev-snp")]
    SevSnp,
    /// TPM 2.0 (discrete, firmware or virtual).
    #[serde(rename = "tpm")]
    Tpm,
    /// AWS Nitro Enclave.
    #[serde(rename = "aws-nitro")]
    AwsNitro,
}

impl Tee {
    /// The name used in claims and APIs (`sev-snp`, `tpm`, `aws-nitro`).
    pub fn as_str(self) -> &'static str {
        match self {
            Tee::SevSnp => "sev-snp",
            Tee::Tpm => "tpm",
            Tee::AwsNitro => "aws-nitro",
        }
    }
}

impl std::fmt::Display for Tee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Normalised claims from verified evidence, one variant per evidence kind.
///
/// Serialises to one flat JSON object with a `tee` field naming the kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "tee")]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)] // claims are built once per verification and moved, not copied
pub enum Claims {
    /// Claims from an AMD SEV-SNP attestation report.
    #[serde(rename = "sev-snp")]
    SevSnp(snp::SnpClaims),
    /// Claims from an AWS Nitro Enclaves attestation document.
    #[serde(rename = "aws-nitro")]
    AwsNitro(nitro::NitroClaims),
    /// Claims from a TPM 2.0 quote.
    #[serde(rename = "tpm")]
    Tpm(tpm::TpmClaims),
}

impl Claims {
    /// The evidence kind.
    pub fn tee(&self) -> Tee {
        match self {
            Claims::SevSnp(_) => Tee::SevSnp,
            Claims::AwsNitro(_) => Tee::AwsNitro,
            Claims::Tpm(_) => Tee::Tpm,
        }
    }

    /// Whether the environment was launched in a debug mode that lets the host read its memory.
    pub fn debug(&self) -> bool {
        match self {
            Claims::SevSnp(c) => c.debug,
            Claims::AwsNitro(c) => c.debug,
            Claims::Tpm(_) => false,
        }
    }

    /// The user data the evidence commits to (SNP `report_data`, TPM `extraData`, Nitro `nonce`).
    pub fn report_data(&self) -> &[u8] {
        match self {
            Claims::SevSnp(c) => c.report_data.as_slice(),
            Claims::AwsNitro(c) => c.nonce.as_ref().map_or(&[], |n| n.as_slice()),
            Claims::Tpm(c) => c.nonce.as_slice(),
        }
    }
}

/// Evidence whose signature, certificate chain and bindings have all been checked.
///
/// Only this crate can construct one (the fields are private), so a function that takes a
/// `VerifiedEvidence` — such as the broker's token minting — cannot be reached with evidence that
/// skipped a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEvidence {
    claims: Claims,
    verified_at: UnixTime,
}

impl VerifiedEvidence {
    pub(crate) fn new(claims: Claims, verified_at: UnixTime) -> Self {
        VerifiedEvidence {
            claims,
            verified_at,
        }
    }

    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The verification time the checks were made at.
    pub fn verified_at(&self) -> UnixTime {
        self.verified_at
    }

    /// Consumes the proof and returns the claims.
    pub fn into_claims(self) -> Claims {
        self.claims
    }
}
