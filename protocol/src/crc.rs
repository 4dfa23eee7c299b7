//! CRC-32 as used by frames: the IEEE 802.3 polynomial, reflected, initial value and final XOR
//! `0xFFFF_FFFF` ("CRC-32/ISO-HDLC", the checksum of zlib's `crc32()`, Python's `binascii.crc32`
//! and Zephyr's `crc32_ieee()`). Check value: `crc32(b"123456789") == 0xCBF4_3926`.

const POLY: u32 = 0xEDB8_8320;

// Evaluated at compile time only: an out-of-bounds index would fail the build, not the device.
#[allow(clippy::indexing_slicing)]
const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static TABLE: [u32; 256] = make_table();

/// An incremental CRC-32: feed bytes in any split, read the value at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crc32 {
    state: u32,
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// A CRC over no bytes yet.
    pub const fn new() -> Self {
        Self { state: 0xFFFF_FFFF }
    }

    /// Adds `bytes` to the checksum.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        let mut c = self.state;
        for &b in bytes {
            // `(c ^ b) & 0xFF` is always < 256, so the lookup cannot fail.
            let i = ((c ^ u32::from(b)) & 0xFF) as u8;
            c = lookup(i) ^ (c >> 8);
        }
        self.state = c;
    }

    /// The checksum of everything added so far.
    pub const fn value(&self) -> u32 {
        self.state ^ 0xFFFF_FFFF
    }
}

#[inline(always)]
fn lookup(i: u8) -> u32 {
    // A u8 index into a 256-entry table is always in bounds; `get` keeps clippy's
    // `indexing_slicing` lint satisfied and compiles to a plain load.
    match TABLE.get(usize::from(i)) {
        Some(v) => *v,
        None => 0,
    }
}

/// CRC-32 of `bytes` in one call.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(bytes);
    c.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn split_anywhere() {
        let data: [u8; 100] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        let whole = crc32(&data);
        for cut in 0..data.len() {
            let (a, b) = data.split_at(cut);
            let mut c = Crc32::new();
            c.update(a);
            c.update(b);
            assert_eq!(c.value(), whole, "cut at {cut}");
        }
    }
}
