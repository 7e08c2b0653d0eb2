//! Reading operator-supplied files and arguments, with bounded sizes and clear errors.

use std::fmt;
use std::io::Read;
use std::path::Path;

use attest_verifiers::UnixTime;

/// Largest input file accepted (evidence and certificate bundles are a few KiB).
pub const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// A problem with the invocation or an input file: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads a whole file of at most [`MAX_INPUT_BYTES`].
pub fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, UsageError> {
    let file = std::fs::File::open(path)
        .map_err(|e| UsageError(format!("cannot read {what} {}: {e}", path.display())))?;
    let mut data = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| UsageError(format!("cannot read {what} {}: {e}", path.display())))?;
    if data.len() as u64 > MAX_INPUT_BYTES {
        return Err(UsageError(format!(
            "{what} {} is larger than {MAX_INPUT_BYTES} bytes",
            path.display()
        )));
    }
    Ok(data)
}

/// Parses `--at`, defaulting to the current time.
pub fn verification_time(at: Option<&str>) -> Result<UnixTime, UsageError> {
    match at {
        Some(text) => UnixTime::parse_rfc3339(text)
            .map_err(|e| UsageError(format!("--at {text:?} is not an RFC 3339 time: {e}"))),
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| UsageError("system clock is before 1970".into()))?;
            i64::try_from(now.as_secs())
                .map(UnixTime::from_secs)
                .map_err(|_| UsageError("system clock out of range".into()))
        }
    }
}

/// Decodes a hex argument that must be exactly `len` bytes.
pub fn hex_exact(flag: &str, text: &str, len: usize) -> Result<Vec<u8>, UsageError> {
    let bytes =
        hex::decode(text.trim()).map_err(|e| UsageError(format!("{flag} is not hex: {e}")))?;
    if bytes.len() != len {
        return Err(UsageError(format!(
            "{flag} must be exactly {len} bytes ({} hex digits), got {} bytes",
            2 * len,
            bytes.len()
        )));
    }
    Ok(bytes)
}
