//! Bounded CBOR decoding (RFC 8949) for attestation documents.
//!
//! [`decode`] first walks the encoding with [`item_len`], an iterative (stack-free) scanner that
//! checks every declared length against the bytes actually present, caps nesting at
//! [`MAX_DEPTH`] and rejects indefinite-length items and reserved encodings; only then does
//! `ciborium` build a [`Value`] (with its own recursion limit as a second fence). So a hostile
//! input can neither recurse deeply nor make the decoder allocate for a length it claims but
//! does not carry: every allocation is bounded by the input's size.

use ciborium::value::Value;

use crate::reader::Reader;
use crate::VerifyError;

/// Deepest nesting of arrays, maps and tags accepted. A Nitro document needs 3 (tag, COSE
/// array, header map; payload map, `pcrs` map or `cabundle` array); 8 leaves room without
/// letting an input recurse.
pub const MAX_DEPTH: usize = 8;

/// CBOR major types (RFC 8949 3.1).
mod major {
    pub const BYTES: u8 = 2;
    pub const TEXT: u8 = 3;
    pub const ARRAY: u8 = 4;
    pub const MAP: u8 = 5;
    pub const TAG: u8 = 6;
    pub const SIMPLE: u8 = 7;
}

/// One item's initial byte and argument (RFC 8949 3): `(major type, additional info, argument)`.
fn header(r: &mut Reader<'_>) -> Result<(u8, u8, u64), VerifyError> {
    let [initial] = r.array::<1>()?;
    let (major, info) = (initial >> 5, initial & 0x1f);
    let argument = match info {
        0..=23 => u64::from(info),
        24 => u64::from(u8::from_be_bytes(r.array()?)),
        25 => u64::from(u16::from_be_bytes(r.array()?)),
        26 => u64::from(u32::from_be_bytes(r.array()?)),
        27 => u64::from_be_bytes(r.array()?),
        // RFC 8949 3.2: 31 is an indefinite length (or "break"); documents are produced with
        // definite lengths only, and accepting both would give one value two encodings.
        31 => {
            return Err(VerifyError::malformed(
                "CBOR",
                format!("indefinite-length item or break (initial byte {initial:#04x})"),
            ))
        }
        // RFC 8949 3: additional information 28-30 is reserved (not well-formed).
        _ => {
            return Err(VerifyError::malformed(
                "CBOR",
                format!("reserved additional information in initial byte {initial:#04x}"),
            ))
        }
    };
    Ok((major, info, argument))
}

