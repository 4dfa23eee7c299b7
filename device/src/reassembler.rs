//! The streaming reassembler.
//!
//! Feed it each frame message's bytes with [`Reassembler::feed`], in pieces of any size, then
//! call [`Reassembler::end`] when the message ends. Payload bytes go to flash as they arrive,
//! through a buffer of one write unit; nothing else of a frame is kept. A frame counts as held
//! only once its whole payload is in flash and its CRC-32 matched; when every frame is held the
//! slot is read back and the bundle's SHA-256 checked before [`Outcome::Complete`] is reported.
//!
//! Every frame lands at `slot.offset + index * chunk` (see
//! [`chunking`](chunkprov_protocol::chunking)), so frames may arrive in any order and more than
//! once. Before a write unit is programmed its current content is read: equal bytes are left
//! alone (a frame delivered again after being cut short), erased bytes are written, and anything
//! else means the page holds stale data: the page is erased, every frame on it is dropped from
//! the held set, and the frame is rejected with
//! [`FlashMismatch`](chunkprov_protocol::RejectCode::FlashMismatch) so it and its neighbours are
//! asked for again.

use crate::bitmap::Bitmap;
use crate::diag::diag;
use crate::flash::{program, Geometry, GeometryError, ProgramError, Slot, RUN};
use crate::markers::{header_len, Header, MarkerError, TransferRecord};
use chunkprov_protocol::bundle::{self, Layout, LocateError, Span};
use chunkprov_protocol::chunking::Plan;
use chunkprov_protocol::crc::Crc32;
use chunkprov_protocol::frame::{FrameDecoder, Step};
use chunkprov_protocol::sha256::Sha256;
use chunkprov_protocol::{Nonce, RejectCode, SHA256_LEN};
use embedded_storage::nor_flash::NorFlash;

/// The verdict on one frame, from [`Reassembler::end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The frame is now held.
    Accepted {
        /// Its index.
        index: u16,
    },
    /// The frame was already held; it was ignored.
    Duplicate {
        /// Its index.
        index: u16,
    },
    /// The frame completed the bundle, which was read back and verified. The spans are
    /// absolute flash offsets.
    Complete(Layout),
}

/// Why a frame was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The frame was rejected.
    Rejected(RejectCode),
    /// The flash driver failed.
    Flash(E),
    /// [`Reassembler::end`]: the frame was abandoned after [`Reassembler::feed`] reported a flash
    /// failure.
    Aborted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Status {
    /// Between messages.
    Idle,
    /// Reading the header.
    Header,
    /// Streaming the payload to flash.
    Writing,
    /// A held frame: reading to the end, writing nothing.
    Duplicate,
    /// Rejected: ignoring the rest of the message.
    Rejected,
    /// A flash error: ignoring the rest of the message.
    FlashFailed,
}

/// The transfer in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transfer {
    id: u32,
    bundle_len: u32,
    chunk: u32,
    count: u16,
    held: u16,
    sha256: [u8; SHA256_LEN],
}

/// Reassembles one bundle in one slot. Fixed size, no heap, no references: it can live in a
/// `static` or in storage allocated by C code.
#[derive(Debug, Clone)]
pub struct Reassembler {
    nonce: Nonce,
    slot: Slot,
    header: Option<Header>,
    geometry: Geometry,
    transfer: Option<Transfer>,
    verified: bool,
    bitmap: Bitmap,
    decoder: FrameDecoder,
    status: Status,
    header_seen: bool,
    rejected: Option<RejectCode>,
    index: u16,
    unit_len: u8,
    write_at: u32,
    crc: Crc32,
    unit: [u8; crate::MAX_WRITE_SIZE as usize],
}

impl Reassembler {
    /// A reassembler for frames answering the request with `nonce`, writing into `slot` of a
    /// flash with `geometry`. Checks the geometry against the driver and the slot against both.
    ///
    /// Progress lives in RAM only; see [`with_header`](Self::with_header) for progress that
    /// survives a reboot.
    pub fn new<F: NorFlash>(
        flash: &F,
        geometry: Geometry,
        slot: Slot,
        nonce: Nonce,
    ) -> Result<Self, GeometryError> {
        Self::build(flash, geometry, slot, None, nonce)
    }

