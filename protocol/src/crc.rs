//! CRC-32 as used by frames: the IEEE 802.3 polynomial, reflected, initial value and final XOR
//! `0xFFFF_FFFF` ("CRC-32/ISO-HDLC", the checksum of zlib's `crc32()`, Python's `binascii.crc32`
//! and Zephyr's `crc32_ieee()`). Check value: `crc32(b"123456789") == 0xCBF4_3926`.

const POLY: u32 = 0xEDB8_8320;

// The CRC of each 4-bit value: 64 bytes of table instead of the usual 1 KiB for bytes. Input is
// taken a 32-bit word at a time (eight nibble steps per word, no per-byte shifting), which on the
// Cortex-M33 costs about what the byte table does.
// Evaluated at compile time only: an out-of-bounds index would fail the build, not the device.
#[allow(clippy::indexing_slicing)]
const fn make_table() -> [u32; 16] {
    let mut table = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 4 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static TABLE: [u32; 16] = make_table();

/// One 4-bit step: the low nibble of `c` goes through the table.
#[inline(always)]
fn step(c: u32) -> u32 {
    // `c & 15` indexes a 16-entry table: always in bounds; `get` keeps clippy's
    // `indexing_slicing` lint satisfied and compiles to a plain load.
    let t = match TABLE.get((c & 15) as usize) {
        Some(v) => *v,
        None => 0,
    };
    t ^ (c >> 4)
}

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
    pub fn update(&mut self, bytes: &[u8]) {
        let mut c = self.state;
        let mut rest = bytes;
        loop {
            // A word (the reflected CRC takes bytes least significant first: little-endian) is
            // eight nibbles, a byte two. One loop for both keeps the step in one place, which
            // also stops the size optimiser from outlining it into a call per nibble.
            let (input, pairs, tail) = if let Some((word, tail)) = rest.split_first_chunk::<4>() {
                (u32::from_le_bytes(*word), 4, tail)
            } else if let Some((&byte, tail)) = rest.split_first() {
                (u32::from(byte), 1, tail)
            } else {
                break;
            };
            c ^= input;
            let mut left: u32 = pairs;
            loop {
                c = step(step(c));
                left -= 1;
                if left == 0 {
                    break;
                }
            }
            rest = tail;
        }
        self.state = c;
    }

    /// The checksum of everything added so far.
    pub const fn value(&self) -> u32 {
        self.state ^ 0xFFFF_FFFF
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

    /// The definition, one bit at a time.
    fn bitwise(bytes: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn matches_the_bitwise_definition_for_every_length_and_alignment() {
        let data: [u8; 80] = core::array::from_fn(|i| (i * 131 + 17) as u8);
        for start in 0..4 {
            for end in start..data.len() {
                assert_eq!(crc32(&data[start..end]), bitwise(&data[start..end]));
            }
        }
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
