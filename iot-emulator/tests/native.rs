//! Native mode through the real AWS SDK clients (`aws-sdk-iot`, `aws-sdk-iotdataplane`): the
//! emulator holds certificates (signed by a test CA built on rcgen) and things in a temporary
//! directory, and hands publishes and grants to a test double of the broker.

mod common;

use aws_sdk_iot::error::ProvideErrorMetadata;
use aws_sdk_iot::types::CertificateStatus;
use chunkprov_iot_emulator::{Authority, Broker, Emulator, Grant, OpStats, Running};
use common::iot;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PublicKeyData,
};
use sha2::{Digest, Sha256};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
const POLICY: &str = "chunkprov-device";

/// A certificate authority for the tests: signs CSRs as AWS does (the subject is the CSR's).
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> Arc<Self> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "chunkprov test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        Arc::new(Self {
            issuer: Issuer::new(params, key),
            pem,
        })
    }
}

impl Authority for TestCa {
    fn sign_csr(&self, csr_pem: &str) -> Result<String, String> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| e.to_string())?;
        Ok(csr
            .signed_by(&self.issuer)
            .map_err(|e| e.to_string())?
            .pem())
    }

    fn create_keys_and_certificate(&self) -> Result<(String, String, String), String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "chunkprov key mode");
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| e.to_string())?;
        Ok((cert.pem(), key.serialize_pem(), key.public_key_pem()))
    }
}

/// A test double of the broker: records publishes and grant reports.
#[derive(Default)]
struct BrokerDouble {
    published: Mutex<Vec<(String, Vec<u8>, u8)>>,
    reports: Mutex<Vec<Vec<Grant>>>,
    refuse: AtomicBool,
}

impl BrokerDouble {
    fn reports(&self) -> Vec<Vec<Grant>> {
        self.reports.lock().unwrap().clone()
    }

    fn last(&self) -> Vec<Grant> {
        self.reports().pop().expect("a grants report")
    }
}

#[async_trait::async_trait]
impl Broker for BrokerDouble {
    async fn publish(&self, topic: &str, payload: Vec<u8>, qos: u8) -> Result<(), String> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err("broker down".into());
        }
        self.published
            .lock()
            .unwrap()
            .push((topic.to_string(), payload, qos));
        Ok(())
    }

    fn grants_changed(&self, grants: &[Grant]) {
        self.reports.lock().unwrap().push(grants.to_vec());
    }
}

fn data(endpoint: &str) -> aws_sdk_iotdataplane::Client {
    use aws_sdk_iotdataplane::config;
    aws_sdk_iotdataplane::Client::from_conf(
        config::Builder::new()
            .behavior_version(config::BehaviorVersion::latest())
            .region(config::Region::new("eu-west-1"))
            .credentials_provider(config::Credentials::new(
                common::ACCESS_KEY,
                "secret",
                None,
                None,
                "test",
            ))
            .endpoint_url(endpoint)
            .retry_config(config::retry::RetryConfig::disabled())
            .build(),
    )
}

