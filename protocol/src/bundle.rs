//! The bundle: the credentials a transfer delivers, as one CBOR array of five items.
//!
//! | # | item | CBOR |
//! | --- | --- | --- |
//! | 0 | thing name (the device's client id from now on) | text string |
//! | 1 | certificate id (64 hex digits on AWS IoT) | text string |
//! | 2 | device certificate: PEM, `\n` line endings, then one NUL byte | byte string |
//! | 3 | private key, same form (key mode), or `null` (CSR mode) | byte string or `null` |
//! | 4 | server CA certificate, same form, or `null` | byte string or `null` |
//!
//! Heads are shortest-form and definite-length and nothing else is allowed, so the same inputs
//! always give the same bytes. The NUL is inside the byte string: each credential is
//! contiguous, and its span (offset, length including the NUL) can be handed to mbedTLS as is,
//! or with length − 1 to a modem that does not want the NUL.
//!
//! [`encode`] writes a bundle; [`locate`] finds the spans of one stored elsewhere (in flash),
//! reading only heads and the final byte of each PEM through a callback.

use crate::cbor::{
    decode_head, encode_head, MAJOR_ARRAY, MAJOR_BYTES, MAJOR_SIMPLE, MAJOR_TEXT, NULL,
};
use crate::{is_valid_thing_name, MAX_BUNDLE_LEN, MAX_CERTIFICATE_ID_LEN};

/// Number of items in a bundle's array.
pub const ITEMS: u64 = 5;

/// The credentials to encode. PEM fields hold the text without the trailing NUL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bundle<'a> {
    /// The thing name.
    pub thing_name: &'a str,
    /// The certificate id.
    pub certificate_id: &'a str,
    /// The device certificate, PEM.
    pub certificate_pem: &'a str,
    /// The private key, PEM, in key mode.
    pub private_key_pem: Option<&'a str>,
    /// The server CA, PEM, if the deployment sends it.
    pub server_ca_pem: Option<&'a str>,
}

/// Why a bundle cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// A field is empty, too long, not a thing name, or a PEM holds `\r` or NUL.
    InvalidField,
    /// The bundle would exceed [`MAX_BUNDLE_LEN`].
    TooLarge,
    /// The output buffer is too small.
    BufferTooSmall,
}

fn pem_ok(pem: &str) -> bool {
    pem.starts_with("-----BEGIN ") && !pem.bytes().any(|b| b == 0 || b == b'\r')
}

/// The encoded length of `bundle`.
pub fn encoded_len(bundle: &Bundle<'_>) -> usize {
    let text = |s: &str| crate::cbor::head_len(s.len() as u64) + s.len();
    let pem = |s: Option<&str>| match s {
        Some(p) => crate::cbor::head_len(p.len() as u64 + 1) + p.len() + 1,
        None => 1,
    };
    1 + text(bundle.thing_name)
        + text(bundle.certificate_id)
        + pem(Some(bundle.certificate_pem))
        + pem(bundle.private_key_pem)
        + pem(bundle.server_ca_pem)
}

/// Encodes `bundle` into `out`; returns the length.
pub fn encode(bundle: &Bundle<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
    if !is_valid_thing_name(bundle.thing_name)
        || bundle.certificate_id.is_empty()
        || bundle.certificate_id.len() > MAX_CERTIFICATE_ID_LEN
        || !bundle
            .certificate_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
        || !pem_ok(bundle.certificate_pem)
        || !bundle.private_key_pem.is_none_or(pem_ok)
        || !bundle.server_ca_pem.is_none_or(pem_ok)
    {
        return Err(EncodeError::InvalidField);
    }
    let len = encoded_len(bundle);
    if len > MAX_BUNDLE_LEN as usize {
        return Err(EncodeError::TooLarge);
    }
    let out = out.get_mut(..len).ok_or(EncodeError::BufferTooSmall)?;
    let mut w = Writer { out, at: 0 };
    w.head(MAJOR_ARRAY, ITEMS)?;
    w.text(bundle.thing_name)?;
    w.text(bundle.certificate_id)?;
    w.pem(Some(bundle.certificate_pem))?;
    w.pem(bundle.private_key_pem)?;
    w.pem(bundle.server_ca_pem)?;
    Ok(w.at)
}

