//! The device simulator against the real Mosquitto with the claim and device ACLs, and a
//! stand-in for the cloud (see `support/standin_cloud.rs`).

mod support;

use chunkprov_device::protocol::topic::Kind;
use chunkprov_device::store::{Partition, Store};
use chunkprov_device::Geometry;
use chunkprov_devkit::ca::pem_der;
use chunkprov_devkit::sim::{Limits, Mode, Outcome, Simulator};
use rumqttc::{QoS, SubscribeReasonCode};
use std::time::{Duration, Instant};
use support::standin_cloud::StandInCloud;
use support::{wait_for, watch, Stack};
use x509_parser::prelude::*;

const PREFIX: &str = "chunkprov";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Provisions one device and checks everything the device and the cloud saw.
fn provisions(mode: Mode) {
    let stack = Stack::start("e2e");
    runtime().block_on(async {
        let cloud = StandInCloud::start(&stack.broker, stack.pki.dir()).await;
        let mut spec = stack.device("352656100000001");
        spec.mode = mode;
        let mut dev = Simulator::open(spec.clone(), stack.endpoints()).unwrap();
        let t0 = Instant::now();
        let report = dev.run(&Limits::default()).await.unwrap();
        let Some(Outcome::Done(p)) = &report.outcome else {
            panic!(
                "not provisioned: {:?}\n{}",
                report.outcome,
                report.log.join("\n")
            );
        };
        println!(
            "{mode:?} mode: provisioned in {:?}:\n  {}",
            t0.elapsed(),
            report.log.join("\n  ")
        );
        assert_eq!(p.thing_name, "dev-352656100000001");
        let t = cloud.transfer("claim-352656100000001").unwrap();
        assert!(t.confirmed);
        assert_eq!(p.certificate_id, t.certificate_id);
        assert_eq!(p.certificate_pem, t.certificate_pem);
        // Claim first, then the new identity on the device listener, which confirmed.
        assert_eq!(
            report.connects,
            ["claim:claim-352656100000001", "thing:dev-352656100000001"]
        );
        // The fewest messages: one request, one pull per window after the first, every frame
        // once, one confirmation.
        let count = t.plan.count() as usize;
        assert!(
            count > 4,
            "small packets make several windows ({count} frames)"
        );
        let windows = count.div_ceil(4);
        assert_eq!(report.published_of(PREFIX, Kind::Request).len(), 1);
        assert_eq!(report.published_of(PREFIX, Kind::Pull).len(), windows - 1);
        assert_eq!(report.published_of(PREFIX, Kind::Confirm).len(), 1);
        let mut frames = report.frames.clone();
        frames.sort();
        assert_eq!(frames, (0..count as u16).collect::<Vec<_>>());
        cloud.log(|l| {
            assert_eq!(l.requests.len(), 1);
            assert_eq!(l.confirmations, ["dev-352656100000001"]);
            assert!(l.rejections.is_empty(), "{:?}", l.rejections);
        });
        // The certificate in flash is the device CA's, for the key the device holds.
        let der = pem_der(&p.certificate_pem, "CERTIFICATE").unwrap();
        let ca = pem_der(stack.pki.device.cert_pem(), "CERTIFICATE").unwrap();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let (_, ca) = X509Certificate::from_der(&ca).unwrap();
        cert.verify_signature(Some(ca.public_key())).unwrap();
        let key = rcgen::KeyPair::from_pem(&p.key_pem).unwrap();
        assert_eq!(
            cert.public_key().raw,
            rcgen::PublicKeyData::subject_public_key_info(&key)
        );
        let own_key = spec.dir.join("device.key");
        match mode {
            Mode::Csr => assert_eq!(std::fs::read_to_string(own_key).unwrap(), p.key_pem),
            Mode::Key => assert!(!own_key.exists()),
        }
        // Rebooted, the device is done from flash alone.
        drop(dev);
        let mut again = Simulator::open(spec, stack.endpoints()).unwrap();
        let r = again.run(&Limits::default()).await.unwrap();
        assert!(matches!(r.outcome, Some(Outcome::Done(_))));
        assert!(r.connects.is_empty() && r.published.is_empty());
    });
}

#[test]
fn a_device_provisions_end_to_end_in_csr_mode() {
    provisions(Mode::Csr);
}

#[test]
fn a_device_provisions_end_to_end_in_key_mode() {
    provisions(Mode::Key);
}

