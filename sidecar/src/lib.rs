//! attest-sidecar: the attester next to an agent (DESIGN.md, "ephemeral-first"). It reads a
//! bootstrap secret once, proves the host's hardware to the broker, exchanges the secret for a
//! short-lived token bound to a key only that hardware holds, keeps the token in memory,
//! refreshes it, and serves it to local agents over a unix socket.
//!
//! - [`config`]: the TOML configuration (docs/sidecar.md);
//! - [`secret`]: the bootstrap secret, from a file descriptor, a systemd credential or an
//!   owner-only file — never the environment or the command line;
//! - [`backend`]: evidence and the binding key: [`tpm`] (tss-esapi 7.x), SEV-SNP (the `sev`
//!   crate, `/dev/sev-guest`), and simulated hardware from `attest-fixtures`;
//! - [`broker`]: the broker's API as the sidecar calls it;
//! - [`exchange`]: the loop — enroll, attest, refresh at about half-life with jitter,
//!   re-attest when refused, back off while the broker is away;
//! - [`socket`]: the agents' socket, callers checked by SO_PEERCRED;
//! - [`agent`]: the client an agent links to use the socket;
//! - [`run`]: the daemon assembled.
//!
//! This is the only crate of the workspace that links the TSS libraries (`libtss2-esys`,
//! `libtss2-tctildr`, …); the broker builds without them.

pub mod agent;
pub mod backend;
pub mod broker;
pub mod config;
pub mod error;
pub mod exchange;
pub mod run;
pub mod secret;
pub mod socket;
pub mod timing;
pub mod tpm;

pub use error::Error;

#[cfg(feature = "test-util")]
pub mod swtpm_harness;
