//! AK enrollment: KDFa / KDFe and MakeCredential against values computed independently (Python
//! `cryptography`, from TPM 2.0 Part 1 sections 11.4.10 and 24), and MakeCredential → the
//! simulated TPM's ActivateCredential for RSA and ECC EKs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::OnceLock;

use attest_fixtures::tpm::marshal::{attr, PublicArea, PublicParams, EK_AUTH_POLICY};
use attest_fixtures::tpm::{AkKind, EkKind, SimTpm, TpmKey};
use attest_verifiers::tpm::{self, HashAlg, Public};

// The script that computed the expected values, for the record:
//
//   def kdfa(key, label, cu, cv, bits):  # HMAC-SHA-256, counter mode
//       out = b''; i = 1
//       while len(out) * 8 < bits:
//           out += hmac.new(key, pack('>I', i) + label + b'\0' + cu + cv + pack('>I', bits),
//                           sha256).digest(); i += 1
//       return out[:bits // 8]
//   def kdfe(z, label, pu, pv, bits):
//       ... sha256(pack('>I', i) + z + label + b'\0' + pu + pv) ...
//   seed = bytes(range(32)); name = b'\x00\x0b' + sha256(b'ak public area')
//   secret = b'attest-broker enrollment secret!'
//   sym = kdfa(seed, b'STORAGE', name, b'', 128)
//   enc = AES-128-CFB(sym, iv=0).encrypt(pack('>H', 32) + secret)
//   mac = HMAC-SHA-256(kdfa(seed, b'INTEGRITY', b'', b'', 256), enc + name)
//   id_object = tpm2b(tpm2b(mac) + enc)
//   ECC: EK scalar 0x11 * 32, ephemeral scalar 0x22 * 32, Z = ECDH, seed = kdfe(Z, b'IDENTITY',
//   eph.x, ek.x, 256), encrypted_secret = tpm2b(tpm2b(eph.x) + tpm2b(eph.y)).

const SECRET: &[u8; 32] = b"attest-broker enrollment secret!";

fn seed() -> Vec<u8> {
    (0u8..32).collect()
}

fn ak_name() -> Vec<u8> {
    let mut name = vec![0x00, 0x0b];
    name.extend(HashAlg::Sha256.digest(b"ak public area"));
    name
}

#[test]
fn kdfa_and_kdfe_known_answers() {
    let name = ak_name();
    assert_eq!(
        hex::encode(&name),
        "000bbe28494c57c242c0529de046370ecf7c10bef5ad41c284ae8953c7db036e49b7"
    );
    assert_eq!(
        hex::encode(tpm::kdfa(
            HashAlg::Sha256,
            &seed(),
            b"STORAGE",
            &name,
            b"",
            128
        )),
        "c2dcb16ef7e6385c12ecdd8121ef3292"
    );
    assert_eq!(
        hex::encode(tpm::kdfa(
            HashAlg::Sha256,
            &seed(),
            b"INTEGRITY",
            b"",
            b"",
            256
        )),
        "bacf689f634ece301e1f1b15b072d9c87db6a69585db42b1a0cb8f73ebe2692e"
    );
    // More than two blocks; a label given with its NUL is the same label.
    let long = tpm::kdfa(HashAlg::Sha256, &seed(), b"LONG", b"u", b"v", 520);
    assert_eq!(
        hex::encode(&long),
        "28c31003542d6905b70dbed90a752a4bf7d2c0b9bf705bab8771d04b96411a61015b29377aa7f07299949bfdc0af12a74dbdecf9b58b46a261d7acd6304cf74e34"
    );
    assert_eq!(
        tpm::kdfa(HashAlg::Sha256, &seed(), b"LONG\0", b"u", b"v", 520),
        long
    );
    assert_eq!(
        hex::encode(tpm::kdfe(
            HashAlg::Sha256,
            &[7; 32],
            b"IDENTITY",
            &[1; 32],
            &[2; 32],
            256
        )),
        "4b91fa923cc2e699a33b2d6d53f2991387c50a5654f1c8807116309b42b063de"
    );
    // Bit lengths that are not whole bytes keep only the low bits of the first byte.
    let odd = tpm::kdfa(HashAlg::Sha256, &seed(), b"STORAGE", &name, b"", 12);
    assert_eq!(odd.len(), 2);
    assert!(odd[0] < 0x10);
}

