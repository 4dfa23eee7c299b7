//! What the tests share: a device's side of the protocol (CSRs, requests, reassembly) and event
//! builders.
#![allow(dead_code)]

use base64::Engine as _;
use chunkprov_lambda::event::{Event, RuleEvent};
use chunkprov_protocol::chunking::{publish_packet_len, Plan};
use chunkprov_protocol::frame;
use chunkprov_protocol::reject::Rejection;
use chunkprov_protocol::Nonce;
use rcgen::{CertificateParams, DnType, KeyPair};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const SERIAL: &str = "352656100000000";
pub const CLIENT: &str = "claim-352656100000000";
pub const THING: &str = "dev-352656100000000";

/// Fixtures made with `openssl req -new -newkey <alg> -nodes -subj /CN=352656100000001`.
pub const FIXTURE_SERIAL: &str = "352656100000001";
pub const RSA2048: &str = include_str!("../../fixtures/rsa2048.csr.pem");
pub const RSA1024: &str = include_str!("../../fixtures/rsa1024.csr.pem");
pub const ED25519: &str = include_str!("../../fixtures/ed25519.csr.pem");
pub const P384: &str = include_str!("../../fixtures/p384.csr.pem");
pub const P521: &str = include_str!("../../fixtures/p521.csr.pem");

/// A fresh ECDSA P-256 CSR with subject CN `cn`: (PEM, DER).
pub fn csr(cn: &str) -> (String, Vec<u8>) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let req = params.serialize_request(&key).unwrap();
    (req.pem().unwrap(), req.der().to_vec())
}

pub fn nonce(n: u8) -> Nonce {
    Nonce([0x8f, 0x1c, 0x2a, 0x9b, 0, 0xd4, 0xe7, n])
}

/// A request's JSON.
pub fn request_json(
    serial: &str,
    nonce: Nonce,
    csr: Option<&str>,
    limit: u32,
    window: u16,
) -> String {
    let mut v = serde_json::json!({
        "SerialNumber": serial,
        "Nonce": nonce.to_string(),
        "PacketLimit": limit,
        "Window": window,
    });
    if let Some(c) = csr {
        v["Csr"] = c.into();
    }
    v.to_string()
}

/// A topic rule's event, as the rule SQL builds it.
pub fn rule(client_id: &str, topic: &str, payload: &str) -> Event {
    Event::Rule(RuleEvent {
        payload: base64::engine::general_purpose::STANDARD.encode(payload),
        client_id: client_id.into(),
        topic: topic.into(),
        timestamp: 1_764_412_345_678,
    })
}

pub fn request_event(
    serial: &str,
    nonce: Nonce,
    csr: Option<&str>,
    limit: u32,
    window: u16,
) -> Event {
    let client = format!("claim-{serial}");
    rule(
        &client,
        &format!("chunkprov/{client}/json"),
        &request_json(serial, nonce, csr, limit, window),
    )
}

pub fn pull_event(
    serial: &str,
    nonce: Nonce,
    transfer: u32,
    next: Option<u16>,
    missing: &[u16],
) -> Event {
    let client = format!("claim-{serial}");
    let mut v = serde_json::json!({"Nonce": nonce.to_string(), "TransferId": transfer});
    if let Some(n) = next {
        v["Next"] = n.into();
    }
    if !missing.is_empty() {
        v["Missing"] = missing.into();
    }
    rule(&client, &format!("chunkprov/{client}/pull"), &v.to_string())
}

pub fn confirm_event(thing: &str, transfer: u32, cert: &str) -> Event {
    rule(
        thing,
        &format!("chunkprov/{thing}/confirm"),
        &serde_json::json!({"TransferId": transfer, "CertificateId": cert}).to_string(),
    )
}

/// The rejections among `published`: (topic, nonce, code).
pub fn rejections(published: &[(String, Vec<u8>)]) -> Vec<(String, Option<Nonce>, u16)> {
    published
        .iter()
        .filter(|(t, _)| t.ends_with("/rejected"))
        .map(|(t, p)| {
            let r = Rejection::decode(p).unwrap();
            assert!(!r.message.is_empty());
            (t.clone(), r.nonce, r.code)
        })
        .collect()
}

/// A device's reassembly of frames, checking every frame as the device would.
#[derive(Default, Debug)]
pub struct Device {
    pub frames: BTreeMap<u16, Vec<u8>>,
    pub header: Option<frame::FrameHeader>,
    pub raw: BTreeMap<u16, Vec<u8>>,
}

impl Device {
    /// Takes the frames among `published` (on `topic`), each within `limit` bytes as a PUBLISH.
    pub fn take(&mut self, published: &[(String, Vec<u8>)], topic: &str, limit: u32) -> Vec<u16> {
        let mut got = Vec::new();
        for (t, p) in published.iter().filter(|(t, _)| t == topic) {
            let packet = publish_packet_len(t.len() as u32, p.len() as u32).unwrap();
            assert!(packet <= limit, "PUBLISH of {packet} bytes > limit {limit}");
            let (h, payload) = frame::decode(p).unwrap();
            h.placement(payload.len() as u32).unwrap();
            assert_eq!(chunkprov_protocol::crc::crc32(payload), h.crc32);
            if let Some(prev) = &self.header {
                if prev.transfer_id != h.transfer_id {
                    self.frames.clear();
                    self.raw.clear();
                } else {
                    assert_eq!(
                        (prev.count, prev.bundle_len, prev.sha256),
                        (h.count, h.bundle_len, h.sha256)
                    );
                }
            }
            if let Some(old) = self.raw.get(&h.index) {
                assert_eq!(old, p, "frame {} sent again differs", h.index);
            }
            self.raw.insert(h.index, p.clone());
            self.frames.insert(h.index, payload.to_vec());
            self.header = Some(h);
            got.push(h.index);
        }
        got
    }

    pub fn count(&self) -> u16 {
        self.header.map_or(0, |h| h.count)
    }

    pub fn transfer(&self) -> u32 {
        self.header.unwrap().transfer_id
    }

    /// The bundle, once complete and verified.
    pub fn bundle(&self) -> Option<Vec<u8>> {
        let h = self.header?;
        if self.frames.len() != usize::from(h.count) {
            return None;
        }
        let b: Vec<u8> = self.frames.values().flatten().copied().collect();
        assert_eq!(b.len() as u32, h.bundle_len);
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&b)), h.sha256);
        Plan::from_header(h.bundle_len, h.count).unwrap();
        Some(b)
    }
}

/// The items of a bundle: thing name, certificate id, certificate, key, CA (PEMs without NUL).
pub fn bundle_items(b: &[u8]) -> (String, String, String, Option<String>, Option<String>) {
    let l = chunkprov_protocol::bundle::locate_in(b).unwrap();
    let get = |s: chunkprov_protocol::bundle::Span| {
        b[s.offset as usize..(s.offset + s.len) as usize].to_vec()
    };
    let pem = |s: chunkprov_protocol::bundle::Span| {
        let mut v = get(s);
        assert_eq!(v.pop(), Some(0));
        String::from_utf8(v).unwrap()
    };
    (
        String::from_utf8(get(l.thing_name)).unwrap(),
        String::from_utf8(get(l.certificate_id)).unwrap(),
        pem(l.certificate),
        l.private_key.map(pem),
        l.server_ca.map(pem),
    )
}
pub mod moto;
