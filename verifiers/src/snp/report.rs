//! The SEV-SNP ATTESTATION_REPORT structure (AMD SEV-SNP ABI specification, rev 1.55+,
//! table "ATTESTATION_REPORT Structure"): 1184 bytes, little-endian.

use crate::reader::Reader;
use crate::{Tee, VerifyError};

/// Size of an attestation report.
pub const REPORT_LEN: usize = 0x4A0;
/// End of the signed region: the signature covers bytes `0x000..0x2A0`.
pub const SIGNED_LEN: usize = 0x2A0;
/// Report versions this verifier accepts (v2: Milan/Genoa; v3 adds CPUID; v5 adds the
/// mitigation vectors). v4 was never shipped by firmware with a different layout than v3, but
/// we accept only versions whose layout we have real reports for.
pub const SUPPORTED_VERSIONS: [u32; 3] = [2, 3, 5];
/// SIGNATURE_ALGO value for ECDSA P-384 with SHA-384, the only algorithm defined.
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// Width of the little-endian r and s fields in the signature.
const SIG_COMPONENT_LEN: usize = 72;
/// Significant bytes of r and s for P-384.
const P384_SCALAR_LEN: usize = 48;

/// A TCB_VERSION: a u64 whose byte layout depends on the product generation.
pub type RawTcb = u64;

/// A parsed attestation report. Field names follow the ABI specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// VERSION.
    pub version: u32,
    /// GUEST_SVN.
    pub guest_svn: u32,
    /// POLICY: the guest policy the VM was launched with.
    pub policy: u64,
    /// FAMILY_ID from the ID block.
    pub family_id: [u8; 16],
    /// IMAGE_ID from the ID block.
    pub image_id: [u8; 16],
    /// VMPL the report was requested from.
    pub vmpl: u32,
    /// SIGNATURE_ALGO.
    pub signature_algo: u32,
    /// CURRENT_TCB.
    pub current_tcb: RawTcb,
    /// PLATFORM_INFO.
    pub platform_info: u64,
    /// The signer-info word at 0x48: AUTHOR_KEY_EN (bit 0), MASK_CHIP_KEY (bit 1),
    /// SIGNING_KEY (bits 2–4: 0 VCEK, 1 VLEK, 7 none).
    pub signer_info: u32,
    /// REPORT_DATA supplied by the guest.
    pub report_data: [u8; 64],
    /// MEASUREMENT: launch digest.
    pub measurement: [u8; 48],
    /// HOST_DATA supplied by the hypervisor at launch.
    pub host_data: [u8; 32],
    /// ID_KEY_DIGEST.
    pub id_key_digest: [u8; 48],
    /// AUTHOR_KEY_DIGEST.
    pub author_key_digest: [u8; 48],
    /// REPORT_ID.
    pub report_id: [u8; 32],
    /// REPORT_ID_MA.
    pub report_id_ma: [u8; 32],
    /// REPORTED_TCB: the TCB the VCEK was derived from.
    pub reported_tcb: RawTcb,
    /// CPUID family, model, stepping (v3+; zero in v2).
    pub cpuid: [u8; 3],
    /// CHIP_ID.
    pub chip_id: [u8; 64],
    /// COMMITTED_TCB.
    pub committed_tcb: RawTcb,
    /// CURRENT_BUILD, CURRENT_MINOR, CURRENT_MAJOR.
    pub current_version: [u8; 3],
    /// COMMITTED_BUILD, COMMITTED_MINOR, COMMITTED_MAJOR.
    pub committed_version: [u8; 3],
    /// LAUNCH_TCB.
    pub launch_tcb: RawTcb,
    /// LAUNCH_MIT_VECTOR (v5).
    pub launch_mit_vector: u64,
    /// CURRENT_MIT_VECTOR (v5).
    pub current_mit_vector: u64,
    /// Signature r, big-endian, 48 bytes.
    pub sig_r: [u8; P384_SCALAR_LEN],
    /// Signature s, big-endian, 48 bytes.
    pub sig_s: [u8; P384_SCALAR_LEN],
}

impl Report {
    /// SIGNING_KEY from the signer-info word: 0 VCEK, 1 VLEK, 7 none.
    pub fn signing_key(&self) -> u32 {
        (self.signer_info >> 2) & 0b111
    }

    /// The signature as fixed-width big-endian `r ‖ s`.
    pub fn signature_fixed(&self) -> [u8; 2 * P384_SCALAR_LEN] {
        let mut out = [0u8; 2 * P384_SCALAR_LEN];
        let (r, s) = out.split_at_mut(P384_SCALAR_LEN);
        r.copy_from_slice(&self.sig_r);
        s.copy_from_slice(&self.sig_s);
        out
    }
}

