//! The provisioning client's C functions: the sans-IO state machine of
//! `chunkprov_device::client`, with its store, in caller storage.

use crate::flash::{chunkprov_platform, CFlash, Fault};
use crate::log::log;
use crate::opaque::{self, Tagged};
use crate::reassembler::{chunkprov_credentials, chunkprov_span};
use crate::status::chunkprov_status;
use chunkprov_device::client::{Action, Client, Config, Credentials, Identity, Notice, Reason};
use chunkprov_device::journal::SlotId;
use chunkprov_device::protocol::bundle::Span;
use chunkprov_device::reassembler::Error;
use chunkprov_device::store::{Partition, Store};
use core::ffi::{c_char, CStr};
use core::mem::{align_of, size_of};

/// Bytes of storage a chunkprov_client needs; the same on every supported target.
pub const CHUNKPROV_CLIENT_SIZE: usize = 536;
/// Alignment a chunkprov_client needs.
pub const CHUNKPROV_CLIENT_ALIGN: usize = 8;
/// CHUNKPROV_CLIENT_SIZE in 64-bit words.
pub const CHUNKPROV_CLIENT_WORDS: usize = 67;

/// Storage for the provisioning client (its reassembler and store included). Allocate it
/// anywhere, start it with chunkprov_client_start(), touch it only through chunkprov functions.
/// It holds no pointers.
#[repr(C)]
pub struct chunkprov_client {
    /// Not for use: the state's bytes.
    pub _opaque: [u64; CHUNKPROV_CLIENT_WORDS],
}

const MAGIC: u32 = 0x6368_6b63; // "chkc"

type State = Tagged<Client>;

const _: () = assert!(CHUNKPROV_CLIENT_WORDS * 8 == CHUNKPROV_CLIENT_SIZE);
const _: () = assert!(size_of::<State>() <= CHUNKPROV_CLIENT_SIZE);
const _: () = assert!(align_of::<State>() <= CHUNKPROV_CLIENT_ALIGN);
const _: () = assert!(align_of::<chunkprov_client>() == CHUNKPROV_CLIENT_ALIGN);

/// What the client needs to know. The firmware keeps it for as long as the client runs and
/// passes it to every call; the strings are not copied.
#[repr(C)]
pub struct chunkprov_client_config {
    /// Topic prefix, e.g. "chunkprov". NUL-terminated.
    pub prefix: *const c_char,
    /// The claim client id, `<claimPrefix><serial>`. NUL-terminated.
    pub client_id: *const c_char,
    /// The serial number. NUL-terminated.
    pub serial: *const c_char,
    /// The CSR (PEM, or DER in base64/base64url as the nRF91's `AT%KEYGEN` gives it),
    /// NUL-terminated; NULL asks for key mode.
    pub csr: *const c_char,
    /// The largest MQTT PUBLISH packet the device can receive (fixed header + topic + packet
    /// id + payload), at least 256.
    pub packet_limit: u32,
    /// Frames in flight, 1 to 16.
    pub window: u16,
    /// Pulls without progress before starting over with a new request.
    pub max_retries: u8,
    /// Requests (provisioning attempts) before giving up.
    pub max_provisions: u16,
    /// Failed confirmation attempts before rolling back to the previous credentials.
    pub max_confirm_attempts: u16,
    /// Reboots during provisioning or confirmation before starting over (or rolling back).
    pub max_boots: u16,
    /// How long to wait for frames or an answer before asking again, in the firmware's ticks
    /// (e.g. milliseconds).
    pub timeout_ticks: u32,
    /// The longest wait between retries, in ticks.
    pub backoff_max_ticks: u32,
    /// Offset of the flash partition the client owns (journal and slots A/B), whole erase
    /// units.
    pub partition_offset: u32,
    /// Size of that partition: 2 journal pages plus two slots, each with header pages for the
    /// frame markers and enough data pages for the bundle.
    pub partition_size: u32,
}

