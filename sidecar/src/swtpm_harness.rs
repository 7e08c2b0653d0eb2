//! A throwaway `swtpm` for tests (feature `test-util`).
//!
//! [`Swtpm::start`] gives each caller its own TPM:
//!
//! 1. a temporary directory holding the TPM state, a local CA and the config files that
//!    point `swtpm_setup` and `swtpm_localca` at them (nothing under `/etc`, `/var` or `$HOME`
//!    is read or written);
//! 2. `swtpm_setup --tpm2 --create-ek-cert --create-platform-cert --lock-nvram` with the SHA-1,
//!    SHA-256 and SHA-384 PCR banks: an RSA-2048 EK (persistent at `0x81010001`) and an ECC
//!    P-384 EK (`0x81010016`) with certificates in NV (`0x01C00002`, `0x01C00016`) issued by
//!    the local CA (`swtpm-localca-rootca` → `swtpm-localca` → EK);
//! 3. `swtpm socket --tpm2 --flags not-need-init,startup-clear` on two free consecutive
//!    loopback TCP ports (the swtpm TCTI puts the control channel on port + 1), retried on
//!    other ports if one was taken in the meantime.
//!
//! Dropping the [`Swtpm`] kills the process (by its pid, which it owns as a child) and removes
//! the directory.
//!
//! TCP rather than unix sockets: libtss2 3.2's swtpm TCTI takes `path=`, but `tss-esapi`
//! 7.x's TCTI configuration keeps only `host` and `port` (see `attest_sidecar::tpm::Tcti`).

use std::fs;
use std::io::{self, Read};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// PCR banks the harness allocates.
pub const PCR_BANKS: &str = "sha1,sha256,sha384";
/// How long `swtpm` may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Port pairs tried before giving up.
const PORT_ATTEMPTS: usize = 16;

/// Why the harness could not provide a TPM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `swtpm_setup` failed (its log is included).
    #[error("swtpm_setup failed ({status}): {log}")]
    Setup {
        /// Its exit status.
        status: String,
        /// Its log.
        log: String,
    },
    /// `swtpm` did not start.
    #[error("swtpm did not start: {detail}")]
    Start {
        /// What happened, with its output.
        detail: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

/// A running `swtpm` and the files of its provisioning.
#[derive(Debug)]
pub struct Swtpm {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Swtpm {
    /// Provisions and starts a new TPM (see the module documentation). Takes about a second,
    /// most of it `swtpm_setup` creating the CA and EK certificates.
    pub fn start() -> Result<Self, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("attest-swtpm-")
            .tempdir()
            .map_err(io_err("creating the swtpm directory"))?;
        let root = dir.path().to_path_buf();
        provision(&root)?;
        let mut last = String::new();
        for attempt in 0..PORT_ATTEMPTS {
            let Some(port) = free_port_pair() else {
                continue;
            };
            match spawn(&root, port, attempt)? {
                Spawned::Running(child) => return Ok(Swtpm { dir, child, port }),
                Spawned::PortTaken(log) => last = log,
            }
        }
        Err(HarnessError::Start {
            detail: format!("no free port pair in {PORT_ATTEMPTS} attempts; last: {last}"),
        })
    }

    /// The TCTI string for `attest_sidecar::tpm::Tpm::open` and `TPM2TOOLS_TCTI`.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The TPM command port (the control channel is the next one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory (state in `state/`, CA in `ca/`, certificates in `certs/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The local CA's root certificate (PEM), the trust anchor of the EK certificates.
    pub fn ca_root_pem(&self) -> Result<Vec<u8>, HarnessError> {
        read(&self.dir().join("ca/swtpm-localca-rootca-cert.pem"))
    }

    /// The local CA's issuing certificate (PEM), which signed the EK certificates.
    pub fn ca_issuer_pem(&self) -> Result<Vec<u8>, HarnessError> {
        read(&self.dir().join("ca/issuercert.pem"))
    }

    /// The EK certificates `swtpm_setup` wrote besides storing them in NV (DER):
    /// `("rsa2048", …)` and `("secp384r1", …)`.
    pub fn ek_cert_files(&self) -> Result<Vec<(String, Vec<u8>)>, HarnessError> {
        let certs = self.dir().join("certs");
        let mut out = Vec::new();
        for entry in fs::read_dir(&certs).map_err(io_err("listing certs/"))? {
            let path = entry.map_err(io_err("listing certs/"))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("ek-"))
                .and_then(|n| n.strip_suffix(".crt"))
                .map(str::to_string);
            if let Some(name) = name {
                out.push((name, read(&path)?));
            }
        }
        out.sort();
        Ok(out)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        // SIGKILL to our own child's pid, then reap it; the directory goes with `dir`.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> Result<Vec<u8>, HarnessError> {
    fs::read(path).map_err(io_err(format!("reading {}", path.display())))
}

fn write(path: &Path, contents: &str) -> Result<(), HarnessError> {
    fs::write(path, contents).map_err(io_err(format!("writing {}", path.display())))
}

/// Runs `swtpm_setup` with config files that keep everything inside `root`.
fn provision(root: &Path) -> Result<(), HarnessError> {
    for sub in ["state", "ca", "certs"] {
        fs::create_dir(root.join(sub)).map_err(io_err(format!("creating {sub}/")))?;
    }
    let p = |s: &str| root.join(s).display().to_string();
    write(
        &root.join("swtpm-localca.conf"),
        &format!(
            "statedir = {}\nsigningkey = {}\nissuercert = {}\ncertserial = {}\n",
            p("ca"),
            p("ca/signkey.pem"),
            p("ca/issuercert.pem"),
            p("ca/certserial"),
        ),
    )?;
    write(
        &root.join("swtpm-localca.options"),
        "--platform-manufacturer attest-broker-tests\n--platform-version 2.1\n\
         --platform-model swtpm\n",
    )?;
    write(
        &root.join("swtpm_setup.conf"),
        &format!(
            "create_certs_tool = swtpm_localca\ncreate_certs_tool_config = {}\n\
             create_certs_tool_options = {}\nactive_pcr_banks = {PCR_BANKS}\n",
            p("swtpm-localca.conf"),
            p("swtpm-localca.options"),
        ),
    )?;
    let log = root.join("setup.log");
    let output = Command::new("swtpm_setup")
        .args(["--tpm2", "--tpmstate"])
        .arg(root.join("state"))
        .arg("--config")
        .arg(root.join("swtpm_setup.conf"))
        .args([
            "--create-ek-cert",
            "--create-platform-cert",
            "--lock-nvram",
            "--pcr-banks",
            PCR_BANKS,
            "--write-ek-cert-files",
        ])
        .arg(root.join("certs"))
        .arg("--logfile")
        .arg(&log)
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(
            "running swtpm_setup (is the swtpm-tools package installed?)",
        ))?;
    if !output.status.success() {
        let mut text = fs::read_to_string(&log).unwrap_or_default();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        return Err(HarnessError::Setup {
            status: output.status.to_string(),
            log: text,
        });
    }
    Ok(())
}

