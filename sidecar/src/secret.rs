//! The agent's bootstrap secret: read once at start from a file descriptor, a systemd
//! credential or an owner-only file — never from an environment variable or the command line —
//! and kept only in memory, zeroized on drop, never printed.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Largest secret accepted (a bootstrap secret is about 70 bytes).
pub const MAX_SECRET_BYTES: u64 = 4096;

/// Where the bootstrap secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An inherited file descriptor (e.g. `attest-sidecar --bootstrap-fd 3 3<secret`), read
    /// through `/proc/self/fd`.
    Fd(u32),
    /// A systemd credential: `$CREDENTIALS_DIRECTORY/<name>` (`LoadCredential=<name>:…`). The
    /// environment variable names a directory, not the secret.
    Credential(String),
    /// A file that only its owner — this process's user — can read.
    File(PathBuf),
}

/// Why the secret could not be loaded. Messages name files, never contents.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The file is readable by others, or owned by someone else.
    #[error(
        "{path}: {problem}; the bootstrap secret must be readable by its owner only (chmod 600)"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// What is wrong with its ownership or mode.
        problem: String,
    },
    /// `$CREDENTIALS_DIRECTORY` is not set (not started by systemd with `LoadCredential=`).
    #[error("CREDENTIALS_DIRECTORY is not set: run under systemd with LoadCredential=")]
    NoCredentialsDirectory,
    /// Empty, too long, or not one line of text.
    #[error("{0}: not a bootstrap secret")]
    Malformed(PathBuf),
}

/// The bootstrap secret. `Debug` and `Display` never show it.
pub struct BootstrapSecret(Zeroizing<String>);

impl BootstrapSecret {
    /// The secret, for the `Authorization: Bootstrap` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A secret from a string, for unit tests of the code that uses one.
    #[cfg(test)]
    pub(crate) fn for_tests(secret: &str) -> Self {
        BootstrapSecret(Zeroizing::new(secret.to_string()))
    }
}

impl fmt::Debug for BootstrapSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BootstrapSecret(<redacted>)")
    }
}

/// Loads the secret from `source`. `credentials_directory` is the value of
/// `$CREDENTIALS_DIRECTORY` (passed in so callers and tests decide where it comes from).
pub fn load(
    source: &SecretSource,
    credentials_directory: Option<&Path>,
) -> Result<BootstrapSecret, SecretError> {
    match source {
        SecretSource::Fd(fd) => read_secret(&PathBuf::from(format!("/proc/self/fd/{fd}")), false),
        SecretSource::Credential(name) => {
            let dir = credentials_directory.ok_or(SecretError::NoCredentialsDirectory)?;
            if name.is_empty() || name.contains('/') || name == ".." {
                return Err(SecretError::Malformed(dir.join(name)));
            }
            // systemd makes credentials readable by the service only; check anyway.
            read_secret(&dir.join(name), true)
        }
        SecretSource::File(path) => read_secret(path, true),
    }
}

fn read_secret(path: &Path, check_mode: bool) -> Result<BootstrapSecret, SecretError> {
    let read_err = |e: std::io::Error| SecretError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if check_mode {
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let me = std::fs::metadata("/proc/self").map_err(read_err)?.uid();
        let mode = meta.mode() & 0o777;
        if meta.uid() != me {
            return Err(SecretError::Exposed {
                path: path.to_path_buf(),
                problem: format!(
                    "owned by uid {}, not by this process's uid {me}",
                    meta.uid()
                ),
            });
        }
        if mode & 0o077 != 0 {
            return Err(SecretError::Exposed {
                path: path.to_path_buf(),
                problem: format!("mode {mode:o} lets group or others read it"),
            });
        }
    }
    use std::io::Read;
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .map_err(read_err)?
        .take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| SecretError::Malformed(path.to_path_buf()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty()
        || bytes.len() as u64 > MAX_SECRET_BYTES
        || secret.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(SecretError::Malformed(path.to_path_buf()));
    }
    Ok(BootstrapSecret(Zeroizing::new(secret.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const SECRET: &str = "abs_0123456789abcdef.c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

    fn write(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn owner_only_file_is_read_and_others_readable_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ok = write(dir.path(), "ok", &format!("{SECRET}\n"), 0o600);
        let secret = load(&SecretSource::File(ok), None).unwrap();
        assert_eq!(secret.expose(), SECRET);
        assert!(
            !format!("{secret:?}").contains("abs_"),
            "Debug never shows the secret"
        );
        for mode in [0o644, 0o640, 0o604] {
            let exposed = write(dir.path(), &format!("m{mode:o}"), SECRET, mode);
            let err = load(&SecretSource::File(exposed), None).unwrap_err();
            assert!(
                matches!(err, SecretError::Exposed { .. }),
                "{mode:o}: {err}"
            );
            assert!(
                !err.to_string().contains(SECRET),
                "errors never carry the secret"
            );
        }
    }

    #[test]
    fn systemd_credentials_and_file_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bootstrap", SECRET, 0o400);
        let s = load(
            &SecretSource::Credential("bootstrap".into()),
            Some(dir.path()),
        )
        .unwrap();
        assert_eq!(s.expose(), SECRET);
        assert!(matches!(
            load(&SecretSource::Credential("bootstrap".into()), None),
            Err(SecretError::NoCredentialsDirectory)
        ));
        assert!(load(
            &SecretSource::Credential("../etc/passwd".into()),
            Some(dir.path())
        )
        .is_err());
        // An inherited descriptor: open the file and read it through /proc/self/fd.
        let file = std::fs::File::open(dir.path().join("bootstrap")).unwrap();
        use std::os::fd::AsRawFd;
        let fd = u32::try_from(file.as_raw_fd()).unwrap();
        assert_eq!(load(&SecretSource::Fd(fd), None).unwrap().expose(), SECRET);
    }

    #[test]
    fn malformed_secrets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in [("empty", ""), ("spaces", "abs_1.a b"), ("two", "a\nb")] {
            let path = write(dir.path(), name, contents, 0o600);
            assert!(
                matches!(
                    load(&SecretSource::File(path), None),
                    Err(SecretError::Malformed(_))
                ),
                "{name}"
            );
        }
        let big = write(dir.path(), "big", &"a".repeat(5000), 0o600);
        assert!(load(&SecretSource::File(big), None).is_err());
        assert!(load(&SecretSource::File(dir.path().join("missing")), None).is_err());
    }
}
