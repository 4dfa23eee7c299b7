//! The rejection: the cloud's answer to a request, pull or confirmation it will not serve, sent
//! on `<prefix>/<clientId>/rejected` (or, for a confirmation, `<prefix>/<thingName>/rejected`).
//!
//! CBOR array of three items: the nonce of the rejected request (byte string of 8) or `null`
//! when the request could not be read far enough to find one; the code ([`RejectCode`], unsigned);
//! a short English message (text string, at most [`MAX_REJECT_MESSAGE_LEN`] bytes).

use crate::cbor::Reader;
use crate::{Nonce, RejectCode, MAX_REJECT_MESSAGE_LEN};
use minicbor::encode::write::Cursor;

/// A decoded or to-be-encoded rejection. `code` is kept as a number so codes from newer
/// versions survive decoding; [`RejectCode::from_u16`] names the known ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection<'a> {
    /// The nonce of the rejected request, if the cloud got that far.
    pub nonce: Option<Nonce>,
    /// The code.
    pub code: u16,
    /// A short explanation for logs.
    pub message: &'a str,
}

/// Why bytes are not a rejection, or it could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

impl<'a> Rejection<'a> {
    /// A rejection with a known code.
    pub fn new(nonce: Option<Nonce>, code: RejectCode, message: &'a str) -> Self {
        Self {
            nonce,
            code: code as u16,
            message,
        }
    }

    /// Encodes into `out`; returns the length. Messages longer than the limit are cut at a
    /// character boundary.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Invalid> {
        let mut cut = self.message.len().min(MAX_REJECT_MESSAGE_LEN);
        while !self.message.is_char_boundary(cut) {
            cut -= 1;
        }
        let message = self.message.get(..cut).ok_or(Invalid)?;
        let mut e = minicbor::Encoder::new(Cursor::new(out));
        e.array(3).map_err(|_| Invalid)?;
        match &self.nonce {
            Some(n) => e.bytes(&n.0),
            None => e.null(),
        }
        .and_then(|e| e.u16(self.code))
        .and_then(|e| e.str(message))
        .map_err(|_| Invalid)?;
        Ok(e.into_writer().position())
    }

    /// Decodes a whole rejection message.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Invalid> {
        let mut r = Reader::new(bytes);
        r.array(3).ok_or(Invalid)?;
        let nonce = match r.bytes_or_null().ok_or(Invalid)? {
            Some(raw) => Some(Nonce(raw.try_into().map_err(|_| Invalid)?)),
            None => None,
        };
        let code = u16::try_from(r.uint().ok_or(Invalid)?).map_err(|_| Invalid)?;
        let message = r.text().ok_or(Invalid)?;
        if !r.is_done() || message.len() > MAX_REJECT_MESSAGE_LEN {
            return Err(Invalid);
        }
        Ok(Self {
            nonce,
            code,
            message,
        })
    }

    /// The code, if this version knows it.
    pub fn known_code(&self) -> Option<RejectCode> {
        RejectCode::from_u16(self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_code() {
        for code in RejectCode::ALL {
            for nonce in [None, Some(Nonce([9; 8]))] {
                let r = Rejection::new(nonce, *code, code.name());
                let mut buf = [0u8; 128];
                let n = r.encode(&mut buf).unwrap();
                assert_eq!(Rejection::decode(&buf[..n]), Ok(r));
                assert_eq!(Rejection::decode(&buf[..n - 1]), Err(Invalid));
            }
        }
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(100);
        let r = Rejection::new(None, RejectCode::Internal, &long);
        let mut buf = [0u8; 256];
        let n = r.encode(&mut buf).unwrap();
        let back = Rejection::decode(&buf[..n]).unwrap();
        assert_eq!(back.message.len(), 96);
        assert!(long.starts_with(back.message));
    }
}
