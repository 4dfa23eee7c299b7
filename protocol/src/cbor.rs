//! The small part of CBOR (RFC 8949) the device needs to read frames and bundles byte by byte:
//! data-item heads with definite lengths. Everything else is encoded and decoded with
//! `minicbor`; this module exists so a frame can be parsed as it streams in, one byte at a time,
//! without buffering it.

/// CBOR major type 0: unsigned integer.
pub const MAJOR_UINT: u8 = 0;
/// CBOR major type 2: byte string.
pub const MAJOR_BYTES: u8 = 2;
/// CBOR major type 3: text string.
pub const MAJOR_TEXT: u8 = 3;
/// CBOR major type 4: array.
pub const MAJOR_ARRAY: u8 = 4;
/// CBOR major type 7: simple values (`null` is `0xF6`).
pub const MAJOR_SIMPLE: u8 = 7;
/// The simple value `null`.
pub const NULL: u8 = 0xF6;
/// The longest head: one initial byte and an eight-byte argument.
pub const MAX_HEAD_LEN: usize = 9;

/// A decoded head: major type and argument (the value, or the length of a string or array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Major type, 0–7.
    pub major: u8,
    /// The argument. For major type 7 this is the simple value (`null` is 22).
    pub value: u64,
}

/// Why a head could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Additional information 28–31: reserved values, or an indefinite length, which this
    /// format never uses.
    Unsupported,
}

/// Reads a head one byte at a time. Holds at most the argument read so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadReader {
    major: u8,
    pending: u8,
    value: u64,
}

impl HeadReader {
    /// A reader waiting for an initial byte.
    pub const fn new() -> Self {
        Self {
            major: 0,
            pending: 0,
            value: 0,
        }
    }

    /// Takes one byte. Returns the head once it is complete, `Ok(None)` while more bytes are
    /// needed. After a complete head the reader is ready for the next one.
    #[inline]
    pub fn push(&mut self, byte: u8) -> Result<Option<Head>, HeadError> {
        if self.pending == 0 {
            let major = byte >> 5;
            let info = byte & 0x1F;
            match info {
                0..=23 => {
                    return Ok(Some(Head {
                        major,
                        value: u64::from(info),
                    }))
                }
                24..=27 => {
                    self.major = major;
                    self.pending = 1 << (info - 24);
                    self.value = 0;
                    return Ok(None);
                }
                _ => return Err(HeadError::Unsupported),
            }
        }
        self.value = (self.value << 8) | u64::from(byte);
        self.pending -= 1;
        if self.pending == 0 {
            Ok(Some(Head {
                major: self.major,
                value: self.value,
            }))
        } else {
            Ok(None)
        }
    }

    /// Whether the reader is between heads (no byte of a head read yet).
    pub const fn is_idle(&self) -> bool {
        self.pending == 0
    }
}

/// Decodes the head at the start of `bytes`: the head and its length in bytes, or `None` if
/// `bytes` is too short or the head is unsupported.
pub fn decode_head(bytes: &[u8]) -> Option<(Head, usize)> {
    let mut r = HeadReader::new();
    for (i, b) in bytes.iter().enumerate() {
        if let Some(h) = r.push(*b).ok()? {
            return Some((h, i + 1));
        }
    }
    None
}

/// Reads whole data items from a buffer: the decoding the device needs for its small CBOR
/// messages (rejections, confirmation answers), without a general decoder.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The next head.
    pub fn head(&mut self) -> Option<Head> {
        let (head, n) = decode_head(self.bytes)?;
        self.bytes = self.bytes.get(n..)?;
        Some(head)
    }

    fn take(&mut self, len: u64) -> Option<&'a [u8]> {
        let len = usize::try_from(len).ok()?;
        let (now, rest) = self.bytes.split_at_checked(len)?;
        self.bytes = rest;
        Some(now)
    }

    /// An array head with exactly `len` items.
    pub fn array(&mut self, len: u64) -> Option<()> {
        (self.head()?
            == Head {
                major: MAJOR_ARRAY,
                value: len,
            })
        .then_some(())
    }

    /// An unsigned integer.
    pub fn uint(&mut self) -> Option<u64> {
        let h = self.head()?;
        (h.major == MAJOR_UINT).then_some(h.value)
    }

    /// A byte string, or `None` for `null`: `Some(None)`.
    pub fn bytes_or_null(&mut self) -> Option<Option<&'a [u8]>> {
        let h = self.head()?;
        match h.major {
            MAJOR_BYTES => self.take(h.value).map(Some),
            MAJOR_SIMPLE if h.value == u64::from(NULL & 0x1F) => Some(None),
            _ => None,
        }
    }

    /// A text string.
    pub fn text(&mut self) -> Option<&'a str> {
        let h = self.head()?;
        if h.major != MAJOR_TEXT {
            return None;
        }
        core::str::from_utf8(self.take(h.value)?).ok()
    }

    /// Whether every byte was read.
    pub fn is_done(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Writes the shortest head for `major` and `value` into `out`; returns its length, or `None`
/// if `out` is too short.
pub fn encode_head(major: u8, value: u64, out: &mut [u8]) -> Option<usize> {
    let m = major << 5;
    let be = value.to_be_bytes();
    let (info, arg): (u8, &[u8]) = if value < 24 {
        (value as u8, &[])
    } else if value <= 0xFF {
        (24, be.get(7..)?)
    } else if value <= 0xFFFF {
        (25, be.get(6..)?)
    } else if value <= 0xFFFF_FFFF {
        (26, be.get(4..)?)
    } else {
        (27, &be[..])
    };
    let len = 1 + arg.len();
    let dst = out.get_mut(..len)?;
    let (first, rest) = dst.split_first_mut()?;
    *first = m | info;
    crate::copy_prefix(rest, arg);
    Some(len)
}

/// The length of the shortest head for `value`.
pub const fn head_len(value: u64) -> usize {
    if value < 24 {
        1
    } else if value <= 0xFF {
        2
    } else if value <= 0xFFFF {
        3
    } else if value <= 0xFFFF_FFFF {
        5
    } else {
        9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_against_minicbor() {
        for v in [
            0u64,
            1,
            23,
            24,
            255,
            256,
            65535,
            65536,
            0xFFFF_FFFF,
            0x1_0000_0000,
            u64::MAX,
        ] {
            let mut buf = [0u8; 9];
            let n = encode_head(MAJOR_UINT, v, &mut buf).unwrap();
            assert_eq!(n, head_len(v));
            let mut d = minicbor::Decoder::new(&buf[..n]);
            assert_eq!(d.u64().unwrap(), v);
            assert_eq!(
                decode_head(&buf[..n]),
                Some((Head { major: 0, value: v }, n))
            );
            assert_eq!(decode_head(&buf[..n - 1]), None, "truncated head");
        }
    }

    #[test]
    fn rejects_indefinite() {
        let mut r = HeadReader::new();
        assert_eq!(r.push(0x5F), Err(HeadError::Unsupported));
    }
}
