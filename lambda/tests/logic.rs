//! The handler's logic against the in-memory fakes (`chunkprov_lambda::fakes`): every rejection
//! code, the state machine, repeated and concurrent requests, pulls, key mode, confirmation,
//! the sweep, throttling and cleanup after partial failures.

mod common;

use chunkprov_lambda::backend::{CertStatus, ErrorKind};
use chunkprov_lambda::event::{self, Event};
use chunkprov_lambda::fakes::{FakePublisher, FakeRegistry, FakeState, FAKE_DEVICE_POLICY};
use chunkprov_lambda::state::Phase;
use chunkprov_lambda::{Config, Env, Failure, Outcome};
use chunkprov_protocol::confirm::ConfirmAccepted;
use chunkprov_protocol::{Nonce, RejectCode};
use common::*;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_764_400_000;
const FRAME_TOPIC: &str = "chunkprov/claim-352656100000000/frame";
const REJECTED: &str = "chunkprov/claim-352656100000000/rejected";

struct H {
    env: Env,
    reg: Arc<FakeRegistry>,
    publ: Arc<FakePublisher>,
    st: Arc<FakeState>,
    now: Arc<AtomicI64>,
}

fn config() -> Config {
    Config {
        retry_base: Duration::from_millis(1),
        retry_max: Duration::from_millis(4),
        budget: Duration::from_secs(5),
        ..Config::default()
    }
}

/// Every test's logs, through one global subscriber (a per-test one would race with the
/// callsite interest cache of tests running in parallel).
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

fn harness(config: Config) -> H {
    logs();
    let reg = Arc::new(FakeRegistry::with_template(&config.template_name));
    let publ = Arc::new(FakePublisher::default());
    let st = Arc::new(FakeState::default());
    let now = Arc::new(AtomicI64::new(T0));
    let clock_now = now.clone();
    let env = Env {
        config,
        registry: reg.clone(),
        publisher: publ.clone(),
        state: st.clone(),
        clock: Arc::new(move || clock_now.load(Ordering::SeqCst)),
    };
    H {
        env,
        reg,
        publ,
        st,
        now,
    }
}

impl H {
    async fn run(&self, ev: Event) -> Result<Outcome, Failure> {
        self.env
            .handle(ev, tokio::time::Instant::now() + Duration::from_secs(10))
            .await
    }

    /// Runs `ev`, expects it rejected with `code` on `topic`, and nothing created.
    async fn rejected(&self, ev: Event, code: RejectCode, topic: &str) {
        let before = self.reg.snapshot().created;
        let out = self.run(ev).await;
        assert_eq!(out, Ok(Outcome::Rejected(code)), "{code}");
        let pubs = self.publ.take();
        let rej = rejections(&pubs);
        assert_eq!(rej.len(), 1, "{pubs:?}");
        assert_eq!(pubs.len(), 1, "only the rejection is published");
        assert_eq!(rej[0].0, topic);
        assert_eq!(rej[0].2, code as u16);
        assert_eq!(
            self.reg.snapshot().created,
            before,
            "nothing created for {code}"
        );
    }
}

fn items_of(h: &H) -> usize {
    h.st.items.lock().unwrap().len()
}

/// Requests, then pulls window by window until the device holds the whole bundle.
async fn provision(
    h: &H,
    dev: &mut Device,
    n: Nonce,
    csr: Option<&str>,
    limit: u32,
    window: u16,
) -> Vec<u8> {
    let out = h
        .run(request_event(SERIAL, n, csr, limit, window))
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Published { .. }), "{out:?}");
    dev.take(&h.publ.take(), FRAME_TOPIC, limit);
    while dev.bundle().is_none() {
        let next = (0..dev.count())
            .find(|i| !dev.frames.contains_key(i))
            .unwrap();
        h.run(pull_event(SERIAL, n, dev.transfer(), Some(next), &[]))
            .await
            .unwrap();
        let got = dev.take(&h.publ.take(), FRAME_TOPIC, limit);
        assert!(!got.is_empty());
    }
    dev.bundle().unwrap()
}

// ----- the happy path -----