    /// Like [`new`](Self::new), with a header region where the transfer record and a marker per
    /// held frame are written, so [`resume`](Self::resume) can pick the transfer up after a
    /// reboot.
    pub fn with_header<F: NorFlash>(
        flash: &F,
        geometry: Geometry,
        slot: Slot,
        header: Header,
        nonce: Nonce,
    ) -> Result<Self, GeometryError> {
        Self::build(flash, geometry, slot, Some(header), nonce)
    }

    /// Picks up the transfer recorded in `header`, from flash alone: the frames whose markers
    /// say held are held; a transfer whose every frame is held is verified again. `Ok(None)` if
    /// the header holds no valid transfer record.
    pub fn resume<F: NorFlash>(
        flash: &mut F,
        geometry: Geometry,
        slot: Slot,
        header: Header,
    ) -> Result<Option<Self>, Error<F::Error>> {
        let Some(record) = header.read_record(flash).map_err(Error::Flash)? else {
            return Ok(None);
        };
        let mut r = Self::build(flash, geometry, slot, Some(header), record.nonce)
            .map_err(|_| Error::Rejected(RejectCode::SlotTooSmall))?;
        let Some(plan) = Plan::from_header(record.bundle_len, record.count) else {
            return Ok(None);
        };
        if record.bundle_len > slot.size
            || header_len(record.count, geometry.write_size()) > header.size
        {
            return Ok(None);
        }
        let mut held = 0;
        for i in 0..record.count {
            if header.is_held(flash, &geometry, i).map_err(Error::Flash)? {
                r.bitmap.set(i, true);
                held += 1;
            }
        }
        r.transfer = Some(Transfer {
            id: record.transfer_id,
            bundle_len: record.bundle_len,
            chunk: plan.chunk(),
            count: record.count,
            held,
            sha256: record.sha256,
        });
        if held == record.count {
            match r.verify(flash) {
                Ok(_) => r.verified = true,
                Err(Error::Flash(e)) => return Err(Error::Flash(e)),
                Err(_) => {
                    r.transfer = None;
                    r.bitmap.clear();
                }
            }
        }
        Ok(Some(r))
    }

    fn build<F: NorFlash>(
        flash: &F,
        geometry: Geometry,
        slot: Slot,
        header: Option<Header>,
        nonce: Nonce,
    ) -> Result<Self, GeometryError> {
        geometry.check_driver::<F>()?;
        slot.check(&geometry, flash.capacity())?;
        if let Some(h) = header {
            Slot {
                offset: h.offset,
                size: h.size,
            }
            .check(&geometry, flash.capacity())?;
            if h.offset < slot.offset + slot.size && slot.offset < h.offset + h.size {
                return Err(GeometryError::Slot);
            }
        }
        Ok(Self {
            nonce,
            slot,
            header,
            geometry,
            transfer: None,
            verified: false,
            bitmap: Bitmap::new(),
            decoder: FrameDecoder::new(),
            status: Status::Idle,
            header_seen: false,
            rejected: None,
            index: 0,
            unit_len: 0,
            write_at: 0,
            crc: Crc32::new(),
            unit: [0; crate::MAX_WRITE_SIZE as usize],
        })
    }

    /// The nonce frames must carry.
    pub const fn nonce(&self) -> Nonce {
        self.nonce
    }

    /// The slot frames are written to.
    pub const fn slot(&self) -> Slot {
        self.slot
    }

    /// The header where progress is recorded, if any.
    pub const fn header(&self) -> Option<Header> {
        self.header
    }

    /// Length of the bundle being received (0 before the first frame).
    pub fn bundle_len(&self) -> u32 {
        self.transfer.map_or(0, |t| t.bundle_len)
    }

    /// The transfer in progress, if a valid frame has started one.
    pub fn transfer_id(&self) -> Option<u32> {
        self.transfer.map(|t| t.id)
    }

    /// Frames in the transfer (0 before the first frame).
    pub fn count(&self) -> u16 {
        self.transfer.map_or(0, |t| t.count)
    }

    /// Frames held.
    pub fn held(&self) -> u16 {
        self.transfer.map_or(0, |t| t.held)
    }

