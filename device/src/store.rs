//! The store: a flash partition laid out as a journal and two credential slots (A/B), and the
//! operations that move credentials through *receiving → pending → confirmed* safely.
//!
//! ```text
//! partition + 0          journal: 2 pages (see [`journal`](crate::journal))
//! partition + 2 pages    slot A: header pages (transfer record, markers), then data pages
//!                        slot B: the same
//! ```
//!
//! A transfer is received straight into the slot that does not hold the confirmed credentials.
//! A verified bundle is *committed* by one journal record naming its slot as pending; the
//! firmware then reconnects with it, and a *confirm* record makes it the confirmed slot, while
//! the previous credentials (the other slot, or the claim credentials) stay untouched until then.
//! A *rollback* record drops the pending slot. Nothing is ever copied, and every step is one
//! journal record, so a power cut at any instant leaves the previous state or the next one.

use crate::flash::{Geometry, GeometryError, Slot};
use crate::journal::{Journal, SlotId, State};
use crate::markers::{header_len, Header};
use crate::reassembler::{Error, Reassembler};
use chunkprov_protocol::bundle::Layout;
use chunkprov_protocol::{Nonce, RejectCode, MAX_FRAMES};
use embedded_storage::nor_flash::NorFlash;

/// Where the store lives: whole erase units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// Offset of the first byte.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

/// Where each part of the store lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regions {
    /// The journal's first page.
    pub journal: u32,
    /// Slot A's header and data.
    pub a: (Header, Slot),
    /// Slot B's header and data.
    pub b: (Header, Slot),
}

impl Regions {
    /// Lays `partition` out for `geometry`: two journal pages, then two equal slots whose headers
    /// can mark [`MAX_FRAMES`] frames. Fails if the partition is misaligned or leaves no data
    /// page per slot.
    pub fn new(geometry: &Geometry, partition: Partition) -> Result<Self, GeometryError> {
        let page = geometry.erase_size();
        if !geometry.page_aligned(partition.offset) || !geometry.page_aligned(partition.size) {
            return Err(GeometryError::Slot);
        }
        let pages = geometry.pages(partition.size);
        let header_pages = geometry.pages(header_len(MAX_FRAMES, geometry.write_size()));
        let per_slot = pages.saturating_sub(2) >> 1;
        if per_slot <= header_pages {
            return Err(GeometryError::Slot);
        }
        let slot = |i: u32| {
            let start = partition.offset + (2 + i * per_slot) * page;
            (
                Header {
                    offset: start,
                    size: header_pages * page,
                },
                Slot {
                    offset: start + header_pages * page,
                    size: (per_slot - header_pages) * page,
                },
            )
        };
        Ok(Self {
            journal: partition.offset,
            a: slot(0),
            b: slot(1),
        })
    }

    /// The regions of one slot.
    pub const fn slot(&self, id: SlotId) -> (Header, Slot) {
        match id {
            SlotId::A => self.a,
            SlotId::B => self.b,
        }
    }
}

/// The store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Store {
    geometry: Geometry,
    regions: Regions,
    journal: Journal,
}

impl Store {
    /// Opens the store in `partition`, reading the journal. A pending slot whose bundle does not
    /// verify any more is dropped (rolled back) here, so a pending or confirmed slot is always
    /// one that verified.
    pub fn open<F: NorFlash>(
        flash: &mut F,
        geometry: Geometry,
        partition: Partition,
    ) -> Result<Self, Error<F::Error>> {
        let regions = Regions::new(&geometry, partition)
            .map_err(|_| Error::Rejected(RejectCode::SlotTooSmall))?;
        Slot {
            offset: partition.offset,
            size: partition.size,
        }
        .check(&geometry, flash.capacity())
        .map_err(|_| Error::Rejected(RejectCode::SlotTooSmall))?;
        let journal = Journal::open(flash, &geometry, regions.journal).map_err(Error::Flash)?;
        let mut store = Self {
            geometry,
            regions,
            journal,
        };
        if let Some(pending) = store.state().pending {
            match store.verify(flash, pending) {
                Ok(_) => {}
                Err(Error::Rejected(_)) => store.rollback(flash)?,
                Err(e) => return Err(e),
            }
        }
        Ok(store)
    }

    /// The persisted state.
    pub const fn state(&self) -> &State {
        self.journal.state()
    }

    /// The layout.
    pub const fn regions(&self) -> &Regions {
        &self.regions
    }

    /// The slot a new transfer is received into: the one not holding confirmed credentials.
    pub fn receiving_slot(&self) -> SlotId {
        self.state().confirmed.map_or(SlotId::A, SlotId::other)
    }

    /// A reassembler for a new request with `nonce`, receiving into the receiving slot. The slot
    /// is erased only when the first frame arrives.
    pub fn receive<F: NorFlash>(
        &self,
        flash: &F,
        nonce: Nonce,
    ) -> Result<Reassembler, Error<F::Error>> {
        let (header, slot) = self.regions.slot(self.receiving_slot());
        Reassembler::with_header(flash, self.geometry, slot, header, nonce)
            .map_err(|_| Error::Rejected(RejectCode::SlotTooSmall))
    }

