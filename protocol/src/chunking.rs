//! How a bundle is cut into frames, and how big a frame may be.
//!
//! Every frame but the last carries `chunk` payload bytes, the last carries the rest. Frame `i`
//! covers bundle bytes `i * chunk .. min((i + 1) * chunk, bundle_len)`. `chunk` is not sent: both
//! sides derive it from the bundle length `L` and the frame count `N` that every frame header
//! carries:
//!
//! ```text
//! chunk = round_up(ceil(L / N), FRAME_ALIGN)      valid only if ceil(L / chunk) == N
//! ```
//!
//! The cloud picks `N = ceil(L / max_chunk)` where `max_chunk` is the largest multiple of
//! [`FRAME_ALIGN`] whose frame fits the device's packet limit ([`max_chunk`]); the derived
//! `chunk` is then at most `max_chunk`, and frames are as even as the alignment allows.
//! Because `chunk` is a multiple of [`FRAME_ALIGN`], every frame starts on a flash write unit
//! of up to 32 bytes and no two frames share one.

use crate::{FRAME_ALIGN, FRAME_HEADER_MAX, MAX_BUNDLE_LEN, MAX_FRAMES};
use core::num::NonZeroU32;

/// `ceil(a / b)`; dividing by a `NonZeroU32` has no division-by-zero panic path.
fn div_ceil(a: u32, b: NonZeroU32) -> u32 {
    a / b + u32::from(a % b != 0)
}

/// The cut of one bundle into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    bundle_len: u32,
    count: u16,
    chunk: u32,
}

impl Plan {
    /// The plan the cloud uses for a bundle of `bundle_len` bytes when a frame may carry at
    /// most `max_chunk` payload bytes. `None` if the bundle is empty or too large, or would
    /// need more than [`MAX_FRAMES`] frames.
    pub fn for_bundle(bundle_len: u32, max_chunk: u32) -> Option<Plan> {
        let max_chunk = max_chunk - max_chunk % FRAME_ALIGN;
        if max_chunk == 0 {
            return None;
        }
        let count = u16::try_from(div_ceil(bundle_len, NonZeroU32::new(max_chunk)?)).ok()?;
        Self::from_header(bundle_len, count)
    }

    /// The plan a device derives from a frame header's bundle length and frame count. `None`
    /// if the pair is not one the cloud can produce.
    pub fn from_header(bundle_len: u32, count: u16) -> Option<Plan> {
        if bundle_len == 0 || bundle_len > MAX_BUNDLE_LEN || count == 0 || count > MAX_FRAMES {
            return None;
        }
        let per_frame = div_ceil(bundle_len, NonZeroU32::new(u32::from(count))?);
        let chunk = per_frame.div_ceil(FRAME_ALIGN) * FRAME_ALIGN;
        if div_ceil(bundle_len, NonZeroU32::new(chunk)?) != u32::from(count) {
            return None;
        }
        Some(Plan {
            bundle_len,
            count,
            chunk,
        })
    }

    /// Bundle length in bytes.
    pub const fn bundle_len(&self) -> u32 {
        self.bundle_len
    }

    /// Number of frames.
    pub const fn count(&self) -> u16 {
        self.count
    }

    /// Payload bytes of every frame but the last.
    pub const fn chunk(&self) -> u32 {
        self.chunk
    }

    /// Offset in the bundle and payload length of frame `index`, or `None` past the last frame.
    pub fn frame(&self, index: u16) -> Option<(u32, u32)> {
        if index >= self.count {
            return None;
        }
        let offset = u32::from(index) * self.chunk;
        let len = (self.bundle_len - offset).min(self.chunk);
        Some((offset, len))
    }
}

impl Plan {
    /// Frame `index` of `bundle` under this plan: its header and payload. `sha256` is the
    /// bundle's digest; the caller computes it once per bundle.
    pub fn frame_of<'b>(
        &self,
        bundle: &'b [u8],
        index: u16,
        nonce: crate::Nonce,
        transfer_id: u32,
        sha256: &[u8; crate::SHA256_LEN],
    ) -> Option<(crate::frame::FrameHeader, &'b [u8])> {
        if bundle.len() != self.bundle_len as usize {
            return None;
        }
        let (offset, len) = self.frame(index)?;
        let payload = bundle.get(offset as usize..(offset + len) as usize)?;
        let header = crate::frame::FrameHeader {
            nonce,
            transfer_id,
            index,
            count: self.count,
            bundle_len: self.bundle_len,
            sha256: *sha256,
            crc32: crate::crc::crc32(payload),
        };
        Some((header, payload))
    }
}

