//! Rust state in storage the caller allocates: a magic number first, so a call on storage that
//! was never initialised is an error code instead of undefined behaviour.

use crate::status::chunkprov_status;

/// The layout of every opaque state: the magic, then the state.
#[repr(C)]
pub(crate) struct Tagged<T> {
    magic: u32,
    inner: T,
}

/// The state in `storage`, if it was initialised with `magic`.
///
/// # Safety
/// `storage` must be NULL or point to memory valid for reads and writes of a `Tagged<T>`
/// (sized and aligned for it: the callers assert that at compile time).
pub(crate) unsafe fn get<'a, T>(
    storage: *mut Tagged<T>,
    magic: u32,
) -> Result<&'a mut T, chunkprov_status> {
    if storage.is_null() {
        return Err(chunkprov_status::NullArgument);
    }
    // SAFETY: non-null and valid per the contract; the magic is read before the rest of the
    // state is trusted.
    let found = unsafe { core::ptr::addr_of!((*storage).magic).read() };
    if found != magic {
        return Err(chunkprov_status::NotInitialized);
    }
    // SAFETY: initialised by `put` (the magic matches).
    Ok(unsafe { &mut (*storage).inner })
}

/// Initialises `storage` with `inner`, tagged with `magic`.
///
/// # Safety
/// `storage` must be non-null and valid for writes of a `Tagged<T>`.
pub(crate) unsafe fn put<T>(storage: *mut Tagged<T>, magic: u32, inner: T) {
    // SAFETY: per the contract.
    unsafe { storage.write(Tagged { magic, inner }) };
}
