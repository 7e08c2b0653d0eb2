//! attest-broker: verifies hardware attestation evidence and issues short-lived,
//! hardware-bound tokens (see DESIGN.md). The binary (`src/main.rs`) is a thin shell over
//! these modules.

#![forbid(unsafe_code)]

pub mod admin_cli;
/// The broker HTTP client shared with the sidecar.
pub use attest_proto::client;
pub mod audit;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod host;
pub mod input;
pub mod jose;
pub mod keys;
pub mod listener;
pub mod loadgen;
pub mod metrics;
pub mod policy;
pub mod serve;
pub mod service;
pub mod store;
pub mod tokens;
pub mod verify_cmd;
