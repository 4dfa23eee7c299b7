//! The frame: one slice of the bundle and everything needed to place and check it.
//!
//! A frame is a CBOR array of eight items, payload last so it can stream straight to flash:
//!
//! | # | item | CBOR |
//! | --- | --- | --- |
//! | 0 | nonce of the request being answered | byte string, 8 bytes |
//! | 1 | transfer id assigned by the cloud | unsigned, ≤ 2³²−1 |
//! | 2 | frame index | unsigned, < frame count |
//! | 3 | frame count | unsigned, 1..=[`MAX_FRAMES`](crate::MAX_FRAMES) |
//! | 4 | bundle length | unsigned, 1..=[`MAX_BUNDLE_LEN`](crate::MAX_BUNDLE_LEN) |
//! | 5 | SHA-256 of the whole bundle | byte string, 32 bytes |
//! | 6 | CRC-32 of this frame's payload ([`crate::crc`]) | unsigned, ≤ 2³²−1 |
//! | 7 | payload: bundle bytes, placed by [`crate::chunking`] | byte string |
//!
//! Heads must have definite lengths; the encoder writes shortest forms. [`FrameDecoder`] reads a
//! frame in pieces of any size, one byte of state per head, and hands the payload back as
//! slices of the caller's input.

use crate::cbor::{HeadReader, MAJOR_ARRAY, MAJOR_BYTES, MAJOR_UINT};
use crate::chunking::Plan;
use crate::{Nonce, RejectCode, NONCE_LEN, SHA256_LEN};
use minicbor::encode::write::Cursor;

/// Number of items in a frame's array.
pub const ITEMS: u64 = 8;
/// The longest frame header (everything before the payload's bytes): array head 1, nonce 9,
/// transfer id 5, index 3, count 3, bundle length 5, digest 34, CRC 5, payload head 3.
pub const HEADER_MAX_LEN: usize = 68;

/// The fixed-width fields of a frame, everything but the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameHeader {
    /// The nonce of the request this frame answers.
    pub nonce: Nonce,
    /// The cloud's id for this transfer; a new id means a new bundle.
    pub transfer_id: u32,
    /// This frame's index, `0..count`.
    pub index: u16,
    /// Number of frames in the transfer.
    pub count: u16,
    /// Length of the whole bundle.
    pub bundle_len: u32,
    /// SHA-256 of the whole bundle.
    pub sha256: [u8; SHA256_LEN],
    /// CRC-32 of this frame's payload.
    pub crc32: u32,
}

impl FrameHeader {
    /// Checks the header against the payload length it came with and returns the frame's
    /// offset in the bundle. Rejects counts, lengths and indices no valid transfer produces.
    pub fn placement(&self, payload_len: u32) -> Result<u32, RejectCode> {
        let plan =
            Plan::from_header(self.bundle_len, self.count).ok_or(RejectCode::FrameOutOfRange)?;
        let (offset, len) = plan.frame(self.index).ok_or(RejectCode::FrameOutOfRange)?;
        if len != payload_len {
            return Err(RejectCode::FrameOutOfRange);
        }
        Ok(offset)
    }
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Not CBOR of the frame's shape: wrong type, wrong length, a value out of range.
    Malformed,
    /// The input ended inside the frame.
    Truncated,
    /// Bytes follow the frame's payload.
    Trailing,
}

impl From<FrameError> for RejectCode {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Malformed => RejectCode::FrameMalformed,
            FrameError::Truncated => RejectCode::FrameTruncated,
            FrameError::Trailing => RejectCode::FrameOversized,
        }
    }
}

/// The output buffer was too small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall;

/// Encodes a frame into `out` and returns its length.
pub fn encode(
    header: &FrameHeader,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut e = minicbor::Encoder::new(Cursor::new(out));
    e.array(ITEMS)
        .and_then(|e| e.bytes(&header.nonce.0))
        .and_then(|e| e.u32(header.transfer_id))
        .and_then(|e| e.u16(header.index))
        .and_then(|e| e.u16(header.count))
        .and_then(|e| e.u32(header.bundle_len))
        .and_then(|e| e.bytes(&header.sha256))
        .and_then(|e| e.u32(header.crc32))
        .and_then(|e| e.bytes(payload))
        .map_err(|_| BufferTooSmall)?;
    Ok(e.into_writer().position())
}