#[tokio::test]
async fn csr_mode_round_trip_request_pulls_confirmation() {
    let h = harness(config());
    let (pem, _) = csr(SERIAL);
    let n = nonce(1);
    let out = h
        .run(request_event(SERIAL, n, Some(&pem), 256, 4))
        .await
        .unwrap();
    let Outcome::Published {
        transfer_id,
        frames,
        issued,
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    assert!(issued);
    assert_eq!(transfer_id, 1);
    assert_eq!(frames, vec![0, 1, 2, 3], "the first window only");
    let mut dev = Device::default();
    assert_eq!(dev.take(&h.publ.take(), FRAME_TOPIC, 256), vec![0, 1, 2, 3]);
    assert!(dev.count() > 4);
    assert!(dev
        .raw
        .values()
        .all(|f| f[1..10] == [0x48, 0x8f, 0x1c, 0x2a, 0x9b, 0, 0xd4, 0xe7, 1]));
    // Pull the rest, window by window.
    while dev.bundle().is_none() {
        let next = dev.frames.len() as u16;
        h.run(pull_event(SERIAL, n, 1, Some(next), &[]))
            .await
            .unwrap();
        let got = dev.take(&h.publ.take(), FRAME_TOPIC, 256);
        let want: Vec<u16> = (next..(next + 4).min(dev.count())).collect();
        assert_eq!(got, want);
    }
    let (thing, cert_id, cert_pem, key, ca) = bundle_items(&dev.bundle().unwrap());
    assert_eq!(thing, THING);
    assert_eq!(key, None, "CSR mode sends no key");
    assert_eq!(ca, None);
    let reg = h.reg.snapshot();
    assert_eq!(reg.certs[&cert_id].pem, cert_pem);
    assert_eq!(reg.certs[&cert_id].status, CertStatus::Active);
    assert!(reg.certs[&cert_id].from_csr);
    assert!(reg.things.contains(THING));
    let item = h.st.item(SERIAL).unwrap();
    assert_eq!(item.phase, Phase::Pending);
    assert_eq!(item.certificate_id.as_deref(), Some(cert_id.as_str()));
    assert_eq!((item.packet_limit, item.window), (256, 4));
    assert!(item.pending_since.is_some() && item.expires_at.is_none());
    // Registration before activation.
    let calls = &reg.calls;
    let pos = |p: &str| calls.iter().position(|c| c.starts_with(p)).unwrap();
    assert!(pos("CreateCertificateFromCsr") < pos("DescribeProvisioningTemplate"));
    assert!(pos("RegisterThing") < pos("UpdateCertificate"));
    assert!(calls[pos("UpdateCertificate")].ends_with(",Active)"));

    // Confirmation under the thing name.
    let out = h.run(confirm_event(THING, 1, &cert_id)).await.unwrap();
    assert_eq!(
        out,
        Outcome::Confirmed {
            serial: SERIAL.into(),
            certificate_id: cert_id.clone()
        }
    );
    let pubs = h.publ.take();
    assert_eq!(pubs.len(), 1);
    assert_eq!(pubs[0].0, "chunkprov/dev-352656100000000/confirm/accepted");
    let a = ConfirmAccepted::decode(&pubs[0].1).unwrap();
    assert_eq!((a.transfer_id, a.certificate_id), (1, cert_id.as_str()));
    let item = h.st.item(SERIAL).unwrap();
    assert_eq!(item.phase, Phase::Confirmed);
    assert_eq!(item.pending_since, None);
    // A repeated confirmation is answered again; the item does not change.
    assert!(matches!(
        h.run(confirm_event(THING, 1, &cert_id)).await,
        Ok(Outcome::Confirmed { .. })
    ));
    assert_eq!(h.publ.take().len(), 1);
    assert_eq!(h.st.item(SERIAL).unwrap().version, item.version);
    // Provisioned: a new request is refused.
    h.rejected(
        request_event(SERIAL, nonce(2), Some(&pem), 256, 4),
        RejectCode::AlreadyProvisioned,
        REJECTED,
    )
    .await;
    // And the sweep leaves a confirmed serial alone.
    h.now.store(T0 + 10 * 86_400, Ordering::SeqCst);
    assert_eq!(
        h.run(Event::Sweep).await,
        Ok(Outcome::Swept {
            revoked: 0,
            failed: 0
        })
    );
    assert_eq!(h.reg.active(), vec![cert_id]);
}

#[tokio::test]
async fn csr_encodings_pem_der_base64_base64url_rsa_and_p384() {
    use base64::Engine as _;
    let (pem, der) = csr(SERIAL);
    let std64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let url64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der);
    for (i, text) in [pem.clone(), std64, url64].iter().enumerate() {
        let h = harness(config());
        let out = h
            .run(request_event(SERIAL, nonce(1), Some(text), 1024, 2))
            .await
            .unwrap();
        assert!(
            matches!(out, Outcome::Published { .. }),
            "encoding {i}: {out:?}"
        );
        // Every encoding of the same CSR has the same hash.
        let item = h.st.item(SERIAL).unwrap();
        assert_eq!(
            item.csr_sha256,
            Some(chunkprov_lambda::csr::check(&pem, SERIAL).unwrap().sha256)
        );
    }
    for fixture in [RSA2048, P384] {
        let h = harness(config());
        let out = h
            .run(request_event(
                FIXTURE_SERIAL,
                nonce(1),
                Some(fixture),
                1024,
                2,
            ))
            .await
            .unwrap();
        assert!(matches!(out, Outcome::Published { .. }), "{out:?}");
    }
}

// ----- each rejection code -----

#[tokio::test]
async fn rejects_malformed_unknown_field_nonce_and_identity() {
    let h = harness(config());
    let (pem, _) = csr(SERIAL);
    let topic = "chunkprov/claim-352656100000000/json";
    let mut not_b64 = rule(CLIENT, topic, "{}");
    if let Event::Rule(r) = &mut not_b64 {
        r.payload = "!!!".into();
    }
    h.rejected(not_b64, RejectCode::Malformed, REJECTED).await;
    h.rejected(
        rule(CLIENT, topic, "not json"),
        RejectCode::Malformed,
        REJECTED,
    )
    .await;
    h.rejected(rule(CLIENT, topic, "[1]"), RejectCode::Malformed, REJECTED)
        .await;
    let no_window =
        r#"{"SerialNumber":"352656100000000","Nonce":"8f1c2a9b00d4e701","PacketLimit":256}"#;
    h.rejected(
        rule(CLIENT, topic, no_window),
        RejectCode::Malformed,
        REJECTED,
    )
    .await;
    let extra = r#"{"SerialNumber":"352656100000000","Nonce":"8f1c2a9b00d4e701","PacketLimit":256,"Window":1,"Evil":1}"#;
    h.rejected(
        rule(CLIENT, topic, extra),
        RejectCode::UnknownField,
        REJECTED,
    )
    .await;
    let bad_nonce =
        r#"{"SerialNumber":"352656100000000","Nonce":"xyz","PacketLimit":256,"Window":1}"#;
    h.rejected(
        rule(CLIENT, topic, bad_nonce),
        RejectCode::NonceInvalid,
        REJECTED,
    )
    .await;
    // The nonce is echoed whenever it could be read.
    let _ = h.run(rule(CLIENT, topic, extra)).await;
    assert_eq!(rejections(&h.publ.take())[0].1, Some(nonce(1)));
    // Identity: the payload's serial or thing name against the client id's.
    let other = request_json("999", nonce(1), Some(&pem), 256, 1);
    h.rejected(
        rule(CLIENT, topic, &other),
        RejectCode::IdentityMismatch,
        REJECTED,
    )
    .await;
    let mut v: serde_json::Value =
        serde_json::from_str(&request_json(SERIAL, nonce(1), Some(&pem), 256, 1)).unwrap();
    v["ThingName"] = "dev-999".into();
    h.rejected(
        rule(CLIENT, topic, &v.to_string()),
        RejectCode::IdentityMismatch,
        REJECTED,
    )
    .await;
    v["ThingName"] = THING.into();
    assert!(matches!(
        h.run(rule(CLIENT, topic, &v.to_string())).await,
        Ok(Outcome::Published { .. })
    ));
    assert_eq!(items_of(&h), 1);
}

