//! AK enrollment by credential activation, verifier side: TPM2_MakeCredential done in
//! software (TPM 2.0 Library Part 1, rev 1.59, 24 "Credential Protection"; Part 3, 12.6).
//!
//! The verifier encrypts a secret so that only the TPM holding the EK's private key can
//! recover it, and only by naming the AK it was made for (TPM2_ActivateCredential, Part 3,
//! 12.5, checks the AK's Name through the HMAC). Getting the secret back proves the AK lives
//! in the same TPM as the EK.
//!
//! ```text
//! seed          RSA EK: random, OAEP-encrypted with label "IDENTITY\0"
//!               ECC EK: KDFe(nameAlg, ECDH(ephemeral, EK), "IDENTITY", ephemeral.x, EK.x)
//! symKey        = KDFa(nameAlg, seed, "STORAGE", AK Name, "", EK symmetric keyBits)
//! encIdentity   = AES-CFB(symKey, IV 0, TPM2B_DIGEST(secret))
//! HMACkey       = KDFa(nameAlg, seed, "INTEGRITY", "", "", digest bits)
//! outerHMAC     = HMAC(nameAlg, HMACkey, encIdentity ‖ AK Name)
//! credentialBlob (TPM2B_ID_OBJECT)         = size ‖ TPM2B_DIGEST(outerHMAC) ‖ encIdentity
//! secret         (TPM2B_ENCRYPTED_SECRET)  = size ‖ OAEP ciphertext | TPMS_ECC_POINT
//! ```

use super::alg::{HashAlg, ObjectAttributes, TPM_ALG_AES, TPM_ALG_CFB};
use super::public::{EccCurve, Public, PublicKey, Unique};
use crate::crypto::{self, EcdhCurve};
use crate::VerifyError;

/// OAEP label and KDFe `Use` for credential secrets (Part 1, B.10.3 and C.6.4), with the
/// terminating NUL the TPM includes.
pub const IDENTITY_LABEL: &[u8] = b"IDENTITY\0";
const STORAGE_LABEL: &[u8] = b"STORAGE";
const INTEGRITY_LABEL: &[u8] = b"INTEGRITY";

/// The two buffers TPM2_ActivateCredential takes, each in its TPM2B wire form (a big-endian
/// u16 size, then the bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    id_object: Vec<u8>,
    encrypted_secret: Vec<u8>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("id_object_len", &self.id_object.len())
            .field("encrypted_secret_len", &self.encrypted_secret.len())
            .finish()
    }
}

impl Credential {
    /// `TPM2B_ID_OBJECT` (credentialBlob), size prefix included.
    pub fn id_object(&self) -> &[u8] {
        &self.id_object
    }

    /// `TPM2B_ENCRYPTED_SECRET` (secret), size prefix included.
    pub fn encrypted_secret(&self) -> &[u8] {
        &self.encrypted_secret
    }

    /// The credentialBlob without its size prefix (what `tss_esapi::structures::IdObject`
    /// wraps).
    pub fn id_object_body(&self) -> &[u8] {
        self.id_object.get(2..).unwrap_or_default()
    }

    /// The secret without its size prefix (what `tss_esapi::structures::EncryptedSecret`
    /// wraps).
    pub fn encrypted_secret_body(&self) -> &[u8] {
        self.encrypted_secret.get(2..).unwrap_or_default()
    }
}

/// KDFa (Part 1, 11.4.10.2): SP 800-108 KDF in counter mode with HMAC-`hash`.
///
/// Each block is `HMAC(key, [i]32 ‖ label ‖ 00 ‖ contextU ‖ contextV ‖ [bits]32)`; as in the
/// reference implementation the 00 is not repeated when `label` already ends with one. The
/// output is `bits` long (rounded up to bytes, extra high bits of the first byte cleared).
pub fn kdfa(
    hash: HashAlg,
    key: &[u8],
    label: &[u8],
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let label_nul: &[u8] = if label.last() == Some(&0) { &[] } else { &[0] };
    counter_kdf(bits, |counter| {
        crypto::hmac(
            hash.crypto(),
            key,
            &[
                &counter.to_be_bytes(),
                label,
                label_nul,
                context_u,
                context_v,
                &bits.to_be_bytes(),
            ],
        )
    })
}

