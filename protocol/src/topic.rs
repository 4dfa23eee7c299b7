//! Topics. Every topic is `<prefix>/<id>/<suffix>`: `<id>` is the claim client id
//! (`<claimPrefix><serial>`) before provisioning and the thing name after. The prefix may itself
//! contain slashes, as long as the whole topic stays within AWS IoT's limits (≤ 256 bytes,
//! ≤ 7 slashes: [`check`]).

use crate::{MAX_TOPIC_LEN, MAX_TOPIC_SLASHES};

/// The kinds of topic, by suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Device → cloud: the provisioning request (JSON). Suffix `json`, as in the seed.
    Request,
    /// Device → cloud: a pull (JSON).
    Pull,
    /// Cloud → device: frames (CBOR).
    Frame,
    /// Cloud → device: rejections (CBOR).
    Rejected,
    /// Device → cloud, under the thing name: the confirmation (JSON).
    Confirm,
    /// Cloud → device, under the thing name: the confirmation's answer (CBOR).
    ConfirmAccepted,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::Request,
        Kind::Pull,
        Kind::Frame,
        Kind::Rejected,
        Kind::Confirm,
        Kind::ConfirmAccepted,
    ];

    /// The suffix after `<prefix>/<id>/`.
    pub const fn suffix(self) -> &'static str {
        match self {
            Kind::Request => "json",
            Kind::Pull => "pull",
            Kind::Frame => "frame",
            Kind::Rejected => "rejected",
            Kind::Confirm => "confirm",
            Kind::ConfirmAccepted => "confirm/accepted",
        }
    }
}

/// Why a topic is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// Longer than 256 bytes, more than 7 slashes, or the buffer is too small.
    TooLong,
    /// Empty levels or MQTT wildcards.
    Invalid,
}

/// Checks AWS IoT's topic limits and that there are no empty levels or wildcards.
pub fn check(topic: &str) -> Result<(), TopicError> {
    let bytes = topic.as_bytes();
    if bytes.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    let (mut slashes, mut level) = (0usize, 0usize);
    for &b in bytes {
        match b {
            b'/' if level == 0 => return Err(TopicError::Invalid),
            b'/' => {
                slashes += 1;
                level = 0;
            }
            b'+' | b'#' | 0 => return Err(TopicError::Invalid),
            _ => level += 1,
        }
    }
    if level == 0 {
        return Err(TopicError::Invalid);
    }
    if slashes > MAX_TOPIC_SLASHES {
        return Err(TopicError::TooLong);
    }
    Ok(())
}

/// Writes `<prefix>/<id>/<suffix>` into `out` and returns it, checked with [`check`].
pub fn build<'b>(
    prefix: &str,
    id: &str,
    kind: Kind,
    out: &'b mut [u8],
) -> Result<&'b str, TopicError> {
    let parts = [prefix, "/", id, "/", kind.suffix()];
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let dst = out.get_mut(..len).ok_or(TopicError::TooLong)?;
    let mut at = 0;
    for p in parts {
        if let Some(d) = dst.get_mut(at..at + p.len()) {
            crate::copy_prefix(d, p.as_bytes());
        }
        at += p.len();
    }
    let topic = core::str::from_utf8(dst).map_err(|_| TopicError::Invalid)?;
    check(topic)?;
    Ok(topic)
}

/// Splits a topic under `prefix` into its id and kind.
pub fn parse<'t>(prefix: &str, topic: &'t str) -> Option<(&'t str, Kind)> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let slash = rest.bytes().position(|b| b == b'/')?;
    let id = rest.get(..slash)?;
    let suffix = rest.get(slash + 1..)?;
    let kind = Kind::ALL.into_iter().find(|k| k.suffix() == suffix)?;
    (!id.is_empty()).then_some((id, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse() {
        let mut buf = [0u8; 300];
        for kind in Kind::ALL {
            let t = build("chunkprov", "claim-42", kind, &mut buf).unwrap();
            assert_eq!(parse("chunkprov", t), Some(("claim-42", kind)));
        }
        let t = build("a/b", "x", Kind::ConfirmAccepted, &mut buf).unwrap();
        assert_eq!(t, "a/b/x/confirm/accepted");
        assert_eq!(parse("a/b", "a/b/x/other"), None);
        assert_eq!(parse("a/b", "a/bx/y/json"), None);
    }

    #[test]
    fn limits() {
        let mut buf = [0u8; 400];
        let long = "p".repeat(250);
        assert_eq!(
            build(&long, "x", Kind::Frame, &mut buf),
            Err(TopicError::TooLong)
        );
        assert_eq!(
            build("a/b/c/d/e/f", "x", Kind::ConfirmAccepted, &mut buf),
            Err(TopicError::TooLong)
        );
        assert_eq!(
            build("a", "+", Kind::Frame, &mut buf),
            Err(TopicError::Invalid)
        );
        assert_eq!(
            build("a", "x", Kind::Frame, &mut buf[..5]),
            Err(TopicError::TooLong)
        );
        assert_eq!(check("a//b"), Err(TopicError::Invalid));
    }
}