#[tokio::test]
async fn rejects_client_ids_outside_the_claim_namespace_and_spoofed_topics() {
    let h = harness(config());
    let (pem, _) = csr(SERIAL);
    let body = request_json(SERIAL, nonce(1), Some(&pem), 256, 1);
    // A provisioned identity (or anything not claim-…) may not request.
    h.rejected(
        rule(
            "dev-352656100000000",
            "chunkprov/dev-352656100000000/json",
            &body,
        ),
        RejectCode::ClientIdNotClaim,
        "chunkprov/dev-352656100000000/rejected",
    )
    .await;
    // Spoofed: a claim holder connected as claim-1 publishes on the victim's topic. The answer
    // goes to the connection's own client id, never to the victim's topics.
    h.rejected(
        rule("claim-1", "chunkprov/claim-352656100000000/json", &body),
        RejectCode::TopicMismatch,
        "chunkprov/claim-1/rejected",
    )
    .await;
    h.rejected(
        rule(
            "claim-1",
            "chunkprov/claim-352656100000000/pull",
            r#"{"Nonce":"8f1c2a9b00d4e701","TransferId":1,"Next":0}"#,
        ),
        RejectCode::TopicMismatch,
        "chunkprov/claim-1/rejected",
    )
    .await;
    h.rejected(
        rule(
            THING,
            "chunkprov/dev-1/confirm",
            r#"{"TransferId":1,"CertificateId":"ab"}"#,
        ),
        RejectCode::TopicMismatch,
        "chunkprov/dev-352656100000000/rejected",
    )
    .await;
    // A topic that is not one of ours, or a cloud-to-device one.
    h.rejected(
        rule(CLIENT, "other/claim-352656100000000/json", &body),
        RejectCode::TopicMismatch,
        REJECTED,
    )
    .await;
    h.rejected(
        rule(CLIENT, "chunkprov/claim-352656100000000/frame", &body),
        RejectCode::TopicMismatch,
        REJECTED,
    )
    .await;
    // A client id that cannot be a topic level gets no answer at all.
    assert_eq!(
        h.run(rule("a/b", "chunkprov/a/b/json", &body)).await,
        Ok(Outcome::Rejected(RejectCode::TopicMismatch))
    );
    assert!(h.publ.take().is_empty());
    assert_eq!(items_of(&h), 0);
}

#[tokio::test]
async fn rejects_topics_beyond_aws_limits_and_invalid_thing_names() {
    // Replies under the thing name would need 8 slashes with this prefix.
    let h = harness(Config {
        prefix: "a/b/c/d/e/f".into(),
        ..config()
    });
    let (pem, _) = csr(SERIAL);
    let body = request_json(SERIAL, nonce(1), Some(&pem), 1024, 1);
    h.rejected(
        rule(CLIENT, "a/b/c/d/e/f/claim-352656100000000/json", &body),
        RejectCode::TopicInvalid,
        "a/b/c/d/e/f/claim-352656100000000/rejected",
    )
    .await;
    let h = harness(config());
    let long = format!("chunkprov/{}/json", "x".repeat(250));
    h.rejected(
        rule(CLIENT, &long, &body),
        RejectCode::TopicInvalid,
        REJECTED,
    )
    .await;
    // A thing-name rule that makes names over 128 bytes.
    let h = harness(Config {
        thing_prefix: "t".repeat(120),
        ..config()
    });
    h.rejected(
        request_event(SERIAL, nonce(1), Some(&pem), 1024, 1),
        RejectCode::ThingNameInvalid,
        REJECTED,
    )
    .await;
    // A confirmation under a client id that is no derived thing name.
    let h = harness(config());
    h.rejected(
        rule(
            CLIENT,
            "chunkprov/claim-352656100000000/confirm",
            r#"{"TransferId":1,"CertificateId":"ab"}"#,
        ),
        RejectCode::ThingNameInvalid,
        REJECTED,
    )
    .await;
}

#[tokio::test]
async fn rejects_bad_csrs() {
    let h = harness(config());
    let req = |csr: &str| request_event(SERIAL, nonce(1), Some(csr), 1024, 1);
    let fixture = |csr: &str| request_event(FIXTURE_SERIAL, nonce(1), Some(csr), 1024, 1);
    let fixture_rejected = "chunkprov/claim-352656100000001/rejected";
    h.rejected(req("not a csr"), RejectCode::CsrInvalid, REJECTED)
        .await;
    h.rejected(
        req("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"),
        RejectCode::CsrInvalid,
        REJECTED,
    )
    .await;
    // A signature that does not verify: flip a bit in the last byte (inside the signature).
    let (_, mut der) = csr(SERIAL);
    let last = der.len() - 1;
    der[last] ^= 1;
    use base64::Engine as _;
    h.rejected(
        req(&base64::engine::general_purpose::STANDARD.encode(&der)),
        RejectCode::CsrInvalid,
        REJECTED,
    )
    .await;
    h.rejected(
        fixture(RSA1024),
        RejectCode::CsrKeyUnsupported,
        fixture_rejected,
    )
    .await;
    h.rejected(
        fixture(ED25519),
        RejectCode::CsrKeyUnsupported,
        fixture_rejected,
    )
    .await;
    h.rejected(
        fixture(P521),
        RejectCode::CsrKeyUnsupported,
        fixture_rejected,
    )
    .await;
    let (other_cn, _) = csr("someone-else");
    h.rejected(req(&other_cn), RejectCode::CsrSubjectMismatch, REJECTED)
        .await;
    h.rejected(
        request_event(SERIAL, nonce(1), None, 1024, 1),
        RejectCode::CsrRequired,
        REJECTED,
    )
    .await;
    assert_eq!(items_of(&h), 0);
}

