//! The confirmation round trip. Under its new identity the device publishes a [`Confirmation`]
//! (JSON) on `<prefix>/<thingName>/confirm`; the cloud checks that it names the certificate
//! issued to that thing and answers with a [`ConfirmAccepted`] (CBOR) on
//! `<prefix>/<thingName>/confirm/accepted`. That answer arriving is the device's proof that its
//! new credentials can both publish and receive.
//!
//! `Confirmation`: `{"TransferId": <u32>, "CertificateId": "<id from the bundle>"}`.
//! `ConfirmAccepted`: CBOR array of two items, the transfer id (unsigned) and the certificate id
//! (text string).

use crate::cbor::Reader;
use crate::json::Object;
use crate::MAX_CERTIFICATE_ID_LEN;
use minicbor::encode::write::Cursor;
use serde::{Deserialize, Serialize};

/// The device's confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Confirmation<'a> {
    /// The transfer whose bundle is being confirmed.
    pub transfer_id: u32,
    /// The certificate id from the bundle.
    pub certificate_id: &'a str,
}

/// The cloud's answer to a valid confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmAccepted<'a> {
    /// The confirmed transfer.
    pub transfer_id: u32,
    /// The confirmed certificate.
    pub certificate_id: &'a str,
}

/// Why a message could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

impl<'a> Confirmation<'a> {
    /// Encodes as JSON into `out`; returns the length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Invalid> {
        let mut o = Object::new(out).map_err(|_| Invalid)?;
        o.uint("TransferId", self.transfer_id)
            .map_err(|_| Invalid)?;
        o.string("CertificateId", self.certificate_id)
            .map_err(|_| Invalid)?;
        o.finish().map_err(|_| Invalid)
    }

    /// Decodes JSON.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Invalid> {
        let (c, n): (Self, usize) = serde_json_core::from_slice(bytes).map_err(|_| Invalid)?;
        if n != bytes.len()
            || c.certificate_id.is_empty()
            || c.certificate_id.len() > MAX_CERTIFICATE_ID_LEN
        {
            return Err(Invalid);
        }
        Ok(c)
    }
}

impl<'a> ConfirmAccepted<'a> {
    /// Encodes as CBOR into `out`; returns the length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Invalid> {
        let mut e = minicbor::Encoder::new(Cursor::new(out));
        e.array(2)
            .and_then(|e| e.u32(self.transfer_id))
            .and_then(|e| e.str(self.certificate_id))
            .map_err(|_| Invalid)?;
        Ok(e.into_writer().position())
    }

    /// Decodes CBOR.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Invalid> {
        let mut r = Reader::new(bytes);
        r.array(2).ok_or(Invalid)?;
        let transfer_id = u32::try_from(r.uint().ok_or(Invalid)?).map_err(|_| Invalid)?;
        let certificate_id = r.text().ok_or(Invalid)?;
        if !r.is_done() || certificate_id.len() > MAX_CERTIFICATE_ID_LEN {
            return Err(Invalid);
        }
        Ok(Self {
            transfer_id,
            certificate_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let c = Confirmation {
            transfer_id: 7,
            certificate_id: "ab12",
        };
        let mut buf = [0u8; 128];
        let n = c.encode(&mut buf).unwrap();
        assert_eq!(&buf[..n], br#"{"TransferId":7,"CertificateId":"ab12"}"#);
        assert_eq!(&buf[..n], serde_json::to_string(&c).unwrap().as_bytes());
        assert_eq!(Confirmation::decode(&buf[..n]), Ok(c));
        assert_eq!(
            Confirmation::decode(br#"{"TransferId":7,"CertificateId":"ab12","X":1}"#),
            Err(Invalid)
        );

        let a = ConfirmAccepted {
            transfer_id: 7,
            certificate_id: "ab12",
        };
        let n = a.encode(&mut buf).unwrap();
        assert_eq!(ConfirmAccepted::decode(&buf[..n]), Ok(a));
        assert_eq!(ConfirmAccepted::decode(&buf[..n - 1]), Err(Invalid));
    }
}
