//! Shared helpers of the swtpm tests: a TPM per test, fresh nonces, software PCR extension,
//! verification with `attest_verifiers::tpm`, and `tpm2_checkquote` / `tpm2_print` from
//! tpm2-tools as an independent implementation.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use attest_sidecar::swtpm_harness::Swtpm;
use attest_sidecar::tpm::{Ak, Quote, Tpm};
use attest_verifiers::tpm::{
    self, AttestationKey, HashAlg, PcrValues, QuoteEvidence, QuoteOptions, Signature, TpmClaims,
};
use attest_verifiers::{Claims, UnixTime, VerifyError};

/// A started swtpm and a connection to it (the connection is dropped first).
pub struct TestTpm {
    pub tpm: Tpm,
    pub swtpm: Swtpm,
}

pub fn start() -> TestTpm {
    let swtpm = Swtpm::start().expect("swtpm (apt-get install swtpm swtpm-tools)");
    let tpm = Tpm::open(&swtpm.tcti()).expect("connect to swtpm");
    TestTpm { tpm, swtpm }
}

pub fn now() -> UnixTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UnixTime::from_secs(i64::try_from(secs).unwrap())
}

pub fn nonce() -> Vec<u8> {
    let mut n = vec![0u8; 32];
    aws_lc_rs::rand::fill(&mut n).unwrap();
    n
}

/// `PCR_new = H(PCR_old ‖ digest)` (TPM 2.0 Part 1, 17.2).
pub fn extended(bank: HashAlg, old: &[u8], digest: &[u8]) -> Vec<u8> {
    let mut data = old.to_vec();
    data.extend_from_slice(digest);
    bank.digest(&data)
}

/// Everything `verify_quote` takes, owned, so tests can tamper with any part.
#[derive(Clone)]
pub struct QuoteInput {
    pub attest: Vec<u8>,
    pub signature: Vec<u8>,
    pub ak_public: Vec<u8>,
    pub pcrs: PcrValues,
}

impl QuoteInput {
    pub fn new(ak: &Ak, quote: &Quote) -> Self {
        QuoteInput {
            attest: quote.attest.clone(),
            signature: quote.signature.clone(),
            ak_public: ak.public().tpm2b_public(),
            pcrs: quote.pcrs.clone(),
        }
    }

    pub fn verify(&self, nonce: &[u8]) -> Result<TpmClaims, VerifyError> {
        self.verify_with(&QuoteOptions {
            expected_nonce: Some(nonce),
            ..QuoteOptions::at(now())
        })
    }

    pub fn verify_with(&self, opts: &QuoteOptions<'_>) -> Result<TpmClaims, VerifyError> {
        let signature = Signature::parse(&self.signature)?;
        let ak = AttestationKey::parse(&self.ak_public)?;
        let evidence = QuoteEvidence {
            attest: &self.attest,
            signature: &signature,
            ak: &ak,
            pcrs: Some(&self.pcrs),
            event_log: None,
        };
        match tpm::verify_quote(&evidence, opts)?.into_claims() {
            Claims::Tpm(c) => Ok(c),
            other => panic!("not TPM claims: {other:?}"),
        }
    }

    /// What `tpm2_checkquote` says about this quote: the AK as PEM, the TPMS_ATTEST, the
    /// TPMT_SIGNATURE, and the PCR values concatenated in the attest's own selection order
    /// with that selection as `-l` (the `tpm2_pcrread -o` form). When the values of a
    /// selected PCR are missing, the values supplied are passed with their own selection
    /// instead (sorted by bank), so tpm2-tools still judges them.
    pub fn checkquote(&self, nonce: &[u8], dir: &Path) -> Verdict {
        let ak = AttestationKey::parse(&self.ak_public).unwrap();
        let pem = pem_encode("PUBLIC KEY", &ak.public_key().spki_der());
        std::fs::write(dir.join("ak.pem"), pem).unwrap();
        std::fs::write(dir.join("quote.msg"), &self.attest).unwrap();
        std::fs::write(dir.join("quote.sig"), &self.signature).unwrap();
        let quoted: Vec<(HashAlg, Vec<u8>)> = match tpm::Attest::parse(&self.attest) {
            Ok(tpm::Attest {
                attested: tpm::Attested::Quote(q),
                ..
            }) => q.pcr_select.into_iter().map(|s| (s.hash, s.pcrs)).collect(),
            _ => Vec::new(),
        };
        let supplied: Vec<(HashAlg, Vec<u8>)> = self
            .pcrs
            .banks()
            .iter()
            .map(|(bank, values)| (*bank, values.keys().copied().collect()))
            .collect();
        let complete = quoted
            .iter()
            .all(|(bank, pcrs)| pcrs.iter().all(|i| self.pcrs.get(*bank, *i).is_some()));
        let selection = if complete { quoted } else { supplied };
        let mut values = Vec::new();
        let mut list = Vec::new();
        for (bank, pcrs) in &selection {
            let mut indices = Vec::new();
            for &i in pcrs {
                values.extend_from_slice(self.pcrs.get(*bank, i).unwrap());
                indices.push(i.to_string());
            }
            list.push(format!("{}:{}", bank.name(), indices.join(",")));
        }
        std::fs::write(dir.join("pcrs.bin"), values).unwrap();
        let out = Command::new("tpm2_checkquote")
            .current_dir(dir)
            .args(["-u", "ak.pem", "-m", "quote.msg", "-s", "quote.sig"])
            .args(["-f", "pcrs.bin", "-l", &list.join("+"), "-g", "sha256"])
            .args(["-q", &hex::encode(nonce)])
            .output()
            .expect("tpm2_checkquote (apt-get install tpm2-tools)");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            Verdict::Accepted
        } else if stderr.contains("Error validating signed message with public key") {
            Verdict::Signature
        } else if stderr.contains("Error validating nonce") {
            Verdict::Nonce
        } else if stderr.contains("PCR values failed to match") {
            Verdict::PcrDigest
        } else {
            Verdict::Other(stderr)
        }
    }
}

/// `tpm2_checkquote`'s judgement, from its exit status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Exit status 0.
    Accepted,
    /// "Error validating signed message with public key provided".
    Signature,
    /// "Error validating nonce from quote".
    Nonce,
    /// "PCR values failed to match quote's digest".
    PcrDigest,
    /// Anything else (its stderr).
    Other(String),
}

pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// `tpm2_print -t TPM2B_PUBLIC` of a public area: tpm2-tools' own decoding.
pub fn tpm2_print_public(tpm2b_public: &[u8], dir: &Path) -> String {
    let path = dir.join("object.pub");
    std::fs::write(&path, tpm2b_public).unwrap();
    let out = Command::new("tpm2_print")
        .args(["-t", "TPM2B_PUBLIC"])
        .arg(&path)
        .output()
        .expect("tpm2_print (apt-get install tpm2-tools)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