/// Parses a report. Total: any input gives a report or a typed error.
///
/// Checks made here, before any crypto: exact length; a supported version; SIGNATURE_ALGO 1;
/// the unused high bytes of r and s and the reserved tail of the signature are zero, so that
/// no byte outside the signed region can change without the report being rejected.
pub fn parse(bytes: &[u8]) -> Result<Report, VerifyError> {
    if bytes.len() != REPORT_LEN {
        return Err(VerifyError::Length {
            what: "SEV-SNP report",
            expected: REPORT_LEN,
            actual: bytes.len(),
        });
    }
    let mut r = Reader::new("SEV-SNP report", bytes);
    let version = r.u32_le()?;
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(VerifyError::UnsupportedVersion {
            tee: Tee::SevSnp,
            what: "report",
            version: version.into(),
        });
    }
    let guest_svn = r.u32_le()?;
    let policy = r.u64_le()?;
    let family_id = r.array()?;
    let image_id = r.array()?;
    let vmpl = r.u32_le()?;
    let signature_algo = r.u32_le()?;
    if signature_algo != SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(VerifyError::UnsupportedAlgorithm {
            tee: Tee::SevSnp,
            detail: format!("report SIGNATURE_ALGO {signature_algo}"),
        });
    }
    let current_tcb = r.u64_le()?;
    let platform_info = r.u64_le()?;
    let signer_info = r.u32_le()?;
    r.skip(4)?; // 0x4C reserved
    let report_data = r.array()?;
    let measurement = r.array()?;
    let host_data = r.array()?;
    let id_key_digest = r.array()?;
    let author_key_digest = r.array()?;
    let report_id = r.array()?;
    let report_id_ma = r.array()?;
    let reported_tcb = r.u64_le()?;
    let cpuid = r.array()?; // 0x188..0x18B, reserved (zero) before v3
    r.skip(0x1A0 - 0x18B)?;
    let chip_id = r.array()?;
    let committed_tcb = r.u64_le()?;
    let current_version = r.array()?;
    r.skip(1)?;
    let committed_version = r.array()?;
    r.skip(1)?;
    let launch_tcb = r.u64_le()?;
    let launch_mit_vector = r.u64_le()?;
    let current_mit_vector = r.u64_le()?;
    r.skip(SIGNED_LEN - 0x208)?;
    let sig_r = scalar(&mut r)?;
    let sig_s = scalar(&mut r)?;
    let reserved = r.bytes(REPORT_LEN - SIGNED_LEN - 2 * SIG_COMPONENT_LEN)?;
    if reserved.iter().any(|&b| b != 0) {
        return Err(VerifyError::ReservedNotZero {
            tee: Tee::SevSnp,
            field: "signature reserved bytes",
        });
    }
    r.finish()?;
    Ok(Report {
        version,
        guest_svn,
        policy,
        family_id,
        image_id,
        vmpl,
        signature_algo,
        current_tcb,
        platform_info,
        signer_info,
        report_data,
        measurement,
        host_data,
        id_key_digest,
        author_key_digest,
        report_id,
        report_id_ma,
        reported_tcb,
        cpuid,
        chip_id,
        committed_tcb,
        current_version,
        committed_version,
        launch_tcb,
        // Before v5 these bytes are reserved; report them only where they are defined.
        launch_mit_vector: if version >= 5 { launch_mit_vector } else { 0 },
        current_mit_vector: if version >= 5 { current_mit_vector } else { 0 },
        sig_r,
        sig_s,
    })
}

/// Reads a 72-byte little-endian signature component and returns its 48 significant bytes
/// big-endian. The 24 high bytes must be zero: otherwise they would be unauthenticated.
fn scalar(r: &mut Reader<'_>) -> Result<[u8; P384_SCALAR_LEN], VerifyError> {
    let le = r.bytes(SIG_COMPONENT_LEN)?;
    let (low, high) = le.split_at(P384_SCALAR_LEN);
    if high.iter().any(|&b| b != 0) {
        return Err(VerifyError::ReservedNotZero {
            tee: Tee::SevSnp,
            field: "signature r/s high bytes",
        });
    }
    let mut be = [0u8; P384_SCALAR_LEN];
    be.copy_from_slice(low);
    be.reverse();
    Ok(be)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_lengths_and_versions() {
        assert_eq!(parse(&[]).unwrap_err().code(), "parse.length");
        assert_eq!(
            parse(&[0; REPORT_LEN + 1]).unwrap_err().code(),
            "parse.length"
        );
        let mut v4 = [0u8; REPORT_LEN];
        v4[0] = 4;
        assert_eq!(parse(&v4).unwrap_err().code(), "snp.version");
        let mut no_alg = [0u8; REPORT_LEN];
        no_alg[0] = 2;
        assert_eq!(parse(&no_alg).unwrap_err().code(), "snp.algorithm");
    }
}