    /// The transfer recorded in the receiving slot, if any, picked up from flash. Nothing is
    /// resumed while a bundle is pending: that slot must not be written.
    pub fn resume<F: NorFlash>(
        &self,
        flash: &mut F,
    ) -> Result<Option<Reassembler>, Error<F::Error>> {
        if self.state().pending.is_some() {
            return Ok(None);
        }
        let (header, slot) = self.regions.slot(self.receiving_slot());
        Reassembler::resume(flash, self.geometry, slot, header)
    }

    /// Reads the bundle in `slot` back and checks it against its transfer record: SHA-256 and
    /// shape. Gives where each credential lies.
    pub fn verify<F: NorFlash>(
        &self,
        flash: &mut F,
        slot: SlotId,
    ) -> Result<Layout, Error<F::Error>> {
        let (header, data) = self.regions.slot(slot);
        match Reassembler::resume(flash, self.geometry, data, header)? {
            Some(r) if r.is_complete() => r.credentials(flash),
            _ => Err(Error::Rejected(RejectCode::BundleInvalid)),
        }
    }

    /// Where each credential of the bundle in `slot` lies, without reading the whole bundle
    /// again: for short items (thing name, certificate id) of a slot the journal names, whose
    /// bundle was verified when it was committed (and again by [`Store::open`] while pending).
    pub fn layout<F: NorFlash>(
        &self,
        flash: &mut F,
        slot: SlotId,
    ) -> Result<Layout, Error<F::Error>> {
        let (header, data) = self.regions.slot(slot);
        let record = header.read_record(flash).map_err(Error::Flash)?;
        match record {
            Some(r) if r.bundle_len <= data.size => {
                crate::reassembler::locate_at(flash, data.offset, r.bundle_len)
            }
            _ => Err(Error::Rejected(RejectCode::BundleInvalid)),
        }
    }

    /// Commits the complete, verified bundle of `receiver`: its slot becomes pending.
    pub fn commit<F: NorFlash>(
        &mut self,
        flash: &mut F,
        receiver: &Reassembler,
    ) -> Result<(), Error<F::Error>> {
        let slot = self.receiving_slot();
        let (_, data) = self.regions.slot(slot);
        let Some(transfer_id) = receiver
            .transfer_id()
            .filter(|_| receiver.is_complete() && receiver.slot() == data)
        else {
            return Err(Error::Rejected(RejectCode::BundleInvalid));
        };
        self.update(flash, |s| State {
            pending: Some(slot),
            pending_transfer: transfer_id,
            confirm_attempts: 0,
            boots: 0,
            ..s
        })
    }

    /// The pending bundle proved itself: it becomes the confirmed credentials.
    pub fn confirm<F: NorFlash>(&mut self, flash: &mut F) -> Result<(), Error<F::Error>> {
        let Some(slot) = self.state().pending else {
            return Err(Error::Rejected(RejectCode::BundleInvalid));
        };
        self.update(flash, |s| State {
            confirmed: Some(slot),
            pending: None,
            confirm_attempts: 0,
            boots: 0,
            provisions: 0,
            ..s
        })
    }

    /// Counts a failed confirmation attempt of the pending bundle; returns the count.
    pub fn count_attempt<F: NorFlash>(&mut self, flash: &mut F) -> Result<u16, Error<F::Error>> {
        self.update(flash, |s| State {
            confirm_attempts: s.confirm_attempts.saturating_add(1),
            ..s
        })?;
        Ok(self.state().confirm_attempts)
    }

    /// Counts a boot while provisioning or a confirmation is in progress; returns the count.
    pub fn count_boot<F: NorFlash>(&mut self, flash: &mut F) -> Result<u16, Error<F::Error>> {
        self.update(flash, |s| State {
            boots: s.boots.saturating_add(1),
            ..s
        })?;
        Ok(self.state().boots)
    }

    /// Counts the start of a provisioning attempt (a request); returns the count.
    pub fn count_provision<F: NorFlash>(&mut self, flash: &mut F) -> Result<u16, Error<F::Error>> {
        self.update(flash, |s| State {
            provisions: s.provisions.saturating_add(1),
            ..s
        })?;
        Ok(self.state().provisions)
    }

    /// Drops the pending bundle: the previous credentials (confirmed slot or claim) stay in use.
    pub fn rollback<F: NorFlash>(&mut self, flash: &mut F) -> Result<(), Error<F::Error>> {
        self.update(flash, |s| State {
            pending: None,
            pending_transfer: 0,
            rolled_back: s.pending_transfer,
            confirm_attempts: 0,
            boots: 0,
            ..s
        })
    }

    /// Appends the record `change` makes of the current state.
    fn update<F: NorFlash>(
        &mut self,
        flash: &mut F,
        change: impl FnOnce(State) -> State,
    ) -> Result<(), Error<F::Error>> {
        let next = change(*self.state());
        self.journal.append(flash, next).map_err(Error::Flash)
    }
}