/// What chunkprov_client_poll() asks the firmware to do.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum chunkprov_action_kind {
    /// Connect (clean session) with the identity in `claim`/`credentials`, then call
    /// chunkprov_client_connected() or chunkprov_client_disconnected().
    Connect = 1,
    /// The pending credentials failed to confirm and were rolled back: connect with the
    /// previous identity (`claim`/`credentials`), as for CONNECT. Provisioning starts again.
    RolledBack = 2,
    /// Subscribe (QoS 1) to `topic`, then call chunkprov_client_subscribed().
    Subscribe = 3,
    /// Publish (QoS 1) `payload` on `topic`.
    Publish = 4,
    /// Wait for a message, or until `wait_ticks` pass (report them with chunkprov_client_tick()).
    Wait = 5,
    /// Provisioned: `credentials` are confirmed. Keep using them.
    Done = 6,
    /// Provisioning failed for good: see `give_up` (and `reject_code`).
    GiveUp = 7,
}

/// Why the client gave up.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum chunkprov_give_up {
    /// Not given up.
    None = 0,
    /// The cloud rejected the request for good; `reject_code` says why (protocol codes 1–63).
    Rejected = 1,
    /// `max_provisions` requests did not lead to confirmed credentials.
    ReprovisionLimit = 2,
    /// The configuration cannot work (window, topic length, buffer too small for the request).
    Config = 3,
    /// Flash failed.
    Flash = 4,
}

/// What a message did (chunkprov_client_message_end()), for logs and progress displays. The
/// client acts on it by itself.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum chunkprov_notice_kind {
    /// Not a message for the client (or a stale one).
    Ignored = 0,
    /// Frame `index` is now held (`held` of `count`).
    FrameHeld = 1,
    /// Frame `index` was already held.
    FrameDuplicate = 2,
    /// A frame was rejected with `code` (`index` if `has_index`); it will be asked for again.
    FrameRejected = 3,
    /// The last frame completed the bundle: verified and committed, pending confirmation.
    Committed = 4,
    /// The cloud rejected the request or pull with `code`.
    Rejected = 5,
    /// The confirmation's answer arrived: the new credentials are confirmed.
    Confirmed = 6,
}

/// A notice; fields not named by its kind are 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct chunkprov_notice {
    /// What happened.
    pub kind: chunkprov_notice_kind,
    /// The frame's index.
    pub index: u16,
    /// Whether `index` is known (FRAME_REJECTED before the header was read: not).
    pub has_index: bool,
    /// Frames held.
    pub held: u16,
    /// Frames in the transfer.
    pub count: u16,
    /// A protocol rejection code (FRAME_REJECTED: 64–127; REJECTED: 1–63).
    pub code: u16,
}

impl From<Notice> for chunkprov_notice {
    fn from(n: Notice) -> Self {
        let mut c = chunkprov_notice {
            kind: chunkprov_notice_kind::Ignored,
            index: 0,
            has_index: false,
            held: 0,
            count: 0,
            code: 0,
        };
        match n {
            Notice::Ignored => {}
            Notice::FrameHeld { index, held, count } => {
                c = chunkprov_notice {
                    kind: chunkprov_notice_kind::FrameHeld,
                    index,
                    has_index: true,
                    held,
                    count,
                    ..c
                }
            }
            Notice::FrameDuplicate { index } => {
                c = chunkprov_notice {
                    kind: chunkprov_notice_kind::FrameDuplicate,
                    index,
                    has_index: true,
                    ..c
                }
            }
            Notice::FrameRejected { index, code } => {
                c = chunkprov_notice {
                    kind: chunkprov_notice_kind::FrameRejected,
                    index: index.unwrap_or(0),
                    has_index: index.is_some(),
                    code: code as u16,
                    ..c
                }
            }
            Notice::Committed => c.kind = chunkprov_notice_kind::Committed,
            Notice::Rejected(code) => {
                c = chunkprov_notice {
                    kind: chunkprov_notice_kind::Rejected,
                    code,
                    ..c
                }
            }
            Notice::Confirmed => c.kind = chunkprov_notice_kind::Confirmed,
        }
        c
    }
}

/// One action. Pointers point into the buffer given to chunkprov_client_poll() and are valid
/// until the next call that takes that buffer.
#[repr(C)]
pub struct chunkprov_action {
    /// What to do.
    pub kind: chunkprov_action_kind,
    /// SUBSCRIBE, PUBLISH: the topic, NUL-terminated.
    pub topic: *const c_char,
    /// Length of `topic` without its NUL.
    pub topic_len: usize,
    /// PUBLISH: the payload.
    pub payload: *const u8,
    /// Length of `payload`.
    pub payload_len: usize,
    /// WAIT: ticks to wait at most.
    pub wait_ticks: u32,
    /// CONNECT, ROLLED_BACK: true to use the claim certificate and the claim client id;
    /// false to use `credentials` (client id: the thing name).
    pub claim: bool,
    /// CONNECT, ROLLED_BACK (when not `claim`), DONE: the slot (0 = A, 1 = B) …
    pub slot: u8,
    /// … and where its credentials lie in flash.
    pub credentials: chunkprov_credentials,
    /// GIVE_UP: why.
    pub give_up: chunkprov_give_up,
    /// GIVE_UP with CHUNKPROV_GIVE_UP_REJECTED: the cloud's rejection code.
    pub reject_code: u16,
}

