//! The sans-IO provisioning client.
//!
//! The client never touches the network or a clock. The firmware feeds it events (connected,
//! subscribed, message bytes, ticks of its monotonic clock, disconnected) and performs the
//! actions [`Client::poll`] returns (connect with an identity, subscribe, publish, wait, done,
//! give up). Flash is the only thing it reaches itself, through the [`Store`].
//!
//! ```text
//!  start ─┬─ confirmed already ──────────────────────────────────────────────► Done
//!         ├─ pending bundle ─► connect(new) ─► subscribe …/confirm/accepted ─► publish confirm
//!         │                         ▲   answer arrives ─► confirm record ─────────► Done
//!         │                         └── no answer / disconnected: attempt++, back off;
//!         │                             too many ─► rollback record ─► RolledBack, provision again
//!         └─ otherwise ─► connect(claim) ─► subscribe frame, rejected ─► request (or pull, when a
//!              transfer was resumed from flash) ─► frames ─► pull windows / missing frames
//!              ─► complete & verified ─► commit record ─► connect(new) …
//! ```
//!
//! Retries are bounded without a clock of the library's own: pulls without progress by
//! `max_retries` (then a new request), requests by `max_provisions`, confirmation attempts by
//! `max_confirm_attempts`, reboots in the middle of it all by `max_boots`. Waits grow from
//! `timeout_ms` by doubling up to `backoff_max_ms`, measured in the firmware's ticks.

use crate::bitmap::Bitmap;
use crate::diag::diag;
use crate::journal::SlotId;
use crate::reassembler::{Error, Outcome, Reassembler};
use crate::store::Store;
use chunkprov_protocol::bundle::{Layout, Span};
use chunkprov_protocol::confirm::{ConfirmAccepted, Confirmation};
use chunkprov_protocol::pull::{Missing, Pull};
use chunkprov_protocol::reject::Rejection;
use chunkprov_protocol::request::Request;
use chunkprov_protocol::topic::{self, Kind};
use chunkprov_protocol::{
    Nonce, RejectCode, MAX_CERTIFICATE_ID_LEN, MAX_PULL_MISSING, MAX_THING_NAME_LEN, NONCE_LEN,
};
use embedded_storage::nor_flash::NorFlash;

/// What the client needs to know; the firmware keeps it (strings are not copied).
#[derive(Debug, Clone, Copy)]
pub struct Config<'a> {
    /// Topic prefix, e.g. `chunkprov`.
    pub prefix: &'a str,
    /// The claim client id, `<claimPrefix><serial>`.
    pub client_id: &'a str,
    /// The serial number.
    pub serial: &'a str,
    /// The CSR to send (PEM, or DER in base64/base64url); `None` asks for key mode.
    pub csr: Option<&'a str>,
    /// The largest PUBLISH packet the device can receive.
    pub packet_limit: u32,
    /// Frames in flight (at most `MAX_PULL_MISSING`).
    pub window: u16,
    /// How long to wait for frames or an answer before asking again, in ticks.
    pub timeout_ms: u32,
    /// The longest wait between retries, in ticks.
    pub backoff_max_ms: u32,
    /// Pulls without progress before starting over with a new request.
    pub max_retries: u8,
    /// Requests (provisioning attempts) before giving up.
    pub max_provisions: u16,
    /// Failed confirmation attempts before rolling back.
    pub max_confirm_attempts: u16,
    /// Reboots during provisioning or confirmation before starting over (or rolling back).
    pub max_boots: u16,
}

/// Credentials to connect with: the slot and where each item lies in flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// The slot.
    pub slot: SlotId,
    /// Where the thing name, certificate id, certificate, key and CA lie (absolute offsets).
    pub layout: Layout,
}

/// Which identity to connect with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The claim certificate and the claim client id.
    Claim,
    /// Credentials from a slot; the client id is their thing name.
    Slot(Credentials),
}