#[tokio::test]
async fn rejects_packet_limits_windows_and_serials_not_allowed() {
    let h = harness(Config {
        allow_list: Some([SERIAL.to_string()].into()),
        ..config()
    });
    let (pem, _) = csr(SERIAL);
    for limit in [0, 255, chunkprov_protocol::MAX_PACKET_LIMIT + 1] {
        h.rejected(
            request_event(SERIAL, nonce(1), Some(&pem), limit, 1),
            RejectCode::PacketLimitInvalid,
            REJECTED,
        )
        .await;
    }
    for window in [0, 17] {
        h.rejected(
            request_event(SERIAL, nonce(1), Some(&pem), 256, window),
            RejectCode::WindowInvalid,
            REJECTED,
        )
        .await;
    }
    let (pem2, _) = csr("42");
    h.rejected(
        request_event("42", nonce(1), Some(&pem2), 256, 1),
        RejectCode::NotAllowed,
        "chunkprov/claim-42/rejected",
    )
    .await;
    // 256 bytes is too small for a frame when the topic is long.
    let h = harness(Config {
        prefix: "p".repeat(150),
        ..config()
    });
    let topic = format!("{}/{CLIENT}/json", "p".repeat(150));
    h.rejected(
        rule(
            CLIENT,
            &topic,
            &request_json(SERIAL, nonce(1), Some(&pem), 256, 1),
        ),
        RejectCode::PacketLimitInvalid,
        &format!("{}/{CLIENT}/rejected", "p".repeat(150)),
    )
    .await;
}

#[tokio::test]
async fn rejects_bundles_too_large() {
    let ca = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        "A".repeat(16_000)
    );
    let h = harness(Config {
        server_ca_pem: Some(ca),
        ..config()
    });
    let (pem, _) = csr(SERIAL);
    let out = h
        .run(request_event(SERIAL, nonce(1), Some(&pem), 4096, 1))
        .await;
    assert_eq!(out, Ok(Outcome::Rejected(RejectCode::BundleTooLarge)));
    assert_eq!(
        rejections(&h.publ.take())[0].2,
        RejectCode::BundleTooLarge as u16
    );
    // The certificate created before the bundle was built is gone again, and the claim released.
    assert!(h.reg.snapshot().certs.is_empty());
    assert_eq!(items_of(&h), 0);
}

#[tokio::test]
async fn server_ca_travels_in_the_bundle() {
    let ca = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n".to_string();
    let h = harness(Config {
        server_ca_pem: Some(ca.clone()),
        ..config()
    });
    let (pem, _) = csr(SERIAL);
    let mut dev = Device::default();
    let b = provision(&h, &mut dev, nonce(1), Some(&pem), 512, 16).await;
    assert_eq!(bundle_items(&b).4, Some(ca));
}

// ----- pulls -----