/// # Safety
/// `c` must be NULL or point to a `chunkprov_client` valid for reads and writes.
unsafe fn state<'a>(c: *mut chunkprov_client) -> Result<&'a mut Client, chunkprov_status> {
    // SAFETY: per the contract; size and alignment are asserted above.
    unsafe { opaque::get(c.cast::<State>(), MAGIC) }
}

/// # Safety
/// `s` must be NULL or a NUL-terminated string that outlives `'a`.
unsafe fn text<'a>(s: *const c_char) -> Result<Option<&'a str>, chunkprov_status> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: NUL-terminated per the contract.
    let c = unsafe { CStr::from_ptr(s) };
    c.to_str()
        .map(Some)
        .map_err(|_| chunkprov_status::InvalidArgument)
}

/// # Safety
/// `cfg` must be NULL or point to a valid config whose strings outlive `'a`.
unsafe fn config<'a>(
    cfg: *const chunkprov_client_config,
) -> Result<(Config<'a>, Partition), chunkprov_status> {
    // SAFETY: per the contract.
    let cfg = unsafe { cfg.as_ref() }.ok_or(chunkprov_status::NullArgument)?;
    // SAFETY: per the contract.
    let (prefix, client_id, serial, csr) = unsafe {
        (
            text(cfg.prefix)?,
            text(cfg.client_id)?,
            text(cfg.serial)?,
            text(cfg.csr)?,
        )
    };
    let (Some(prefix), Some(client_id), Some(serial)) = (prefix, client_id, serial) else {
        return Err(chunkprov_status::NullArgument);
    };
    let config = Config {
        prefix,
        client_id,
        serial,
        csr,
        packet_limit: cfg.packet_limit,
        window: cfg.window,
        timeout_ms: cfg.timeout_ticks,
        backoff_max_ms: cfg.backoff_max_ticks,
        max_retries: cfg.max_retries,
        max_provisions: cfg.max_provisions,
        max_confirm_attempts: cfg.max_confirm_attempts,
        max_boots: cfg.max_boots,
    };
    Ok((
        config,
        Partition {
            offset: cfg.partition_offset,
            size: cfg.partition_size,
        },
    ))
}

fn flash_status(platform: &chunkprov_platform, e: Error<Fault>) -> chunkprov_status {
    match e {
        Error::Flash(_) | Error::Aborted => chunkprov_status::FlashError,
        Error::Rejected(code) => {
            log!(platform, Error, "store: ", code);
            chunkprov_status::InvalidArgument
        }
    }
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(status) => return status,
        }
    };
}

fn slot_name(slot: Option<SlotId>) -> &'static str {
    match slot {
        Some(SlotId::A) => "A",
        Some(SlotId::B) => "B",
        None => "none",
    }
}

fn reason_name(reason: Reason) -> &'static str {
    match reason {
        Reason::Rejected(_) => "rejected by the cloud",
        Reason::ReprovisionLimit => "re-provisioning limit",
        Reason::Config => "configuration",
        Reason::Flash => "flash",
    }
}

fn span(s: Option<Span>) -> chunkprov_span {
    s.map_or(chunkprov_span::default(), |s| chunkprov_span {
        offset: s.offset,
        len: s.len,
    })
}

fn credentials(c: &Credentials) -> chunkprov_credentials {
    chunkprov_credentials {
        thing_name: span(Some(c.layout.thing_name)),
        certificate_id: span(Some(c.layout.certificate_id)),
        certificate: span(Some(c.layout.certificate)),
        private_key: span(c.layout.private_key),
        server_ca: span(c.layout.server_ca),
    }
}

