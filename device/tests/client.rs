//! The sans-IO client driven end to end against a stand-in for the cloud and the broker (the
//! Lambda's behaviour reduced to what the device sees), on the NOR flash simulator.

mod support;

use chunkprov_device::client::{Action, Client, Config, Identity, Notice, Reason, CLIENT_SIZE};
use chunkprov_device::journal::SlotId;
use chunkprov_device::protocol::bundle::{self, Bundle};
use chunkprov_device::protocol::chunking::{max_chunk, Plan};
use chunkprov_device::protocol::confirm::{ConfirmAccepted, Confirmation};
use chunkprov_device::protocol::pull::Pull;
use chunkprov_device::protocol::reject::Rejection;
use chunkprov_device::protocol::request::Request;
use chunkprov_device::protocol::topic::{self, Kind};
use chunkprov_device::protocol::{Nonce, RejectCode};
use chunkprov_device::store::{Partition, Store};
use chunkprov_device::Geometry;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use support::nor::NorSim;

type Flash = NorSim<4, 4096>;
const PARTITION: Partition = Partition {
    offset: 4096,
    size: 8 * 4096,
};
const SERIAL: &str = "352656100000000";
const CLIENT_ID: &str = "claim-352656100000000";
const THING: &str = "dev-352656100000000";
const CERT_ID: &str = "7d2c3f0e5a1b49c8a6d4e2f0b1c3d5e7f9a8b6c4d2e0f1a3b5c7d9e1f3a5b7c9";

fn config() -> Config<'static> {
    Config {
        prefix: "chunkprov",
        client_id: CLIENT_ID,
        serial: SERIAL,
        csr: Some("MIIBCSRbase64url_-"),
        packet_limit: 256,
        window: 4,
        timeout_ms: 1000,
        backoff_max_ms: 8000,
        max_retries: 3,
        max_provisions: 3,
        max_confirm_attempts: 3,
        max_boots: 5,
    }
}

/// Stand-in for the cloud: answers requests and pulls with frames cut by `chunkprov-protocol`,
/// and confirmations with their answer. Knobs make it lose things.
struct FakeCloud {
    bundle: Vec<u8>,
    next_tid: u32,
    tid: u32,
    nonce: Option<Nonce>,
    window: u16,
    plan: Option<Plan>,
    /// Messages on their way to the device.
    queue: VecDeque<(String, Vec<u8>)>,
    /// Frame indices to drop the first time they are sent.
    drop_once: Vec<u16>,
    /// Confirmation answers to drop.
    drop_answers: u32,
    /// Answer every request with this rejection.
    reject: Option<RejectCode>,
    /// The device runs in key mode (no CSR): the cloud answers with every frame at once.
    key_mode: bool,
    /// Pulls answered with UnknownTransfer (the cloud forgot the transfer).
    forget_transfer: bool,
    requests: u32,
    pulls: Vec<Vec<u16>>,
    frames_sent: u32,
    confirmations: u32,
}

impl FakeCloud {
    fn new() -> Self {
        // 24 frames at packet limit 256: six windows of four.
        let cert = support::pem("CERTIFICATE", 1500, 1);
        let ca = support::pem("CERTIFICATE", 1300, 3);
        let b = Bundle {
            thing_name: THING,
            certificate_id: CERT_ID,
            certificate_pem: &cert,
            private_key_pem: None,
            server_ca_pem: Some(&ca),
        };
        let mut out = vec![0u8; bundle::encoded_len(&b)];
        let n = bundle::encode(&b, &mut out).unwrap();
        out.truncate(n);
        Self {
            bundle: out,
            next_tid: 100,
            tid: 0,
            nonce: None,
            window: 0,
            plan: None,
            queue: VecDeque::new(),
            drop_once: vec![],
            drop_answers: 0,
            reject: None,
            key_mode: false,
            forget_transfer: false,
            requests: 0,
            pulls: vec![],
            frames_sent: 0,
            confirmations: 0,
        }
    }

    fn topic(kind: Kind, id: &str) -> String {
        let mut buf = [0u8; 256];
        topic::build("chunkprov", id, kind, &mut buf)
            .unwrap()
            .to_string()
    }

