//! Flash geometry, credential slots, and the one way this crate writes: compare, then program.

use chunkprov_protocol::FRAME_ALIGN;
use embedded_storage::nor_flash::NorFlash;

/// The largest write unit supported. Frames start on multiples of
/// [`FRAME_ALIGN`](chunkprov_protocol::FRAME_ALIGN), so no two frames share a unit this size.
pub const MAX_WRITE_SIZE: u32 = FRAME_ALIGN;

/// Write and erase granularity, in bytes.
///
/// For Rust flash drivers take it from the driver's constants with [`Geometry::of`]; flash
/// reached through callbacks (the C ABI) reports it at run time with [`Geometry::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    write_size: u32,
    erase_size: u32,
}

/// Why a geometry or slot is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeometryError {
    /// The write unit is not a power of two in `1..=MAX_WRITE_SIZE`.
    WriteSize,
    /// The erase unit is not a power of two at least as large as the write unit, or does not
    /// match the driver's.
    EraseSize,
    /// Reads must be possible at any byte offset (`READ_SIZE == 1`).
    ReadSize,
    /// The slot is empty, not aligned to erase units, or extends past the flash.
    Slot,
}

impl Geometry {
    /// A geometry reported at run time.
    pub const fn new(write_size: u32, erase_size: u32) -> Result<Self, GeometryError> {
        if !write_size.is_power_of_two() || write_size > MAX_WRITE_SIZE {
            return Err(GeometryError::WriteSize);
        }
        if !erase_size.is_power_of_two() || erase_size < write_size {
            return Err(GeometryError::EraseSize);
        }
        Ok(Self {
            write_size,
            erase_size,
        })
    }

    /// The geometry of a flash driver's constants.
    pub const fn of<F: NorFlash>() -> Result<Self, GeometryError> {
        Self::new(F::WRITE_SIZE as u32, F::ERASE_SIZE as u32)
    }

    /// The write unit.
    pub const fn write_size(&self) -> u32 {
        self.write_size
    }

    /// The erase unit (page).
    pub const fn erase_size(&self) -> u32 {
        self.erase_size
    }

    /// Checks that this geometry is compatible with flash driver `F`: a multiple of its units,
    /// byte-addressable reads.
    pub(crate) fn check_driver<F: NorFlash>(&self) -> Result<(), GeometryError> {
        if F::READ_SIZE != 1 {
            return Err(GeometryError::ReadSize);
        }
        if F::WRITE_SIZE == 0 || self.write_size as usize % F::WRITE_SIZE != 0 {
            return Err(GeometryError::WriteSize);
        }
        if F::ERASE_SIZE == 0 || self.erase_size as usize % F::ERASE_SIZE != 0 {
            return Err(GeometryError::EraseSize);
        }
        Ok(())
    }

    pub(crate) const fn page_start(&self, offset: u32) -> u32 {
        offset & !(self.erase_size - 1)
    }

    /// `len` rounded up to whole erase units (sizes are powers of two: masks, no division).
    pub(crate) const fn round_up(&self, len: u32) -> u32 {
        len.wrapping_add(self.erase_size - 1) & !(self.erase_size - 1)
    }

    /// Number of erase units `len` bytes touch.
    pub(crate) const fn pages(&self, len: u32) -> u32 {
        self.round_up(len) >> self.erase_size.trailing_zeros()
    }

    /// Whether `offset` is on an erase-unit boundary.
    pub(crate) const fn page_aligned(&self, offset: u32) -> bool {
        offset & (self.erase_size - 1) == 0
    }
}

/// A region of flash that holds one bundle: whole erase units, starting at `offset`.
///
/// A device has two (A/B): a transfer is received straight into the inactive one and a commit
/// switches which one is active, so the previous credentials stay intact until the new ones are
/// confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Offset of the slot's first byte in the flash.
    pub offset: u32,
    /// Size in bytes, a multiple of the erase unit.
    pub size: u32,
}

impl Slot {
    /// Checks alignment to `geometry` and that the slot lies within `capacity` bytes.
    pub fn check(&self, geometry: &Geometry, capacity: usize) -> Result<(), GeometryError> {
        let mask = geometry.erase_size - 1;
        let end = self
            .offset
            .checked_add(self.size)
            .ok_or(GeometryError::Slot)?;
        if self.size == 0
            || self.offset & mask != 0
            || self.size & mask != 0
            || end as usize > capacity
        {
            return Err(GeometryError::Slot);
        }
        Ok(())
    }
}

/// What [`program`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgramError<E> {
    /// Flash holds other bytes there; the unit cannot be written without an erase.
    Mismatch,
    /// The driver failed.
    Flash(E),
}

/// The most bytes compared and programmed in one flash call (and read per call when a bundle
/// is read back): four units of the largest size, a stack buffer.
pub(crate) const RUN: usize = 4 * MAX_WRITE_SIZE as usize;

/// Whether every byte is 0xFF, a word at a time.
fn is_erased(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(4);
    let whole = words.by_ref().all(|w| w == [0xFF; 4]);
    whole && words.remainder().iter().all(|&b| b == 0xFF)
}

/// Writes a run of whole write units (at most [`RUN`] bytes) at `offset` unless flash already
/// holds exactly these bytes. A run that is neither erased nor equal is never written (NOR flash
/// may only be written once between erases): the caller retries it unit by unit, and a unit that
/// is neither is a [`ProgramError::Mismatch`].
pub(crate) fn program<F: NorFlash>(
    flash: &mut F,
    offset: u32,
    data: &[u8],
) -> Result<(), ProgramError<F::Error>> {
    let mut buf = [0u8; RUN];
    let current = buf.get_mut(..data.len()).ok_or(ProgramError::Mismatch)?;
    flash.read(offset, current).map_err(ProgramError::Flash)?;
    if current == data {
        return Ok(());
    }
    if is_erased(current) {
        return flash.write(offset, data).map_err(ProgramError::Flash);
    }
    Err(ProgramError::Mismatch)
}