struct Writer<'b> {
    out: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn head(&mut self, major: u8, value: u64) -> Result<(), EncodeError> {
        let dst = self
            .out
            .get_mut(self.at..)
            .ok_or(EncodeError::BufferTooSmall)?;
        self.at += encode_head(major, value, dst).ok_or(EncodeError::BufferTooSmall)?;
        Ok(())
    }
    fn raw(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let dst = self
            .out
            .get_mut(self.at..self.at + bytes.len())
            .ok_or(EncodeError::BufferTooSmall)?;
        crate::copy_prefix(dst, bytes);
        self.at += bytes.len();
        Ok(())
    }
    fn text(&mut self, s: &str) -> Result<(), EncodeError> {
        self.head(MAJOR_TEXT, s.len() as u64)?;
        self.raw(s.as_bytes())
    }
    fn pem(&mut self, pem: Option<&str>) -> Result<(), EncodeError> {
        match pem {
            Some(p) => {
                self.head(MAJOR_BYTES, p.len() as u64 + 1)?;
                self.raw(p.as_bytes())?;
                self.raw(&[0])
            }
            None => self.raw(&[NULL]),
        }
    }
}

/// Where one item lies: offset from the start of the bundle, and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Offset of the first byte.
    pub offset: u32,
    /// Length in bytes; for PEM items this includes the trailing NUL.
    pub len: u32,
}

/// The spans of a bundle's items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// The thing name (text, no NUL).
    pub thing_name: Span,
    /// The certificate id (text, no NUL).
    pub certificate_id: Span,
    /// The certificate: PEM and NUL.
    pub certificate: Span,
    /// The private key: PEM and NUL.
    pub private_key: Option<Span>,
    /// The server CA: PEM and NUL.
    pub server_ca: Option<Span>,
}

/// Why stored bytes are not a bundle, or could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocateError<E> {
    /// The bytes are not a bundle.
    Invalid,
    /// The read callback failed.
    Read(E),
}

/// Finds the items of a bundle of `len` bytes. `read(offset, buf)` must fill `buf` with the
/// bundle's bytes at `offset`; it is only asked for heads (≤ 9 bytes) and single bytes.
pub fn locate<E>(
    len: u32,
    mut read: impl FnMut(u32, &mut [u8]) -> Result<(), E>,
) -> Result<Layout, LocateError<E>> {
    if len == 0 || len > MAX_BUNDLE_LEN {
        return Err(LocateError::Invalid);
    }
    let mut at = 0u32;
    let mut next_head = |at: &mut u32| -> Result<(u8, u64), LocateError<E>> {
        let mut buf = [0u8; crate::cbor::MAX_HEAD_LEN];
        let avail = (len - *at).min(buf.len() as u32) as usize;
        let dst = buf.get_mut(..avail).ok_or(LocateError::Invalid)?;
        read(*at, dst).map_err(LocateError::Read)?;
        let (head, n) = decode_head(dst).ok_or(LocateError::Invalid)?;
        // Deterministic encoding: shortest heads only.
        if head.major != MAJOR_SIMPLE && n != crate::cbor::head_len(head.value) {
            return Err(LocateError::Invalid);
        }
        *at += n as u32;
        Ok((head.major, head.value))
    };
    let (major, items) = next_head(&mut at)?;
    if major != MAJOR_ARRAY || items != ITEMS {
        return Err(LocateError::Invalid);
    }
    let mut spans = [None::<Span>; ITEMS as usize];
    for (i, slot) in spans.iter_mut().enumerate() {
        let (major, value) = next_head(&mut at)?;
        let wanted = if i < 2 { MAJOR_TEXT } else { MAJOR_BYTES };
        if major == MAJOR_SIMPLE && value == u64::from(NULL & 0x1F) && i >= 3 {
            continue;
        }
        if major != wanted || value == 0 || value > u64::from(len - at) {
            return Err(LocateError::Invalid);
        }
        let span = Span {
            offset: at,
            len: value as u32,
        };
        at += span.len;
        *slot = Some(span);
    }
    if at != len {
        return Err(LocateError::Invalid);
    }
    let [Some(thing_name), Some(certificate_id), Some(certificate), private_key, server_ca] = spans
    else {
        return Err(LocateError::Invalid);
    };
    for pem in [Some(certificate), private_key, server_ca]
        .into_iter()
        .flatten()
    {
        let mut last = [0xFFu8];
        read(pem.offset + pem.len - 1, &mut last).map_err(LocateError::Read)?;
        if last != [0] {
            return Err(LocateError::Invalid);
        }
    }
    if thing_name.len as usize > crate::MAX_THING_NAME_LEN
        || certificate_id.len as usize > MAX_CERTIFICATE_ID_LEN
    {
        return Err(LocateError::Invalid);
    }
    Ok(Layout {
        thing_name,
        certificate_id,
        certificate,
        private_key,
        server_ca,
    })
}

