//! The reassembler's C functions.

use crate::flash::{chunkprov_platform, CFlash, Fault};
use crate::log::log;
use crate::opaque::{self, Tagged};
use crate::status::chunkprov_status;
use chunkprov_device::protocol::bundle::{Layout, Span};
use chunkprov_device::protocol::{Nonce, NONCE_LEN};
use chunkprov_device::{Error, GeometryError, Outcome, Reassembler, Slot};
use core::mem::{align_of, size_of};

/// Bytes of storage a chunkprov_reassembler needs; the same on every supported target.
pub const CHUNKPROV_REASSEMBLER_SIZE: usize = 264;
/// Alignment a chunkprov_reassembler needs.
pub const CHUNKPROV_REASSEMBLER_ALIGN: usize = 8;
/// Length of a request's nonce in bytes.
pub const CHUNKPROV_NONCE_LEN: usize = 8;
const _: () = assert!(CHUNKPROV_NONCE_LEN == NONCE_LEN);

/// Storage for one reassembler. Allocate it anywhere (static, stack, inside your own struct),
/// initialise it with chunkprov_reassembler_init(), and touch it only through chunkprov
/// functions. It holds no pointers, so it may be copied while no call is running, and a
/// zero-filled one is "not initialised".
#[repr(C)]
pub struct chunkprov_reassembler {
    /// Not for use: the state's bytes.
    pub _opaque: [u64; CHUNKPROV_REASSEMBLER_WORDS],
}

/// CHUNKPROV_REASSEMBLER_SIZE in 64-bit words.
pub const CHUNKPROV_REASSEMBLER_WORDS: usize = 33;
const _: () = assert!(CHUNKPROV_REASSEMBLER_WORDS * 8 == CHUNKPROV_REASSEMBLER_SIZE);

/// Where one item of the bundle lies in flash.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct chunkprov_span {
    /// Offset from the start of the flash area the platform callbacks address.
    pub offset: u32,
    /// Length in bytes; 0 if the bundle does not have this item. PEM items include their
    /// trailing NUL (pass `len` to mbedTLS, `len - 1` to the nRF91 modem).
    pub len: u32,
}

/// Where each credential of a verified bundle lies in flash.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct chunkprov_credentials {
    /// The thing name: the client id to use from now on. Text without NUL.
    pub thing_name: chunkprov_span,
    /// The certificate id, to name in the confirmation. Text without NUL.
    pub certificate_id: chunkprov_span,
    /// The device certificate: PEM and NUL.
    pub certificate: chunkprov_span,
    /// The private key (key mode): PEM and NUL. Length 0 in CSR mode.
    pub private_key: chunkprov_span,
    /// The server CA: PEM and NUL. Length 0 if the bundle has none.
    pub server_ca: chunkprov_span,
}

const MAGIC: u32 = 0x6368_6b72; // "chkr"

type State = Tagged<Reassembler>;

// The exported size and alignment hold on every target this crate is built for (the CI builds
// it for x86_64 and for 32-bit thumbv8m.main).
const _: () = assert!(size_of::<State>() <= CHUNKPROV_REASSEMBLER_SIZE);
const _: () = assert!(align_of::<State>() <= CHUNKPROV_REASSEMBLER_ALIGN);
const _: () = assert!(align_of::<chunkprov_reassembler>() == CHUNKPROV_REASSEMBLER_ALIGN);
const _: () = assert!(size_of::<chunkprov_reassembler>() == CHUNKPROV_REASSEMBLER_SIZE);

fn geometry_name(e: GeometryError) -> &'static str {
    match e {
        GeometryError::WriteSize => "write unit",
        GeometryError::EraseSize => "erase unit",
        GeometryError::ReadSize => "read unit",
        GeometryError::Slot => "slot",
    }
}