    /// Whether frame `index` is held.
    pub fn is_held(&self, index: u16) -> bool {
        self.transfer.is_some() && self.bitmap.get(index)
    }

    /// Whether the bundle is complete and verified.
    pub const fn is_complete(&self) -> bool {
        self.verified
    }

    /// The frames not held yet, in ascending order.
    pub fn missing(&self) -> impl Iterator<Item = u16> + '_ {
        (0..self.count()).filter(move |&i| !self.bitmap.get(i))
    }

    /// Takes the next bytes of the current frame message. The first call after
    /// [`end`](Self::end) (or [`new`](Self::new)) starts a new frame.
    ///
    /// An error here is an early notice: the frame is abandoned, the rest of its bytes are
    /// ignored, and [`end`](Self::end) reports the verdict.
    pub fn feed<F: NorFlash>(
        &mut self,
        flash: &mut F,
        bytes: &[u8],
    ) -> Result<(), Error<F::Error>> {
        match self.status {
            Status::Rejected | Status::FlashFailed => return Ok(()),
            Status::Idle => {
                self.status = Status::Header;
                self.header_seen = false;
            }
            _ => {}
        }
        let mut input = bytes;
        loop {
            let step = match self.decoder.step(&mut input) {
                Ok(Some(step)) => step,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.reject(e.into())),
            };
            let result = match step {
                Step::Header { payload_len } => self.on_header(flash, payload_len),
                Step::Payload(bytes) if self.status == Status::Writing => {
                    self.crc.update(bytes);
                    self.write(flash, bytes)
                }
                Step::End if self.status == Status::Writing => self.flush(flash),
                Step::Payload(_) | Step::End => Ok(()),
            };
            if let Err(e) = result {
                return Err(match e {
                    Error::Rejected(code) => self.reject(code),
                    other => {
                        self.status = Status::FlashFailed;
                        other
                    }
                });
            }
        }
    }

    /// Ends the current frame message and gives the verdict on the frame.
    pub fn end<F: NorFlash>(&mut self, flash: &mut F) -> Result<Outcome, Error<F::Error>> {
        let status = core::mem::replace(&mut self.status, Status::Idle);
        if status == Status::Idle {
            // No byte of this message arrived: no header either.
            self.header_seen = false;
        }
        let finished = self.decoder.finish();
        let crc_ok = self.crc.value() == self.decoder.header().crc32;
        self.decoder = FrameDecoder::new();
        match status {
            Status::Rejected => {
                return Err(Error::Rejected(
                    self.rejected.unwrap_or(RejectCode::FrameMalformed),
                ))
            }
            Status::FlashFailed => return Err(Error::Aborted),
            Status::Idle | Status::Header => {
                return Err(Error::Rejected(RejectCode::FrameTruncated))
            }
            Status::Writing | Status::Duplicate => {}
        }
        if let Err(e) = finished {
            diag!("frame {=u16} truncated", self.index);
            return Err(Error::Rejected(e.into()));
        }
        let index = self.index;
        if status == Status::Duplicate {
            // A bundle whose last read-back failed on a flash error is checked again.
            let unverified = self.transfer.is_some_and(|t| t.held == t.count) && !self.verified;
            if unverified {
                return self.complete(flash);
            }
            return Ok(Outcome::Duplicate { index });
        }
        if !crc_ok {
            diag!("frame {=u16}: CRC mismatch", index);
            return Err(Error::Rejected(RejectCode::FrameCrc));
        }
        if let Some(h) = self.header {
            match h.set(flash, &self.geometry, index, true) {
                Ok(()) => {}
                Err(MarkerError::Flash(e)) => return Err(Error::Flash(e)),
                // Holding a frame never needs a fourth unit: a group of three is held already.
                Err(MarkerError::Exhausted) => {}
            }
        }
        let Some(t) = self.transfer.as_mut() else {
            return Err(Error::Rejected(RejectCode::FrameMalformed));
        };
        self.bitmap.set(index, true);
        t.held += 1;
        diag!("frame {=u16} held ({=u16}/{=u16})", index, t.held, t.count);
        if t.held < t.count {
            return Ok(Outcome::Accepted { index });
        }
        self.complete(flash)
    }

    /// Every frame is held: read the bundle back and check it. A bundle that is wrong starts
    /// the transfer over; a read error keeps it, to be checked again.
    fn complete<F: NorFlash>(&mut self, flash: &mut F) -> Result<Outcome, Error<F::Error>> {
        match self.verify(flash) {
            Ok(layout) => {
                self.verified = true;
                Ok(Outcome::Complete(layout))
            }
            Err(Error::Flash(e)) => Err(Error::Flash(e)),
            Err(e) => {
                // Start over: the next frame of this transfer erases the slot again.
                self.transfer = None;
                self.bitmap.clear();
                Err(e)
            }
        }
    }

    /// The index in the header of the current (or, after [`end`](Self::end), the last) frame
    /// message, if its header was read.
    pub fn last_index(&self) -> Option<u16> {
        self.header_seen.then_some(self.index)
    }

    /// Abandons the current frame message: the rest of its bytes are ignored and
    /// [`end`](Self::end) reports [`Error::Aborted`]. For callers that lost some of its bytes.
    pub fn abort(&mut self) {
        match self.status {
            // A verdict already given stands.
            Status::Rejected => {}
            Status::Idle => {
                self.header_seen = false;
                self.status = Status::FlashFailed;
            }
            _ => self.status = Status::FlashFailed,
        }
    }

    /// Ends the current frame message without a verdict (the frame is not held), for callers
    /// that cannot reach flash to finish it.
    pub fn abandon(&mut self) {
        self.status = Status::Idle;
        self.decoder = FrameDecoder::new();
    }

    /// Where each credential lies, once the bundle is complete and verified.
    pub fn credentials<F: NorFlash>(&self, flash: &mut F) -> Result<Layout, Error<F::Error>> {
        if !self.verified {
            return Err(Error::Rejected(RejectCode::BundleInvalid));
        }
        self.locate(flash)
    }

    fn reject<E>(&mut self, code: RejectCode) -> Error<E> {
        diag!("frame rejected: {=u16}", code as u16);
        self.status = Status::Rejected;
        self.rejected = Some(code);
        Error::Rejected(code)
    }

    fn on_header<F: NorFlash>(
        &mut self,
        flash: &mut F,
        payload_len: u32,
    ) -> Result<(), Error<F::Error>> {
        let h = *self.decoder.header();
        self.index = h.index;
        self.header_seen = true;
        if h.nonce != self.nonce {
            return Err(Error::Rejected(RejectCode::ForeignNonce));
        }
        let offset = h.placement(payload_len).map_err(Error::Rejected)?;
        if h.bundle_len > self.slot.size {
            return Err(Error::Rejected(RejectCode::SlotTooSmall));
        }
        match self.transfer {
            Some(t) if h.transfer_id == t.id => {
                if h.count != t.count || h.bundle_len != t.bundle_len || h.sha256 != t.sha256 {
                    return Err(Error::Rejected(RejectCode::FrameInconsistent));
                }
            }
            Some(t) if h.transfer_id < t.id => {
                return Err(Error::Rejected(RejectCode::StaleTransfer))
            }
            _ => {
                let plan = Plan::from_header(h.bundle_len, h.count)
                    .ok_or(Error::Rejected(RejectCode::FrameOutOfRange))?;
                diag!(
                    "transfer {=u32}: {=u16} frames, {=u32} bytes",
                    h.transfer_id,
                    h.count,
                    h.bundle_len
                );
                if let Some(header) = self.header {
                    if header_len(h.count, self.geometry.write_size()) > header.size {
                        return Err(Error::Rejected(RejectCode::SlotTooSmall));
                    }
                }
                // Drop whatever was there before the erase, so a failed erase leaves no transfer.
                self.transfer = None;
                self.verified = false;
                self.bitmap.clear();
                // Header first: once it is erased no record describes the data pages, so a cut
                // anywhere below leaves no transfer rather than a stale one.
                if let Some(header) = self.header {
                    header
                        .erase(flash, &self.geometry, h.count)
                        .map_err(Error::Flash)?;
                }
                let pages = self.geometry.round_up(h.bundle_len);
                flash
                    .erase(self.slot.offset, self.slot.offset + pages)
                    .map_err(Error::Flash)?;
                if let Some(header) = self.header {
                    let record = TransferRecord {
                        nonce: h.nonce,
                        transfer_id: h.transfer_id,
                        count: h.count,
                        bundle_len: h.bundle_len,
                        sha256: h.sha256,
                    };
                    header.write_record(flash, &record).map_err(Error::Flash)?;
                }
                self.transfer = Some(Transfer {
                    id: h.transfer_id,
                    bundle_len: h.bundle_len,
                    chunk: plan.chunk(),
                    count: h.count,
                    held: 0,
                    sha256: h.sha256,
                });
            }
        }
        self.index = h.index;
        if self.bitmap.get(h.index) {
            self.status = Status::Duplicate;
        } else {
            self.status = Status::Writing;
            self.write_at = self.slot.offset + offset;
            self.crc = Crc32::new();
            self.unit_len = 0;
        }
        Ok(())
    }

    /// Streams payload bytes to flash, whole write units at a time.
    fn write<F: NorFlash>(
        &mut self,
        flash: &mut F,
        mut bytes: &[u8],
    ) -> Result<(), Error<F::Error>> {
        let ws = self.geometry.write_size() as usize;
        // Top up a partly filled unit first.
        if self.unit_len > 0 {
            let have = usize::from(self.unit_len);
            let take = (ws - have).min(bytes.len());
            let (now, rest) = bytes.split_at_checked(take).unwrap_or((bytes, &[]));
            if let Some(dst) = self.unit.get_mut(have..have + take) {
                chunkprov_protocol::copy_prefix(dst, now);
            }
            self.unit_len += take as u8;
            bytes = rest;
            if usize::from(self.unit_len) < ws {
                return Ok(());
            }
            let unit = self.unit;
            self.program(flash, unit.get(..ws).unwrap_or(&[]))?;
            self.unit_len = 0;
        }
        // Whole units straight from the input, in runs.
        // `ws` is a power of two (checked by `Geometry`): masks instead of division.
        let mask = ws.wrapping_sub(1);
        let (aligned, tail) = bytes
            .split_at_checked(bytes.len() & !mask)
            .unwrap_or((&[], bytes));
        for run in aligned.chunks((RUN & !mask).max(1)) {
            self.program(flash, run)?;
        }
        if let Some(dst) = self.unit.get_mut(..tail.len()) {
            chunkprov_protocol::copy_prefix(dst, tail);
        }
        self.unit_len = tail.len() as u8;
        Ok(())
    }

    /// Writes the last, partial unit of the bundle, padded with erased bytes.
    fn flush<F: NorFlash>(&mut self, flash: &mut F) -> Result<(), Error<F::Error>> {
        if self.unit_len == 0 {
            return Ok(());
        }
        let ws = self.geometry.write_size() as usize;
        let mut unit = self.unit;
        if let Some(pad) = unit.get_mut(usize::from(self.unit_len)..ws) {
            pad.fill(0xFF);
        }
        self.unit_len = 0;
        self.program(flash, unit.get(..ws).unwrap_or(&[]))
    }

    /// Programs a run of whole units at the write position, unit by unit where needed.
    fn program<F: NorFlash>(&mut self, flash: &mut F, run: &[u8]) -> Result<(), Error<F::Error>> {
        let at = self.write_at;
        let result = match program(flash, at, run) {
            Err(ProgramError::Mismatch) if run.len() > self.geometry.write_size() as usize => {
                let ws = self.geometry.write_size() as usize;
                let mut offset = at;
                let mut result = Ok(());
                for unit in run.chunks(ws.max(1)) {
                    result = program(flash, offset, unit);
                    if result.is_err() {
                        break;
                    }
                    offset += ws as u32;
                }
                result
            }
            other => other,
        };
        match result {
            Ok(()) => {
                self.write_at += run.len() as u32;
                Ok(())
            }
            Err(ProgramError::Flash(e)) => Err(Error::Flash(e)),
            Err(ProgramError::Mismatch) => {
                self.repair(flash, at)?;
                Err(Error::Rejected(RejectCode::FlashMismatch))
            }
        }
    }

    /// Erases the page holding `offset` and forgets every frame that touches it: their markers
    /// are revoked before the page is erased, so flash never claims a frame it lost.
    fn repair<F: NorFlash>(&mut self, flash: &mut F, offset: u32) -> Result<(), Error<F::Error>> {
        let page = self.geometry.page_start(offset);
        let end = page + self.geometry.erase_size();
        diag!("stale bytes at {=u32}: erasing page {=u32}", offset, page);
        let Some(mut t) = self.transfer else {
            return flash.erase(page, end).map_err(Error::Flash);
        };
        for i in 0..t.count {
            let start = self.slot.offset + u32::from(i) * t.chunk;
            let stop = start + t.chunk;
            if start < end && stop > page && self.bitmap.get(i) {
                if let Some(h) = self.header {
                    match h.set(flash, &self.geometry, i, false) {
                        Ok(()) => {}
                        Err(MarkerError::Flash(e)) => return Err(Error::Flash(e)),
                        Err(MarkerError::Exhausted) => {
                            // This frame was revoked once already: start the transfer over.
                            h.erase(flash, &self.geometry, t.count)
                                .map_err(Error::Flash)?;
                            self.transfer = None;
                            self.bitmap.clear();
                            return Ok(());
                        }
                    }
                }
                self.bitmap.set(i, false);
                t.held -= 1;
            }
        }
        self.transfer = Some(t);
        flash.erase(page, end).map_err(Error::Flash)
    }

    /// Reads the bundle back, checks its SHA-256 and finds its items.
    fn verify<F: NorFlash>(&self, flash: &mut F) -> Result<Layout, Error<F::Error>> {
        let Some(t) = self.transfer.as_ref() else {
            return Err(Error::Rejected(RejectCode::BundleInvalid));
        };
        if !digest_matches(flash, self.slot.offset, t.bundle_len, &t.sha256)
            .map_err(Error::Flash)?
        {
            diag!("bundle digest mismatch");
            return Err(Error::Rejected(RejectCode::DigestMismatch));
        }
        self.locate(flash)
    }

    fn locate<F: NorFlash>(&self, flash: &mut F) -> Result<Layout, Error<F::Error>> {
        let Some(t) = self.transfer else {
            return Err(Error::Rejected(RejectCode::BundleInvalid));
        };
        locate_at(flash, self.slot.offset, t.bundle_len)
    }
}

