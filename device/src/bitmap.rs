//! One bit per frame: which frames are held.

use chunkprov_protocol::MAX_FRAMES;

const BYTES: usize = MAX_FRAMES as usize / 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bitmap([u8; BYTES]);

impl Bitmap {
    pub(crate) const fn new() -> Self {
        Self([0; BYTES])
    }

    pub(crate) fn get(&self, index: u16) -> bool {
        self.0
            .get(usize::from(index / 8))
            .is_some_and(|b| b & (1 << (index % 8)) != 0)
    }

    pub(crate) fn set(&mut self, index: u16, value: bool) {
        if let Some(b) = self.0.get_mut(usize::from(index / 8)) {
            if value {
                *b |= 1 << (index % 8);
            } else {
                *b &= !(1 << (index % 8));
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    pub(crate) fn clear(&mut self) {
        self.0 = [0; BYTES];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_clear() {
        let mut b = Bitmap::new();
        for i in (0..MAX_FRAMES).step_by(7) {
            b.set(i, true);
        }
        for i in 0..MAX_FRAMES {
            assert_eq!(b.get(i), i % 7 == 0);
        }
        b.set(7, false);
        assert!(!b.get(7));
        assert!(!b.get(MAX_FRAMES));
        b.set(MAX_FRAMES, true);
        b.clear();
        assert_eq!(b, Bitmap::new());
    }
}
