//! The C ABI over [`chunkprov_device`], built as `libchunkprov.a`; the header
//! `include/chunkprov.h` is generated from this crate by cbindgen.
//!
//! Conventions, as in rustls-ffi: opaque state the caller allocates (sized and aligned by the
//! constants the header exports), one status enum, every pointer checked for NULL and every
//! length bounded before use, callbacks for everything outside (flash, logging), and no
//! panic path: the crate denies `unwrap`, `expect`, `panic!` and unchecked indexing, and its
//! panic handler is never reached.
#![no_std]
#![allow(non_camel_case_types)]
#![deny(
    unsafe_op_in_unsafe_fn,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod client;
mod flash;
mod log;
mod opaque;
mod reassembler;
mod status;

pub use client::*;
pub use flash::{chunkprov_geometry, chunkprov_platform};
pub use log::chunkprov_log_level;
pub use reassembler::*;
pub use status::{chunkprov_status, chunkprov_status_name};

/// Never reached: no code path of this library panics (see the crate's lints). If it ever
/// were, stopping here is the only safe thing a `no_std` library can do.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Computes the SHA-256 of `len` bytes at `data` into the 32 bytes at `out`, with the same
/// implementation the library verifies bundles with (useful to firmware, and the baseline of
/// the benchmarks).
///
/// Returns CHUNKPROV_STATUS_OK or CHUNKPROV_STATUS_NULL_ARGUMENT (`out` NULL, or `data` NULL
/// with `len` > 0).
///
/// # Safety
/// `data` readable for `len` bytes; `out` writable for 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn chunkprov_sha256(
    data: *const u8,
    len: usize,
    out: *mut u8,
) -> chunkprov_status {
    if out.is_null() || (data.is_null() && len > 0) {
        return chunkprov_status::NullArgument;
    }
    if len > isize::MAX as usize {
        return chunkprov_status::InvalidArgument;
    }
    let bytes = if len == 0 {
        &[][..]
    } else {
        // SAFETY: non-null, readable for `len` bytes per the contract.
        unsafe { core::slice::from_raw_parts(data, len) }
    };
    let digest = chunkprov_device::protocol::sha256::sha256(bytes);
    // SAFETY: `out` is writable for 32 bytes per the contract.
    unsafe { core::ptr::copy_nonoverlapping(digest.as_ptr(), out, 32) };
    chunkprov_status::Ok
}