/// The encoded length of the one CBOR data item at the start of `input`, after checking that it
/// is well-formed, uses definite lengths only and nests at most [`MAX_DEPTH`] deep.
pub fn item_len(input: &[u8]) -> Result<usize, VerifyError> {
    let mut r = Reader::new("CBOR item", input);
    // Items still to read at each open nesting level; the bottom entry is the top-level item.
    let mut pending: Vec<u64> = Vec::with_capacity(MAX_DEPTH + 1);
    pending.push(1);
    while let Some(top) = pending.last_mut() {
        if *top == 0 {
            pending.pop();
            continue;
        }
        *top -= 1;
        let (major, info, argument) = header(&mut r)?;
        let children = match major {
            major::BYTES | major::TEXT => {
                let len = usize::try_from(argument).unwrap_or(usize::MAX);
                r.skip(len)?;
                0
            }
            major::ARRAY => argument,
            major::MAP => argument.saturating_mul(2),
            major::TAG => 1,
            // RFC 8949 3.3: a two-byte simple value below 32 is not well-formed.
            major::SIMPLE if info == 24 && argument < 32 => {
                return Err(VerifyError::malformed(
                    "CBOR",
                    format!("two-byte encoding of simple value {argument}"),
                ))
            }
            // Unsigned and negative integers, one-byte simple values and floats: no content
            // beyond the argument.
            _ => 0,
        };
        if children == 0 {
            continue;
        }
        // Every child takes at least one byte: a count beyond the remaining input is a lie.
        if children > r.remaining() as u64 {
            return Err(VerifyError::Truncated {
                what: "CBOR item",
                needed: usize::try_from(children).unwrap_or(usize::MAX),
                available: r.remaining(),
            });
        }
        if pending.len() > MAX_DEPTH {
            return Err(VerifyError::malformed(
                "CBOR",
                format!("nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        pending.push(children);
    }
    Ok(input.len() - r.remaining())
}

/// Decodes exactly one CBOR data item that fills all of `input` (`what` names it in errors).
pub fn decode(input: &[u8], what: &'static str) -> Result<Value, VerifyError> {
    let len = item_len(input)?;
    if len != input.len() {
        return Err(VerifyError::TrailingData {
            what,
            extra: input.len() - len,
        });
    }
    // The scanner already bounded the depth; ciborium's own limit (one more, since it counts
    // differently) is a second fence.
    ciborium::de::from_reader_with_recursion_limit(input, MAX_DEPTH + 1)
        .map_err(|e| VerifyError::malformed(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_items_are_measured() {
        assert_eq!(item_len(&[0x00]).unwrap(), 1);
        assert_eq!(item_len(&[0x18, 0x20, 0xff]).unwrap(), 2);
        assert_eq!(item_len(&[0x43, 1, 2, 3, 9]).unwrap(), 4);
        assert_eq!(item_len(&[0x82, 0x01, 0x62, b'h', b'i']).unwrap(), 5);
        assert_eq!(item_len(&[0xa1, 0x01, 0x80]).unwrap(), 3);
        assert_eq!(item_len(&[0xd2, 0x80]).unwrap(), 2);
        assert_eq!(item_len(&[0xf6]).unwrap(), 1);
        assert_eq!(item_len(&[0xfb, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap(), 9);
    }

    #[test]
    fn malformed_items_are_typed_errors() {
        let code = |bytes: &[u8]| item_len(bytes).unwrap_err().code();
        assert_eq!(code(&[]), "parse.truncated");
        assert_eq!(code(&[0x5f, 0x41, 0x00, 0xff]), "parse.malformed"); // indefinite bstr
        assert_eq!(code(&[0x9f, 0xff]), "parse.malformed"); // indefinite array
        assert_eq!(code(&[0xff]), "parse.malformed"); // lone break
        assert_eq!(code(&[0x1c]), "parse.malformed"); // reserved
        assert_eq!(code(&[0xf8, 0x10]), "parse.malformed"); // bad simple
        assert_eq!(
            code(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            "parse.truncated"
        );
        assert_eq!(
            code(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]),
            "parse.truncated"
        );
        assert_eq!(
            code(&[0xbb, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x00]),
            "parse.truncated"
        );
        assert_eq!(code(&[0x82, 0x01]), "parse.truncated");
    }

    #[test]
    fn depth_is_capped_without_recursion() {
        let ok = [vec![0x81; MAX_DEPTH], vec![0x00]].concat();
        assert_eq!(item_len(&ok).unwrap(), MAX_DEPTH + 1);
        decode(&ok, "test").unwrap();
        let ok_empty_innermost = [vec![0x81; MAX_DEPTH], vec![0x80]].concat();
        decode(&ok_empty_innermost, "test").unwrap();
        let deep = [vec![0x81; MAX_DEPTH + 1], vec![0x00]].concat();
        assert_eq!(item_len(&deep).unwrap_err().code(), "parse.malformed");
        let very_deep = vec![0x81; 1 << 20];
        assert_eq!(item_len(&very_deep).unwrap_err().code(), "parse.malformed");
        let tags = vec![0xd2; 1 << 16];
        assert_eq!(item_len(&tags).unwrap_err().code(), "parse.malformed");
    }

    #[test]
    fn decode_requires_exactly_one_item() {
        assert_eq!(decode(&[0x01], "x").unwrap(), Value::Integer(1.into()));
        assert_eq!(
            decode(&[0x01, 0x02], "x").unwrap_err().code(),
            "parse.trailing"
        );
        // Invalid UTF-8 in a text string: well-formed for the scanner, refused by ciborium.
        assert_eq!(
            decode(&[0x62, 0xff, 0xfe], "x").unwrap_err().code(),
            "parse.malformed"
        );
    }
}
