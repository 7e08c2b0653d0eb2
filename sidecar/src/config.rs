//! The sidecar's configuration: one TOML file (`attest-sidecar run --config FILE`), every
//! setting documented in docs/sidecar.md. The bootstrap secret is never in it: the file names
//! where the secret comes from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::SecretSource;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The broker.
    pub broker: BrokerConfig,
    /// Where the bootstrap secret comes from.
    pub bootstrap: BootstrapConfig,
    /// Which hardware produces the evidence.
    pub evidence: EvidenceConfig,
    /// The agents' socket.
    pub socket: SocketConfig,
    /// Refresh and retry timing.
    #[serde(default)]
    pub timing: TimingConfig,
}

/// `[broker]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// The broker's base URL, exactly as its `server.public_url` (DPoP proofs name it).
    /// `https://` in production; `http://` only to a loopback address.
    pub url: String,
    /// PEM file of the CA certificates that may sign the broker's TLS certificate (required
    /// for `https://`; nothing else is trusted).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Audiences to hold a token for, each attested separately. Empty: one token for the
    /// policy's default audience. Agents name one with `GET /v1/token?aud=`.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Seconds one broker request may take.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
}

fn default_request_timeout() -> u64 {
    10
}

/// `[bootstrap]`: exactly one of `fd`, `credential`, `file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapConfig {
    /// An inherited file descriptor number (`3<secret-file`).
    #[serde(default)]
    pub fd: Option<u32>,
    /// A systemd credential name (`LoadCredential=NAME:...`), read from
    /// `$CREDENTIALS_DIRECTORY/NAME`.
    #[serde(default)]
    pub credential: Option<String>,
    /// A file readable by its owner (this process's user) only.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl BootstrapConfig {
    /// The one source configured.
    pub fn source(&self) -> Result<SecretSource, ConfigError> {
        match (&self.fd, &self.credential, &self.file) {
            (Some(fd), None, None) => Ok(SecretSource::Fd(*fd)),
            (None, Some(name), None) => Ok(SecretSource::Credential(name.clone())),
            (None, None, Some(path)) => Ok(SecretSource::File(path.clone())),
            _ => Err(ConfigError::Invalid(
                "[bootstrap] needs exactly one of fd, credential, file".into(),
            )),
        }
    }
}

/// `[evidence]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceConfig {
    /// `tpm`, `sev-snp` or `fixture`.
    pub backend: BackendKind,
    /// `[evidence.tpm]`
    #[serde(default)]
    pub tpm: TpmConfig,
    /// `[evidence.sev_snp]`
    #[serde(default)]
    pub sev_snp: SnpConfig,
    /// `[evidence.fixture]`
    #[serde(default)]
    pub fixture: FixtureConfig,
}

/// The evidence backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// A TPM 2.0 through tss-esapi: quote + TPM-resident, AK-certified binding key.
    Tpm,
    /// An SEV-SNP guest (`/dev/sev-guest`): the report commits to the binding; the binding key
    /// lives in the guest's encrypted memory.
    SevSnp,
    /// Simulated SEV-SNP hardware from `attest-fixtures` (CI and drills). Refused unless the
    /// sidecar is started with `--allow-simulated-hardware`.
    Fixture,
}

/// `[evidence.tpm]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmConfig {
    /// TCTI: `device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, `tabrmd`.
    #[serde(default = "default_tcti")]
    pub tcti: String,
    /// EK template: `rsa2048`, `ecc-p256` or `ecc-p384`.
    #[serde(default = "default_ek")]
    pub ek: String,
    /// AK algorithm: `rsa2048` or `ecc-p256`.
    #[serde(default = "default_ak")]
    pub ak: String,
    /// PEM files of intermediate CAs between the EK certificate and the broker's EK root.
    #[serde(default)]
    pub ek_chain: Vec<PathBuf>,
    /// PCRs to quote, SHA-256 bank.
    #[serde(default = "default_pcrs")]
    pub pcrs: Vec<u8>,
    /// The firmware event log to send with each quote (binary, TCG PC Client format), when
    /// the policy requires event-log facts (`/sys/kernel/security/tpm0/binary_bios_measurements`).
    #[serde(default)]
    pub event_log: Option<PathBuf>,
}

impl Default for TpmConfig {
    fn default() -> Self {
        TpmConfig {
            tcti: default_tcti(),
            ek: default_ek(),
            ak: default_ak(),
            ek_chain: Vec::new(),
            pcrs: default_pcrs(),
            event_log: None,
        }
    }
}

fn default_tcti() -> String {
    "device:/dev/tpmrm0".into()
}

fn default_ek() -> String {
    "rsa2048".into()
}

fn default_ak() -> String {
    "ecc-p256".into()
}

fn default_pcrs() -> Vec<u8> {
    (0..8).collect()
}

/// `[evidence.sev_snp]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpConfig {
    /// VMPL to request the report at (0–3).
    #[serde(default)]
    pub vmpl: u32,
    /// The VCEK or VLEK (DER or PEM) when the host does not serve it in the extended report.
    #[serde(default)]
    pub endorsement_file: Option<PathBuf>,
}

/// `[evidence.fixture]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureConfig {
    /// Directory of simulated AMD roots (`attest-fixtures`' `AmdRoots::save`, e.g. a dev
    /// broker's `<data_dir>/simulated-amd`).
    #[serde(default)]
    pub roots_dir: Option<PathBuf>,
    /// The launch measurement the simulated guest reports, hex (48 bytes). Default: the
    /// fixtures' default measurement.
    #[serde(default)]
    pub measurement: Option<String>,
}

