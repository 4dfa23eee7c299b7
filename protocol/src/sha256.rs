//! SHA-256 (FIPS 180-4), small and free of panic paths, for checking bundles on the device.
//! (The cloud may use any implementation: the digest is the same.)

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// An incremental SHA-256.
#[derive(Debug, Clone)]
pub struct Sha256 {
    state: [u32; 8],
    block: [u8; 64],
    used: usize,
    total: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

use crate::copy_prefix;

#[inline(always)]
fn word(w: &[u32; 16], i: usize) -> u32 {
    // `i & 15` is always in bounds.
    w.get(i & 15).copied().unwrap_or(0)
}

fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    let mut w = [0u32; 16];
    for (wi, c) in w.iter_mut().zip(block.chunks_exact(4)) {
        *wi = u32::from_be_bytes(c.try_into().unwrap_or([0; 4]));
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for (i, k) in K.iter().enumerate() {
        let wi = if i < 16 {
            word(&w, i)
        } else {
            let w15 = word(&w, i + 1);
            let w2 = word(&w, i + 14);
            let s0 = w15.rotate_right(7) ^ w15.rotate_right(18) ^ (w15 >> 3);
            let s1 = w2.rotate_right(17) ^ w2.rotate_right(19) ^ (w2 >> 10);
            let v = word(&w, i)
                .wrapping_add(s0)
                .wrapping_add(word(&w, i + 9))
                .wrapping_add(s1);
            if let Some(slot) = w.get_mut(i & 15) {
                *slot = v;
            }
            v
        };
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = h
            .wrapping_add(s1)
            .wrapping_add(ch)
            .wrapping_add(*k)
            .wrapping_add(wi);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        h = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(v);
    }
}

impl Sha256 {
    /// A hash of no bytes yet.
    pub const fn new() -> Self {
        Self {
            state: H0,
            block: [0; 64],
            used: 0,
            total: 0,
        }
    }

    /// Adds `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.used > 0 {
            let n = copy_prefix(self.block.get_mut(self.used..).unwrap_or(&mut []), data);
            self.used += n;
            data = data.get(n..).unwrap_or(&[]);
            if self.used < 64 {
                return;
            }
            compress(&mut self.state, &self.block);
            self.used = 0;
        }
        while let Some((block, rest)) = data.split_first_chunk::<64>() {
            compress(&mut self.state, block);
            data = rest;
        }
        self.used = copy_prefix(&mut self.block, data);
    }

    /// Adds `len` bytes that `read` writes straight into the hasher's block buffer, at most 64
    /// at a time, with their offset from the first (bytes of flash, say: no buffer of the
    /// caller's own on the stack). Stops at `read`'s first error.
    pub fn update_from<E>(
        &mut self,
        len: u32,
        mut read: impl FnMut(u32, &mut [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut at = 0u32;
        while at < len {
            let n = (64 - self.used).min((len - at) as usize);
            if let Some(dst) = self.block.get_mut(self.used..self.used + n) {
                read(at, dst)?;
            }
            self.used += n;
            self.total = self.total.wrapping_add(n as u64);
            if self.used == 64 {
                compress(&mut self.state, &self.block);
                self.used = 0;
            }
            at += n as u32;
        }
        Ok(())
    }

    /// The digest of everything added.
    pub fn finalize(mut self) -> [u8; 32] {
        self.finish()
    }

    /// The digest of everything added, computed in place: unlike [`finalize`](Self::finalize)
    /// no copy of the hasher is made, and the hasher is spent afterwards (start a new one).
    pub fn finish(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        self.pad_and_compress(&mut out);
        out
    }

    /// Pads in place, in the block buffer (0x80, zeros, the length in bits big-endian in the
    /// last 8 bytes; one more block when those do not fit after the data), and writes the
    /// digest.
    fn pad_and_compress(&mut self, out: &mut [u8; 32]) {
        let bits = self.total.wrapping_mul(8);
        if let Some((marker, zeros)) = self
            .block
            .get_mut(self.used..)
            .and_then(<[u8]>::split_first_mut)
        {
            *marker = 0x80;
            zeros.fill(0);
        }
        if self.used >= 56 {
            compress(&mut self.state, &self.block);
            self.block.fill(0);
        }
        if let Some(length) = self.block.last_chunk_mut::<8>() {
            *length = bits.to_be_bytes();
        }
        compress(&mut self.state, &self.block);
        for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
            if let Ok(o) = <&mut [u8; 4]>::try_from(o) {
                *o = s.to_be_bytes();
            }
        }
    }
}

/// SHA-256 of `data` in one call.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::Digest;
    extern crate std;
    use std::{format, string::String};

    #[test]
    fn known_answers() {
        let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn padding_at_every_length_around_the_block_boundaries() {
        let data: [u8; 200] = core::array::from_fn(|i| (i * 7 + 1) as u8);
        for len in
            (0..=200).filter(|l| l % 64 <= 1 || (54..=57).contains(&(l % 64)) || l % 64 >= 62)
        {
            let want: [u8; 32] = sha2::Sha256::digest(&data[..len]).into();
            assert_eq!(sha256(&data[..len]), want, "length {len}");
        }
    }

    #[test]
    fn update_from_reads_in_place_in_any_split() {
        let data: [u8; 300] = core::array::from_fn(|i| (i * 13 + 5) as u8);
        for first in [0usize, 1, 63, 64, 65, 200] {
            let mut h = Sha256::new();
            h.update(&data[..first]);
            let mut reads = 0;
            h.update_from((data.len() - first) as u32, |at, buf: &mut [u8]| {
                reads += 1;
                assert!(buf.len() <= 64);
                let at = first + at as usize;
                buf.copy_from_slice(&data[at..at + buf.len()]);
                Ok::<(), ()>(())
            })
            .unwrap();
            assert!(reads >= (data.len() - first) / 64);
            assert_eq!(h.finish(), sha256(&data), "first {first}");
        }
        // The first error stops it and is returned.
        let mut h = Sha256::new();
        let mut calls = 0;
        let r = h.update_from(200, |at, _buf: &mut [u8]| {
            calls += 1;
            if at >= 64 {
                Err(at)
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err(64));
        assert_eq!(calls, 2);
    }

    proptest! {
        #[test]
        fn matches_sha2_for_any_split(data in proptest::collection::vec(any::<u8>(), 0..700), cut in 0usize..700) {
            let mut h = Sha256::new();
            let cut = cut.min(data.len());
            h.update(&data[..cut]);
            h.update(&data[cut..]);
            let want: [u8; 32] = sha2::Sha256::digest(&data).into();
            prop_assert_eq!(h.finalize(), want);
        }
    }
}
