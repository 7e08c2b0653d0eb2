//! Claims from a verified SEV-SNP report, decoded for policies and serialised for people.

use serde::Serialize;

use super::anchors::Generation;
use super::endorsement::Signer;
use super::report::{RawTcb, Report};
use crate::HexBytes;

/// A TCB_VERSION decoded for its product generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TcbVersion {
    /// The raw u64, as hex.
    #[serde(serialize_with = "hex_u64")]
    pub raw: u64,
    /// Bootloader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// CPU microcode SPL.
    pub microcode: u8,
    /// FMC SPL (Turin only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
}

impl TcbVersion {
    /// Decodes `raw` with `generation`'s byte layout (SEV-SNP ABI, TCB_VERSION): Milan and
    /// Genoa put bootloader, TEE, SNP, microcode in bytes 0, 1, 6, 7; Turin puts FMC,
    /// bootloader, TEE, SNP, microcode in bytes 0, 1, 2, 3, 7.
    pub fn decode(raw: RawTcb, generation: Generation) -> Self {
        let [b0, b1, b2, b3, _, _, b6, b7] = raw.to_le_bytes();
        match generation {
            Generation::Turin => TcbVersion {
                raw,
                fmc: Some(b0),
                bootloader: b1,
                tee: b2,
                snp: b3,
                microcode: b7,
            },
            Generation::Milan | Generation::Genoa => TcbVersion {
                raw,
                bootloader: b0,
                tee: b1,
                snp: b6,
                microcode: b7,
                fmc: None,
            },
        }
    }
}

/// The guest policy (SEV-SNP ABI, "Guest Policy Structure").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestPolicy {
    /// The raw u64, as hex.
    #[serde(serialize_with = "hex_u64")]
    pub raw: u64,
    /// Minimum ABI major version (bits 15:8).
    pub abi_major: u8,
    /// Minimum ABI minor version (bits 7:0).
    pub abi_minor: u8,
    /// SMT allowed (bit 16).
    pub smt_allowed: bool,
    /// Association with a migration agent allowed (bit 18).
    pub migrate_ma_allowed: bool,
    /// Debugging allowed: the hypervisor can read and write guest memory (bit 19).
    pub debug_allowed: bool,
    /// Single socket only (bit 20).
    pub single_socket: bool,
    /// CXL may be populated with devices or memory (bit 21).
    pub cxl_allowed: bool,
    /// AES-256-XTS required for memory encryption (bit 22).
    pub mem_aes_256_xts: bool,
    /// Running Average Power Limit must be disabled (bit 23).
    pub rapl_disabled: bool,
    /// Ciphertext hiding must be enabled (bit 24).
    pub ciphertext_hiding: bool,
    /// Guest support for page swapping disabled (bit 25).
    pub page_swap_disabled: bool,
}

impl GuestPolicy {
    /// Decodes the policy bits.
    pub fn decode(raw: u64) -> Self {
        let bit = |n: u32| raw >> n & 1 == 1;
        let [minor, major, ..] = raw.to_le_bytes();
        GuestPolicy {
            raw,
            abi_major: major,
            abi_minor: minor,
            smt_allowed: bit(16),
            migrate_ma_allowed: bit(18),
            debug_allowed: bit(19),
            single_socket: bit(20),
            cxl_allowed: bit(21),
            mem_aes_256_xts: bit(22),
            rapl_disabled: bit(23),
            ciphertext_hiding: bit(24),
            page_swap_disabled: bit(25),
        }
    }
}

/// PLATFORM_INFO (SEV-SNP ABI, "PLATFORM_INFO Field").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlatformInfo {
    /// The raw u64, as hex.
    #[serde(serialize_with = "hex_u64")]
    pub raw: u64,
    /// SMT enabled on the platform (bit 0).
    pub smt_enabled: bool,
    /// Transparent SME enabled (bit 1).
    pub tsme_enabled: bool,
    /// ECC memory in use (bit 2).
    pub ecc_enabled: bool,
    /// RAPL disabled (bit 3).
    pub rapl_disabled: bool,
    /// Ciphertext hiding enabled (bit 4).
    pub ciphertext_hiding_enabled: bool,
    /// Alias check completed (bit 5).
    pub alias_check_complete: bool,
    /// SEV-TIO enabled (bit 7).
    pub tio_enabled: bool,
}

impl PlatformInfo {
    /// Decodes the platform-info bits.
    pub fn decode(raw: u64) -> Self {
        let bit = |n: u32| raw >> n & 1 == 1;
        PlatformInfo {
            raw,
            smt_enabled: bit(0),
            tsme_enabled: bit(1),
            ecc_enabled: bit(2),
            rapl_disabled: bit(3),
            ciphertext_hiding_enabled: bit(4),
            alias_check_complete: bit(5),
            tio_enabled: bit(7),
        }
    }
}

/// CPUID family, model and stepping from a v3+ report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cpuid {
    /// Family ID (combined extended + base).
    pub family: u8,
    /// Model ID (combined extended + base).
    pub model: u8,
    /// Stepping.
    pub stepping: u8,
}