    fn send_frame(&mut self, i: u16) {
        if let Some(pos) = self.drop_once.iter().position(|&d| d == i) {
            self.drop_once.remove(pos);
            return;
        }
        let plan = self.plan.unwrap();
        let sha: [u8; 32] = Sha256::digest(&self.bundle).into();
        let (h, p) = plan
            .frame_of(&self.bundle, i, self.nonce.unwrap(), self.tid, &sha)
            .unwrap();
        let msg = support::encode(&h, p);
        let topic = Self::topic(Kind::Frame, CLIENT_ID);
        assert!(
            chunkprov_device::protocol::chunking::publish_packet_len(
                topic.len() as u32,
                msg.len() as u32
            )
            .unwrap()
                <= 256
        );
        self.queue.push_back((topic, msg));
        self.frames_sent += 1;
    }

    fn reject(&mut self, nonce: Option<Nonce>, code: RejectCode) {
        let mut buf = [0u8; 128];
        let n = Rejection::new(nonce, code, code.name())
            .encode(&mut buf)
            .unwrap();
        self.queue
            .push_back((Self::topic(Kind::Rejected, CLIENT_ID), buf[..n].to_vec()));
    }

    fn publish(&mut self, topic: &str, payload: &[u8]) {
        let (id, kind) = topic::parse("chunkprov", topic).unwrap();
        match kind {
            Kind::Request => {
                assert_eq!(id, CLIENT_ID);
                let r = Request::decode(payload).unwrap();
                assert_eq!(r.serial_number, SERIAL);
                self.requests += 1;
                if let Some(code) = self.reject {
                    self.reject(Some(r.nonce), code);
                    return;
                }
                if self.nonce != Some(r.nonce) {
                    self.tid = self.next_tid;
                    self.next_tid += 1;
                    self.nonce = Some(r.nonce);
                }
                self.window = r.window;
                let plan = Plan::for_bundle(
                    self.bundle.len() as u32,
                    max_chunk(r.packet_limit, 37).unwrap(),
                )
                .unwrap();
                self.plan = Some(plan);
                // The first window (key mode: every frame), in reverse order, its first frame
                // twice.
                assert_eq!(r.csr.is_none(), self.key_mode);
                let n = if self.key_mode {
                    plan.count()
                } else {
                    self.window.min(plan.count())
                };
                let first: Vec<u16> = (0..n).rev().collect();
                for &i in &first {
                    self.send_frame(i);
                }
                self.send_frame(first[first.len() - 1]);
            }
            Kind::Pull => {
                let p = Pull::decode(payload).unwrap();
                if self.forget_transfer || Some(p.nonce) != self.nonce || p.transfer_id != self.tid
                {
                    self.forget_transfer = false;
                    self.nonce = None;
                    self.reject(Some(p.nonce), RejectCode::UnknownTransfer);
                    return;
                }
                assert!(p.missing.len() <= self.window as usize);
                self.pulls.push(p.missing.to_vec());
                for &i in &p.missing {
                    self.send_frame(i);
                }
            }
            Kind::Confirm => {
                assert_eq!(id, THING);
                let c = Confirmation::decode(payload).unwrap();
                assert_eq!((c.transfer_id, c.certificate_id), (self.tid, CERT_ID));
                self.confirmations += 1;
                if self.drop_answers > 0 {
                    self.drop_answers -= 1;
                    return;
                }
                let mut buf = [0u8; 128];
                let n = ConfirmAccepted {
                    transfer_id: c.transfer_id,
                    certificate_id: c.certificate_id,
                }
                .encode(&mut buf)
                .unwrap();
                self.queue
                    .push_back((Self::topic(Kind::ConfirmAccepted, THING), buf[..n].to_vec()));
            }
            other => panic!("device published on {other:?}"),
        }
    }
}

/// What happened in a run.
#[derive(Debug, Default)]
struct Log {
    connects: Vec<String>,
    rolled_back: u32,
    published: u32,
    delivered: u32,
    outcome: Option<Result<SlotId, Reason>>,
    notices: Vec<Notice>,
}

