//! The worked example in `protocol/README.md` is what this crate encodes: the hex there is
//! checked against the encoders here, so the document cannot drift from the code.

use chunkprov_protocol::bundle::{self, Bundle};
use chunkprov_protocol::chunking::{max_chunk, Plan};
use chunkprov_protocol::confirm::ConfirmAccepted;
use chunkprov_protocol::frame;
use chunkprov_protocol::reject::Rejection;
use chunkprov_protocol::{Nonce, RejectCode};

const README: &str = include_str!("../README.md");

pub const NONCE: Nonce = Nonce([0x8f, 0x1c, 0x2a, 0x9b, 0x00, 0xd4, 0xe7, 0xa1]);
const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2h1bmtwcm92IGV4YW1wbGUgY2VydDAKBggqhkjOPQQD\n-----END CERTIFICATE-----\n";

fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|l| {
            l.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text of the fenced block that follows the line `<!-- example: NAME -->`.
fn block(name: &str) -> String {
    let marker = format!("<!-- example: {name} -->");
    let start = README
        .find(&marker)
        .unwrap_or_else(|| panic!("README has no {marker}"));
    let rest = &README[start..];
    let open = rest.find("```").unwrap();
    let body = &rest[open..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].trim_end().to_string()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}

#[test]
fn worked_example_matches_the_encoders() {
    let b = Bundle {
        thing_name: "dev-352656100000000",
        certificate_id: "9c1e",
        certificate_pem: CERT,
        private_key_pem: None,
        server_ca_pem: None,
    };
    let mut buf = [0u8; 512];
    let n = bundle::encode(&b, &mut buf).unwrap();
    let bundle_bytes = &buf[..n];
    assert_eq!(block("bundle"), hex(bundle_bytes), "bundle");

    // 37-byte frame topic "chunkprov/claim-352656100000000/frame", PacketLimit 256.
    let max = max_chunk(256, 37).unwrap();
    assert_eq!(max, 128);
    let plan = Plan::for_bundle(n as u32, max).unwrap();
    assert_eq!(
        block("plan"),
        format!(
            "bundle_len {} max_chunk {} count {} chunk {}",
            n,
            max,
            plan.count(),
            plan.chunk()
        )
    );
    let sha = sha256(bundle_bytes);
    let (h, p) = plan.frame_of(bundle_bytes, 1, NONCE, 3054, &sha).unwrap();
    let mut out = [0u8; 256];
    let m = frame::encode(&h, p, &mut out).unwrap();
    assert_eq!(block("frame1"), hex(&out[..m]), "frame 1");

    let r = Rejection::new(
        Some(NONCE),
        RejectCode::CsrSubjectMismatch,
        "CSR CN is not the serial",
    );
    let m = r.encode(&mut out).unwrap();
    assert_eq!(block("rejection"), hex(&out[..m]), "rejection");

    let a = ConfirmAccepted {
        transfer_id: 3054,
        certificate_id: "9c1e",
    };
    let m = a.encode(&mut out).unwrap();
    assert_eq!(block("accepted"), hex(&out[..m]), "confirm accepted");
}

#[test]
fn every_code_is_documented() {
    for code in RejectCode::ALL {
        let row = format!("| {} | `{}` |", *code as u16, code.name());
        assert!(README.contains(&row), "README lacks {row}");
    }
}