/// Why the client gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The cloud rejected the request with a code that will not change by retrying.
    Rejected(u16),
    /// `max_provisions` requests did not lead to confirmed credentials.
    ReprovisionLimit,
    /// The configuration cannot work (window, limits, topic too long).
    Config,
    /// Flash failed.
    Flash,
}

/// What the firmware should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'b> {
    /// (Re)connect to the broker with this identity, clean session; then report
    /// [`Client::connected`] or [`Client::disconnected`].
    Connect(Identity),
    /// The pending credentials failed to confirm and were rolled back; connect with the
    /// previous identity (as for [`Action::Connect`]). Provisioning starts again.
    RolledBack(Identity),
    /// Subscribe (QoS 1) to this topic; then report [`Client::subscribed`].
    Subscribe(&'b str),
    /// Publish (QoS 1) this payload on this topic. Nothing to report.
    Publish {
        /// The topic.
        topic: &'b str,
        /// The payload.
        payload: &'b [u8],
    },
    /// Nothing to do until an event arrives or this many ticks pass (report them with
    /// [`Client::tick`]).
    Wait(u32),
    /// Provisioned: these credentials are confirmed. Keep using them.
    Done(Credentials),
    /// Provisioning failed for good.
    GiveUp(Reason),
}

/// What a message did, from [`Client::message_end`]: for the firmware's logs and progress
/// display. The client acts on it by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Not a message for the client (or a stale one).
    Ignored,
    /// A frame is now held.
    FrameHeld {
        /// Its index.
        index: u16,
        /// Frames held.
        held: u16,
        /// Frames in the transfer.
        count: u16,
    },
    /// A frame that was already held.
    FrameDuplicate {
        /// Its index.
        index: u16,
    },
    /// A frame was rejected; it will be asked for again.
    FrameRejected {
        /// Its index, if its header was read.
        index: Option<u16>,
        /// Why.
        code: RejectCode,
    },
    /// The last frame completed the bundle: verified and committed (pending confirmation).
    Committed,
    /// The cloud rejected the request or pull with this code.
    Rejected(u16),
    /// The confirmation's answer arrived: the new credentials are confirmed.
    Confirmed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Start,
    Connect,
    AwaitConnect,
    SubscribeFrames,
    SubscribeRejected,
    AwaitSubscribe,
    Request,
    Pull,
    Receive,
    ConfirmConnect,
    ConfirmSubscribe,
    ConfirmPublish,
    ConfirmAwait,
    Backoff,
    Done,
    GaveUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Incoming {
    None,
    Frame,
    Rejected,
    Accepted,
    Ignored,
}

/// What [`Client::poll`] decided, before it is written out.
#[derive(Debug, Clone)]
enum Emit {
    Act(Action<'static>),
    Subscribe(Kind),
    Request,
    Pull(Pull),
    Confirmation,
}

/// Size of the buffer for small messages (rejections, confirmation answers).
const SMALL: usize = 128;

/// The client. Fixed size, no heap, no references.
#[derive(Debug, Clone)]
pub struct Client {
    store: Store,
    rx: Option<Reassembler>,
    asked: Bitmap,
    nonce: Nonce,
    phase: Phase,
    /// Where to go when a backoff or subscription completes.
    next: Phase,
    gave_up: Option<Reason>,
    incoming: Incoming,
    small_len: u8,
    retries: u8,
    now: u32,
    deadline: u32,
    wait: u32,
    small: [u8; SMALL],
}

/// Bytes of state a [`Client`] takes (its reassembler and store included).
pub const CLIENT_SIZE: usize = core::mem::size_of::<Client>();

fn expired(now: u32, deadline: u32) -> bool {
    now.wrapping_sub(deadline) < u32::MAX / 2
}

impl Client {
    /// Starts from what flash holds: confirmed credentials (done), a pending bundle (confirm
    /// it), a transfer to resume, or nothing (request one). Counts a boot when provisioning or a
    /// confirmation was under way.
    pub fn start<F: NorFlash>(
        flash: &mut F,
        mut store: Store,
        cfg: &Config<'_>,
    ) -> Result<Self, Error<F::Error>> {
        let mut rx = None;
        if store.state().pending.is_none() && store.state().confirmed.is_none() {
            rx = store.resume(flash)?;
            if let Some(r) = rx.as_ref().filter(|r| r.is_complete()) {
                if r.transfer_id() != Some(store.state().rolled_back) {
                    // Every frame was held and the bundle verified, but power went before the
                    // commit.
                    store.commit(flash, r)?;
                }
                // Either way nothing is left to receive: a rolled-back bundle is never used
                // again.
                rx = None;
            }
        }
        let in_progress = store.state().pending.is_some() || rx.is_some();
        let mut rolled_back = false;
        if in_progress && store.count_boot(flash)? > cfg.max_boots {
            diag!("boot limit reached: starting over");
            if store.state().pending.is_some() {
                store.rollback(flash)?;
                rolled_back = true;
            }
            rx = None;
        }
        let nonce = rx.as_ref().map_or(Nonce::default(), |r| r.nonce());
        let mut c = Self {
            store,
            rx,
            asked: Bitmap::new(),
            nonce,
            phase: Phase::Start,
            next: Phase::Start,
            gave_up: None,
            incoming: Incoming::None,
            small_len: 0,
            retries: 0,
            now: 0,
            deadline: 0,
            wait: cfg.timeout_ms,
            small: [0; SMALL],
        };
        c.phase = if rolled_back {
            Phase::Start
        } else {
            c.entry_phase()
        };
        Ok(c)
    }