/// KDFe (Part 1, 11.4.10.3): the SP 800-56A concatenation KDF with `hash`.
///
/// Each block is `H([i]32 ‖ Z ‖ label ‖ 00 ‖ partyUInfo ‖ partyVInfo)`, the 00 handled as in
/// [`kdfa`].
pub fn kdfe(
    hash: HashAlg,
    z: &[u8],
    label: &[u8],
    party_u: &[u8],
    party_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let label_nul: &[u8] = if label.last() == Some(&0) { &[] } else { &[0] };
    counter_kdf(bits, |counter| {
        hash.digest_parts(&[
            &counter.to_be_bytes(),
            z,
            label,
            label_nul,
            party_u,
            party_v,
        ])
    })
}

fn counter_kdf(bits: u32, mut block: impl FnMut(u32) -> Vec<u8>) -> Vec<u8> {
    let len = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(len + 64);
    let mut counter = 1u32;
    while out.len() < len {
        out.extend(block(counter));
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    if !bits.is_multiple_of(8) {
        if let Some(first) = out.first_mut() {
            *first &= (1u8 << (bits % 8)) - 1;
        }
    }
    out
}

/// TPM2_MakeCredential in software, with fresh randomness from the system generator.
///
/// `ek` is the EK's public area (restricted decryption key with an AES-CFB symmetric
/// definition, as the TCG EK templates define); `ak_name` the AK's Name
/// ([`Public::name`]); `secret` at most as long as the EK nameAlg's digest (Part 3, 12.6.1).
pub fn make_credential(
    ek: &Public,
    ak_name: &[u8],
    secret: &[u8],
) -> Result<Credential, VerifyError> {
    let len = match ek.public_key()? {
        PublicKey::Rsa { .. } => ek.name_alg.digest_len(),
        PublicKey::Ecc { curve, .. } => curve.coordinate_len(),
    };
    let mut seed = vec![0u8; len];
    crypto::random_fill(&mut seed).map_err(|_| failure("the random generator failed"))?;
    make_credential_with_seed(ek, ak_name, secret, &seed)
}

/// TPM2_MakeCredential with caller-chosen randomness, for tests and known-answer vectors.
///
/// `seed` is, for an RSA EK, the seed itself (as long as the EK nameAlg's digest; RSA-OAEP
/// still draws its own padding randomness, so `encrypted_secret` differs between calls while
/// `id_object` does not); for an ECC EK, the ephemeral private scalar (one coordinate long),
/// from which the seed is derived. Never reuse a seed.
pub fn make_credential_with_seed(
    ek: &Public,
    ak_name: &[u8],
    secret: &[u8],
    seed: &[u8],
) -> Result<Credential, VerifyError> {
    let (sym_key_bits, name_alg) = check_ek(ek)?;
    check_name(ak_name)?;
    let digest_len = name_alg.digest_len();
    if secret.is_empty() || secret.len() > digest_len {
        return Err(failure(format!(
            "secret of {} bytes (1 to {digest_len}, the EK nameAlg digest size)",
            secret.len()
        )));
    }
    let (seed, encrypted) = match (ek.public_key()?, &ek.unique) {
        (key @ PublicKey::Rsa { .. }, _) => {
            if seed.len() != digest_len {
                return Err(failure(format!("RSA seed must be {digest_len} bytes")));
            }
            let encrypted =
                crypto::rsa_oaep_encrypt(&key.spki_der(), name_alg.crypto(), IDENTITY_LABEL, seed)
                    .map_err(|_| failure("RSA-OAEP encryption to the EK failed"))?;
            (seed.to_vec(), encrypted)
        }
        (PublicKey::Ecc { curve, x, y }, Unique::Ecc { x: ek_x, .. }) => {
            ecc_seed(curve, &x, &y, ek_x, name_alg, seed)?
        }
        _ => return Err(failure("EK key and public area disagree")),
    };
    let sym_key = kdfa(name_alg, &seed, STORAGE_LABEL, ak_name, &[], sym_key_bits);
    let mut enc_identity = tpm2b(secret);
    crypto::aes_cfb_zero_iv_encrypt(&sym_key, &mut enc_identity)
        .map_err(|_| failure("AES-CFB encryption failed"))?;
    let bits = (digest_len * 8) as u32;
    let hmac_key = kdfa(name_alg, &seed, INTEGRITY_LABEL, &[], &[], bits);
    let outer_hmac = crypto::hmac(name_alg.crypto(), &hmac_key, &[&enc_identity, ak_name]);
    let mut blob = tpm2b(&outer_hmac);
    blob.extend(enc_identity);
    Ok(Credential {
        id_object: tpm2b(&blob),
        encrypted_secret: tpm2b(&encrypted),
    })
}

/// ECC secret sharing (Part 1, C.6.4): one-pass ECDH with an ephemeral key, seed from KDFe
/// with the ephemeral and static x-coordinates; the secret sent is the ephemeral point.
fn ecc_seed(
    curve: EccCurve,
    x: &[u8],
    y: &[u8],
    ek_x: &[u8],
    name_alg: HashAlg,
    scalar: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), VerifyError> {
    let len = curve.coordinate_len();
    if scalar.len() != len {
        return Err(failure(format!("ECC ephemeral scalar must be {len} bytes")));
    }
    let mut ek_point = vec![4u8];
    ek_point.extend_from_slice(x);
    ek_point.extend_from_slice(y);
    let ecdh_curve = match curve {
        EccCurve::P256 => EcdhCurve::P256,
        EccCurve::P384 => EcdhCurve::P384,
    };
    let (z, ephemeral) = crypto::ecdh_ephemeral(ecdh_curve, &ek_point, Some(scalar))
        .map_err(|_| failure("ECDH with the EK failed (bad scalar or EK point)"))?;
    let eph_x = ephemeral.get(1..1 + len).unwrap_or_default();
    let eph_y = ephemeral.get(1 + len..).unwrap_or_default();
    let bits = (name_alg.digest_len() * 8) as u32;
    let seed = kdfe(name_alg, &z, IDENTITY_LABEL, eph_x, ek_x, bits);
    let mut point = tpm2b(eph_x);
    point.extend(tpm2b(eph_y));
    Ok((seed, point))
}

/// The EK must be a restricted decryption (storage) key (Part 3, 12.6.1: the handle must be a
/// storage key) with an AES-CFB symmetric definition; returns its key size and nameAlg.
fn check_ek(ek: &Public) -> Result<(u32, HashAlg), VerifyError> {
    let a = ek.attributes;
    if !a.contains(ObjectAttributes::RESTRICTED | ObjectAttributes::DECRYPT)
        || a.contains(ObjectAttributes::SIGN_ENCRYPT)
    {
        return Err(failure(format!(
            "EK attributes {:#010x} are not those of a restricted decryption key",
            a.0
        )));
    }
    match ek.parameters.symmetric() {
        Some(sym)
            if sym.algorithm == TPM_ALG_AES
                && sym.mode == TPM_ALG_CFB
                && matches!(sym.key_bits, 128 | 256) =>
        {
            Ok((u32::from(sym.key_bits), ek.name_alg))
        }
        other => Err(failure(format!(
            "EK symmetric definition {other:?} is not AES-128/256 in CFB mode"
        ))),
    }
}

/// A Name is a `TPM_ALG_ID` and a digest of that algorithm's size (Part 1, 16).
fn check_name(name: &[u8]) -> Result<(), VerifyError> {
    let ok = match name {
        [hi, lo, digest @ ..] => HashAlg::from_tpm(u16::from_be_bytes([*hi, *lo]))
            .is_some_and(|h| h.digest_len() == digest.len()),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(failure(format!("{} is not a Name", hex::encode(name))))
    }
}

/// Compares the secret an attester got from TPM2_ActivateCredential with the one made, in
/// time independent of the contents (a length difference returns early; lengths are public).
pub fn check_activated_secret(expected: &[u8], returned: &[u8]) -> Result<(), VerifyError> {
    if expected.is_empty() || !crypto::constant_time_eq(expected, returned) {
        return Err(failure("the activated secret does not match"));
    }
    Ok(())
}

fn tpm2b(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2);
    out.extend((data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

fn failure(detail: impl Into<String>) -> VerifyError {
    VerifyError::TpmCredential {
        detail: detail.into(),
    }
}
