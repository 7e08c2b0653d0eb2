//! TCTI strings: which TPM to talk to, and how.
//!
//! The forms are those of `tpm2-tools` (`TPM2TOOLS_TCTI`), parsed strictly. `tss-esapi` 7.x
//! parses them leniently: unknown keys are ignored, so `swtpm:path=/run/swtpm.sock` (a unix
//! socket, which libtss2 ≥ 3.2 understands) silently becomes `swtpm:host=localhost,port=2321`,
//! another TPM than the one named. This parser refuses every key it cannot pass on.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use tss_esapi::tcti_ldr::TctiNameConf;

use super::error::{TpmError, TssResultExt};

/// The kernel's resource-managed TPM device, the default for `device`.
pub const DEFAULT_DEVICE: &str = "/dev/tpmrm0";
/// The simulator port `swtpm` and `mssim` default to (the control channel is the next one).
pub const DEFAULT_SIMULATOR_PORT: u16 = 2321;

/// A parsed TCTI configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tcti {
    /// `device[:PATH]`: a TPM character device, `/dev/tpmrm0` by default. Use the resource
    /// manager (`tpmrm0`), not `/dev/tpm0`: without one, transient objects of other TPM
    /// users share the TPM's three object slots with this process.
    Device {
        /// The device node.
        path: PathBuf,
    },
    /// `swtpm[:host=HOST,port=PORT]`: an `swtpm socket --tpm2` over TCP (control channel on
    /// PORT + 1), `localhost:2321` by default.
    Swtpm {
        /// Host name or IP address.
        host: String,
        /// The TPM command port.
        port: u16,
    },
    /// `mssim[:host=HOST,port=PORT]`: the Microsoft/IBM reference simulator protocol.
    Mssim {
        /// Host name or IP address.
        host: String,
        /// The TPM command port.
        port: u16,
    },
    /// `tabrmd[:bus_name=NAME,bus_type=session|system]`: the TPM2 access broker and
    /// resource manager daemon over D-Bus (needs `libtss2-tcti-tabrmd0` at run time).
    Tabrmd {
        /// D-Bus name, `com.intel.tss2.Tabrmd` by default.
        bus_name: Option<String>,
        /// `system` (default) or `session`.
        bus_type: Option<String>,
    },
}

impl Tcti {
    /// Parses a TCTI string (see the variants for the forms accepted).
    pub fn parse(text: &str) -> Result<Self, TpmError> {
        let refuse = |detail: String| TpmError::Tcti {
            tcti: text.to_string(),
            detail,
        };
        let (name, conf) = match text.split_once(':') {
            Some((name, conf)) => (name, conf),
            None => (text, ""),
        };
        let pairs = |allowed: &[&str]| -> Result<Vec<(String, String)>, TpmError> {
            if conf.is_empty() {
                return Ok(Vec::new());
            }
            let mut out: Vec<(String, String)> = Vec::new();
            for item in conf.split(',') {
                let (key, value) = item
                    .split_once('=')
                    .ok_or_else(|| refuse(format!("{item:?} is not key=value")))?;
                if !allowed.contains(&key) {
                    return Err(refuse(format!(
                        "key {key:?} is not supported through tss-esapi 7 (only {})",
                        allowed.join(", ")
                    )));
                }
                if value.is_empty() || value.contains(char::is_whitespace) {
                    return Err(refuse(format!("empty or blank value for {key}")));
                }
                if out.iter().any(|(k, _)| k == key) {
                    return Err(refuse(format!("{key} given twice")));
                }
                out.push((key.to_string(), value.to_string()));
            }
            Ok(out)
        };
        let get = |pairs: &[(String, String)], key: &str| {
            pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        };
        match name {
            "device" => {
                if conf.contains('=') {
                    return Err(refuse("device takes a path, not key=value".into()));
                }
                let path = if conf.is_empty() {
                    DEFAULT_DEVICE
                } else {
                    conf
                };
                Ok(Tcti::Device { path: path.into() })
            }
            "swtpm" | "mssim" => {
                let kv = pairs(&["host", "port"])?;
                let host = get(&kv, "host").unwrap_or_else(|| "localhost".into());
                let port = match get(&kv, "port") {
                    Some(p) => p
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0 && *p != u16::MAX)
                        .ok_or_else(|| refuse(format!("port {p:?}")))?,
                    None => DEFAULT_SIMULATOR_PORT,
                };
                Ok(if name == "swtpm" {
                    Tcti::Swtpm { host, port }
                } else {
                    Tcti::Mssim { host, port }
                })
            }
            "tabrmd" => {
                let kv = pairs(&["bus_name", "bus_type"])?;
                let bus_type = get(&kv, "bus_type");
                if let Some(t) = &bus_type {
                    if t != "session" && t != "system" {
                        return Err(refuse(format!("bus_type {t:?} (session or system)")));
                    }
                }
                Ok(Tcti::Tabrmd {
                    bus_name: get(&kv, "bus_name"),
                    bus_type,
                })
            }
            other => Err(refuse(format!(
                "unknown TCTI {other:?} (device, swtpm, mssim or tabrmd)"
            ))),
        }
    }

    /// The `tss-esapi` configuration for this TCTI.
    pub(crate) fn name_conf(&self) -> Result<TctiNameConf, TpmError> {
        TctiNameConf::from_str(&self.to_string()).tss("parsing the TCTI configuration")
    }
}

