//! PCR values supplied with a quote, and the pcrDigest they must hash to.

use std::collections::BTreeMap;

use serde_json::Value;

use super::alg::HashAlg;
use super::structures::{PcrSelection, MAX_PCRS, MAX_PCR_BANKS};
use crate::VerifyError;

/// Upper bound on a PCR JSON document (8 banks × 24 SHA-512 values in hex is about 26 KiB).
pub const MAX_PCR_JSON_BYTES: usize = 64 * 1024;

/// PCR values by bank and index, each exactly as long as its bank's digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PcrValues {
    banks: BTreeMap<HashAlg, BTreeMap<u8, Vec<u8>>>,
}

impl PcrValues {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value; the index must be below 24, the value a digest of the bank's size, and
    /// the (bank, index) pair new.
    pub fn insert(&mut self, bank: HashAlg, index: u8, value: Vec<u8>) -> Result<(), VerifyError> {
        if usize::from(index) >= MAX_PCRS {
            return Err(VerifyError::malformed(
                "PCR values",
                format!("PCR index {index} (a TPM has PCRs 0 to {})", MAX_PCRS - 1),
            ));
        }
        if value.len() != bank.digest_len() {
            return Err(VerifyError::malformed(
                "PCR values",
                format!(
                    "{bank} PCR {index} is {} bytes, not {}",
                    value.len(),
                    bank.digest_len()
                ),
            ));
        }
        if !self.banks.contains_key(&bank) && self.banks.len() >= MAX_PCR_BANKS {
            return Err(VerifyError::malformed(
                "PCR values",
                format!("more than {MAX_PCR_BANKS} banks"),
            ));
        }
        let values = self.banks.entry(bank).or_default();
        if values.insert(index, value).is_some() {
            return Err(VerifyError::malformed(
                "PCR values",
                format!("{bank} PCR {index} given twice"),
            ));
        }
        Ok(())
    }

    /// The value of PCR `index` in `bank`.
    pub fn get(&self, bank: HashAlg, index: u8) -> Option<&[u8]> {
        self.banks.get(&bank)?.get(&index).map(Vec::as_slice)
    }

    /// Banks and their values.
    pub fn banks(&self) -> &BTreeMap<HashAlg, BTreeMap<u8, Vec<u8>>> {
        &self.banks
    }

    /// Whether no value is present.
    pub fn is_empty(&self) -> bool {
        self.banks.is_empty()
    }

    /// Parses PCR values from JSON, in any of these forms:
    ///
    /// - an object from PCR index (decimal string) to hex: `{"0": "c032…", "1": …}`;
    /// - an array of hex values indexed from PCR 0: `["e15c…", …]`;
    /// - either of those keyed by bank: `{"sha256": {…}, "sha1": […]}`.
    ///
    /// Without a bank name, the bank follows from the value length (20, 32, 48 or 64 bytes),
    /// which must be the same for every value.
    pub fn from_json(json: &[u8]) -> Result<Self, VerifyError> {
        if json.len() > MAX_PCR_JSON_BYTES {
            return Err(VerifyError::malformed(
                "PCR values",
                format!("{} bytes exceeds {MAX_PCR_JSON_BYTES}", json.len()),
            ));
        }
        let value: Value = serde_json::from_slice(json)
            .map_err(|e| VerifyError::malformed("PCR values", format!("not JSON: {e}")))?;
        let mut out = PcrValues::new();
        match &value {
            Value::Object(map) if map.keys().all(|k| HashAlg::from_name(k).is_some()) => {
                for (name, bank_values) in map {
                    let Some(bank) = HashAlg::from_name(name) else {
                        continue;
                    };
                    for (index, digest) in indexed_values(bank_values)? {
                        out.insert(bank, index, digest)?;
                    }
                }
            }
            Value::Object(_) | Value::Array(_) => {
                let entries = indexed_values(&value)?;
                let Some((_, first)) = entries.first() else {
                    return Ok(out);
                };
                let bank = HashAlg::from_digest_len(first.len()).ok_or_else(|| {
                    VerifyError::malformed(
                        "PCR values",
                        format!("a {}-byte value is no known bank's digest", first.len()),
                    )
                })?;
                for (index, digest) in entries {
                    out.insert(bank, index, digest)?;
                }
            }
            _ => {
                return Err(VerifyError::malformed(
                    "PCR values",
                    "expected a JSON object or array",
                ))
            }
        }
        Ok(out)
    }
}

