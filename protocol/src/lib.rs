//! The chunkprov wire format, shared by the cloud (which encodes) and the device (which decodes).
//!
//! Directions and encodings:
//!
//! | message | direction | encoding | topic |
//! | --- | --- | --- | --- |
//! | [`Request`](request::Request) | device → cloud | JSON | `<prefix>/<clientId>/json` |
//! | [`Pull`](pull::Pull) | device → cloud | JSON | `<prefix>/<clientId>/pull` |
//! | frame ([`FrameHeader`](frame::FrameHeader) + payload) | cloud → device | CBOR | `<prefix>/<clientId>/frame` |
//! | [`Rejection`](reject::Rejection) | cloud → device | CBOR | `<prefix>/<clientId>/rejected` |
//! | [`Confirmation`](confirm::Confirmation) | device → cloud | JSON | `<prefix>/<thingName>/confirm` |
//! | [`ConfirmAccepted`](confirm::ConfirmAccepted) | cloud → device | CBOR | `<prefix>/<thingName>/confirm/accepted` |
//!
//! Frames carry slices of one [`bundle`] (the credentials, CBOR) cut by the rule in [`chunking`].
//! The crate is `no_std`, never allocates, and every decoder returns an error instead of panicking.
//! `protocol/README.md` specifies all of it byte by byte.
#![no_std]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

#[cfg(test)]
mod tests {
    #[test]
    fn decimal() {
        let mut buf = [0u8; 10];
        assert_eq!(super::decimal(0, &mut buf), b"0");
        assert_eq!(super::decimal(7, &mut buf), b"7");
        assert_eq!(super::decimal(10, &mut buf), b"10");
        assert_eq!(super::decimal(u32::MAX, &mut buf), b"4294967295");
    }
}

pub mod bundle;
pub mod cbor;
pub mod chunking;
pub mod code;
pub mod confirm;
pub mod crc;
pub mod frame;
pub mod json;
pub mod nonce;
pub mod pull;
pub mod reject;
pub mod request;
pub mod sha256;
pub mod topic;

pub use code::RejectCode;
pub use nonce::Nonce;

/// Length of the device-chosen nonce, in bytes.
pub const NONCE_LEN: usize = 8;
/// Length of a SHA-256 digest, in bytes.
pub const SHA256_LEN: usize = 32;
/// The largest number of frames in one transfer (the size of the device's bitmap, in bits).
pub const MAX_FRAMES: u16 = 256;
/// The largest bundle, in bytes.
pub const MAX_BUNDLE_LEN: u32 = 16 * 1024;
/// Every frame payload but the last is a multiple of this many bytes, so a frame starts on a
/// flash write unit of up to this size.
pub const FRAME_ALIGN: u32 = 32;
/// The smallest MQTT PUBLISH packet (fixed header + topic + packet id + payload) a device may
/// declare it can receive.
pub const MIN_PACKET_LIMIT: u32 = 256;
/// The largest packet limit a device may declare: the largest MQTT 3.1.1 packet.
pub const MAX_PACKET_LIMIT: u32 = 1 + 4 + 268_435_455;
/// The smallest window (frames in flight).
pub const MIN_WINDOW: u16 = 1;
/// The largest window (frames in flight).
pub const MAX_WINDOW: u16 = 16;
/// The most frame indices one pull may list as missing.
pub const MAX_PULL_MISSING: usize = 16;
/// The longest frame header, i.e. a frame's bytes before its payload (see [`frame`]).
pub const FRAME_HEADER_MAX: u32 = frame::HEADER_MAX_LEN as u32;
/// AWS IoT: the longest topic, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;
/// AWS IoT: the most slashes in a topic.
pub const MAX_TOPIC_SLASHES: usize = 7;
/// AWS IoT: the longest client id, in bytes.
pub const MAX_CLIENT_ID_LEN: usize = 128;
/// AWS IoT: the longest thing name, in bytes.
pub const MAX_THING_NAME_LEN: usize = 128;
/// The longest certificate id (AWS IoT uses 64 hex digits).
pub const MAX_CERTIFICATE_ID_LEN: usize = 64;
/// The longest human-readable message in a [`reject::Rejection`].
pub const MAX_REJECT_MESSAGE_LEN: usize = 96;

/// Copies as many bytes as both slices hold and returns how many: `copy_from_slice` without its
/// length-mismatch panic, for code that must not have panic paths.
#[inline]
pub fn copy_prefix(dst: &mut [u8], src: &[u8]) -> usize {
    let mut n = 0;
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
        n += 1;
    }
    n
}

/// Writes `v` in decimal into `buf` and returns the digits (a slice of `buf`).
pub fn decimal(mut v: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        if let Some(d) = buf.get_mut(at) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || at == 0 {
            break;
        }
    }
    buf.get(at..).unwrap_or(&[])
}

/// Whether `name` is a valid AWS IoT thing name: `[a-zA-Z0-9:_-]{1,128}`.
pub fn is_valid_thing_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_THING_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

/// Whether `id` is usable as an MQTT client id and a topic level: 1 to 128 bytes of
/// `[a-zA-Z0-9:_-]` (no `/`, `+`, `#` or spaces, so it can never widen a topic filter).
pub fn is_valid_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CLIENT_ID_LEN && is_valid_thing_name(id)
}
