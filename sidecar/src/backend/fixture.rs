//! Simulated SEV-SNP hardware (`attest-fixtures`) for CI and compromise drills: the same
//! report format, signature algorithm and VCEK extensions as a real chip, under simulated AMD
//! roots the broker must be told to accept. Never a production backend: `backend::open`
//! refuses it without `--allow-simulated-hardware`.

use attest_fixtures::amd::{AmdRoots, TcbVersion};
use attest_fixtures::snp::SimulatedGuest;
use attest_proto::crypto::MemoryKey;
use attest_proto::{attestation_binding, EcJwk};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::{memory_key, Attester};
use crate::config::FixtureConfig;
use crate::error::Error;

/// A simulated SEV-SNP guest.
pub struct FixtureAttester {
    guest: SimulatedGuest,
    key: MemoryKey,
    jwk: EcJwk,
    thumbprint: [u8; 32],
}

impl std::fmt::Debug for FixtureAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixtureAttester(simulated SEV-SNP)")
    }
}

impl FixtureAttester {
    /// A guest on a chip endorsed by the simulated roots in `config.roots_dir`.
    pub fn open(config: &FixtureConfig) -> Result<Self, Error> {
        let dir = config
            .roots_dir
            .as_ref()
            .ok_or_else(|| Error::Fixture("evidence.fixture.roots_dir is not set".into()))?;
        let roots = AmdRoots::load(dir)
            .map_err(|e| Error::Fixture(format!("simulated roots in {}: {e}", dir.display())))?;
        let tcb = TcbVersion::default_for(roots.generation());
        let mut guest =
            SimulatedGuest::new(&roots, tcb).map_err(|e| Error::Fixture(e.to_string()))?;
        let report = &mut guest.report;
        if let Some(hex_text) = &config.measurement {
            let bytes = hex::decode(hex_text.trim())
                .ok()
                .filter(|b| b.len() == report.measurement.len())
                .ok_or_else(|| {
                    Error::Fixture("evidence.fixture.measurement must be 48 bytes of hex".into())
                })?;
            report.measurement.copy_from_slice(&bytes);
        }
        let (key, jwk) = memory_key::generate()?;
        let thumbprint = jwk.thumbprint()?;
        Ok(FixtureAttester {
            guest,
            key,
            jwk,
            thumbprint,
        })
    }
}

impl Attester for FixtureAttester {
    fn kind(&self) -> &'static str {
        "fixture"
    }

    fn jwk(&self) -> &EcJwk {
        &self.jwk
    }

    fn evidence(&mut self, nonce: &[u8]) -> Result<Value, Error> {
        let signed = self
            .guest
            .signed_report(attestation_binding(nonce, &self.thumbprint))
            .map_err(|e| Error::Fixture(e.to_string()))?;
        Ok(json!({
            "type": "sev-snp",
            "report": STANDARD.encode(signed),
            "certs": STANDARD.encode(self.guest.vcek.cert_der()),
        }))
    }

    fn sign(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(self.key.sign(message)?)
    }
}
