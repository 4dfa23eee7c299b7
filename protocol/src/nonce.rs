//! The device-chosen nonce: 8 random bytes, written in JSON as 16 lowercase hexadecimal digits
//! and in CBOR as a byte string of length 8.

use crate::NONCE_LEN;
use core::fmt;

/// A request's nonce. Frames and rejections echo it so the device can tell its own from stale
/// or foreign ones.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Nonce(pub [u8; NONCE_LEN]);

/// The text form of a nonce: 16 hexadecimal digits.
pub type NonceHex = [u8; 2 * NONCE_LEN];

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Nonce {
    /// The 16 lowercase hexadecimal digits of this nonce.
    pub fn to_hex(&self) -> NonceHex {
        let mut out = [0u8; 2 * NONCE_LEN];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0.iter()) {
            if let [hi, lo] = pair {
                *hi = hex_digit(b >> 4);
                *lo = hex_digit(b & 0x0F);
            }
        }
        out
    }

    /// Parses exactly 16 hexadecimal digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 2 * NONCE_LEN {
            return None;
        }
        let mut out = [0u8; NONCE_LEN];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let [hi, lo] = pair else { return None };
            *o = (hex_value(*hi)? << 4) | hex_value(*lo)?;
        }
        Some(Nonce(out))
    }
}

fn hex_digit(v: u8) -> u8 {
    HEX.get(usize::from(v & 0x0F)).copied().unwrap_or(b'0')
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        f.write_str(core::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl serde::Serialize for Nonce {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hex = self.to_hex();
        let text = core::str::from_utf8(&hex).map_err(serde::ser::Error::custom)?;
        s.serialize_str(text)
    }
}

impl<'de> serde::Deserialize<'de> for Nonce {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Nonce;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("16 hexadecimal digits")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Nonce, E> {
                Nonce::from_hex(v)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let n = Nonce([0x00, 0x01, 0xab, 0xcd, 0xef, 0x10, 0x99, 0xff]);
        let hex = n.to_hex();
        assert_eq!(&hex, b"0001abcdef1099ff");
        assert_eq!(Nonce::from_hex("0001ABCDEF1099FF"), Some(n));
        assert_eq!(Nonce::from_hex("0001abcdef1099f"), None);
        assert_eq!(Nonce::from_hex("0001abcdef1099fg"), None);
    }
}