fn sim() -> &'static SimTpm {
    static SIM: OnceLock<SimTpm> = OnceLock::new();
    SIM.get_or_init(|| SimTpm::new().unwrap())
}

fn ek(sim: &SimTpm, kind: EkKind) -> Public {
    Public::parse(&sim.ek_public(kind).unwrap().marshal()).unwrap()
}

#[test]
fn rsa_id_object_matches_the_independent_computation() {
    let ek = ek(sim(), EkKind::Rsa2048);
    let cred = tpm::make_credential_with_seed(&ek, &ak_name(), SECRET, &seed()).unwrap();
    assert_eq!(
        hex::encode(cred.id_object()),
        "0044002098217fd0c67b4f852089f5d87742d5784cf8d69ccbe4ef962ee6721a63449dd9acba21d6612253672088addc8fa8c45a00f1b0cd620b3e85f45a79242c3859bfb43a"
    );
    assert_eq!(cred.id_object_body(), &cred.id_object()[2..]);
    // The seed is RSA-OAEP encrypted to the 2048-bit EK: 256 bytes behind the size.
    assert_eq!(cred.encrypted_secret()[..2], [0x01, 0x00]);
    assert_eq!(cred.encrypted_secret_body().len(), 256);
}

#[test]
fn ecc_credential_matches_the_independent_computation() {
    let x =
        hex::decode("0217e617f0b6443928278f96999e69a23a4f2c152bdf6d6cdf66e5b80282d4ed").unwrap();
    let y =
        hex::decode("194a7debcb97712d2dda3ca85aa8765a56f45fc758599652f2897c65306e5794").unwrap();
    let area = PublicArea {
        attributes: attr::EK,
        auth_policy: EK_AUTH_POLICY.to_vec(),
        params: PublicParams::EccP256 {
            symmetric_aes_bits: Some(128),
            scheme: None,
            x,
            y,
        },
    };
    let ek = Public::parse(&area.marshal()).unwrap();
    let cred = tpm::make_credential_with_seed(&ek, &ak_name(), SECRET, &[0x22; 32]).unwrap();
    assert_eq!(
        hex::encode(cred.id_object()),
        "00440020bd16907992d84f6d698f7acbb3ccc756c49db7e8757166cd7dffcd56c335febb7648eaefe317ab0ed3d537da985d451510a31770359dc5e646eb7c2b1627cb3a0667"
    );
    assert_eq!(
        hex::encode(cred.encrypted_secret()),
        "00440020d65a93977caa3d1b081852ff57a79e465f1660577304baead505dd3a48589cf3002050185e895372df6221ea3a137557e473fddb6755f05bd507c3c533fce9c91285"
    );
}

fn activate(
    sim: &SimTpm,
    kind: EkKind,
    made_for: &TpmKey,
    activated: &TpmKey,
) -> Result<Vec<u8>, attest_fixtures::FixtureError> {
    let ek = ek(sim, kind);
    let cred = tpm::make_credential(&ek, &made_for.name(), SECRET).unwrap();
    sim.activate_credential(kind, activated, cred.id_object(), cred.encrypted_secret())
}

