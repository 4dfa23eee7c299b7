//! The three backends the handler runs on, as traits: the IoT control plane ([`Registry`]), the
//! IoT data plane ([`Publisher`]) and the state table ([`State`]). [`crate::aws`] implements them
//! with the AWS SDK, [`crate::fakes`] in memory.

use crate::state::Item;
use async_trait::async_trait;
use std::collections::HashMap;
use std::fmt;

/// How a backend call failed, as far as the handler cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Rate-limited (`ThrottlingException` and friends): retry with backoff.
    Throttled,
    /// A 5xx, a timeout or a dropped connection: retry with backoff.
    Transient,
    /// A conditional write found another version of the item.
    Conflict,
    /// The resource does not exist.
    NotFound,
    /// The service refused the request itself (e.g. a CSR AWS will not sign).
    Invalid,
    /// Anything else: not retried.
    Other,
}

/// A failed backend call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The operation, e.g. `RegisterThing`.
    pub op: &'static str,
    /// The service's message (never holds key material: requests carrying keys are not echoed).
    pub message: String,
}

impl BackendError {
    /// A new error.
    pub fn new(kind: ErrorKind, op: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            op,
            message: message.into(),
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Throttled | ErrorKind::Transient)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}: {}", self.op, self.kind, self.message)
    }
}

impl std::error::Error for BackendError {}

/// The result of a backend call.
pub type BResult<T> = Result<T, BackendError>;

/// A certificate AWS IoT issued.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The certificate id (64 hex digits).
    pub id: String,
    /// The certificate ARN (the principal).
    pub arn: String,
    /// The certificate, PEM.
    pub pem: String,
    /// The private key, PEM, in key mode only. Never logged, never stored.
    pub private_key_pem: Option<String>,
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("id", &self.id)
            .field("arn", &self.arn)
            .field(
                "private_key_pem",
                &self.private_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// A certificate's status in AWS IoT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// `ACTIVE`.
    Active,
    /// `INACTIVE`.
    Inactive,
    /// `REVOKED`.
    Revoked,
}

/// The IoT control plane.
#[async_trait]
pub trait Registry: Send + Sync {
    /// `CreateCertificateFromCsr`, not active.
    async fn create_certificate_from_csr(&self, csr_pem: &str) -> BResult<IssuedCertificate>;
    /// `CreateKeysAndCertificate`, not active.
    async fn create_keys_and_certificate(&self) -> BResult<IssuedCertificate>;
    /// `DescribeCertificate`: the PEM and status.
    async fn describe_certificate(&self, id: &str) -> BResult<(String, CertStatus)>;
    /// `UpdateCertificate`.
    async fn update_certificate(&self, id: &str, status: CertStatus) -> BResult<()>;
    /// `DeleteCertificate` (never forced: policies and things must be detached first).
    async fn delete_certificate(&self, id: &str) -> BResult<()>;
    /// `ListAttachedPolicies` of a principal.
    async fn list_attached_policies(&self, principal_arn: &str) -> BResult<Vec<String>>;
    /// `DetachPolicy`.
    async fn detach_policy(&self, policy: &str, principal_arn: &str) -> BResult<()>;
    /// `ListPrincipalThings`.
    async fn list_principal_things(&self, principal_arn: &str) -> BResult<Vec<String>>;
    /// `DetachThingPrincipal`.
    async fn detach_thing_principal(&self, thing: &str, principal_arn: &str) -> BResult<()>;
    /// `DescribeThing`: whether the thing exists.
    async fn thing_exists(&self, thing: &str) -> BResult<bool>;
    /// `DeleteThing`.
    async fn delete_thing(&self, thing: &str) -> BResult<()>;
    /// `DescribeProvisioningTemplate`: the template body (implementations cache it per cold
    /// start).
    async fn template_body(&self, name: &str) -> BResult<String>;
    /// `RegisterThing` with the template body and its parameters.
    async fn register_thing(
        &self,
        template_body: &str,
        parameters: &HashMap<String, String>,
    ) -> BResult<()>;
}

/// The IoT data plane.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// `Publish` with QoS 1.
    async fn publish(&self, topic: &str, payload: &[u8]) -> BResult<()>;
}

/// The state table: one item per serial, written only with conditional writes.
#[async_trait]
pub trait State: Send + Sync {
    /// The item for `serial`, if any.
    async fn get(&self, serial: &str) -> BResult<Option<Item>>;
    /// Writes `item` (whose `version` the caller has set to the new version) only if the
    /// stored item's version is `expected`, or, with `None`, only if there is no item yet.
    /// Fails with [`ErrorKind::Conflict`] otherwise, writing nothing.
    async fn put(&self, item: &Item, expected: Option<u64>) -> BResult<()>;
    /// Deletes the item only if its version is `expected` ([`ErrorKind::Conflict`] otherwise).
    async fn delete(&self, serial: &str, expected: u64) -> BResult<()>;
    /// Items still in progress (those with `pending_since`, through the table's sparse index)
    /// whose `pending_since` is before `cutoff` (seconds since the epoch).
    async fn pending_before(&self, cutoff: i64) -> BResult<Vec<Item>>;
}