/// `[(index, bytes)]` from an index-keyed object or an array indexed from 0.
fn indexed_values(value: &Value) -> Result<Vec<(u8, Vec<u8>)>, VerifyError> {
    let bad = |detail: String| VerifyError::malformed("PCR values", detail);
    let pairs: Vec<(String, &Value)> = match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        _ => return Err(bad("a bank's values must be an object or an array".into())),
    };
    if pairs.len() > MAX_PCRS {
        return Err(bad(format!("more than {MAX_PCRS} values in a bank")));
    }
    pairs
        .into_iter()
        .map(|(key, v)| {
            let index = key
                .parse::<u8>()
                .ok()
                .filter(|i| i.to_string() == key)
                .ok_or_else(|| bad(format!("{key:?} is not a PCR index")))?;
            let text = v
                .as_str()
                .ok_or_else(|| bad(format!("PCR {index} is not a hex string")))?;
            let bytes =
                hex::decode(text).map_err(|e| bad(format!("PCR {index} is not hex: {e}")))?;
            Ok((index, bytes))
        })
        .collect()
}

/// The digest a TPM computes for TPMS_QUOTE_INFO.pcrDigest (Part 3, 18.4.1 TPM2_Quote,
/// via `PCRComputeCurrentDigest`): `hash` over the selected values, bank by bank in the order
/// of the quote's own selection, indices ascending within a bank. Returns the digest and the
/// values that went into it.
pub(crate) fn quoted_values(
    select: &[PcrSelection],
    values: &PcrValues,
    hash: HashAlg,
) -> Result<(Vec<u8>, PcrValues), VerifyError> {
    let mut concatenated = Vec::new();
    let mut used = PcrValues::new();
    for selection in select {
        for &index in &selection.pcrs {
            let value = values.get(selection.hash, index).ok_or_else(|| {
                VerifyError::malformed(
                    "PCR values",
                    format!(
                        "the quote selects {} PCR {index}, which is not supplied",
                        selection.hash
                    ),
                )
            })?;
            concatenated.extend_from_slice(value);
            if used.get(selection.hash, index).is_none() {
                used.insert(selection.hash, index, value.to_vec())?;
            }
        }
    }
    Ok((hash.digest(&concatenated), used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms() {
        let object = br#"{"0": "0000000000000000000000000000000000000000", "10": "1111111111111111111111111111111111111111"}"#;
        let v = PcrValues::from_json(object).unwrap();
        assert_eq!(v.get(HashAlg::Sha1, 10), Some(&[0x11; 20][..]));
        let array = format!(r#"["{}", "{}"]"#, "aa".repeat(32), "bb".repeat(32));
        let v = PcrValues::from_json(array.as_bytes()).unwrap();
        assert_eq!(v.get(HashAlg::Sha256, 1), Some(&[0xbb; 32][..]));
        let keyed = format!(
            r#"{{"sha384": {{"7": "{}"}}, "sha256": ["{}"]}}"#,
            "cc".repeat(48),
            "dd".repeat(32)
        );
        let v = PcrValues::from_json(keyed.as_bytes()).unwrap();
        assert_eq!(v.get(HashAlg::Sha384, 7), Some(&[0xcc; 48][..]));
        assert_eq!(v.get(HashAlg::Sha256, 0), Some(&[0xdd; 32][..]));
        assert!(PcrValues::from_json(b"[]").unwrap().is_empty());
    }

    #[test]
    fn json_errors() {
        for bad in [
            &br#"{"24": "0000000000000000000000000000000000000000"}"#[..],
            br#"{"07": "0000000000000000000000000000000000000000"}"#,
            br#"{"0": "00"}"#,
            br#"{"0": "zz"}"#,
            br#"{"sha256": {"0": "0000000000000000000000000000000000000000"}}"#,
            br#"["0000000000000000000000000000000000000000", "00000000000000000000000000000000000000000000000000000000000000ff"]"#,
            b"42",
            b"{",
        ] {
            let err = PcrValues::from_json(bad).unwrap_err();
            assert_eq!(err.code(), "parse.malformed", "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn digest_follows_the_selection_order() {
        let mut v = PcrValues::new();
        v.insert(HashAlg::Sha1, 0, vec![1; 20]).unwrap();
        v.insert(HashAlg::Sha256, 0, vec![2; 32]).unwrap();
        v.insert(HashAlg::Sha256, 3, vec![3; 32]).unwrap();
        let sel = [
            PcrSelection {
                hash: HashAlg::Sha256,
                pcrs: vec![0, 3],
            },
            PcrSelection {
                hash: HashAlg::Sha1,
                pcrs: vec![0],
            },
        ];
        let (digest, used) = quoted_values(&sel, &v, HashAlg::Sha256).unwrap();
        let mut expected = vec![2; 32];
        expected.extend([3; 32]);
        expected.extend([1; 20]);
        assert_eq!(digest, HashAlg::Sha256.digest(&expected));
        assert_eq!(used, v);
        let missing = [PcrSelection {
            hash: HashAlg::Sha384,
            pcrs: vec![0],
        }];
        assert!(quoted_values(&missing, &v, HashAlg::Sha256).is_err());
    }
}
