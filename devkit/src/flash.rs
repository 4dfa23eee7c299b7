//! NOR flash in a file, one per simulated device, with NOR semantics (as
//! `device/tests/support/nor.rs`): a write only clears bits, a write unit written twice without
//! an erase is an error, an erase sets whole pages to `0xFF`, misaligned or out-of-range access
//! is an error. Every write and erase goes to the file at once, so a simulator process killed
//! mid-transfer leaves what a device losing power between two flash operations would, and the
//! next run resumes from it.

use anyhow::{Context, Result};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Write unit (bytes): the nRF9160's internal flash programs 32-bit words.
pub const WRITE_SIZE: usize = 4;
/// Erase unit (bytes).
pub const ERASE_SIZE: usize = 4096;

/// A flash error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError {
    /// Offset or length not a multiple of the unit.
    NotAligned,
    /// Past the end.
    OutOfBounds,
    /// A write unit written twice without an erase in between.
    WrittenTwice,
    /// The file could not be written.
    Io,
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::NotAligned => NorFlashErrorKind::NotAligned,
            FlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// A NOR flash image backed by a file.
pub struct FileFlash {
    file: File,
    mem: Vec<u8>,
    written: Vec<bool>,
    /// Write and erase operations so far.
    pub ops: u64,
}

impl FileFlash {
    /// Opens the image at `path`, creating an erased one of `pages` pages if there is none.
    /// Which units were written is taken from their contents (a unit holding anything but
    /// `0xFF` counts as written).
    pub fn open(path: &Path, pages: usize) -> Result<Self> {
        let size = pages * ERASE_SIZE;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening flash image {}", path.display()))?;
        let mut mem = vec![0xFF; size];
        let len = file.metadata()?.len() as usize;
        if len == 0 {
            file.write_all_at(&mem, 0)
                .with_context(|| format!("creating flash image {}", path.display()))?;
        } else if len != size {
            anyhow::bail!(
                "flash image {} is {len} bytes, expected {size}",
                path.display()
            );
        } else {
            file.read_exact_at(&mut mem, 0)
                .with_context(|| format!("reading flash image {}", path.display()))?;
        }
        let written = mem
            .chunks(WRITE_SIZE)
            .map(|u| u.iter().any(|&b| b != 0xFF))
            .collect();
        Ok(Self {
            file,
            mem,
            written,
            ops: 0,
        })
    }

    /// The bytes at `offset..offset + len` (for handing credentials to the TLS stack).
    pub fn bytes(&self, offset: u32, len: u32) -> Option<&[u8]> {
        self.mem
            .get(offset as usize..(offset as usize).checked_add(len as usize)?)
    }

    fn check(&self, offset: u32, len: usize, align: usize) -> Result<(), FlashError> {
        let o = offset as usize;
        if !o.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(FlashError::NotAligned);
        }
        if o + len > self.mem.len() {
            return Err(FlashError::OutOfBounds);
        }
        Ok(())
    }

    fn persist(&self, from: usize, to: usize) -> Result<(), FlashError> {
        self.file
            .write_all_at(&self.mem[from..to], from as u64)
            .map_err(|_| FlashError::Io)
    }
}

impl ErrorType for FileFlash {
    type Error = FlashError;
}

impl ReadNorFlash for FileFlash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        self.check(offset, bytes.len(), 1)?;
        bytes.copy_from_slice(&self.mem[offset as usize..offset as usize + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl NorFlash for FileFlash {
    const WRITE_SIZE: usize = WRITE_SIZE;
    const ERASE_SIZE: usize = ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        if to < from {
            return Err(FlashError::OutOfBounds);
        }
        self.check(from, (to - from) as usize, ERASE_SIZE)?;
        self.ops += 1;
        let (f, t) = (from as usize, to as usize);
        self.mem[f..t].fill(0xFF);
        self.written[f / WRITE_SIZE..t / WRITE_SIZE].fill(false);
        self.persist(f, t)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.check(offset, bytes.len(), WRITE_SIZE)?;
        let first = offset as usize / WRITE_SIZE;
        let units = bytes.len() / WRITE_SIZE;
        if self.written[first..first + units].iter().any(|&w| w) {
            return Err(FlashError::WrittenTwice);
        }
        self.ops += 1;
        let o = offset as usize;
        for (m, b) in self.mem[o..o + bytes.len()].iter_mut().zip(bytes) {
            *m &= *b;
        }
        self.written[first..first + units].fill(true);
        self.persist(o, o + bytes.len())
    }
}
