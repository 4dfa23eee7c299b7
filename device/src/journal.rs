//! The journal: the device's provisioning state as one 32-byte record, appended to one of two
//! flash pages. The newest valid record (highest sequence number, CRC intact) is the state.
//!
//! Every change writes a whole new record, so the state moves from one complete record to the
//! next: a write cut short leaves a record whose CRC fails and the previous one stands. When the
//! active page is full the other page is erased and the next record goes to its start; a cut
//! during that erase or write leaves the full page, and its newest record, untouched. Records are
//! 32 bytes, the largest supported write unit, so each is one aligned write on every geometry;
//! pages hold `erase_size / 32` of them.

use crate::flash::Geometry;
use embedded_storage::nor_flash::NorFlash;

/// Bytes per record.
pub const RECORD_LEN: usize = 32;
const MAGIC: u8 = 0xC7;
const VERSION: u8 = 1;
const NONE: u8 = 0xFF;

/// One of the two credential slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SlotId {
    /// Slot A.
    A = 0,
    /// Slot B.
    B = 1,
}

impl SlotId {
    /// The other slot.
    pub const fn other(self) -> SlotId {
        match self {
            SlotId::A => SlotId::B,
            SlotId::B => SlotId::A,
        }
    }

    fn to_byte(slot: Option<SlotId>) -> u8 {
        slot.map_or(NONE, |s| s as u8)
    }

    fn from_byte(b: u8) -> Result<Option<SlotId>, ()> {
        match b {
            0 => Ok(Some(SlotId::A)),
            1 => Ok(Some(SlotId::B)),
            NONE => Ok(None),
            _ => Err(()),
        }
    }
}

/// The persisted state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct State {
    /// Sequence number of the record; grows by one per record.
    pub seq: u32,
    /// The slot holding the confirmed credentials, or `None` while the device still uses its
    /// claim credentials.
    pub confirmed: Option<SlotId>,
    /// A slot holding a verified bundle waiting for confirmation.
    pub pending: Option<SlotId>,
    /// The transfer whose bundle is pending.
    pub pending_transfer: u32,
    /// Failed confirmation attempts of the pending bundle.
    pub confirm_attempts: u16,
    /// Boots since provisioning (or the pending confirmation) began.
    pub boots: u16,
    /// Provisioning attempts so far (requests that started a transfer, and rollbacks).
    pub provisions: u16,
    /// The transfer whose bundle was last rolled back (0: none): its bundle may still sit,
    /// complete, in the receiving slot, and must not be committed again.
    pub rolled_back: u32,
}

impl State {
    /// Encodes the record.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        crate::record::seal(&[
            &[
                MAGIC,
                VERSION,
                SlotId::to_byte(self.confirmed),
                SlotId::to_byte(self.pending),
            ],
            &self.seq.to_le_bytes(),
            &self.pending_transfer.to_le_bytes(),
            &self.confirm_attempts.to_le_bytes(),
            &self.boots.to_le_bytes(),
            &self.provisions.to_le_bytes(),
            &self.rolled_back.to_le_bytes(),
        ])
    }

    /// Decodes a record; `None` if it is erased, torn or not a record.
    pub fn decode(r: &[u8; RECORD_LEN]) -> Option<State> {
        if !crate::record::is_sealed(r) {
            return None;
        }
        let [magic, version, confirmed, pending, s0, s1, s2, s3, t0, t1, t2, t3, a0, a1, b0, b1, p0, p1, r0, r1, r2, r3, ..] =
            *r;
        if magic != MAGIC || version != VERSION {
            return None;
        }
        Some(State {
            seq: u32::from_le_bytes([s0, s1, s2, s3]),
            confirmed: SlotId::from_byte(confirmed).ok()?,
            pending: SlotId::from_byte(pending).ok()?,
            pending_transfer: u32::from_le_bytes([t0, t1, t2, t3]),
            confirm_attempts: u16::from_le_bytes([a0, a1]),
            boots: u16::from_le_bytes([b0, b1]),
            provisions: u16::from_le_bytes([p0, p1]),
            rolled_back: u32::from_le_bytes([r0, r1, r2, r3]),
        })
    }
}

/// The journal's place in flash and where the next record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Journal {
    base: u32,
    page: u32,
    active: u8,
    next: u16,
    state: State,
}

impl Journal {
    /// Reads both pages at `base` (two erase units) and finds the newest record. An empty
    /// journal gives the default state (claim credentials, nothing pending).
    pub fn open<F: NorFlash>(
        flash: &mut F,
        geometry: &Geometry,
        base: u32,
    ) -> Result<Self, F::Error> {
        let page = geometry.erase_size();
        let per_page = (page as usize / RECORD_LEN) as u16;
        let mut best: Option<(State, u8, u16)> = None;
        let mut next_free = [0u16; 2];
        for p in 0..2u8 {
            let start = base + u32::from(p) * page;
            for i in 0..per_page {
                let mut r = [0u8; RECORD_LEN];
                flash.read(start + u32::from(i) * RECORD_LEN as u32, &mut r)?;
                if r.iter().all(|&b| b == 0xFF) {
                    break;
                }
                // Written (valid or torn): the next record goes after it.
                if let Some(n) = next_free.get_mut(usize::from(p)) {
                    *n = i + 1;
                }
                if let Some(s) = State::decode(&r) {
                    if best.is_none_or(|(b, _, _)| s.seq > b.seq) {
                        best = Some((s, p, i));
                    }
                }
            }
        }
        let (state, active) = match best {
            Some((s, p, _)) => (s, p),
            None => (State::default(), 0),
        };
        let next = next_free
            .get(usize::from(active))
            .copied()
            .unwrap_or(per_page);
        Ok(Self {
            base,
            page,
            active,
            next,
            state,
        })
    }

    /// The current state.
    pub const fn state(&self) -> &State {
        &self.state
    }

    /// Appends `state` as the new record (its `seq` is set here). The state changes only if the
    /// write completes.
    pub fn append<F: NorFlash>(&mut self, flash: &mut F, mut state: State) -> Result<(), F::Error> {
        state.seq = self.state.seq.wrapping_add(1);
        let per_page = (self.page as usize / RECORD_LEN) as u16;
        if self.next >= per_page {
            let other = 1 - self.active;
            let start = self.base + u32::from(other) * self.page;
            flash.erase(start, start + self.page)?;
            self.active = other;
            self.next = 0;
        }
        let at = self.base
            + u32::from(self.active) * self.page
            + u32::from(self.next) * RECORD_LEN as u32;
        // A failed write may still have programmed some bits: never reuse this position.
        self.next += 1;
        flash.write(at, &state.encode())?;
        self.state = state;
        Ok(())
    }
}
