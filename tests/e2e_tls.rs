//! `serve --config` with TLS: the broker terminates TLS with rustls, an independent client
//! (curl) trusting only our test CA gets through, and a private key readable by others is
//! refused at start.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let ca =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    std::fs::write(dir.join("cert.pem"), ca.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ca.signing_key.serialize_pem()).unwrap();
    std::fs::set_permissions(dir.join("key.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{d}/cert.pem\"\ntls_key = \"{d}/key.pem\"\n\
         [storage]\ndata_dir = \"{d}/data\"\n",
        d = dir.display()
    );
    let path = dir.join("broker.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn tls_listener_serves_and_insecure_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_attest-broker"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let issuer = ready["issuer"].as_str().unwrap().to_string();
    assert!(issuer.starts_with("https://127.0.0.1:"), "{issuer}");
    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(extra)
            .arg(format!("{issuer}/.well-known/jwks.json"))
            .output()
            .unwrap()
    };
    let trusted = curl(&["--cacert", dir.path().join("cert.pem").to_str().unwrap()]);
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let jwks: serde_json::Value = serde_json::from_slice(&trusted.stdout).unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    let untrusted = curl(&[]);
    assert!(
        !untrusted.status.success(),
        "a client that does not trust the test CA is refused"
    );
    // The client the sidecar uses (attest-proto, rustls on aws-lc-rs) trusts exactly its CA
    // file: with it, the broker answers; without it, or with another CA, the handshake fails.
    let pem = std::fs::read(dir.path().join("cert.pem")).unwrap();
    let pinned = attest_broker::client::Client::with_ca_pem(
        &issuer,
        &pem,
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    let reply = pinned
        .send(
            "POST",
            "/v1/challenge",
            &[],
            attest_broker::client::Body::Empty,
        )
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let wrong = attest_broker::client::Client::with_ca_pem(
        &issuer,
        other.cert.pem().as_bytes(),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert!(wrong
        .send(
            "POST",
            "/v1/challenge",
            &[],
            attest_broker::client::Body::Empty
        )
        .is_err());
    assert!(attest_broker::client::Client::new(&issuer)
        .send(
            "POST",
            "/v1/challenge",
            &[],
            attest_broker::client::Body::Empty
        )
        .is_err());
    // The admin CLI reaches an https:// broker with --ca-file, and not without it.
    let admin = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_attest-broker"))
            .args(["admin", "--broker", &issuer, "--credential-file"])
            .arg(dir.path().join("data/admin-credential"))
            .args(extra)
            .args(["tenant", "create", "tls-tenant"])
            .output()
            .unwrap()
    };
    let with_ca = admin(&["--ca-file", dir.path().join("cert.pem").to_str().unwrap()]);
    assert!(
        with_ca.status.success(),
        "{}",
        String::from_utf8_lossy(&with_ca.stderr)
    );
    assert!(!admin(&[]).status.success());
    let _ = child.kill();
    let _ = child.wait();

    // A world-readable key is refused with a message naming the file.
    std::fs::set_permissions(
        dir.path().join("key.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_attest-broker"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("key.pem") && stderr.contains("chmod 600"),
        "{stderr}"
    );
}
