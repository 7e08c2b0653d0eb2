//! The TPM backend: the binding key is created inside the TPM (P-256, fixedTPM, fixedParent,
//! sensitiveDataOrigin: it cannot leave), certified by the AK with TPM2_Certify, and signs
//! every DPoP proof in the TPM. Each start enrolls a fresh AK with the broker by credential
//! activation against the EK certificate.

use std::path::PathBuf;

use attest_proto::binding::tpm_qualifying_data;
use attest_proto::{crypto, EcJwk};
use attest_verifiers::tpm::HashAlg;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::Attester;
use crate::broker::BrokerApi;
use crate::config::TpmConfig;
use crate::error::Error;
use crate::tpm::{Ak, AkKind, BindingKey, Ek, EkKind, Tpm, TpmError};

/// Largest firmware event log sent (real ones are tens of KiB).
const MAX_EVENT_LOG: u64 = 1024 * 1024;

/// Evidence from a TPM 2.0.
pub struct TpmAttester {
    tpm: Tpm,
    ek: Ek,
    ek_certificate: Vec<u8>,
    ek_chain: Vec<Vec<u8>>,
    ak: Ak,
    binding: BindingKey,
    jwk: EcJwk,
    thumbprint: [u8; 32],
    pcrs: Vec<u8>,
    event_log: Option<PathBuf>,
}

impl std::fmt::Debug for TpmAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmAttester")
            .field("tpm", &self.tpm)
            .finish_non_exhaustive()
    }
}

fn ek_kind(name: &str) -> Result<EkKind, Error> {
    match name {
        "rsa2048" => Ok(EkKind::Rsa2048),
        "ecc-p256" => Ok(EkKind::EccP256),
        "ecc-p384" => Ok(EkKind::EccP384),
        other => Err(TpmError::invalid(
            "evidence.tpm.ek",
            format!("{other:?}: rsa2048, ecc-p256 or ecc-p384"),
        )
        .into()),
    }
}

fn ak_kind(name: &str) -> Result<AkKind, Error> {
    match name {
        "rsa2048" => Ok(AkKind::Rsa2048),
        "ecc-p256" => Ok(AkKind::EccP256),
        other => Err(TpmError::invalid(
            "evidence.tpm.ak",
            format!("{other:?}: rsa2048 or ecc-p256"),
        )
        .into()),
    }
}

impl TpmAttester {
    /// Opens the TPM, creates the EK (deterministic), a fresh AK and a fresh binding key, and
    /// reads the EK certificate from NV.
    pub fn open(config: &TpmConfig) -> Result<Self, Error> {
        let ek_kind = ek_kind(&config.ek)?;
        let ak_kind = ak_kind(&config.ak)?;
        if let Some(bad) = config.pcrs.iter().find(|p| **p >= crate::tpm::PCR_COUNT) {
            return Err(TpmError::invalid("evidence.tpm.pcrs", format!("PCR {bad}")).into());
        }
        let mut ek_chain = Vec::new();
        for path in &config.ek_chain {
            let pem = std::fs::read(path).map_err(|e| {
                TpmError::invalid("evidence.tpm.ek_chain", format!("{}: {e}", path.display()))
            })?;
            let certs = attest_verifiers::x509::parse_bundle(&pem).map_err(|e| {
                TpmError::invalid("evidence.tpm.ek_chain", format!("{}: {e}", path.display()))
            })?;
            ek_chain.extend(certs.iter().map(|c| c.der().to_vec()));
        }
        let mut tpm = Tpm::open(&config.tcti)?;
        let ek = tpm.create_ek(ek_kind)?;
        let ek_certificate = tpm.ek_certificate(ek_kind)?.ok_or_else(|| {
            TpmError::invalid(
                "EK certificate",
                format!(
                    "none in NV index {:#x}; the broker needs it to trust this TPM",
                    ek_kind.certificate_nv_index()
                ),
            )
        })?;
        let ak = tpm.create_ak(&ek, ak_kind)?;
        let binding = tpm.create_binding_key()?;
        let jwk = EcJwk::from_point(binding.public_point())?;
        let thumbprint = jwk.thumbprint()?;
        Ok(TpmAttester {
            tpm,
            ek,
            ek_certificate,
            ek_chain,
            ak,
            binding,
            jwk,
            thumbprint,
            pcrs: config.pcrs.clone(),
            event_log: config.event_log.clone(),
        })
    }