/// Decodes a whole frame held in one buffer: its header and payload.
pub fn decode(bytes: &[u8]) -> Result<(FrameHeader, &[u8]), FrameError> {
    use minicbor::decode::Error;
    let truncated = |e: Error| {
        if e.is_end_of_input() {
            FrameError::Truncated
        } else {
            FrameError::Malformed
        }
    };
    let mut d = minicbor::Decoder::new(bytes);
    if d.array().map_err(truncated)? != Some(ITEMS) {
        return Err(FrameError::Malformed);
    }
    let nonce: [u8; NONCE_LEN] = d
        .bytes()
        .map_err(truncated)?
        .try_into()
        .map_err(|_| FrameError::Malformed)?;
    let transfer_id = d.u32().map_err(truncated)?;
    let index = d.u16().map_err(truncated)?;
    let count = d.u16().map_err(truncated)?;
    let bundle_len = d.u32().map_err(truncated)?;
    let sha256: [u8; SHA256_LEN] = d
        .bytes()
        .map_err(truncated)?
        .try_into()
        .map_err(|_| FrameError::Malformed)?;
    let crc32 = d.u32().map_err(truncated)?;
    let payload = d.bytes().map_err(truncated)?;
    if d.position() != bytes.len() {
        return Err(FrameError::Trailing);
    }
    let header = FrameHeader {
        nonce: Nonce(nonce),
        transfer_id,
        index,
        count,
        bundle_len,
        sha256,
        crc32,
    };
    Ok((header, payload))
}

/// What [`FrameDecoder::step`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// The header is complete ([`FrameDecoder::header`]); the payload that follows is this long.
    Header {
        /// Length of the payload.
        payload_len: u32,
    },
    /// The next bytes of the payload, borrowed from the input.
    Payload(&'a [u8]),
    /// The frame is complete. Reported once.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
enum Phase {
    #[default]
    Array,
    NonceHead,
    Nonce,
    TransferId,
    Index,
    Count,
    BundleLen,
    ShaHead,
    Sha,
    Crc,
    PayloadHead,
    Payload,
    End,
    Finished,
}

/// A streaming frame decoder: feed it the frame's bytes in pieces of any size.
///
/// ```
/// # use chunkprov_protocol::frame::{self, FrameDecoder, FrameHeader, Step};
/// let header = FrameHeader { index: 0, count: 1, bundle_len: 3, crc32: chunkprov_protocol::crc::crc32(b"abc"), ..Default::default() };
/// let mut buf = [0u8; 80];
/// let n = frame::encode(&header, b"abc", &mut buf).unwrap();
/// let mut dec = FrameDecoder::new();
/// let mut payload = [0u8; 3];
/// let mut at = 0;
/// for piece in buf[..n].chunks(5) {
///     let mut input = piece;
///     while let Some(step) = dec.step(&mut input).unwrap() {
///         if let Step::Payload(p) = step {
///             payload[at..at + p.len()].copy_from_slice(p);
///             at += p.len();
///         }
///     }
/// }
/// assert!(dec.is_finished());
/// assert_eq!(dec.header(), &header);
/// assert_eq!(&payload, b"abc");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameDecoder {
    header: FrameHeader,
    phase: Phase,
    head: HeadReader,
    /// Bytes left of the byte string being read (nonce, digest or payload).
    remaining: u32,
    payload_len: u32,
}

impl FrameDecoder {
    /// A decoder at the start of a frame.
    pub const fn new() -> Self {
        Self {
            header: FrameHeader {
                nonce: Nonce([0; NONCE_LEN]),
                transfer_id: 0,
                index: 0,
                count: 0,
                bundle_len: 0,
                sha256: [0; SHA256_LEN],
                crc32: 0,
            },
            phase: Phase::Array,
            head: HeadReader::new(),
            remaining: 0,
            payload_len: 0,
        }
    }

    /// The header fields read so far; all of them once [`Step::Header`] has been returned.
    pub const fn header(&self) -> &FrameHeader {
        &self.header
    }

    /// Whether the header is complete.
    pub fn has_header(&self) -> bool {
        matches!(self.phase, Phase::Payload | Phase::End | Phase::Finished)
    }

    /// Payload length, valid once the header is complete.
    pub const fn payload_len(&self) -> u32 {
        self.payload_len
    }

    /// Payload bytes not yet returned, valid once the header is complete.
    pub const fn payload_remaining(&self) -> u32 {
        self.remaining
    }

    /// Whether the whole frame has been read and [`Step::End`] returned.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// Checks that the message carried a whole frame: call it when the message's bytes end.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.phase == Phase::Finished {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }

