//! AMD SEV-SNP: attestation reports verified to AMD's pinned roots.
//!
//! ```text
//! report ──ECDSA P-384──▶ VCEK ──RSA-PSS──▶ ASK ──RSA-PSS──▶ ARK (pinned)
//!                         VLEK ──RSA-PSS──▶ ASVK ─RSA-PSS──▶ ARK (pinned)
//! ```
//!
//! [`SnpVerifier::verify`] runs, in order: report parsing ([`report::parse`]), the endorsement
//! chain (cached per certificate input), certificate validity at the verification time, the
//! signer kind, the report signature, the generation named by CPUID, hwID and TCB agreement
//! between certificate and report, and the optional expected report data.

mod anchors;
mod claims;
mod endorsement;
pub mod report;

pub use anchors::{AmdRootSet, AmdTrustAnchors, Generation};
pub use claims::{Cpuid, GuestPolicy, PlatformInfo, SnpClaims, TcbVersion};
pub use endorsement::Signer;

use endorsement::{CertTcb, ChainCache, Endorsement};
use report::Report;

use crate::{Claims, Tee, UnixTime, VerifiedEvidence, VerifyError};

/// What a verification is checked against besides the trust anchors.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// Verification time. Always explicit: real certificates expire.
    pub at: UnixTime,
    /// If set, REPORT_DATA must equal this exactly (64 bytes; any other length never matches).
    pub expected_report_data: Option<&'a [u8]>,
}

impl VerifyOptions<'_> {
    /// Options with a verification time and no expected report data.
    pub fn at(at: UnixTime) -> Self {
        VerifyOptions {
            at,
            expected_report_data: None,
        }
    }
}

/// Verifies SEV-SNP reports to a fixed set of AMD roots, caching verified chains.
///
/// Cheap to share across threads (`&self` everywhere). A second report endorsed by the same
/// certificate input costs one P-384 verification.
#[derive(Debug)]
pub struct SnpVerifier {
    anchors: AmdTrustAnchors,
    cache: ChainCache,
}

impl Default for SnpVerifier {
    fn default() -> Self {
        SnpVerifier::new(AmdTrustAnchors::builtin())
    }
}

impl SnpVerifier {
    /// A verifier trusting exactly `anchors`.
    pub fn new(anchors: AmdTrustAnchors) -> Self {
        SnpVerifier {
            anchors,
            cache: ChainCache::default(),
        }
    }

    /// The trusted roots.
    pub fn anchors(&self) -> &AmdTrustAnchors {
        &self.anchors
    }

    /// Number of certificate chains in the cache.
    pub fn cached_chains(&self) -> usize {
        self.cache.len()
    }

    /// Verifies `report` (1184 raw bytes) endorsed by `certs` (the VCEK or VLEK, DER or PEM,
    /// optionally followed by the pinned ASK/ASVK and ARK).
    pub fn verify(
        &self,
        report: &[u8],
        certs: &[u8],
        opts: &VerifyOptions<'_>,
    ) -> Result<VerifiedEvidence, VerifyError> {
        let raw = report;
        let report = report::parse(raw)?;
        let endorsement = self.cache.get_or_verify(certs, &self.anchors)?;
        endorsement.check_valid_at(opts.at)?;
        check_signer(&report, &endorsement)?;
        check_signature(raw, &report, &endorsement)?;
        check_generation(&report, &endorsement)?;
        check_hw_id(&report, &endorsement)?;
        check_tcb(&report, &endorsement)?;
        check_report_data(&report, opts.expected_report_data)?;
        let claims = SnpClaims::new(
            &report,
            endorsement.generation,
            endorsement.signer,
            endorsement.fingerprint.clone(),
            endorsement.builtin_root,
        );
        Ok(VerifiedEvidence::new(Claims::SevSnp(claims), opts.at))
    }
}

/// Verifies one report with AMD's built-in roots and no cache.
pub fn verify(
    report: &[u8],
    certs: &[u8],
    opts: &VerifyOptions<'_>,
) -> Result<VerifiedEvidence, VerifyError> {
    SnpVerifier::default().verify(report, certs, opts)
}

