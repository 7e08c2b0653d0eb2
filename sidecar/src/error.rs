//! The sidecar's error type. Messages name files, endpoints and reason codes; never a token,
//! a proof or the bootstrap secret.

use crate::config::ConfigError;
use crate::secret::SecretError;
use crate::tpm::TpmError;

/// Everything that can go wrong in the sidecar.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The bootstrap secret could not be loaded.
    #[error("bootstrap secret: {0}")]
    Secret(#[from] SecretError),
    /// The TPM refused or failed.
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// The SEV-SNP guest device refused or failed.
    #[error("SEV-SNP guest: {0}")]
    Snp(String),
    /// The simulated hardware could not be set up.
    #[error("simulated hardware: {0}")]
    Fixture(String),
    /// The broker could not be reached, or answered something that is not its API.
    #[error("broker unreachable: {0}")]
    Transport(String),
    /// The broker answered with an error.
    #[error("broker refused {endpoint}: HTTP {status} {code}: {message}")]
    Refused {
        /// The endpoint, e.g. `/v1/attest`.
        endpoint: &'static str,
        /// HTTP status.
        status: u16,
        /// The broker's stable error code (`token.revoked`, `policy.denied`, …).
        code: String,
        /// The broker's message and reasons.
        message: String,
    },
    /// The agents' socket could not be set up.
    #[error("socket {path}: {message}")]
    Socket {
        /// The socket path.
        path: std::path::PathBuf,
        /// Why.
        message: String,
    },
    /// Randomness or key generation failed.
    #[error("crypto: {0}")]
    Crypto(String),
}

impl From<attest_proto::crypto::CryptoError> for Error {
    fn from(e: attest_proto::crypto::CryptoError) -> Self {
        Error::Crypto(e.to_string())
    }
}

impl From<attest_proto::JoseError> for Error {
    fn from(e: attest_proto::JoseError) -> Self {
        Error::Crypto(e.to_string())
    }
}