/// Runs the device until it is done, gives up, or `steps` actions pass (a power cut).
/// `refuse_new` makes the broker refuse connections with the new credentials this many times.
fn run(flash: &mut Flash, cloud: &mut FakeCloud, steps: usize, refuse_new: &mut u32) -> Log {
    let mut cfg = config();
    if cloud.key_mode {
        cfg.csr = None;
    }
    let g = Geometry::of::<Flash>().unwrap();
    let store = Store::open(flash, g, PARTITION).unwrap();
    let mut client = Client::start(flash, store, &cfg).unwrap();
    let mut log = Log::default();
    let mut rng_state = 0x1234_5678u32 ^ cloud.requests;
    let mut random = |buf: &mut [u8]| {
        for b in buf {
            rng_state = rng_state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (rng_state >> 16) as u8;
        }
    };
    let mut out = vec![0u8; 2048];
    let mut connected_as_new = false;
    for _ in 0..steps {
        let action = client.poll(flash, &cfg, &mut random, &mut out).unwrap();
        match action {
            Action::Connect(id) | Action::RolledBack(id) => {
                if matches!(action, Action::RolledBack(_)) {
                    log.rolled_back += 1;
                }
                cloud.queue.clear(); // clean session: nothing queued survives
                match id {
                    Identity::Claim => {
                        log.connects.push("claim".into());
                        connected_as_new = false;
                        client.connected();
                    }
                    Identity::Slot(c) => {
                        let name = &flash.mem[c.layout.thing_name.offset as usize..]
                            [..c.layout.thing_name.len as usize];
                        assert_eq!(name, THING.as_bytes());
                        let cert = &flash.mem[c.layout.certificate.offset as usize..]
                            [..c.layout.certificate.len as usize];
                        assert!(
                            cert.starts_with(b"-----BEGIN CERTIFICATE-----")
                                && cert.ends_with(b"\0")
                        );
                        log.connects.push("new".into());
                        if *refuse_new > 0 {
                            *refuse_new -= 1;
                            client.disconnected(flash, &cfg).unwrap();
                        } else {
                            connected_as_new = true;
                            client.connected();
                        }
                    }
                }
            }
            Action::Subscribe(t) => {
                let (id, kind) = topic::parse("chunkprov", t).unwrap();
                match kind {
                    Kind::Frame | Kind::Rejected => assert_eq!(id, CLIENT_ID),
                    Kind::ConfirmAccepted => assert!(connected_as_new && id == THING),
                    other => panic!("subscribed to {other:?}"),
                }
                client.subscribed();
            }
            Action::Publish { topic, payload } => {
                log.published += 1;
                let (topic, payload) = (topic.to_string(), payload.to_vec());
                cloud.publish(&topic, &payload);
            }
            Action::Wait(ms) => match cloud.queue.pop_front() {
                Some((topic, msg)) => {
                    log.delivered += 1;
                    client.message_begin(&cfg, &topic);
                    for piece in msg.chunks(37) {
                        client.message_data(flash, piece).unwrap();
                    }
                    log.notices.push(client.message_end(flash, &cfg).unwrap());
                }
                None => client.tick(ms.max(1)),
            },
            Action::Done(c) => {
                log.outcome = Some(Ok(c.slot));
                return log;
            }
            Action::GiveUp(reason) => {
                log.outcome = Some(Err(reason));
                return log;
            }
        }
    }
    log
}

fn fresh() -> Flash {
    Flash::new(10)
}

