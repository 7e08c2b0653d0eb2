//! Parsers for the TPM 2.0 structures an attestation carries: `TPMS_ATTEST` with its quote
//! and certify bodies, and `TPMT_SIGNATURE` (TPM 2.0 Library Part 2, rev 1.59). Everything is
//! big-endian; every `TPM2B` size is checked against the bound of its type and against the
//! input left, and a structure must use its whole input.

use super::alg::{
    HashAlg, TPM_ALG_ECDSA, TPM_ALG_RSAPSS, TPM_ALG_RSASSA, TPM_GENERATED_VALUE,
    TPM_ST_ATTEST_CERTIFY, TPM_ST_ATTEST_QUOTE,
};
use crate::reader::Reader;
use crate::{Tee, VerifyError};

/// `sizeof(TPMU_HA)`: the largest digest (SHA-512), bound of `TPM2B_DIGEST` (Part 2, 10.4.2).
pub const MAX_DIGEST_BYTES: usize = 64;
/// `sizeof(TPMT_HA)`: an algorithm ID and the largest digest, bound of `TPM2B_DATA` (10.4.3)
/// and of `TPM2B_NAME` (10.5.3, the larger of a TPMT_HA and a handle).
pub const MAX_NAME_BYTES: usize = 2 + MAX_DIGEST_BYTES;
/// `MAX_RSA_KEY_BYTES` for RSA-4096, bound of `TPM2B_PUBLIC_KEY_RSA` (11.2.4.5).
pub const MAX_RSA_KEY_BYTES: usize = 512;
/// `MAX_ECC_KEY_BYTES` for P-521, bound of `TPM2B_ECC_PARAMETER` (11.2.5.1).
pub const MAX_ECC_KEY_BYTES: usize = 66;
/// PCRs per bank: the PC Client Platform TPM Profile (PTP) 1.05, 4.3 requires 24, and
/// `PCR_SELECT_MAX` = 24 / 8 = 3 bytes of selection bitmap.
pub const MAX_PCRS: usize = 24;
/// Bytes in a `TPMS_PCR_SELECTION` bitmap (Part 2, 10.6.2 `sizeofSelect`).
pub const MAX_PCR_SELECT_BYTES: usize = MAX_PCRS / 8;
/// Banks in a `TPML_PCR_SELECTION` (Part 2, 10.9.7: at most `HASH_COUNT`). We allow 8, more
/// than the 5 hash algorithms any TPM implements, so a selection stays small.
pub const MAX_PCR_BANKS: usize = 8;

/// `TPMS_CLOCK_INFO` (Part 2, 10.11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockInfo {
    /// Milliseconds the TPM has been powered since its last Clear.
    pub clock: u64,
    /// TPM Resets since the last Clear.
    pub reset_count: u32,
    /// TPM Restarts or Resumes since the last Reset.
    pub restart_count: u32,
    /// Whether `clock` cannot have been reported before (no rollback since it was saved).
    pub safe: bool,
}

/// `TPMS_PCR_SELECTION` (Part 2, 10.6.2): a bank and the PCRs selected in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrSelection {
    /// The PCR bank.
    pub hash: HashAlg,
    /// Selected PCR indices, ascending (the order the TPM concatenates them in).
    pub pcrs: Vec<u8>,
}

/// `TPMS_QUOTE_INFO` (Part 2, 10.12.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteInfo {
    /// The selection, in the order the TPM hashed the PCRs.
    pub pcr_select: Vec<PcrSelection>,
    /// Digest of the selected PCR values, with the signing scheme's hash.
    pub pcr_digest: Vec<u8>,
}

/// `TPMS_CERTIFY_INFO` (Part 2, 10.12.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifyInfo {
    /// Name of the certified object.
    pub name: Vec<u8>,
    /// Qualified Name of the certified object.
    pub qualified_name: Vec<u8>,
}

/// The `attested` union of a TPMS_ATTEST, for the two types this crate verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attested {
    /// `TPM_ST_ATTEST_QUOTE`.
    Quote(QuoteInfo),
    /// `TPM_ST_ATTEST_CERTIFY`.
    Certify(CertifyInfo),
}

/// `TPMS_ATTEST` (Part 2, 10.12.12), the structure a TPM signs in TPM2_Quote and TPM2_Certify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attest {
    /// `TPM_ST_ATTEST_QUOTE` or `TPM_ST_ATTEST_CERTIFY`.
    pub attest_type: u16,
    /// Qualified Name of the signing key.
    pub qualified_signer: Vec<u8>,
    /// The caller's qualifying data (the verifier's nonce).
    pub extra_data: Vec<u8>,
    /// The TPM's clock.
    pub clock_info: ClockInfo,
    /// Vendor-specific firmware version.
    pub firmware_version: u64,
    /// The type-specific body.
    pub attested: Attested,
}

