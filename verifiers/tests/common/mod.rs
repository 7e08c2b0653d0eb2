//! Shared helpers for tests that read the real vectors in `../shared/vectors`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use attest_verifiers::UnixTime;

/// The vectors directory: `$ATTEST_VECTORS`, else `<repo>/../shared/vectors`.
pub fn vectors_dir() -> PathBuf {
    match std::env::var_os("ATTEST_VECTORS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"),
    }
}

/// Reads a vector file; a missing file fails the test with its path.
pub fn vector(rel: &str) -> Vec<u8> {
    let path = vectors_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading vector {}: {e}", path.display()))
}

/// Parses an RFC 3339 time.
pub fn at(text: &str) -> UnixTime {
    UnixTime::parse_rfc3339(text).unwrap()
}