#[test]
fn provisions_and_confirms_with_the_fewest_messages() {
    let mut flash = fresh();
    let mut cloud = FakeCloud::new();
    let log = run(&mut flash, &mut cloud, 10_000, &mut 0);
    assert_eq!(log.outcome, Some(Ok(SlotId::A)));
    let count = cloud.plan.unwrap().count() as u32;
    let windows = count.div_ceil(4);
    assert_eq!(cloud.requests, 1);
    assert_eq!(
        cloud.pulls.len() as u32,
        windows - 1,
        "one pull per window after the first"
    );
    assert_eq!(cloud.confirmations, 1);
    // Published: 1 request + pulls + 1 confirmation. Received: frames (+1 duplicate) + answer.
    assert_eq!(log.published, 1 + (windows - 1) + 1);
    println!(
        "client state {} bytes; {} frames, {} windows; messages: {} published, {} received",
        CLIENT_SIZE, count, windows, log.published, log.delivered
    );
    assert_eq!(log.connects, ["claim", "new"]);
    // What the firmware was told, message by message.
    let held = log
        .notices
        .iter()
        .filter(|n| matches!(n, Notice::FrameHeld { .. }))
        .count() as u32;
    assert_eq!(
        held,
        count - 1,
        "every frame but the last is reported held; the last commits"
    );
    assert_eq!(
        log.notices
            .iter()
            .filter(|n| **n == Notice::Committed)
            .count(),
        1
    );
    assert_eq!(log.notices.last(), Some(&Notice::Confirmed));
    assert!(log.notices.contains(&Notice::FrameDuplicate { index: 0 }));
    // Done again after a reboot, without touching the network.
    let again = run(&mut flash, &mut FakeCloud::new(), 10, &mut 0);
    assert_eq!(
        (again.outcome, again.published, again.connects.len()),
        (Some(Ok(SlotId::A)), 0, 0)
    );
}

#[test]
fn dropped_frames_are_pulled_again() {
    let mut flash = fresh();
    let mut cloud = FakeCloud::new();
    cloud.drop_once = vec![1, 6, 9];
    let log = run(&mut flash, &mut cloud, 10_000, &mut 0);
    assert_eq!(log.outcome, Some(Ok(SlotId::A)));
    for d in [1u16, 6, 9] {
        assert!(
            cloud.pulls.iter().any(|p| p.contains(&d)),
            "frame {d} was never asked for again"
        );
    }
}

#[test]
fn key_mode_takes_every_frame_at_once_and_pulls_only_what_is_lost() {
    // The cloud sends every frame in answer to the request (it holds the key only then):
    // pulling the next window would ask it for frames already on their way.
    let mut flash = fresh();
    let mut cloud = FakeCloud::new();
    cloud.key_mode = true;
    let log = run(&mut flash, &mut cloud, 10_000, &mut 0);
    assert_eq!(log.outcome, Some(Ok(SlotId::A)));
    assert_eq!((cloud.requests, cloud.pulls.len()), (1, 0));
    // A frame lost on the way is asked for once the device's timeout passes.
    let mut flash = fresh();
    let mut cloud = FakeCloud::new();
    cloud.key_mode = true;
    cloud.drop_once = vec![2, 17];
    let log = run(&mut flash, &mut cloud, 10_000, &mut 0);
    assert_eq!(log.outcome, Some(Ok(SlotId::A)));
    assert_eq!(cloud.pulls, [vec![2, 17]]);
}

#[test]
fn a_reboot_mid_transfer_resumes_asking_only_for_missing_frames() {
    let mut flash = fresh();
    let mut cloud = FakeCloud::new();
    let first = run(&mut flash, &mut cloud, 20, &mut 0);
    assert_eq!(first.outcome, None);
    let g = Geometry::of::<Flash>().unwrap();
    let store = Store::open(&mut flash, g, PARTITION).unwrap();
    let rx = store
        .resume(&mut flash)
        .unwrap()
        .expect("a transfer to resume");
    let held: Vec<u16> = (0..rx.count()).filter(|&i| rx.is_held(i)).collect();
    assert!(!held.is_empty() && held.len() < rx.count() as usize);
    let requests = cloud.requests;
    cloud.pulls.clear();
    cloud.queue.clear();
    let second = run(&mut flash, &mut cloud, 10_000, &mut 0);
    assert_eq!(second.outcome, Some(Ok(SlotId::A)));
    assert_eq!(
        cloud.requests, requests,
        "resumed with a pull, not a new request"
    );
    for p in &cloud.pulls {
        for i in p {
            assert!(!held.contains(i), "frame {i} was held but asked for again");
        }
    }
}