/// An emulator in native mode on a temporary directory, serving on loopback.
struct Harness {
    dir: tempfile::TempDir,
    ca: Arc<TestCa>,
    broker: Arc<BrokerDouble>,
    emu: Emulator,
    running: Running,
    iot: aws_sdk_iot::Client,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let broker = Arc::new(BrokerDouble::default());
        let emu = Emulator::open(dir.path(), ca.clone(), broker.clone()).unwrap();
        let running = emu.serve(LOOPBACK).await.unwrap();
        let iot = iot(&running.endpoint());
        Self {
            dir,
            ca,
            broker,
            emu,
            running,
            iot,
        }
    }

    /// A certificate from a fresh CSR with this common name: (id, ARN, PEM).
    async fn certificate(&self, cn: &str, active: bool) -> (String, String, String) {
        let out = self
            .iot
            .create_certificate_from_csr()
            .certificate_signing_request(csr(cn))
            .set_as_active(active)
            .send()
            .await
            .unwrap();
        (
            out.certificate_id().unwrap().to_string(),
            out.certificate_arn().unwrap().to_string(),
            out.certificate_pem().unwrap().to_string(),
        )
    }

    async fn register(
        &self,
        body: &str,
        serial: &str,
        thing: &str,
        cert_id: &str,
    ) -> Result<
        (),
        aws_sdk_iot::error::SdkError<aws_sdk_iot::operation::register_thing::RegisterThingError>,
    > {
        self.iot
            .register_thing()
            .template_body(body)
            .parameters("SerialNumber", serial)
            .parameters("ThingName", thing)
            .parameters("AWS::IoT::Certificate::Id", cert_id)
            .send()
            .await
            .map(|_| ())
    }

    async fn set_status(&self, id: &str, s: CertificateStatus) {
        self.iot
            .update_certificate()
            .certificate_id(id)
            .new_status(s)
            .send()
            .await
            .unwrap();
    }

    async fn status(&self, id: &str) -> CertificateStatus {
        self.iot
            .describe_certificate()
            .certificate_id(id)
            .send()
            .await
            .unwrap()
            .certificate_description()
            .unwrap()
            .status()
            .unwrap()
            .clone()
    }
}

fn csr(cn: &str) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn grant(thing: &str, id: &str, pem: &str) -> Grant {
    Grant {
        thing: thing.to_string(),
        certificate_id: id.to_string(),
        certificate_pem: pem.to_string(),
    }
}

/// The provisioning template body exactly as `deploy/template.yaml` deploys it.
fn deployed_template_body(policy: &str) -> String {
    chunkprov_iot_emulator::cloudformation_template_body(
        include_str!("../../deploy/template.yaml"),
        policy,
    )
    .unwrap()
}

fn code<E: ProvideErrorMetadata>(e: &E) -> &str {
    e.code().unwrap_or("")
}

type HttpResponse = aws_sdk_iot::config::http::HttpResponse;

