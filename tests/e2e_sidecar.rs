//! The sidecar end to end, all real processes on loopback: the broker, `attest-sidecar` (on
//! swtpm with its binding key inside the TPM, or on simulated SEV-SNP hardware), an agent
//! using the socket client, and a relying party that checks the token against the broker's
//! JWKS and the DPoP proof with an independent JOSE library (`jsonwebtoken`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attest_broker::client::Body;
use attest_sidecar::agent::{AgentClient, AgentError};
use attest_sidecar::swtpm_harness::Swtpm;
use attest_sidecar::tpm::Tpm;
use attest_verifiers::tpm::HashAlg;
use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use support::Broker;

const SIDECAR: &str = env!("CARGO_BIN_EXE_attest-sidecar");

fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

fn my_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid()
}

/// A running `attest-sidecar`.
struct Sidecar {
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
}

impl Sidecar {
    fn start(config: &Path, log: &Path, extra: &[&str]) -> Sidecar {
        let child = Command::new(SIDECAR)
            .arg("run")
            .arg("--config")
            .arg(config)
            .args(extra)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(log.with_extension("out")).unwrap(),
            ))
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
            .spawn()
            .unwrap();
        let text = std::fs::read_to_string(config).unwrap();
        let socket = text
            .lines()
            .find_map(|l| l.strip_prefix("path = \""))
            .map(|p| PathBuf::from(p.trim_end_matches('"')))
            .unwrap();
        Sidecar {
            child: Some(child),
            socket,
            log: log.to_path_buf(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the first token (the sidecar attests at start).
    fn wait_for_token(&self, within: Duration) -> String {
        let client = AgentClient::new(&self.socket);
        let deadline = Instant::now() + within;
        loop {
            match client.token(None) {
                Ok(t) => return t.access_token.to_string(),
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "no token after {within:?}: {e}; sidecar log:\n{}",
                    self.logs()
                ),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM; waits for a clean exit.
    fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "sidecar exit {status}; log:\n{}",
                    self.logs()
                );
                return;
            }
            assert!(Instant::now() < deadline, "sidecar did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

/// The relying party: checks `token` against the broker's JWKS (signature, issuer,
/// audience, expiry) and `proof` as RFC 9449 §4.3 asks (typ, alg, signature by the header's
/// key, htm, htu, ath, that key's RFC 7638 thumbprint equal to the token's `cnf.jkt`).
fn relying_party_accepts(broker: &Broker, token: &str, proof: &str, method: &str, url: &str) {
    let claims = support::independent_check(broker, token);

    let proof_header = jsonwebtoken::decode_header(proof).unwrap();
    assert_eq!(proof_header.typ.as_deref(), Some("dpop+jwt"));
    assert_eq!(proof_header.alg, Algorithm::ES256);
    let proof_jwk = proof_header.jwk.unwrap();
    let mut proof_validation = Validation::new(Algorithm::ES256);
    proof_validation.required_spec_claims = std::collections::HashSet::new();
    proof_validation.validate_exp = false;
    let proof_claims: Value = jsonwebtoken::decode(
        proof,
        &DecodingKey::from_jwk(&proof_jwk).unwrap(),
        &proof_validation,
    )
    .unwrap()
    .claims;
    assert_eq!(proof_claims["htm"], method);
    assert_eq!(proof_claims["htu"], url);
    assert_eq!(proof_claims["ath"], B64.encode(sha256(token.as_bytes())));
    let iat = proof_claims["iat"].as_i64().unwrap();
    assert!((iat - attest_broker::service::now()).abs() < 60);
    let point = serde_json::to_value(&proof_jwk).unwrap();
    let canonical = format!(
        r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
        point["crv"].as_str().unwrap(),
        point["x"].as_str().unwrap(),
        point["y"].as_str().unwrap()
    );
    assert_eq!(
        claims["cnf"]["jkt"],
        B64.encode(sha256(canonical.as_bytes())),
        "the proof's key is the key the token is bound to"
    );
}

/// Every regular file under `dir` (recursively), except `skip`.
fn files_under(dir: &Path, skip: &[&Path], out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if skip.iter().any(|s| *s == path) {
            continue;
        }
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files_under(&path, skip, out);
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

/// Asserts none of `secrets` appears in any of `files`.
fn assert_absent(files: &[PathBuf], secrets: &[String]) {
    assert!(!files.is_empty());
    for file in files {
        let data = std::fs::read(file).unwrap_or_default();
        for secret in secrets {
            assert!(
                !data.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} contains a secret or a token",
                file.display()
            );
        }
    }
}

/// `/proc/<pid>/environ` and `cmdline` of the running sidecar carry no secret or token.
fn assert_process_clean(pid: u32, secrets: &[String]) {
    let files: Vec<PathBuf> = ["environ", "cmdline"]
        .iter()
        .map(|f| PathBuf::from(format!("/proc/{pid}/{f}")))
        .collect();
    for f in &files {
        assert!(std::fs::read(f).is_ok(), "{} unreadable", f.display());
    }
    assert_absent(&files, secrets);
}

fn write_secret(dir: &Path, secret: &str) -> PathBuf {
    let path = dir.join("bootstrap");
    std::fs::write(&path, secret).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A sidecar's files in `dir`: the bootstrap secret (0600) and a configuration for the broker
/// at `url` with `evidence` (the `[evidence]` tables), the socket `agent.sock` for this uid,
/// and `broker_extra` / `socket_extra` lines in those tables and `tail` tables after them.
/// Returns (configuration, socket, secret file).
struct SidecarFiles<'a> {
    url: &'a str,
    secret: &'a str,
    evidence: &'a str,
    broker_extra: &'a str,
    socket_extra: &'a str,
    tail: &'a str,
}

impl SidecarFiles<'_> {
    fn write(&self, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let secret_file = write_secret(dir, self.secret);
        let socket = dir.join("agent.sock");
        let config = dir.join("sidecar.toml");
        std::fs::write(
            &config,
            format!(
                "[broker]\nurl = \"{}\"\n{}\n[bootstrap]\nfile = \"{}\"\n{}\n[socket]\npath = \"{}\"\nallowed_uids = [{}]\n{}\n{}\n",
                self.url,
                self.broker_extra,
                secret_file.display(),
                self.evidence,
                socket.display(),
                my_uid(),
                self.socket_extra,
                self.tail,
            ),
        )
        .unwrap();
        (config, socket, secret_file)
    }
}

/// `[evidence]` for simulated SEV-SNP hardware under `broker`'s simulated roots.
fn fixture_evidence(broker: &Broker) -> String {
    format!(
        "[evidence]\nbackend = \"fixture\"\n[evidence.fixture]\nroots_dir = \"{}\"",
        broker.data.join("simulated-amd").display()
    )
}

/// The sidecar on swtpm: its binding key in the TPM, AK-certified; the agent's token checks
/// out at a relying party; revocation is noticed on refresh and followed by a new
/// attestation; the broker goes away for longer than a refresh interval and the agent never
/// sees an error; nothing secret is left in files, logs or the process environment.
#[test]
fn tpm_sidecar_serves_bound_tokens_through_revocation_and_a_broker_outage() {
    let swtpm = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ek-root.pem");
    std::fs::write(&root, swtpm.ca_root_pem().unwrap()).unwrap();
    let issuer = dir.path().join("ek-issuer.pem");
    std::fs::write(&issuer, swtpm.ca_issuer_pem().unwrap()).unwrap();
    let mut broker = Broker::start_with_config(&format!(
        "[trust]\ntpm_ek_roots = [\"{}\"]\n",
        root.display()
    ));

    // The host booted "good-kernel" into PCR 16; the policy expects exactly that.
    let digest = sha256(b"good-kernel");
    {
        let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
        tpm.pcr_extend(16, &[(HashAlg::Sha256, &digest)]).unwrap();
    }
    let expected_pcr16 = sha256(&[[0u8; 32].as_slice(), &digest].concat());
    let policy = json!({
        "audiences": ["tools"], "scopes": ["tools:{agent_id}:invoke"],
        "token_ttl_secs": 60,
        "tpm": {"pcrs": {"sha256": {"16": [hex::encode(&expected_pcr16)]}}}
    });
    let secret = broker.enroll("acme", "tpm-hosts", policy, "tpm-agent-1");
    let evidence = format!(
        "[evidence]\nbackend = \"tpm\"\n[evidence.tpm]\ntcti = \"{}\"\nek_chain = [\"{}\"]\npcrs = [16]",
        swtpm.tcti(),
        issuer.display()
    );
    let (config, socket, secret_file) = SidecarFiles {
        url: &broker.url,
        secret: &secret,
        evidence: &evidence,
        broker_extra: "",
        socket_extra: "",
        tail: "[timing]\nbackoff_max_secs = 3",
    }
    .write(dir.path());
    let mut sidecar = Sidecar::start(&config, &dir.path().join("sidecar.log"), &[]);
    let first = sidecar.wait_for_token(Duration::from_secs(60));
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode without a group");
    let claims = claims_of(&first);
    assert_eq!(claims["att"]["tee"], "tpm");
    assert_eq!(claims["sub"], "tpm-agent-1");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );

    // The agent asks for a proof for its outgoing call; the relying party accepts both.
    let agent = AgentClient::new(&socket);
    let url = "https://tools.example/v1/invoke";
    let proofed = agent.proof("POST", url, None).unwrap();
    relying_party_accepts(
        &broker,
        &proofed.token.access_token,
        &proofed.dpop,
        "POST",
        url,
    );
    // The proof was signed in the TPM by the key the broker saw certified: the broker itself
    // accepts the same kind of proof for a refresh, which the sidecar does below.

    // An agent polls throughout; every answer must be a valid token.
    let seen = Arc::new(Mutex::new(BTreeSet::from([first.clone()])));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let polling = Arc::new(AtomicBool::new(true));
    let poller = {
        let (seen, errors, polling) = (seen.clone(), errors.clone(), polling.clone());
        let socket = socket.clone();
        std::thread::spawn(move || {
            let agent = AgentClient::new(&socket);
            while polling.load(Ordering::Relaxed) {
                match agent.token(None) {
                    Ok(t) => {
                        let exp = claims_of(&t.access_token)["exp"].as_i64().unwrap();
                        if exp <= attest_broker::service::now() {
                            errors
                                .lock()
                                .unwrap()
                                .push("served an expired token".into());
                        }
                        seen.lock().unwrap().insert(t.access_token.to_string());
                    }
                    Err(e) => errors.lock().unwrap().push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let current_jti = || -> (String, String) {
        let t = agent.token(None).unwrap().access_token.to_string();
        (claims_of(&t)["jti"].as_str().unwrap().to_string(), t)
    };
    let wait_for_new_token = |old_jti: &str, within: Duration| -> String {
        let deadline = Instant::now() + within;
        loop {
            let (jti, token) = current_jti();
            if jti != old_jti {
                return token;
            }
            assert!(Instant::now() < deadline, "no new token within {within:?}");
            std::thread::sleep(Duration::from_millis(250));
        }
    };

    // Revoke the token the sidecar holds: its next refresh is refused and it attests again.
    let (jti, _) = current_jti();
    broker.admin(
        "POST",
        "/v1/admin/tenants/acme/revocations",
        Body::Json(json!({"kind": "token", "jti": jti})),
    );
    let after_revocation = wait_for_new_token(&jti, Duration::from_secs(45));
    assert!(
        sidecar.logs().contains("refresh refused; attesting again"),
        "{}",
        sidecar.logs()
    );
    let introspect = |t: &str| {
        broker.admin(
            "POST",
            "/v1/introspect",
            Body::Form(vec![("token".into(), t.into())]),
        )["active"]
            .clone()
    };
    assert_eq!(introspect(&after_revocation), true);
    assert_eq!(introspect(&first), false);

    // The broker goes away for longer than a refresh interval (30 s ± 3 s of a 60 s token)…
    let before_outage = claims_of(&after_revocation)["jti"]
        .as_str()
        .unwrap()
        .to_string();
    broker.terminate();
    std::thread::sleep(Duration::from_secs(36));
    assert!(
        sidecar.logs().contains("broker call failed"),
        "the sidecar tried to refresh while the broker was down"
    );
    // …and comes back: the sidecar refreshes before the token runs out.
    let broker_again = broker.start_again();
    let after_outage = wait_for_new_token(&before_outage, Duration::from_secs(20));
    assert_eq!(
        broker_again.admin(
            "POST",
            "/v1/introspect",
            Body::Form(vec![("token".into(), after_outage.clone())]),
        )["active"],
        true
    );
    polling.store(false, Ordering::Relaxed);
    poller.join().unwrap();
    assert_eq!(
        *errors.lock().unwrap(),
        Vec::<String>::new(),
        "the agent saw errors while a valid token existed"
    );

    // Nothing secret outside memory: process environment and command line, logs, files.
    let mut secrets: Vec<String> = seen.lock().unwrap().iter().cloned().collect();
    secrets.push(after_outage);
    secrets.push(secret.clone());
    assert_process_clean(sidecar.pid(), &secrets);
    sidecar.stop();
    assert!(!socket.exists(), "the socket is removed at shutdown");
    let mut files = Vec::new();
    files_under(
        dir.path(),
        &[secret_file.as_path(), &broker.data],
        &mut files,
    );
    files_under(swtpm.dir(), &[], &mut files);
    files.push(broker.log.clone());
    assert!(files.contains(&dir.path().join("sidecar.log")));
    assert_absent(&files, &secrets);
}

/// The fixture backend drives the same flow for a simulated SEV-SNP host; it is refused
/// without `--allow-simulated-hardware`; another uid is refused by the socket.
#[test]
fn fixture_sidecar_serves_simulated_snp_hosts_and_refuses_other_uids() {
    let broker = Broker::start();
    let host = broker.host();
    let secret = broker.enroll(
        "acme",
        "snp-hosts",
        support::policy_for(&host),
        "snp-agent-1",
    );
    let dir = tempfile::tempdir().unwrap();
    // Other users must be able to reach the socket's directory for the uid check to matter.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let evidence = fixture_evidence(&broker);
    let (config, socket, secret_file) = SidecarFiles {
        url: &broker.url,
        secret: &secret,
        evidence: &evidence,
        broker_extra: "audiences = [\"tools\"]",
        socket_extra: "group = \"65534\"",
        tail: "",
    }
    .write(dir.path());

    // Simulated hardware needs the explicit switch.
    let refused = Command::new(SIDECAR)
        .args(["run", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--allow-simulated-hardware"), "{stderr}");
    assert!(!socket.exists());

    let mut sidecar = Sidecar::start(
        &config,
        &dir.path().join("sidecar.log"),
        &["--allow-simulated-hardware"],
    );
    let token = sidecar.wait_for_token(Duration::from_secs(30));
    assert!(sidecar.logs().contains("SIMULATED HARDWARE"));
    let claims = claims_of(&token);
    assert_eq!(claims["att"]["tee"], "sev-snp");
    assert_eq!(claims["aud"], "tools");
    let agent = AgentClient::new(&socket);
    let url = "https://tools.example/v1/invoke";
    let proofed = agent
        .proof("GET", &format!("{url}?q=1"), Some("tools"))
        .unwrap();
    relying_party_accepts(
        &broker,
        &proofed.token.access_token,
        &proofed.dpop,
        "GET",
        url,
    );
    match agent.token(Some("payments")) {
        Err(AgentError::Refused { status, code }) => {
            assert_eq!((status, code.as_str()), (404, "audience.unknown"));
        }
        other => panic!("{other:?}"),
    }
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket mode with a group");

    // Another uid (in the socket's group, so it can connect) is refused by SO_PEERCRED.
    if my_uid() == 0 {
        let exe_dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(exe_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = exe_dir.path().join("attest-sidecar");
        std::fs::copy(SIDECAR, &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let other = Command::new(&exe)
            .args(["token", "--socket", socket.to_str().unwrap()])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&other.stderr);
        assert_eq!(other.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("403 caller.forbidden"), "{stderr}");
        assert!(other.stdout.is_empty());
        assert!(sidecar.logs().contains("caller refused"));
    } else {
        eprintln!("not root: cannot start a process as another uid; that check is skipped");
    }

    let secrets = vec![
        token.clone(),
        proofed.token.access_token.to_string(),
        secret.clone(),
    ];
    assert_process_clean(sidecar.pid(), &secrets);
    sidecar.stop();
    let mut files = Vec::new();
    files_under(dir.path(), &[secret_file.as_path()], &mut files);
    assert_absent(&files, &secrets);
}

/// A bootstrap file other users can read is refused at start, without echoing the secret.
#[test]
fn bootstrap_file_readable_by_others_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "ab_0123456789abcdef0123456789abcdef0123456789abcdef".to_string();
    let (config, socket, secret_file) = SidecarFiles {
        url: "http://127.0.0.1:9",
        secret: &secret,
        evidence:
            "[evidence]\nbackend = \"fixture\"\n[evidence.fixture]\nroots_dir = \"/nonexistent\"",
        broker_extra: "",
        socket_extra: "",
        tail: "",
    }
    .write(dir.path());
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(SIDECAR)
        .args([
            "run",
            "--allow-simulated-hardware",
            "--config",
            config.to_str().unwrap(),
        ])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("readable by its owner only"), "{stderr}");
    assert!(!stderr.contains(&secret) && !String::from_utf8_lossy(&out.stdout).contains(&secret));
    assert!(!socket.exists(), "nothing is served without a secret");
}

/// When the attestation is older than the policy allows, the broker refuses the refresh
/// (`attestation.stale`) and the sidecar attests again; the agent keeps getting tokens.
/// (`timing.refresh_at = 0.1` refreshes a 60 s token every 6 s, to keep the test short.)
#[test]
fn sidecar_attests_again_when_the_attestation_ages_out() {
    let broker = Broker::start();
    let host = broker.host();
    let mut policy = support::policy_for(&host);
    policy["token_ttl_secs"] = json!(60);
    policy["max_attestation_age_secs"] = json!(10);
    let secret = broker.enroll("acme", "snp-hosts", policy, "snp-agent-2");
    let dir = tempfile::tempdir().unwrap();
    let evidence = fixture_evidence(&broker);
    let (config, socket, _) = SidecarFiles {
        url: &broker.url,
        secret: &secret,
        evidence: &evidence,
        broker_extra: "",
        socket_extra: "",
        tail: "[timing]\nrefresh_at = 0.1\njitter = 0.0",
    }
    .write(dir.path());
    let mut sidecar = Sidecar::start(
        &config,
        &dir.path().join("sidecar.log"),
        &["--allow-simulated-hardware"],
    );
    let first = claims_of(&sidecar.wait_for_token(Duration::from_secs(30)));
    let agent = AgentClient::new(&socket);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut refreshed = false;
    let reattested = loop {
        let claims = claims_of(&agent.token(None).unwrap().access_token);
        refreshed |= claims["jti"] != first["jti"]
            && claims["att"]["attested_at"] == first["att"]["attested_at"];
        if claims["att"]["attested_at"] != first["att"]["attested_at"] {
            break claims;
        }
        assert!(
            Instant::now() < deadline,
            "no new attestation; log:\n{}",
            sidecar.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        refreshed,
        "a refresh came first, within the attestation age"
    );
    assert!(reattested["att"]["attested_at"].as_i64() > first["att"]["attested_at"].as_i64());
    let log = sidecar.logs();
    assert!(log.contains("attestation.stale"), "{log}");
    assert!(log.contains("refresh refused; attesting again"), "{log}");
    sidecar.stop();
}

/// The bootstrap secret also comes from an inherited file descriptor (`3<file`) and from a
/// systemd credential (`$CREDENTIALS_DIRECTORY/bootstrap`), as the unit file passes it.
#[test]
fn the_bootstrap_secret_comes_from_an_inherited_fd_or_a_systemd_credential() {
    let broker = Broker::start();
    let host = broker.host();
    let secret = broker.enroll(
        "acme",
        "snp-hosts",
        support::policy_for(&host),
        "snp-agent-3",
    );
    let evidence = fixture_evidence(&broker);
    for source in ["fd", "credential"] {
        let dir = tempfile::tempdir().unwrap();
        let (config, socket, secret_file) = SidecarFiles {
            url: &broker.url,
            secret: &secret,
            evidence: &evidence,
            broker_extra: "",
            socket_extra: "",
            tail: "",
        }
        .write(dir.path());
        let file_line = format!("file = \"{}\"", secret_file.display());
        let text = std::fs::read_to_string(&config).unwrap();
        let mut command = if source == "fd" {
            std::fs::write(&config, text.replace(&file_line, "fd = 3")).unwrap();
            let mut c = Command::new("bash");
            c.arg("-c")
                .arg(r#"exec "$0" run --allow-simulated-hardware --config "$1" 3<"$2""#)
                .arg(SIDECAR)
                .arg(&config)
                .arg(&secret_file);
            c
        } else {
            std::fs::write(
                &config,
                text.replace(&file_line, "credential = \"bootstrap\""),
            )
            .unwrap();
            let credentials = dir.path().join("credentials");
            std::fs::create_dir(&credentials).unwrap();
            std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::fs::copy(&secret_file, credentials.join("bootstrap")).unwrap();
            std::fs::set_permissions(
                credentials.join("bootstrap"),
                std::fs::Permissions::from_mode(0o400),
            )
            .unwrap();
            std::fs::remove_file(&secret_file).unwrap();
            let mut c = Command::new(SIDECAR);
            c.args(["run", "--allow-simulated-hardware", "--config"])
                .arg(&config)
                .env("CREDENTIALS_DIRECTORY", &credentials);
            c
        };
        let log = dir.path().join("sidecar.log");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let sidecar = Sidecar {
            child: Some(child),
            socket,
            log,
        };
        let token = sidecar.wait_for_token(Duration::from_secs(30));
        assert_eq!(claims_of(&token)["sub"], "snp-agent-3", "{source}");
        assert!(!sidecar.logs().contains(&secret), "{source}");
        assert_process_clean(sidecar.pid(), &[secret.clone(), token]);
    }
}
