//! The provisioning request, published by the device on `<prefix>/<clientId>/json`.
//!
//! ```json
//! {"SerialNumber":"352656100000000","Nonce":"8f1c2a9b00d4e7a1","Csr":"MIIB…","PacketLimit":256,"Window":4}
//! ```
//!
//! | field | JSON | meaning |
//! | --- | --- | --- |
//! | `SerialNumber` | string | the device's serial; must equal the serial in the client id |
//! | `ThingName` | string, optional | kept for compatibility; if present, must equal the derived thing name |
//! | `Nonce` | 16 hex digits | chosen at random by the device for this request |
//! | `Csr` | string, optional | PKCS#10 CSR as PEM, or DER in base64 or base64url (nRF91 `AT%KEYGEN`); subject CN = serial. Absent: key mode |
//! | `PacketLimit` | integer | the largest MQTT PUBLISH packet the device can receive: fixed header + topic + packet id + payload |
//! | `Window` | integer | frames the device wants in flight, `MIN_WINDOW..=MAX_WINDOW` |
//!
//! Unknown fields are an error, so a typo is never silently ignored.

use crate::json::Object;
use crate::{Nonce, RejectCode, MAX_PACKET_LIMIT, MAX_WINDOW, MIN_PACKET_LIMIT, MIN_WINDOW};
use serde::{Deserialize, Serialize};

/// The provisioning request, generic over its string type: `&str` on the device (which encodes
/// it, and decodes only unescaped JSON), an owned string in the cloud, where a PEM CSR arrives
/// with `\n` escapes (decode it there with any serde JSON decoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Request<S> {
    /// The seed's field, optional; must agree with the derived thing name when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thing_name: Option<S>,
    /// The device's serial number.
    pub serial_number: S,
    /// The device's nonce for this request.
    pub nonce: Nonce,
    /// The CSR; absent in key mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<S>,
    /// The largest PUBLISH packet the device can receive.
    pub packet_limit: u32,
    /// Frames in flight.
    pub window: u16,
}

/// Why a JSON message could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    /// The output buffer (or the unescaping scratch buffer) is too small.
    BufferTooSmall,
    /// The input is not JSON of the expected shape.
    Malformed,
}

impl From<JsonError> for RejectCode {
    fn from(e: JsonError) -> Self {
        let _ = e;
        RejectCode::Malformed
    }
}

pub(crate) fn de_error(_: serde_json_core::de::Error) -> JsonError {
    // serde-json-core folds every semantic error (unknown field, bad nonce) into one variant;
    // its optional messages can panic on long field lists, so they stay off.
    JsonError::Malformed
}

impl<'a> Request<&'a str> {
    /// Decodes JSON whose strings hold no escapes (all a device ever sends but a PEM CSR).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, JsonError> {
        let (r, n) = serde_json_core::from_slice(bytes).map_err(de_error)?;
        if bytes
            .get(n..)
            .is_some_and(|rest| rest.iter().any(|b| !b.is_ascii_whitespace()))
        {
            return Err(JsonError::Malformed);
        }
        Ok(r)
    }
}

impl<S: AsRef<str>> Request<S> {
    /// Encodes as JSON into `out` (fields in declaration order, optional ones only when
    /// present); returns the length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, JsonError> {
        let full = |_| JsonError::BufferTooSmall;
        let mut o = Object::new(out).map_err(full)?;
        if let Some(t) = &self.thing_name {
            o.string("ThingName", t.as_ref()).map_err(full)?;
        }
        o.string("SerialNumber", self.serial_number.as_ref())
            .map_err(full)?;
        let nonce = self.nonce.to_hex();
        o.string("Nonce", core::str::from_utf8(&nonce).unwrap_or(""))
            .map_err(full)?;
        if let Some(c) = &self.csr {
            o.string("Csr", c.as_ref()).map_err(full)?;
        }
        o.uint("PacketLimit", self.packet_limit).map_err(full)?;
        o.uint("Window", u32::from(self.window)).map_err(full)?;
        o.finish().map_err(full)
    }

    /// Checks the packet limit and window against the protocol's bounds.
    pub fn check_bounds(&self) -> Result<(), RejectCode> {
        if !(MIN_PACKET_LIMIT..=MAX_PACKET_LIMIT).contains(&self.packet_limit) {
            return Err(RejectCode::PacketLimitInvalid);
        }
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&self.window) {
            return Err(RejectCode::WindowInvalid);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    fn sample() -> Request<&'static str> {
        Request {
            thing_name: None,
            serial_number: "352656100000000",
            nonce: Nonce([0x8f, 0x1c, 0x2a, 0x9b, 0x00, 0xd4, 0xe7, 0xa1]),
            csr: Some(
                "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
            ),
            packet_limit: 256,
            window: 4,
        }
    }

    #[test]
    fn round_trip_with_escapes() {
        let r = sample();
        let mut buf = [0u8; 512];
        let n = r.encode(&mut buf).unwrap();
        let text = core::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.starts_with(r#"{"SerialNumber":"352656100000000","Nonce":"8f1c2a9b00d4e7a1","Csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB"#), "{text}");
        // The hand-written encoder writes what serde does.
        assert_eq!(text, serde_json::to_string(&r).unwrap());
        // A cloud decodes escapes into owned strings.
        let owned: Request<std::string::String> = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(owned.csr.as_deref(), r.csr);
        assert_eq!(owned.serial_number, r.serial_number);
        // The no_std decoder reads what it can borrow.
        let plain = Request {
            csr: Some("MIIBbase64url_-"),
            ..r
        };
        let n = plain.encode(&mut buf).unwrap();
        assert_eq!(Request::decode(&buf[..n]), Ok(plain));
    }

    #[test]
    fn seed_fields_and_key_mode() {
        let json = br#"{"ThingName":"dev-1","SerialNumber":"1","Nonce":"0000000000000001","PacketLimit":2048,"Window":1}"#;
        let r = Request::decode(json).unwrap();
        assert_eq!(r.thing_name, Some("dev-1"));
        assert_eq!(r.csr, None);
        assert_eq!(r.check_bounds(), Ok(()));
    }

    #[test]
    fn errors() {
        let unknown = br#"{"SerialNumber":"1","Nonce":"0000000000000001","PacketLimit":2048,"Window":1,"Extra":1}"#;
        assert_eq!(Request::decode(unknown), Err(JsonError::Malformed));
        let owned: Result<Request<std::string::String>, _> = serde_json::from_slice(unknown);
        assert!(std::string::ToString::to_string(&owned.unwrap_err())
            .starts_with("unknown field `Extra`"));
        let bad_nonce = br#"{"SerialNumber":"1","Nonce":"xyz","PacketLimit":2048,"Window":1}"#;
        assert_eq!(Request::decode(bad_nonce), Err(JsonError::Malformed));
        let missing = br#"{"SerialNumber":"1","PacketLimit":2048,"Window":1}"#;
        assert!(Request::decode(missing).is_err());
        let r = Request {
            packet_limit: 255,
            ..sample()
        };
        assert_eq!(r.check_bounds(), Err(RejectCode::PacketLimitInvalid));
        let r = Request {
            window: 0,
            ..sample()
        };
        assert_eq!(r.check_bounds(), Err(RejectCode::WindowInvalid));
        let r = Request {
            window: MAX_WINDOW + 1,
            ..sample()
        };
        assert_eq!(r.check_bounds(), Err(RejectCode::WindowInvalid));
    }
}
