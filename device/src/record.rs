//! Fixed-size flash records sealed with a CRC-32 in their last four bytes: a record whose CRC
//! does not match was torn by a power cut (or was never written) and is not a record.

use chunkprov_protocol::crc::crc32;

/// Packs `fields` one after the other into an `N`-byte record (zeros after them) and seals it.
pub(crate) fn seal<const N: usize>(fields: &[&[u8]]) -> [u8; N] {
    let mut r = [0u8; N];
    let mut at = 0;
    for f in fields {
        if let Some(dst) = r.get_mut(at..) {
            at += chunkprov_protocol::copy_prefix(dst, f);
        }
    }
    if let Some((body, crc)) = r.split_last_chunk_mut::<4>() {
        *crc = crc32(body).to_le_bytes();
    }
    r
}

/// Whether a record's CRC matches its contents.
pub(crate) fn is_sealed<const N: usize>(r: &[u8; N]) -> bool {
    r.split_last_chunk::<4>()
        .is_some_and(|(body, crc)| crc32(body) == u32::from_le_bytes(*crc))
}