impl Attest {
    /// Parses a marshalled TPMS_ATTEST (exactly; trailing bytes are an error).
    pub fn parse(data: &[u8]) -> Result<Self, VerifyError> {
        let mut r = Reader::new("TPMS_ATTEST", data);
        let magic = r.u32_be()?;
        if magic != TPM_GENERATED_VALUE {
            return Err(VerifyError::malformed(
                "TPMS_ATTEST",
                format!("magic {magic:#010x} is not TPM_GENERATED_VALUE"),
            ));
        }
        let attest_type = r.u16_be()?;
        let qualified_signer = r.tpm2b(MAX_NAME_BYTES)?.to_vec();
        let extra_data = r.tpm2b(MAX_NAME_BYTES)?.to_vec();
        let clock_info = clock_info(&mut r)?;
        let firmware_version = r.u64_be()?;
        let attested = match attest_type {
            TPM_ST_ATTEST_QUOTE => Attested::Quote(QuoteInfo {
                pcr_select: pcr_selection_list(&mut r)?,
                pcr_digest: r.tpm2b(MAX_DIGEST_BYTES)?.to_vec(),
            }),
            TPM_ST_ATTEST_CERTIFY => Attested::Certify(CertifyInfo {
                name: r.tpm2b(MAX_NAME_BYTES)?.to_vec(),
                qualified_name: r.tpm2b(MAX_NAME_BYTES)?.to_vec(),
            }),
            other => {
                return Err(VerifyError::malformed(
                    "TPMS_ATTEST",
                    format!(
                        "attestation type {other:#06x} is not supported (quote {TPM_ST_ATTEST_QUOTE:#06x}, certify {TPM_ST_ATTEST_CERTIFY:#06x})"
                    ),
                ))
            }
        };
        r.finish()?;
        Ok(Attest {
            attest_type,
            qualified_signer,
            extra_data,
            clock_info,
            firmware_version,
            attested,
        })
    }
}

fn clock_info(r: &mut Reader<'_>) -> Result<ClockInfo, VerifyError> {
    let clock = r.u64_be()?;
    let reset_count = r.u32_be()?;
    let restart_count = r.u32_be()?;
    // TPMI_YES_NO (Part 2, 9.2): only 0 and 1 are values.
    let safe = match r.u8()? {
        0 => false,
        1 => true,
        other => {
            return Err(VerifyError::malformed(
                "TPMS_CLOCK_INFO",
                format!("safe is {other}, not YES or NO"),
            ))
        }
    };
    Ok(ClockInfo {
        clock,
        reset_count,
        restart_count,
        safe,
    })
}

/// `TPML_PCR_SELECTION`: a count, then that many `TPMS_PCR_SELECTION`.
fn pcr_selection_list(r: &mut Reader<'_>) -> Result<Vec<PcrSelection>, VerifyError> {
    let count = r.u32_be()?;
    if count as usize > MAX_PCR_BANKS {
        return Err(VerifyError::malformed(
            "TPML_PCR_SELECTION",
            format!("{count} banks exceeds the limit of {MAX_PCR_BANKS}"),
        ));
    }
    let mut banks = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let alg = r.u16_be()?;
        let size = usize::from(r.u8()?);
        if size > MAX_PCR_SELECT_BYTES {
            return Err(VerifyError::malformed(
                "TPMS_PCR_SELECTION",
                format!("sizeofSelect {size} exceeds {MAX_PCR_SELECT_BYTES} ({MAX_PCRS} PCRs)"),
            ));
        }
        let bitmap = r.bytes(size)?;
        let hash = HashAlg::from_tpm(alg).ok_or_else(|| VerifyError::UnsupportedAlgorithm {
            tee: Tee::Tpm,
            detail: format!("PCR bank {alg:#06x}"),
        })?;
        let pcrs = bitmap
            .iter()
            .enumerate()
            .flat_map(|(byte, bits)| {
                (0..8u8)
                    .filter(move |bit| bits >> bit & 1 == 1)
                    .map(move |bit| (byte as u8) * 8 + bit)
            })
            .collect();
        banks.push(PcrSelection { hash, pcrs });
    }
    Ok(banks)
}

/// A signature over a TPMS_ATTEST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// RSASSA-PKCS1-v1_5 (`TPM_ALG_RSASSA`).
    RsaSsa {
        /// Hash of the signed message.
        hash: HashAlg,
        /// The signature, as long as the modulus.
        sig: Vec<u8>,
    },
    /// RSASSA-PSS (`TPM_ALG_RSAPSS`); TPMs use a salt as long as the hash (Part 1, B.7).
    RsaPss {
        /// Hash of the signed message and of MGF1.
        hash: HashAlg,
        /// The signature, as long as the modulus.
        sig: Vec<u8>,
    },
    /// ECDSA (`TPM_ALG_ECDSA`).
    Ecdsa {
        /// Hash of the signed message.
        hash: HashAlg,
        /// r, big-endian.
        r: Vec<u8>,
        /// s, big-endian.
        s: Vec<u8>,
    },
}

