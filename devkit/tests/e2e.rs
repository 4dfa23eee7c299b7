//! End to end on the local stack: the real Mosquitto brokers, the Lambda's real binary (dev
//! profile) behind a Lambda Runtime API, the project's IoT emulator backed by the local CA,
//! DynamoDB from moto, the topic rules, and simulated devices running the device library.
//! Nothing in these tests stands in for the Lambda or the broker.

mod support;

use chunkprov_device::protocol::reject::Rejection;
use chunkprov_device::protocol::topic::Kind;
use chunkprov_device::protocol::RejectCode;
use chunkprov_device::store::{Partition, Store};
use chunkprov_device::Geometry;
use chunkprov_devkit::fleet::{self, FleetConfig};
use chunkprov_devkit::mqtt;
use chunkprov_devkit::sim::{DeviceSpec, Limits, Mode, Outcome, Provisioned, Simulator};
use chunkprov_devkit::stack::{LocalStack, StackConfig};
use rumqttc::{AsyncClient, EventLoop, QoS};
use std::time::Duration;
use support::{wait_for, watch, TempDir};

const PREFIX: &str = "chunkprov";

/// A local stack in a fresh state directory (removed at the end).
struct Local {
    stack: LocalStack,
    dir: TempDir,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

impl Local {
    async fn start(tag: &str, tweak: impl FnOnce(&mut StackConfig)) -> Self {
        let dir = TempDir::new(tag);
        let mut cfg = StackConfig::new(dir.0.join("state"));
        cfg.concurrency = 2;
        tweak(&mut cfg);
        let stack = match LocalStack::start(cfg).await {
            Ok(s) => s,
            Err(e) => panic!("cannot start the local stack: {e:#}"),
        };
        Self { stack, dir }
    }

    fn device(&self, serial: &str) -> DeviceSpec {
        let mut spec = DeviceSpec::new(serial, self.dir.0.join("devices").join(serial));
        // Nothing is lost on loopback unless a test loses it: a long timeout keeps a loaded
        // machine from causing retries, so message counts are exact.
        spec.timeout_ms = 10_000;
        spec
    }

    async fn run(&self, spec: DeviceSpec, limits: &Limits) -> chunkprov_devkit::sim::Report {
        let mut dev = Simulator::open(spec, self.stack.endpoints("batch-1").unwrap()).unwrap();
        dev.run(limits).await.unwrap()
    }

    /// Runs `spec` to confirmation and checks the credentials for real.
    async fn provision(&self, spec: DeviceSpec) -> (Provisioned, chunkprov_devkit::sim::Report) {
        let r = self.run(spec, &Limits::default()).await;
        let Some(Outcome::Done(p)) = &r.outcome else {
            panic!(
                "not provisioned: {:?}\nsteps:\n  {}\nLambda logs in {}",
                r.outcome,
                r.log.join("\n  "),
                self.dir.0.join("state/logs").display()
            );
        };
        self.stack.verify(p).await.unwrap();
        (p.clone(), r)
    }

    /// A claim holder's connection under `client_id`.
    async fn claim_client(&self, client_id: &str) -> anyhow::Result<(AsyncClient, EventLoop)> {
        let ep = self.stack.endpoints("batch-1")?;
        let tls = mqtt::tls_config(
            ep.server_ca_pem.as_bytes(),
            ep.claim.cert_pem.as_bytes(),
            ep.claim.key_pem.as_bytes(),
        )?;
        mqtt::connect(
            mqtt::options(client_id, self.stack.broker.claim_port, tls, None),
            Duration::from_secs(5),
        )
        .await
    }

