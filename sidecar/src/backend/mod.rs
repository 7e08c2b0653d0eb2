//! Evidence backends: the hardware that proves what this host is and holds the binding key.
//!
//! | backend   | evidence                               | binding key                                  |
//! |-----------|----------------------------------------|----------------------------------------------|
//! | `tpm`     | TPM2_Quote + TPM2_Certify (by the AK)  | P-256 in the TPM, non-exportable, signs DPoP |
//! | `sev-snp` | SNP report (REPORT_DATA = binding)     | P-256 in the guest's encrypted memory        |
//! | `fixture` | simulated SNP report (attest-fixtures) | P-256 in process memory                      |

mod fixture;
mod memory_key;
mod snp;
mod tpm;

use attest_proto::EcJwk;
use serde_json::Value;

use crate::broker::BrokerApi;
use crate::config::{BackendKind, EvidenceConfig};
use crate::error::Error;

pub use fixture::FixtureAttester;
pub use snp::SnpAttester;
pub use tpm::TpmAttester;

/// A source of evidence and the holder of the binding key.
pub trait Attester: Send + std::fmt::Debug {
    /// The backend's name (`tpm`, `sev-snp`, `fixture`), for logs.
    fn kind(&self) -> &'static str;

    /// The binding key's public JWK.
    fn jwk(&self) -> &EcJwk;

    /// Whether the broker must learn something from this backend before its evidence is
    /// accepted (the TPM's attestation key).
    fn needs_enrollment(&self) -> bool {
        false
    }

    /// Enrolls with the broker (the TPM backend: its AK, by credential activation). Called at
    /// start and again when the broker no longer knows the attestation key.
    fn enroll(&mut self, _broker: &BrokerApi) -> Result<(), Error> {
        Ok(())
    }

    /// The `evidence` object of `POST /v1/attest` for `nonce`, committing to the binding key.
    fn evidence(&mut self, nonce: &[u8]) -> Result<Value, Error>;

    /// An ES256 signature (`r ‖ s`) by the binding key over `message` (a JWS signing input).
    fn sign(&mut self, message: &[u8]) -> Result<Vec<u8>, Error>;
}

/// Opens the configured backend. `allow_simulated` is the command line's
/// `--allow-simulated-hardware`: without it the fixture backend refuses to start.
pub fn open(config: &EvidenceConfig, allow_simulated: bool) -> Result<Box<dyn Attester>, Error> {
    Ok(match config.backend {
        BackendKind::Tpm => Box::new(TpmAttester::open(&config.tpm)?),
        BackendKind::SevSnp => Box::new(SnpAttester::open(&config.sev_snp)?),
        BackendKind::Fixture => {
            if !allow_simulated {
                return Err(Error::Fixture(
                    "evidence.backend = \"fixture\" is simulated hardware: start with \
                     --allow-simulated-hardware to use it (CI and drills only)"
                        .into(),
                ));
            }
            Box::new(FixtureAttester::open(&config.fixture)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FixtureConfig, SnpConfig, TpmConfig};

    fn config(backend: BackendKind) -> EvidenceConfig {
        EvidenceConfig {
            backend,
            tpm: TpmConfig {
                tcti: "device:/nonexistent/tpmrm0".into(),
                ..TpmConfig::default()
            },
            sev_snp: SnpConfig::default(),
            fixture: FixtureConfig {
                roots_dir: Some("/nonexistent".into()),
                measurement: None,
            },
        }
    }

    #[test]
    fn missing_hardware_is_a_clear_error() {
        // No SEV-SNP guest device on this machine (and if there were one, open would work).
        if !std::path::Path::new("/dev/sev-guest").exists() {
            let e = open(&config(BackendKind::SevSnp), false).unwrap_err();
            assert!(e.to_string().contains("/dev/sev-guest"), "{e}");
        }
        let e = open(&config(BackendKind::Tpm), false).unwrap_err();
        assert!(matches!(e, Error::Tpm(_)), "{e}");
        let e = open(&config(BackendKind::Fixture), false).unwrap_err();
        assert!(e.to_string().contains("--allow-simulated-hardware"), "{e}");
        let e = open(&config(BackendKind::Fixture), true).unwrap_err();
        assert!(e.to_string().contains("/nonexistent"), "{e}");
    }
}
