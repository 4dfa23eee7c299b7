//! A NOR flash simulator enforcing NOR semantics: writes only clear bits, a write unit written
//! twice without an erase is an error, erase sets a page to 0xFF, misaligned or out-of-range
//! access is an error. It counts operations and can fail the N-th one.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimError {
    NotAligned,
    OutOfBounds,
    /// A write unit was written twice without an erase in between.
    WrittenTwice,
    /// The operation was made to fail.
    Injected,
    /// Power was cut: this and every later operation fails until [`NorSim::reboot`].
    PowerCut,
}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SimError::NotAligned => NorFlashErrorKind::NotAligned,
            SimError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub reads: u64,
    pub writes: u64,
    /// Write units programmed.
    pub units: u64,
    pub erases: u64,
    /// Pages erased.
    pub pages: u64,
}

pub struct NorSim<const W: usize, const E: usize> {
    pub mem: Vec<u8>,
    written: Vec<bool>,
    pub counts: Counts,
    /// Fail the write or erase with this number (1-based), counting from creation.
    pub fail_op: Option<u64>,
    /// Cut power at the write or erase with this number (1-based), counting from creation:
    /// that operation does nothing, or half of its work if `cut_half`.
    pub cut_at: Option<u64>,
    /// Whether the cut operation is left half done (half the bytes written, half the page
    /// erased).
    pub cut_half: bool,
    dead: bool,
    ops: u64,
}

impl<const W: usize, const E: usize> NorSim<W, E> {
    pub fn new(pages: usize) -> Self {
        Self {
            mem: vec![0xFF; pages * E],
            written: vec![false; pages * E / W],
            counts: Counts::default(),
            fail_op: None,
            cut_at: None,
            cut_half: false,
            dead: false,
            ops: 0,
        }
    }

    /// Power comes back: operations work again (no further cut is scheduled).
    pub fn reboot(&mut self) {
        self.dead = false;
        self.cut_at = None;
    }

    /// Writes and erases so far (including failed ones).
    pub fn ops(&self) -> u64 {
        self.ops
    }

    fn check(&self, offset: u32, len: usize, align: usize) -> Result<(), SimError> {
        let o = offset as usize;
        if o % align != 0 || len % align != 0 {
            return Err(SimError::NotAligned);
        }
        if o + len > self.mem.len() {
            return Err(SimError::OutOfBounds);
        }
        Ok(())
    }

    /// Counts an operation; `Ok(true)` if it must be left half done and then fail.
    fn op(&mut self) -> Result<bool, SimError> {
        if self.dead {
            return Err(SimError::PowerCut);
        }
        self.ops += 1;
        if self.fail_op == Some(self.ops) {
            return Err(SimError::Injected);
        }
        if self.cut_at == Some(self.ops) {
            self.dead = true;
            if !self.cut_half {
                return Err(SimError::PowerCut);
            }
            return Ok(true);
        }
        Ok(false)
    }
}

impl<const W: usize, const E: usize> ErrorType for NorSim<W, E> {
    type Error = SimError;
}

impl<const W: usize, const E: usize> ReadNorFlash for NorSim<W, E> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        if self.dead {
            return Err(SimError::PowerCut);
        }
        self.check(offset, bytes.len(), 1)?;
        self.counts.reads += 1;
        bytes.copy_from_slice(&self.mem[offset as usize..offset as usize + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl<const W: usize, const E: usize> NorFlash for NorSim<W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        if to < from {
            return Err(SimError::OutOfBounds);
        }
        self.check(from, (to - from) as usize, E)?;
        let half = self.op()?;
        self.counts.erases += 1;
        self.counts.pages += u64::from(to - from) / E as u64;
        // A cut erase leaves the first half of the range erased, the rest as it was.
        let end = if half { from + (to - from) / 2 } else { to };
        self.mem[from as usize..end as usize].fill(0xFF);
        self.written[from as usize / W..end as usize / W].fill(false);
        if half {
            return Err(SimError::PowerCut);
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        self.check(offset, bytes.len(), W)?;
        let first = offset as usize / W;
        let units = bytes.len() / W;
        if self.written[first..first + units].iter().any(|&w| w) {
            return Err(SimError::WrittenTwice);
        }
        let half = self.op()?;
        self.counts.writes += 1;
        self.counts.units += units as u64;
        // A cut write programs the first half of the bytes. Units it reached count as written
        // (programming one again without an erase is a NOR violation, even one left half
        // programmed); units it never reached are still erased.
        let n = if half { bytes.len() / 2 } else { bytes.len() };
        for (m, b) in self.mem[offset as usize..].iter_mut().zip(&bytes[..n]) {
            *m &= *b;
        }
        self.written[first..first + n.div_ceil(W)].fill(true);
        if half {
            return Err(SimError::PowerCut);
        }
        Ok(())
    }
}