fn status_of<E>(e: &aws_sdk_iot::error::SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_csrs_and_keys_with_awss_refusals() {
    let h = Harness::new().await;

    // CreateCertificateFromCsr: signed by the CA, subject from the CSR, id = SHA-256 of the DER.
    let (id, arn, pem) = h.certificate("dev-352656100000000", false).await;
    let (_, ca) = x509_parser::pem::parse_x509_pem(h.ca.pem.as_bytes()).unwrap();
    let ca = ca.parse_x509().unwrap();
    let (_, issued) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    assert_eq!(id, hex(&Sha256::digest(&issued.contents)));
    let cert = issued.parse_x509().unwrap();
    cert.verify_signature(Some(ca.public_key()))
        .expect("signed by the test CA");
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "dev-352656100000000"
    );
    assert_eq!(arn, format!("arn:aws:iot:eu-west-1:123456789012:cert/{id}"));
    let r = h
        .emu
        .requests()
        .into_iter()
        .rfind(|r| r.operation == "CreateCertificateFromCsr")
        .unwrap();
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/certificates?setAsActive=false")
    );
    // DescribeCertificate gives it back, INACTIVE as asked.
    let d = h
        .iot
        .describe_certificate()
        .certificate_id(&id)
        .send()
        .await
        .unwrap();
    let d = d.certificate_description().unwrap();
    assert_eq!(d.certificate_pem(), Some(pem.as_str()));
    assert_eq!(d.certificate_arn(), Some(arn.as_str()));
    assert_eq!(d.certificate_id(), Some(id.as_str()));
    assert_eq!(d.status(), Some(&CertificateStatus::Inactive));
    assert_eq!(d.owned_by(), Some("123456789012"));
    assert!(d.creation_date().unwrap().secs() > 1_700_000_000);
    // setAsActive=true.
    let (active_id, _, _) = h.certificate("dev-2", true).await;
    assert_eq!(h.status(&active_id).await, CertificateStatus::Active);

    // A CSR that does not parse, and one whose signature does not verify: InvalidRequestException,
    // nothing stored.
    let mut der = x509_parser::pem::parse_x509_pem(csr("dev-3").as_bytes())
        .unwrap()
        .1
        .contents;
    let last = der.len() - 1;
    der[last] ^= 0x55;
    let tampered = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            lines.join("\n")
        )
    };
    for bad in ["garbage".to_string(), tampered] {
        let e = h
            .iot
            .create_certificate_from_csr()
            .certificate_signing_request(bad)
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error().unwrap().is_invalid_request_exception(),
            "{e:?}"
        );
        assert_eq!(status_of(&e), Some(400));
    }
    assert_eq!(h.emu.with_store(|s| s.certificates.len()), 2);

    // CreateKeysAndCertificate: the key pair is the certificate's.
    let k = h
        .iot
        .create_keys_and_certificate()
        .set_as_active(false)
        .send()
        .await
        .unwrap();
    let kp = k.key_pair().unwrap();
    let private = KeyPair::from_pem(kp.private_key().unwrap()).unwrap();
    let (_, public) =
        x509_parser::pem::parse_x509_pem(kp.public_key().unwrap().as_bytes()).unwrap();
    assert_eq!(public.contents, private.subject_public_key_info());
    let (_, kcert) =
        x509_parser::pem::parse_x509_pem(k.certificate_pem().unwrap().as_bytes()).unwrap();
    let kcert_parsed = kcert.parse_x509().unwrap();
    assert_eq!(kcert_parsed.public_key().raw, public.contents.as_slice());
    kcert_parsed
        .verify_signature(Some(ca.public_key()))
        .unwrap();
    assert_eq!(
        k.certificate_id().unwrap(),
        hex(&Sha256::digest(&kcert.contents))
    );
    assert_eq!(
        h.status(k.certificate_id().unwrap()).await,
        CertificateStatus::Inactive
    );

    // UpdateCertificate and DeleteCertificate, with AWS's refusals.
    h.set_status(&id, CertificateStatus::Active).await;
    assert_eq!(h.status(&id).await, CertificateStatus::Active);
    let e = h
        .iot
        .delete_certificate()
        .certificate_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error()
            .unwrap()
            .is_certificate_state_exception(),
        "{e:?}"
    );
    assert_eq!(status_of(&e), Some(406));
    h.set_status(&id, CertificateStatus::Revoked).await;
    // Idempotent.
    h.set_status(&id, CertificateStatus::Revoked).await;
    let e = h
        .iot
        .update_certificate()
        .certificate_id(&id)
        .new_status(CertificateStatus::Active)
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error()
            .unwrap()
            .is_certificate_state_exception(),
        "{e:?}"
    );
    assert_eq!(h.status(&id).await, CertificateStatus::Revoked);
    for internal in [
        CertificateStatus::PendingTransfer,
        CertificateStatus::PendingActivation,
    ] {
        let e = h
            .iot
            .update_certificate()
            .certificate_id(&active_id)
            .new_status(internal)
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error().unwrap().is_invalid_request_exception(),
            "{e:?}"
        );
    }
    h.iot
        .delete_certificate()
        .certificate_id(&id)
        .force_delete(false)
        .send()
        .await
        .unwrap();
    let e = h
        .iot
        .describe_certificate()
        .certificate_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(e
        .as_service_error()
        .unwrap()
        .is_resource_not_found_exception());
    assert_eq!(status_of(&e), Some(404));
    for e in [
        code(
            &h.iot
                .delete_certificate()
                .certificate_id(&id)
                .send()
                .await
                .unwrap_err(),
        )
        .to_string(),
        code(
            &h.iot
                .update_certificate()
                .certificate_id(&id)
                .new_status(CertificateStatus::Inactive)
                .send()
                .await
                .unwrap_err(),
        )
        .to_string(),
    ] {
        assert_eq!(e, "ResourceNotFoundException");
    }
    let e = h
        .iot
        .describe_certificate()
        .certificate_id("not-an-id")
        .send()
        .await
        .unwrap_err();
    assert!(e.as_service_error().unwrap().is_invalid_request_exception());
    assert!(!h
        .dir
        .path()
        .join(format!("certificates/{id}.json"))
        .exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_thing_grants_and_the_cleanup_calls() {
    let h = Harness::new().await;
    assert_eq!(
        h.broker.reports(),
        vec![Vec::<Grant>::new()],
        "reported at open"
    );
    let body = deployed_template_body(POLICY);
    h.emu.put_template("chunkprov", &body, true);
    let described = h
        .iot
        .describe_provisioning_template()
        .template_name("chunkprov")
        .send()
        .await
        .unwrap();
    assert_eq!(described.template_body(), Some(body.as_str()));

    // RegisterThing as the deployed template does it: the certificate stays INACTIVE.
    let (a, a_arn, a_pem) = h.certificate("dev-a", false).await;
    h.register(&body, "1", "dev-a", &a).await.unwrap();
    assert_eq!(h.broker.reports().len(), 2);
    assert_eq!(h.broker.last(), vec![], "inactive: no grant");
    let t = h
        .iot
        .describe_thing()
        .thing_name("dev-a")
        .send()
        .await
        .unwrap();
    assert_eq!(t.thing_name(), Some("dev-a"));
    assert_eq!(
        t.thing_arn(),
        Some("arn:aws:iot:eu-west-1:123456789012:thing/dev-a")
    );
    assert_eq!(t.attributes().unwrap()["serial"], "1");
    assert_eq!(t.version(), 1);
    assert_eq!(t.thing_id().unwrap().len(), 36);
    assert_eq!(h.status(&a).await, CertificateStatus::Inactive);
    let things = h
        .iot
        .list_principal_things()
        .principal(&a_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(things.things(), ["dev-a".to_string()]);
    assert_eq!(things.next_token(), None);
    let policies = h
        .iot
        .list_attached_policies()
        .target(&a_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(policies.policies().len(), 1);
    assert_eq!(policies.policies()[0].policy_name(), Some(POLICY));
    assert_eq!(
        policies.policies()[0].policy_arn(),
        Some("arn:aws:iot:eu-west-1:123456789012:policy/chunkprov-device")
    );
    // The exact wire shapes: the ARN URL-encoded in the path, the principal in a header.
    let reqs = h.emu.requests();
    let lap = reqs
        .iter()
        .rfind(|r| r.operation == "ListAttachedPolicies")
        .unwrap();
    assert_eq!(lap.method, "POST");
    assert_eq!(
        lap.path,
        format!("/attached-policies/arn%3Aaws%3Aiot%3Aeu-west-1%3A123456789012%3Acert%2F{a}")
    );
    let lpt = reqs
        .iter()
        .rfind(|r| r.operation == "ListPrincipalThings")
        .unwrap();
    assert_eq!(lpt.path, "/principals/things");
    assert_eq!(lpt.headers["x-amzn-principal"], a_arn);

    // Activating gives the grant; a second device adds its own.
    h.set_status(&a, CertificateStatus::Active).await;
    assert_eq!(h.broker.last(), vec![grant("dev-a", &a, &a_pem)]);
    let (b, b_arn, b_pem) = h.certificate("dev-b", false).await;
    h.register(&body, "2", "dev-b", &b).await.unwrap();
    h.set_status(&b, CertificateStatus::Active).await;
    assert_eq!(
        h.broker.last(),
        vec![grant("dev-a", &a, &a_pem), grant("dev-b", &b, &b_pem)]
    );
    assert_eq!(h.emu.grants(), h.broker.last());

    // Revoking removes the grant; AWS's order for deleting: not active, no thing, no policy.
    h.set_status(&b, CertificateStatus::Revoked).await;
    assert_eq!(h.broker.last(), vec![grant("dev-a", &a, &a_pem)]);
    let e = h
        .iot
        .delete_certificate()
        .certificate_id(&b)
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error().unwrap().is_delete_conflict_exception(),
        "{e:?}"
    );
    assert_eq!(status_of(&e), Some(409));
    assert!(e
        .as_service_error()
        .unwrap()
        .message()
        .unwrap()
        .starts_with("Things must be detached"));
    h.iot
        .detach_thing_principal()
        .thing_name("dev-b")
        .principal(&b_arn)
        .send()
        .await
        .unwrap();
    assert!(h
        .iot
        .list_principal_things()
        .principal(&b_arn)
        .send()
        .await
        .unwrap()
        .things()
        .is_empty());
    let e = h
        .iot
        .delete_certificate()
        .certificate_id(&b)
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error().unwrap().is_delete_conflict_exception(),
        "policies still attached: {e:?}"
    );
    h.iot
        .detach_policy()
        .policy_name(POLICY)
        .target(&b_arn)
        .send()
        .await
        .unwrap();
    assert!(h
        .iot
        .list_attached_policies()
        .target(&b_arn)
        .send()
        .await
        .unwrap()
        .policies()
        .is_empty());
    h.iot
        .delete_certificate()
        .certificate_id(&b)
        .send()
        .await
        .unwrap();
    // DeleteThing: refused while a principal is attached, then done; a missing thing is not an
    // error (AWS: "Returns successfully ... if you specify a thing that doesn't exist").
    let e = h
        .iot
        .delete_thing()
        .thing_name("dev-a")
        .send()
        .await
        .unwrap_err();
    assert!(e.as_service_error().unwrap().is_invalid_request_exception());
    h.iot
        .delete_thing()
        .thing_name("dev-b")
        .send()
        .await
        .unwrap();
    let e = h
        .iot
        .describe_thing()
        .thing_name("dev-b")
        .send()
        .await
        .unwrap_err();
    assert!(e
        .as_service_error()
        .unwrap()
        .is_resource_not_found_exception());
    h.iot
        .delete_thing()
        .thing_name("dev-b")
        .send()
        .await
        .unwrap();
    let e = h
        .iot
        .detach_thing_principal()
        .thing_name("dev-b")
        .principal(&b_arn)
        .send()
        .await
        .unwrap_err();
    assert!(e
        .as_service_error()
        .unwrap()
        .is_resource_not_found_exception());

    // Detaching the thing's only policy removes its grant.
    h.iot
        .detach_policy()
        .policy_name(POLICY)
        .target(&a_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(h.broker.last(), vec![]);
    // Registering again attaches it again (and merges the attributes: a new version).
    h.register(&body, "1b", "dev-a", &a).await.unwrap();
    assert_eq!(
        h.status(&a).await,
        CertificateStatus::Inactive,
        "the template's status"
    );
    h.set_status(&a, CertificateStatus::Active).await;
    assert_eq!(h.broker.last(), vec![grant("dev-a", &a, &a_pem)]);
    let t = h
        .iot
        .describe_thing()
        .thing_name("dev-a")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (t.attributes().unwrap()["serial"].as_str(), t.version()),
        ("1b", 2)
    );
    // Detaching the thing principal removes it too.
    h.iot
        .detach_thing_principal()
        .thing_name("dev-a")
        .principal(&a_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(h.broker.last(), vec![]);
    // ... and DeleteThing's expectedVersion is checked.
    let e = h
        .iot
        .delete_thing()
        .thing_name("dev-a")
        .expected_version(1)
        .send()
        .await
        .unwrap_err();
    assert!(e
        .as_service_error()
        .unwrap()
        .is_version_conflict_exception());
    h.iot
        .delete_thing()
        .thing_name("dev-a")
        .expected_version(2)
        .send()
        .await
        .unwrap();

    // A revoked certificate cannot be registered back to life; an unknown one not at all.
    h.set_status(&a, CertificateStatus::Revoked).await;
    for id in [a.clone(), "ab".repeat(32)] {
        let e = h.register(&body, "1", "dev-a", &id).await.unwrap_err();
        assert!(e.as_service_error().unwrap().is_invalid_request_exception());
    }
    assert!(h.emu.thing("dev-a").is_none(), "refusals change nothing");

    // Pagination: one certificate on two things, two policies on one certificate.
    let (c, c_arn, c_pem) = h.certificate("dev-c", false).await;
    h.register(&body, "3", "dev-c1", &c).await.unwrap();
    h.register(&body, "3", "dev-c2", &c).await.unwrap();
    let two_policies = body.replace(
        r#""policy": {"#,
        r#""policy2": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "a-second-policy"}},
            "policy": {"#,
    );
    h.register(&two_policies, "3", "dev-c1", &c).await.unwrap();
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = h
            .iot
            .list_principal_things()
            .principal(&c_arn)
            .max_results(1)
            .set_next_token(token.take())
            .send()
            .await
            .unwrap();
        assert_eq!(page.things().len(), 1);
        seen.extend(page.things().iter().cloned());
        match page.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["dev-c1", "dev-c2"]);
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = h
            .iot
            .list_attached_policies()
            .target(&c_arn)
            .page_size(1)
            .set_marker(marker.take())
            .send()
            .await
            .unwrap();
        seen.extend(
            page.policies()
                .iter()
                .map(|p| p.policy_name().unwrap().to_string()),
        );
        match page.next_marker() {
            Some(m) => marker = Some(m.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["a-second-policy", POLICY]);
    h.set_status(&c, CertificateStatus::Active).await;
    assert_eq!(
        h.broker.last(),
        vec![grant("dev-c1", &c, &c_pem), grant("dev-c2", &c, &c_pem)]
    );
    // Every report was the store's set at the time; the last is the current one.
    assert_eq!(h.emu.grants(), h.broker.last());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_reaches_the_broker_double_and_describe_endpoint_names_the_emulator() {
    let h = Harness::new().await;
    // DescribeEndpoint: the emulator's own host:port, usable as the data endpoint.
    let ep = h
        .iot
        .describe_endpoint()
        .endpoint_type("iot:Data-ATS")
        .send()
        .await
        .unwrap();
    let host = ep.endpoint_address().unwrap().to_string();
    assert_eq!(host, h.running.addr.to_string());
    let dp = data(&format!("http://{host}"));

    let payload: Vec<u8> = (0..=255u8).chain([0, 0xff, 0x80]).collect();
    dp.publish()
        .topic("chunkprov/claim-352656100000000/frame")
        .qos(1)
        .payload(aws_sdk_iotdataplane::primitives::Blob::new(payload.clone()))
        .send()
        .await
        .unwrap();
    dp.publish()
        .topic("chunkprov/claim-1/rejected")
        .payload(aws_sdk_iotdataplane::primitives::Blob::new(vec![
            0x83, 0xf6,
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        *h.broker.published.lock().unwrap(),
        vec![
            (
                "chunkprov/claim-352656100000000/frame".to_string(),
                payload,
                1
            ),
            (
                "chunkprov/claim-1/rejected".to_string(),
                vec![0x83, 0xf6],
                0
            ),
        ]
    );
    let r = h
        .emu
        .requests()
        .into_iter()
        .find(|r| r.operation == "Publish")
        .unwrap();
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        (
            "POST",
            "/topics/chunkprov%2Fclaim-352656100000000%2Fframe?qos=1"
        )
    );
    assert!(r.headers["authorization"].contains("/eu-west-1/iotdata/aws4_request"));

    // Refusals: QoS 2, wildcards, a broker that fails.
    let e = dp.publish().topic("a/b").qos(2).send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let e = dp.publish().topic("a/+/b").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    h.broker.refuse.store(true, Ordering::SeqCst);
    let e = dp.publish().topic("a/b").send().await.unwrap_err();
    assert_eq!(code(&e), "InternalFailureException");
    assert_eq!(h.broker.published.lock().unwrap().len(), 2);
    // DescribeEndpoint knows AWS's endpoint types only.
    let e = h
        .iot
        .describe_endpoint()
        .endpoint_type("iot:Nonsense")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_reopening_the_directory() {
    let h = Harness::new().await;
    let body = deployed_template_body(POLICY);
    let (a, a_arn, a_pem) = h.certificate("dev-a", false).await;
    h.register(&body, "1", "dev-a", &a).await.unwrap();
    h.set_status(&a, CertificateStatus::Active).await;
    let (b, b_arn, _) = h.certificate("dev-b", false).await;
    h.register(&body, "2", "dev-b", &b).await.unwrap();
    h.iot
        .detach_policy()
        .policy_name(POLICY)
        .target(&b_arn)
        .send()
        .await
        .unwrap();
    let k = h.iot.create_keys_and_certificate().send().await.unwrap();
    let before = h
        .emu
        .with_store(|s| (s.things.clone(), s.policy_attachments.clone()));
    let a_before = h.emu.certificate(&a).unwrap();
    // One small file per thing and per certificate.
    let count = |d: &str| std::fs::read_dir(h.dir.path().join(d)).unwrap().count();
    assert_eq!((count("things"), count("certificates")), (2, 3));

    let Harness {
        dir,
        ca,
        emu,
        running,
        ..
    } = h;
    drop(running);
    drop(emu);
    let broker = Arc::new(BrokerDouble::default());
    let emu = Emulator::open(dir.path(), ca, broker.clone()).unwrap();
    assert_eq!(
        broker.reports(),
        vec![vec![grant("dev-a", &a, &a_pem)]],
        "reported once at open"
    );
    assert_eq!(
        emu.with_store(|s| (s.things.clone(), s.policy_attachments.clone())),
        before
    );
    assert_eq!(emu.certificate(&a).unwrap(), a_before);
    let running = emu.serve(LOOPBACK).await.unwrap();
    let iot = iot(&running.endpoint());
    let d = iot
        .describe_certificate()
        .certificate_id(&a)
        .send()
        .await
        .unwrap();
    let d = d.certificate_description().unwrap();
    assert_eq!(d.status(), Some(&CertificateStatus::Active));
    assert_eq!(d.certificate_pem(), Some(a_pem.as_str()));
    assert_eq!(
        iot.describe_certificate()
            .certificate_id(k.certificate_id().unwrap())
            .send()
            .await
            .unwrap()
            .certificate_description()
            .unwrap()
            .status(),
        Some(&CertificateStatus::Inactive)
    );
    let things = iot
        .list_principal_things()
        .principal(&a_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(things.things(), ["dev-a".to_string()]);
    assert!(iot
        .list_attached_policies()
        .target(&b_arn)
        .send()
        .await
        .unwrap()
        .policies()
        .is_empty());
    let t = iot
        .describe_thing()
        .thing_name("dev-b")
        .send()
        .await
        .unwrap();
    assert_eq!(t.attributes().unwrap()["serial"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_faults_latency_recording_and_stats() {
    let h = Harness::new().await;
    let endpoint = || h.iot.describe_endpoint().send();

    // A token bucket: two at once, then 429 ThrottlingException "Rate exceeded", counted.
    h.emu.rate_limit("DescribeEndpoint", 1.0, 2);
    endpoint().await.unwrap();
    endpoint().await.unwrap();
    let e = endpoint().await.unwrap_err();
    assert!(
        e.as_service_error().unwrap().is_throttling_exception(),
        "{e:?}"
    );
    assert_eq!(status_of(&e), Some(429));
    assert_eq!(
        e.as_service_error().unwrap().message(),
        Some("Rate exceeded")
    );
    assert_eq!(
        h.emu.stats()["DescribeEndpoint"],
        OpStats {
            calls: 3,
            throttled: 1,
            failed: 0
        }
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    endpoint().await.unwrap();

    // AWS's defaults: RegisterThing at 10 a second.
    h.emu.aws_rates();
    let body = deployed_template_body(POLICY);
    let (a, _, _) = h.certificate("dev-a", false).await;
    let mut ok = 0u64;
    let t0 = Instant::now();
    let first_refusal = loop {
        match h.register(&body, "1", "dev-a", &a).await {
            Ok(()) => ok += 1,
            Err(e) => break e,
        }
        assert!(ok < 100, "never throttled");
    };
    let elapsed = t0.elapsed().as_secs_f64();
    assert!(first_refusal
        .as_service_error()
        .unwrap()
        .is_throttling_exception());
    assert!(ok >= 10, "the burst: {ok}");
    assert!(
        ok as f64 <= 10.0 + (elapsed * 10.0).ceil(),
        "{ok} in {elapsed}s"
    );
    assert_eq!(
        h.emu.stats()["RegisterThing"],
        OpStats {
            calls: ok + 1,
            throttled: 1,
            failed: 0
        }
    );

    // Injected faults on a native operation: before the effects, then after them.
    h.emu
        .fail("UpdateCertificate", 503, "ServiceUnavailableException", 1);
    let e = h
        .iot
        .update_certificate()
        .certificate_id(&a)
        .new_status(CertificateStatus::Active)
        .send()
        .await
        .unwrap_err();
    assert!(e
        .as_service_error()
        .unwrap()
        .is_service_unavailable_exception());
    assert_eq!(status_of(&e), Some(503));
    assert_eq!(h.status(&a).await, CertificateStatus::Inactive, "no effect");
    let reports = h.broker.reports().len();
    h.emu
        .fail_after_effects("UpdateCertificate", 500, "InternalFailureException", 1);
    let e = h
        .iot
        .update_certificate()
        .certificate_id(&a)
        .new_status(CertificateStatus::Active)
        .send()
        .await
        .unwrap_err();
    assert!(e
        .as_service_error()
        .unwrap()
        .is_internal_failure_exception());
    assert_eq!(h.status(&a).await, CertificateStatus::Active, "took effect");
    assert_eq!(h.broker.reports().len(), reports + 1);
    assert_eq!(h.broker.last().len(), 1);
    h.emu.fail("Publish", 400, "ThrottlingException", 1);
    let dp = data(&h.running.endpoint());
    let e = dp.publish().topic("a/b").send().await.unwrap_err();
    assert_eq!(code(&e), "ThrottlingException");
    assert!(h.broker.published.lock().unwrap().is_empty());
    let s = h.emu.stats();
    assert_eq!(
        s["UpdateCertificate"],
        OpStats {
            calls: 2,
            throttled: 0,
            failed: 2
        }
    );
    assert_eq!(s["Publish"].failed, 1);
    // An operation's own error counts as failed too.
    let _ = h
        .iot
        .describe_thing()
        .thing_name("nobody")
        .send()
        .await
        .unwrap_err();
    assert_eq!(h.emu.stats()["DescribeThing"].failed, 1);

    // Service time.
    h.emu.latency("DescribeThing", Duration::from_millis(300));
    let t0 = Instant::now();
    let _ = h
        .iot
        .describe_thing()
        .thing_name("dev-a")
        .send()
        .await
        .unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(300));
    h.emu.latency("DescribeThing", Duration::ZERO);

    // Recording can be switched off.
    let n = h.emu.requests().len();
    h.emu.record_requests(false);
    endpoint().await.unwrap();
    assert_eq!(h.emu.requests().len(), n);
    h.emu.record_requests(true);
    endpoint().await.unwrap();
    assert_eq!(h.emu.requests().len(), n + 1);

    // Unknown routes stay unknown; native operations need native mode.
    let e = h.iot.list_things().send().await.unwrap_err();
    assert_eq!(code(&e), "UnknownOperationException");
    let plain = Emulator::new();
    let running = plain.serve(LOOPBACK).await.unwrap();
    let e = iot(&running.endpoint())
        .describe_certificate()
        .certificate_id(&a)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "UnknownOperationException");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
