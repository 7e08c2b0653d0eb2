//! attest-proto: what both sides of the exchange must agree on, in one place.
//!
//! - [`jwk`]: the P-256 binding key as a JWK and its RFC 7638 thumbprint (`cnf.jkt`);
//! - [`binding`]: `SHA-512("attest-broker/v1" ‖ nonce ‖ jkt)`, what evidence commits to;
//! - [`dpop`]: building RFC 9449 DPoP proofs with any ES256 signer (a TPM, or a key in memory);
//! - [`client`]: a small blocking HTTP(S) client for the broker's JSON API;
//! - [`crypto`]: the crate's only `aws-lc-rs` caller (digests, randomness, an in-memory key).
//!
//! The broker (verifying side) and the sidecar (attesting side) both use it, so a change to
//! the binding or the proof format cannot reach one side only (docs/decisions/0009-proto-crate.md).

#![forbid(unsafe_code)]

pub mod binding;
pub mod client;
pub mod crypto;
pub mod dpop;
pub mod jwk;

pub use binding::{attestation_binding, BINDING_CONTEXT};
pub use jwk::{b64, b64_decode, EcJwk, JoseError};