#[tokio::test]
async fn pulls_republish_exactly_the_frames_asked_for_byte_identical() {
    let h = harness(config());
    let (pem, _) = csr(SERIAL);
    let mut dev = Device::default();
    let n = nonce(1);
    provision(&h, &mut dev, n, Some(&pem), 256, 2).await;
    let count = dev.count();
    let first = dev.raw.clone();
    h.run(pull_event(SERIAL, n, 1, Some(2), &[0, 5, 2]))
        .await
        .unwrap();
    let pubs = h.publ.take();
    let got: Vec<u16> = pubs
        .iter()
        .map(|(_, p)| chunkprov_protocol::frame::decode(p).unwrap().0.index)
        .collect();
    assert_eq!(got, vec![2, 3, 0, 5]);
    for (_, p) in &pubs {
        let i = chunkprov_protocol::frame::decode(p).unwrap().0.index;
        assert_eq!(&first[&i], p, "frame {i} differs");
    }
    // Errors: wrong transfer, wrong nonce, index past the end, nothing in progress.
    h.rejected(
        pull_event(SERIAL, n, 2, Some(0), &[]),
        RejectCode::UnknownTransfer,
        REJECTED,
    )
    .await;
    h.rejected(
        pull_event(SERIAL, nonce(9), 1, Some(0), &[]),
        RejectCode::UnknownTransfer,
        REJECTED,
    )
    .await;
    h.rejected(
        pull_event(SERIAL, n, 1, Some(count), &[]),
        RejectCode::FrameIndexInvalid,
        REJECTED,
    )
    .await;
    h.rejected(
        pull_event(SERIAL, n, 1, None, &[count]),
        RejectCode::FrameIndexInvalid,
        REJECTED,
    )
    .await;
    h.rejected(
        pull_event("77", n, 1, Some(0), &[]),
        RejectCode::UnknownTransfer,
        "chunkprov/claim-77/rejected",
    )
    .await;
    let pull = |body: &str| rule(CLIENT, "chunkprov/claim-352656100000000/pull", body);
    h.rejected(
        pull(r#"{"Nonce":"8f1c2a9b00d4e701","TransferId":1}"#),
        RejectCode::Malformed,
        REJECTED,
    )
    .await;
    h.rejected(
        pull(r#"{"Nonce":"8f1c2a9b00d4e701","TransferId":1,"Next":0,"More":1}"#),
        RejectCode::UnknownField,
        REJECTED,
    )
    .await;
    h.rejected(
        pull(r#"{"Nonce":"8f1c","TransferId":1,"Next":0}"#),
        RejectCode::NonceInvalid,
        REJECTED,
    )
    .await;
    h.rejected(pull(r#"{"Nonce":"8f1c2a9b00d4e701","TransferId":1,"Missing":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}"#), RejectCode::Malformed, REJECTED).await;
    // Pulls rebuild from the certificate the item keeps: no DescribeCertificate (10/s on AWS).
    assert!(
        !h.reg
            .snapshot()
            .calls
            .iter()
            .any(|c| c.starts_with("DescribeCertificate")),
        "a pull called DescribeCertificate"
    );
    // A certificate that changed under the item is not sent as if it were the same.
    let garbage = "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n";
    let set_kept = |pem: Option<&str>| {
        let mut items = h.st.items.lock().unwrap();
        items.get_mut(SERIAL).unwrap().certificate_pem = pem.map(str::to_string);
    };
    set_kept(Some(garbage));
    let out = h.run(pull_event(SERIAL, n, 1, Some(0), &[])).await;
    assert_eq!(out.unwrap_err().code, RejectCode::Internal);
    assert!(h.publ.take().iter().all(|(t, _)| t == REJECTED));
    // An item written without the certificate asks the registry, with the same check.
    set_kept(None);
    let id = h.st.item(SERIAL).unwrap().certificate_id.unwrap();
    h.run(pull_event(SERIAL, n, 1, Some(0), &[])).await.unwrap();
    assert!(h
        .reg
        .snapshot()
        .calls
        .iter()
        .any(|c| c == &format!("DescribeCertificate({id})")));
    assert_eq!(
        h.publ.take().len(),
        2,
        "the window of two, rebuilt from DescribeCertificate"
    );
    h.reg.data.lock().unwrap().certs.get_mut(&id).unwrap().pem = garbage.into();
    let out = h.run(pull_event(SERIAL, n, 1, Some(0), &[])).await;
    assert_eq!(out.unwrap_err().code, RejectCode::Internal);
    assert!(h.publ.take().iter().all(|(t, _)| t == REJECTED));
}

// ----- repeated requests -----

#[tokio::test]
async fn repeated_requests_same_nonce_new_nonce_new_csr() {
    let h = harness(config());
    let (pem, _) = csr(SERIAL);
    let out = h
        .run(request_event(SERIAL, nonce(1), Some(&pem), 256, 3))
        .await
        .unwrap();
    assert!(matches!(
        out,
        Outcome::Published {
            transfer_id: 1,
            issued: true,
            ..
        }
    ));
    let first = h.publ.take();
    let cert1 = h.st.item(SERIAL).unwrap().certificate_id.unwrap();

    // Same nonce (a duplicate delivery, or the device asking again): republish only.
    let out = h
        .run(request_event(SERIAL, nonce(1), Some(&pem), 256, 3))
        .await
        .unwrap();
    assert!(matches!(
        out,
        Outcome::Published {
            transfer_id: 1,
            issued: false,
            ..
        }
    ));
    assert_eq!(h.publ.take(), first, "byte-identical frames");
    assert_eq!(h.reg.snapshot().created, 1);

    // New nonce, same CSR: the same certificate in a new transfer, cut for the new limits.
    let out = h
        .run(request_event(SERIAL, nonce(2), Some(&pem), 512, 2))
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            Outcome::Published {
                transfer_id: 2,
                issued: false,
                ..
            }
        ),
        "{out:?}"
    );
    let mut dev = Device::default();
    assert_eq!(dev.take(&h.publ.take(), FRAME_TOPIC, 512), vec![0, 1]);
    assert_eq!(dev.header.unwrap().nonce, nonce(2));
    let item = h.st.item(SERIAL).unwrap();
    assert_eq!(
        (
            item.transfer_id,
            item.certificate_id.as_deref(),
            item.attempts
        ),
        (2, Some(cert1.as_str()), 0)
    );
    assert_eq!(h.reg.snapshot().created, 1);
    // The old transfer's pulls are refused now.
    h.rejected(
        pull_event(SERIAL, nonce(1), 1, Some(0), &[]),
        RejectCode::UnknownTransfer,
        REJECTED,
    )
    .await;

    // New CSR while one is pending: the pending certificate is revoked and deleted, a new one
    // issued, counted as an attempt; one active certificate per serial throughout.
    let (pem2, _) = csr(SERIAL);
    let out = h
        .run(request_event(SERIAL, nonce(3), Some(&pem2), 256, 3))
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            Outcome::Published {
                transfer_id: 3,
                issued: true,
                ..
            }
        ),
        "{out:?}"
    );
    h.publ.take();
    let item = h.st.item(SERIAL).unwrap();
    let cert2 = item.certificate_id.clone().unwrap();
    assert_ne!(cert1, cert2);
    assert_eq!(item.attempts, 1);
    let reg = h.reg.snapshot();
    assert!(!reg.certs.contains_key(&cert1), "old certificate deleted");
    assert_eq!(h.reg.active(), vec![cert2.clone()]);
    // The thing was not deleted: it existed before this invocation.
    assert!(reg.things.contains(THING));
    assert!(!reg.calls.iter().any(|c| c.starts_with("DeleteThing")));
    // Confirming the old certificate fails; the new one succeeds.
    h.rejected(
        confirm_event(THING, 3, &cert1),
        RejectCode::CertificateMismatch,
        "chunkprov/dev-352656100000000/rejected",
    )
    .await;
    h.rejected(
        confirm_event(THING, 1, &cert2),
        RejectCode::CertificateMismatch,
        "chunkprov/dev-352656100000000/rejected",
    )
    .await;
    assert!(matches!(
        h.run(confirm_event(THING, 3, &cert2)).await,
        Ok(Outcome::Confirmed { .. })
    ));
}

#[tokio::test]
async fn reprovisioning_cap() {
    let h = harness(Config {
        reprovision_cap: 1,
        ..config()
    });
    for (i, want) in [(1u8, true), (2, true), (3, false)] {
        let (pem, _) = csr(SERIAL);
        let out = h
            .run(request_event(SERIAL, nonce(i), Some(&pem), 256, 1))
            .await
            .unwrap();
        if want {
            assert!(matches!(out, Outcome::Published { .. }), "{i}: {out:?}");
            h.publ.take();
        } else {
            assert_eq!(out, Outcome::Rejected(RejectCode::ReprovisionLimit));
            assert_eq!(
                rejections(&h.publ.take())[0].2,
                RejectCode::ReprovisionLimit as u16
            );
        }
    }
    assert_eq!(h.reg.snapshot().created, 2);
    assert_eq!(
        h.reg.active().len(),
        1,
        "the pending certificate is untouched by the refusal"
    );
}

// ----- duplicate and concurrent invocations -----

#[tokio::test]
async fn concurrent_duplicate_invocations_issue_one_certificate() {
    let h = harness(config());
    let (pem, _) = csr(SERIAL);
    let ev = request_event(SERIAL, nonce(1), Some(&pem), 256, 2);
    let (a, b) = tokio::join!(h.run(ev.clone()), h.run(ev.clone()));
    let outcomes = [a.unwrap(), b.unwrap()];
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Published { issued: true, .. })),
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&Outcome::Duplicate), "{outcomes:?}");
    assert_eq!(h.reg.snapshot().created, 1);
    assert_eq!(h.reg.active().len(), 1);
    // Concurrent requests with different nonces: one wins, the other is told to retry.
    let h = harness(config());
    let (pem2, _) = csr(SERIAL);
    let (a, b) = tokio::join!(
        h.run(request_event(SERIAL, nonce(1), Some(&pem), 256, 2)),
        h.run(request_event(SERIAL, nonce(2), Some(&pem2), 256, 2))
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Published { .. })),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&Outcome::Rejected(RejectCode::Throttled)),
        "{outcomes:?}"
    );
    assert_eq!(h.reg.snapshot().created, 1);
    // A claim left by an invocation that died is taken over once stale.
    let h = harness(config());
    let mut dead = chunkprov_lambda::state::Item::new(SERIAL, THING);
    dead.version = 1;
    dead.nonce = nonce(7).to_string();
    dead.updated_at = T0;
    dead.pending_since = Some(T0);
    h.st.items.lock().unwrap().insert(SERIAL.into(), dead);
    assert_eq!(
        h.run(request_event(SERIAL, nonce(8), Some(&pem), 256, 2))
            .await,
        Ok(Outcome::Rejected(RejectCode::Throttled))
    );
    h.now.store(T0 + 901, Ordering::SeqCst);
    assert!(matches!(
        h.run(request_event(SERIAL, nonce(8), Some(&pem), 256, 2))
            .await,
        Ok(Outcome::Published { .. })
    ));
}