/// # Safety
/// `r` must be NULL or point to a `chunkprov_reassembler` valid for reads and writes.
unsafe fn state<'a>(
    r: *mut chunkprov_reassembler,
) -> Result<&'a mut Reassembler, chunkprov_status> {
    // SAFETY: per the contract; size and alignment are asserted above.
    unsafe { opaque::get(r.cast::<State>(), MAGIC) }
}

fn status_of(platform: &chunkprov_platform, e: Error<Fault>) -> chunkprov_status {
    match e {
        Error::Rejected(code) => {
            log!(platform, Warn, "frame rejected: ", code);
            code.into()
        }
        Error::Flash(_) => chunkprov_status::FlashError,
        Error::Aborted => chunkprov_status::Aborted,
    }
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(status) => return status,
        }
    };
}

/// Initialises `r` to receive the frames that answer the request with `nonce`
/// (CHUNKPROV_NONCE_LEN bytes), writing them into the slot of `slot_size` bytes at
/// `slot_offset`. The slot must be whole erase units inside the flash the platform reports.
///
/// Returns CHUNKPROV_STATUS_OK, CHUNKPROV_STATUS_NULL_ARGUMENT (any pointer, or a required
/// callback), CHUNKPROV_STATUS_INVALID_ARGUMENT (geometry or slot) or
/// CHUNKPROV_STATUS_FLASH_ERROR (the geometry callback failed).
///
/// # Safety
/// `r` must point to writable storage for a `chunkprov_reassembler`; `platform` to a valid
/// platform; `nonce` to CHUNKPROV_NONCE_LEN readable bytes. NULL is checked.
#[no_mangle]
pub unsafe extern "C" fn chunkprov_reassembler_init(
    r: *mut chunkprov_reassembler,
    platform: *const chunkprov_platform,
    slot_offset: u32,
    slot_size: u32,
    nonce: *const u8,
) -> chunkprov_status {
    if r.is_null() || nonce.is_null() {
        return chunkprov_status::NullArgument;
    }
    // SAFETY: checked for NULL; valid per the contract.
    let (flash, geometry) = tri!(unsafe { CFlash::new(platform) });
    let mut n = [0u8; NONCE_LEN];
    // SAFETY: `nonce` points to NONCE_LEN readable bytes per the contract.
    unsafe { core::ptr::copy_nonoverlapping(nonce, n.as_mut_ptr(), NONCE_LEN) };
    let slot = Slot {
        offset: slot_offset,
        size: slot_size,
    };
    let inner = match Reassembler::new(&flash, geometry, slot, Nonce(n)) {
        Ok(inner) => inner,
        Err(e) => {
            log!(
                flash.platform,
                Error,
                "unusable slot or geometry: ",
                geometry_name(e)
            );
            return chunkprov_status::InvalidArgument;
        }
    };
    // SAFETY: `r` is non-null, writable, sized and aligned for `State` (asserted above).
    unsafe { opaque::put(r.cast::<State>(), MAGIC, inner) };
    log!(
        flash.platform,
        Debug,
        "slot ",
        crate::log::Hex(slot_offset),
        "+",
        crate::log::Hex(slot_size),
        ", write unit ",
        geometry.write_size(),
        ", page ",
        geometry.erase_size()
    );
    chunkprov_status::Ok
}