    /// The store (state, regions).
    pub const fn store(&self) -> &Store {
        &self.store
    }

    /// The reassembler of the transfer in progress.
    pub const fn receiver(&self) -> Option<&Reassembler> {
        self.rx.as_ref()
    }

    fn entry_phase(&self) -> Phase {
        let s = self.store.state();
        if s.pending.is_some() {
            Phase::ConfirmConnect
        } else if s.confirmed.is_some() {
            Phase::Done
        } else {
            Phase::Connect
        }
    }

    /// The broker accepted the connection asked for.
    pub fn connected(&mut self) {
        match self.phase {
            Phase::AwaitConnect if self.next == Phase::ConfirmSubscribe => {
                self.phase = Phase::ConfirmSubscribe
            }
            Phase::AwaitConnect => self.phase = Phase::SubscribeFrames,
            _ => {}
        }
    }

    /// The connection was refused or lost.
    pub fn disconnected<F: NorFlash>(
        &mut self,
        flash: &mut F,
        cfg: &Config<'_>,
    ) -> Result<(), Error<F::Error>> {
        match self.phase {
            Phase::Done | Phase::GaveUp | Phase::Start => Ok(()),
            Phase::ConfirmSubscribe | Phase::ConfirmPublish | Phase::ConfirmAwait => {
                self.confirm_failed(flash, cfg)
            }
            Phase::AwaitSubscribe if self.next == Phase::ConfirmPublish => {
                self.confirm_failed(flash, cfg)
            }
            Phase::AwaitConnect if self.next == Phase::ConfirmSubscribe => {
                self.confirm_failed(flash, cfg)
            }
            _ => {
                // Clean sessions: everything is asked for again after reconnecting.
                self.asked.clear();
                self.backoff(cfg, Phase::Connect);
                Ok(())
            }
        }
    }

    /// The subscription asked for was acknowledged.
    pub fn subscribed(&mut self) {
        if self.phase == Phase::AwaitSubscribe {
            self.phase = self.next;
        }
    }

    /// `ms` ticks of the firmware's monotonic clock passed.
    pub fn tick(&mut self, ms: u32) {
        self.now = self.now.wrapping_add(ms);
    }

    /// A message arrived on `topic`; its payload follows through [`message_data`](Self::message_data)
    /// and [`message_end`](Self::message_end).
    pub fn message_begin(&mut self, cfg: &Config<'_>, topic: &str) {
        self.small_len = 0;
        self.incoming = match topic::parse(cfg.prefix, topic) {
            Some((id, Kind::Frame)) if id == cfg.client_id && self.rx.is_some() => Incoming::Frame,
            Some((id, Kind::Rejected)) if id == cfg.client_id => Incoming::Rejected,
            Some((_, Kind::ConfirmAccepted)) => Incoming::Accepted,
            _ => Incoming::Ignored,
        };
    }

