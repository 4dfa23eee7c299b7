//! The device simulator: the device library's sans-IO [`Client`] driven over real MQTT
//! (`rumqttc`, TLS with client certificates), its flash a file per device.
//!
//! Like a device it: opens its flash and resumes whatever is there; in CSR mode generates its
//! key pair once (kept in `device.key` beside the flash, never sent anywhere) and a CSR whose
//! subject CN is its serial (base64url DER, as the nRF91 modem's `AT%KEYGEN` gives it); connects
//! on the claim listener with the batch's claim certificate under `<claimPrefix><serial>` with
//! its declared packet limit as rumqttc's incoming limit (a larger packet fails the connection);
//! feeds every received payload to the client in small pieces; and on
//! `Action::Connect(Identity::Slot(..))` reconnects on the device listener under the thing name,
//! with the certificate read from flash at the spans the action gives and its own key (CSR mode)
//! or the key from the bundle (key mode). Time passes only through `Client::tick`, in
//! milliseconds.
//!
//! Dropping a [`Simulator`] (or stopping it with [`Limits::stop_after_frames`]) is a power cut
//! between two flash operations: the next `Simulator::open` on the same directory resumes.

use crate::broker::Topics;
use crate::ca::Pair;
use crate::flash::{FileFlash, ERASE_SIZE};
use crate::mqtt;
use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use chunkprov_device::client::{Action, Client, Config, Credentials, Identity, Reason};
use chunkprov_device::journal::SlotId;
use chunkprov_device::protocol::bundle::Span;
use chunkprov_device::protocol::topic::{self, Kind};
use chunkprov_device::store::{Partition, Store};
use chunkprov_device::Geometry;
use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS, SubscribeReasonCode};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Pages of the flash image: two journal pages and two slots of five pages (one header page,
/// four data pages: 16 KB, the largest bundle).
pub const PAGES: usize = 12;
const PARTITION: Partition = Partition {
    offset: 0,
    size: (PAGES * ERASE_SIZE) as u32,
};

/// How the device gets its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The device makes its key pair and sends a CSR (the default).
    Csr,
    /// The cloud makes the key and sends it in the bundle.
    Key,
}

/// One simulated device.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// Its serial number (e.g. an IMEI).
    pub serial: String,
    /// Its directory: `flash.bin` and, in CSR mode, `device.key`.
    pub dir: PathBuf,
    /// Topic prefix and claim client-id prefix.
    pub topics: Topics,
    /// CSR or key mode.
    pub mode: Mode,
    /// The largest PUBLISH packet it can receive.
    pub packet_limit: u32,
    /// Frames in flight.
    pub window: u16,
    /// Wait for frames or an answer this long before asking again (ms).
    pub timeout_ms: u32,
    /// Payload pieces handed to the client, bytes (as `mqtt_read_publish_payload` would).
    pub piece: usize,
    /// Retries without progress before the client gives up (`Config::max_retries`).
    pub max_retries: u8,
    /// Boots allowed during one provisioning (`Config::max_boots`): every restart of a
    /// simulator counts, so restart-heavy runs raise it.
    pub max_boots: u16,
    /// Print each step to stderr.
    pub verbose: bool,
}

impl DeviceSpec {
    /// A device with the defaults: CSR mode, 256-byte packets, window 4, 2 s timeout, 64-byte
    /// pieces.
    pub fn new(serial: &str, dir: PathBuf) -> Self {
        Self {
            serial: serial.into(),
            dir,
            topics: Topics::default(),
            mode: Mode::Csr,
            packet_limit: 256,
            window: 4,
            timeout_ms: 2000,
            piece: 64,
            max_retries: 3,
            max_boots: 5,
            verbose: false,
        }
    }
}

/// Where the device connects and with what it starts.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The broker's host (`127.0.0.1` locally; the account's IoT data endpoint on AWS).
    pub host: String,
    /// The claim listener.
    pub claim_port: u16,
    /// The device listener.
    pub device_port: u16,
    /// The CA that signed the broker's certificate, PEM.
    pub server_ca_pem: String,
    /// The batch's claim certificate and key.
    pub claim: Pair,
}

/// When to stop early.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Stop (a power cut) once this many frames have been handed to the client.
    pub stop_after_frames: Option<usize>,
    /// Give up with an error after this long.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            stop_after_frames: None,
            deadline: Duration::from_secs(60),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Provisioned and confirmed.
    Done(Provisioned),
    /// The client gave up.
    GaveUp(Reason),
    /// Stopped by [`Limits::stop_after_frames`].
    Stopped,
}