/// Starts the client from what the partition holds: confirmed credentials (the first poll
/// says DONE), a bundle pending confirmation (it reconnects with it), a transfer to resume (it
/// asks only for the frames it lacks), or nothing (it requests one). Call it once per boot.
///
/// Returns CHUNKPROV_STATUS_OK, CHUNKPROV_STATUS_NULL_ARGUMENT, CHUNKPROV_STATUS_INVALID_ARGUMENT
/// (config strings not UTF-8, partition misaligned or too small) or CHUNKPROV_STATUS_FLASH_ERROR.
///
/// # Safety
/// `c` writable storage for a `chunkprov_client`; `platform` and `cfg` valid (NULL is checked).
#[no_mangle]
pub unsafe extern "C" fn chunkprov_client_start(
    c: *mut chunkprov_client,
    platform: *const chunkprov_platform,
    cfg: *const chunkprov_client_config,
) -> chunkprov_status {
    if c.is_null() {
        return chunkprov_status::NullArgument;
    }
    // SAFETY: per the contract.
    let (mut flash, geometry) = tri!(unsafe { CFlash::new(platform) });
    // SAFETY: per the contract.
    let (config, partition) = tri!(unsafe { config(cfg) });
    let store = match Store::open(&mut flash, geometry, partition) {
        Ok(store) => store,
        Err(e) => return flash_status(flash.platform, e),
    };
    let client = match Client::start(&mut flash, store, &config) {
        Ok(client) => client,
        Err(e) => return flash_status(flash.platform, e),
    };
    let s = client.store().state();
    let (held, count) = client.receiver().map_or((0, 0), |r| (r.held(), r.count()));
    log!(
        flash.platform,
        Info,
        "client: confirmed ",
        slot_name(s.confirmed),
        ", pending ",
        slot_name(s.pending),
        ", resuming ",
        held,
        " of ",
        count,
        " frames, boots ",
        s.boots,
        ", requests ",
        s.provisions
    );
    // SAFETY: `c` is non-null, writable, sized and aligned for `State` (asserted above).
    unsafe { opaque::put(c.cast::<State>(), MAGIC, client) };
    chunkprov_status::Ok
}

/// Asks what to do next and fills `out`. Topics and payloads are written into `buf` (`buf_len`
/// bytes): 512 bytes are plenty without a CSR; with one, its length plus 300.
///
/// # Safety
/// `c` started; `platform`, `cfg` valid; `buf` writable for `buf_len` bytes; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn chunkprov_client_poll(
    c: *mut chunkprov_client,
    platform: *const chunkprov_platform,
    cfg: *const chunkprov_client_config,
    buf: *mut u8,
    buf_len: usize,
    out: *mut chunkprov_action,
) -> chunkprov_status {
    // SAFETY: per the contract.
    let client = tri!(unsafe { state(c) });
    // SAFETY: per the contract.
    let (mut flash, _) = tri!(unsafe { CFlash::new(platform) });
    // SAFETY: per the contract.
    let (config, _) = tri!(unsafe { config(cfg) });
    let Some(random_cb) = flash.platform.random else {
        return chunkprov_status::NullArgument;
    };
    if buf.is_null() || out.is_null() {
        return chunkprov_status::NullArgument;
    }
    if buf_len > isize::MAX as usize {
        return chunkprov_status::InvalidArgument;
    }
    // SAFETY: writable for `buf_len` bytes per the contract.
    let buffer = unsafe { core::slice::from_raw_parts_mut(buf, buf_len) };
    let ctx = flash.platform.ctx;
    let mut random = |bytes: &mut [u8]| {
        // SAFETY: the platform's callback, with a buffer valid for its length.
        unsafe { random_cb(ctx, bytes.as_mut_ptr(), bytes.len() as u32) }
    };
    let action = match client.poll(&mut flash, &config, &mut random, buffer) {
        Ok(action) => action,
        Err(e) => return flash_status(flash.platform, e),
    };
    let mut a = chunkprov_action {
        kind: chunkprov_action_kind::Wait,
        topic: core::ptr::null(),
        topic_len: 0,
        payload: core::ptr::null(),
        payload_len: 0,
        wait_ticks: 0,
        claim: false,
        slot: 0,
        credentials: chunkprov_credentials::default(),
        give_up: chunkprov_give_up::None,
        reject_code: 0,
    };
    let p = flash.platform;
    let identity = |a: &mut chunkprov_action, id: Identity| match id {
        Identity::Claim => a.claim = true,
        Identity::Slot(creds) => {
            a.slot = creds.slot as u8;
            a.credentials = credentials(&creds);
        }
    };
    match action {
        Action::Connect(id) => {
            a.kind = chunkprov_action_kind::Connect;
            identity(&mut a, id);
            log!(
                p,
                Info,
                "connect with ",
                if a.claim {
                    "the claim certificate"
                } else {
                    "the new credentials"
                }
            );
        }
        Action::RolledBack(id) => {
            a.kind = chunkprov_action_kind::RolledBack;
            identity(&mut a, id);
            log!(p, Warn, "new credentials did not confirm: rolled back");
        }
        Action::Subscribe(topic) => {
            a.kind = chunkprov_action_kind::Subscribe;
            a.topic = topic.as_ptr().cast();
            a.topic_len = topic.len();
            log!(p, Debug, "subscribe ", topic);
        }
        Action::Publish { topic, payload } => {
            a.kind = chunkprov_action_kind::Publish;
            a.topic = topic.as_ptr().cast();
            a.topic_len = topic.len();
            a.payload = payload.as_ptr();
            a.payload_len = payload.len();
            log!(p, Debug, "publish ", topic, " (", payload.len(), " bytes)");
        }
        Action::Wait(ticks) => {
            a.kind = chunkprov_action_kind::Wait;
            a.wait_ticks = ticks;
        }
        Action::Done(creds) => {
            a.kind = chunkprov_action_kind::Done;
            a.slot = creds.slot as u8;
            a.credentials = credentials(&creds);
        }
        Action::GiveUp(reason) => {
            a.kind = chunkprov_action_kind::GiveUp;
            a.give_up = match reason {
                Reason::Rejected(code) => {
                    a.reject_code = code;
                    chunkprov_give_up::Rejected
                }
                Reason::ReprovisionLimit => chunkprov_give_up::ReprovisionLimit,
                Reason::Config => chunkprov_give_up::Config,
                Reason::Flash => chunkprov_give_up::Flash,
            };
            log!(p, Error, "giving up: ", reason_name(reason));
        }
    }
    // SAFETY: non-null and writable per the contract.
    unsafe { out.write(a) };
    chunkprov_status::Ok
}