    /// The next piece of the current message's payload.
    pub fn message_data<F: NorFlash>(
        &mut self,
        flash: &mut F,
        piece: &[u8],
    ) -> Result<(), Error<F::Error>> {
        match self.incoming {
            Incoming::Frame => match self.rx.as_mut() {
                Some(rx) => match rx.feed(flash, piece) {
                    Err(Error::Flash(e)) => Err(Error::Flash(e)),
                    _ => Ok(()),
                },
                None => Ok(()),
            },
            Incoming::Rejected | Incoming::Accepted => {
                let at = usize::from(self.small_len);
                match self.small.get_mut(at..at + piece.len()) {
                    Some(dst) => {
                        chunkprov_protocol::copy_prefix(dst, piece);
                        self.small_len += piece.len() as u8;
                    }
                    None => self.incoming = Incoming::Ignored,
                }
                Ok(())
            }
            Incoming::None | Incoming::Ignored => Ok(()),
        }
    }

    /// The current message ended.
    pub fn message_end<F: NorFlash>(
        &mut self,
        flash: &mut F,
        cfg: &Config<'_>,
    ) -> Result<Notice, Error<F::Error>> {
        let incoming = core::mem::replace(&mut self.incoming, Incoming::None);
        match incoming {
            Incoming::Frame => self.frame_end(flash, cfg),
            Incoming::Rejected => self.rejected(flash, cfg),
            Incoming::Accepted => self.accepted(flash),
            Incoming::None | Incoming::Ignored => Ok(Notice::Ignored),
        }
    }

    fn frame_end<F: NorFlash>(
        &mut self,
        flash: &mut F,
        cfg: &Config<'_>,
    ) -> Result<Notice, Error<F::Error>> {
        let Some(rx) = self.rx.as_mut() else {
            return Ok(Notice::Ignored);
        };
        match rx.end(flash) {
            Ok(Outcome::Complete(_)) => {
                diag!("bundle complete: committing");
                self.store.commit(flash, rx)?;
                self.rx = None;
                self.retries = 0;
                self.wait = cfg.timeout_ms;
                self.phase = Phase::ConfirmConnect;
                Ok(Notice::Committed)
            }
            Ok(Outcome::Accepted { index }) => {
                let (held, count) = (rx.held(), rx.count());
                if self.asked.is_empty() {
                    // The first frame answering a request: its whole first window is on its way
                    // (A pull marks what it asks for, so after one this is never empty.) In key
                    // mode every frame is: the cloud holds the key only while it answers the
                    // request, so the device pulls only what is still missing after a timeout.
                    let first = if cfg.csr.is_none() {
                        count
                    } else {
                        cfg.window.min(count)
                    };
                    for i in 0..first {
                        self.asked.set(i, true);
                    }
                }
                self.retries = 0;
                self.wait = cfg.timeout_ms;
                self.deadline = self.now.wrapping_add(self.wait);
                if self.outstanding().is_none() && self.phase == Phase::Receive {
                    self.phase = Phase::Pull;
                }
                Ok(Notice::FrameHeld { index, held, count })
            }
            Ok(Outcome::Duplicate { index }) => Ok(Notice::FrameDuplicate { index }),
            Err(Error::Flash(e)) => Err(Error::Flash(e)),
            Err(e) => {
                let index = rx.last_index();
                let code = match e {
                    Error::Rejected(code) => code,
                    _ => RejectCode::FrameTruncated,
                };
                if code == RejectCode::FlashMismatch && self.phase == Phase::Receive {
                    // A page was repaired: ask for its frames now.
                    self.phase = Phase::Pull;
                }
                Ok(Notice::FrameRejected { index, code })
            }
        }
    }