#[test]
fn a_device_killed_mid_transfer_resumes_and_pulls_only_what_it_lacks() {
    let stack = Stack::start("resume");
    runtime().block_on(async {
        let cloud = StandInCloud::start(&stack.broker, stack.pki.dir()).await;
        let spec = stack.device("352656100000002");
        let limits = Limits {
            stop_after_frames: Some(3),
            ..Limits::default()
        };
        let mut dev = Simulator::open(spec.clone(), stack.endpoints()).unwrap();
        let first = dev.run(&limits).await.unwrap();
        assert_eq!(first.outcome, Some(Outcome::Stopped));
        drop(dev); // the process dies: only the flash file remains

        // What the flash file holds.
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

        let pulls_before = cloud.log(|l| l.pulls.len());
        let mut dev = Simulator::open(spec, stack.endpoints()).unwrap();
        let second = dev.run(&Limits::default()).await.unwrap();
        assert!(
            matches!(second.outcome, Some(Outcome::Done(_))),
            "{:?}\n{}",
            second.outcome,
            second.log.join("\n")
        );
        println!("resumed run:\n  {}", second.log.join("\n  "));
        assert!(second.log[0].starts_with("resuming transfer"));
        assert!(
            second.published_of(PREFIX, Kind::Request).is_empty(),
            "resumed with pulls, not a new request"
        );
        cloud.log(|l| {
            assert_eq!(l.requests.len(), 1);
            let after = &l.pulls[pulls_before..];
            assert!(!after.is_empty());
            for (_, asked) in after {
                for i in asked {
                    assert!(
                        !held.contains(i),
                        "frame {i} was in flash but asked for again"
                    );
                }
            }
        });
        let mut all: Vec<u16> = held.iter().chain(&second.frames).copied().collect();
        all.sort();
        assert_eq!(
            all,
            (0..rx.count()).collect::<Vec<_>>(),
            "the second run received exactly the frames not in flash"
        );
    });
}

#[test]
fn a_device_cannot_receive_another_devices_frames() {
    let stack = Stack::start("isolation");
    runtime().block_on(async {
        let cloud = StandInCloud::start(&stack.broker, stack.pki.dir()).await;
        // B, a claim holder, listens on A's frame topic (and on every frame topic).
        let (b, b_ev) = stack
            .connect(
                &stack.claim,
                stack.broker.claim_port,
                "claim-352656100000004",
            )
            .await
            .unwrap();
        let (seen, _h) = watch(b_ev);
        for t in [
            "chunkprov/claim-352656100000003/frame",
            "chunkprov/+/frame",
            "chunkprov/claim-352656100000004/frame",
        ] {
            b.subscribe(t, QoS::AtLeastOnce).await.unwrap();
        }
        wait_for(&seen, 5, "three SUBACKs", |s| s.suback_codes.len() == 3).await;
        // Mosquitto acknowledges the denied subscriptions (2.0.11 even grants QoS 1: its ACL
        // file is checked on delivery); what matters is below: nothing is delivered.
        println!("SUBACK codes: {:?}", seen.lock().unwrap().suback_codes);
        assert_eq!(
            seen.lock().unwrap().suback_codes[2],
            SubscribeReasonCode::Success(QoS::AtLeastOnce)
        );

        let mut a = Simulator::open(stack.device("352656100000003"), stack.endpoints()).unwrap();
        let r = a.run(&Limits::default()).await.unwrap();
        assert!(matches!(r.outcome, Some(Outcome::Done(_))));
        assert!(cloud.log(|l| l.frames_sent.len()) >= r.frames.len());

        // Control: B's connection works and receives its own frames topic.
        let (svc, svc_ev) = stack
            .service(stack.broker.claim_service_port, "isolation")
            .await;
        let (_svc_seen, _h2) = watch(svc_ev);
        svc.publish(
            "chunkprov/claim-352656100000004/frame",
            QoS::AtLeastOnce,
            false,
            b"for B".to_vec(),
        )
        .await
        .unwrap();
        wait_for(&seen, 5, "B's own message", |s| !s.publishes.is_empty()).await;
        let s = seen.lock().unwrap();
        assert!(s.error.is_none(), "{:?}", s.error);
        let topics: Vec<&str> = s.publishes.iter().map(|p| p.topic.as_str()).collect();
        assert_eq!(
            topics,
            ["chunkprov/claim-352656100000004/frame"],
            "B received another device's frames"
        );
    });
}

