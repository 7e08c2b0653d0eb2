//! The SEV-SNP guest backend: `/dev/sev-guest` through the `sev` crate. The report's
//! REPORT_DATA is the binding; the binding key is generated in the guest's encrypted memory.
//! The VCEK (or VLEK) comes from the extended report's certificate table when the host serves
//! one, else from `evidence.sev_snp.endorsement_file`.

use attest_proto::crypto::MemoryKey;
use attest_proto::{attestation_binding, EcJwk};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use sev::firmware::guest::Firmware;
use sev::firmware::host::CertType;

use super::{memory_key, Attester};
use crate::config::SnpConfig;
use crate::error::Error;

/// Evidence from an SEV-SNP guest.
pub struct SnpAttester {
    firmware: Firmware,
    vmpl: u32,
    endorsement: Option<Vec<u8>>,
    key: MemoryKey,
    jwk: EcJwk,
    thumbprint: [u8; 32],
}

impl std::fmt::Debug for SnpAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnpAttester")
            .field("vmpl", &self.vmpl)
            .finish_non_exhaustive()
    }
}

impl SnpAttester {
    /// Opens `/dev/sev-guest` and generates the binding key.
    pub fn open(config: &SnpConfig) -> Result<Self, Error> {
        let firmware = Firmware::open().map_err(|e| Error::Snp(format!("/dev/sev-guest: {e}")))?;
        let endorsement = match &config.endorsement_file {
            Some(path) => Some(
                std::fs::read(path).map_err(|e| Error::Snp(format!("{}: {e}", path.display())))?,
            ),
            None => None,
        };
        let (key, jwk) = memory_key::generate()?;
        let thumbprint = jwk.thumbprint()?;
        Ok(SnpAttester {
            firmware,
            vmpl: config.vmpl,
            endorsement,
            key,
            jwk,
            thumbprint,
        })
    }
}

impl Attester for SnpAttester {
    fn kind(&self) -> &'static str {
        "sev-snp"
    }

    fn jwk(&self) -> &EcJwk {
        &self.jwk
    }

    fn evidence(&mut self, nonce: &[u8]) -> Result<Value, Error> {
        let data = attestation_binding(nonce, &self.thumbprint);
        let (report, certs) = self
            .firmware
            .get_ext_report(None, Some(data), Some(self.vmpl))
            .map_err(|e| Error::Snp(format!("SNP_GET_EXT_REPORT: {e}")))?;
        let served = certs.unwrap_or_default().into_iter().find_map(|entry| {
            matches!(entry.cert_type, CertType::VCEK | CertType::VLEK)
                .then(|| entry.data().to_vec())
        });
        let endorsement = served.or_else(|| self.endorsement.clone()).ok_or_else(|| {
            Error::Snp("the host serves no VCEK/VLEK: set evidence.sev_snp.endorsement_file".into())
        })?;
        Ok(json!({
            "type": "sev-snp",
            "report": STANDARD.encode(report),
            "certs": STANDARD.encode(endorsement),
        }))
    }

    fn sign(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(self.key.sign(message)?)
    }
}