    fn rejected<F: NorFlash>(
        &mut self,
        flash: &mut F,
        cfg: &Config<'_>,
    ) -> Result<Notice, Error<F::Error>> {
        let Ok(r) = Rejection::decode(self.small.get(..usize::from(self.small_len)).unwrap_or(&[]))
        else {
            return Ok(Notice::Ignored);
        };
        if r.nonce.is_some_and(|n| n != self.nonce) {
            return Ok(Notice::Ignored);
        }
        let code = r.code;
        diag!("rejected: code {=u16}", code);
        match RejectCode::from_u16(code) {
            Some(code) if code.retryable() => self.backoff(cfg, Phase::Request),
            Some(RejectCode::UnknownTransfer) | Some(RejectCode::FrameIndexInvalid) => {
                // The cloud no longer has this transfer: start over.
                self.new_request(flash, cfg)?;
            }
            _ => self.give_up(Reason::Rejected(code)),
        }
        Ok(Notice::Rejected(code))
    }

    fn accepted<F: NorFlash>(&mut self, flash: &mut F) -> Result<Notice, Error<F::Error>> {
        if self.phase != Phase::ConfirmAwait {
            return Ok(Notice::Ignored);
        }
        let small = self.small.get(..usize::from(self.small_len)).unwrap_or(&[]);
        let Ok(a) = ConfirmAccepted::decode(small) else {
            return Ok(Notice::Ignored);
        };
        let s = *self.store.state();
        let Some(slot) = s.pending else {
            return Ok(Notice::Ignored);
        };
        let layout = self.store.layout(flash, slot)?;
        let mut id = [0u8; MAX_CERTIFICATE_ID_LEN];
        let id = read_span(flash, layout.certificate_id, &mut id)?;
        if a.transfer_id != s.pending_transfer || a.certificate_id.as_bytes() != id {
            return Ok(Notice::Ignored);
        }
        diag!("confirmed");
        self.store.confirm(flash)?;
        self.phase = Phase::Done;
        Ok(Notice::Confirmed)
    }

    /// Frames asked for and not held yet; `None` when every frame asked for is held.
    fn outstanding(&self) -> Option<u16> {
        let rx = self.rx.as_ref()?;
        rx.missing().find(|&i| self.asked.get(i))
    }

    fn backoff(&mut self, cfg: &Config<'_>, then: Phase) {
        self.phase = Phase::Backoff;
        self.next = then;
        self.deadline = self.now.wrapping_add(self.wait);
        self.wait = self
            .wait
            .saturating_mul(2)
            .min(cfg.backoff_max_ms.max(cfg.timeout_ms));
    }

    fn give_up(&mut self, reason: Reason) {
        self.gave_up = Some(reason);
        self.phase = Phase::GaveUp;
    }

    fn new_request<F: NorFlash>(
        &mut self,
        flash: &mut F,
        cfg: &Config<'_>,
    ) -> Result<(), Error<F::Error>> {
        self.rx = None;
        self.asked.clear();
        self.retries = 0;
        if self.store.state().provisions >= cfg.max_provisions {
            self.give_up(Reason::ReprovisionLimit);
            return Ok(());
        }
        let _ = flash;
        self.phase = Phase::Request;
        Ok(())
    }

    fn confirm_failed<F: NorFlash>(
        &mut self,
        flash: &mut F,
        cfg: &Config<'_>,
    ) -> Result<(), Error<F::Error>> {
        let attempts = self.store.count_attempt(flash)?;
        diag!("confirmation attempt {=u16} failed", attempts);
        if attempts >= cfg.max_confirm_attempts {
            self.store.rollback(flash)?;
            self.phase = Phase::Start;
            self.next = Phase::Start;
            self.asked.clear();
            self.rx = None;
            return Ok(());
        }
        self.backoff(cfg, Phase::ConfirmConnect);
        Ok(())
    }

    fn credentials<F: NorFlash>(
        &self,
        flash: &mut F,
        slot: SlotId,
    ) -> Result<Credentials, Error<F::Error>> {
        Ok(Credentials {
            slot,
            layout: self.store.verify(flash, slot)?,
        })
    }