// ----- key mode -----

#[tokio::test]
async fn key_mode_sends_everything_at_once_and_a_lost_key_frame_means_a_new_certificate() {
    let h = harness(Config {
        key_mode: true,
        ..config()
    });
    let n = nonce(1);
    let out = h.run(request_event(SERIAL, n, None, 256, 4)).await.unwrap();
    let Outcome::Published { frames, .. } = out else {
        panic!("{out:?}")
    };
    let mut dev = Device::default();
    dev.take(&h.publ.take(), FRAME_TOPIC, 256);
    assert_eq!(
        frames.len(),
        usize::from(dev.count()),
        "every frame in the first invocation"
    );
    let bundle = dev.bundle().unwrap();
    let (_, cert1, _, key, _) = bundle_items(&bundle);
    let key = key.expect("key mode sends the key");
    assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let item = h.st.item(SERIAL).unwrap();
    assert_eq!(item.csr_sha256, None);
    assert_eq!(item.key_len, Some(key.len() as u32));
    assert!(
        !format!("{item:?}").contains("SECRETKEYMATERIAL"),
        "the key is not stored"
    );

    // Frame 0 holds no key byte: it is rebuilt, byte-identical.
    let first0 = dev.raw[&0].clone();
    h.run(pull_event(SERIAL, n, 1, None, &[0])).await.unwrap();
    let pubs = h.publ.take();
    assert_eq!(pubs.len(), 1);
    assert_eq!(pubs[0].1, first0);
    assert_eq!(h.reg.snapshot().created, 1);

    // The last-but-one frame holds key bytes: a new certificate in a new transfer.
    let key_frame = dev.count() - 2;
    let out = h
        .run(pull_event(SERIAL, n, 1, None, &[key_frame]))
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            Outcome::Published {
                transfer_id: 2,
                issued: true,
                ..
            }
        ),
        "{out:?}"
    );
    let mut dev2 = Device::default();
    dev2.take(&h.publ.take(), FRAME_TOPIC, 256);
    let (_, cert2, _, key2, _) = bundle_items(&dev2.bundle().unwrap());
    assert_ne!(cert1, cert2);
    assert_ne!(key2.unwrap(), key);
    assert!(
        !h.reg.snapshot().certs.contains_key(&cert1),
        "the old certificate is revoked and deleted"
    );
    assert_eq!(h.reg.active(), vec![cert2]);
    assert_eq!(h.st.item(SERIAL).unwrap().attempts, 1);
    // A repeated key-mode request (same nonce) cannot be republished either: new certificate.
    let out = h.run(request_event(SERIAL, n, None, 256, 4)).await.unwrap();
    assert!(
        matches!(
            out,
            Outcome::Published {
                transfer_id: 3,
                issued: true,
                ..
            }
        ),
        "{out:?}"
    );
    h.publ.take();

    let text = String::from_utf8(logs().0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("frames published"), "logs were captured");
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains("SECRETKEYMATERIAL"),
        "key material in the logs"
    );
    assert!(!text.contains("BEGIN CERTIFICATE"), "no PEM in the logs");
}

// ----- the sweep -----