/// The connection asked for by CONNECT or ROLLED_BACK is up (CONNACK accepted).
///
/// # Safety
/// `c` started.
#[no_mangle]
pub unsafe extern "C" fn chunkprov_client_connected(c: *mut chunkprov_client) -> chunkprov_status {
    // SAFETY: per the contract.
    tri!(unsafe { state(c) }).connected();
    chunkprov_status::Ok
}

/// The connection was refused or lost. With new credentials this counts as a failed
/// confirmation attempt (written to flash).
///
/// # Safety
/// `c` started; `platform`, `cfg` valid.
#[no_mangle]
pub unsafe extern "C" fn chunkprov_client_disconnected(
    c: *mut chunkprov_client,
    platform: *const chunkprov_platform,
    cfg: *const chunkprov_client_config,
) -> chunkprov_status {
    // SAFETY: per the contract.
    let client = tri!(unsafe { state(c) });
    // SAFETY: per the contract.
    let (mut flash, _) = tri!(unsafe { CFlash::new(platform) });
    // SAFETY: per the contract.
    let (config, _) = tri!(unsafe { config(cfg) });
    match client.disconnected(&mut flash, &config) {
        Ok(()) => chunkprov_status::Ok,
        Err(e) => flash_status(flash.platform, e),
    }
}

/// The subscription asked for by SUBSCRIBE was acknowledged (SUBACK).
///
/// # Safety
/// `c` started.
#[no_mangle]
pub unsafe extern "C" fn chunkprov_client_subscribed(c: *mut chunkprov_client) -> chunkprov_status {
    // SAFETY: per the contract.
    tri!(unsafe { state(c) }).subscribed();
    chunkprov_status::Ok
}

/// `ticks` of the firmware's monotonic clock passed.
///
/// # Safety
/// `c` started.
#[no_mangle]
pub unsafe extern "C" fn chunkprov_client_tick(
    c: *mut chunkprov_client,
    ticks: u32,
) -> chunkprov_status {
    // SAFETY: per the contract.
    tri!(unsafe { state(c) }).tick(ticks);
    chunkprov_status::Ok
}