#[test]
fn a_claim_certificate_cannot_connect_as_a_thing() {
    let stack = Stack::start("claim-id");
    runtime().block_on(async {
        let port = stack.broker.claim_port;
        let refused = stack
            .connect(&stack.claim, port, "dev-352656100000005")
            .await;
        let err = refused.err().expect("a thing-name client id is refused");
        println!("claim certificate as dev-352656100000005: {err:#}");
        assert!(format!("{err:#}").contains("refused"), "{err:#}");
        // Control: the same certificate connects under a claim client id.
        stack
            .connect(&stack.claim, port, "claim-352656100000005")
            .await
            .unwrap();
        // And the claim certificate is no device certificate: the device listener refuses it.
        assert!(stack
            .connect(
                &stack.claim,
                stack.broker.device_port,
                "dev-352656100000005"
            )
            .await
            .is_err());
    });
}

#[test]
fn a_device_certificate_cannot_publish_another_things_confirmation() {
    let stack = Stack::start("device-acl");
    runtime().block_on(async {
        let (svc, svc_ev) = stack
            .service(stack.broker.device_service_port, "device-acl")
            .await;
        let (svc_seen, _h) = watch(svc_ev);
        svc.subscribe("chunkprov/+/confirm", QoS::AtLeastOnce)
            .await
            .unwrap();
        wait_for(&svc_seen, 5, "SUBACK", |s| s.suback_codes.len() == 1).await;

        let issued = stack.pki.issue_keys_and_certificate("dev-A").unwrap();
        let pair = chunkprov_devkit::ca::Pair {
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem.unwrap(),
        };
        let (a, a_ev) = stack
            .connect(&pair, stack.broker.device_port, "dev-A")
            .await
            .unwrap();
        let (a_seen, _h2) = watch(a_ev);
        a.publish(
            "chunkprov/dev-B/confirm",
            QoS::AtLeastOnce,
            false,
            b"forged".to_vec(),
        )
        .await
        .unwrap();
        a.publish(
            "chunkprov/dev-A/confirm",
            QoS::AtLeastOnce,
            false,
            b"own".to_vec(),
        )
        .await
        .unwrap();
        // Both are PUBACKed (MQTT 3.1.1 has no way to say no)...
        wait_for(&a_seen, 5, "two PUBACKs", |s| s.pubacks == 2).await;
        // ...but only the thing's own confirmation is delivered. Mosquitto handles one client's
        // messages in order, so once the second arrived the first would have.
        wait_for(&svc_seen, 5, "dev-A's own confirmation", |s| {
            !s.publishes.is_empty()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        {
            let s = svc_seen.lock().unwrap();
            let got: Vec<(&str, &[u8])> = s
                .publishes
                .iter()
                .map(|p| (p.topic.as_str(), p.payload.as_ref()))
                .collect();
            assert_eq!(got, [("chunkprov/dev-A/confirm", &b"own"[..])]);
        }

        // Mosquitto cannot force the client id to be the certificate's CN: dev-A's certificate
        // connects under dev-B's client id (on AWS, iot:Connect would refuse it). The ACL is on
        // the CN (%u), so it still reaches only dev-A's topics.
        let (imp, imp_ev) = stack
            .connect(&pair, stack.broker.device_port, "dev-B")
            .await
            .expect("Mosquitto does not bind the client id to the certificate");
        let (imp_seen, _h3) = watch(imp_ev);
        imp.publish(
            "chunkprov/dev-B/confirm",
            QoS::AtLeastOnce,
            false,
            b"forged again".to_vec(),
        )
        .await
        .unwrap();
        imp.publish(
            "chunkprov/dev-A/confirm",
            QoS::AtLeastOnce,
            false,
            b"still A".to_vec(),
        )
        .await
        .unwrap();
        wait_for(&imp_seen, 5, "two PUBACKs", |s| s.pubacks == 2).await;
        wait_for(&svc_seen, 5, "the second delivery", |s| {
            s.publishes.len() == 2
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = svc_seen.lock().unwrap();
        assert_eq!(s.publishes.len(), 2);
        assert_eq!(s.publishes[1].topic, "chunkprov/dev-A/confirm");
        assert_eq!(s.publishes[1].payload.as_ref(), b"still A");
    });
}

#[test]
fn dropped_frames_are_pulled_again() {
    let stack = Stack::start("dropped");
    runtime().block_on(async {
        let cloud = StandInCloud::start(&stack.broker, stack.pki.dir()).await;
        let id = "claim-352656100000007";
        for i in [1, 6] {
            cloud.drop_once(id, i);
        }
        let mut spec = stack.device("352656100000007");
        spec.timeout_ms = 300; // how long the device waits before pulling what is missing
        let mut dev = Simulator::open(spec, stack.endpoints()).unwrap();
        let r = dev.run(&Limits::default()).await.unwrap();
        assert!(
            matches!(r.outcome, Some(Outcome::Done(_))),
            "{}",
            r.log.join("\n")
        );
        cloud.log(|l| {
            for i in [1u16, 6] {
                assert!(
                    l.pulls.iter().any(|(_, asked)| asked.contains(&i)),
                    "frame {i} was never asked for again: {:?}",
                    l.pulls
                );
                assert_eq!(l.frames_sent.iter().filter(|f| f.1 == i).count(), 2);
            }
            assert_eq!(l.requests.len(), 1);
        });
    });
}

#[test]
fn a_fleet_of_ten_devices_provisions_concurrently() {
    let stack = Stack::start("fleet");
    runtime().block_on(async {
        let cloud = StandInCloud::start(&stack.broker, stack.pki.dir()).await;
        let mut set = tokio::task::JoinSet::new();
        for n in 0..10 {
            let mut spec = stack.device(&format!("35265610000010{n}"));
            spec.mode = if n % 3 == 0 { Mode::Key } else { Mode::Csr };
            let mut dev = Simulator::open(spec, stack.endpoints()).unwrap();
            set.spawn(async move { dev.run(&Limits::default()).await });
        }
        let t0 = Instant::now();
        let mut things = Vec::new();
        while let Some(r) = set.join_next().await {
            let r = r.unwrap().unwrap();
            match r.outcome {
                Some(Outcome::Done(p)) => things.push(p.thing_name),
                other => panic!("{other:?}\n{}", r.log.join("\n")),
            }
        }
        println!("10 devices provisioned in {:?}", t0.elapsed());
        things.sort();
        let expected: Vec<String> = (0..10).map(|n| format!("dev-35265610000010{n}")).collect();
        assert_eq!(things, expected);
        cloud.log(|l| {
            assert_eq!(l.requests.len(), 10);
            assert_eq!(l.confirmations.len(), 10);
            assert!(l.rejections.is_empty());
        });
    });
}

#[test]
fn a_packet_over_the_declared_limit_fails_the_connection_as_on_a_device() {
    let stack = Stack::start("packet-limit");
    runtime().block_on(async {
        // The device's connection options: PacketLimit 256, the whole PUBLISH packet.
        let tls = chunkprov_devkit::mqtt::tls_config(
            stack.pki.server.cert_pem().as_bytes(),
            stack.claim.cert_pem.as_bytes(),
            stack.claim.key_pem.as_bytes(),
        )
        .unwrap();
        let id = "claim-352656100000006";
        let topic = "chunkprov/claim-352656100000006/frame"; // 37 bytes
        let opts = chunkprov_devkit::mqtt::options(id, stack.broker.claim_port, tls, Some(256));
        let (dev, dev_ev) = chunkprov_devkit::mqtt::connect(opts, Duration::from_secs(5))
            .await
            .unwrap();
        let (seen, _h) = watch(dev_ev);
        dev.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
        wait_for(&seen, 5, "SUBACK", |s| s.suback_codes.len() == 1).await;
        let (svc, svc_ev) = stack
            .service(stack.broker.claim_service_port, "limit")
            .await;
        let (_s, _h2) = watch(svc_ev);
        // QoS 1 PUBLISH: 1 + 2 (length) + 2 + 37 + 2 (packet id) + 212 = 256 bytes: fits.
        let fits = vec![b'a'; 212];
        assert_eq!(
            chunkprov_device::protocol::chunking::publish_packet_len(37, 212),
            Some(256)
        );
        svc.publish(topic, QoS::AtLeastOnce, false, fits)
            .await
            .unwrap();
        wait_for(&seen, 5, "the 256-byte packet", |s| s.publishes.len() == 1).await;
        // One byte more: the client refuses the packet and the connection fails.
        svc.publish(topic, QoS::AtLeastOnce, false, vec![b'b'; 213])
            .await
            .unwrap();
        wait_for(&seen, 5, "the connection to fail", |s| s.error.is_some()).await;
        let s = seen.lock().unwrap();
        assert_eq!(s.publishes.len(), 1);
        println!("257-byte packet: {}", s.error.as_deref().unwrap());
    });
}