#[test]
fn a_transfer_complete_at_boot_is_committed_without_asking_again() {
    // Every frame held and verified, power gone before the commit record.
    let mut flash = fresh();
    let mut cloud = FakeCloud::new();
    let g = Geometry::of::<Flash>().unwrap();
    let store = Store::open(&mut flash, g, PARTITION).unwrap();
    let nonce = Nonce([4; 8]);
    let mut rx = store.receive(&flash, nonce).unwrap();
    cloud.nonce = Some(nonce);
    cloud.tid = 100;
    cloud.plan =
        Some(Plan::for_bundle(cloud.bundle.len() as u32, max_chunk(256, 37).unwrap()).unwrap());
    for i in 0..cloud.plan.unwrap().count() {
        cloud.send_frame(i);
        let (_, msg) = cloud.queue.pop_front().unwrap();
        rx.feed(&mut flash, &msg).unwrap();
        rx.end(&mut flash).unwrap();
    }
    assert!(rx.is_complete());
    let log = run(&mut flash, &mut cloud, 10_000, &mut 0);
    assert_eq!(log.outcome, Some(Ok(SlotId::A)));
    assert_eq!(
        (cloud.requests, cloud.pulls.len()),
        (0, 0),
        "nothing asked again"
    );
    assert_eq!(log.connects, ["new"]);
}

#[test]
fn a_changed_transfer_on_resume_starts_over() {
    let mut flash = fresh();
    let mut cloud = FakeCloud::new();
    run(&mut flash, &mut cloud, 20, &mut 0);
    assert_eq!((cloud.requests, cloud.tid), (1, 100));
    // The cloud no longer has the transfer (a key-mode re-issue, an expired item): the resumed
    // pull is rejected, the device asks anew, and the new transfer id drops the partial bundle.
    cloud.forget_transfer = true;
    cloud.queue.clear();
    let log = run(&mut flash, &mut cloud, 10_000, &mut 0);
    assert_eq!(log.outcome, Some(Ok(SlotId::A)));
    assert_eq!((cloud.requests, cloud.tid), (2, 101));
}

