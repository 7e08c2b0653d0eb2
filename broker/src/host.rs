//! A simulated attester: what a host (and later the sidecar) does against the broker —
//! challenge, evidence bound to the nonce and a binding key, attest, DPoP refresh — with
//! simulated SEV-SNP hardware from `attest-fixtures`. Used by `attest-broker sim-host`, the
//! load generator and the end-to-end tests.

use std::path::Path;

use attest_fixtures::amd::{AmdRoots, Generation, TcbVersion};
use attest_fixtures::snp::SimulatedGuest;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::client::{Body, Client, ClientError, Reply};
use crate::crypto::SigningKey;
use crate::jose::{self, EcJwk};
use crate::service::attestation_binding;

/// A simulated SEV-SNP host: a chip (VCEK under simulated roots) and a binding key.
pub struct SimHost {
    /// The simulated chip and launch report (edit `guest.report` to model other hosts).
    pub guest: SimulatedGuest,
    binding: SigningKey,
    jwk: EcJwk,
}

impl std::fmt::Debug for SimHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimHost")
    }
}

/// A token held by a host, with what it needs to refresh it.
#[derive(Debug, Clone)]
pub struct HeldToken {
    /// The access token.
    pub token: String,
    /// The broker's full answer.
    pub reply: Value,
}

impl SimHost {
    /// A host whose chip is endorsed by `roots`.
    pub fn new(roots: &AmdRoots) -> Result<Self, String> {
        Self::new_with_tcb(roots, TcbVersion::default_for(roots.generation()))
    }

    /// A host whose chip runs firmware at `tcb` (VCEK and report agree on it).
    pub fn new_with_tcb(roots: &AmdRoots, tcb: TcbVersion) -> Result<Self, String> {
        let guest = SimulatedGuest::new(roots, tcb).map_err(|e| e.to_string())?;
        let (binding, _) = SigningKey::generate().map_err(|e| e.to_string())?;
        let jwk = EcJwk::from_point(binding.public_point()).map_err(|e| e.to_string())?;
        Ok(SimHost {
            guest,
            binding,
            jwk,
        })
    }

    /// A host under the simulated roots saved in `dir` (the broker's `--dev` data).
    pub fn from_roots_dir(dir: &Path) -> Result<Self, String> {
        let roots = AmdRoots::load(dir)
            .map_err(|e| format!("simulated roots in {}: {e}", dir.display()))?;
        Self::new(&roots)
    }

    /// The launch measurement this host reports (hex).
    pub fn measurement(&self) -> String {
        hex::encode(self.guest.report.measurement)
    }

    /// The binding key's public JWK.
    pub fn jwk(&self) -> &EcJwk {
        &self.jwk
    }

    /// Replaces the binding key (e.g. to model a thief with a different key).
    pub fn new_binding_key(&mut self) -> Result<(), String> {
        let (binding, _) = SigningKey::generate().map_err(|e| e.to_string())?;
        self.jwk = EcJwk::from_point(binding.public_point()).map_err(|e| e.to_string())?;
        self.binding = binding;
        Ok(())
    }

