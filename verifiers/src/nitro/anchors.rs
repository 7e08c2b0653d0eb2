//! The AWS Nitro Enclaves root: compiled in from `roots/aws-nitro/root.pem` and pinned by its
//! SHA-256 fingerprint, the value AWS publishes. Extra roots (simulated hardware) are trusted
//! only when a caller passes them explicitly.

use std::sync::OnceLock;

use crate::x509::{self, Certificate, KeyType};
use crate::{Tee, VerifyError};

/// SHA-256 of the DER AWS Nitro Enclaves root certificate (`CN=aws.nitro-enclaves`, P-384,
/// valid 2019-10-28 to 2049-10-28), as AWS publishes it.
pub const AWS_NITRO_ROOT_SHA256: &str =
    "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";

const AWS_NITRO_ROOT_PEM: &[u8] = include_bytes!("../../roots/aws-nitro/root.pem");

/// One trusted root.
#[derive(Debug, Clone)]
pub struct NitroRoot {
    cert: Certificate,
    builtin: bool,
}

impl NitroRoot {
    /// The root certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// Whether this is the compiled-in AWS root (as opposed to a caller-supplied one).
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }
}

/// The Nitro roots a verifier trusts. A document's `cabundle[0]` must be byte-identical to one
/// of them.
#[derive(Debug, Clone)]
pub struct NitroTrustAnchors {
    roots: Vec<NitroRoot>,
}

impl NitroTrustAnchors {
    /// The AWS Nitro Enclaves root, compiled in, checked against [`AWS_NITRO_ROOT_SHA256`] and
    /// its self-signature once per process. Should that check ever fail, the set is empty and
    /// every document is rejected (fail closed).
    pub fn builtin() -> Self {
        static BUILTIN: OnceLock<Vec<NitroRoot>> = OnceLock::new();
        let roots = BUILTIN.get_or_init(|| {
            let Ok(certs) = x509::parse_bundle(AWS_NITRO_ROOT_PEM) else {
                return Vec::new();
            };
            certs
                .into_iter()
                .filter(|c| hex::encode(c.fingerprint()) == AWS_NITRO_ROOT_SHA256)
                .filter(|c| check_root(c).is_ok())
                .map(|cert| NitroRoot {
                    cert,
                    builtin: true,
                })
                .collect()
        });
        NitroTrustAnchors {
            roots: roots.clone(),
        }
    }

    /// No roots at all: every chain fails. Add roots with [`NitroTrustAnchors::add_roots`].
    pub fn empty() -> Self {
        NitroTrustAnchors { roots: Vec::new() }
    }

    /// The trusted roots, built-in first.
    pub fn roots(&self) -> &[NitroRoot] {
        &self.roots
    }

    /// Adds caller-supplied roots (simulated hardware): a PEM or DER bundle of self-signed
    /// P-384 CA certificates and nothing else.
    pub fn add_roots(&mut self, bundle: &[u8]) -> Result<(), VerifyError> {
        let certs = x509::parse_bundle(bundle)?;
        for cert in &certs {
            check_root(cert)?;
        }
        self.roots.extend(certs.into_iter().map(|cert| NitroRoot {
            cert,
            builtin: false,
        }));
        Ok(())
    }

    /// The trusted root whose DER encoding is exactly `der`.
    pub(crate) fn find(&self, der: &[u8]) -> Option<&NitroRoot> {
        self.roots.iter().find(|r| r.cert.der() == der)
    }
}

/// A root is a self-issued, self-signed CA certificate with a P-384 key (as AWS's is).
fn check_root(cert: &Certificate) -> Result<(), VerifyError> {
    let name = cert.subject_cn();
    if !cert.is_self_issued() || !cert.is_ca() {
        return Err(VerifyError::chain(
            Tee::AwsNitro,
            format!("root {name:?} is not a self-issued CA certificate"),
        ));
    }
    if cert.key_type() != KeyType::EcP384 {
        return Err(VerifyError::chain(
            Tee::AwsNitro,
            format!("root {name:?} key is not ECDSA P-384"),
        ));
    }
    cert.check_signed_by(cert, Tee::AwsNitro)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_root_is_the_pinned_aws_root() {
        let anchors = NitroTrustAnchors::builtin();
        let [root] = anchors.roots() else {
            panic!("expected exactly one built-in root");
        };
        assert!(root.is_builtin());
        assert_eq!(
            hex::encode(root.certificate().fingerprint()),
            AWS_NITRO_ROOT_SHA256
        );
        assert_eq!(root.certificate().subject_cn(), "aws.nitro-enclaves");
        assert!(anchors.find(root.certificate().der()).is_some());
        assert!(NitroTrustAnchors::empty()
            .find(root.certificate().der())
            .is_none());
    }

    #[test]
    fn extra_roots_must_be_self_signed_p384_cas() {
        let mut anchors = NitroTrustAnchors::empty();
        assert_eq!(
            anchors.add_roots(b"not a certificate").unwrap_err().code(),
            "parse.malformed"
        );
        anchors.add_roots(AWS_NITRO_ROOT_PEM).unwrap();
        assert!(!anchors.roots().iter().any(NitroRoot::is_builtin));
        // An AMD ARK is self-signed but RSA.
        let ark = include_bytes!("../../roots/amd-milan/ark.pem");
        assert_eq!(anchors.add_roots(ark).unwrap_err().code(), "nitro.chain");
        // An AMD ASK is not self-issued.
        let ask = include_bytes!("../../roots/amd-milan/ask.pem");
        assert_eq!(anchors.add_roots(ask).unwrap_err().code(), "nitro.chain");
        assert_eq!(anchors.roots().len(), 1);
    }
}