/// Confirmed credentials, as read back from flash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The slot they are in.
    pub slot: SlotId,
    /// The thing name (the client id from now on).
    pub thing_name: String,
    /// The certificate id.
    pub certificate_id: String,
    /// The certificate, PEM (without the NUL).
    pub certificate_pem: String,
    /// The private key, PEM: the bundle's in key mode, the device's own in CSR mode.
    pub key_pem: String,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// How it ended (`None` only while running).
    pub outcome: Option<Outcome>,
    /// Frame indices handed to the client, in arrival order.
    pub frames: Vec<u16>,
    /// Every message received (frames included).
    pub received: usize,
    /// The bundle's length and frame count, from the frames' headers.
    pub bundle: Option<(u32, u16)>,
    /// Every message published (written to the connection): topic and payload.
    pub published: Vec<(String, Vec<u8>)>,
    /// Client ids connected under, in order (`claim:` or `thing:` prefixed).
    pub connects: Vec<String>,
    /// Human-readable steps.
    pub log: Vec<String>,
}

impl Report {
    /// Payloads published on topics of `kind`.
    pub fn published_of(&self, prefix: &str, kind: Kind) -> Vec<&[u8]> {
        self.published
            .iter()
            .filter(|(t, _)| topic::parse(prefix, t).is_some_and(|(_, k)| k == kind))
            .map(|(_, p)| p.as_slice())
            .collect()
    }
}

/// A simulated device.
pub struct Simulator {
    spec: DeviceSpec,
    ep: Endpoints,
    flash: FileFlash,
    client_id: String,
    /// The device's own key (CSR mode).
    key_pem: Option<String>,
    csr: Option<String>,
    born: Instant,
}

struct Conn {
    client: AsyncClient,
    events: EventLoop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    Message,
    SubAck,
    Sent,
}

enum Pumped {
    Reached,
    Timeout,
    Disconnected(String),
}

/// An action with what it borrows copied out.
enum Step {
    Connect(Identity, bool),
    Subscribe(String),
    Publish(String, Vec<u8>),
    Wait(u32),
    Done(Credentials),
    GiveUp(Reason),
}

fn flash_err<E: core::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("device library / flash: {e:?}")
}