#[tokio::test]
async fn sweep_revokes_unconfirmed_certificates_and_retries_failed_cleanups() {
    let h = harness(config());
    let (pem, _) = csr(SERIAL);
    h.run(request_event(SERIAL, nonce(1), Some(&pem), 256, 1))
        .await
        .unwrap();
    let (pem2, _) = csr("42");
    h.now.store(T0 + 3600, Ordering::SeqCst);
    h.run(request_event("42", nonce(1), Some(&pem2), 256, 1))
        .await
        .unwrap();
    h.publ.take();
    let cert1 = h.st.item(SERIAL).unwrap().certificate_id.unwrap();
    let cert42 = h.st.item("42").unwrap().certificate_id.unwrap();
    // Not due yet.
    h.now.store(T0 + 86_000, Ordering::SeqCst);
    assert_eq!(
        h.run(Event::Sweep).await,
        Ok(Outcome::Swept {
            revoked: 0,
            failed: 0
        })
    );
    // Due for the first serial only; its cleanup fails once.
    h.now.store(T0 + 86_401, Ordering::SeqCst);
    h.reg.faults.fail("DeleteCertificate", ErrorKind::Other, 1);
    assert_eq!(
        h.run(Event::Sweep).await,
        Ok(Outcome::Swept {
            revoked: 0,
            failed: 1
        })
    );
    assert_eq!(h.st.item(SERIAL).unwrap().phase, Phase::Revoking);
    // The device cannot confirm a certificate being revoked.
    h.rejected(
        confirm_event(THING, 1, &cert1),
        RejectCode::CertificateMismatch,
        "chunkprov/dev-352656100000000/rejected",
    )
    .await;
    assert_eq!(
        h.run(Event::Sweep).await,
        Ok(Outcome::Swept {
            revoked: 1,
            failed: 0
        })
    );
    let item = h.st.item(SERIAL).unwrap();
    assert_eq!(item.phase, Phase::Revoked);
    assert_eq!(item.pending_since, None);
    assert_eq!(
        item.expires_at,
        Some(T0 + 86_401 + 30 * 86_400),
        "TTL only on the terminal item"
    );
    let reg = h.reg.snapshot();
    assert!(!reg.certs.contains_key(&cert1));
    assert!(reg.certs.contains_key(&cert42));
    assert_eq!(h.st.item("42").unwrap().expires_at, None);
    // The device may come back: a new certificate, counted.
    let out = h
        .run(request_event(SERIAL, nonce(2), Some(&pem), 256, 1))
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            Outcome::Published {
                transfer_id: 2,
                issued: true,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(h.st.item(SERIAL).unwrap().attempts, 1);
    assert_eq!(h.st.item(SERIAL).unwrap().expires_at, None);
}

// ----- throttling and failures -----

#[tokio::test]
async fn throttling_is_retried_with_backoff_within_the_budget() {
    let h = harness(config());
    let (pem, _) = csr(SERIAL);
    h.reg
        .faults
        .fail("CreateCertificateFromCsr", ErrorKind::Throttled, 3);
    h.reg.faults.fail("RegisterThing", ErrorKind::Throttled, 2);
    h.reg.faults.fail("RegisterThing", ErrorKind::Transient, 1);
    h.publ.faults.fail("Publish", ErrorKind::Throttled, 2);
    h.st.faults.fail("PutItem", ErrorKind::Transient, 1);
    let out = h
        .run(request_event(SERIAL, nonce(1), Some(&pem), 256, 2))
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Published { .. }), "{out:?}");
    let calls = h.reg.snapshot().calls;
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("CreateCertificateFromCsr"))
            .count(),
        1,
        "failed calls are not recorded by the fake"
    );
    assert_eq!(h.publ.take().len(), 2);

    // Throttled for longer than the budget: a retryable rejection and an error for the async
    // retry, with nothing left behind.
    let h = harness(Config {
        budget: Duration::from_millis(100),
        retry_max: Duration::from_millis(20),
        ..config()
    });
    h.reg
        .faults
        .fail("CreateCertificateFromCsr", ErrorKind::Throttled, 10_000);
    let started = std::time::Instant::now();
    let out = h
        .run(request_event(SERIAL, nonce(1), Some(&pem), 256, 2))
        .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(out.unwrap_err().code, RejectCode::Throttled);
    let rej = rejections(&h.publ.take());
    assert_eq!(
        (rej[0].0.as_str(), rej[0].1, rej[0].2),
        (REJECTED, Some(nonce(1)), RejectCode::Throttled as u16)
    );
    assert_eq!(items_of(&h), 0, "the claim is released");
    // Other errors are not retried: Internal, once.
    let h = harness(config());
    h.reg
        .faults
        .fail("CreateCertificateFromCsr", ErrorKind::Other, 1);
    let out = h
        .run(request_event(SERIAL, nonce(1), Some(&pem), 256, 2))
        .await;
    assert_eq!(out.unwrap_err().code, RejectCode::Internal);
    assert_eq!(rejections(&h.publ.take())[0].2, RejectCode::Internal as u16);
    // AWS refusing the CSR is the device's fault: not retried by the async policy.
    h.reg
        .faults
        .fail("CreateCertificateFromCsr", ErrorKind::Invalid, 1);
    assert_eq!(
        h.run(request_event(SERIAL, nonce(1), Some(&pem), 256, 2))
            .await,
        Ok(Outcome::Rejected(RejectCode::CsrInvalid))
    );
}

