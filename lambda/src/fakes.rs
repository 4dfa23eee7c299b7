//! In-memory fakes of the three backends, for tests of the handler's logic without AWS. They
//! keep AWS's rules that the logic depends on (a certificate cannot be deleted while active or
//! attached; conditional writes) and record every call, so tests can check order. Each
//! operation can be made to fail with [`Faults::fail`].

use crate::backend::{
    BResult, BackendError, CertStatus, ErrorKind, IssuedCertificate, Publisher, Registry, State,
};
use crate::state::Item;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Failures to inject, per operation name, consumed one per call.
#[derive(Default)]
pub struct Faults(Mutex<HashMap<String, VecDeque<ErrorKind>>>);

impl Faults {
    /// The next `times` calls of `op` fail with `kind`.
    pub fn fail(&self, op: &str, kind: ErrorKind, times: usize) {
        lock(&self.0)
            .entry(op.to_string())
            .or_default()
            .extend(std::iter::repeat_n(kind, times));
    }

    fn check(&self, op: &'static str) -> BResult<()> {
        match lock(&self.0).get_mut(op).and_then(VecDeque::pop_front) {
            Some(kind) => Err(BackendError::new(kind, op, "injected by the fake")),
            None => Ok(()),
        }
    }
}

/// A certificate held by [`FakeRegistry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCert {
    /// PEM.
    pub pem: String,
    /// Status.
    pub status: CertStatus,
    /// Whether it came from a CSR (else from CreateKeysAndCertificate).
    pub from_csr: bool,
}

/// What the fake control plane holds.
#[derive(Debug, Default, Clone)]
pub struct RegistryData {
    /// Certificates by id.
    pub certs: BTreeMap<String, FakeCert>,
    /// Things.
    pub things: BTreeSet<String>,
    /// (policy, principal ARN) attachments.
    pub policy_attachments: BTreeSet<(String, String)>,
    /// (thing, principal ARN) attachments.
    pub thing_principals: BTreeSet<(String, String)>,
    /// Provisioning templates: name → body.
    pub templates: BTreeMap<String, String>,
    /// Every call, as `Op(arg)`, in order.
    pub calls: Vec<String>,
    /// How many certificates were ever created.
    pub created: usize,
}

/// An in-memory fake of the IoT control plane.
#[derive(Default)]
pub struct FakeRegistry {
    /// The data.
    pub data: Mutex<RegistryData>,
    /// Injected failures.
    pub faults: Faults,
}

/// The policy the fake RegisterThing attaches (as the deployment's template does).
pub const FAKE_DEVICE_POLICY: &str = "chunkprov-device";

impl FakeRegistry {
    /// A registry holding the template `name`.
    pub fn with_template(name: &str) -> Self {
        let r = Self::default();
        lock(&r.data).templates.insert(
            name.to_string(),
            r#"{"Parameters":{},"Resources":{}}"#.into(),
        );
        r
    }

    /// A snapshot of the data.
    pub fn snapshot(&self) -> RegistryData {
        lock(&self.data).clone()
    }

    /// Certificates with status ACTIVE.
    pub fn active(&self) -> Vec<String> {
        lock(&self.data)
            .certs
            .iter()
            .filter(|(_, c)| c.status == CertStatus::Active)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn arn(id: &str) -> String {
        format!("arn:aws:iot:eu-west-1:123456789012:cert/{id}")
    }

    fn id_of(arn: &str) -> &str {
        arn.rsplit('/').next().unwrap_or(arn)
    }

    fn begin(
        &self,
        op: &'static str,
        arg: &str,
    ) -> BResult<std::sync::MutexGuard<'_, RegistryData>> {
        self.faults.check(op)?;
        let mut d = lock(&self.data);
        d.calls.push(format!("{op}({arg})"));
        Ok(d)
    }

