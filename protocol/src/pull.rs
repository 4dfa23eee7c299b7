//! The pull, published by the device on `<prefix>/<clientId>/pull` to ask for more frames.
//!
//! ```json
//! {"Nonce":"8f1c2a9b00d4e7a1","TransferId":3054,"Next":8,"Missing":[2,5]}
//! ```
//!
//! `Next`, optional: send the window that starts at this frame index (the request's `Window`
//! frames, or fewer at the end). `Missing`, optional: send these frames again (at most
//! [`MAX_PULL_MISSING`], each `< count`). At least one of the two is present. The cloud
//! republishes exactly those frames, cut as the first window was.

use crate::json::Object;
use crate::request::{de_error, JsonError};
use crate::{Nonce, MAX_PULL_MISSING};
use serde::{Deserialize, Serialize};

/// Frame indices a pull asks for again.
pub type Missing = heapless::Vec<u16, MAX_PULL_MISSING>;

/// A pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Pull {
    /// The nonce of the request being served.
    pub nonce: Nonce,
    /// The transfer the frames belong to.
    pub transfer_id: u32,
    /// First frame of the next window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u16>,
    /// Frames to send again.
    #[serde(default, skip_serializing_if = "heapless::Vec::is_empty")]
    pub missing: Missing,
}

impl Pull {
    /// Encodes as JSON into `out`; returns the length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, JsonError> {
        let full = |_| JsonError::BufferTooSmall;
        let mut o = Object::new(out).map_err(full)?;
        let nonce = self.nonce.to_hex();
        o.string("Nonce", core::str::from_utf8(&nonce).unwrap_or(""))
            .map_err(full)?;
        o.uint("TransferId", self.transfer_id).map_err(full)?;
        if let Some(n) = self.next {
            o.uint("Next", u32::from(n)).map_err(full)?;
        }
        if !self.missing.is_empty() {
            o.uints("Missing", &self.missing).map_err(full)?;
        }
        o.finish().map_err(full)
    }

    /// Decodes JSON. A pull that asks for nothing is malformed.
    pub fn decode(bytes: &[u8]) -> Result<Self, JsonError> {
        let (p, n): (Self, usize) = serde_json_core::from_slice(bytes).map_err(de_error)?;
        if bytes
            .get(n..)
            .is_some_and(|rest| rest.iter().any(|b| !b.is_ascii_whitespace()))
            || (p.next.is_none() && p.missing.is_empty())
        {
            return Err(JsonError::Malformed);
        }
        Ok(p)
    }

    /// Whether every index asked for is below `count`.
    pub fn within(&self, count: u16) -> bool {
        self.next.is_none_or(|n| n < count) && self.missing.iter().all(|&i| i < count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut missing = Missing::new();
        missing.extend_from_slice(&[2, 5]).unwrap();
        let p = Pull {
            nonce: Nonce([0x8f, 0x1c, 0x2a, 0x9b, 0, 0xd4, 0xe7, 0xa1]),
            transfer_id: 3054,
            next: Some(8),
            missing,
        };
        let mut buf = [0u8; 128];
        let n = p.encode(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            br#"{"Nonce":"8f1c2a9b00d4e7a1","TransferId":3054,"Next":8,"Missing":[2,5]}"#
        );
        assert_eq!(Pull::decode(&buf[..n]), Ok(p.clone()));
        assert_eq!(&buf[..n], serde_json::to_string(&p).unwrap().as_bytes());
        assert!(p.within(9));
        assert!(!p.within(8));
        let only_next = br#"{"Nonce":"8f1c2a9b00d4e7a1","TransferId":1,"Next":0}"#;
        assert_eq!(Pull::decode(only_next).unwrap().missing.len(), 0);
        let nothing = br#"{"Nonce":"8f1c2a9b00d4e7a1","TransferId":1}"#;
        assert_eq!(Pull::decode(nothing), Err(JsonError::Malformed));
        let too_many = br#"{"Nonce":"8f1c2a9b00d4e7a1","TransferId":1,"Missing":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}"#;
        assert!(Pull::decode(too_many).is_err());
    }
}
