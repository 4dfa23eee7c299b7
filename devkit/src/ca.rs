//! The local certificate authorities: real ECDSA P-256 signatures (`rcgen` over `ring`), kept
//! as PEM files under a state directory so a second run (or another process, such as the IoT
//! emulator) finds the same authorities.
//!
//! Mosquitto cannot tell certificates apart by their subject when it accepts a connection, only
//! by the CA that signed them (a listener's `cafile`). So each role has its own self-signed CA,
//! and each broker listener trusts exactly one:
//!
//! | CA | signs | trusted by |
//! | --- | --- | --- |
//! | `server` | the broker's certificate (127.0.0.1, localhost) | devices and the cloud side (the bundle's server CA) |
//! | `claim` | one claim certificate per production batch | the claim listener |
//! | `device` | device certificates (CreateCertificateFromCsr, CreateKeysAndCertificate) | the device listener |
//! | `service` | the cloud side's client certificate | the service listeners |
//!
//! ```text
//! <state>/ca/<role>.crt, <role>.key        the four CAs
//! <state>/broker/server.crt, server.key    the broker's certificate
//! <state>/claims/<batch>.crt, <batch>.key  claim certificates (CN claim-<batch>)
//! <state>/service/<name>.crt, <name>.key   service client certificates
//! <state>/certificates/<id>.crt            every device certificate issued, by certificate id
//! ```

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateSigningRequestDer;
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// A certificate and its private key, both PEM (`\n` line endings).
#[derive(Clone, Debug)]
pub struct Pair {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl Pair {
    fn load(dir: &Path, name: &str) -> Result<Option<Self>> {
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        if !c.exists() || !k.exists() {
            return Ok(None);
        }
        Ok(Some(Self {
            cert_pem: read(&c)?,
            key_pem: read(&k)?,
        }))
    }

    fn store(&self, dir: &Path, name: &str) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write(&dir.join(format!("{name}.crt")), &self.cert_pem)?;
        write_private(&dir.join(format!("{name}.key")), &self.key_pem)
    }
}

/// A device certificate the device CA issued.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate id: SHA-256 of the DER, 64 lowercase hex digits (AWS IoT's form).
    pub certificate_id: String,
    /// The private key, PEM: only in key mode (the CA generated it).
    pub key_pem: Option<String>,
}

