//! The local CA signs for real: certificates chain to their CA and carry the CSR's key.

mod support;

use base64::Engine as _;
use chunkprov_devkit::ca::{certificate_id, pem_der, LocalPki};
use support::TempDir;
use x509_parser::prelude::*;

fn csr_for(cn: &str) -> (rcgen::KeyPair, rcgen::CertificateSigningRequest) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let csr = params.serialize_request(&key).unwrap();
    (key, csr)
}

/// Checks `cert_pem` is signed by `ca_pem`, names `cn`, and (if given) carries `spki_der`.
fn check_chain(cert_pem: &str, ca_pem: &str, cn: &str, spki_der: Option<&[u8]>) {
    let der = pem_der(cert_pem, "CERTIFICATE").unwrap();
    let ca_der = pem_der(ca_pem, "CERTIFICATE").unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    cert.verify_signature(Some(ca.public_key()))
        .expect("signed by the CA");
    assert_eq!(cert.issuer(), ca.subject());
    assert!(ca.is_ca());
    let got_cn = cert
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(got_cn, cn);
    assert!(cert.validity().is_valid());
    if let Some(spki) = spki_der {
        assert_eq!(
            cert.public_key().raw,
            spki,
            "the certificate carries the CSR's key"
        );
    }
    // Signed by nobody else.
    let other = rcgen::KeyPair::generate().unwrap();
    let other_cert = rcgen::CertificateParams::default()
        .self_signed(&other)
        .unwrap();
    let (_, other_cert) = X509Certificate::from_der(other_cert.der()).unwrap();
    assert!(cert
        .verify_signature(Some(other_cert.public_key()))
        .is_err());
}

#[test]
fn a_csr_in_every_encoding_is_signed_into_a_device_certificate() {
    let dir = TempDir::new("ca");
    let pki = LocalPki::open(&dir.0).unwrap();
    let (key, csr) = csr_for("352656100000000");
    let der = csr.der().to_vec();
    let encodings = [
        csr.pem().unwrap(),
        base64::engine::general_purpose::STANDARD.encode(&der),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der),
    ];
    let mut ids = Vec::new();
    for text in encodings {
        let issued = pki.sign_csr(&text).unwrap();
        assert!(issued.key_pem.is_none(), "CSR mode: no key leaves the CA");
        check_chain(
            &issued.cert_pem,
            pki.device.cert_pem(),
            "352656100000000",
            Some(&rcgen::PublicKeyData::subject_public_key_info(&key)),
        );
        assert_eq!(issued.certificate_id.len(), 64);
        assert_eq!(
            issued.certificate_id,
            certificate_id(&issued.cert_pem).unwrap()
        );
        let stored = dir
            .0
            .join("certificates")
            .join(format!("{}.crt", issued.certificate_id));
        assert_eq!(std::fs::read_to_string(stored).unwrap(), issued.cert_pem);
        ids.push(issued.certificate_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "every certificate is a new one");
}

#[test]
fn a_csr_with_a_broken_signature_is_refused() {
    let dir = TempDir::new("ca-bad");
    let pki = LocalPki::open(&dir.0).unwrap();
    let (_, csr) = csr_for("352656100000000");
    let mut der = csr.der().to_vec();
    let last = der.len() - 1;
    der[last] ^= 0x01; // inside the signature
    let text = base64::engine::general_purpose::STANDARD.encode(&der);
    let err = pki.sign_csr(&text).unwrap_err();
    assert!(format!("{err:#}").contains("signature"), "{err:#}");
    assert!(pki.sign_csr("not a csr!").is_err());
    // A CSR without a common name cannot be told apart by the broker.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let nameless = params.serialize_request(&key).unwrap();
    let err = pki.sign_csr(&nameless.pem().unwrap()).unwrap_err();
    assert!(format!("{err:#}").contains("common name"), "{err:#}");
}

#[test]
fn key_mode_claim_and_broker_certificates_chain_to_their_own_ca() {
    let dir = TempDir::new("ca-roles");
    let pki = LocalPki::open(&dir.0).unwrap();
    let issued = pki.issue_keys_and_certificate().unwrap();
    let key = rcgen::KeyPair::from_pem(issued.key_pem.as_deref().unwrap()).unwrap();
    let cn = LocalPki::common_name(&issued.cert_pem).unwrap();
    assert!(
        cn.starts_with("aws-iot-certificate-") && cn.len() == 36,
        "{cn}"
    );
    check_chain(
        &issued.cert_pem,
        pki.device.cert_pem(),
        &cn,
        Some(&rcgen::PublicKeyData::subject_public_key_info(&key)),
    );
    // Every key-mode certificate has a name of its own (Mosquitto's username).
    let other = pki.issue_keys_and_certificate().unwrap();
    assert_ne!(LocalPki::common_name(&other.cert_pem).unwrap(), cn);
    let claim = pki.claim_certificate("batch-7").unwrap();
    check_chain(&claim.cert_pem, pki.claim.cert_pem(), "claim-batch-7", None);
    let (broker, _, _) = pki.broker_pair();
    check_chain(&broker.cert_pem, pki.server.cert_pem(), "localhost", None);
    // The claim CA does not vouch for device certificates (and so on): one trust anchor each.
    let der = pem_der(&claim.cert_pem, "CERTIFICATE").unwrap();
    let dev_ca = pem_der(pki.device.cert_pem(), "CERTIFICATE").unwrap();
    let (_, c) = X509Certificate::from_der(&der).unwrap();
    let (_, d) = X509Certificate::from_der(&dev_ca).unwrap();
    assert!(c.verify_signature(Some(d.public_key())).is_err());
}

#[test]
fn the_state_directory_keeps_the_same_authorities() {
    let dir = TempDir::new("ca-reopen");
    let first = LocalPki::open(&dir.0).unwrap();
    let claim = first.claim_certificate("batch-1").unwrap();
    drop(first);
    let again = LocalPki::open(&dir.0).unwrap();
    assert_eq!(
        again.claim_certificate("batch-1").unwrap().cert_pem,
        claim.cert_pem
    );
    // A certificate signed after reopening still chains to the CA on disk.
    let (key, csr) = csr_for("1");
    let issued = again.sign_csr(&csr.pem().unwrap()).unwrap();
    let ca_pem = std::fs::read_to_string(dir.0.join("ca/device.crt")).unwrap();
    check_chain(
        &issued.cert_pem,
        &ca_pem,
        "1",
        Some(&rcgen::PublicKeyData::subject_public_key_info(&key)),
    );
}