#[tokio::test]
async fn partial_failure_cleans_up_in_order_and_deletes_only_a_thing_it_created() {
    let h = harness(config());
    let (pem, _) = csr(SERIAL);
    // Activation fails after RegisterThing created the thing and attached policy and principal.
    h.reg.faults.fail("UpdateCertificate", ErrorKind::Other, 1);
    let out = h
        .run(request_event(SERIAL, nonce(1), Some(&pem), 256, 2))
        .await;
    assert_eq!(out.unwrap_err().code, RejectCode::Internal);
    let reg = h.reg.snapshot();
    let tail: Vec<&str> = reg
        .calls
        .iter()
        .skip_while(|c| !c.starts_with("RegisterThing"))
        .map(|c| c.split('(').next().unwrap())
        .collect();
    assert_eq!(
        tail,
        [
            "RegisterThing",
            "UpdateCertificate",
            "ListAttachedPolicies",
            "DetachPolicy",
            "ListPrincipalThings",
            "DetachThingPrincipal",
            "DeleteCertificate",
            "DeleteThing"
        ]
    );
    assert!(reg
        .calls
        .iter()
        .any(|c| c.starts_with("UpdateCertificate") && c.ends_with(",Revoked)")));
    assert!(reg.certs.is_empty() && reg.things.is_empty());
    assert!(reg.policy_attachments.is_empty() && reg.thing_principals.is_empty());
    assert_eq!(items_of(&h), 0);
    assert_eq!(rejections(&h.publ.take())[0].2, RejectCode::Internal as u16);

    // The thing existed before: cleanup leaves it.
    let h = harness(config());
    h.reg.data.lock().unwrap().things.insert(THING.into());
    h.reg.faults.fail("RegisterThing", ErrorKind::Other, 1);
    let out = h
        .run(request_event(SERIAL, nonce(1), Some(&pem), 256, 2))
        .await;
    assert_eq!(out.unwrap_err().code, RejectCode::Internal);
    let reg = h.reg.snapshot();
    assert!(reg.things.contains(THING));
    assert!(!reg.calls.iter().any(|c| c.starts_with("DeleteThing")));
    assert!(reg.certs.is_empty());
    // The device retries later and gets through.
    assert!(matches!(
        h.run(request_event(SERIAL, nonce(1), Some(&pem), 256, 2))
            .await,
        Ok(Outcome::Published { .. })
    ));
    assert_eq!(
        h.reg.snapshot().policy_attachments.iter().next().unwrap().0,
        FAKE_DEVICE_POLICY
    );

    // Publishing fails after the item is written: the state stays pending, the device's
    // repeated request (same nonce) republishes.
    let h = harness(config());
    h.publ.faults.fail("Publish", ErrorKind::Other, 1);
    assert!(h
        .run(request_event(SERIAL, nonce(1), Some(&pem), 256, 2))
        .await
        .is_err());
    assert_eq!(h.st.item(SERIAL).unwrap().phase, Phase::Pending);
    h.publ.take();
    assert!(matches!(
        h.run(request_event(SERIAL, nonce(1), Some(&pem), 256, 2))
            .await,
        Ok(Outcome::Published { issued: false, .. })
    ));
}

// ----- events and configuration -----

#[test]
fn events_parse_and_configuration_reads_the_environment() {
    let rule: serde_json::Value = serde_json::json!({
        "payload": "e30=", "clientId": CLIENT, "topic": "chunkprov/claim-352656100000000/json", "timestamp": 1
    });
    assert!(matches!(event::parse(rule), Ok(Event::Rule(r)) if r.client_id == CLIENT));
    let sweep = serde_json::json!({
        "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-29T12:00:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/sweep"], "detail": {}
    });
    assert_eq!(event::parse(sweep), Ok(Event::Sweep));
    assert!(event::parse(serde_json::json!({"payload": "e30=", "clientId": "x", "topic": "t", "timestamp": 1, "extra": 1})).is_err());

    let env = std::collections::HashMap::from([
        ("TOPIC_PREFIX", "fleet/a"),
        ("KEY_MODE", "allow"),
        ("ALLOW_LIST", "1, 2,3"),
        ("REPROVISION_CAP", "5"),
    ]);
    let c = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
    assert_eq!(c.prefix, "fleet/a");
    assert!(c.key_mode);
    assert_eq!(c.allow_list.unwrap().len(), 3);
    assert_eq!(c.reprovision_cap, 5);
    assert!(Config::from_lookup(|k| (k == "KEY_MODE").then(|| "yes".into())).is_err());
    assert!(Config::from_lookup(|k| (k == "TOPIC_PREFIX").then(|| "a/+".into())).is_err());
    assert_eq!(Config::default().serial_of_thing("dev-42"), Some("42"));
}

#[tokio::test]
async fn a_failed_revocation_of_the_previous_certificate_is_handed_to_the_sweep() {
    let h = harness(config());
    let (pem, _) = csr(SERIAL);
    h.run(request_event(SERIAL, nonce(1), Some(&pem), 256, 1))
        .await
        .unwrap();
    let cert1 = h.st.item(SERIAL).unwrap().certificate_id.unwrap();
    // A new CSR: revoking the pending certificate fails (not retryable).
    h.reg.faults.fail("DeleteCertificate", ErrorKind::Other, 1);
    let (pem2, _) = csr(SERIAL);
    let out = h
        .run(request_event(SERIAL, nonce(2), Some(&pem2), 256, 1))
        .await;
    assert_eq!(out.unwrap_err().code, RejectCode::Internal);
    let item = h.st.item(SERIAL).unwrap();
    assert_eq!(item.phase, Phase::Revoking);
    assert_eq!(item.pending_since, Some(0), "due for the next sweep");
    assert_eq!(
        h.reg.snapshot().created,
        1,
        "no second certificate while the first lives"
    );
    assert!(h.reg.active().is_empty(), "the first is already revoked");
    assert_eq!(
        h.run(Event::Sweep).await,
        Ok(Outcome::Swept {
            revoked: 1,
            failed: 0
        })
    );
    assert!(!h.reg.snapshot().certs.contains_key(&cert1));
    // A stale claim without a certificate (its invocation died early) is swept too.
    let mut dead = chunkprov_lambda::state::Item::new("42", "dev-42");
    dead.version = 1;
    dead.nonce = nonce(7).to_string();
    dead.updated_at = T0;
    dead.pending_since = Some(T0);
    h.st.items.lock().unwrap().insert("42".into(), dead);
    h.now.store(T0 + 2 * 86_400, Ordering::SeqCst);
    assert_eq!(
        h.run(Event::Sweep).await,
        Ok(Outcome::Swept {
            revoked: 1,
            failed: 0
        })
    );
    assert_eq!(h.st.item("42").unwrap().phase, Phase::Revoked);
    // And the device whose request failed gets through now.
    let out = h
        .run(request_event(SERIAL, nonce(3), Some(&pem2), 256, 1))
        .await
        .unwrap();
    assert!(
        matches!(out, Outcome::Published { issued: true, .. }),
        "{out:?}"
    );
    assert_eq!(h.reg.active().len(), 1);
}