    fn new_cert(d: &mut RegistryData, seed: &[u8], from_csr: bool) -> IssuedCertificate {
        d.created += 1;
        let id = crate::csr::hex(&Sha256::digest([seed, &d.created.to_le_bytes()].concat()));
        // About the size of a real AWS IoT certificate: 20 lines of base64.
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for i in 0..20 {
            pem.push_str(&format!("{:0<64}\n", format!("{}{i}", &id[..16])));
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        d.certs.insert(
            id.clone(),
            FakeCert {
                pem: pem.clone(),
                status: CertStatus::Inactive,
                from_csr,
            },
        );
        IssuedCertificate {
            arn: Self::arn(&id),
            id,
            pem,
            private_key_pem: None,
        }
    }
}

fn not_found(op: &'static str) -> BackendError {
    BackendError::new(ErrorKind::NotFound, op, "no such resource")
}

#[async_trait]
impl Registry for FakeRegistry {
    async fn create_certificate_from_csr(&self, csr_pem: &str) -> BResult<IssuedCertificate> {
        let mut d = self.begin("CreateCertificateFromCsr", "")?;
        Ok(Self::new_cert(&mut d, csr_pem.as_bytes(), true))
    }

    async fn create_keys_and_certificate(&self) -> BResult<IssuedCertificate> {
        let mut d = self.begin("CreateKeysAndCertificate", "")?;
        let mut c = Self::new_cert(&mut d, b"keys", false);
        let mut key = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
        for i in 0..25 {
            key.push_str(&format!(
                "{:0<64}\n",
                format!("SECRETKEYMATERIAL{}{i}", &c.id[..8])
            ));
        }
        key.push_str("-----END RSA PRIVATE KEY-----\n");
        c.private_key_pem = Some(key);
        Ok(c)
    }

    async fn describe_certificate(&self, id: &str) -> BResult<(String, CertStatus)> {
        let d = self.begin("DescribeCertificate", id)?;
        let c = d
            .certs
            .get(id)
            .ok_or_else(|| not_found("DescribeCertificate"))?;
        Ok((c.pem.clone(), c.status))
    }

    async fn update_certificate(&self, id: &str, status: CertStatus) -> BResult<()> {
        let mut d = self.begin("UpdateCertificate", &format!("{id},{status:?}"))?;
        let c = d
            .certs
            .get_mut(id)
            .ok_or_else(|| not_found("UpdateCertificate"))?;
        if c.status == CertStatus::Revoked && status == CertStatus::Active {
            return Err(BackendError::new(
                ErrorKind::Invalid,
                "UpdateCertificate",
                "revoked",
            ));
        }
        c.status = status;
        Ok(())
    }

    async fn delete_certificate(&self, id: &str) -> BResult<()> {
        let mut d = self.begin("DeleteCertificate", id)?;
        let c = d
            .certs
            .get(id)
            .ok_or_else(|| not_found("DeleteCertificate"))?;
        let arn = Self::arn(id);
        if c.status == CertStatus::Active
            || d.policy_attachments.iter().any(|(_, a)| *a == arn)
            || d.thing_principals.iter().any(|(_, a)| *a == arn)
        {
            return Err(BackendError::new(
                ErrorKind::Invalid,
                "DeleteCertificate",
                "active or still attached",
            ));
        }
        d.certs.remove(id);
        Ok(())
    }

    async fn list_attached_policies(&self, arn: &str) -> BResult<Vec<String>> {
        let d = self.begin("ListAttachedPolicies", Self::id_of(arn))?;
        Ok(d.policy_attachments
            .iter()
            .filter(|(_, a)| a == arn)
            .map(|(p, _)| p.clone())
            .collect())
    }

    async fn detach_policy(&self, policy: &str, arn: &str) -> BResult<()> {
        let mut d = self.begin("DetachPolicy", &format!("{policy},{}", Self::id_of(arn)))?;
        d.policy_attachments
            .remove(&(policy.to_string(), arn.to_string()));
        Ok(())
    }

    async fn list_principal_things(&self, arn: &str) -> BResult<Vec<String>> {
        let d = self.begin("ListPrincipalThings", Self::id_of(arn))?;
        Ok(d.thing_principals
            .iter()
            .filter(|(_, a)| a == arn)
            .map(|(t, _)| t.clone())
            .collect())
    }

    async fn detach_thing_principal(&self, thing: &str, arn: &str) -> BResult<()> {
        let mut d = self.begin(
            "DetachThingPrincipal",
            &format!("{thing},{}", Self::id_of(arn)),
        )?;
        d.thing_principals
            .remove(&(thing.to_string(), arn.to_string()));
        Ok(())
    }

    async fn thing_exists(&self, thing: &str) -> BResult<bool> {
        let d = self.begin("DescribeThing", thing)?;
        Ok(d.things.contains(thing))
    }

