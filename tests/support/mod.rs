//! Harness for end-to-end tests: the real `attest-broker` binary on loopback, each test with its
//! own data directory and port.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use attest_broker::client::{Body, Client, Reply};
use attest_broker::host::SimHost;
use serde_json::{json, Value};

/// A running broker.
pub struct Broker {
    child: Option<Child>,
    /// Base URL.
    pub url: String,
    /// Its data directory.
    pub data: PathBuf,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
    /// The configuration file, for brokers started from one.
    pub config: Option<PathBuf>,
    _tmp: Option<tempfile::TempDir>,
}

/// The `attest-broker` binary: Cargo names it for tests of the broker package; tests of other
/// packages (the sidecar's) find it beside their own binaries (`cargo nextest run --workspace`
/// builds every binary).
pub fn broker_exe() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_attest-broker") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/<profile>/attest-broker
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("attest-broker");
    assert!(
        path.exists(),
        "{} is not built: run the tests for the whole workspace (cargo nextest run --workspace)",
        path.display()
    );
    path
}

impl Broker {
    /// Starts a `--dev` broker in a fresh directory.
    pub fn start() -> Broker {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut b = Broker::start_in(&data, tmp.path().join("broker.log"));
        b._tmp = Some(tmp);
        b
    }

    /// Starts a broker from a configuration file (not `--dev`): `extra` is appended to a
    /// config with a fresh data directory and a free loopback port.
    pub fn start_with_config(extra: &str) -> Broker {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let config = tmp.path().join("broker.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\ndata_dir = \"{}\"\n{extra}",
                data.display()
            ),
        )
        .unwrap();
        let mut b = Broker::spawn(
            &["serve", "--config", config.to_str().unwrap()],
            &data,
            tmp.path().join("broker.log"),
        );
        // Pin the port so that a restart comes back at the same URL (the issuer).
        let text = std::fs::read_to_string(&config).unwrap().replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{}\"", b.url.trim_start_matches("http://")),
            1,
        );
        std::fs::write(&config, text).unwrap();
        b.config = Some(config);
        b._tmp = Some(tmp);
        b
    }

    /// Starts again a broker that was started from a configuration file and then stopped, on
    /// the same data, port and configuration.
    pub fn start_again(&self) -> Broker {
        let config = self.config.as_ref().unwrap();
        let mut b = Broker::spawn(
            &["serve", "--config", config.to_str().unwrap()],
            &self.data,
            self.log.clone(),
        );
        assert_eq!(b.url, self.url);
        b.config = Some(config.clone());
        b
    }

    /// Starts a `--dev` broker on `data` and a free port, appending its log to `log`.
    pub fn start_in(data: &Path, log: PathBuf) -> Broker {
        Broker::start_at(data, log, "127.0.0.1:0")
    }

    /// Restarts on the same data and port (the issuer URL includes the port).
    pub fn restart(&mut self) -> Broker {
        self.kill9();
        let addr = self.url.trim_start_matches("http://").to_string();
        Broker::start_at(&self.data, self.log.clone(), &addr)
    }

    /// Starts (or restarts) a `--dev` broker on `data` listening on `listen`.
    pub fn start_at(data: &Path, log: PathBuf, listen: &str) -> Broker {
        let data_arg = data.to_str().unwrap();
        Broker::spawn(
            &["serve", "--dev", "--listen", listen, "--data-dir", data_arg],
            data,
            log,
        )
    }

    fn spawn(args: &[&str], data: &Path, log: PathBuf) -> Broker {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new(broker_exe())
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "broker did not start; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!(
                "unexpected first line {line:?}; log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let url = format!("http://{}", ready["listening"].as_str().unwrap());
        Broker {
            child: Some(child),
            url,
            data: data.to_path_buf(),
            log,
            config: None,
            _tmp: None,
        }
    }

    /// An unauthenticated client.
    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }

    /// The global admin credential the broker wrote at first start.
    pub fn admin_credential(&self) -> String {
        std::fs::read_to_string(self.data.join("admin-credential"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// An admin API call with `credential`.
    pub fn admin_call(&self, credential: &str, method: &str, path: &str, body: Body) -> Reply {
        let auth = format!("Bearer {credential}");
        self.client()
            .send(method, path, &[("authorization", &auth)], body)
            .unwrap()
    }

    /// An admin API call with the global credential; asserts success.
    pub fn admin(&self, method: &str, path: &str, body: Body) -> Value {
        let reply = self.admin_call(&self.admin_credential(), method, path, body);
        assert!(
            reply.ok(),
            "{method} {path}: {} {}",
            reply.status,
            reply.body
        );
        reply.body
    }

    /// A simulated SEV-SNP host under this broker's simulated roots.
    pub fn host(&self) -> SimHost {
        SimHost::from_roots_dir(&self.data.join("simulated-amd")).unwrap()
    }

    /// Creates tenant `tenant` (if needed), a policy for `class`, an agent, and returns the
    /// agent's bootstrap secret.
    pub fn enroll(&self, tenant: &str, class: &str, policy: Value, agent: &str) -> String {
        let reply = self.admin_call(
            &self.admin_credential(),
            "POST",
            "/v1/admin/tenants",
            Body::Json(json!({"id": tenant})),
        );
        assert!(
            reply.ok() || reply.status == 409,
            "{} {}",
            reply.status,
            reply.body
        );
        self.admin(
            "PUT",
            &format!("/v1/admin/tenants/{tenant}/policies/{class}"),
            Body::Json(policy),
        );
        self.admin(
            "POST",
            &format!("/v1/admin/tenants/{tenant}/agents"),
            Body::Json(json!({"agent_id": agent, "class": class})),
        );
        let issued = self.admin(
            "POST",
            &format!("/v1/admin/tenants/{tenant}/agents/{agent}/bootstrap-credentials"),
            Body::Empty,
        );
        issued["secret"].as_str().unwrap().to_string()
    }

    /// The broker's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "broker did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A policy admitting `host`'s measurement from simulated roots.
pub fn policy_for(host: &SimHost) -> Value {
    json!({
        "audiences": ["tools"],
        "scopes": ["tools:{agent_id}:invoke"],
        "allow_simulated": true,
        "token_ttl_secs": 300,
        "sev_snp": {"measurements": [host.measurement()], "allow_debug": false, "max_vmpl": 0,
                    "min_tcb": {"bootloader": 4, "snp": 24, "microcode": 219}},
        "budget": {"max_tool_calls": 50}
    })
}

/// Checks a token with an independent JOSE implementation (the `jsonwebtoken` crate on its
/// RustCrypto backend) against the broker's published JWKS.
pub fn independent_check(broker: &Broker, token: &str) -> Value {
    let jwks = broker
        .client()
        .send("GET", "/.well-known/jwks.json", &[], Body::Empty)
        .unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.unwrap();
    let key = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} not in JWKS {}", jwks.body));
    let decoding = jsonwebtoken::DecodingKey::from_ec_components(
        key["x"].as_str().unwrap(),
        key["y"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["tools"]);
    validation.set_issuer(&[broker.url.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &decoding, &validation)
        .unwrap()
        .claims
}

/// `POST /v1/attest` with `body` and the bootstrap secret.
pub fn post_attest(client: &Client, secret: &str, body: Value) -> Reply {
    let auth = format!("Bootstrap {secret}");
    client
        .send(
            "POST",
            "/v1/attest",
            &[("authorization", &auth)],
            Body::Json(body),
        )
        .unwrap()
}
