//! CSR checks: PKCS#10 as PEM, or DER in base64 or base64url (the nRF91 modem's `AT%KEYGEN`);
//! the signature must verify; RSA ≥ 2048 bits or ECDSA P-256/P-384; subject CN = serial.

use base64::Engine as _;
use chunkprov_protocol::RejectCode;
use sha2::{Digest, Sha256};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{OID_EC_P256, OID_NIST_EC_P384};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

/// The longest CSR accepted, in characters (an RSA-4096 PEM CSR is about 1.7 KB).
pub const MAX_CSR_LEN: usize = 8192;

/// A checked CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCsr {
    /// The CSR as PEM (what `CreateCertificateFromCsr` takes).
    pub pem: String,
    /// Hex SHA-256 of the DER: the same CSR in any encoding has the same hash.
    pub sha256: String,
}

/// Why a CSR was refused: a code and a short message for the device.
pub type CsrError = (RejectCode, &'static str);

fn decode_der(text: &str) -> Result<Vec<u8>, CsrError> {
    let text = text.trim();
    const BAD: CsrError = (
        RejectCode::CsrInvalid,
        "CSR is not PEM, base64 or base64url",
    );
    if text.starts_with("-----BEGIN") {
        let body = text
            .strip_prefix("-----BEGIN CERTIFICATE REQUEST-----")
            .or_else(|| text.strip_prefix("-----BEGIN NEW CERTIFICATE REQUEST-----"))
            .ok_or(BAD)?;
        let end = body.find("-----END").ok_or(BAD)?;
        let (b64, tail) = body.split_at(end);
        if !matches!(
            tail.trim_end(),
            "-----END CERTIFICATE REQUEST-----" | "-----END NEW CERTIFICATE REQUEST-----"
        ) {
            return Err(BAD);
        }
        let joined: String = b64.split_whitespace().collect();
        return base64::engine::general_purpose::STANDARD
            .decode(joined)
            .map_err(|_| BAD);
    }
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines.iter().find_map(|e| e.decode(text).ok()).ok_or(BAD)
}

fn rsa_bits(modulus: &[u8]) -> usize {
    let m = match modulus.iter().position(|&b| b != 0) {
        Some(i) => &modulus[i..],
        None => return 0,
    };
    m.len() * 8 - m[0].leading_zeros() as usize
}

/// Checks `text` as the CSR of the device with `serial`.
pub fn check(text: &str, serial: &str) -> Result<CheckedCsr, CsrError> {
    if text.len() > MAX_CSR_LEN {
        return Err((RejectCode::CsrInvalid, "CSR too long"));
    }
    let der = decode_der(text)?;
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|_| (RejectCode::CsrInvalid, "CSR is not PKCS#10 DER"))?;
    if !rest.is_empty() {
        return Err((RejectCode::CsrInvalid, "bytes after the CSR"));
    }
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) if rsa_bits(rsa.modulus) >= 2048 => {}
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            if curve != Some(OID_EC_P256) && curve != Some(OID_NIST_EC_P384) {
                return Err((RejectCode::CsrKeyUnsupported, "EC key not P-256 or P-384"));
            }
        }
        Ok(PublicKey::RSA(_)) => {
            return Err((RejectCode::CsrKeyUnsupported, "RSA key under 2048 bits"))
        }
        _ => return Err((RejectCode::CsrKeyUnsupported, "key not RSA or ECDSA")),
    }
    csr.verify_signature()
        .map_err(|_| (RejectCode::CsrInvalid, "CSR signature does not verify"))?;
    let mut cns = info.subject.iter_common_name();
    let cn = cns.next().and_then(|a| a.as_str().ok());
    if cn != Some(serial) || cns.next().is_some() {
        return Err((RejectCode::CsrSubjectMismatch, "CSR CN is not the serial"));
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let mut pem = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE REQUEST-----\n");
    Ok(CheckedCsr {
        pem,
        sha256: hex(&Sha256::digest(&der)),
    })
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