    async fn delete_thing(&self, thing: &str) -> BResult<()> {
        let mut d = self.begin("DeleteThing", thing)?;
        if d.thing_principals.iter().any(|(t, _)| t == thing) {
            return Err(BackendError::new(
                ErrorKind::Invalid,
                "DeleteThing",
                "has principals",
            ));
        }
        d.things.remove(thing);
        Ok(())
    }

    async fn template_body(&self, name: &str) -> BResult<String> {
        let d = self.begin("DescribeProvisioningTemplate", name)?;
        d.templates
            .get(name)
            .cloned()
            .ok_or_else(|| not_found("DescribeProvisioningTemplate"))
    }

    async fn register_thing(
        &self,
        _template_body: &str,
        parameters: &HashMap<String, String>,
    ) -> BResult<()> {
        let thing = parameters.get("ThingName").cloned().unwrap_or_default();
        let id = parameters
            .get("AWS::IoT::Certificate::Id")
            .cloned()
            .unwrap_or_default();
        let mut d = self.begin("RegisterThing", &thing)?;
        if !d.certs.contains_key(&id) {
            return Err(BackendError::new(
                ErrorKind::Invalid,
                "RegisterThing",
                "no such certificate",
            ));
        }
        let arn = Self::arn(&id);
        d.things.insert(thing.clone());
        d.thing_principals.insert((thing, arn.clone()));
        d.policy_attachments
            .insert((FAKE_DEVICE_POLICY.to_string(), arn));
        Ok(())
    }
}

/// An in-memory fake of the IoT data plane: records what was published.
#[derive(Default)]
pub struct FakePublisher {
    /// (topic, payload), in order.
    pub published: Mutex<Vec<(String, Vec<u8>)>>,
    /// Injected failures (operation `Publish`).
    pub faults: Faults,
}

impl FakePublisher {
    /// Everything published so far, and forgets it.
    pub fn take(&self) -> Vec<(String, Vec<u8>)> {
        std::mem::take(&mut *lock(&self.published))
    }
}

#[async_trait]
impl Publisher for FakePublisher {
    async fn publish(&self, topic: &str, payload: &[u8]) -> BResult<()> {
        self.faults.check("Publish")?;
        lock(&self.published).push((topic.to_string(), payload.to_vec()));
        Ok(())
    }
}

/// An in-memory fake of the state table with DynamoDB's conditional-write semantics.
#[derive(Default)]
pub struct FakeState {
    /// Items by serial.
    pub items: Mutex<BTreeMap<String, Item>>,
    /// Injected failures (`GetItem`, `PutItem`, `DeleteItem`, `Query`).
    pub faults: Faults,
}

impl FakeState {
    /// The item for `serial`.
    pub fn item(&self, serial: &str) -> Option<Item> {
        lock(&self.items).get(serial).cloned()
    }
}

fn conflict(op: &'static str) -> BackendError {
    BackendError::new(ErrorKind::Conflict, op, "ConditionalCheckFailedException")
}

#[async_trait]
impl State for FakeState {
    async fn get(&self, serial: &str) -> BResult<Option<Item>> {
        // Yield like a network call would, so concurrent invocations interleave.
        tokio::task::yield_now().await;
        self.faults.check("GetItem")?;
        Ok(self.item(serial))
    }

    async fn put(&self, item: &Item, expected: Option<u64>) -> BResult<()> {
        tokio::task::yield_now().await;
        self.faults.check("PutItem")?;
        let mut items = lock(&self.items);
        let stored = items.get(&item.serial).map(|i| i.version);
        if stored != expected {
            return Err(conflict("PutItem"));
        }
        items.insert(item.serial.clone(), item.clone());
        Ok(())
    }

    async fn delete(&self, serial: &str, expected: u64) -> BResult<()> {
        self.faults.check("DeleteItem")?;
        let mut items = lock(&self.items);
        if items.get(serial).map(|i| i.version) != Some(expected) {
            return Err(conflict("DeleteItem"));
        }
        items.remove(serial);
        Ok(())
    }

    async fn pending_before(&self, cutoff: i64) -> BResult<Vec<Item>> {
        self.faults.check("Query")?;
        Ok(lock(&self.items)
            .values()
            .filter(|i| i.pending_since.is_some_and(|t| t < cutoff))
            .cloned()
            .collect())
    }
}