    /// Consumes bytes from the front of `input` until it has something to report. Returns
    /// `Ok(None)` once `input` is empty and more bytes are needed (or the frame has ended).
    pub fn step<'a>(&mut self, input: &mut &'a [u8]) -> Result<Option<Step<'a>>, FrameError> {
        loop {
            match self.phase {
                Phase::End => {
                    self.phase = Phase::Finished;
                    return Ok(Some(Step::End));
                }
                Phase::Finished => {
                    return if input.is_empty() {
                        Ok(None)
                    } else {
                        Err(FrameError::Trailing)
                    };
                }
                Phase::Payload => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let take = input.len().min(self.remaining as usize);
                    let (now, rest) = input.split_at_checked(take).unwrap_or((input, &[]));
                    *input = rest;
                    self.remaining -= take as u32;
                    if self.remaining == 0 {
                        self.phase = Phase::End;
                    }
                    return Ok(Some(Step::Payload(now)));
                }
                Phase::Nonce | Phase::Sha => {
                    let dst: &mut [u8] = if self.phase == Phase::Nonce {
                        &mut self.header.nonce.0
                    } else {
                        &mut self.header.sha256
                    };
                    let at = dst.len() - self.remaining as usize;
                    let take = input.len().min(self.remaining as usize);
                    let (now, rest) = input.split_at_checked(take).unwrap_or((input, &[]));
                    if let Some(d) = dst.get_mut(at..at + take) {
                        crate::copy_prefix(d, now);
                    }
                    *input = rest;
                    self.remaining -= take as u32;
                    if self.remaining > 0 {
                        return Ok(None);
                    }
                    self.phase = if self.phase == Phase::Nonce {
                        Phase::TransferId
                    } else {
                        Phase::Crc
                    };
                }
                _ => {
                    let Some((&byte, rest)) = input.split_first() else {
                        return Ok(None);
                    };
                    *input = rest;
                    let head = match self.head.push(byte) {
                        Ok(Some(h)) => h,
                        Ok(None) => continue,
                        Err(_) => return Err(FrameError::Malformed),
                    };
                    if let Some(step) = self.take_head(head.major, head.value)? {
                        return Ok(Some(step));
                    }
                }
            }
        }
    }

    fn take_head(&mut self, major: u8, value: u64) -> Result<Option<Step<'static>>, FrameError> {
        let uint32 = || {
            if major == MAJOR_UINT {
                u32::try_from(value).map_err(|_| FrameError::Malformed)
            } else {
                Err(FrameError::Malformed)
            }
        };
        let uint16 = || uint32().and_then(|v| u16::try_from(v).map_err(|_| FrameError::Malformed));
        let bytes_of = |len: usize| {
            if major == MAJOR_BYTES && value == len as u64 {
                Ok(len as u32)
            } else {
                Err(FrameError::Malformed)
            }
        };
        match self.phase {
            Phase::Array => {
                if major != MAJOR_ARRAY || value != ITEMS {
                    return Err(FrameError::Malformed);
                }
                self.phase = Phase::NonceHead;
            }
            Phase::NonceHead => {
                self.remaining = bytes_of(NONCE_LEN)?;
                self.phase = Phase::Nonce;
            }
            Phase::TransferId => {
                self.header.transfer_id = uint32()?;
                self.phase = Phase::Index;
            }
            Phase::Index => {
                self.header.index = uint16()?;
                self.phase = Phase::Count;
            }
            Phase::Count => {
                self.header.count = uint16()?;
                self.phase = Phase::BundleLen;
            }
            Phase::BundleLen => {
                self.header.bundle_len = uint32()?;
                self.phase = Phase::ShaHead;
            }
            Phase::ShaHead => {
                self.remaining = bytes_of(SHA256_LEN)?;
                self.phase = Phase::Sha;
            }
            Phase::Crc => {
                self.header.crc32 = uint32()?;
                self.phase = Phase::PayloadHead;
            }
            Phase::PayloadHead => {
                if major != MAJOR_BYTES {
                    return Err(FrameError::Malformed);
                }
                self.payload_len = u32::try_from(value).map_err(|_| FrameError::Malformed)?;
                self.remaining = self.payload_len;
                self.phase = if self.payload_len == 0 {
                    Phase::End
                } else {
                    Phase::Payload
                };
                return Ok(Some(Step::Header {
                    payload_len: self.payload_len,
                }));
            }
            _ => return Err(FrameError::Malformed),
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crc::crc32;
    use proptest::prelude::*;

    extern crate std;
    use std::vec::Vec;

    fn sample(payload: &[u8]) -> FrameHeader {
        FrameHeader {
            nonce: Nonce([1, 2, 3, 4, 5, 6, 7, 8]),
            transfer_id: 0xDEAD_BEEF,
            index: 3,
            count: 12,
            bundle_len: 3000,
            sha256: [0xAB; 32],
            crc32: crc32(payload),
        }
    }

    /// Runs the streaming decoder over `bytes` cut at `cuts`; returns header and payload.
    fn stream(bytes: &[u8], cuts: &[usize]) -> Result<(FrameHeader, Vec<u8>), FrameError> {
        let mut dec = FrameDecoder::new();
        let mut payload = Vec::new();
        let mut headers = 0;
        let mut ends = 0;
        let mut at = 0;
        let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c <= bytes.len()).collect();
        bounds.sort_unstable();
        bounds.push(bytes.len());
        for end in bounds {
            let mut input = &bytes[at..end];
            at = end;
            while let Some(step) = dec.step(&mut input)? {
                match step {
                    Step::Header { payload_len } => {
                        headers += 1;
                        assert_eq!(payload_len, dec.payload_len());
                    }
                    Step::Payload(p) => payload.extend_from_slice(p),
                    Step::End => ends += 1,
                }
            }
        }
        dec.finish()?;
        assert_eq!((headers, ends), (1, 1));
        Ok((*dec.header(), payload))
    }

    #[test]
    fn header_max_len_is_the_worst_case() {
        let h = FrameHeader {
            transfer_id: u32::MAX,
            index: u16::MAX,
            count: u16::MAX,
            bundle_len: u32::MAX,
            crc32: u32::MAX,
            ..sample(b"")
        };
        let payload = [0u8; crate::MAX_BUNDLE_LEN as usize];
        let mut buf = std::vec![0u8; payload.len() + 100];
        let n = encode(&h, &payload, &mut buf).unwrap();
        assert_eq!(n - payload.len(), HEADER_MAX_LEN);
    }

    #[test]
    fn rejects_each_kind_of_damage() {
        let payload = b"hello";
        let mut buf = [0u8; 100];
        let n = encode(&sample(payload), payload, &mut buf).unwrap();
        assert_eq!(stream(&buf[..n - 1], &[]), Err(FrameError::Truncated));
        let mut long = buf;
        long[n] = 0;
        assert_eq!(stream(&long[..n + 1], &[]), Err(FrameError::Trailing));
        let mut bad = buf;
        bad[0] = 0x87; // array of 7
        assert_eq!(stream(&bad[..n], &[]), Err(FrameError::Malformed));
        let mut bad = buf;
        bad[1] = 0x47; // nonce of 7 bytes
        assert_eq!(stream(&bad[..n], &[]), Err(FrameError::Malformed));
        let mut bad = buf;
        bad[0] = 0x9F; // indefinite array
        assert_eq!(stream(&bad[..n], &[]), Err(FrameError::Malformed));
    }

    #[test]
    fn placement_checks_geometry() {
        let h = FrameHeader {
            index: 2,
            count: 3,
            bundle_len: 70,
            ..Default::default()
        };
        // chunk = round_up(ceil(70/3)=24, 32) = 32: frames of 32, 32, 6.
        assert_eq!(h.placement(6), Ok(64));
        assert_eq!(h.placement(7), Err(RejectCode::FrameOutOfRange));
        let past = FrameHeader { index: 3, ..h };
        assert_eq!(past.placement(6), Err(RejectCode::FrameOutOfRange));
    }

    proptest! {
        #[test]
        fn streaming_matches_minicbor_for_any_split(
            payload in proptest::collection::vec(any::<u8>(), 0..600),
            tid in any::<u32>(), index in any::<u16>(), count in any::<u16>(), len in any::<u32>(),
            cuts in proptest::collection::vec(0usize..700, 0..12),
        ) {
            let h = FrameHeader { transfer_id: tid, index, count, bundle_len: len, ..sample(&payload) };
            let mut buf = std::vec![0u8; payload.len() + HEADER_MAX_LEN + 8];
            let n = encode(&h, &payload, &mut buf).unwrap();
            let bytes = &buf[..n];
            let (dh, dp) = decode(bytes).unwrap();
            prop_assert_eq!(dh, h);
            prop_assert_eq!(dp, &payload[..]);
            let (sh, sp) = stream(bytes, &cuts).unwrap();
            prop_assert_eq!(sh, h);
            prop_assert_eq!(sp, payload.clone());
            // Cut short anywhere: truncated; byte by byte: same result.
            let short = cuts.first().copied().unwrap_or(0) % n;
            prop_assert_eq!(stream(&bytes[..short], &cuts), Err(FrameError::Truncated));
            let every: Vec<usize> = (0..n).collect();
            prop_assert_eq!(stream(bytes, &every).unwrap(), (h, payload));
        }
    }
}