    /// The TPM-resident binding key (for tests that check it cannot be exported).
    pub fn binding_key(&self) -> &BindingKey {
        &self.binding
    }

    fn event_log(&self) -> Result<Option<String>, Error> {
        let Some(path) = &self.event_log else {
            return Ok(None);
        };
        let invalid = |m: String| Error::from(TpmError::invalid("evidence.tpm.event_log", m));
        let size = std::fs::metadata(path)
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?
            .len();
        // sysfs reports 0 for the event log; read with a bound either way.
        if size > MAX_EVENT_LOG {
            return Err(invalid(format!(
                "{}: larger than {MAX_EVENT_LOG} bytes",
                path.display()
            )));
        }
        use std::io::Read;
        let mut data = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_EVENT_LOG + 1).read_to_end(&mut data))
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        if data.len() as u64 > MAX_EVENT_LOG {
            return Err(invalid(format!(
                "{}: larger than {MAX_EVENT_LOG} bytes",
                path.display()
            )));
        }
        Ok(Some(STANDARD.encode(data)))
    }
}

impl Attester for TpmAttester {
    fn kind(&self) -> &'static str {
        "tpm"
    }

    fn jwk(&self) -> &EcJwk {
        &self.jwk
    }

    fn needs_enrollment(&self) -> bool {
        true
    }

    /// MakeCredential at the broker, ActivateCredential here: proves the AK is in the TPM
    /// whose EK certificate the broker trusts.
    fn enroll(&mut self, broker: &BrokerApi) -> Result<(), Error> {
        let started = broker.tpm_enroll(json!({
            "ek_public": STANDARD.encode(self.ek.public().tpm2b_public()),
            "ek_certificate": STANDARD.encode(&self.ek_certificate),
            "ek_chain": self.ek_chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>(),
            "ak_public": STANDARD.encode(self.ak.public().tpm2b_public()),
        }))?;
        let field = |name: &str| -> Result<Vec<u8>, Error> {
            started
                .get(name)
                .and_then(Value::as_str)
                .and_then(|s| STANDARD.decode(s).ok())
                .ok_or_else(|| Error::Transport(format!("enrollment answer has no {name}")))
        };
        let blob = field("credential_blob")?;
        let encrypted = field("encrypted_secret")?;
        let id = started
            .get("enrollment_id")
            .cloned()
            .ok_or_else(|| Error::Transport("enrollment answer has no enrollment_id".into()))?;
        let secret = self
            .tpm
            .activate_credential(&self.ek, &self.ak, &blob, &encrypted)?;
        let answer = zeroize::Zeroizing::new(STANDARD.encode(secret.as_slice()));
        broker.tpm_activate(json!({"enrollment_id": id, "secret": answer.as_str()}))?;
        Ok(())
    }

    fn evidence(&mut self, nonce: &[u8]) -> Result<Value, Error> {
        let qualifying = tpm_qualifying_data(nonce, &self.thumbprint);
        let quote = self.tpm.quote(
            &self.ak,
            &qualifying,
            &[(HashAlg::Sha256, self.pcrs.clone())],
        )?;
        let certified = self.tpm.certify(&self.ak, &self.binding, &qualifying)?;
        let pcrs: Value = serde_json::from_str(&quote.pcrs_json())
            .map_err(|e| TpmError::unexpected("PCR values", e.to_string()))?;
        let mut evidence = json!({
            "type": "tpm",
            "quote": STANDARD.encode(&quote.attest),
            "signature": STANDARD.encode(&quote.signature),
            "pcrs": pcrs,
            "binding_key_public": STANDARD.encode(self.binding.public().tpm2b_public()),
            "certify": STANDARD.encode(&certified.attest),
            "certify_signature": STANDARD.encode(&certified.signature),
        });
        if let (Some(log), Some(map)) = (self.event_log()?, evidence.as_object_mut()) {
            map.insert("event_log".into(), log.into());
        }
        Ok(evidence)
    }

    fn sign(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(self
            .tpm
            .sign_digest(&self.binding, &crypto::sha256(message))?
            .to_vec())
    }
}