#[test]
fn simulated_tpm_activates_what_make_credential_makes() {
    let sim = sim();
    for ak_kind in [AkKind::Rsa2048, AkKind::EccP256] {
        let ak = sim.create_ak(ak_kind).unwrap();
        let other_ak = sim.create_ak(ak_kind).unwrap();
        for kind in [EkKind::Rsa2048, EkKind::EccP256] {
            let secret = activate(sim, kind, &ak, &ak).unwrap();
            assert_eq!(secret, SECRET);
            tpm::check_activated_secret(SECRET, &secret).unwrap();
            // Made for one AK, activated with another: the TPM's integrity check fails.
            assert!(activate(sim, kind, &ak, &other_ak).is_err());
        }
        // An RSA EK's credential presented to the ECC EK, and the reverse.
        let rsa_cred = tpm::make_credential(&ek(sim, EkKind::Rsa2048), &ak.name(), SECRET).unwrap();
        assert!(sim
            .activate_credential(
                EkKind::EccP256,
                &ak,
                rsa_cred.id_object(),
                rsa_cred.encrypted_secret()
            )
            .is_err());
    }
}

#[test]
fn another_tpm_cannot_activate() {
    let sim = sim();
    let other = SimTpm::new().unwrap();
    let ak = other.create_ak(AkKind::Rsa2048).unwrap();
    for kind in [EkKind::Rsa2048, EkKind::EccP256] {
        let cred = tpm::make_credential(&ek(sim, kind), &ak.name(), SECRET).unwrap();
        assert!(other
            .activate_credential(kind, &ak, cred.id_object(), cred.encrypted_secret())
            .is_err());
        // Same credential, right TPM: fine (the AK object is public data).
        let secret = sim
            .activate_credential(kind, &ak, cred.id_object(), cred.encrypted_secret())
            .unwrap();
        assert_eq!(secret, SECRET);
    }
}

#[test]
fn fresh_randomness_every_time_and_secret_checks() {
    let ek = ek(sim(), EkKind::EccP256);
    let a = tpm::make_credential(&ek, &ak_name(), SECRET).unwrap();
    let b = tpm::make_credential(&ek, &ak_name(), SECRET).unwrap();
    assert_ne!(a.id_object(), b.id_object());
    assert_ne!(a.encrypted_secret(), b.encrypted_secret());
    assert_eq!(
        tpm::check_activated_secret(SECRET, b"attest-broker enrollment secret?")
            .unwrap_err()
            .code(),
        "tpm.credential"
    );
    assert_eq!(
        tpm::check_activated_secret(SECRET, &SECRET[..31])
            .unwrap_err()
            .code(),
        "tpm.credential"
    );
    assert_eq!(
        tpm::check_activated_secret(b"", b"").unwrap_err().code(),
        "tpm.credential"
    );
    assert!(!format!("{a:?}").contains(&hex::encode(&a.id_object()[..8])));
}

#[test]
fn make_credential_refuses_bad_inputs() {
    let sim = sim();
    let ek_rsa = ek(sim, EkKind::Rsa2048);
    let name = ak_name();
    let code = |r: Result<tpm::Credential, attest_verifiers::VerifyError>| r.unwrap_err().code();
    assert_eq!(
        code(tpm::make_credential(&ek_rsa, &name, &[0; 33])),
        "tpm.credential"
    );
    assert_eq!(
        code(tpm::make_credential(&ek_rsa, &name, &[])),
        "tpm.credential"
    );
    assert_eq!(
        code(tpm::make_credential(&ek_rsa, &name[..20], SECRET)),
        "tpm.credential"
    );
    assert_eq!(
        code(tpm::make_credential_with_seed(
            &ek_rsa, &name, SECRET, &[0; 31]
        )),
        "tpm.credential"
    );
    // An AK is not a storage key.
    let ak = sim.create_ak(AkKind::Rsa2048).unwrap();
    let ak_public = Public::parse(&ak.tpmt_public()).unwrap();
    assert_eq!(
        code(tpm::make_credential(&ak_public, &name, SECRET)),
        "tpm.credential"
    );
    // An ECC scalar that is not one (zero) is refused, not panicking.
    let ek_ecc = ek(sim, EkKind::EccP256);
    assert_eq!(
        code(tpm::make_credential_with_seed(
            &ek_ecc, &name, SECRET, &[0; 32]
        )),
        "tpm.credential"
    );
}