/// A PUBLISH arrived on `topic` (`topic_len` bytes, no NUL needed); its payload follows through
/// chunkprov_client_message_data() in pieces of any size, then chunkprov_client_message_end().
///
/// # Safety
/// `c` started; `cfg` valid; `topic` readable for `topic_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn chunkprov_client_message_begin(
    c: *mut chunkprov_client,
    cfg: *const chunkprov_client_config,
    topic: *const c_char,
    topic_len: usize,
) -> chunkprov_status {
    // SAFETY: per the contract.
    let client = tri!(unsafe { state(c) });
    // SAFETY: per the contract.
    let (config, _) = tri!(unsafe { config(cfg) });
    if topic.is_null() || topic_len > isize::MAX as usize {
        return chunkprov_status::NullArgument;
    }
    // SAFETY: readable for `topic_len` bytes per the contract.
    let bytes = unsafe { core::slice::from_raw_parts(topic.cast::<u8>(), topic_len) };
    // A topic that is not UTF-8 is none of ours: it is ignored like any foreign topic.
    client.message_begin(&config, core::str::from_utf8(bytes).unwrap_or(""));
    chunkprov_status::Ok
}

/// The next `len` bytes of the current message's payload. Frames stream to flash.
///
/// # Safety
/// `c` started; `platform` valid; `data` readable for `len` bytes (NULL if `len` is 0).
#[no_mangle]
pub unsafe extern "C" fn chunkprov_client_message_data(
    c: *mut chunkprov_client,
    platform: *const chunkprov_platform,
    data: *const u8,
    len: usize,
) -> chunkprov_status {
    // SAFETY: per the contract.
    let client = tri!(unsafe { state(c) });
    // SAFETY: per the contract.
    let (mut flash, _) = tri!(unsafe { CFlash::new(platform) });
    if len == 0 {
        return chunkprov_status::Ok;
    }
    if data.is_null() {
        return chunkprov_status::NullArgument;
    }
    if len > isize::MAX as usize {
        return chunkprov_status::InvalidArgument;
    }
    // SAFETY: readable for `len` bytes per the contract.
    let bytes = unsafe { core::slice::from_raw_parts(data, len) };
    match client.message_data(&mut flash, bytes) {
        Ok(()) => chunkprov_status::Ok,
        Err(e) => flash_status(flash.platform, e),
    }
}

/// The current message ended. A frame that completes the bundle is verified and committed here.
/// If `notice` is not NULL it receives what the message did.
///
/// # Safety
/// `c` started; `platform`, `cfg` valid; `notice` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chunkprov_client_message_end(
    c: *mut chunkprov_client,
    platform: *const chunkprov_platform,
    cfg: *const chunkprov_client_config,
    notice: *mut chunkprov_notice,
) -> chunkprov_status {
    // SAFETY: per the contract.
    let client = tri!(unsafe { state(c) });
    // SAFETY: per the contract.
    let (mut flash, _) = tri!(unsafe { CFlash::new(platform) });
    // SAFETY: per the contract.
    let (config, _) = tri!(unsafe { config(cfg) });
    match client.message_end(&mut flash, &config) {
        Ok(n) => {
            match n {
                Notice::FrameRejected { code, .. } => {
                    log!(flash.platform, Warn, "frame rejected: ", code)
                }
                Notice::Committed => log!(
                    flash.platform,
                    Info,
                    "bundle complete, verified and committed"
                ),
                Notice::Rejected(code) => {
                    log!(flash.platform, Warn, "rejected by the cloud: code ", code)
                }
                Notice::Confirmed => log!(flash.platform, Info, "new credentials confirmed"),
                _ => {}
            }
            // SAFETY: NULL or writable per the contract.
            if let Some(out) = unsafe { notice.as_mut() } {
                *out = n.into();
            }
            chunkprov_status::Ok
        }
        Err(e) => flash_status(flash.platform, e),
    }
}

/// Progress of the transfer in progress: frames held and frames in it (0/0 when none).
///
/// # Safety
/// `c` started; outputs NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chunkprov_client_progress(
    c: *mut chunkprov_client,
    held: *mut u16,
    count: *mut u16,
) -> chunkprov_status {
    // SAFETY: per the contract.
    let client = tri!(unsafe { state(c) });
    let (h, n) = client.receiver().map_or((0, 0), |r| (r.held(), r.count()));
    // SAFETY: each NULL or writable per the contract.
    unsafe {
        if let Some(p) = held.as_mut() {
            *p = h;
        }
        if let Some(p) = count.as_mut() {
            *p = n;
        }
    }
    chunkprov_status::Ok
}
