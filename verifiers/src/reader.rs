//! A byte reader that cannot over-read: every read is bounds-checked and returns a typed
//! `parse.truncated` error naming the structure; [`Reader::finish`] rejects trailing bytes.

use crate::VerifyError;

/// Reads fields in order from a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    what: &'static str,
    data: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `data`; `what` names the structure in errors.
    pub(crate) fn new(what: &'static str, data: &'a [u8]) -> Self {
        Reader {
            what,
            data,
            offset: 0,
        }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.offset)
    }

    /// Reads `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], VerifyError> {
        let end = self.offset.checked_add(n);
        match end.and_then(|end| self.data.get(self.offset..end)) {
            Some(out) => {
                self.offset += n;
                Ok(out)
            }
            None => Err(VerifyError::Truncated {
                what: self.what,
                needed: n,
                available: self.remaining(),
            }),
        }
    }

    /// Reads a fixed-size array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], VerifyError> {
        let bytes = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Skips `n` bytes.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), VerifyError> {
        self.bytes(n).map(|_| ())
    }

    /// Reads a little-endian u32.
    pub(crate) fn u32_le(&mut self) -> Result<u32, VerifyError> {
        self.array().map(u32::from_le_bytes)
    }

    /// Reads a little-endian u64.
    pub(crate) fn u64_le(&mut self) -> Result<u64, VerifyError> {
        self.array().map(u64::from_le_bytes)
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self) -> Result<u8, VerifyError> {
        self.array().map(|[b]: [u8; 1]| b)
    }

    /// Reads a little-endian u16.
    pub(crate) fn u16_le(&mut self) -> Result<u16, VerifyError> {
        self.array().map(u16::from_le_bytes)
    }

    /// Reads a big-endian u16 (TPM 2.0 structures are big-endian).
    pub(crate) fn u16_be(&mut self) -> Result<u16, VerifyError> {
        self.array().map(u16::from_be_bytes)
    }

    /// Reads a big-endian u32.
    pub(crate) fn u32_be(&mut self) -> Result<u32, VerifyError> {
        self.array().map(u32::from_be_bytes)
    }

    /// Reads a big-endian u64.
    pub(crate) fn u64_be(&mut self) -> Result<u64, VerifyError> {
        self.array().map(u64::from_be_bytes)
    }

    /// Reads a TPM2B: a big-endian u16 size, then that many bytes. A size above `max` (the
    /// union or buffer bound TPM 2.0 Part 2 gives the type) is malformed, so no size can ask
    /// for more than the type allows; a size beyond the input is truncated.
    pub(crate) fn tpm2b(&mut self, max: usize) -> Result<&'a [u8], VerifyError> {
        let size = usize::from(self.u16_be()?);
        if size > max {
            return Err(VerifyError::malformed(
                self.what,
                format!("TPM2B size {size} exceeds the {max}-byte maximum of its type"),
            ));
        }
        self.bytes(size)
    }

    /// Ends reading: every byte must have been consumed.
    pub(crate) fn finish(self) -> Result<(), VerifyError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(VerifyError::TrailingData {
                what: self.what,
                extra,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_order_and_refuses_over_read() {
        let mut r = Reader::new("thing", &[1, 0, 0, 0, 2, 3]);
        assert_eq!(r.u32_le().unwrap(), 1);
        assert_eq!(r.bytes(1).unwrap(), &[2]);
        let err = r.u32_le().unwrap_err();
        assert_eq!(err.code(), "parse.truncated");
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.clone().finish().unwrap_err().code(), "parse.trailing");
        assert!(r.bytes(usize::MAX).is_err());
        assert_eq!(r.array::<1>().unwrap(), [3]);
        r.finish().unwrap();
    }

    #[test]
    fn big_endian_and_tpm2b() {
        let mut r = Reader::new("tpm", &[0x12, 0x34, 0, 2, 0xAA, 0xBB, 0, 9, 1]);
        assert_eq!(r.u16_be().unwrap(), 0x1234);
        assert_eq!(r.tpm2b(2).unwrap(), &[0xAA, 0xBB]);
        assert_eq!(r.clone().tpm2b(8).unwrap_err().code(), "parse.malformed");
        assert_eq!(r.tpm2b(9).unwrap_err().code(), "parse.truncated");
        let mut r = Reader::new("be", &[0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 7]);
        assert_eq!(r.u32_be().unwrap(), 256);
        assert_eq!(r.u64_be().unwrap(), 0x200);
        assert_eq!(r.u8().unwrap(), 7);
        r.finish().unwrap();
        assert_eq!(Reader::new("le", &[1, 2]).u16_le().unwrap(), 0x0201);
    }
}
