//! AMD's root certificates: the ARK of each product generation and the two intermediates it
//! signs, the ASK (signs VCEKs) and the ASVK (signs VLEKs). The built-in set is compiled in and
//! pinned by SHA-256 fingerprint; extra sets (simulated hardware) are trusted only when a caller
//! passes them explicitly.

use std::fmt;
use std::sync::OnceLock;

use serde::Serialize;

use crate::x509::{self, Certificate, KeyType};
use crate::{Tee, VerifyError};

/// An AMD EPYC product generation with its own ARK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Generation {
    /// EPYC 7003 (Zen 3).
    Milan,
    /// EPYC 9004/8004 (Zen 4): Genoa, Bergamo, Siena.
    Genoa,
    /// EPYC 9005 (Zen 5).
    Turin,
}

impl Generation {
    /// The name AMD uses in certificate common names (`ARK-Milan`, `SEV-VLEK-Genoa`, …).
    pub fn amd_name(self) -> &'static str {
        match self {
            Generation::Milan => "Milan",
            Generation::Genoa => "Genoa",
            Generation::Turin => "Turin",
        }
    }

    fn from_amd_name(name: &str) -> Option<Self> {
        [Generation::Milan, Generation::Genoa, Generation::Turin]
            .into_iter()
            .find(|g| g.amd_name() == name)
    }

    /// The generation a report's CPUID family/model names, when it names a known one.
    pub fn from_cpuid(family: u8, model: u8) -> Option<Self> {
        match (family, model) {
            (0x19, 0x00..=0x0F) => Some(Generation::Milan),
            (0x19, 0x10..=0x1F | 0xA0..=0xAF) => Some(Generation::Genoa),
            (0x1A, _) => Some(Generation::Turin),
            _ => None,
        }
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.amd_name())
    }
}

/// A pinned certificate: where it came from and its SHA-256 fingerprint.
struct Pinned {
    pem: &'static [u8],
    sha256: &'static str,
}

/// AMD's roots, fingerprints as listed in `roots/README.md` (and published by AMD's KDS).
const BUILTIN: [(Generation, Pinned, Pinned, Pinned); 3] = [
    (
        Generation::Milan,
        Pinned {
            pem: include_bytes!("../../roots/amd-milan/ark.pem"),
            sha256: "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
        },
        Pinned {
            pem: include_bytes!("../../roots/amd-milan/ask.pem"),
            sha256: "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b",
        },
        Pinned {
            pem: include_bytes!("../../roots/amd-milan/asvk.pem"),
            sha256: "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5",
        },
    ),
    (
        Generation::Genoa,
        Pinned {
            pem: include_bytes!("../../roots/amd-genoa/ark.pem"),
            sha256: "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
        },
        Pinned {
            pem: include_bytes!("../../roots/amd-genoa/ask.pem"),
            sha256: "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521",
        },
        Pinned {
            pem: include_bytes!("../../roots/amd-genoa/asvk.pem"),
            sha256: "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372",
        },
    ),
    (
        Generation::Turin,
        Pinned {
            pem: include_bytes!("../../roots/amd-turin/ark.pem"),
            sha256: "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
        },
        Pinned {
            pem: include_bytes!("../../roots/amd-turin/ask.pem"),
            sha256: "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185",
        },
        Pinned {
            pem: include_bytes!("../../roots/amd-turin/asvk.pem"),
            sha256: "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c",
        },
    ),
];

/// One generation's roots: the ARK and the intermediates it signed.
#[derive(Debug, Clone)]
pub struct AmdRootSet {
    generation: Generation,
    ark: Certificate,
    ask: Option<Certificate>,
    asvk: Option<Certificate>,
    builtin: bool,
}

impl AmdRootSet {
    /// The product generation.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The ARK.
    pub fn ark(&self) -> &Certificate {
        &self.ark
    }

    /// The ASK (signs VCEKs), if this set has one.
    pub fn ask(&self) -> Option<&Certificate> {
        self.ask.as_ref()
    }

    /// The ASVK (signs VLEKs), if this set has one.
    pub fn asvk(&self) -> Option<&Certificate> {
        self.asvk.as_ref()
    }

    /// Whether this is one of AMD's compiled-in sets (as opposed to caller-supplied roots).
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }

    fn certificates(&self) -> impl Iterator<Item = &Certificate> {
        std::iter::once(&self.ark)
            .chain(self.ask.as_ref())
            .chain(self.asvk.as_ref())
    }
}

