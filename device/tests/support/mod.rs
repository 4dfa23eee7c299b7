//! Test support: a NOR flash simulator and a stand-in for the cloud's frame encoder.
#![allow(dead_code)]

pub mod nor;

use chunkprov_device::protocol::bundle::{self, Bundle};
use chunkprov_device::protocol::chunking::{max_chunk, Plan};
use chunkprov_device::protocol::frame::{self, FrameHeader};
use chunkprov_device::protocol::Nonce;
use sha2::{Digest, Sha256};

pub const NONCE: Nonce = Nonce([0x8f, 0x1c, 0x2a, 0x9b, 0x00, 0xd4, 0xe7, 0xa1]);

/// A PEM-shaped text of about `len` bytes.
pub fn pem(label: &str, len: usize, seed: u8) -> String {
    let mut s = format!("-----BEGIN {label}-----\n");
    let mut i = 0u32;
    while s.len() < len {
        for _ in 0..64 {
            let c = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                [((i * 31 + u32::from(seed)) % 64) as usize];
            s.push(c as char);
            i += 1;
        }
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// A realistic bundle: ~1.2 KB certificate, optional key, ~1.2 KB CA.
pub fn sample_bundle(key: bool) -> Vec<u8> {
    let cert = pem("CERTIFICATE", 1200, 1);
    let key_pem = pem("EC PRIVATE KEY", 230, 2);
    let ca = pem("CERTIFICATE", 1180, 3);
    let b = Bundle {
        thing_name: "dev-352656100000000",
        certificate_id: "7d2c3f0e5a1b49c8a6d4e2f0b1c3d5e7f9a8b6c4d2e0f1a3b5c7d9e1f3a5b7c9",
        certificate_pem: &cert,
        private_key_pem: key.then_some(key_pem.as_str()),
        server_ca_pem: Some(&ca),
    };
    let mut out = vec![0u8; bundle::encoded_len(&b)];
    let n = bundle::encode(&b, &mut out).unwrap();
    out.truncate(n);
    out
}

/// Frames as the cloud would cut them for `packet_limit` on a 37-byte topic.
pub fn frames(bundle: &[u8], packet_limit: u32, transfer_id: u32, nonce: Nonce) -> Vec<Vec<u8>> {
    let plan = Plan::for_bundle(bundle.len() as u32, max_chunk(packet_limit, 37).unwrap()).unwrap();
    let sha: [u8; 32] = Sha256::digest(bundle).into();
    (0..plan.count())
        .map(|i| {
            let (h, p) = plan.frame_of(bundle, i, nonce, transfer_id, &sha).unwrap();
            encode(&h, p)
        })
        .collect()
}

pub fn encode(h: &FrameHeader, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; payload.len() + frame::HEADER_MAX_LEN];
    let n = frame::encode(h, payload, &mut buf).unwrap();
    buf.truncate(n);
    buf
}