/// `[socket]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketConfig {
    /// The unix socket agents connect to.
    pub path: PathBuf,
    /// Uids allowed to fetch tokens and proofs (checked with SO_PEERCRED on every connection).
    pub allowed_uids: Vec<u32>,
    /// A group (name or gid) given read-write access (socket mode 0660). Without one the
    /// socket is 0600, usable by this process's user only.
    #[serde(default)]
    pub group: Option<String>,
}

/// `[timing]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingConfig {
    /// Refresh when this fraction of a token's lifetime has passed (jittered by `jitter`).
    #[serde(default = "default_refresh_at")]
    pub refresh_at: f64,
    /// Jitter, as a fraction of the lifetime, spread evenly around `refresh_at`.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// First retry delay after a failure, seconds (doubles per failure, full jitter).
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_secs: f64,
    /// Longest retry delay, seconds.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_secs: f64,
}

impl Default for TimingConfig {
    fn default() -> Self {
        TimingConfig {
            refresh_at: default_refresh_at(),
            jitter: default_jitter(),
            backoff_initial_secs: default_backoff_initial(),
            backoff_max_secs: default_backoff_max(),
        }
    }
}

fn default_refresh_at() -> f64 {
    0.5
}

fn default_jitter() -> f64 {
    0.1
}

fn default_backoff_initial() -> f64 {
    1.0
}

fn default_backoff_max() -> f64 {
    30.0
}

/// The configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A value is out of range or settings contradict each other.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        self.bootstrap.source()?;
        let url = self.broker.url.as_str();
        if let Some(rest) = url.strip_prefix("http://") {
            if !is_loopback_authority(rest) {
                return invalid(
                    "broker.url: plain http:// only to a loopback address; use https:// with ca_file",
                );
            }
        } else if url.starts_with("https://") {
            if self.broker.ca_file.is_none() {
                return invalid("broker.url is https://: set broker.ca_file");
            }
        } else {
            return invalid("broker.url must start with https:// (or http:// to loopback)");
        }
        if self.broker.request_timeout_secs == 0 || self.broker.request_timeout_secs > 300 {
            return invalid("broker.request_timeout_secs must be 1-300");
        }
        if self.socket.allowed_uids.is_empty() {
            return invalid("socket.allowed_uids is empty: no agent could fetch a token");
        }
        let t = &self.timing;
        if !(0.1..=0.9).contains(&t.refresh_at) {
            return invalid("timing.refresh_at must be 0.1-0.9");
        }
        if !(0.0..=0.3).contains(&t.jitter) || t.refresh_at + t.jitter / 2.0 >= 0.95 {
            return invalid(
                "timing.jitter must be 0-0.3 and leave refresh before 95% of the lifetime",
            );
        }
        if !(t.backoff_initial_secs > 0.0 && t.backoff_initial_secs <= t.backoff_max_secs)
            || t.backoff_max_secs > 3600.0
        {
            return invalid("timing: 0 < backoff_initial_secs <= backoff_max_secs <= 3600");
        }
        if self.evidence.backend == BackendKind::Fixture
            && self.evidence.fixture.roots_dir.is_none()
        {
            return invalid("evidence.backend = \"fixture\" needs evidence.fixture.roots_dir");
        }
        if self.evidence.sev_snp.vmpl > 3 {
            return invalid("evidence.sev_snp.vmpl must be 0-3");
        }
        Ok(())
    }

    /// A request timeout as a `Duration`.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.broker.request_timeout_secs)
    }
}

/// Whether the authority of an `http://` URL (after the scheme) is a loopback address.
fn is_loopback_authority(rest: &str) -> bool {
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[broker]
url = "http://127.0.0.1:8080"
[bootstrap]
file = "/etc/secret"
[evidence]
backend = "tpm"
[socket]
path = "/run/s.sock"
allowed_uids = [1000]
"#;

    #[test]
    fn minimal_config_has_defaults() {
        let c = Config::parse(BASE).unwrap();
        assert_eq!(c.evidence.tpm.tcti, "device:/dev/tpmrm0");
        assert_eq!(c.timing.refresh_at, 0.5);
        assert_eq!(
            c.bootstrap.source().unwrap(),
            SecretSource::File("/etc/secret".into())
        );
    }

    #[test]
    fn refuses_unsafe_or_contradictory_settings() {
        let cases = [
            (
                BASE.replace("http://127.0.0.1:8080", "http://broker.example"),
                "loopback",
            ),
            (
                BASE.replace("http://127.0.0.1:8080", "https://broker.example"),
                "ca_file",
            ),
            (BASE.replace("http://127.0.0.1:8080", "ftp://x"), "https://"),
            (
                BASE.replace("file = \"/etc/secret\"", "fd = 3\nfile = \"/x\""),
                "exactly one",
            ),
            (BASE.replace("[1000]", "[]"), "allowed_uids"),
            (BASE.replace("\"tpm\"", "\"fixture\""), "roots_dir"),
            (
                format!("{BASE}\n[timing]\nrefresh_at = 0.99\n"),
                "refresh_at",
            ),
            (
                BASE.replace("[socket]", "secret = \"x\"\n[socket]"),
                "unknown field",
            ),
        ];
        for (text, expected) in cases {
            let err = Config::parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
        for ok in ["http://[::1]:9/", "http://localhost:80", "http://127.0.0.2"] {
            assert!(
                Config::parse(&BASE.replace("http://127.0.0.1:8080", ok)).is_ok(),
                "{ok}"
            );
        }
    }
}