/// The AMD roots a verifier trusts.
#[derive(Debug, Clone)]
pub struct AmdTrustAnchors {
    sets: Vec<AmdRootSet>,
}

impl AmdTrustAnchors {
    /// AMD's Milan, Genoa and Turin roots, compiled in, each checked against its pinned SHA-256
    /// fingerprint and its ARK signature once per process.
    pub fn builtin() -> Self {
        static BUILTIN_SETS: OnceLock<Vec<AmdRootSet>> = OnceLock::new();
        let sets = BUILTIN_SETS.get_or_init(|| {
            BUILTIN
                .iter()
                .filter_map(|(generation, ark, ask, asvk)| {
                    let load = |p: &Pinned| {
                        let cert = x509::parse_bundle(p.pem).ok()?.into_iter().next()?;
                        (hex::encode(cert.fingerprint()) == p.sha256).then_some(cert)
                    };
                    let set = AmdRootSet {
                        generation: *generation,
                        ark: load(ark)?,
                        ask: Some(load(ask)?),
                        asvk: Some(load(asvk)?),
                        builtin: true,
                    };
                    check_set(&set).ok()?;
                    Some(set)
                })
                .collect()
        });
        AmdTrustAnchors { sets: sets.clone() }
    }

    /// No roots at all: every chain fails. Add sets with [`AmdTrustAnchors::add_roots`].
    pub fn empty() -> Self {
        AmdTrustAnchors { sets: Vec::new() }
    }

    /// The root sets, built-in first.
    pub fn sets(&self) -> &[AmdRootSet] {
        &self.sets
    }

    /// Adds caller-supplied roots (for simulated hardware): a bundle (PEM or DER) with one or
    /// more self-signed ARKs and the ASKs/ASVKs they signed. The generation and the role come
    /// from AMD's naming: `ARK-<Gen>`, `SEV-<Gen>` (ASK), `SEV-VLEK-<Gen>` (ASVK). Every
    /// intermediate must verify under an ARK in the same bundle.
    pub fn add_roots(&mut self, bundle: &[u8]) -> Result<(), VerifyError> {
        let certs = x509::parse_bundle(bundle)?;
        let mut added = Vec::new();
        for ark in certs.iter().filter(|c| c.is_self_issued()) {
            let generation = ark
                .subject_cn()
                .strip_prefix("ARK-")
                .and_then(Generation::from_amd_name)
                .ok_or_else(|| {
                    VerifyError::chain(
                        Tee::SevSnp,
                        format!("root {:?} is not named ARK-<generation>", ark.subject_cn()),
                    )
                })?;
            let mut set = AmdRootSet {
                generation,
                ark: ark.clone(),
                ask: None,
                asvk: None,
                builtin: false,
            };
            for cert in certs.iter().filter(|c| !c.is_self_issued()) {
                if cert.check_signed_by(ark, Tee::SevSnp).is_err() {
                    continue;
                }
                let name = cert.subject_cn();
                if name == format!("SEV-VLEK-{}", generation.amd_name()) {
                    set.asvk = Some(cert.clone());
                } else if name == format!("SEV-{}", generation.amd_name()) {
                    set.ask = Some(cert.clone());
                }
            }
            check_set(&set)?;
            added.push(set);
        }
        let used = added.iter().flat_map(|s| s.certificates()).count();
        if added.is_empty() || used != certs.len() {
            return Err(VerifyError::chain(
                Tee::SevSnp,
                "extra roots must be ARKs and the ASKs/ASVKs they signed, nothing else",
            ));
        }
        self.sets.extend(added);
        Ok(())
    }

    /// Whether `cert` is byte-for-byte one of the trusted root or intermediate certificates.
    pub fn contains(&self, cert: &Certificate) -> bool {
        self.sets
            .iter()
            .flat_map(|s| s.certificates())
            .any(|c| c == cert)
    }
}

/// ARK self-signature and intermediates under the ARK; RSA keys throughout.
fn check_set(set: &AmdRootSet) -> Result<(), VerifyError> {
    set.ark.check_signed_by(&set.ark, Tee::SevSnp)?;
    for cert in set.certificates().skip(1) {
        cert.check_signed_by(&set.ark, Tee::SevSnp)?;
    }
    if set.certificates().any(|c| c.key_type() != KeyType::Rsa) {
        return Err(VerifyError::chain(Tee::SevSnp, "AMD root keys are RSA"));
    }
    Ok(())
}