/// Whether the SHA-256 of the `len` bytes of flash at `offset` is `want`. Flash is read straight
/// into the hasher's block buffer, 64 bytes at a time.
///
/// Never inlined: its hasher leaves the stack before the caller goes on to locate the bundle's
/// items, so the two never add up.
#[inline(never)]
fn digest_matches<F: NorFlash>(
    flash: &mut F,
    offset: u32,
    len: u32,
    want: &[u8; SHA256_LEN],
) -> Result<bool, F::Error> {
    let mut hasher = Sha256::new();
    hasher.update_from(len, |at, buf| flash.read(offset + at, buf))?;
    Ok(hasher.finish() == *want)
}

/// Where the items of the bundle of `len` bytes at flash offset `base` lie, as absolute flash
/// offsets. Reads item heads only; checks the bundle's shape, not its digest.
///
/// Never inlined, like [`digest_matches`]: its frame and the hashing's never add up in a caller.
#[inline(never)]
pub(crate) fn locate_at<F: NorFlash>(
    flash: &mut F,
    base: u32,
    len: u32,
) -> Result<Layout, Error<F::Error>> {
    let layout =
        bundle::locate(len, |offset, buf| flash.read(base + offset, buf)).map_err(|e| match e {
            LocateError::Invalid => Error::Rejected(RejectCode::BundleInvalid),
            LocateError::Read(e) => Error::Flash(e),
        })?;
    let abs = |s: Span| Span {
        offset: s.offset + base,
        len: s.len,
    };
    Ok(Layout {
        thing_name: abs(layout.thing_name),
        certificate_id: abs(layout.certificate_id),
        certificate: abs(layout.certificate),
        private_key: layout.private_key.map(abs),
        server_ca: layout.server_ca.map(abs),
    })
}
