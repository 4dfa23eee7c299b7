//! A slot's header: the transfer record and one marker group per frame, so progress survives a
//! reboot.
//!
//! ```text
//! header + 0    transfer record, 64 bytes: magic, version, count, transfer id, bundle length,
//!               nonce, SHA-256, CRC-32 of the rest
//! header + 64   frame 0: three marker units of one write unit each, then frame 1, …
//! ```
//!
//! A marker unit is written (to zeros) only after the frame's payload is in flash and its CRC
//! matched. A frame is held when an odd number of its three units are written: the first marks it
//! held, the second revokes it (its page had to be erased), the third holds it again. A unit left
//! half written by a power cut still counts as written: it was only started after the frame was
//! checked. The record is written once, after the header and data pages were erased, so a valid
//! record always describes the pages after it.

use crate::flash::{Geometry, MAX_WRITE_SIZE};
use chunkprov_protocol::{Nonce, NONCE_LEN, SHA256_LEN};
use embedded_storage::nor_flash::NorFlash;

/// Bytes of the transfer record.
pub const RECORD_LEN: u32 = 64;
/// Marker units per frame.
pub const UNITS_PER_FRAME: u32 = 3;
const MAGIC: u8 = 0x54;
const VERSION: u8 = 1;

/// Header bytes a transfer of `count` frames needs with write unit `write_size`.
pub const fn header_len(count: u16, write_size: u32) -> u32 {
    RECORD_LEN + count as u32 * UNITS_PER_FRAME * write_size
}

/// What a slot is receiving, as stored in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferRecord {
    /// The request's nonce.
    pub nonce: Nonce,
    /// The cloud's transfer id.
    pub transfer_id: u32,
    /// Frames in the transfer.
    pub count: u16,
    /// Bundle length.
    pub bundle_len: u32,
    /// The bundle's SHA-256.
    pub sha256: [u8; SHA256_LEN],
}

impl TransferRecord {
    fn encode(&self) -> [u8; RECORD_LEN as usize] {
        crate::record::seal(&[
            &[MAGIC, VERSION],
            &self.count.to_le_bytes(),
            &self.transfer_id.to_le_bytes(),
            &self.bundle_len.to_le_bytes(),
            &self.nonce.0,
            &self.sha256,
        ])
    }

    fn decode(r: &[u8; RECORD_LEN as usize]) -> Option<Self> {
        if !crate::record::is_sealed(r) {
            return None;
        }
        let field = |at: usize, len: usize| r.get(at..at + len);
        if field(0, 2)? != [MAGIC, VERSION] {
            return None;
        }
        Some(Self {
            count: u16::from_le_bytes(field(2, 2)?.try_into().ok()?),
            transfer_id: u32::from_le_bytes(field(4, 4)?.try_into().ok()?),
            bundle_len: u32::from_le_bytes(field(8, 4)?.try_into().ok()?),
            nonce: Nonce(field(12, NONCE_LEN)?.try_into().ok()?),
            sha256: field(12 + NONCE_LEN, SHA256_LEN)?.try_into().ok()?,
        })
    }
}

/// Where a slot's header lies: whole erase units, before or beside its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Offset of the header's first byte.
    pub offset: u32,
    /// Size in bytes, whole erase units.
    pub size: u32,
}

/// A marker group could not take another change: the frame was revoked and held again already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkerError<E> {
    Exhausted,
    Flash(E),
}

impl Header {
    /// Erases the header pages a transfer of `count` frames uses.
    pub(crate) fn erase<F: NorFlash>(
        &self,
        flash: &mut F,
        g: &Geometry,
        count: u16,
    ) -> Result<(), F::Error> {
        let len = g.round_up(header_len(count, g.write_size()));
        flash.erase(self.offset, self.offset + len)
    }

    /// Writes the transfer record (the header pages must be erased).
    pub(crate) fn write_record<F: NorFlash>(
        &self,
        flash: &mut F,
        record: &TransferRecord,
    ) -> Result<(), F::Error> {
        flash.write(self.offset, &record.encode())
    }

    /// Reads the transfer record, if a valid one is there.
    pub fn read_record<F: NorFlash>(
        &self,
        flash: &mut F,
    ) -> Result<Option<TransferRecord>, F::Error> {
        let mut r = [0u8; RECORD_LEN as usize];
        flash.read(self.offset, &mut r)?;
        Ok(TransferRecord::decode(&r))
    }

    fn unit_offset(&self, g: &Geometry, index: u16, unit: u32) -> u32 {
        self.offset + RECORD_LEN + (u32::from(index) * UNITS_PER_FRAME + unit) * g.write_size()
    }

    /// How many of frame `index`'s marker units are written (0–3).
    pub(crate) fn written<F: NorFlash>(
        &self,
        flash: &mut F,
        g: &Geometry,
        index: u16,
    ) -> Result<u32, F::Error> {
        let ws = g.write_size() as usize;
        let mut buf = [0u8; (UNITS_PER_FRAME * MAX_WRITE_SIZE) as usize];
        let group = buf
            .get_mut(..ws * UNITS_PER_FRAME as usize)
            .unwrap_or(&mut []);
        flash.read(self.unit_offset(g, index, 0), group)?;
        Ok(group
            .chunks(ws.max(1))
            .filter(|u| u.iter().any(|&b| b != 0xFF))
            .count() as u32)
    }

    /// Whether frame `index` is held.
    pub(crate) fn is_held<F: NorFlash>(
        &self,
        flash: &mut F,
        g: &Geometry,
        index: u16,
    ) -> Result<bool, F::Error> {
        Ok(self.written(flash, g, index)? % 2 == 1)
    }

    /// Writes the next marker unit of frame `index` if that moves it to `held`.
    pub(crate) fn set<F: NorFlash>(
        &self,
        flash: &mut F,
        g: &Geometry,
        index: u16,
        held: bool,
    ) -> Result<(), MarkerError<F::Error>> {
        let n = self.written(flash, g, index).map_err(MarkerError::Flash)?;
        if (n % 2 == 1) == held {
            return Ok(());
        }
        if n >= UNITS_PER_FRAME {
            return Err(MarkerError::Exhausted);
        }
        let zeros = [0u8; MAX_WRITE_SIZE as usize];
        let unit = zeros.get(..g.write_size() as usize).unwrap_or(&[]);
        flash
            .write(self.unit_offset(g, index, n), unit)
            .map_err(MarkerError::Flash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let r = TransferRecord {
            nonce: Nonce([1, 2, 3, 4, 5, 6, 7, 8]),
            transfer_id: 0xA1B2C3D4,
            count: 300,
            bundle_len: 12345,
            sha256: [9; 32],
        };
        let bytes = r.encode();
        assert_eq!(TransferRecord::decode(&bytes), Some(r));
        for i in 0..64 {
            let mut bad = bytes;
            bad[i] ^= 0x10;
            assert_eq!(TransferRecord::decode(&bad), None, "byte {i}");
        }
        assert_eq!(TransferRecord::decode(&[0xFF; 64]), None);
    }
}