/// A loopback port P such that P and P + 1 were both free a moment ago.
fn free_port_pair() -> Option<u16> {
    let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    let port = first.local_addr().ok()?.port();
    let next = port.checked_add(1).filter(|p| *p != u16::MAX)?;
    let _second = TcpListener::bind((Ipv4Addr::LOCALHOST, next)).ok()?;
    Some(port)
}

enum Spawned {
    Running(Child),
    PortTaken(String),
}

/// Starts `swtpm socket` on `port` and `port + 1` and waits until it listens: swtpm writes
/// its pid file only once both sockets are bound, and exits at once if a bind fails.
fn spawn(root: &Path, port: u16, attempt: usize) -> Result<Spawned, HarnessError> {
    let pid_file: PathBuf = root.join("swtpm.pid");
    let _ = fs::remove_file(&pid_file);
    let log_path = root.join(format!("swtpm-{attempt}.log"));
    let log = fs::File::create(&log_path).map_err(io_err("creating the swtpm log"))?;
    let log_err = log.try_clone().map_err(io_err("cloning the swtpm log"))?;
    let mut child = Command::new("swtpm")
        .args(["socket", "--tpm2", "--tpmstate"])
        .arg(format!("dir={}", root.join("state").display()))
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
        .args(["--flags", "not-need-init,startup-clear", "--pid"])
        .arg(format!("file={}", pid_file.display()))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(io_err("starting swtpm (is the swtpm package installed?)"))?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(io_err("waiting for swtpm"))? {
            let mut text = String::new();
            let _ = fs::File::open(&log_path).and_then(|mut f| f.read_to_string(&mut text));
            if text.contains("Address already in use") {
                return Ok(Spawned::PortTaken(text));
            }
            return Err(HarnessError::Start {
                detail: format!("exited ({status}): {text}"),
            });
        }
        let pid = fs::read_to_string(&pid_file).unwrap_or_default();
        if pid.trim() == child.id().to_string() {
            return Ok(Spawned::Running(child));
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HarnessError::Start {
                detail: format!("no pid file after {START_TIMEOUT:?}"),
            });
        }
        thread::sleep(Duration::from_millis(5));
    }
}
