//! Flash through C callbacks, as an `embedded-storage` `NorFlash`.

use crate::chunkprov_status;
use crate::log::{chunkprov_log_level, log};
use chunkprov_device::Geometry;
use core::ffi::{c_char, c_int, c_void};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Flash geometry reported by the platform's `geometry` callback.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct chunkprov_geometry {
    /// Write unit in bytes: a power of two from 1 to 32 (nRF9160: 4; native_sim: 1).
    pub write_size: u32,
    /// Erase unit (page) in bytes: a power of two, at least `write_size` (nRF9160: 4096).
    pub erase_size: u32,
    /// Size of the flash area the callbacks address, in bytes; offsets start at 0.
    pub capacity: u32,
}

/// What the library needs from the platform. Every callback gets `ctx` first and returns 0 on
/// success or a negative errno-style value, which is logged and reported as
/// CHUNKPROV_STATUS_FLASH_ERROR. The library keeps no pointer to this struct after a call
/// returns, so it may live on the stack.
#[repr(C)]
pub struct chunkprov_platform {
    /// Passed unchanged to every callback.
    pub ctx: *mut c_void,
    /// Read `len` bytes at `offset` into `buf`. Any offset and length within `capacity`.
    pub read: Option<
        unsafe extern "C" fn(ctx: *mut c_void, offset: u32, buf: *mut u8, len: u32) -> c_int,
    >,
    /// Program `len` bytes at `offset`. `offset` and `len` are multiples of `write_size`, and the
    /// bytes were erased: the library never writes a unit twice between erases.
    pub write: Option<
        unsafe extern "C" fn(ctx: *mut c_void, offset: u32, buf: *const u8, len: u32) -> c_int,
    >,
    /// Erase `len` bytes at `offset` (both multiples of `erase_size`) to 0xFF.
    pub erase: Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u32, len: u32) -> c_int>,
    /// Fill in the geometry.
    pub geometry:
        Option<unsafe extern "C" fn(ctx: *mut c_void, out: *mut chunkprov_geometry) -> c_int>,
    /// Receive one NUL-terminated diagnostic line (valid only during the call). May be NULL.
    /// Never called by a library built without its `log` feature.
    pub log: Option<
        unsafe extern "C" fn(ctx: *mut c_void, level: chunkprov_log_level, message: *const c_char),
    >,
    /// Fill `len` bytes at `buf` with random bytes (a request's nonce). Required by the client
    /// (chunkprov_client_*); may be NULL for the reassembler alone. On nRF91: the modem's or
    /// CryptoCell's TRNG, e.g. `sys_csrand_get()` on Zephyr.
    pub random: Option<unsafe extern "C" fn(ctx: *mut c_void, buf: *mut u8, len: u32)>,
}

type ReadFn = unsafe extern "C" fn(*mut c_void, u32, *mut u8, u32) -> c_int;
type WriteFn = unsafe extern "C" fn(*mut c_void, u32, *const u8, u32) -> c_int;
type EraseFn = unsafe extern "C" fn(*mut c_void, u32, u32) -> c_int;

/// A flash callback failed (or was asked for something outside the flash). Zero-sized: the
/// callback's value is logged where it is met, and every caller reports
/// CHUNKPROV_STATUS_FLASH_ERROR, so carrying it would only widen every `Result` on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault;

impl NorFlashError for Fault {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

/// The platform's flash, checked: callbacks present, geometry valid. Its `NorFlash` constants
/// are 1: the real units are given to the library at run time as a [`Geometry`], and the library
/// aligns every write and erase to them.
pub(crate) struct CFlash<'p> {
    pub platform: &'p chunkprov_platform,
    read: ReadFn,
    write: WriteFn,
    erase: EraseFn,
    capacity: u32,
}

impl<'p> CFlash<'p> {
    /// Checks a platform pointer and asks for its geometry.
    ///
    /// # Safety
    /// `platform` must be NULL or point to a valid `chunkprov_platform`.
    pub(crate) unsafe fn new(
        platform: *const chunkprov_platform,
    ) -> Result<(Self, Geometry), chunkprov_status> {
        // SAFETY: the caller promises NULL or a valid pointer.
        let platform = unsafe { platform.as_ref() }.ok_or(chunkprov_status::NullArgument)?;
        let (Some(read), Some(write), Some(erase), Some(geometry)) = (
            platform.read,
            platform.write,
            platform.erase,
            platform.geometry,
        ) else {
            return Err(chunkprov_status::NullArgument);
        };
        let mut g = chunkprov_geometry::default();
        // SAFETY: a valid callback with a pointer to a local.
        let rc = unsafe { geometry(platform.ctx, &mut g) };
        if rc != 0 {
            log!(platform, Error, "geometry callback failed: ", rc);
            return Err(chunkprov_status::FlashError);
        }
        let geometry = Geometry::new(g.write_size, g.erase_size).map_err(|_| {
            log!(
                platform,
                Error,
                "unsupported geometry: write ",
                g.write_size,
                " erase ",
                g.erase_size
            );
            chunkprov_status::InvalidArgument
        })?;
        Ok((
            Self {
                platform,
                read,
                write,
                erase,
                capacity: g.capacity,
            },
            geometry,
        ))
    }

    fn bounds(&self, offset: u32, len: usize) -> Result<u32, Fault> {
        let len = u32::try_from(len).map_err(|_| Fault)?;
        match offset.checked_add(len) {
            Some(end) if end <= self.capacity => Ok(len),
            _ => Err(Fault),
        }
    }

    fn check(&self, what: &str, offset: u32, rc: c_int) -> Result<(), Fault> {
        if rc == 0 {
            return Ok(());
        }
        log!(
            self.platform,
            Error,
            "flash ",
            what,
            " at ",
            crate::log::Hex(offset),
            " failed: ",
            rc
        );
        Err(Fault)
    }
}

impl ErrorType for CFlash<'_> {
    type Error = Fault;
}

impl ReadNorFlash for CFlash<'_> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Fault> {
        let len = self.bounds(offset, bytes.len())?;
        // SAFETY: `bytes` is valid for `len` bytes of writes.
        let rc = unsafe { (self.read)(self.platform.ctx, offset, bytes.as_mut_ptr(), len) };
        self.check("read", offset, rc)
    }

    fn capacity(&self) -> usize {
        self.capacity as usize
    }
}

impl NorFlash for CFlash<'_> {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 1;

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Fault> {
        let len = self.bounds(offset, bytes.len())?;
        // SAFETY: `bytes` is valid for `len` bytes of reads.
        let rc = unsafe { (self.write)(self.platform.ctx, offset, bytes.as_ptr(), len) };
        self.check("write", offset, rc)
    }

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Fault> {
        let len = to.checked_sub(from).ok_or(Fault)?;
        self.bounds(from, len as usize)?;
        // SAFETY: plain integers.
        let rc = unsafe { (self.erase)(self.platform.ctx, from, len) };
        self.check("erase", from, rc)
    }
}