impl FromStr for Tcti {
    type Err = TpmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tcti::parse(s)
    }
}

impl fmt::Display for Tcti {
    /// The canonical TCTI string, which [`Tcti::parse`] reads back unchanged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tcti::Device { path } => write!(f, "device:{}", path.display()),
            Tcti::Swtpm { host, port } => write!(f, "swtpm:host={host},port={port}"),
            Tcti::Mssim { host, port } => write!(f, "mssim:host={host},port={port}"),
            Tcti::Tabrmd { bus_name, bus_type } => {
                f.write_str("tabrmd")?;
                let parts: Vec<String> = [("bus_name", bus_name), ("bus_type", bus_type)]
                    .into_iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
                    .collect();
                if !parts.is_empty() {
                    write!(f, ":{}", parts.join(","))?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms_round_trip() {
        for (text, canonical) in [
            ("device", "device:/dev/tpmrm0"),
            ("device:/dev/tpm0", "device:/dev/tpm0"),
            ("swtpm", "swtpm:host=localhost,port=2321"),
            (
                "swtpm:host=127.0.0.1,port=40000",
                "swtpm:host=127.0.0.1,port=40000",
            ),
            ("swtpm:port=40000,host=::1", "swtpm:host=::1,port=40000"),
            ("mssim:port=2321", "mssim:host=localhost,port=2321"),
            ("tabrmd", "tabrmd"),
            ("tabrmd:bus_type=session", "tabrmd:bus_type=session"),
        ] {
            let tcti = Tcti::parse(text).unwrap();
            assert_eq!(tcti.to_string(), canonical, "{text}");
            assert_eq!(Tcti::parse(canonical).unwrap(), tcti);
            tcti.name_conf().unwrap();
        }
    }

    #[test]
    fn refused_forms() {
        for text in [
            "swtpm:path=/run/swtpm.sock",
            "swtpm:host=127.0.0.1,port=2321,path=/x",
            "swtpm:port=0",
            "swtpm:port=70000",
            "swtpm:port=abc",
            "swtpm:host=",
            "swtpm:host=a,host=b",
            "swtpm:garbage",
            "device:path=/dev/tpm0",
            "tabrmd:bus_type=bus",
            "libtpms",
            "",
        ] {
            let err = Tcti::parse(text).unwrap_err();
            assert!(matches!(err, TpmError::Tcti { .. }), "{text}: {err}");
        }
    }
}