#[test]
fn a_broker_that_never_answers_is_given_up_on_and_tried_again() {
    let mut flash = fresh();
    let cfg = config();
    let g = Geometry::of::<Flash>().unwrap();
    let store = Store::open(&mut flash, g, PARTITION).unwrap();
    let mut client = Client::start(&mut flash, store, &cfg).unwrap();
    let mut out = vec![0u8; 2048];
    let mut random = |b: &mut [u8]| b.fill(1);
    let mut connects = 0;
    for _ in 0..100 {
        match client
            .poll(&mut flash, &cfg, &mut random, &mut out)
            .unwrap()
        {
            Action::Connect(Identity::Claim) => connects += 1, // no CONNACK ever comes
            Action::Wait(ms) => client.tick(ms.max(1)),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        connects > 3,
        "the client asks to connect again after each timeout"
    );
}

#[test]
fn a_lost_confirmation_answer_is_retried() {
    let mut flash = fresh();
    let mut cloud = FakeCloud::new();
    cloud.drop_answers = 1;
    let log = run(&mut flash, &mut cloud, 10_000, &mut 0);
    assert_eq!(log.outcome, Some(Ok(SlotId::A)));
    assert_eq!(cloud.confirmations, 2);
    assert_eq!(log.connects, ["claim", "new", "new"]);
}

#[test]
fn failed_reconnects_roll_back_then_provisioning_starts_again() {
    let mut flash = fresh();
    let mut cloud = FakeCloud::new();
    let mut refuse = 3; // = max_confirm_attempts
    let log = run(&mut flash, &mut cloud, 20_000, &mut refuse);
    assert_eq!(log.rolled_back, 1);
    assert_eq!(log.connects[..5], ["claim", "new", "new", "new", "claim"]);
    assert_eq!(
        log.outcome,
        Some(Ok(SlotId::A)),
        "the second attempt confirms"
    );
    assert_eq!(cloud.requests, 2);
}

#[test]
fn reprovisioning_is_capped() {
    let mut flash = fresh();
    let mut cloud = FakeCloud::new();
    let mut refuse = u32::MAX; // the new credentials never work
    let log = run(&mut flash, &mut cloud, 100_000, &mut refuse);
    assert_eq!(log.outcome, Some(Err(Reason::ReprovisionLimit)));
    assert_eq!(cloud.requests, config().max_provisions as u32);
    assert_eq!(log.rolled_back, config().max_provisions as u32);
    // The device still has (only) its claim credentials.
    let g = Geometry::of::<Flash>().unwrap();
    let s = *Store::open(&mut flash, g, PARTITION).unwrap().state();
    assert_eq!((s.confirmed, s.pending), (None, None));
    // After a reboot the last, rolled-back bundle (complete in its slot) is not used again.
    let again = run(&mut flash, &mut cloud, 10_000, &mut 0);
    assert_eq!(again.outcome, Some(Err(Reason::ReprovisionLimit)));
    assert!(
        !again.connects.iter().any(|c| c == "new"),
        "{:?}",
        again.connects
    );
}

#[test]
fn rejections_give_up_or_back_off() {
    let mut flash = fresh();
    let mut cloud = FakeCloud::new();
    cloud.reject = Some(RejectCode::CsrSubjectMismatch);
    let log = run(&mut flash, &mut cloud, 1000, &mut 0);
    assert_eq!(
        log.outcome,
        Some(Err(Reason::Rejected(RejectCode::CsrSubjectMismatch as u16)))
    );
    assert_eq!(cloud.requests, 1);

    let mut flash = fresh();
    let mut cloud = FakeCloud::new();
    cloud.reject = Some(RejectCode::Throttled);
    let log = run(&mut flash, &mut cloud, 200, &mut 0);
    assert_eq!(
        log.outcome,
        Some(Err(Reason::ReprovisionLimit)),
        "throttled every time: capped"
    );
    assert_eq!(cloud.requests, config().max_provisions as u32);
    cloud.reject = None;
}

#[test]
fn a_slot_too_small_gives_up_instead_of_looping() {
    let mut flash = Flash::new(10);
    let cfg = config();
    let g = Geometry::of::<Flash>().unwrap();
    // Two journal pages and two slots of one header page and one data page.
    let tiny = Partition {
        offset: 0,
        size: 6 * 4096,
    };
    let store = Store::open(&mut flash, g, tiny).unwrap();
    let mut cloud = FakeCloud::new();
    cloud.bundle = vec![0u8; 6000]; // longer than one data page
    let mut client = Client::start(&mut flash, store, &cfg).unwrap();
    let mut out = vec![0u8; 2048];
    let mut random = |b: &mut [u8]| b.fill(7);
    for _ in 0..5000 {
        match client
            .poll(&mut flash, &cfg, &mut random, &mut out)
            .unwrap()
        {
            Action::Connect(_) => client.connected(),
            Action::Subscribe(_) => client.subscribed(),
            Action::Publish { topic, payload } => {
                let (t, p) = (topic.to_string(), payload.to_vec());
                cloud.publish(&t, &p)
            }
            Action::Wait(ms) => match cloud.queue.pop_front() {
                Some((t, m)) => {
                    client.message_begin(&cfg, &t);
                    client.message_data(&mut flash, &m).unwrap();
                    client.message_end(&mut flash, &cfg).unwrap();
                }
                None => client.tick(ms.max(1)),
            },
            Action::GiveUp(r) => {
                assert_eq!(r, Reason::ReprovisionLimit);
                return;
            }
            other => panic!("{other:?}"),
        }
    }
    panic!("never gave up");
}

#[test]
fn too_many_boots_during_confirmation_roll_back() {
    // Run until the bundle is committed (pending), then keep rebooting before confirming.
    let g = Geometry::of::<Flash>().unwrap();
    let (mut flash, mut cloud) = (1..200)
        .map(|steps| {
            let mut flash = fresh();
            let mut cloud = FakeCloud::new();
            run(&mut flash, &mut cloud, steps, &mut 0);
            (flash, cloud)
        })
        .find_map(|(mut flash, cloud)| {
            let pending = Store::open(&mut flash, g, PARTITION)
                .unwrap()
                .state()
                .pending
                .is_some();
            pending.then_some((flash, cloud))
        })
        .expect("a run that stops with the bundle pending");
    for _ in 0..config().max_boots {
        run(&mut flash, &mut cloud, 1, &mut 0);
    }
    let s = *Store::open(&mut flash, g, PARTITION).unwrap().state();
    assert!(s.pending.is_some() && s.boots == config().max_boots);
    let log = run(&mut flash, &mut cloud, 1, &mut 0);
    assert_eq!(log.rolled_back, 1, "the boot after the limit rolls back");
}