/// One self-signed certificate authority.
pub struct Authority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    fn create(common_name: &str) -> Result<(Self, Pair)> {
        let key = KeyPair::generate().context("generating a CA key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, 3650);
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key).context("self-signing a CA")?;
        let pair = Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok((Self::from_pair(&pair)?, pair))
    }

    fn from_pair(pair: &Pair) -> Result<Self> {
        let key = KeyPair::from_pem(&pair.key_pem).context("reading a CA key")?;
        let issuer =
            Issuer::from_ca_cert_pem(&pair.cert_pem, key).context("reading a CA certificate")?;
        Ok(Self {
            cert_pem: pair.cert_pem.clone(),
            issuer,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a leaf certificate for `public_key` with subject CN `common_name`.
    fn issue(
        &self,
        public_key: &impl rcgen::PublicKeyData,
        common_name: &str,
        usage: ExtendedKeyUsagePurpose,
        sans: &[SanType],
    ) -> Result<String> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.subject_alt_names = sans.to_vec();
        validity(&mut params, 365);
        params.serial_number = Some(random_serial()?);
        Ok(params
            .signed_by(public_key, &self.issuer)
            .with_context(|| format!("signing a certificate for {common_name}"))?
            .pem())
    }

    /// Issues a new key and a certificate for it.
    fn issue_pair(
        &self,
        common_name: &str,
        usage: ExtendedKeyUsagePurpose,
        sans: &[SanType],
    ) -> Result<Pair> {
        let key = KeyPair::generate().context("generating a key")?;
        Ok(Pair {
            cert_pem: self.issue(&key, common_name, usage, sans)?,
            key_pem: key.serialize_pem(),
        })
    }
}

/// Every authority of the local stack, kept under one state directory.
pub struct LocalPki {
    dir: PathBuf,
    /// Signs the broker's certificate; devices trust it.
    pub server: Authority,
    /// Signs claim certificates; the claim listener trusts it.
    pub claim: Authority,
    /// Signs device certificates; the device listener trusts it.
    pub device: Authority,
    /// Signs the cloud side's client certificates; the service listeners trust it.
    pub service: Authority,
    broker: Pair,
}

const ROLES: [&str; 4] = ["server", "claim", "device", "service"];

impl LocalPki {
    /// Opens the authorities under `state_dir`, creating whatever is missing.
    pub fn open(state_dir: &Path) -> Result<Self> {
        let ca_dir = state_dir.join("ca");
        let mut cas = Vec::new();
        for role in ROLES {
            let ca = match Pair::load(&ca_dir, role)? {
                Some(pair) => Authority::from_pair(&pair)
                    .with_context(|| format!("loading CA {role} from {}", ca_dir.display()))?,
                None => {
                    let (ca, pair) = Authority::create(&format!("chunkprov local {role} CA"))?;
                    pair.store(&ca_dir, role)?;
                    ca
                }
            };
            cas.push(ca);
        }
        let mut cas = cas.into_iter();
        let (server, claim, device, service) =
            match (cas.next(), cas.next(), cas.next(), cas.next()) {
                (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
                _ => bail!("internal: four CAs expected"),
            };
        let broker_dir = state_dir.join("broker");
        let broker = match Pair::load(&broker_dir, "server")? {
            Some(p) => p,
            None => {
                let sans = [
                    SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
                    SanType::DnsName("localhost".try_into().context("SAN")?),
                ];
                let p =
                    server.issue_pair("localhost", ExtendedKeyUsagePurpose::ServerAuth, &sans)?;
                p.store(&broker_dir, "server")?;
                p
            }
        };
        Ok(Self {
            dir: state_dir.to_path_buf(),
            server,
            claim,
            device,
            service,
            broker,
        })
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a CA's certificate (`role`: server, claim, device, service).
    pub fn ca_path(&self, role: &str) -> PathBuf {
        self.dir.join("ca").join(format!("{role}.crt"))
    }

    /// The broker's certificate and key, and their paths.
    pub fn broker_pair(&self) -> (&Pair, PathBuf, PathBuf) {
        let d = self.dir.join("broker");
        (&self.broker, d.join("server.crt"), d.join("server.key"))
    }

    /// The claim certificate of a production batch (CN `claim-<batch>`), created on first use.
    pub fn claim_certificate(&self, batch: &str) -> Result<Pair> {
        if batch.is_empty()
            || !batch
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            bail!("batch name {batch:?}: use letters, digits and '-'");
        }
        let dir = self.dir.join("claims");
        if let Some(p) = Pair::load(&dir, batch)? {
            return Ok(p);
        }
        let p = self.claim.issue_pair(
            &format!("claim-{batch}"),
            ExtendedKeyUsagePurpose::ClientAuth,
            &[],
        )?;
        p.store(&dir, batch)?;
        Ok(p)
    }

    /// A client certificate for the cloud side (the emulator's data plane and rules, the tests'
    /// stand-in cloud), created on first use.
    pub fn service_certificate(&self, name: &str) -> Result<Pair> {
        let dir = self.dir.join("service");
        if let Some(p) = Pair::load(&dir, name)? {
            return Ok(p);
        }
        let p = self
            .service
            .issue_pair(name, ExtendedKeyUsagePurpose::ClientAuth, &[])?;
        p.store(&dir, name)?;
        Ok(p)
    }

    /// CreateCertificateFromCsr: checks the CSR's signature and signs its public key into a
    /// device certificate whose subject CN is the CSR's (as AWS IoT does; chunkprov's CSRs name
    /// the serial). The CSR may be PEM, or DER as base64 or base64url (with or without
    /// padding). Subject and key checks (CN = serial, key type) are the caller's (the Lambda's);
    /// this refuses a CSR that does not parse or verify, or has no CN (Mosquitto identifies a
    /// device certificate by its CN).
    pub fn sign_csr(&self, csr: &str) -> Result<Issued> {
        let der = csr_der(csr)?;
        let req = CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(
            der.as_slice(),
        ))
        .map_err(|e| anyhow!("CSR does not parse or its signature does not verify: {e}"))?;
        let cn = req
            .params
            .distinguished_name
            .get(&DnType::CommonName)
            .and_then(|v| match v {
                rcgen::DnValue::PrintableString(s) => Some(s.as_str().to_string()),
                rcgen::DnValue::Utf8String(s) => Some(s.clone()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
            .ok_or_else(|| anyhow!("the CSR's subject has no common name"))?;
        let pem = self.device.issue(
            &req.public_key,
            &cn,
            ExtendedKeyUsagePurpose::ClientAuth,
            &[],
        )?;
        self.record(pem, None)
    }

    /// CreateKeysAndCertificate: a new key pair and its certificate. AWS names every such
    /// certificate "AWS IoT Certificate"; the local CA adds a random suffix
    /// (`aws-iot-certificate-<16 hex>`) because Mosquitto tells device certificates apart by
    /// their CN.
    pub fn issue_keys_and_certificate(&self) -> Result<Issued> {
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).map_err(|e| anyhow!("no randomness: {e}"))?;
        let cn: String = r
            .iter()
            .fold(String::from("aws-iot-certificate-"), |mut s, b| {
                let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{b:02x}"));
                s
            });
        let p = self
            .device
            .issue_pair(&cn, ExtendedKeyUsagePurpose::ClientAuth, &[])?;
        self.record(p.cert_pem, Some(p.key_pem))
    }

    /// The subject CN of a certificate (PEM): what Mosquitto takes as the username.
    pub fn common_name(cert_pem: &str) -> Result<String> {
        let der = pem_der(cert_pem, "CERTIFICATE")?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| anyhow!("certificate does not parse: {e}"))?;
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .ok_or_else(|| anyhow!("certificate has no common name"))?;
        Ok(cn.to_string())
    }

    fn record(&self, cert_pem: String, key_pem: Option<String>) -> Result<Issued> {
        let id = certificate_id(&cert_pem)?;
        let dir = self.dir.join("certificates");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        write(&dir.join(format!("{id}.crt")), &cert_pem)?;
        Ok(Issued {
            cert_pem,
            certificate_id: id,
            key_pem,
        })
    }
}

/// AWS IoT's certificate id: SHA-256 of the certificate's DER, lowercase hex.
pub fn certificate_id(cert_pem: &str) -> Result<String> {
    let der = pem_der(cert_pem, "CERTIFICATE")?;
    Ok(Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The DER inside the first PEM block labelled `label`.
pub fn pem_der(pem: &str, label: &str) -> Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| anyhow!("no {label} PEM block"))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .ok_or_else(|| anyhow!("unterminated {label} PEM block"))?
        + start;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .with_context(|| format!("{label} PEM block is not base64"))
}

/// A CSR as PEM, base64 DER or base64url DER → DER.
pub fn csr_der(csr: &str) -> Result<Vec<u8>> {
    let csr = csr.trim();
    if csr.starts_with("-----BEGIN") {
        return pem_der(csr, "CERTIFICATE REQUEST")
            .or_else(|_| pem_der(csr, "NEW CERTIFICATE REQUEST"));
    }
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    for engine in [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD, &STANDARD_NO_PAD] {
        if let Ok(der) = engine.decode(csr) {
            return Ok(der);
        }
    }
    bail!("CSR is neither PEM nor DER in base64 or base64url")
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

fn random_serial() -> Result<SerialNumber> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| anyhow!("no randomness: {e}"))?;
    b[0] &= 0x7F; // positive
    b[0] |= 0x01; // and of full length
    Ok(SerialNumber::from_slice(&b))
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Writes `text` to `path`, readable by the owner only (private keys).
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