/// SIGNING_KEY in the report must name the kind of certificate supplied (ABI: 0 VCEK, 1 VLEK).
fn check_signer(report: &Report, e: &Endorsement) -> Result<(), VerifyError> {
    let named = match report.signing_key() {
        0 => Signer::Vcek,
        1 => Signer::Vlek,
        _ => {
            return Err(VerifyError::SnpSignerMismatch {
                report: "no key",
                cert: e.signer.name(),
            })
        }
    };
    if named != e.signer {
        return Err(VerifyError::SnpSignerMismatch {
            report: named.name(),
            cert: e.signer.name(),
        });
    }
    Ok(())
}

/// ECDSA P-384 / SHA-384 over bytes 0x000..0x2A0 (ABI, "Attestation report signature").
fn check_signature(raw: &[u8], report: &Report, e: &Endorsement) -> Result<(), VerifyError> {
    let signed = raw.get(..report::SIGNED_LEN).ok_or(VerifyError::Length {
        what: "SEV-SNP report",
        expected: report::REPORT_LEN,
        actual: raw.len(),
    })?;
    e.key
        .verify(signed, &report.signature_fixed())
        .map_err(|_| VerifyError::Signature { tee: Tee::SevSnp })
}

/// A v3+ report's CPUID must name the generation of the certificate chain, when it names one
/// we know.
fn check_generation(report: &Report, e: &Endorsement) -> Result<(), VerifyError> {
    let [family, model, stepping] = report.cpuid;
    if report.version < 3 {
        return Ok(());
    }
    match Generation::from_cpuid(family, model) {
        Some(g) if g != e.generation => Err(VerifyError::SnpGenerationMismatch {
            report: format!("{g} (family {family:#x} model {model:#x} stepping {stepping:#x})"),
            cert: e.generation.to_string(),
        }),
        _ => Ok(()),
    }
}

/// VCEK hwID must equal CHIP_ID (Turin: its first 8 bytes). VLEKs carry no hwID.
fn check_hw_id(report: &Report, e: &Endorsement) -> Result<(), VerifyError> {
    let Some(hw_id) = &e.hw_id else {
        return Ok(());
    };
    let chip = report.chip_id.get(..hw_id.len()).unwrap_or(&report.chip_id);
    if chip != hw_id.as_slice() {
        return Err(VerifyError::SnpHwIdMismatch {
            cert: hex::encode(hw_id),
            report: hex::encode(chip),
        });
    }
    Ok(())
}

/// The certificate's SPL extensions must equal REPORTED_TCB, decoded for the generation.
fn check_tcb(report: &Report, e: &Endorsement) -> Result<(), VerifyError> {
    let reported = TcbVersion::decode(report.reported_tcb, e.generation);
    let CertTcb {
        bootloader,
        tee,
        snp,
        microcode,
        fmc,
    } = e.tcb;
    let mut pairs = vec![
        ("bootloader", bootloader, reported.bootloader),
        ("tee", tee, reported.tee),
        ("snp", snp, reported.snp),
        ("microcode", microcode, reported.microcode),
    ];
    if let (Some(cert), Some(rep)) = (fmc, reported.fmc) {
        pairs.push(("fmc", cert, rep));
    }
    for (component, cert, report) in pairs {
        if cert != u64::from(report) {
            return Err(VerifyError::SnpTcbMismatch {
                component,
                cert,
                report,
            });
        }
    }
    Ok(())
}

/// REPORT_DATA must equal the expected bytes exactly, at their full length.
fn check_report_data(report: &Report, expected: Option<&[u8]>) -> Result<(), VerifyError> {
    match expected {
        Some(expected) if expected != report.report_data.as_slice() => {
            Err(VerifyError::BindingMismatch {
                tee: Tee::SevSnp,
                field: "report_data",
            })
        }
        _ => Ok(()),
    }
}