    /// `POST /v1/challenge` → the raw nonce.
    pub fn challenge(&self, client: &Client) -> Result<Vec<u8>, String> {
        let reply = client
            .send("POST", "/v1/challenge", &[], Body::Empty)
            .map_err(|e| e.0)?;
        let nonce = reply
            .body
            .get("nonce")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("challenge failed: {} {}", reply.status, reply.body))?;
        jose::b64_decode(nonce).map_err(|e| e.to_string())
    }

    /// The evidence JSON for `nonce`, committing to `jwk` (this host's key unless overridden).
    pub fn evidence(&self, nonce: &[u8], jwk: &EcJwk) -> Result<Value, String> {
        let jkt = jwk.thumbprint().map_err(|e| e.to_string())?;
        let signed = self
            .guest
            .signed_report(attestation_binding(nonce, &jkt))
            .map_err(|e| e.to_string())?;
        Ok(json!({
            "type": "sev-snp",
            "report": STANDARD.encode(signed),
            "certs": STANDARD.encode(self.guest.vcek.cert_der()),
        }))
    }

    /// The attestation request body for `nonce`.
    pub fn attest_body(&self, nonce: &[u8]) -> Result<Value, String> {
        Ok(json!({
            "nonce": jose::b64(nonce),
            "binding_key": self.jwk,
            "evidence": self.evidence(nonce, &self.jwk)?,
        }))
    }

    /// `POST /v1/attest` with a body and a bootstrap secret; the raw reply.
    pub fn post_attest(
        &self,
        client: &Client,
        secret: &str,
        body: Value,
    ) -> Result<Reply, ClientError> {
        let auth = format!("Bootstrap {secret}");
        client.send(
            "POST",
            "/v1/attest",
            &[("authorization", &auth)],
            Body::Json(body),
        )
    }

    /// Challenge → evidence → attest. Ok with the token, or Err with the broker's reply.
    pub fn attest(&self, client: &Client, secret: &str) -> Result<HeldToken, String> {
        let nonce = self.challenge(client)?;
        let reply = self
            .post_attest(client, secret, self.attest_body(&nonce)?)
            .map_err(|e| e.0)?;
        held(reply)
    }

    /// A DPoP proof (RFC 9449) for `method url`, bound to `token` (`ath`).
    pub fn dpop_proof(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
    ) -> Result<String, String> {
        self.dpop_proof_at(method, url, token, crate::service::now())
    }

    /// The same with a chosen `iat` (tests of the broker's time window).
    pub fn dpop_proof_at(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        iat: i64,
    ) -> Result<String, String> {
        let what = attest_proto::dpop::ProofFor {
            method,
            url,
            access_token: token,
            iat,
        };
        let input =
            attest_proto::dpop::signing_input(&self.jwk, &what).map_err(|e| e.to_string())?;
        let sig = self
            .binding
            .sign(input.as_bytes())
            .map_err(|e| e.to_string())?;
        Ok(attest_proto::dpop::finish(&input, &sig))
    }

    /// `POST /v1/token/refresh` with a DPoP proof; the raw reply.
    pub fn post_refresh(&self, client: &Client, token: &str) -> Result<Reply, ClientError> {
        let url = format!("{}/v1/token/refresh", client.base());
        let proof = self
            .dpop_proof("POST", &url, Some(token))
            .map_err(ClientError)?;
        let auth = format!("DPoP {token}");
        client.send(
            "POST",
            "/v1/token/refresh",
            &[("authorization", &auth), ("dpop", &proof)],
            Body::Empty,
        )
    }

    /// Refreshes a token. Ok with the new one, or Err with the broker's reply.
    pub fn refresh(&self, client: &Client, token: &str) -> Result<HeldToken, String> {
        held(self.post_refresh(client, token).map_err(|e| e.0)?)
    }
}

fn held(reply: Reply) -> Result<HeldToken, String> {
    match reply.body.get("access_token").and_then(Value::as_str) {
        Some(token) if reply.ok() => Ok(HeldToken {
            token: token.to_string(),
            reply: reply.body.clone(),
        }),
        _ => Err(format!("{} {}", reply.status, reply.body)),
    }
}

/// The generation simulated hosts use by default.
pub const DEFAULT_GENERATION: Generation = Generation::Milan;

/// `attest-broker sim-host` arguments.
#[derive(Debug, clap::Args)]
pub struct SimHostArgs {
    /// The broker's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub broker: String,
    /// File holding the agent's bootstrap secret (from `admin bootstrap issue --out`).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "print_measurement"
    )]
    pub bootstrap_file: Option<std::path::PathBuf>,
    /// Directory of the simulated AMD roots (`<data_dir>/simulated-amd` of a `--dev` broker).
    #[arg(long, value_name = "DIR")]
    pub roots_dir: std::path::PathBuf,
    /// Also refresh the token once with a DPoP proof.
    #[arg(long)]
    pub refresh: bool,
    /// Print only the measurement this simulated host reports, then exit.
    #[arg(long)]
    pub print_measurement: bool,
}

/// Runs `sim-host`: prints the broker's token response (and the refresh response) as JSON.
pub fn run_cli(args: &SimHostArgs) -> std::process::ExitCode {
    use std::process::ExitCode;
    let host = match SimHost::from_roots_dir(&args.roots_dir) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("attest-broker sim-host: {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_measurement {
        println!("{}", host.measurement());
        return ExitCode::SUCCESS;
    }
    let Some(path) = &args.bootstrap_file else {
        eprintln!("attest-broker sim-host: --bootstrap-file is required");
        return ExitCode::from(2);
    };
    let secret = match std::fs::read_to_string(path) {
        Ok(s) => zeroize::Zeroizing::new(s.trim().to_string()),
        Err(e) => {
            eprintln!("attest-broker sim-host: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let client = Client::new(&args.broker);
    let held = match host.attest(&client, &secret) {
        Ok(h) => h,
        Err(e) => {
            println!("{}", json!({"attest": "refused", "reply": e}));
            return ExitCode::from(1);
        }
    };
    println!("{}", json!({"attest": held.reply}));
    if args.refresh {
        match host.refresh(&client, &held.token) {
            Ok(r) => println!("{}", json!({"refresh": r.reply})),
            Err(e) => {
                println!("{}", json!({"refresh": "refused", "reply": e}));
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}
