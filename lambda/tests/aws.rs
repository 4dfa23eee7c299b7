//! The AWS implementations of the backends, for real: IoT certificates, policies, thing
//! principals, iot-data Publish and DynamoDB against `moto_server` (started here on a loopback
//! port); `DescribeProvisioningTemplate` and `RegisterThing`, which moto lacks, against the
//! project's IoT control-plane emulator (`chunkprov-iot-emulator`).

mod common;

use chunkprov_iot_emulator::Emulator;
use chunkprov_lambda::aws::{AwsPublisher, AwsRegistry, DynamoState};
use chunkprov_lambda::backend::{CertStatus, ErrorKind, Publisher, Registry, State};
use chunkprov_lambda::handler::Env;
use chunkprov_lambda::state::{Item, Phase};
use chunkprov_lambda::{Config, Outcome};
use chunkprov_protocol::confirm::ConfirmAccepted;
use common::moto::*;
use common::*;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// The provisioning template body exactly as `deploy/template.yaml` deploys it, with the
/// device policy's name filled in.
fn deployed_template_body(policy: &str) -> String {
    chunkprov_iot_emulator::cloudformation_template_body(
        include_str!("../../deploy/template.yaml"),
        policy,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iot_certificates_policies_and_thing_principals_against_moto() {
    let moto = Moto::start();
    let iot = iot(&moto.endpoint());
    let emu = Emulator::new();
    let running = emu.serve(LOOPBACK).await.unwrap();
    let reg = AwsRegistry::new(iot.clone(), common::moto::iot(&running.endpoint()));

    // CreateCertificateFromCsr, asked for inactive.
    moto.start_recording();
    let (pem, _) = csr(SERIAL);
    let c = reg.create_certificate_from_csr(&pem).await.unwrap();
    assert_eq!(c.id.len(), 64);
    assert!(c.id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(c.arn.ends_with(&format!("cert/{}", c.id)));
    assert!(c.pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(c.private_key_pem, None);
    let sent = moto.recording();
    let (_, path, body) = sent
        .iter()
        .find(|(_, p, _)| p.starts_with("/certificates"))
        .unwrap();
    assert_eq!(path, "/certificates?setAsActive=false");
    let body: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        body["certificateSigningRequest"].as_str(),
        Some(
            chunkprov_lambda::csr::check(&pem, SERIAL)
                .unwrap()
                .pem
                .as_str()
        )
    );
    // (moto reads the query's "false" as true and activates; AWS does not.)
    reg.update_certificate(&c.id, CertStatus::Inactive)
        .await
        .unwrap();
    // DescribeCertificate gives the same PEM back (what a pull rebuilds the bundle from).
    let (described, status) = reg.describe_certificate(&c.id).await.unwrap();
    assert_eq!(
        (described.as_str(), status),
        (c.pem.as_str(), CertStatus::Inactive)
    );
    // CreateKeysAndCertificate: a key, and a certificate the bundle can carry.
    let k = reg.create_keys_and_certificate().await.unwrap();
    assert!(k
        .private_key_pem
        .as_deref()
        .unwrap()
        .contains("PRIVATE KEY"));
    assert!(
        !format!("{k:?}").contains("PRIVATE KEY"),
        "Debug redacts the key"
    );
    chunkprov_lambda::handler::build_bundle(
        THING,
        &k.id,
        &k.pem,
        k.private_key_pem.as_deref(),
        None,
    )
    .unwrap();
    // UpdateCertificate.
    reg.update_certificate(&c.id, CertStatus::Active)
        .await
        .unwrap();
    assert_eq!(
        reg.describe_certificate(&c.id).await.unwrap().1,
        CertStatus::Active
    );
    // What RegisterThing does in AWS, done by hand in moto: thing, policy, attachments.
    iot.create_thing().thing_name(THING).send().await.unwrap();
    iot.create_policy()
        .policy_name("chunkprov-device")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    iot.attach_policy()
        .policy_name("chunkprov-device")
        .target(&c.arn)
        .send()
        .await
        .unwrap();
    iot.attach_thing_principal()
        .thing_name(THING)
        .principal(&c.arn)
        .send()
        .await
        .unwrap();
    assert!(reg.thing_exists(THING).await.unwrap());
    assert!(!reg.thing_exists("dev-nobody").await.unwrap());
    assert_eq!(
        reg.list_attached_policies(&c.arn).await.unwrap(),
        vec!["chunkprov-device"]
    );
    assert_eq!(
        reg.list_principal_things(&c.arn).await.unwrap(),
        vec![THING]
    );
    // moto enforces AWS's order: not while active, not while attached.
    let e = reg.delete_certificate(&c.id).await.unwrap_err();
    assert!(!e.retryable(), "{e}");
    reg.update_certificate(&c.id, CertStatus::Revoked)
        .await
        .unwrap();
    let e = reg.delete_certificate(&c.id).await.unwrap_err();
    assert!(!e.retryable(), "{e}");
    reg.detach_policy("chunkprov-device", &c.arn).await.unwrap();
    reg.detach_thing_principal(THING, &c.arn).await.unwrap();
    assert!(reg.list_attached_policies(&c.arn).await.unwrap().is_empty());
    assert!(reg.list_principal_things(&c.arn).await.unwrap().is_empty());
    reg.delete_certificate(&c.id).await.unwrap();
    let e = reg.describe_certificate(&c.id).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    reg.delete_thing(THING).await.unwrap();
    assert!(!reg.thing_exists(THING).await.unwrap());
    // moto answers a CSR it cannot read with a bare HTML 500 (AWS: InvalidRequestException,
    // which the handler never meets, having checked the CSR itself): a 5xx maps to a retry.
    let e = reg
        .create_certificate_from_csr("garbage")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_template_and_register_thing_against_the_emulator() {
    let emu = Emulator::new();
    let body = deployed_template_body("chunkprov-device");
    emu.put_template("chunkprov", &body, true);
    let running = emu.serve(LOOPBACK).await.unwrap();
    let client = common::moto::iot(&running.endpoint());
    // Certificates are not the emulator's: only the provisioning client points at it.
    let reg = AwsRegistry::new(common::moto::iot("http://127.0.0.1:9"), client);
    assert_eq!(reg.template_body("chunkprov").await.unwrap(), body);
    // Cached per cold start: a second call does not reach the service.
    assert_eq!(reg.template_body("chunkprov").await.unwrap(), body);
    assert_eq!(emu.requests().len(), 1);
    let e = reg.template_body("other").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");

    let id = "a".repeat(64);
    let params = HashMap::from([
        ("SerialNumber".to_string(), SERIAL.to_string()),
        ("ThingName".to_string(), THING.to_string()),
        ("AWS::IoT::Certificate::Id".to_string(), id.clone()),
    ]);
    reg.register_thing(&body, &params).await.unwrap();
    let thing = emu.thing(THING).unwrap();
    assert_eq!(
        thing.attributes.get("serial").map(String::as_str),
        Some(SERIAL)
    );
    let arn = format!("arn:aws:iot:{REGION}:123456789012:cert/{id}");
    assert!(thing.principals.contains(&arn));
    emu.with_store(|s| {
        assert!(s
            .policy_attachments
            .contains(&("chunkprov-device".to_string(), arn.clone())));
        assert_eq!(
            s.certificate_status.get(&id).map(String::as_str),
            Some("INACTIVE")
        );
    });
    // The exact request the SDK sent.
    let r = emu
        .requests()
        .into_iter()
        .rfind(|r| r.operation == "RegisterThing")
        .unwrap();
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/things"));
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(r.headers["authorization"].contains(&format!("/{REGION}/iot/aws4_request")));
    assert_eq!(
        r.body["templateBody"],
        serde_json::Value::String(body.clone())
    );
    assert_eq!(
        r.body["parameters"]["AWS::IoT::Certificate::Id"],
        serde_json::Value::String(id.clone())
    );
    assert_eq!(r.body.as_object().unwrap().len(), 2);
    // A missing parameter is refused and changes nothing.
    let mut short = params.clone();
    short.remove("ThingName");
    let e = reg.register_thing(&body, &short).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
    // Throttling and 5xx come back as retryable kinds.
    emu.fail("RegisterThing", 400, "ThrottlingException", 1);
    assert_eq!(
        reg.register_thing(&body, &params).await.unwrap_err().kind,
        ErrorKind::Throttled
    );
    emu.fail("RegisterThing", 503, "ServiceUnavailableException", 1);
    assert_eq!(
        reg.register_thing(&body, &params).await.unwrap_err().kind,
        ErrorKind::Transient
    );
    reg.register_thing(&body, &params).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iot_data_publish_against_moto_read_back_through_the_recorder() {
    let moto = Moto::start();
    moto.start_recording();
    let p = AwsPublisher::new(iot_data(&moto.endpoint()));
    let payload: Vec<u8> = (0..=255u8).chain([0, 0xff, 0x80]).collect();
    p.publish(FRAME_TOPIC_OF_SERIAL, &payload).await.unwrap();
    p.publish("chunkprov/claim-1/rejected", &[0x83, 0xf6, 1, 0x61, b'x'])
        .await
        .unwrap();
    let got = moto.published();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, FRAME_TOPIC_OF_SERIAL);
    assert_eq!(got[0].1, "qos=1");
    assert_eq!(got[0].2, payload);
    assert_eq!(got[1].0, "chunkprov/claim-1/rejected");
}

const FRAME_TOPIC_OF_SERIAL: &str = "chunkprov/claim-352656100000000/frame";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_state_with_conditional_writes_and_the_sweep_index_against_moto() {
    let moto = Moto::start();
    let ddb = dynamodb(&moto.endpoint());
    create_table(&ddb, "chunkprov").await;
    let st = DynamoState::new(ddb.clone(), "chunkprov");
    assert_eq!(st.get(SERIAL).await.unwrap(), None);
    let mut it = Item::new(SERIAL, THING);
    it.version = 1;
    it.nonce = nonce(1).to_string();
    it.csr_sha256 = Some("ab".repeat(32));
    it.pending_since = Some(1000);
    it.updated_at = 1000;
    st.put(&it, None).await.unwrap();
    assert_eq!(st.get(SERIAL).await.unwrap(), Some(it.clone()));
    // Only one writer gets a new item in.
    assert_eq!(
        st.put(&it, None).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    // Versioned writes.
    let mut next = it.clone();
    next.version = 2;
    next.phase = Phase::Pending;
    next.certificate_id = Some("c".repeat(64));
    next.certificate_arn = Some("arn:aws:iot:eu-west-1:123456789012:cert/cc".into());
    next.transfer_id = 7;
    next.packet_limit = 256;
    next.window = 4;
    next.max_chunk = 128;
    next.bundle_len = 900;
    next.bundle_sha256 = "ef".repeat(32);
    next.key_len = Some(1675);
    next.attempts = 2;
    st.put(&next, Some(1)).await.unwrap();
    assert_eq!(
        st.put(&next, Some(1)).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    assert_eq!(st.get(SERIAL).await.unwrap(), Some(next.clone()));
    // The sparse index: pending items before the cutoff only.
    let mut other = Item::new("42", "dev-42");
    other.version = 1;
    other.nonce = nonce(2).to_string();
    other.pending_since = Some(5000);
    st.put(&other, None).await.unwrap();
    let mut done = Item::new("43", "dev-43");
    done.version = 1;
    done.nonce = nonce(3).to_string();
    done.phase = Phase::Revoked;
    done.expires_at = Some(99_999);
    st.put(&done, None).await.unwrap();
    let due: Vec<String> = st
        .pending_before(2000)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.serial)
        .collect();
    assert_eq!(due, vec![SERIAL.to_string()]);
    let mut due: Vec<String> = st
        .pending_before(6000)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.serial)
        .collect();
    due.sort();
    assert_eq!(due, vec![SERIAL.to_string(), "42".to_string()]);
    // Leaving the in-progress phases drops the item from the index.
    let mut confirmed = next.clone();
    confirmed.version = 3;
    confirmed.phase = Phase::Confirmed;
    confirmed.pending_since = None;
    st.put(&confirmed, Some(2)).await.unwrap();
    assert!(st.pending_before(2000).await.unwrap().is_empty());
    // TTL is configured on expires_at.
    let ttl = ddb
        .describe_time_to_live()
        .table_name("chunkprov")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description().unwrap().attribute_name(),
        Some("expires_at")
    );
    // Conditional deletes.
    assert_eq!(
        st.delete(SERIAL, 2).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    st.delete(SERIAL, 3).await.unwrap();
    assert_eq!(st.get(SERIAL).await.unwrap(), None);
}

/// The whole handler on the AWS implementations: moto for certificates, publish and state, the
/// emulator for the template and RegisterThing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_end_to_end_on_moto_and_the_emulator() {
    let moto = Moto::start();
    let ddb = dynamodb(&moto.endpoint());
    create_table(&ddb, "chunkprov").await;
    // The emulator applies RegisterThing's effects to moto, where the certificates are.
    let moto_iot = iot(&moto.endpoint());
    moto_iot
        .create_policy()
        .policy_name("chunkprov-device")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let emu = Emulator::with_backend(moto_iot.clone());
    emu.put_template(
        "chunkprov",
        &deployed_template_body("chunkprov-device"),
        true,
    );
    let running = emu.serve(LOOPBACK).await.unwrap();
    let registry = AwsRegistry::new(
        iot(&moto.endpoint()),
        common::moto::iot(&running.endpoint()),
    );
    let env = Env {
        config: Config {
            retry_base: Duration::from_millis(5),
            ..Config::default()
        },
        registry: Arc::new(registry),
        publisher: Arc::new(AwsPublisher::new(iot_data(&moto.endpoint()))),
        state: Arc::new(DynamoState::new(ddb, "chunkprov")),
        clock: chunkprov_lambda::handler::system_clock(),
    };
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(30);
    moto.start_recording();
    // RegisterThing is throttled twice: retried within the budget.
    emu.fail("RegisterThing", 400, "ThrottlingException", 2);
    let (pem, _) = csr(SERIAL);
    let n = nonce(1);
    let out = env
        .handle(request_event(SERIAL, n, Some(&pem), 256, 4), deadline())
        .await
        .unwrap();
    assert!(
        matches!(out, Outcome::Published { issued: true, .. }),
        "{out:?}"
    );
    assert_eq!(
        emu.requests()
            .iter()
            .filter(|r| r.operation == "RegisterThing")
            .count(),
        3
    );
    let mut dev = Device::default();
    let as_pairs = |v: Vec<(String, String, Vec<u8>)>| {
        v.into_iter().map(|(t, _, p)| (t, p)).collect::<Vec<_>>()
    };
    let mut first = dev.take(&as_pairs(moto.published()), FRAME_TOPIC_OF_SERIAL, 256);
    first.sort();
    assert_eq!(
        first,
        vec![0, 1, 2, 3],
        "the first window, published concurrently"
    );
    let mut seen = 4;
    while dev.bundle().is_none() {
        let next = (0..dev.count())
            .find(|i| !dev.frames.contains_key(i))
            .unwrap();
        env.handle(
            pull_event(SERIAL, n, dev.transfer(), Some(next), &[]),
            deadline(),
        )
        .await
        .unwrap();
        let all = as_pairs(moto.published());
        dev.take(&all[seen..], FRAME_TOPIC_OF_SERIAL, 256);
        seen = all.len();
    }
    let (thing, cert_id, cert_pem, key, _) = bundle_items(&dev.bundle().unwrap());
    assert_eq!(thing, THING);
    assert_eq!(key, None);
    let iot = iot(&moto.endpoint());
    let d = iot
        .describe_certificate()
        .certificate_id(&cert_id)
        .send()
        .await
        .unwrap();
    let d = d.certificate_description().unwrap();
    assert_eq!(d.certificate_pem().unwrap().replace('\r', ""), cert_pem);
    assert_eq!(
        d.status(),
        Some(&aws_sdk_iot::types::CertificateStatus::Active)
    );
    let reg_req = emu
        .requests()
        .into_iter()
        .rfind(|r| r.operation == "RegisterThing")
        .unwrap();
    assert_eq!(
        reg_req.body["parameters"]["AWS::IoT::Certificate::Id"],
        serde_json::Value::String(cert_id.clone())
    );
    // In moto: the thing, its attribute, the policy and the principal; the certificate active.
    let thing = moto_iot
        .describe_thing()
        .thing_name(THING)
        .send()
        .await
        .unwrap();
    assert_eq!(thing.attributes().unwrap()["serial"], SERIAL);
    let arn = d.certificate_arn().unwrap().to_string();
    let things = moto_iot
        .list_principal_things()
        .principal(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(things.things(), [THING.to_string()]);
    let policies = moto_iot
        .list_attached_policies()
        .target(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        policies.policies()[0].policy_name(),
        Some("chunkprov-device")
    );
    // Confirmation.
    let out = env
        .handle(confirm_event(THING, dev.transfer(), &cert_id), deadline())
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Confirmed { .. }));
    let last = moto.published().pop().unwrap();
    assert_eq!(last.0, "chunkprov/dev-352656100000000/confirm/accepted");
    let a = ConfirmAccepted::decode(&last.2).unwrap();
    assert_eq!(a.certificate_id, cert_id);
    // Already provisioned.
    let out = env
        .handle(
            request_event(SERIAL, nonce(2), Some(&pem), 256, 4),
            deadline(),
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        Outcome::Rejected(chunkprov_protocol::RejectCode::AlreadyProvisioned)
    );
    let last = moto.published().pop().unwrap();
    assert_eq!(last.0, "chunkprov/claim-352656100000000/rejected");

    // A second device whose RegisterThing fails after creating the thing and attaching policy
    // and principal: cleanup in moto, which refuses DeleteCertificate while anything is still
    // attached or the certificate active, and deletes the thing this invocation created.
    let (pem2, _) = csr("42");
    emu.fail_after_effects("RegisterThing", 400, "InvalidRequestException", 1);
    let before = iot
        .list_certificates()
        .send()
        .await
        .unwrap()
        .certificates()
        .len();
    let out = env
        .handle(
            request_event("42", nonce(1), Some(&pem2), 256, 4),
            deadline(),
        )
        .await;
    assert_eq!(
        out.unwrap_err().code,
        chunkprov_protocol::RejectCode::Internal
    );
    let after = iot
        .list_certificates()
        .send()
        .await
        .unwrap()
        .certificates()
        .len();
    assert_eq!(before, after, "the certificate created for 42 was deleted");
    assert!(
        moto_iot
            .describe_thing()
            .thing_name("dev-42")
            .send()
            .await
            .is_err(),
        "thing deleted"
    );
    assert!(
        moto_iot
            .describe_thing()
            .thing_name(THING)
            .send()
            .await
            .is_ok(),
        "others untouched"
    );
    moto_iot
        .get_policy()
        .policy_name("chunkprov-device")
        .send()
        .await
        .unwrap();
    assert_eq!(env.state.get("42").await.unwrap(), None);
}