/// Takes the next `len` bytes of the current frame message (any split: one byte, a whole
/// frame, anything between). The first call after chunkprov_reassembler_end() or
/// chunkprov_reassembler_init() starts a new frame. Payload bytes are written to flash as they
/// arrive.
///
/// Returns CHUNKPROV_STATUS_OK, or early notice that the frame is abandoned: a rejection
/// (64–127), CHUNKPROV_STATUS_FLASH_ERROR, CHUNKPROV_STATUS_NULL_ARGUMENT (`data` NULL with
/// `len` > 0) or CHUNKPROV_STATUS_INVALID_ARGUMENT. Keep feeding (or stop) and call
/// chunkprov_reassembler_end() at the end of the message either way; it gives the verdict.
///
/// # Safety
/// `r` initialised; `platform` valid; `data` readable for `len` bytes (may be NULL if `len`
/// is 0).
#[no_mangle]
pub unsafe extern "C" fn chunkprov_reassembler_feed(
    r: *mut chunkprov_reassembler,
    platform: *const chunkprov_platform,
    data: *const u8,
    len: usize,
) -> chunkprov_status {
    // SAFETY: per the contract.
    let inner = tri!(unsafe { state(r) });
    // SAFETY: per the contract.
    let mut flash = match unsafe { CFlash::new(platform) } {
        Ok((flash, _)) => flash,
        Err(status) => {
            // These bytes are lost to the frame: abandon it rather than read on as if they
            // had been taken.
            inner.abort();
            return status;
        }
    };
    if len == 0 {
        return chunkprov_status::Ok;
    }
    if data.is_null() || len > isize::MAX as usize {
        inner.abort();
        return if data.is_null() {
            chunkprov_status::NullArgument
        } else {
            chunkprov_status::InvalidArgument
        };
    }
    // SAFETY: non-null, readable for `len` bytes per the contract, len ≤ isize::MAX.
    let bytes = unsafe { core::slice::from_raw_parts(data, len) };
    let before = inner.transfer_id();
    let result = inner.feed(&mut flash, bytes);
    if inner.transfer_id() != before {
        if let Some(id) = inner.transfer_id() {
            log!(
                flash.platform,
                Info,
                "transfer ",
                id,
                " started: ",
                inner.count(),
                " frames, ",
                inner.bundle_len(),
                " bytes"
            );
        }
    }
    match result {
        Ok(()) => chunkprov_status::Ok,
        Err(e) => status_of(flash.platform, e),
    }
}

/// Ends the current frame message and gives the verdict on its frame:
/// CHUNKPROV_STATUS_OK (now held), CHUNKPROV_STATUS_DUPLICATE (already held, ignored),
/// CHUNKPROV_STATUS_COMPLETE (the bundle is complete and verified; also for a frame delivered
/// again after a read-back that failed on a flash error), a rejection (64–127),
/// CHUNKPROV_STATUS_FLASH_ERROR or CHUNKPROV_STATUS_ABORTED. If `index` is not NULL it receives
/// the frame's index whenever the header was read.
///
/// # Safety
/// `r` initialised; `platform` valid; `index` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chunkprov_reassembler_end(
    r: *mut chunkprov_reassembler,
    platform: *const chunkprov_platform,
    index: *mut u16,
) -> chunkprov_status {
    // SAFETY: per the contract.
    let inner = tri!(unsafe { state(r) });
    // SAFETY: per the contract.
    let mut flash = match unsafe { CFlash::new(platform) } {
        Ok((flash, _)) => flash,
        Err(status) => {
            // The message is over whether or not flash can be reached: end it, unheld.
            inner.abandon();
            return status;
        }
    };
    let status = match inner.end(&mut flash) {
        Ok(Outcome::Accepted { index }) => {
            log!(
                flash.platform,
                Debug,
                "frame ",
                index,
                " held (",
                inner.held(),
                "/",
                inner.count(),
                ")"
            );
            chunkprov_status::Ok
        }
        Ok(Outcome::Duplicate { index }) => {
            log!(flash.platform, Debug, "frame ", index, " already held");
            chunkprov_status::Duplicate
        }
        Ok(Outcome::Complete(layout)) => {
            log!(
                flash.platform,
                Info,
                "bundle complete: ",
                inner.count(),
                " frames, certificate ",
                layout.certificate.len,
                " bytes"
            );
            chunkprov_status::Complete
        }
        Err(e) => status_of(flash.platform, e),
    };
    if !index.is_null() {
        if let Some(i) = inner.last_index() {
            // SAFETY: non-null and writable per the contract.
            unsafe { index.write(i) };
        }
    }
    status
}

