//! The attester side of attest-broker: runs next to an agent, collects hardware evidence and
//! (in a later issue) exchanges it for a hardware-bound token over the broker's API.
//!
//! - [`tpm`]: a TPM 2.0 through `tss-esapi` 7.x: EKs and their certificates, AKs, PCRs,
//!   quotes, the TPM-resident token-binding key (TPM2_Certify, ES256 signatures) and AK
//!   enrollment by TPM2_ActivateCredential. Its outputs are the wire forms
//!   `attest_verifiers::tpm` verifies.
//! - [`secret`]: the bootstrap secret, read from a file descriptor, a systemd credential or
//!   an owner-only file — never the environment or the command line.
//! - `swtpm_harness` (feature `test-util`): a throwaway `swtpm` with its own local CA for
//!   tests.
//!
//! This is the only crate of the workspace that links the TSS libraries (`libtss2-esys`,
//! `libtss2-tctildr`, …); the broker builds without them.

pub mod secret;
pub mod tpm;

#[cfg(feature = "test-util")]
pub mod swtpm_harness;