    fn previous<F: NorFlash>(&self, flash: &mut F) -> Result<Identity, Error<F::Error>> {
        Ok(match self.store.state().confirmed {
            Some(slot) => Identity::Slot(self.credentials(flash, slot)?),
            None => Identity::Claim,
        })
    }

    /// The next thing to do. Topics and payloads are written into `out`: the topic, a NUL, then
    /// the payload (a request with a CSR needs the CSR's length plus about 300 bytes; if `out` is
    /// too small the client gives up with [`Reason::Config`]). `random` fills a new nonce.
    pub fn poll<'b, F: NorFlash>(
        &mut self,
        flash: &mut F,
        cfg: &Config<'_>,
        random: &mut dyn FnMut(&mut [u8]),
        out: &'b mut [u8],
    ) -> Result<Action<'b>, Error<F::Error>> {
        let emit = self.decide(flash, cfg, random)?;
        self.render(flash, cfg, emit, out)
    }

    fn decide<F: NorFlash>(
        &mut self,
        flash: &mut F,
        cfg: &Config<'_>,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> Result<Emit, Error<F::Error>> {
        loop {
            match self.phase {
                Phase::Start => {
                    // After a rollback: say so, then provision again under the previous identity.
                    let previous = self.previous(flash)?;
                    if self.store.state().confirmed.is_some() {
                        self.phase = Phase::Done;
                    } else {
                        self.phase = Phase::AwaitConnect;
                        self.next = Phase::SubscribeFrames;
                        self.deadline = self.now.wrapping_add(cfg.timeout_ms);
                    }
                    return Ok(Emit::Act(Action::RolledBack(previous)));
                }
                Phase::Connect => {
                    if cfg.window == 0 || usize::from(cfg.window) > MAX_PULL_MISSING {
                        self.give_up(Reason::Config);
                        continue;
                    }
                    self.phase = Phase::AwaitConnect;
                    self.next = Phase::SubscribeFrames;
                    return Ok(Emit::Act(Action::Connect(Identity::Claim)));
                }
                Phase::AwaitConnect
                | Phase::AwaitSubscribe
                | Phase::Receive
                | Phase::ConfirmAwait => {
                    if expired(self.now, self.deadline) {
                        match self.phase {
                            Phase::Receive => {
                                self.retries += 1;
                                if self.retries > cfg.max_retries {
                                    diag!("no progress: new request");
                                    self.new_request(flash, cfg)?;
                                } else {
                                    self.phase = Phase::Pull;
                                }
                                continue;
                            }
                            Phase::ConfirmAwait => {
                                self.confirm_failed(flash, cfg)?;
                                continue;
                            }
                            _ => {
                                // No CONNACK or SUBACK in time: as good as a lost connection.
                                diag!("no answer from the broker");
                                self.disconnected(flash, cfg)?;
                                continue;
                            }
                        }
                    }
                    return Ok(Emit::Act(Action::Wait(
                        self.deadline.wrapping_sub(self.now),
                    )));
                }
                Phase::SubscribeFrames | Phase::SubscribeRejected => {
                    let kind = if self.phase == Phase::SubscribeFrames {
                        Kind::Frame
                    } else {
                        Kind::Rejected
                    };
                    self.next = if kind == Kind::Frame {
                        Phase::SubscribeRejected
                    } else if self.rx.as_ref().is_some_and(|r| r.transfer_id().is_some()) {
                        Phase::Pull
                    } else {
                        Phase::Request
                    };
                    self.phase = Phase::AwaitSubscribe;
                    self.deadline = self.now.wrapping_add(cfg.timeout_ms);
                    return Ok(Emit::Subscribe(kind));
                }
                Phase::Request => {
                    if self.store.state().provisions >= cfg.max_provisions {
                        self.give_up(Reason::ReprovisionLimit);
                        continue;
                    }
                    self.store.count_provision(flash)?;
                    let mut n = [0u8; NONCE_LEN];
                    random(&mut n);
                    self.nonce = Nonce(n);
                    self.rx = Some(self.store.receive(flash, self.nonce)?);
                    self.asked.clear();
                    self.phase = Phase::Receive;
                    self.deadline = self.now.wrapping_add(self.wait);
                    return Ok(Emit::Request);
                }
                Phase::Pull => {
                    let Some(rx) = self.rx.as_ref() else {
                        self.phase = Phase::Request;
                        continue;
                    };
                    let Some(transfer_id) = rx.transfer_id() else {
                        // Nothing arrived yet: the same request again (same nonce: the cloud
                        // republishes the first window).
                        self.phase = Phase::Request;
                        continue;
                    };
                    // Frames asked for and still missing; when none, the next window.
                    let mut missing = Missing::new();
                    let asked_missing = rx.missing().filter(|&i| self.asked.get(i));
                    for i in asked_missing.take(usize::from(cfg.window)) {
                        let _ = missing.push(i);
                    }
                    if missing.is_empty() {
                        for i in rx.missing().take(usize::from(cfg.window)) {
                            let _ = missing.push(i);
                            self.asked.set(i, true);
                        }
                    }
                    self.phase = Phase::Receive;
                    self.deadline = self.now.wrapping_add(self.wait);
                    self.wait = self
                        .wait
                        .saturating_mul(2)
                        .min(cfg.backoff_max_ms.max(cfg.timeout_ms));
                    if missing.is_empty() {
                        continue;
                    }
                    return Ok(Emit::Pull(Pull {
                        nonce: rx.nonce(),
                        transfer_id,
                        next: None,
                        missing,
                    }));
                }
                Phase::ConfirmConnect => {
                    let Some(slot) = self.store.state().pending else {
                        self.phase = self.entry_phase();
                        continue;
                    };
                    let creds = self.credentials(flash, slot)?;
                    self.phase = Phase::AwaitConnect;
                    self.next = Phase::ConfirmSubscribe;
                    self.deadline = self.now.wrapping_add(cfg.timeout_ms);
                    return Ok(Emit::Act(Action::Connect(Identity::Slot(creds))));
                }
                Phase::ConfirmSubscribe => {
                    self.phase = Phase::AwaitSubscribe;
                    self.next = Phase::ConfirmPublish;
                    self.deadline = self.now.wrapping_add(cfg.timeout_ms);
                    return Ok(Emit::Subscribe(Kind::ConfirmAccepted));
                }
                Phase::ConfirmPublish => {
                    if self.store.state().pending.is_none() {
                        self.phase = self.entry_phase();
                        continue;
                    }
                    self.phase = Phase::ConfirmAwait;
                    self.deadline = self.now.wrapping_add(self.wait);
                    return Ok(Emit::Confirmation);
                }
                Phase::Backoff => {
                    if expired(self.now, self.deadline) {
                        self.phase = self.next;
                        continue;
                    }
                    return Ok(Emit::Act(Action::Wait(
                        self.deadline.wrapping_sub(self.now),
                    )));
                }
                Phase::Done => {
                    let Some(slot) = self.store.state().confirmed else {
                        self.give_up(Reason::Flash);
                        continue;
                    };
                    return Ok(Emit::Act(Action::Done(self.credentials(flash, slot)?)));
                }
                Phase::GaveUp => {
                    return Ok(Emit::Act(Action::GiveUp(
                        self.gave_up.unwrap_or(Reason::Config),
                    )))
                }
            }
        }
    }

    /// Writes what `emit` asks for into `out`: the topic first, then the payload.
    fn render<'b, F: NorFlash>(
        &mut self,
        flash: &mut F,
        cfg: &Config<'_>,
        emit: Emit,
        out: &'b mut [u8],
    ) -> Result<Action<'b>, Error<F::Error>> {
        // The thing name is read (and its bundle verified) only for the topics that use it.
        let needs_thing = matches!(
            emit,
            Emit::Subscribe(Kind::ConfirmAccepted) | Emit::Confirmation
        );
        let (thing, thing_len) = if needs_thing {
            self.thing_name(flash)?
        } else {
            ([0; MAX_THING_NAME_LEN], 0)
        };
        let thing = core::str::from_utf8(thing.get(..thing_len).unwrap_or(&[])).unwrap_or("");
        let mut id_buf = [0u8; MAX_CERTIFICATE_ID_LEN];
        let (id, kind) = match &emit {
            Emit::Act(action) => return Ok(*action),
            Emit::Subscribe(Kind::ConfirmAccepted) => (thing, Kind::ConfirmAccepted),
            Emit::Subscribe(kind) => (cfg.client_id, *kind),
            Emit::Request => (cfg.client_id, Kind::Request),
            Emit::Pull(_) => (cfg.client_id, Kind::Pull),
            Emit::Confirmation => (thing, Kind::Confirm),
        };
        let topic_len = match topic::build(cfg.prefix, id, kind, out) {
            Ok(t) => t.len(),
            Err(_) => {
                self.give_up(Reason::Config);
                return Ok(Action::GiveUp(Reason::Config));
            }
        };
        // The topic is followed by a NUL (for C callers), then the payload.
        let Some((topic_bytes, rest)) = out.split_at_mut_checked(topic_len) else {
            self.give_up(Reason::Config);
            return Ok(Action::GiveUp(Reason::Config));
        };
        let Some((nul, rest)) = rest.split_first_mut() else {
            self.give_up(Reason::Config);
            return Ok(Action::GiveUp(Reason::Config));
        };
        *nul = 0;
        let topic = core::str::from_utf8(topic_bytes).unwrap_or("");
        let encoded = match emit {
            Emit::Subscribe(_) => return Ok(Action::Subscribe(topic)),
            Emit::Request => Request {
                thing_name: None,
                serial_number: cfg.serial,
                nonce: self.nonce,
                csr: cfg.csr,
                packet_limit: cfg.packet_limit,
                window: cfg.window,
            }
            .encode(rest)
            .ok(),
            Emit::Pull(pull) => pull.encode(rest).ok(),
            Emit::Confirmation => {
                let s = *self.store.state();
                let Some(slot) = s.pending else {
                    return Ok(Action::Wait(0));
                };
                let layout = self.store.layout(flash, slot)?;
                let id = read_span(flash, layout.certificate_id, &mut id_buf)?;
                let id = core::str::from_utf8(id).unwrap_or("");
                Confirmation {
                    transfer_id: s.pending_transfer,
                    certificate_id: id,
                }
                .encode(rest)
                .ok()
            }
            Emit::Act(action) => return Ok(action),
        };
        let Some(n) = encoded else {
            self.give_up(Reason::Config);
            return Ok(Action::GiveUp(Reason::Config));
        };
        Ok(Action::Publish {
            topic,
            payload: rest.get(..n).unwrap_or(&[]),
        })
    }

    fn thing_name<F: NorFlash>(
        &self,
        flash: &mut F,
    ) -> Result<([u8; MAX_THING_NAME_LEN], usize), Error<F::Error>> {
        let mut buf = [0u8; MAX_THING_NAME_LEN];
        let slot = self.store.state().pending.or(self.store.state().confirmed);
        let Some(slot) = slot else {
            return Ok((buf, 0));
        };
        let layout = self.store.layout(flash, slot)?;
        let len = read_span(flash, layout.thing_name, &mut buf)?.len();
        Ok((buf, len))
    }
}

/// Reads a short item (thing name, certificate id) from flash into `buf`.
fn read_span<'b, F: NorFlash>(
    flash: &mut F,
    span: Span,
    buf: &'b mut [u8],
) -> Result<&'b [u8], Error<F::Error>> {
    let dst = buf
        .get_mut(..span.len as usize)
        .ok_or(Error::Rejected(RejectCode::BundleInvalid))?;
    flash.read(span.offset, dst).map_err(Error::Flash)?;
    Ok(dst)
}