/// Sizes of bare RSA signatures (RSA-2048, -3072, -4096 moduli) accepted by
/// [`Signature::detect`].
pub const BARE_RSA_SIGNATURE_LENGTHS: [usize; 3] = [256, 384, 512];

impl Signature {
    /// Parses a marshalled `TPMT_SIGNATURE` (Part 2, 11.3.4), exactly.
    pub fn parse(data: &[u8]) -> Result<Self, VerifyError> {
        let mut r = Reader::new("TPMT_SIGNATURE", data);
        let sig_alg = r.u16_be()?;
        let hash_id = r.u16_be()?;
        let unsupported = |detail: String| VerifyError::UnsupportedAlgorithm {
            tee: Tee::Tpm,
            detail,
        };
        let sig = match sig_alg {
            TPM_ALG_RSASSA | TPM_ALG_RSAPSS => {
                let body = r.tpm2b(MAX_RSA_KEY_BYTES)?.to_vec();
                (sig_alg, body, Vec::new())
            }
            TPM_ALG_ECDSA => {
                let sig_r = r.tpm2b(MAX_ECC_KEY_BYTES)?.to_vec();
                let sig_s = r.tpm2b(MAX_ECC_KEY_BYTES)?.to_vec();
                (sig_alg, sig_r, sig_s)
            }
            other => return Err(unsupported(format!("signature algorithm {other:#06x}"))),
        };
        r.finish()?;
        let hash = HashAlg::from_tpm(hash_id)
            .ok_or_else(|| unsupported(format!("signature hash {hash_id:#06x}")))?;
        Ok(match sig {
            (TPM_ALG_RSASSA, sig, _) => Signature::RsaSsa { hash, sig },
            (TPM_ALG_RSAPSS, sig, _) => Signature::RsaPss { hash, sig },
            (_, r, s) => Signature::Ecdsa { hash, r, s },
        })
    }

    /// A bare RSASSA-PKCS1-v1_5 signature, as Azure's vTPM evidence carries it.
    pub fn rsassa_raw(sig: &[u8], hash: HashAlg) -> Self {
        Signature::RsaSsa {
            hash,
            sig: sig.to_vec(),
        }
    }

    /// A `TPMT_SIGNATURE`, or a bare RSASSA-PKCS1-v1_5 / SHA-256 signature when the input is
    /// exactly as long as an RSA-2048/3072/4096 signature ([`BARE_RSA_SIGNATURE_LENGTHS`]). The
    /// lengths cannot collide: an RSA `TPMT_SIGNATURE` is its modulus plus 6 bytes, an ECDSA
    /// one at most 2 × 48 + 8.
    pub fn detect(data: &[u8]) -> Result<Self, VerifyError> {
        if BARE_RSA_SIGNATURE_LENGTHS.contains(&data.len()) {
            Ok(Signature::rsassa_raw(data, HashAlg::Sha256))
        } else {
            Signature::parse(data)
        }
    }

    /// The hash the signature is over; also the hash of a quote's pcrDigest.
    pub fn hash(&self) -> HashAlg {
        match self {
            Signature::RsaSsa { hash, .. }
            | Signature::RsaPss { hash, .. }
            | Signature::Ecdsa { hash, .. } => *hash,
        }
    }

    /// The `TPM_ALG_ID` of the scheme.
    pub fn scheme_id(&self) -> u16 {
        match self {
            Signature::RsaSsa { .. } => TPM_ALG_RSASSA,
            Signature::RsaPss { .. } => TPM_ALG_RSAPSS,
            Signature::Ecdsa { .. } => TPM_ALG_ECDSA,
        }
    }

