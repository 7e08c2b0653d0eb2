//! Service configuration: one TOML file (`attest-broker serve --config FILE`), every setting
//! documented in docs/configuration.md. `--dev` fills in a complete local setup instead.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener and public identity.
    #[serde(default)]
    pub server: ServerConfig,
    /// Where state and keys live.
    pub storage: StorageConfig,
    /// Challenges.
    #[serde(default)]
    pub challenge: ChallengeConfig,
    /// Trust anchors beyond the vendors' pinned roots.
    #[serde(default)]
    pub trust: TrustConfig,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The issuer URL placed in tokens (`iss`) and metadata; also the base of DPoP `htu`.
    /// Default: `http://<listen>`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// PEM certificate chain for TLS (with `tls_key`); plain HTTP when absent.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Seconds to let in-flight requests finish on shutdown.
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            public_url: None,
            tls_cert: None,
            tls_key: None,
            shutdown_grace_secs: default_grace(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_grace() -> u64 {
    10
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory for the SQLite database and the key files (created with mode 0700).
    pub data_dir: PathBuf,
    /// `fsync` every commit (survives power loss, slower). Default false: commits survive a
    /// process crash (WAL, synchronous=NORMAL) but the last ones may be lost on power loss.
    #[serde(default)]
    pub full_sync: bool,
}

/// `[challenge]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeConfig {
    /// Nonce lifetime in seconds.
    #[serde(default = "default_nonce_ttl")]
    pub ttl_secs: u64,
}

impl Default for ChallengeConfig {
    fn default() -> Self {
        ChallengeConfig {
            ttl_secs: default_nonce_ttl(),
        }
    }
}

fn default_nonce_ttl() -> u64 {
    60
}

/// `[trust]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// Extra AMD root bundles (ARK + ASK/ASVK), e.g. simulated hardware for drills. Evidence
    /// chaining to them is marked `vendor_root: false` and passes only policies with
    /// `allow_simulated = true`.
    #[serde(default)]
    pub extra_amd_roots: Vec<PathBuf>,
    /// Extra AWS Nitro root certificates (PEM or DER), e.g. a simulated Nitro hierarchy for
    /// drills; same rules as `extra_amd_roots`.
    #[serde(default)]
    pub extra_nitro_roots: Vec<PathBuf>,
    /// CA certificates (PEM or DER bundles) that EK certificates must chain to for TPM AK
    /// enrollment: TPM vendors' EK CAs, a cloud's vTPM CA, or swtpm's local CA in tests.
    /// Without any, TPM enrollment is refused.
    #[serde(default)]
    pub tpm_ek_roots: Vec<PathBuf>,
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body, bytes (413 beyond).
    #[serde(default = "default_body")]
    pub max_body_bytes: usize,
    /// Per-request timeout, seconds: from the end of the headers to the end of the response,
    /// body upload included (408 beyond).
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// Requests processed at once, counted once their body has arrived; more are answered
    /// 503 at once rather than queued.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_requests: usize,
    /// Seconds a client may take to send a request's headers (and, under TLS, to finish the
    /// handshake), or may stay idle between requests, before its connection is closed; and
    /// again to send a request's body (408 beyond).
    #[serde(default = "default_client_timeout")]
    pub client_timeout_secs: u64,
    /// Connections open at once; one more is closed as soon as it is accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections open at once from one IP address (raise it behind a proxy or NAT that
    /// brings many clients from one address).
    #[serde(default = "default_max_connections_per_source")]
    pub max_connections_per_source: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: default_body(),
            request_timeout_secs: default_timeout(),
            max_concurrent_requests: default_concurrency(),
            client_timeout_secs: default_client_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_source: default_max_connections_per_source(),
        }
    }
}

fn default_body() -> usize {
    256 * 1024
}

fn default_timeout() -> u64 {
    30
}

impl LimitsConfig {
    /// Every limit must let something through: a zero would refuse all requests.
    pub fn check(&self) -> Result<(), String> {
        let zero = [
            ("max_body_bytes", self.max_body_bytes == 0),
            ("request_timeout_secs", self.request_timeout_secs == 0),
            ("max_concurrent_requests", self.max_concurrent_requests == 0),
            ("client_timeout_secs", self.client_timeout_secs == 0),
            ("max_connections", self.max_connections == 0),
            (
                "max_connections_per_source",
                self.max_connections_per_source == 0,
            ),
        ];
        match zero.iter().find(|(_, is_zero)| *is_zero) {
            Some((name, _)) => Err(format!("[limits] {name} must be at least 1")),
            None => Ok(()),
        }
    }
}

fn default_client_timeout() -> u64 {
    10
}

fn default_max_connections() -> usize {
    1024
}

fn default_max_connections_per_source() -> usize {
    256
}

fn default_concurrency() -> usize {
    1024
}

impl Config {
    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }

    /// The complete development setup: everything under `data_dir`, loopback only.
    pub fn dev(data_dir: PathBuf, listen: Option<SocketAddr>) -> Self {
        Config {
            server: ServerConfig {
                listen: listen.unwrap_or_else(default_listen),
                ..ServerConfig::default()
            },
            storage: StorageConfig {
                data_dir,
                full_sync: false,
            },
            challenge: ChallengeConfig::default(),
            trust: TrustConfig::default(),
            limits: LimitsConfig::default(),
        }
    }

    /// The issuer URL.
    pub fn issuer(&self, bound: SocketAddr) -> String {
        match &self.server.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let scheme = if self.server.tls_cert.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{bound}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_and_full_configs_parse() {
        let c: Config = toml::from_str("[storage]\ndata_dir = \"/var/lib/x\"\n").unwrap();
        assert_eq!(c.challenge.ttl_secs, 60);
        assert_eq!(c.server.listen.port(), 8080);
        let full = r#"
            [server]
            listen = "127.0.0.1:9000"
            public_url = "https://broker.example/"
            [storage]
            data_dir = "/d"
            full_sync = true
            [challenge]
            ttl_secs = 30
            [trust]
            extra_amd_roots = ["/r.pem"]
            [limits]
            max_body_bytes = 1000
        "#;
        let c: Config = toml::from_str(full).unwrap();
        assert_eq!(c.issuer(c.server.listen), "https://broker.example");
        assert!(toml::from_str::<Config>("[storage]\ndata_dir = \"/d\"\nbogus = 1\n").is_err());
    }

    #[test]
    fn limits_of_zero_are_refused_by_name() {
        assert!(LimitsConfig::default().check().is_ok());
        let c: Config =
            toml::from_str("[storage]\ndata_dir = \"/d\"\n[limits]\nmax_connections = 0\n")
                .unwrap();
        assert_eq!(
            c.limits.check().unwrap_err(),
            "[limits] max_connections must be at least 1"
        );
        let c: Config =
            toml::from_str("[storage]\ndata_dir = \"/d\"\n[limits]\nclient_timeout_secs = 0\n")
                .unwrap();
        assert!(c
            .limits
            .check()
            .unwrap_err()
            .contains("client_timeout_secs"));
    }
}