/// The size of an MQTT 3.1.1 PUBLISH packet with QoS 1 (fixed header, topic, packet id,
/// payload), or `None` if it exceeds MQTT's largest packet.
pub fn publish_packet_len(topic_len: u32, payload_len: u32) -> Option<u32> {
    let remaining = 2u32
        .checked_add(topic_len)?
        .checked_add(2)?
        .checked_add(payload_len)?;
    let varint = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        2_097_152..=268_435_455 => 4,
        _ => return None,
    };
    Some(1 + varint + remaining)
}

/// The largest frame payload, a multiple of [`FRAME_ALIGN`] and at most [`MAX_BUNDLE_LEN`],
/// such that any frame carrying it fits in a PUBLISH packet of at most `packet_limit` bytes on a
/// topic of `topic_len` bytes. `None` if not even [`FRAME_ALIGN`] bytes fit.
pub fn max_chunk(packet_limit: u32, topic_len: u32) -> Option<u32> {
    let fixed = 1 + 1 + 2 + 2 + topic_len + FRAME_HEADER_MAX;
    let room = packet_limit.checked_sub(fixed)?.min(MAX_BUNDLE_LEN);
    let mut chunk = room - room % FRAME_ALIGN;
    while chunk > 0 {
        match publish_packet_len(topic_len, FRAME_HEADER_MAX + chunk) {
            Some(n) if n <= packet_limit => return Some(chunk),
            _ => chunk -= FRAME_ALIGN,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packet_len_matches_mqtt() {
        // 2 + 5 + 2 + 100 = 109 remaining → 1-byte length.
        assert_eq!(publish_packet_len(5, 100), Some(1 + 1 + 109));
        assert_eq!(publish_packet_len(5, 200), Some(1 + 2 + 209));
        assert_eq!(
            publish_packet_len(0, 268_435_451),
            Some(1 + 4 + 268_435_455)
        );
        assert_eq!(publish_packet_len(0, 268_435_452), None);
    }

    #[test]
    fn small_packets_for_a_typical_topic() {
        // "chunkprov/claim-352656100000000/frame" is 37 bytes.
        let c = max_chunk(256, 37).unwrap();
        assert_eq!(c % FRAME_ALIGN, 0);
        assert!(publish_packet_len(37, FRAME_HEADER_MAX + c).unwrap() <= 256);
        assert!(publish_packet_len(37, FRAME_HEADER_MAX + c + FRAME_ALIGN).unwrap() > 256);
        assert_eq!(max_chunk(100, 37), None);
    }

    #[test]
    fn invalid_header_pairs() {
        assert_eq!(Plan::from_header(0, 1), None);
        assert_eq!(Plan::from_header(10, 0), None);
        // 9 bytes cannot be 4 frames of 32-byte chunks.
        assert_eq!(Plan::from_header(9, 4), None);
        assert_eq!(Plan::from_header(MAX_BUNDLE_LEN + 1, 100), None);
        assert_eq!(Plan::from_header(100, MAX_FRAMES + 1), None);
    }

    proptest! {
        #[test]
        fn plans_cover_the_bundle(len in 1u32..=MAX_BUNDLE_LEN, max in 32u32..=4096) {
            if let Some(plan) = Plan::for_bundle(len, max) {
                prop_assert!(plan.chunk() <= max);
                prop_assert_eq!(plan.chunk() % FRAME_ALIGN, 0);
                prop_assert_eq!(Plan::from_header(len, plan.count()), Some(plan));
                let mut next = 0;
                for i in 0..plan.count() {
                    let (off, n) = plan.frame(i).unwrap();
                    prop_assert_eq!(off, next);
                    prop_assert!(n > 0 && n <= plan.chunk());
                    next += n;
                }
                prop_assert_eq!(next, len);
                prop_assert_eq!(plan.frame(plan.count()), None);
            } else {
                prop_assert!(len.div_ceil(max - max % 32) > u32::from(MAX_FRAMES));
            }
        }
    }
}