/// Claims from a verified SEV-SNP attestation report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnpClaims {
    /// Report VERSION.
    pub version: u32,
    /// Product generation, from the endorsement certificate's issuer.
    pub generation: Generation,
    /// Which key signed the report.
    pub signer: Signer,
    /// Launch measurement.
    pub measurement: HexBytes,
    /// REPORT_DATA from the guest (64 bytes).
    pub report_data: HexBytes,
    /// HOST_DATA from the hypervisor (32 bytes).
    pub host_data: HexBytes,
    /// VMPL the report was requested at.
    pub vmpl: u32,
    /// Whether the guest policy allows debugging (policy bit 19).
    pub debug: bool,
    /// CHIP_ID (64 bytes; all zero with VLEK or MASK_CHIP_ID).
    pub chip_id: HexBytes,
    /// REPORTED_TCB, the TCB the VCEK was derived from.
    pub reported_tcb: TcbVersion,
    /// CURRENT_TCB.
    pub current_tcb: TcbVersion,
    /// COMMITTED_TCB.
    pub committed_tcb: TcbVersion,
    /// LAUNCH_TCB.
    pub launch_tcb: TcbVersion,
    /// Guest policy.
    pub policy: GuestPolicy,
    /// Platform info.
    pub platform_info: PlatformInfo,
    /// GUEST_SVN.
    pub guest_svn: u32,
    /// FAMILY_ID from the ID block.
    pub family_id: HexBytes,
    /// IMAGE_ID from the ID block.
    pub image_id: HexBytes,
    /// ID_KEY_DIGEST.
    pub id_key_digest: HexBytes,
    /// AUTHOR_KEY_DIGEST.
    pub author_key_digest: HexBytes,
    /// AUTHOR_KEY_EN: the ID block was signed by an author key.
    pub author_key_en: bool,
    /// MASK_CHIP_KEY: chip key masked.
    pub mask_chip_key: bool,
    /// REPORT_ID.
    pub report_id: HexBytes,
    /// REPORT_ID_MA.
    pub report_id_ma: HexBytes,
    /// CPUID fields (v3 and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuid: Option<Cpuid>,
    /// Firmware version running now, `major.minor.build`.
    pub current_version: String,
    /// Committed firmware version, `major.minor.build`.
    pub committed_version: String,
    /// LAUNCH_MIT_VECTOR (v5 and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_mit_vector: Option<u64>,
    /// CURRENT_MIT_VECTOR (v5 and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_mit_vector: Option<u64>,
    /// SHA-256 fingerprint of the VCEK/VLEK certificate.
    pub endorsement_key_sha256: HexBytes,
    /// Whether the chain ends at a compiled-in AMD root (false: caller-supplied roots, such as
    /// simulated hardware).
    pub vendor_root: bool,
}

impl SnpClaims {
    pub(crate) fn new(
        report: &Report,
        generation: Generation,
        signer: Signer,
        endorsement_key_sha256: HexBytes,
        vendor_root: bool,
    ) -> Self {
        let tcb = |raw| TcbVersion::decode(raw, generation);
        let policy = GuestPolicy::decode(report.policy);
        let [family, model, stepping] = report.cpuid;
        let v5 = |value| (report.version >= 5).then_some(value);
        SnpClaims {
            version: report.version,
            generation,
            signer,
            measurement: report.measurement.into(),
            report_data: report.report_data.into(),
            host_data: report.host_data.into(),
            vmpl: report.vmpl,
            debug: policy.debug_allowed,
            chip_id: report.chip_id.into(),
            reported_tcb: tcb(report.reported_tcb),
            current_tcb: tcb(report.current_tcb),
            committed_tcb: tcb(report.committed_tcb),
            launch_tcb: tcb(report.launch_tcb),
            policy,
            platform_info: PlatformInfo::decode(report.platform_info),
            guest_svn: report.guest_svn,
            family_id: report.family_id.into(),
            image_id: report.image_id.into(),
            id_key_digest: report.id_key_digest.into(),
            author_key_digest: report.author_key_digest.into(),
            author_key_en: report.signer_info & 1 == 1,
            mask_chip_key: report.signer_info >> 1 & 1 == 1,
            report_id: report.report_id.into(),
            report_id_ma: report.report_id_ma.into(),
            cpuid: (report.version >= 3).then_some(Cpuid {
                family,
                model,
                stepping,
            }),
            current_version: version_string(report.current_version),
            committed_version: version_string(report.committed_version),
            launch_mit_vector: v5(report.launch_mit_vector),
            current_mit_vector: v5(report.current_mit_vector),
            endorsement_key_sha256,
            vendor_root,
        }
    }
}

/// `[build, minor, major]` → `"major.minor.build"`.
fn version_string([build, minor, major]: [u8; 3]) -> String {
    format!("{major}.{minor}.{build}")
}

fn hex_u64<S: serde::Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{value:#018x}"))
}
