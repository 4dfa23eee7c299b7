//! The real Mosquitto brokers with the claim and device ACLs, on their own: who may connect
//! where, what the device listener's grants let through, and the device's packet limit. The
//! whole flow, with the Lambda, is in `e2e.rs`.

mod support;

use chunkprov_devkit::broker::DeviceGrant;
use chunkprov_devkit::ca::{LocalPki, Pair};
use rumqttc::QoS;
use std::time::Duration;
use support::{wait_for, watch, Stack};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
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

/// A device certificate and key from the local CA (CN `aws-iot-certificate-…`).
fn device_pair(stack: &Stack) -> (Pair, String) {
    let issued = stack.pki.issue_keys_and_certificate().unwrap();
    let cn = LocalPki::common_name(&issued.cert_pem).unwrap();
    let pair = Pair {
        cert_pem: issued.cert_pem,
        key_pem: issued.key_pem.unwrap(),
    };
    (pair, cn)
}

#[test]
fn the_device_listener_lets_a_certificate_act_only_as_the_thing_it_is_granted() {
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

        let (a_pair, a_cn) = device_pair(&stack);
        let (p_pair, p_cn) = device_pair(&stack);
        let (a, a_ev) = stack
            .connect(&a_pair, stack.broker.device_port, "dev-A")
            .await
            .unwrap();
        let (a_seen, _h2) = watch(a_ev);
        let (p, p_ev) = stack
            .connect(&p_pair, stack.broker.device_port, "probe")
            .await
            .unwrap();
        let (p_seen, _h3) = watch(p_ev);
        // Each generation of grants gives the probe certificate a topic of its own; once a
        // probe publish on it is delivered, that generation is in force. (A PUBACK means the
        // broker has judged the publish, so whatever it let through is queued by then.)
        let in_force = |generation: u32| {
            let (p, p_seen, svc_seen) = (p.clone(), p_seen.clone(), svc_seen.clone());
            async move {
                let topic = format!("chunkprov/probe-{generation}/confirm");
                for attempt in 1..=100u32 {
                    let acked = p_seen.lock().unwrap().pubacks;
                    p.publish(&topic, QoS::AtLeastOnce, false, b"probe".to_vec())
                        .await
                        .unwrap();
                    wait_for(&p_seen, 5, "probe PUBACK", |s| s.pubacks > acked).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if svc_seen
                        .lock()
                        .unwrap()
                        .publishes
                        .iter()
                        .any(|m| m.topic == topic)
                    {
                        return;
                    }
                    assert!(
                        attempt < 100,
                        "grants generation {generation} never took effect"
                    );
                }
            }
        };
        let publish = |topic: &'static str, body: &'static [u8]| {
            let (a, a_seen) = (a.clone(), a_seen.clone());
            async move {
                let acked = a_seen.lock().unwrap().pubacks;
                a.publish(topic, QoS::AtLeastOnce, false, body.to_vec())
                    .await
                    .unwrap();
                // MQTT 3.1.1 PUBACKs a denied publish too: only delivery tells.
                wait_for(&a_seen, 5, "PUBACK", |s| s.pubacks > acked).await;
            }
        };
        let grant = |cn: &str, thing: &str| DeviceGrant {
            username: cn.into(),
            thing: thing.into(),
        };
        // Not granted (not attached to any thing): nothing delivered.
        publish("chunkprov/dev-A/confirm", b"before").await;
        // Granted as dev-A (the control plane attached and activated it).
        stack
            .broker
            .set_device_grants(&[grant(&a_cn, "dev-A"), grant(&p_cn, "probe-1")])
            .unwrap();
        in_force(1).await;
        publish("chunkprov/dev-B/confirm", b"forged").await;
        publish("chunkprov/dev-A/confirm", b"own").await;
        // Reading too: only the granted thing's answers reach it.
        for t in [
            "chunkprov/dev-A/confirm/accepted",
            "chunkprov/dev-B/confirm/accepted",
        ] {
            a.subscribe(t, QoS::AtLeastOnce).await.unwrap();
        }
        wait_for(&a_seen, 5, "two SUBACKs", |s| s.suback_codes.len() == 2).await;
        for t in [
            "chunkprov/dev-B/confirm/accepted",
            "chunkprov/dev-A/confirm/accepted",
        ] {
            svc.publish(t, QoS::AtLeastOnce, false, b"answer".to_vec())
                .await
                .unwrap();
        }
        wait_for(&a_seen, 5, "dev-A's answer", |s| !s.publishes.is_empty()).await;
        // Revoked (only the probe's next generation left): nothing again, same connection.
        stack
            .broker
            .set_device_grants(&[grant(&p_cn, "probe-2")])
            .unwrap();
        in_force(2).await;
        publish("chunkprov/dev-A/confirm", b"after").await;
        // Mosquitto delivers to one subscriber in the order it judged the publishes: a marker
        // from the service side ends the sequence.
        svc.publish(
            "chunkprov/end/confirm",
            QoS::AtLeastOnce,
            false,
            b"end".to_vec(),
        )
        .await
        .unwrap();
        wait_for(&svc_seen, 5, "the end marker", |s| {
            s.publishes
                .iter()
                .any(|m| m.topic == "chunkprov/end/confirm")
        })
        .await;
        let s = svc_seen.lock().unwrap();
        let got: Vec<(&str, &[u8])> = s
            .publishes
            .iter()
            .filter(|m| !m.topic.starts_with("chunkprov/probe-"))
            .map(|m| (m.topic.as_str(), m.payload.as_ref()))
            .collect();
        assert_eq!(
            got,
            [
                ("chunkprov/dev-A/confirm", &b"own"[..]),
                ("chunkprov/end/confirm", &b"end"[..])
            ]
        );
        let a_got: Vec<String> = a_seen
            .lock()
            .unwrap()
            .publishes
            .iter()
            .map(|m| m.topic.clone())
            .collect();
        assert_eq!(a_got, ["chunkprov/dev-A/confirm/accepted"]);
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