/// Reports progress: the transfer id (0 before the first valid frame), frames held and frames
/// in the transfer (0 before the first valid frame). Any output pointer may be NULL.
///
/// # Safety
/// `r` initialised; each output NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chunkprov_reassembler_progress(
    r: *mut chunkprov_reassembler,
    transfer_id: *mut u32,
    held: *mut u16,
    count: *mut u16,
) -> chunkprov_status {
    // SAFETY: per the contract.
    let inner = tri!(unsafe { state(r) });
    // SAFETY: each pointer is NULL or writable per the contract.
    unsafe {
        if let Some(t) = transfer_id.as_mut() {
            *t = inner.transfer_id().unwrap_or(0);
        }
        if let Some(h) = held.as_mut() {
            *h = inner.held();
        }
        if let Some(c) = count.as_mut() {
            *c = inner.count();
        }
    }
    chunkprov_status::Ok
}

/// Writes the indices of up to `capacity` frames not held yet, lowest first, into `out`, and
/// their total number into `*missing` (which may exceed `capacity`). Before the first valid
/// frame the count of frames is unknown and `*missing` is 0.
///
/// # Safety
/// `r` initialised; `out` writable for `capacity` entries (may be NULL if `capacity` is 0);
/// `missing` writable.
#[no_mangle]
pub unsafe extern "C" fn chunkprov_reassembler_missing(
    r: *mut chunkprov_reassembler,
    out: *mut u16,
    capacity: usize,
    missing: *mut usize,
) -> chunkprov_status {
    // SAFETY: per the contract.
    let inner = tri!(unsafe { state(r) });
    if missing.is_null() || (out.is_null() && capacity > 0) {
        return chunkprov_status::NullArgument;
    }
    let mut total = 0usize;
    for i in inner.missing() {
        if total < capacity {
            // SAFETY: `out` is writable for `capacity` entries and `total < capacity`.
            unsafe { out.add(total).write(i) };
        }
        total += 1;
    }
    // SAFETY: non-null and writable per the contract.
    unsafe { missing.write(total) };
    chunkprov_status::Ok
}

/// Fills `out` with where each credential of the verified bundle lies in flash (offsets from
/// the start of the platform's flash area). Reads only item headers and the last byte of each
/// PEM from flash.
///
/// Returns CHUNKPROV_STATUS_OK, CHUNKPROV_STATUS_NOT_COMPLETE before the bundle is complete and
/// verified, or CHUNKPROV_STATUS_FLASH_ERROR.
///
/// # Safety
/// `r` initialised; `platform` valid; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn chunkprov_reassembler_credentials(
    r: *mut chunkprov_reassembler,
    platform: *const chunkprov_platform,
    out: *mut chunkprov_credentials,
) -> chunkprov_status {
    // SAFETY: per the contract.
    let inner = tri!(unsafe { state(r) });
    // SAFETY: per the contract.
    let (mut flash, _) = tri!(unsafe { CFlash::new(platform) });
    if out.is_null() {
        return chunkprov_status::NullArgument;
    }
    if !inner.is_complete() {
        return chunkprov_status::NotComplete;
    }
    let layout: Layout = match inner.credentials(&mut flash) {
        Ok(layout) => layout,
        Err(e) => return status_of(flash.platform, e),
    };
    let span = |s: Option<Span>| {
        s.map_or(chunkprov_span::default(), |s| chunkprov_span {
            offset: s.offset,
            len: s.len,
        })
    };
    let creds = chunkprov_credentials {
        thing_name: span(Some(layout.thing_name)),
        certificate_id: span(Some(layout.certificate_id)),
        certificate: span(Some(layout.certificate)),
        private_key: span(layout.private_key),
        server_ca: span(layout.server_ca),
    };
    // SAFETY: non-null and writable per the contract.
    unsafe { out.write(creds) };
    chunkprov_status::Ok
}