    /// The scheme's name in claims (`rsassa`, `rsapss`, `ecdsa`).
    pub fn scheme_name(&self) -> &'static str {
        match self {
            Signature::RsaSsa { .. } => "rsassa",
            Signature::RsaPss { .. } => "rsapss",
            Signature::Ecdsa { .. } => "ecdsa",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(pcr_select: &[u8], digest: &[u8]) -> Vec<u8> {
        let mut q = hex::decode("ff5443478018").unwrap();
        q.extend([0, 2, 0xAB, 0xCD]); // qualifiedSigner
        q.extend([0, 2, 0x90, 0x09]); // extraData
        q.extend([0; 8]); // clock
        q.extend([0, 0, 0, 1, 0, 0, 0, 2, 1]); // reset, restart, safe
        q.extend(0x2016_0511_0016_2800u64.to_be_bytes());
        q.extend(pcr_select);
        q.extend((digest.len() as u16).to_be_bytes());
        q.extend(digest);
        q
    }

    #[test]
    fn parses_a_quote_and_its_selection_in_order() {
        let sel = [0, 0, 0, 2, 0, 0x0b, 3, 0x81, 0, 0x80, 0, 0x04, 1, 0x01];
        let a = Attest::parse(&quote(&sel, &[7; 32])).unwrap();
        assert_eq!(a.attest_type, TPM_ST_ATTEST_QUOTE);
        assert_eq!(a.extra_data, [0x90, 0x09]);
        assert_eq!(a.qualified_signer, [0xAB, 0xCD]);
        assert!(a.clock_info.safe);
        assert_eq!(a.clock_info.restart_count, 2);
        let Attested::Quote(q) = a.attested else {
            panic!("not a quote")
        };
        assert_eq!(q.pcr_select[0].hash, HashAlg::Sha256);
        assert_eq!(q.pcr_select[0].pcrs, [0, 7, 23]);
        assert_eq!(q.pcr_select[1].hash, HashAlg::Sha1);
        assert_eq!(q.pcr_select[1].pcrs, [0]);
        assert_eq!(q.pcr_digest, [7; 32]);
    }

    #[test]
    fn rejects_bad_magic_type_sizes_and_trailing_bytes() {
        let sel = [0, 0, 0, 1, 0, 0x0b, 3, 0xff, 0xff, 0xff];
        let good = quote(&sel, &[1; 32]);
        Attest::parse(&good).unwrap();
        let mut bad = good.clone();
        bad[0] = 0;
        assert_eq!(Attest::parse(&bad).unwrap_err().code(), "parse.malformed");
        let mut bad = good.clone();
        bad[5] = 0x14; // TPM_ST_ATTEST_NV
        assert_eq!(Attest::parse(&bad).unwrap_err().code(), "parse.malformed");
        let mut bad = good.clone();
        bad.push(0);
        assert_eq!(Attest::parse(&bad).unwrap_err().code(), "parse.trailing");
        assert_eq!(
            Attest::parse(&good[..good.len() - 1]).unwrap_err().code(),
            "parse.truncated"
        );
        // A fourth selection byte (PCRs 24..31) is beyond the PC Client profile.
        let sel4 = [0, 0, 0, 1, 0, 0x0b, 4, 0xff, 0xff, 0xff, 0];
        assert_eq!(
            Attest::parse(&quote(&sel4, &[1; 32])).unwrap_err().code(),
            "parse.malformed"
        );
        let nine = [0, 0, 0, 9];
        assert_eq!(
            Attest::parse(&quote(&nine, &[1; 32])).unwrap_err().code(),
            "parse.malformed"
        );
        let sm3 = [0, 0, 0, 1, 0, 0x12, 3, 1, 0, 0];
        assert_eq!(
            Attest::parse(&quote(&sm3, &[1; 32])).unwrap_err().code(),
            "tpm.algorithm"
        );
        // safe = 2
        let mut bad = good.clone();
        bad[30] = 2;
        assert_eq!(Attest::parse(&bad).unwrap_err().code(), "parse.malformed");
    }

    #[test]
    fn signatures_parse_and_detect() {
        let mut rsa = vec![0x00, 0x14, 0x00, 0x0b, 0x01, 0x00];
        rsa.extend([0x5A; 256]);
        let sig = Signature::parse(&rsa).unwrap();
        assert_eq!(sig.hash(), HashAlg::Sha256);
        assert_eq!(sig.scheme_name(), "rsassa");
        assert_eq!(Signature::detect(&rsa).unwrap(), sig);
        assert_eq!(
            Signature::detect(&rsa[6..]).unwrap(),
            Signature::RsaSsa {
                hash: HashAlg::Sha256,
                sig: vec![0x5A; 256]
            }
        );
        let ecdsa = [0x00, 0x18, 0x00, 0x0b, 0, 2, 1, 2, 0, 1, 3];
        assert_eq!(
            Signature::parse(&ecdsa).unwrap(),
            Signature::Ecdsa {
                hash: HashAlg::Sha256,
                r: vec![1, 2],
                s: vec![3]
            }
        );
        assert_eq!(
            Signature::parse(&[0x00, 0x1a, 0, 0x0b]).unwrap_err().code(),
            "tpm.algorithm"
        );
        assert_eq!(
            Signature::parse(&[0x00, 0x14, 0, 0x0b, 2, 1])
                .unwrap_err()
                .code(),
            "parse.malformed"
        );
        assert_eq!(
            Signature::parse(&rsa[..100]).unwrap_err().code(),
            "parse.truncated"
        );
    }
}
