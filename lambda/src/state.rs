//! The state table's item: one per serial.

/// Where a serial's provisioning stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// An invocation has claimed the serial and is issuing a certificate.
    Issuing,
    /// A certificate is issued and active; frames are being delivered; not yet confirmed.
    Pending,
    /// The device confirmed its new certificate: the serial's one active certificate.
    Confirmed,
    /// The sweep is revoking an unconfirmed certificate (retried until it is gone).
    Revoking,
    /// Terminal: the certificate was revoked and deleted. Only this state has a TTL.
    Revoked,
}

impl Phase {
    /// The name stored in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Issuing => "ISSUING",
            Phase::Pending => "PENDING",
            Phase::Confirmed => "CONFIRMED",
            Phase::Revoking => "REVOKING",
            Phase::Revoked => "REVOKED",
        }
    }

    /// The phase with this stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ISSUING" => Phase::Issuing,
            "PENDING" => Phase::Pending,
            "CONFIRMED" => Phase::Confirmed,
            "REVOKING" => Phase::Revoking,
            "REVOKED" => Phase::Revoked,
            _ => return None,
        })
    }

    /// Whether items in this phase are in the sweep's index.
    pub fn in_progress(self) -> bool {
        matches!(self, Phase::Issuing | Phase::Pending | Phase::Revoking)
    }
}

/// One serial's item. Written only with conditional writes on `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Partition key.
    pub serial: String,
    /// The phase.
    pub phase: Phase,
    /// Grows by one with every write; the condition of the next write.
    pub version: u64,
    /// The thing name.
    pub thing_name: String,
    /// Whether an invocation of ours created the thing (so cleanup may delete it).
    pub thing_created: bool,
    /// Hex SHA-256 of the CSR's DER, or `None` in key mode.
    pub csr_sha256: Option<String>,
    /// The certificate id, once issued.
    pub certificate_id: Option<String>,
    /// The certificate ARN, once issued.
    pub certificate_arn: Option<String>,
    /// The certificate, PEM, once issued (public; about 1 KB): a pull rebuilds its frames from
    /// it instead of calling DescribeCertificate, whose default rate (10/s per account) would
    /// otherwise bind a fleet's throughput below RegisterThing's. Items written without it
    /// fall back to DescribeCertificate.
    pub certificate_pem: Option<String>,
    /// The current transfer; grows with every new transfer for the serial.
    pub transfer_id: u32,
    /// The nonce (16 hex digits) of the request being served.
    pub nonce: String,
    /// The device's packet limit.
    pub packet_limit: u32,
    /// The device's window.
    pub window: u16,
    /// The largest frame payload computed for that packet limit (a pull cuts frames with it).
    pub max_chunk: u32,
    /// The bundle's length.
    pub bundle_len: u32,
    /// Hex SHA-256 of the bundle (a rebuilt bundle must match it).
    pub bundle_sha256: String,
    /// Key mode: the private key's length in the bundle (the key itself is never kept).
    pub key_len: Option<u32>,
    /// Certificates issued to the serial after the first (checked against the cap).
    pub attempts: u32,
    /// When the item entered the in-progress phases (the sweep index's sort key); `None`
    /// outside them, which keeps the item out of the sparse index.
    pub pending_since: Option<i64>,
    /// TTL (seconds since the epoch), only on terminal items.
    pub expires_at: Option<i64>,
    /// Last write, seconds since the epoch.
    pub updated_at: i64,
}

impl Item {
    /// A fresh item for `serial`, version 0 (not yet written).
    pub fn new(serial: &str, thing_name: &str) -> Self {
        Self {
            serial: serial.into(),
            phase: Phase::Issuing,
            version: 0,
            thing_name: thing_name.into(),
            thing_created: false,
            csr_sha256: None,
            certificate_id: None,
            certificate_arn: None,
            certificate_pem: None,
            transfer_id: 0,
            nonce: String::new(),
            packet_limit: 0,
            window: 0,
            max_chunk: 0,
            bundle_len: 0,
            bundle_sha256: String::new(),
            key_len: None,
            attempts: 0,
            pending_since: None,
            expires_at: None,
            updated_at: 0,
        }
    }
}