    /// Waits until the rules have received `n` messages (20 s at most).
    async fn rules_received(&self, n: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.stack.rules.stats().received < n {
            assert!(
                std::time::Instant::now() < deadline,
                "the rules received {:?}, not {n}",
                self.stack.rules.stats()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn calls(&self, op: &str) -> u64 {
        self.stack.emulator.stats().get(op).map_or(0, |s| s.calls)
    }
}

fn missing_of(pull: &[u8]) -> Vec<u16> {
    let v: serde_json::Value = serde_json::from_slice(pull).unwrap();
    v.get("Missing")
        .and_then(|m| m.as_array())
        .map(|a| a.iter().map(|i| i.as_u64().unwrap() as u16).collect())
        .unwrap_or_default()
}

#[test]
fn csr_mode_provisions_through_the_real_lambda_and_broker() {
    runtime().block_on(async {
        let local = Local::start("csr", |_| {}).await;
        let spec = local.device("352656100000001");
        let (p, r) = local.provision(spec.clone()).await;
        println!("CSR mode:\n  {}", r.log.join("\n  "));
        assert_eq!(p.thing_name, "dev-352656100000001");
        assert_eq!(
            r.connects,
            ["claim:claim-352656100000001", "thing:dev-352656100000001"]
        );
        // The key never left the device: the one in flash use is the device's own.
        assert_eq!(
            std::fs::read_to_string(spec.dir.join("device.key")).unwrap(),
            p.key_pem
        );
        // The fewest messages: one request, one pull per window after the first, every frame
        // once, one confirmation.
        let (_, count) = r.bundle.unwrap();
        assert!(
            count > 4,
            "256-byte packets make several windows ({count} frames)"
        );
        let windows = usize::from(count).div_ceil(4);
        assert_eq!(r.published_of(PREFIX, Kind::Request).len(), 1);
        assert_eq!(r.published_of(PREFIX, Kind::Pull).len(), windows - 1);
        assert_eq!(r.published_of(PREFIX, Kind::Confirm).len(), 1);
        let mut frames = r.frames.clone();
        frames.sort();
        assert_eq!(frames, (0..count).collect::<Vec<_>>());
        // One certificate, one thing, activated once.
        assert_eq!(local.calls("CreateCertificateFromCsr"), 1);
        assert_eq!(local.calls("CreateKeysAndCertificate"), 0);
        assert_eq!(local.calls("RegisterThing"), 1);
        // Rebooted, the device is done from flash alone.
        let again = local.run(spec, &Limits::default()).await;
        assert!(matches!(again.outcome, Some(Outcome::Done(_))));
        assert!(again.connects.is_empty() && again.published.is_empty());
    });
}

#[test]
fn key_mode_provisions_when_the_deployment_allows_it() {
    runtime().block_on(async {
        let local = Local::start("key", |c| c.key_mode = true).await;
        let mut spec = local.device("352656100000002");
        spec.mode = Mode::Key;
        let (p, r) = local.provision(spec.clone()).await;
        assert_eq!(p.thing_name, "dev-352656100000002");
        assert!(
            !spec.dir.join("device.key").exists(),
            "the key came in the bundle"
        );
        assert!(p.key_pem.contains("PRIVATE KEY"));
        assert_eq!(local.calls("CreateKeysAndCertificate"), 1);
        assert_eq!(local.calls("CreateCertificateFromCsr"), 0);
        // Every frame came in answer to the request: nothing to pull.
        assert_eq!(r.published_of(PREFIX, Kind::Request).len(), 1);
        assert!(r.published_of(PREFIX, Kind::Pull).is_empty());
        assert_eq!(r.published_of(PREFIX, Kind::Confirm).len(), 1);
    });
}

#[test]
fn a_device_killed_mid_transfer_resumes_and_pulls_only_what_it_lacks() {
    runtime().block_on(async {
        let local = Local::start("resume", |_| {}).await;
        let spec = local.device("352656100000003");
        let first = local
            .run(
                spec.clone(),
                &Limits {
                    stop_after_frames: Some(3),
                    ..Limits::default()
                },
            )
            .await;
        assert_eq!(first.outcome, Some(Outcome::Stopped));

        // What the flash file holds after the power cut.
        let mut flash = chunkprov_devkit::flash::FileFlash::open(
            &spec.dir.join("flash.bin"),
            chunkprov_devkit::sim::PAGES,
        )
        .unwrap();
        let g = Geometry::of::<chunkprov_devkit::flash::FileFlash>().unwrap();
        let part = Partition {
            offset: 0,
            size: (chunkprov_devkit::sim::PAGES * chunkprov_devkit::flash::ERASE_SIZE) as u32,
        };
        let store = Store::open(&mut flash, g, part).unwrap();
        let rx = store
            .resume(&mut flash)
            .unwrap()
            .expect("a transfer in flash");
        let held: Vec<u16> = (0..rx.count()).filter(|&i| rx.is_held(i)).collect();
        assert_eq!(held.len(), 3, "the three frames handed over are held");
        drop(flash);

        let (_, second) = local.provision(spec).await;
        println!("resumed:\n  {}", second.log.join("\n  "));
        assert!(second.log[0].starts_with("resuming transfer"));
        assert!(
            second.published_of(PREFIX, Kind::Request).is_empty(),
            "resumed with pulls, not a new request"
        );
        let pulls = second.published_of(PREFIX, Kind::Pull);
        assert!(!pulls.is_empty());
        for pull in pulls {
            for i in missing_of(pull) {
                assert!(
                    !held.contains(&i),
                    "frame {i} was in flash but asked for again"
                );
            }
        }
        let mut all: Vec<u16> = held.iter().chain(&second.frames).copied().collect();
        all.sort();
        assert_eq!(
            all,
            (0..rx.count()).collect::<Vec<_>>(),
            "the second run received exactly the frames not in flash"
        );
        assert_eq!(local.calls("CreateCertificateFromCsr"), 1);
    });
}

#[test]
fn dropped_frames_are_pulled_again() {
    runtime().block_on(async {
        let local = Local::start("dropped", |_| {}).await;
        let serial = "352656100000004";
        let mut spec = local.device(serial);
        spec.timeout_ms = 1500; // the loss is noticed by the device's timeout
        local
            .stack
            .lose_frames_once(&format!("claim-{serial}"), &[1, 2, 5]);
        let (_, r) = local.provision(spec).await;
        assert_eq!(local.stack.bridge.stats().lost, 3);
        let asked: Vec<u16> = r
            .published_of(PREFIX, Kind::Pull)
            .into_iter()
            .flat_map(missing_of)
            .collect();
        for i in [1, 2, 5] {
            assert!(
                asked.contains(&i),
                "lost frame {i} not asked for again: {asked:?}"
            );
        }
        assert_eq!(local.calls("CreateCertificateFromCsr"), 1);
    });
}

#[test]
fn a_device_cannot_receive_another_devices_frames() {
    runtime().block_on(async {
        let local = Local::start("isolation", |_| {}).await;
        // B, a claim holder, listens on A's frame topic and on every frame topic.
        let (b, b_ev) = local.claim_client("claim-352656100000006").await.unwrap();
        let (seen, _h) = watch(b_ev);
        for t in [
            "chunkprov/claim-352656100000005/frame",
            "chunkprov/+/frame",
            "chunkprov/claim-352656100000006/rejected",
        ] {
            b.subscribe(t, QoS::AtLeastOnce).await.unwrap();
        }
        wait_for(&seen, 5, "three SUBACKs", |s| s.suback_codes.len() == 3).await;
        let (_, r) = local.provision(local.device("352656100000005")).await;
        assert!(!r.frames.is_empty());
        // Control on the same connection: B's own topic works (a malformed request of B's is
        // answered on B's rejection topic by the Lambda).
        b.publish(
            "chunkprov/claim-352656100000006/json",
            QoS::AtLeastOnce,
            false,
            b"{not json".to_vec(),
        )
        .await
        .unwrap();
        wait_for(&seen, 20, "B's own rejection", |s| !s.publishes.is_empty()).await;
        let s = seen.lock().unwrap();
        let topics: Vec<&str> = s.publishes.iter().map(|p| p.topic.as_str()).collect();
        assert_eq!(
            topics,
            ["chunkprov/claim-352656100000006/rejected"],
            "B received another device's frames"
        );
    });
}

#[test]
fn a_claim_holder_cannot_connect_under_a_provisioned_things_client_id() {
    runtime().block_on(async {
        let local = Local::start("claim-as-thing", |_| {}).await;
        let (p, _) = local.provision(local.device("352656100000007")).await;
        // On the claim listener the broker admits only claim client ids.
        let e = local
            .claim_client(&p.thing_name)
            .await
            .err()
            .expect("a thing-name client id is refused");
        println!("claim certificate as {}: {e:#}", p.thing_name);
        // On the device listener the claim certificate is not even trusted.
        let ep = local.stack.endpoints("batch-1").unwrap();
        assert!(local
            .stack
            .prove_credentials(&ep.claim, &ep.server_ca_pem, &p.thing_name)
            .await
            .is_err());
        // The thing's own credentials are.
        let pair = chunkprov_devkit::ca::Pair {
            cert_pem: p.certificate_pem,
            key_pem: p.key_pem,
        };
        local
            .stack
            .prove_credentials(&pair, &ep.server_ca_pem, &p.thing_name)
            .await
            .unwrap();
    });
}

/// A request as a device would send it for `serial` (CSR with CN = serial).
fn request(serial: &str, nonce: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, serial);
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    serde_json::json!({
        "SerialNumber": serial,
        "Nonce": nonce,
        "Csr": csr,
        "PacketLimit": 256,
        "Window": 4,
    })
    .to_string()
    .into_bytes()
}

#[test]
fn a_spoofed_serial_in_the_payload_is_rejected_and_nothing_is_created() {
    runtime().block_on(async {
        let local = Local::start("spoof", |_| {}).await;
        let (c, ev) = local.claim_client("claim-352656100000008").await.unwrap();
        let (seen, _h) = watch(ev);
        c.subscribe("chunkprov/claim-352656100000008/rejected", QoS::AtLeastOnce)
            .await
            .unwrap();
        wait_for(&seen, 5, "SUBACK", |s| s.suback_codes.len() == 1).await;
        // Connected as ...008, asking for ...009.
        c.publish(
            "chunkprov/claim-352656100000008/json",
            QoS::AtLeastOnce,
            false,
            request("352656100000009", "0011223344556677"),
        )
        .await
        .unwrap();
        wait_for(&seen, 20, "the rejection", |s| !s.publishes.is_empty()).await;
        let payload = seen.lock().unwrap().publishes[0].payload.clone();
        let rej = Rejection::decode(&payload).unwrap();
        assert_eq!(
            rej.code,
            RejectCode::IdentityMismatch as u16,
            "{}",
            rej.message
        );
        // And on the other device's topic the broker delivers nothing to the rules at all.
        c.publish(
            "chunkprov/claim-352656100000009/json",
            QoS::AtLeastOnce,
            false,
            request("352656100000009", "0011223344556678"),
        )
        .await
        .unwrap();
        // A message the ACL allows, on the same connection, after it: Mosquitto handles one
        // client's publishes in order, so once the rules have this one they would have had the
        // other.
        c.publish(
            "chunkprov/claim-352656100000008/json",
            QoS::AtLeastOnce,
            false,
            b"{not json".to_vec(),
        )
        .await
        .unwrap();
        local.rules_received(2).await;
        wait_for(&seen, 20, "the second rejection", |s| {
            s.publishes.len() == 2
        })
        .await;
        assert!(local.stack.settle(Duration::from_secs(10)).await);
        assert_eq!(
            local.stack.rules.stats().received,
            2,
            "the forged topic reached the rules"
        );
        assert_eq!(local.calls("CreateCertificateFromCsr"), 0);
        assert_eq!(local.calls("RegisterThing"), 0);
    });
}

#[test]
fn a_repeated_request_does_not_create_a_second_certificate() {
    runtime().block_on(async {
        let local = Local::start("repeat", |_| {}).await;
        let serial = "352656100000010";
        let spec = local.device(serial);
        // The device asks, receives one frame, and loses power.
        let first = local
            .run(
                spec.clone(),
                &Limits {
                    stop_after_frames: Some(1),
                    ..Limits::default()
                },
            )
            .await;
        assert_eq!(first.outcome, Some(Outcome::Stopped));
        let req = first.published_of(PREFIX, Kind::Request)[0].to_vec();
        // The same request again (as a retry after a lost answer would be).
        let (c, ev) = local
            .claim_client(&format!("claim-{serial}"))
            .await
            .unwrap();
        let (_seen, _h) = watch(ev);
        c.publish(
            format!("chunkprov/claim-{serial}/json"),
            QoS::AtLeastOnce,
            false,
            req,
        )
        .await
        .unwrap();
        local.rules_received(2).await;
        assert!(local.stack.settle(Duration::from_secs(20)).await);
        drop(c);
        assert_eq!(
            local.stack.rules.stats().received,
            2,
            "both requests reached the Lambda"
        );
        // The device comes back and finishes with the one certificate.
        let (_, _) = local.provision(spec).await;
        assert_eq!(local.calls("CreateCertificateFromCsr"), 1);
        assert_eq!(local.calls("RegisterThing"), 1);
    });
}

#[test]
fn throttled_register_thing_is_survived() {
    runtime().block_on(async {
        let local = Local::start("throttle", |c| c.aws_rates = true).await;
        local
            .stack
            .emulator
            .fail("RegisterThing", 429, "ThrottlingException", 3);
        let (_, _) = local.provision(local.device("352656100000011")).await;
        let rt = local.stack.emulator.stats()["RegisterThing"];
        assert!(rt.failed >= 3 && rt.calls >= 4, "{rt:?}");
        // Survived inside the invocation (the Lambda's own backoff), not by failing it and
        // leaning on the asynchronous invocation's retries.
        let rules = local.stack.rules.stats();
        assert_eq!((rules.errors, rules.retried), (0, 0), "{rules:?}");
        assert_eq!(local.calls("CreateCertificateFromCsr"), 1);
    });
}

#[test]
fn a_fleet_of_ten_devices_is_provisioned_and_verified() {
    runtime().block_on(async {
        let local = Local::start("fleet", |c| c.concurrency = 5).await;
        let mut cfg = FleetConfig::new(10, local.dir.0.join("fleet"));
        cfg.device_timeout_ms = 30_000;
        let report = fleet::run(&local.stack, &cfg).await.unwrap();
        println!("{}", report.summary());
        assert_eq!(report.verified(), 10, "{}", report.summary());
        assert_eq!(local.calls("RegisterThing"), 10);
    });
}
