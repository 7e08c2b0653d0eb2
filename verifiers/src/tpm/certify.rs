//! TPM2_Certify verification (TPM 2.0 Library Part 3, rev 1.59, 18.2): an AK vouching that a
//! key (such as a P-256 token-binding key) lives in the same TPM.

use super::alg::{ObjectAttributes, TPM_ST_ATTEST_CERTIFY};
use super::chain::{self, CertChain, ChainClaims};
use super::public::{AttestationKey, Public, PublicKey};
use super::quote;
use super::structures::{Attest, Attested, CertifyInfo, ClockInfo, Signature};
use crate::{UnixTime, VerifyError};

/// A TPM2_Certify result and the key it is about.
#[derive(Debug, Clone, Copy)]
pub struct CertifyEvidence<'a> {
    /// The marshalled TPMS_ATTEST (`TPM_ST_ATTEST_CERTIFY`), exactly as signed.
    pub attest: &'a [u8],
    /// The AK's signature over it.
    pub signature: &'a Signature,
    /// The attestation key that signed.
    pub ak: &'a AttestationKey,
    /// The certified key's public area.
    pub certified: &'a Public,
}

/// What a certification is verified against.
#[derive(Debug, Clone, Copy)]
pub struct CertifyOptions<'a> {
    /// Verification time (certificate validity).
    pub at: UnixTime,
    /// extraData (qualifyingData) must equal this exactly.
    pub expected_qualifying_data: Option<&'a [u8]>,
    /// If set, the AK must be certified by this chain.
    pub ak_chain: Option<CertChain<'a>>,
}

impl CertifyOptions<'_> {
    /// Options with a verification time and nothing else.
    pub fn at(at: UnixTime) -> Self {
        CertifyOptions {
            at,
            expected_qualifying_data: None,
            ak_chain: None,
        }
    }
}

/// A key whose TPM residency an AK vouched for. Only [`verify_certify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedKey {
    public: Public,
    key: PublicKey,
    qualified_name: Vec<u8>,
    ak: PublicKey,
    ak_certificate: Option<ChainClaims>,
    clock_info: ClockInfo,
    firmware_version: u64,
    verified_at: UnixTime,
}

impl CertifiedKey {
    /// The certified key's public area.
    pub fn public(&self) -> &Public {
        &self.public
    }

    /// The certified public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// Its Name.
    pub fn name(&self) -> Vec<u8> {
        self.public.name()
    }

    /// Its qualified name, as the TPM reported it.
    pub fn qualified_name(&self) -> &[u8] {
        &self.qualified_name
    }

    /// The AK that certified it.
    pub fn ak(&self) -> &PublicKey {
        &self.ak
    }

    /// The AK's verified certificate chain, when one was required.
    pub fn ak_certificate(&self) -> Option<&ChainClaims> {
        self.ak_certificate.as_ref()
    }

    /// The TPM clock at certification.
    pub fn clock_info(&self) -> ClockInfo {
        self.clock_info
    }

    /// The TPM firmware version.
    pub fn firmware_version(&self) -> u64 {
        self.firmware_version
    }

    /// The verification time.
    pub fn verified_at(&self) -> UnixTime {
        self.verified_at
    }
}

/// Verifies that `evidence.certified` is a TPM-resident signing key certified by the AK.
///
/// In order: the TPMS_ATTEST parses and is a certification; AK attributes and scheme (for a
/// TPM public area AK); the AK chain, if required; the signature; extraData against the
/// expected qualifying data; the certified Name is the presented key's Name; the presented
/// key's attributes make it a non-exportable, TPM-generated signing key.
pub fn verify_certify(
    evidence: &CertifyEvidence<'_>,
    opts: &CertifyOptions<'_>,
) -> Result<CertifiedKey, VerifyError> {
    let attest = Attest::parse(evidence.attest)?;
    let info = check_certify_type(&attest)?;
    if let Some(public) = evidence.ak.tpm_public() {
        quote::check_ak_attributes(public)?;
        quote::check_scheme(public, evidence.signature)?;
    }
    let ak_certificate = opts
        .ak_chain
        .map(|c| chain::verify_chain(&c, evidence.ak.public_key(), opts.at))
        .transpose()?;
    quote::check_signature(
        evidence.attest,
        evidence.signature,
        evidence.ak.public_key(),
    )?;
    quote::check_nonce(&attest, opts.expected_qualifying_data)?;
    check_certified_name(info, evidence.certified)?;
    check_certified_attributes(evidence.certified)?;
    Ok(CertifiedKey {
        public: evidence.certified.clone(),
        key: evidence.certified.public_key()?,
        qualified_name: info.qualified_name.clone(),
        ak: evidence.ak.public_key().clone(),
        ak_certificate,
        clock_info: attest.clock_info,
        firmware_version: attest.firmware_version,
        verified_at: opts.at,
    })
}

/// The attestation must be a certification (`TPM_ST_ATTEST_CERTIFY`).
fn check_certify_type(attest: &Attest) -> Result<&CertifyInfo, VerifyError> {
    match &attest.attested {
        Attested::Certify(c) => Ok(c),
        Attested::Quote(_) => Err(VerifyError::TpmAttestType {
            expected: TPM_ST_ATTEST_CERTIFY,
            actual: attest.attest_type,
        }),
    }
}

/// TPMS_CERTIFY_INFO.name is the Name of the object the TPM loaded (Part 3, 18.2.1), so it
/// must be the Name of the public area presented: same key, same attributes, same policy.
fn check_certified_name(info: &CertifyInfo, certified: &Public) -> Result<(), VerifyError> {
    let name = certified.name();
    if name != info.name {
        return Err(VerifyError::TpmCertifiedName {
            expected: hex::encode(name),
            actual: hex::encode(&info.name),
        });
    }
    Ok(())
}

/// A binding key must never have existed outside this TPM and never leave it: `fixedTPM`,
/// `fixedParent`, `sensitiveDataOrigin` (Part 1, 27.2), and it must be a signing key.
fn check_certified_attributes(certified: &Public) -> Result<(), VerifyError> {
    let a = certified.attributes;
    let required = [
        (ObjectAttributes::FIXED_TPM, "fixedTPM"),
        (ObjectAttributes::FIXED_PARENT, "fixedParent"),
        (
            ObjectAttributes::SENSITIVE_DATA_ORIGIN,
            "sensitiveDataOrigin",
        ),
        (ObjectAttributes::SIGN_ENCRYPT, "sign"),
    ];
    for (bit, name) in required {
        if !a.contains(bit) {
            return Err(VerifyError::TpmKeyAttributes {
                attributes: a.0,
                detail: format!("{name} is not set"),
            });
        }
    }
    Ok(())
}
