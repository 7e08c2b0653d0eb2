//! The EK's authorization policy (TCG EK Credential Profile 2.5, B.3 and B.6).
//!
//! An EK has no usable authValue (`userWithAuth` clear in the low-range templates), so
//! every use of it as a parent or as the decryption key of TPM2_ActivateCredential needs a
//! policy session in which the endorsement hierarchy's authorization was shown:
//!
//! ```text
//! PolicyA = PolicySecret(TPM_RH_ENDORSEMENT)                       low range (SHA-256) EKs
//! PolicyB = PolicyOR(PolicyA, PolicyC)   PolicyC = PolicyAuthorizeNV  high range EKs
//! ```
//!
//! The digests are computed here rather than copied, and the session is matched to the EK's
//! own authPolicy, so an EK with any other policy is refused instead of failing inside the
//! TPM.

use attest_verifiers::tpm::{HashAlg, TPM_RH_ENDORSEMENT};

/// `TPM_CC_PolicySecret` (Part 2, 6.5.2).
const TPM_CC_POLICY_SECRET: u32 = 0x0000_0151;
/// `TPM_CC_PolicyOR`.
const TPM_CC_POLICY_OR: u32 = 0x0000_0171;

/// PolicyC (PolicyAuthorizeNV of NV index 0x01C07F01) with SHA-384 (EK Credential Profile
/// 2.5, B.6.3). It depends on the NV index's public area, so it is a published constant.
const POLICY_C_SHA384: [u8; 48] = [
    0xd6, 0x03, 0x2c, 0xe6, 0x1f, 0x2f, 0xb3, 0xc2, 0x40, 0xeb, 0x3c, 0xf6, 0xa3, 0x32, 0x37, 0xef,
    0x2b, 0x6a, 0x16, 0xf4, 0x29, 0x3c, 0x22, 0xb4, 0x55, 0xe2, 0x61, 0xcf, 0xfd, 0x21, 0x7a, 0xd5,
    0xb4, 0x94, 0x7c, 0x2d, 0x73, 0xe6, 0x30, 0x05, 0xee, 0xd2, 0xdc, 0x2b, 0x35, 0x93, 0xd1, 0x65,
];
/// PolicyC with SHA-512 (B.6.4).
const POLICY_C_SHA512: [u8; 64] = [
    0x58, 0x9e, 0xe1, 0xe1, 0x46, 0x54, 0x47, 0x16, 0xe8, 0xde, 0xaf, 0xe6, 0xdb, 0x24, 0x7b, 0x01,
    0xb8, 0x1e, 0x9f, 0x9c, 0x7d, 0xd1, 0x6b, 0x81, 0x4a, 0xa1, 0x59, 0x13, 0x87, 0x49, 0x10, 0x5f,
    0xba, 0x53, 0x88, 0xdd, 0x1d, 0xea, 0x70, 0x2f, 0x35, 0x24, 0x0c, 0x18, 0x49, 0x33, 0x12, 0x1e,
    0x2c, 0x61, 0xb8, 0xf5, 0x0d, 0x3e, 0xf9, 0x13, 0x93, 0xa4, 0x9a, 0x38, 0xc3, 0xf7, 0x3f, 0xc8,
];

/// How to satisfy an EK's policy in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EkPolicy {
    /// PolicySecret(endorsement) alone.
    PolicyA,
    /// PolicySecret(endorsement), then PolicyOR over these digests.
    PolicyB(Vec<Vec<u8>>),
}

/// PolicyA for `hash`: PolicySecret with the endorsement hierarchy and an empty policyRef
/// (Part 3, 23.4: `H(H(0… ‖ TPM_CC_PolicySecret ‖ authName) ‖ policyRef)`).
pub(crate) fn policy_a(hash: HashAlg) -> Vec<u8> {
    let zeros = vec![0u8; hash.digest_len()];
    let mut first = zeros;
    first.extend(TPM_CC_POLICY_SECRET.to_be_bytes());
    first.extend(TPM_RH_ENDORSEMENT.to_be_bytes());
    hash.digest(&hash.digest(&first))
}

/// PolicyOR of `branches` from a fresh session (Part 3, 23.6:
/// `H(0… ‖ TPM_CC_PolicyOR ‖ digests)`).
pub(crate) fn policy_or(hash: HashAlg, branches: &[Vec<u8>]) -> Vec<u8> {
    let mut data = vec![0u8; hash.digest_len()];
    data.extend(TPM_CC_POLICY_OR.to_be_bytes());
    for branch in branches {
        data.extend_from_slice(branch);
    }
    hash.digest(&data)
}

/// The session steps that produce `auth_policy` under `name_alg`, if it is PolicyA or PolicyB.
pub(crate) fn ek_policy(name_alg: HashAlg, auth_policy: &[u8]) -> Option<EkPolicy> {
    let a = policy_a(name_alg);
    if auth_policy == a.as_slice() {
        return Some(EkPolicy::PolicyA);
    }
    let c: &[u8] = match name_alg {
        HashAlg::Sha384 => &POLICY_C_SHA384,
        HashAlg::Sha512 => &POLICY_C_SHA512,
        HashAlg::Sha1 | HashAlg::Sha256 => return None,
    };
    let branches = vec![a, c.to_vec()];
    (policy_or(name_alg, &branches) == auth_policy).then_some(EkPolicy::PolicyB(branches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ek_policies() {
        // EK Credential Profile 2.5, B.3.2 (PolicyA SHA-256) and B.6 (PolicyB SHA-384/512).
        assert_eq!(
            hex::encode(policy_a(HashAlg::Sha256)),
            "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa"
        );
        assert_eq!(
            hex::encode(policy_a(HashAlg::Sha384)),
            "8bbf2266537c171cb56e403c4dc1d4b64f432611dc386e6f532050c3278c930e\
             143e8bb1133824ccb431053871c6db53"
        );
        let b384 = "b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419ca\
                    cb47ba09699646150f9fc000f3f80e12";
        let b512 = "b8221ca69e8550a4914de3faa6a18c072cc01208073a928d5d66d59ef79e49a4\
                    29c41a6b269571d57edb25fbdb1838425608b413cd616a5f6db5b6071af99bea";
        assert_eq!(
            ek_policy(
                HashAlg::Sha256,
                &hex::decode("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa")
                    .unwrap()
            ),
            Some(EkPolicy::PolicyA)
        );
        for (hash, b) in [(HashAlg::Sha384, b384), (HashAlg::Sha512, b512)] {
            let policy = ek_policy(hash, &hex::decode(b).unwrap());
            assert!(matches!(policy, Some(EkPolicy::PolicyB(ref v)) if v.len() == 2));
        }
        assert_eq!(ek_policy(HashAlg::Sha256, &[0; 32]), None);
        assert_eq!(ek_policy(HashAlg::Sha384, &[0; 48]), None);
    }
}
