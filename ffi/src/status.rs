//! The one status enum.

use chunkprov_device::protocol::RejectCode;
use core::ffi::c_char;

/// The result of every chunkprov function.
///
/// Success values are below 64. Values 64–127 are the reasons a frame is rejected; they are the
/// protocol's rejection codes (protocol/README.md) with the same numbers. Values from 128 are
/// errors in how the library was called or in the platform's callbacks.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum chunkprov_status {
    /// Success. For chunkprov_reassembler_end(): the frame is now held.
    Ok = 0,
    /// chunkprov_reassembler_end(): the frame was already held and was ignored.
    Duplicate = 1,
    /// chunkprov_reassembler_end(): the frame completed the bundle, which was read back from
    /// flash and its SHA-256 verified. Call chunkprov_reassembler_credentials().
    Complete = 2,
    /// The frame is not CBOR of the frame's shape.
    FrameMalformed = 64,
    /// The message ended before the frame did.
    FrameTruncated = 65,
    /// The message has bytes after the frame's payload.
    FrameOversized = 66,
    /// The payload's CRC-32 does not match the header.
    FrameCrc = 67,
    /// The frame carries another request's nonce; nothing was written.
    ForeignNonce = 68,
    /// The frame's index, count or lengths are inconsistent, or it lies past the bundle's end.
    FrameOutOfRange = 69,
    /// The frame disagrees with earlier frames of the same transfer.
    FrameInconsistent = 70,
    /// The bundle does not fit the slot.
    SlotTooSmall = 71,
    /// Every frame arrived but the bundle's SHA-256 does not match; the transfer starts over.
    DigestMismatch = 72,
    /// The verified bundle is not a valid bundle; the transfer starts over.
    BundleInvalid = 73,
    /// Flash held other bytes where the frame goes: that page was erased and its frames must be
    /// asked for again (see chunkprov_reassembler_missing()).
    FlashMismatch = 74,
    /// The frame belongs to an older transfer than the one in progress.
    StaleTransfer = 75,
    /// A rejection code this version of the C ABI has no name for.
    Rejected = 127,
    /// A required pointer argument was NULL.
    NullArgument = 128,
    /// An argument is out of range: a geometry or slot the library cannot use, a length too
    /// large.
    InvalidArgument = 129,
    /// The state was not initialised with chunkprov_reassembler_init().
    NotInitialized = 130,
    /// A flash callback returned non-zero; its value was sent to the log callback.
    FlashError = 131,
    /// chunkprov_reassembler_end(): the frame was abandoned after chunkprov_reassembler_feed()
    /// reported that it could not take some of its bytes (a flash or platform error, or NULL
    /// data).
    Aborted = 132,
    /// chunkprov_reassembler_credentials(): the bundle is not complete and verified.
    NotComplete = 133,
}

impl From<RejectCode> for chunkprov_status {
    fn from(code: RejectCode) -> Self {
        match code {
            RejectCode::FrameMalformed => Self::FrameMalformed,
            RejectCode::FrameTruncated => Self::FrameTruncated,
            RejectCode::FrameOversized => Self::FrameOversized,
            RejectCode::FrameCrc => Self::FrameCrc,
            RejectCode::ForeignNonce => Self::ForeignNonce,
            RejectCode::FrameOutOfRange => Self::FrameOutOfRange,
            RejectCode::FrameInconsistent => Self::FrameInconsistent,
            RejectCode::SlotTooSmall => Self::SlotTooSmall,
            RejectCode::DigestMismatch => Self::DigestMismatch,
            RejectCode::BundleInvalid => Self::BundleInvalid,
            RejectCode::FlashMismatch => Self::FlashMismatch,
            RejectCode::StaleTransfer => Self::StaleTransfer,
            _ => Self::Rejected,
        }
    }
}

// The device-side statuses carry the protocol's numbers.
const _: () = {
    assert!(chunkprov_status::FrameMalformed as u16 == RejectCode::FrameMalformed as u16);
    assert!(chunkprov_status::StaleTransfer as u16 == RejectCode::StaleTransfer as u16);
    assert!(chunkprov_status::FlashMismatch as u16 == RejectCode::FlashMismatch as u16);
};

/// The name of a status (a chunkprov_status value) as a NUL-terminated string with static lifetime, e.g.
/// `"CHUNKPROV_STATUS_FRAME_CRC"`. Unknown values give `"CHUNKPROV_STATUS_UNKNOWN"`.
#[no_mangle]
pub extern "C" fn chunkprov_status_name(status: u32) -> *const c_char {
    // Taken as an integer: C may pass any value, and an out-of-range enum would be undefined.
    let name: &'static [u8] = match status {
        0 => b"CHUNKPROV_STATUS_OK\0",
        1 => b"CHUNKPROV_STATUS_DUPLICATE\0",
        2 => b"CHUNKPROV_STATUS_COMPLETE\0",
        64 => b"CHUNKPROV_STATUS_FRAME_MALFORMED\0",
        65 => b"CHUNKPROV_STATUS_FRAME_TRUNCATED\0",
        66 => b"CHUNKPROV_STATUS_FRAME_OVERSIZED\0",
        67 => b"CHUNKPROV_STATUS_FRAME_CRC\0",
        68 => b"CHUNKPROV_STATUS_FOREIGN_NONCE\0",
        69 => b"CHUNKPROV_STATUS_FRAME_OUT_OF_RANGE\0",
        70 => b"CHUNKPROV_STATUS_FRAME_INCONSISTENT\0",
        71 => b"CHUNKPROV_STATUS_SLOT_TOO_SMALL\0",
        72 => b"CHUNKPROV_STATUS_DIGEST_MISMATCH\0",
        73 => b"CHUNKPROV_STATUS_BUNDLE_INVALID\0",
        74 => b"CHUNKPROV_STATUS_FLASH_MISMATCH\0",
        75 => b"CHUNKPROV_STATUS_STALE_TRANSFER\0",
        127 => b"CHUNKPROV_STATUS_REJECTED\0",
        128 => b"CHUNKPROV_STATUS_NULL_ARGUMENT\0",
        129 => b"CHUNKPROV_STATUS_INVALID_ARGUMENT\0",
        130 => b"CHUNKPROV_STATUS_NOT_INITIALIZED\0",
        131 => b"CHUNKPROV_STATUS_FLASH_ERROR\0",
        132 => b"CHUNKPROV_STATUS_ABORTED\0",
        133 => b"CHUNKPROV_STATUS_NOT_COMPLETE\0",
        _ => b"CHUNKPROV_STATUS_UNKNOWN\0",
    };
    name.as_ptr().cast()
}