impl Simulator {
    /// Opens (or creates) the device in `spec.dir`: its flash image and, in CSR mode, its key.
    pub fn open(spec: DeviceSpec, ep: Endpoints) -> Result<Self> {
        std::fs::create_dir_all(&spec.dir)
            .with_context(|| format!("creating {}", spec.dir.display()))?;
        let flash = FileFlash::open(&spec.dir.join("flash.bin"), PAGES)?;
        let client_id = format!("{}{}", spec.topics.claim_prefix, spec.serial);
        let (key_pem, csr) = match spec.mode {
            Mode::Key => (None, None),
            Mode::Csr => {
                let path = spec.dir.join("device.key");
                let key = if path.exists() {
                    rcgen::KeyPair::from_pem(&std::fs::read_to_string(&path)?)
                        .with_context(|| format!("reading {}", path.display()))?
                } else {
                    let k = rcgen::KeyPair::generate().context("generating the device key")?;
                    crate::ca::write_private(&path, &k.serialize_pem())?;
                    k
                };
                let mut params = rcgen::CertificateParams::default();
                params.distinguished_name = rcgen::DistinguishedName::new();
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, spec.serial.as_str());
                let csr = params.serialize_request(&key).context("making the CSR")?;
                let csr = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(csr.der());
                (Some(key.serialize_pem()), Some(csr))
            }
        };
        Ok(Self {
            spec,
            ep,
            flash,
            client_id,
            key_pem,
            csr,
            born: Instant::now(),
        })
    }

    /// The claim client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The flash image (for inspection).
    pub fn flash(&mut self) -> &mut FileFlash {
        &mut self.flash
    }

    fn note(&self, report: &mut Report, line: String) {
        if self.spec.verbose {
            eprintln!(
                "  device {} +{:.3} s  {line}",
                self.spec.serial,
                self.born.elapsed().as_secs_f64()
            );
        }
        report.log.push(line);
    }

    fn span(&self, s: Span) -> Result<&[u8]> {
        self.flash
            .bytes(s.offset, s.len)
            .ok_or_else(|| anyhow!("credential span {s:?} outside flash"))
    }

    fn span_str(&self, s: Span) -> Result<String> {
        let b = self.span(s)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        String::from_utf8(b.to_vec()).context("credential is not UTF-8")
    }

    /// Runs the device until it is provisioned, gives up, or `limits` stop it.
    pub async fn run(&mut self, limits: &Limits) -> Result<Report> {
        // The client's configuration borrows these, not `self`, so `self.flash` stays free.
        let (prefix, client_id, serial, csr) = (
            self.spec.topics.prefix.clone(),
            self.client_id.clone(),
            self.spec.serial.clone(),
            self.csr.clone(),
        );
        let cfg = Config {
            prefix: &prefix,
            client_id: &client_id,
            serial: &serial,
            csr: csr.as_deref(),
            packet_limit: self.spec.packet_limit,
            window: self.spec.window,
            timeout_ms: self.spec.timeout_ms,
            backoff_max_ms: self.spec.timeout_ms.saturating_mul(8),
            max_retries: self.spec.max_retries,
            max_provisions: 3,
            max_confirm_attempts: 3,
            max_boots: self.spec.max_boots,
        };
        let g = Geometry::of::<FileFlash>().map_err(flash_err)?;
        let store = Store::open(&mut self.flash, g, PARTITION).map_err(flash_err)?;
        let mut client = Client::start(&mut self.flash, store, &cfg).map_err(flash_err)?;
        let mut report = Report::default();
        if let Some(rx) = client.receiver().filter(|r| r.transfer_id().is_some()) {
            let line = format!(
                "resuming transfer {}: {} of {} frames already in flash",
                rx.transfer_id().unwrap_or_default(),
                rx.held(),
                rx.count()
            );
            self.note(&mut report, line);
        }
        let mut conn: Option<Conn> = None;
        let mut out = vec![0u8; 4096];
        let mut random = |b: &mut [u8]| {
            // A nonce. getrandom fails only where the OS has no randomness at all; a fixed
            // nonce would silently break the protocol, so stop instead.
            #[allow(clippy::expect_used)]
            getrandom::fill(b).expect("the OS has no randomness for the nonce");
        };
        let started = Instant::now();
        let timeout = Duration::from_millis(u64::from(self.spec.timeout_ms));
        loop {
            if started.elapsed() > limits.deadline {
                bail!(
                    "device {} not finished after {:?}; steps:\n  {}",
                    self.spec.serial,
                    limits.deadline,
                    report.log.join("\n  ")
                );
            }
            if limits
                .stop_after_frames
                .is_some_and(|n| report.frames.len() >= n)
            {
                let line = format!("stopped after {} frames", report.frames.len());
                self.note(&mut report, line);
                report.outcome = Some(Outcome::Stopped);
                return Ok(report);
            }
            let step = match client
                .poll(&mut self.flash, &cfg, &mut random, &mut out)
                .map_err(flash_err)?
            {
                Action::Connect(id) => Step::Connect(id, false),
                Action::RolledBack(id) => Step::Connect(id, true),
                Action::Subscribe(t) => Step::Subscribe(t.to_string()),
                Action::Publish { topic, payload } => {
                    Step::Publish(topic.to_string(), payload.to_vec())
                }
                Action::Wait(ms) => Step::Wait(ms),
                Action::Done(c) => Step::Done(c),
                Action::GiveUp(r) => Step::GiveUp(r),
            };
            match step {
                Step::Connect(id, rolled_back) => {
                    conn = None;
                    if rolled_back {
                        self.note(&mut report, "new credentials rolled back".into());
                    }
                    match self.connect(id, timeout, &mut report).await {
                        Ok(c) => {
                            conn = Some(c);
                            client.connected();
                        }
                        Err(e) => {
                            self.note(&mut report, format!("connection failed: {e:#}"));
                            client
                                .disconnected(&mut self.flash, &cfg)
                                .map_err(flash_err)?;
                        }
                    }
                }
                Step::Subscribe(t) => {
                    let Some(c) = conn.as_mut() else {
                        client
                            .disconnected(&mut self.flash, &cfg)
                            .map_err(flash_err)?;
                        continue;
                    };
                    self.note(&mut report, format!("subscribe {t}"));
                    let sent = c.client.subscribe(t, QoS::AtLeastOnce).await.is_ok();
                    let p = if sent {
                        self.pump(
                            &mut client,
                            &cfg,
                            &mut conn,
                            Until::SubAck,
                            timeout,
                            limits,
                            &mut report,
                        )
                        .await?
                    } else {
                        Pumped::Disconnected("client closed".into())
                    };
                    match p {
                        Pumped::Reached => client.subscribed(),
                        // The client waits for a SUBACK indefinitely (it re-arms its own
                        // deadline): the firmware times the subscription out by dropping the
                        // connection.
                        Pumped::Timeout => {
                            self.note(&mut report, "no SUBACK: dropping the connection".into());
                            conn = None;
                            client
                                .disconnected(&mut self.flash, &cfg)
                                .map_err(flash_err)?;
                        }
                        Pumped::Disconnected(e) => {
                            self.note(&mut report, format!("disconnected: {e}"));
                            conn = None;
                            client
                                .disconnected(&mut self.flash, &cfg)
                                .map_err(flash_err)?;
                        }
                    }
                }
                Step::Publish(t, payload) => {
                    let what = match topic::parse(&prefix, &t) {
                        Some((_, Kind::Request)) => "request".to_string(),
                        Some((_, Kind::Pull)) => {
                            format!("pull {}", String::from_utf8_lossy(&payload))
                        }
                        Some((_, Kind::Confirm)) => "confirmation".to_string(),
                        _ => format!("publish on {t}"),
                    };
                    self.note(&mut report, what);
                    let Some(c) = conn.as_mut() else {
                        client
                            .disconnected(&mut self.flash, &cfg)
                            .map_err(flash_err)?;
                        continue;
                    };
                    let sent = c
                        .client
                        .publish(t.clone(), QoS::AtLeastOnce, false, payload.clone())
                        .await
                        .is_ok();
                    let p = if sent {
                        self.pump(
                            &mut client,
                            &cfg,
                            &mut conn,
                            Until::Sent,
                            timeout,
                            limits,
                            &mut report,
                        )
                        .await?
                    } else {
                        Pumped::Disconnected("client closed".into())
                    };
                    let lost = match p {
                        Pumped::Reached => {
                            // Counted once it has left (not when the connection was gone).
                            report.published.push((t, payload));
                            None
                        }
                        Pumped::Timeout => Some("publish not sent in time".to_string()),
                        Pumped::Disconnected(e) => Some(e),
                    };
                    if let Some(e) = lost {
                        self.note(&mut report, format!("disconnected: {e}"));
                        conn = None;
                        client
                            .disconnected(&mut self.flash, &cfg)
                            .map_err(flash_err)?;
                    }
                }
                Step::Wait(ms) => {
                    let t0 = Instant::now();
                    let wait = Duration::from_millis(u64::from(ms.max(1)));
                    let p = if conn.is_some() {
                        self.pump(
                            &mut client,
                            &cfg,
                            &mut conn,
                            Until::Message,
                            wait,
                            limits,
                            &mut report,
                        )
                        .await?
                    } else {
                        tokio::time::sleep(wait).await;
                        Pumped::Timeout
                    };
                    let elapsed = t0.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
                    client.tick(elapsed);
                    if let Pumped::Disconnected(e) = p {
                        self.note(&mut report, format!("disconnected: {e}"));
                        conn = None;
                        client
                            .disconnected(&mut self.flash, &cfg)
                            .map_err(flash_err)?;
                    }
                }
                Step::Done(c) => {
                    let p = self.provisioned(c)?;
                    self.note(
                        &mut report,
                        format!(
                            "confirmed: {} ({}), slot {:?}",
                            p.thing_name, p.certificate_id, p.slot
                        ),
                    );
                    report.outcome = Some(Outcome::Done(p));
                    return Ok(report);
                }
                Step::GiveUp(r) => {
                    self.note(&mut report, format!("gave up: {r:?}"));
                    report.outcome = Some(Outcome::GaveUp(r));
                    return Ok(report);
                }
            }
        }
    }

    fn provisioned(&self, c: Credentials) -> Result<Provisioned> {
        let key_pem = match (self.spec.mode, c.layout.private_key, &self.key_pem) {
            (_, Some(k), _) => self.span_str(k)?,
            (_, None, Some(own)) => own.clone(),
            (_, None, None) => bail!("key mode, but the bundle holds no private key"),
        };
        Ok(Provisioned {
            slot: c.slot,
            thing_name: self.span_str(c.layout.thing_name)?,
            certificate_id: self.span_str(c.layout.certificate_id)?,
            certificate_pem: self.span_str(c.layout.certificate)?,
            key_pem,
        })
    }

    async fn connect(
        &mut self,
        id: Identity,
        timeout: Duration,
        report: &mut Report,
    ) -> Result<Conn> {
        let (client_id, port, tls) = match id {
            Identity::Claim => {
                report.connects.push(format!("claim:{}", self.client_id));
                self.note(report, format!("connect (claim) as {}", self.client_id));
                let tls = mqtt::tls_config(
                    self.ep.server_ca_pem.as_bytes(),
                    self.ep.claim.cert_pem.as_bytes(),
                    self.ep.claim.key_pem.as_bytes(),
                )?;
                (self.client_id.clone(), self.ep.claim_port, tls)
            }
            Identity::Slot(c) => {
                let thing = self.span_str(c.layout.thing_name)?;
                report.connects.push(format!("thing:{thing}"));
                self.note(
                    report,
                    format!("connect (new certificate, slot {:?}) as {thing}", c.slot),
                );
                // Straight from flash: the spans the action gives (NUL included, as mbedTLS wants).
                let cert = self.span(c.layout.certificate)?.to_vec();
                let key = match (c.layout.private_key, &self.key_pem) {
                    (Some(k), _) => self.span(k)?.to_vec(),
                    (None, Some(own)) => own.clone().into_bytes(),
                    (None, None) => bail!("key mode, but the bundle holds no private key"),
                };
                let ca = match c.layout.server_ca {
                    Some(s) => self.span(s)?.to_vec(),
                    None => self.ep.server_ca_pem.clone().into_bytes(),
                };
                let tls = mqtt::tls_config(&ca, &cert, &key)?;
                (thing, self.ep.device_port, tls)
            }
        };
        let opts = mqtt::options_at(
            &self.ep.host,
            &client_id,
            port,
            tls,
            Some(self.spec.packet_limit),
        );
        let (client, events) = mqtt::connect(opts, timeout).await?;
        Ok(Conn { client, events })
    }

    /// Polls the connection until `until` happens, handing every message received meanwhile to
    /// the client.
    #[allow(clippy::too_many_arguments)]
    async fn pump(
        &mut self,
        client: &mut Client,
        cfg: &Config<'_>,
        conn: &mut Option<Conn>,
        until: Until,
        timeout: Duration,
        limits: &Limits,
        report: &mut Report,
    ) -> Result<Pumped> {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(c) = conn.as_mut() else {
                return Ok(Pumped::Disconnected("not connected".into()));
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Pumped::Timeout);
            }
            let ev = match tokio::time::timeout(left, c.events.poll()).await {
                Err(_) => return Ok(Pumped::Timeout),
                Ok(Err(e)) => {
                    *conn = None;
                    return Ok(Pumped::Disconnected(e.to_string()));
                }
                Ok(Ok(ev)) => ev,
            };
            match ev {
                Event::Incoming(Packet::Publish(p)) => {
                    self.deliver(client, cfg, &p.topic, &p.payload, limits, report)?;
                    if until == Until::Message {
                        return Ok(Pumped::Reached);
                    }
                }
                Event::Incoming(Packet::SubAck(s)) if until == Until::SubAck => {
                    if s.return_codes.contains(&SubscribeReasonCode::Failure) {
                        self.note(report, "subscription refused (SUBACK 0x80)".into());
                    }
                    return Ok(Pumped::Reached);
                }
                Event::Outgoing(Outgoing::Publish(_)) if until == Until::Sent => {
                    return Ok(Pumped::Reached)
                }
                _ => {}
            }
        }
    }

    fn deliver(
        &mut self,
        client: &mut Client,
        cfg: &Config<'_>,
        topic_name: &str,
        payload: &[u8],
        limits: &Limits,
        report: &mut Report,
    ) -> Result<()> {
        let is_frame = matches!(topic::parse(cfg.prefix, topic_name), Some((_, Kind::Frame)));
        if is_frame
            && limits
                .stop_after_frames
                .is_some_and(|n| report.frames.len() >= n)
        {
            return Ok(()); // the power is already off
        }
        report.received += 1;
        if is_frame {
            if let Ok((h, _)) = chunkprov_device::protocol::frame::decode(payload) {
                report.frames.push(h.index);
                report.bundle = Some((h.bundle_len, h.count));
                let line = format!("frame {} of {} ({} bytes)", h.index, h.count, payload.len());
                self.note(report, line);
            }
        } else {
            self.note(
                report,
                format!("message on {topic_name} ({} bytes)", payload.len()),
            );
        }
        let was_pending = client.store().state().pending.is_some();
        client.message_begin(cfg, topic_name);
        for piece in payload.chunks(self.spec.piece.max(1)) {
            client
                .message_data(&mut self.flash, piece)
                .map_err(flash_err)?;
        }
        client
            .message_end(&mut self.flash, cfg)
            .map_err(flash_err)?;
        if !was_pending && client.store().state().pending.is_some() {
            self.note(
                report,
                "bundle complete, SHA-256 verified, committed".into(),
            );
        }
        Ok(())
    }
}