/// [`locate`] over a bundle held in memory.
pub fn locate_in(bytes: &[u8]) -> Result<Layout, LocateError<()>> {
    let len = u32::try_from(bytes.len()).map_err(|_| LocateError::Invalid)?;
    locate(len, |offset, buf| {
        let src = bytes
            .get(offset as usize..offset as usize + buf.len())
            .ok_or(())?;
        crate::copy_prefix(buf, src);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n";

    fn sample() -> Bundle<'static> {
        Bundle {
            thing_name: "dev-352656100000000",
            certificate_id: "0123456789abcdef",
            certificate_pem: CERT,
            private_key_pem: Some(KEY),
            server_ca_pem: None,
        }
    }

    #[test]
    fn encode_locate_round_trip_and_minicbor_agrees() {
        let b = sample();
        let mut buf = vec![0u8; 512];
        let n = encode(&b, &mut buf).unwrap();
        assert_eq!(n, encoded_len(&b));
        let bytes = &buf[..n];
        let l = locate_in(bytes).unwrap();
        let get = |s: Span| &bytes[s.offset as usize..(s.offset + s.len) as usize];
        assert_eq!(get(l.thing_name), b.thing_name.as_bytes());
        assert_eq!(get(l.certificate), [CERT.as_bytes(), b"\0"].concat());
        assert_eq!(
            get(l.private_key.unwrap()),
            [KEY.as_bytes(), b"\0"].concat()
        );
        assert_eq!(l.server_ca, None);
        let mut d = minicbor::Decoder::new(bytes);
        assert_eq!(d.array().unwrap(), Some(5));
        assert_eq!(d.str().unwrap(), b.thing_name);
        assert_eq!(d.str().unwrap(), b.certificate_id);
        assert_eq!(d.bytes().unwrap(), get(l.certificate));
        assert_eq!(d.bytes().unwrap(), get(l.private_key.unwrap()));
        d.null().unwrap();
        assert_eq!(d.position(), n);
        // Deterministic: encoding again gives the same bytes.
        let mut again = vec![0u8; 512];
        let m = encode(&b, &mut again).unwrap();
        assert_eq!(&again[..m], bytes);
    }

    #[test]
    fn rejects_bad_fields_and_bytes() {
        let mut buf = vec![0u8; 512];
        let bad = Bundle {
            thing_name: "a/b",
            ..sample()
        };
        assert_eq!(encode(&bad, &mut buf), Err(EncodeError::InvalidField));
        let bad = Bundle {
            certificate_pem: "-----BEGIN X\r\n",
            ..sample()
        };
        assert_eq!(encode(&bad, &mut buf), Err(EncodeError::InvalidField));
        assert_eq!(
            encode(&sample(), &mut buf[..10]),
            Err(EncodeError::BufferTooSmall)
        );
        let n = encode(&sample(), &mut buf).unwrap();
        assert_eq!(locate_in(&buf[..n - 1]), Err(LocateError::Invalid));
        let mut no_nul = buf.clone();
        no_nul[n - 1] = b'\n';
        assert_eq!(locate_in(&no_nul[..n]), Err(LocateError::Invalid));
        let mut trailing = buf.clone();
        trailing[n] = 0xF6;
        assert_eq!(locate_in(&trailing[..n + 1]), Err(LocateError::Invalid));
        // The certificate may not be null.
        let mut null_cert = vec![0x85u8];
        null_cert.extend_from_slice(&buf[1..1 + 1 + 19 + 1 + 16]);
        null_cert.extend_from_slice(&[0xF6, 0xF6, 0xF6]);
        assert_eq!(locate_in(&null_cert), Err(LocateError::Invalid));
    }
}
