//! Native mode: certificates and things held (and persisted) by the emulator itself, a
//! certificate authority behind the certificate operations, a broker behind Publish.

use crate::provisioning::Plan;
use crate::{lock, AwsError, Certificate, Emulator, Store, Thing, ACCOUNT};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The certificate authority behind CreateCertificateFromCsr and CreateKeysAndCertificate.
pub trait Authority: Send + Sync + 'static {
    /// Signs a CSR (the PEM text as the SDK sent it). AWS semantics: the certificate's subject is the CSR's.
    /// Err(message) when the CSR does not parse or its signature does not verify (answer InvalidRequestException).
    fn sign_csr(&self, csr_pem: &str) -> Result<String, String>;
    /// A new key pair and its certificate: (certificate PEM, private key PEM, public key PEM).
    fn create_keys_and_certificate(&self) -> Result<(String, String, String), String>;
}

/// Where the data plane and policy changes go (the local MQTT broker).
#[async_trait::async_trait]
pub trait Broker: Send + Sync + 'static {
    /// iot-data Publish: deliver `payload` on `topic` at `qos` (0 or 1).
    async fn publish(&self, topic: &str, payload: Vec<u8>, qos: u8) -> Result<(), String>;
    /// Called after every change that can alter who may act as a thing, with the whole current set:
    /// every (thing, certificate) where the certificate is ACTIVE, attached to the thing as a principal,
    /// and has at least one policy attached.
    fn grants_changed(&self, grants: &[Grant]);
}

/// A certificate that may act as a thing (see [`Broker::grants_changed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The thing's name.
    pub thing: String,
    /// The certificate's id (SHA-256 of its DER, lowercase hex).
    pub certificate_id: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
}

/// The native part of an emulator.
pub(crate) struct Native {
    dir: PathBuf,
    authority: Arc<dyn Authority>,
    broker: Arc<dyn Broker>,
    /// Held while computing and reporting grants, so the last report is the newest state.
    reporting: Mutex<()>,
}

/// A thing's file, `things/<name>.json`.
#[derive(Serialize, Deserialize)]
struct ThingFile {
    name: String,
    thing_id: String,
    version: u64,
    attributes: BTreeMap<String, String>,
    principals: BTreeSet<String>,
}

/// A certificate's file, `certificates/<id>.json`, with the policies attached to it.
#[derive(Serialize, Deserialize)]
struct CertFile {
    id: String,
    arn: String,
    pem: String,
    status: String,
    created: f64,
    last_modified: f64,
    customer_version: u64,
    policies: BTreeSet<String>,
}

const THINGS: &str = "things";
const CERTIFICATES: &str = "certificates";

fn read_dir_json<T: for<'de> Deserialize<'de>>(dir: &Path) -> io::Result<Vec<T>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        out.push(serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?);
    }
    Ok(out)
}

pub(crate) fn open(
    dir: &Path,
    authority: Arc<dyn Authority>,
    broker: Arc<dyn Broker>,
) -> io::Result<Emulator> {
    std::fs::create_dir_all(dir.join(THINGS))?;
    std::fs::create_dir_all(dir.join(CERTIFICATES))?;
    let mut store = Store::default();
    for t in read_dir_json::<ThingFile>(&dir.join(THINGS))? {
        store.things.insert(
            t.name,
            Thing {
                attributes: t.attributes,
                principals: t.principals,
                version: t.version,
                thing_id: t.thing_id,
            },
        );
    }
    for c in read_dir_json::<CertFile>(&dir.join(CERTIFICATES))? {
        for p in c.policies {
            store.policy_attachments.insert((p, c.arn.clone()));
        }
        store.certificates.insert(
            c.id,
            Certificate {
                arn: c.arn,
                pem: c.pem,
                status: c.status,
                created: c.created,
                last_modified: c.last_modified,
                customer_version: c.customer_version,
            },
        );
    }
    let native = Arc::new(Native {
        dir: dir.to_path_buf(),
        authority,
        broker,
        reporting: Mutex::new(()),
    });
    let emu = Emulator {
        store: Arc::new(Mutex::new(store)),
        native: Some(native.clone()),
        ..Emulator::default()
    };
    native.report(&emu);
    Ok(emu)
}

/// Every (thing, certificate) where the certificate is ACTIVE, attached to the thing and has a
/// policy attached; by thing, then certificate ARN.
pub(crate) fn grants(store: &Store) -> Vec<Grant> {
    let with_policy: HashSet<&str> = store
        .policy_attachments
        .iter()
        .map(|(_, principal)| principal.as_str())
        .collect();
    let mut out = Vec::new();
    for (name, thing) in &store.things {
        for arn in &thing.principals {
            let Some(id) = cert_id_of(arn) else { continue };
            match store.certificates.get(id) {
                Some(c) if c.status == "ACTIVE" && with_policy.contains(arn.as_str()) => {
                    out.push(Grant {
                        thing: name.clone(),
                        certificate_id: id.to_string(),
                        certificate_pem: c.pem.clone(),
                    })
                }
                _ => {}
            }
        }
    }
    out
}

/// The id in `arn:aws:iot:<region>:<account>:cert/<id>`.
pub(crate) fn cert_id_of(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:aws:iot:")?;
    let (_, id) = rest.split_once(":cert/")?;
    valid_cert_id(id).then_some(id)
}

fn valid_cert_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// AWS's thing name pattern, `[a-zA-Z0-9:_-]+`, 1 to 128 characters.
fn check_thing_name(name: &str) -> Result<(), AwsError> {
    if (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
    {
        Ok(())
    } else {
        Err(AwsError::invalid(format!("invalid thing name {name:?}")))
    }
}

fn now() -> f64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    ms as f64 / 1000.0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The DER of the first certificate in a PEM text.
fn der_of_pem(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let len = pem[start..].find("-----END CERTIFICATE-----")?;
    let b64: String = pem[start..start + len]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

fn new_thing_id(name: &str) -> String {
    let h = hex(&Sha256::digest(format!("{name}/{}", now()).as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn io_error(e: io::Error) -> AwsError {
    AwsError::internal(format!("the emulator could not persist its state: {e}"))
}

impl Native {
    /// Writes (or removes) a thing's file.
    fn save_thing(&self, store: &Store, name: &str) -> Result<(), AwsError> {
        let path = self.dir.join(THINGS).join(format!("{name}.json"));
        match store.things.get(name) {
            None => remove(&path),
            Some(t) => {
                let f = ThingFile {
                    name: name.to_string(),
                    thing_id: t.thing_id.clone(),
                    version: t.version,
                    attributes: t.attributes.clone(),
                    principals: t.principals.clone(),
                };
                write_atomic(&path, &serde_json::to_vec_pretty(&f).unwrap_or_default())
            }
        }
        .map_err(io_error)
    }

    /// Writes (or removes) a certificate's file, its policy attachments included.
    fn save_cert(&self, store: &Store, id: &str) -> Result<(), AwsError> {
        let path = self.dir.join(CERTIFICATES).join(format!("{id}.json"));
        match store.certificates.get(id) {
            None => remove(&path),
            Some(c) => {
                let f = CertFile {
                    id: id.to_string(),
                    arn: c.arn.clone(),
                    pem: c.pem.clone(),
                    status: c.status.clone(),
                    created: c.created,
                    last_modified: c.last_modified,
                    customer_version: c.customer_version,
                    policies: policies_of(store, &c.arn),
                };
                write_atomic(&path, &serde_json::to_vec_pretty(&f).unwrap_or_default())
            }
        }
        .map_err(io_error)
    }

    /// Tells the broker the current grants.
    fn report(&self, emu: &Emulator) {
        let _turn = lock(&self.reporting);
        let grants = grants(&lock(&emu.store));
        self.broker.grants_changed(&grants);
    }

    /// Adds an issued certificate to the store.
    fn add_certificate(
        &self,
        emu: &Emulator,
        pem: String,
        region: &str,
        active: bool,
    ) -> Result<(String, String), AwsError> {
        let der = der_of_pem(&pem).ok_or_else(|| {
            AwsError::internal("the authority issued a certificate that is not PEM")
        })?;
        let id = hex(&Sha256::digest(&der));
        let arn = format!("arn:aws:iot:{region}:{ACCOUNT}:cert/{id}");
        let mut store = lock(&emu.store);
        if store.certificates.contains_key(&id) {
            return Err(AwsError::new(
                409,
                "ResourceAlreadyExistsException",
                format!("certificate {id} already exists"),
            ));
        }
        let t = now();
        store.certificates.insert(
            id.clone(),
            Certificate {
                arn: arn.clone(),
                pem,
                status: if active { "ACTIVE" } else { "INACTIVE" }.to_string(),
                created: t,
                last_modified: t,
                customer_version: 1,
            },
        );
        self.save_cert(&store, &id)?;
        Ok((id, arn))
    }

    /// RegisterThing's effects on the emulator's own store: the thing created if missing (its
    /// attributes merged otherwise), the certificate attached to it, the policies attached to
    /// the certificate, the certificate's status set. Checked before anything changes.
    pub(crate) fn register(&self, emu: &Emulator, p: &Plan) -> Result<(), AwsError> {
        {
            let mut store = lock(&emu.store);
            if let Some(name) = &p.thing {
                check_thing_name(name)?;
            }
            // The certificate's own ARN (its region is the one it was created in).
            let cert_arn = match &p.cert {
                None => None,
                Some((id, status)) => {
                    let c = store.certificates.get(id).ok_or_else(|| {
                        AwsError::invalid(format!("certificate {id} does not exist"))
                    })?;
                    if let Some(s) = status {
                        check_status(s)?;
                        if c.status == "REVOKED" && s != "REVOKED" {
                            return Err(AwsError::invalid(format!("certificate {id} is revoked")));
                        }
                    }
                    Some(c.arn.clone())
                }
            };
            if let Some((id, Some(s))) = &p.cert {
                store.certificate_status.insert(id.clone(), s.clone());
                if let Some(c) = store.certificates.get_mut(id) {
                    if c.status != *s {
                        c.status = s.clone();
                        c.last_modified = now();
                        c.customer_version += 1;
                    }
                }
            }
            if let Some(name) = &p.thing {
                let created = !store.things.contains_key(name);
                let t = store.things.entry(name.clone()).or_insert_with(|| Thing {
                    version: 1,
                    thing_id: new_thing_id(name),
                    ..Thing::default()
                });
                let before = t.attributes.clone();
                t.attributes.extend(p.attributes.clone());
                if !created && t.attributes != before {
                    t.version += 1;
                }
                if let Some(arn) = &cert_arn {
                    t.principals.insert(arn.clone());
                }
                self.save_thing(&store, name)?;
            }
            if let Some(arn) = &cert_arn {
                for policy in &p.policies {
                    store
                        .policy_attachments
                        .insert((policy.clone(), arn.clone()));
                }
            }
            if let Some((id, _)) = &p.cert {
                self.save_cert(&store, id)?;
            }
        }
        self.report(emu);
        Ok(())
    }
}

/// The policies attached to `principal`.
fn policies_of(store: &Store, principal: &str) -> BTreeSet<String> {
    store
        .policy_attachments
        .iter()
        .filter(|(_, p)| p == principal)
        .map(|(name, _)| name.clone())
        .collect()
}

/// The statuses a caller may set.
fn check_status(s: &str) -> Result<(), AwsError> {
    match s {
        "ACTIVE" | "INACTIVE" | "REVOKED" => Ok(()),
        "PENDING_TRANSFER" | "PENDING_ACTIVATION" | "REGISTER_INACTIVE" => Err(AwsError::invalid(
            format!("status {s} is for AWS IoT's internal use"),
        )),
        _ => Err(AwsError::invalid(format!("unknown certificate status {s}"))),
    }
}

/// The route handlers of native mode.
pub(crate) mod handlers {
    use super::*;
    use crate::{json_body, no_body, query, query_bool, region_of, Req, IOT, IOTDATA};
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use serde_json::{json, Value};

    /// Page sizes of the list operations.
    const DEFAULT_PAGE: usize = 25;
    const MAX_PAGE: usize = 250;

    fn ok() -> Result<Response, AwsError> {
        Ok(StatusCode::OK.into_response())
    }

    fn page_size(q: &BTreeMap<String, String>, name: &str) -> Result<usize, AwsError> {
        match q.get(name) {
            None => Ok(DEFAULT_PAGE),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| AwsError::invalid(format!("{name} must be 1 to {MAX_PAGE}"))),
        }
    }

    fn cert_id(id: &str) -> Result<(), AwsError> {
        if valid_cert_id(id) {
            Ok(())
        } else {
            Err(AwsError::invalid(format!(
                "certificateId {id:?} is not 64 hex digits"
            )))
        }
    }

    fn principal_header(req: &Req) -> Result<String, AwsError> {
        req.headers
            .get("x-amzn-principal")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| AwsError::invalid("x-amzn-principal is required"))
    }

    pub(crate) async fn create_certificate_from_csr(
        State(emu): State<Emulator>,
        req: Req,
    ) -> Response {
        const OP: &str = "CreateCertificateFromCsr";
        emu.run(OP, IOT, req, |emu, req| async move {
            let native = emu.native(OP)?.clone();
            let active = query_bool(&query(&req.uri, &["setAsActive"])?, "setAsActive")?;
            let body = json_body(&req, &["certificateSigningRequest"])?;
            let csr = body
                .get("certificateSigningRequest")
                .and_then(Value::as_str)
                .ok_or_else(|| AwsError::invalid("certificateSigningRequest is required"))?
                .to_string();
            let authority = native.authority.clone();
            let pem = tokio::task::spawn_blocking(move || authority.sign_csr(&csr))
                .await
                .map_err(|e| AwsError::internal(format!("the authority panicked: {e}")))?
                .map_err(AwsError::invalid)?;
            let (id, arn) =
                native.add_certificate(&emu, pem.clone(), &region_of(&req.headers), active)?;
            Ok(axum::Json(json!({
                "certificateArn": arn,
                "certificateId": id,
                "certificatePem": pem,
            }))
            .into_response())
        })
        .await
    }

    pub(crate) async fn create_keys_and_certificate(
        State(emu): State<Emulator>,
        req: Req,
    ) -> Response {
        const OP: &str = "CreateKeysAndCertificate";
        emu.run(OP, IOT, req, |emu, req| async move {
            let native = emu.native(OP)?.clone();
            let active = query_bool(&query(&req.uri, &["setAsActive"])?, "setAsActive")?;
            no_body(&req)?;
            let authority = native.authority.clone();
            let (pem, private_key, public_key) =
                tokio::task::spawn_blocking(move || authority.create_keys_and_certificate())
                    .await
                    .map_err(|e| AwsError::internal(format!("the authority panicked: {e}")))?
                    .map_err(AwsError::internal)?;
            let (id, arn) =
                native.add_certificate(&emu, pem.clone(), &region_of(&req.headers), active)?;
            Ok(axum::Json(json!({
                "certificateArn": arn,
                "certificateId": id,
                "certificatePem": pem,
                "keyPair": { "PublicKey": public_key, "PrivateKey": private_key },
            }))
            .into_response())
        })
        .await
    }

    pub(crate) async fn describe_certificate(
        State(emu): State<Emulator>,
        Path(id): Path<String>,
        req: Req,
    ) -> Response {
        const OP: &str = "DescribeCertificate";
        emu.run(OP, IOT, req, |emu, req| async move {
            emu.native(OP)?;
            query(&req.uri, &[])?;
            no_body(&req)?;
            cert_id(&id)?;
            let store = lock(&emu.store);
            let c = store
                .certificates
                .get(&id)
                .ok_or_else(|| AwsError::not_found(format!("certificate {id} does not exist")))?;
            Ok(axum::Json(json!({
                "certificateDescription": {
                    "certificateArn": c.arn,
                    "certificateId": id,
                    "status": c.status,
                    "certificatePem": c.pem,
                    "ownedBy": ACCOUNT,
                    "creationDate": c.created,
                    "lastModifiedDate": c.last_modified,
                    "customerVersion": c.customer_version,
                    "generationId": format!("{}-{}", &id[..16], c.customer_version),
                    "certificateMode": "DEFAULT",
                }
            }))
            .into_response())
        })
        .await
    }

    pub(crate) async fn update_certificate(
        State(emu): State<Emulator>,
        Path(id): Path<String>,
        req: Req,
    ) -> Response {
        const OP: &str = "UpdateCertificate";
        emu.run(OP, IOT, req, |emu, req| async move {
            let native = emu.native(OP)?.clone();
            let q = query(&req.uri, &["newStatus"])?;
            no_body(&req)?;
            cert_id(&id)?;
            let status = q
                .get("newStatus")
                .ok_or_else(|| AwsError::invalid("newStatus is required"))?;
            check_status(status)?;
            {
                let mut store = lock(&emu.store);
                let c = store.certificates.get_mut(&id).ok_or_else(|| {
                    AwsError::not_found(format!("certificate {id} does not exist"))
                })?;
                if c.status == *status {
                    return ok();
                }
                if c.status == "REVOKED" {
                    return Err(AwsError::new(
                        406,
                        "CertificateStateException",
                        format!("certificate {id} is revoked and cannot become {status}"),
                    ));
                }
                c.status = status.clone();
                c.last_modified = now();
                c.customer_version += 1;
                native.save_cert(&store, &id)?;
            }
            native.report(&emu);
            ok()
        })
        .await
    }

    pub(crate) async fn delete_certificate(
        State(emu): State<Emulator>,
        Path(id): Path<String>,
        req: Req,
    ) -> Response {
        const OP: &str = "DeleteCertificate";
        emu.run(OP, IOT, req, |emu, req| async move {
            let native = emu.native(OP)?.clone();
            let force = query_bool(&query(&req.uri, &["forceDelete"])?, "forceDelete")?;
            no_body(&req)?;
            cert_id(&id)?;
            let mut store = lock(&emu.store);
            let c = store
                .certificates
                .get(&id)
                .ok_or_else(|| AwsError::not_found(format!("certificate {id} does not exist")))?;
            let arn = c.arn.clone();
            if c.status == "ACTIVE" {
                return Err(AwsError::new(
                    406,
                    "CertificateStateException",
                    format!(
                        "Certificate must be deactivated (not ACTIVE) before deletion. Id: {id}"
                    ),
                ));
            }
            if store.things.values().any(|t| t.principals.contains(&arn)) {
                return Err(AwsError::new(
                    409,
                    "DeleteConflictException",
                    format!("Things must be detached before deletion (arn: {arn})"),
                ));
            }
            let policies = policies_of(&store, &arn);
            if !policies.is_empty() && !force {
                return Err(AwsError::new(
                    409,
                    "DeleteConflictException",
                    format!("Certificate policies must be detached before deletion (arn: {arn})"),
                ));
            }
            for p in policies {
                store.policy_attachments.remove(&(p, arn.clone()));
            }
            store.certificates.remove(&id);
            native.save_cert(&store, &id)?;
            ok()
        })
        .await
    }

    pub(crate) async fn list_attached_policies(
        State(emu): State<Emulator>,
        Path(target): Path<String>,
        req: Req,
    ) -> Response {
        const OP: &str = "ListAttachedPolicies";
        emu.run(OP, IOT, req, |emu, req| async move {
            emu.native(OP)?;
            let q = query(&req.uri, &["recursive", "marker", "pageSize"])?;
            query_bool(&q, "recursive")?;
            let size = page_size(&q, "pageSize")?;
            no_body(&req)?;
            let region = region_of(&req.headers);
            let store = lock(&emu.store);
            let names: Vec<String> = policies_of(&store, &target)
                .into_iter()
                .filter(|n| q.get("marker").is_none_or(|m| n > m))
                .collect();
            let page = &names[..names.len().min(size)];
            let mut out = json!({
                "policies": page.iter().map(|n| json!({
                    "policyName": n,
                    "policyArn": format!("arn:aws:iot:{region}:{ACCOUNT}:policy/{n}"),
                })).collect::<Vec<_>>(),
            });
            if names.len() > size {
                out["nextMarker"] = json!(page.last());
            }
            Ok(axum::Json(out).into_response())
        })
        .await
    }

    pub(crate) async fn detach_policy(
        State(emu): State<Emulator>,
        Path(policy): Path<String>,
        req: Req,
    ) -> Response {
        const OP: &str = "DetachPolicy";
        emu.run(OP, IOT, req, |emu, req| async move {
            let native = emu.native(OP)?.clone();
            query(&req.uri, &[])?;
            let body = json_body(&req, &["target"])?;
            let target = body
                .get("target")
                .and_then(Value::as_str)
                .ok_or_else(|| AwsError::invalid("target is required"))?
                .to_string();
            let changed = {
                let mut store = lock(&emu.store);
                let changed = store
                    .policy_attachments
                    .remove(&(policy.clone(), target.clone()));
                if let Some(id) = cert_id_of(&target) {
                    if changed && store.certificates.contains_key(id) {
                        native.save_cert(&store, id)?;
                    }
                }
                changed
            };
            if changed {
                native.report(&emu);
            }
            ok()
        })
        .await
    }

    pub(crate) async fn list_principal_things(State(emu): State<Emulator>, req: Req) -> Response {
        const OP: &str = "ListPrincipalThings";
        emu.run(OP, IOT, req, |emu, req| async move {
            emu.native(OP)?;
            let q = query(&req.uri, &["nextToken", "maxResults"])?;
            let size = page_size(&q, "maxResults")?;
            no_body(&req)?;
            let principal = principal_header(&req)?;
            let store = lock(&emu.store);
            let names: Vec<&String> = store
                .things
                .iter()
                .filter(|(n, t)| {
                    t.principals.contains(&principal)
                        && q.get("nextToken").is_none_or(|tok| *n > tok)
                })
                .map(|(n, _)| n)
                .collect();
            let page = &names[..names.len().min(size)];
            let mut out = json!({ "things": page });
            if names.len() > size {
                out["nextToken"] = json!(page.last());
            }
            Ok(axum::Json(out).into_response())
        })
        .await
    }

    pub(crate) async fn detach_thing_principal(
        State(emu): State<Emulator>,
        Path(thing): Path<String>,
        req: Req,
    ) -> Response {
        const OP: &str = "DetachThingPrincipal";
        emu.run(OP, IOT, req, |emu, req| async move {
            let native = emu.native(OP)?.clone();
            query(&req.uri, &[])?;
            no_body(&req)?;
            let principal = principal_header(&req)?;
            let changed = {
                let mut store = lock(&emu.store);
                let t = store
                    .things
                    .get_mut(&thing)
                    .ok_or_else(|| AwsError::not_found(format!("thing {thing} does not exist")))?;
                let changed = t.principals.remove(&principal);
                if changed {
                    native.save_thing(&store, &thing)?;
                }
                changed
            };
            if changed {
                native.report(&emu);
            }
            ok()
        })
        .await
    }

    pub(crate) async fn describe_thing(
        State(emu): State<Emulator>,
        Path(thing): Path<String>,
        req: Req,
    ) -> Response {
        const OP: &str = "DescribeThing";
        emu.run(OP, IOT, req, |emu, req| async move {
            emu.native(OP)?;
            query(&req.uri, &[])?;
            no_body(&req)?;
            let region = region_of(&req.headers);
            let store = lock(&emu.store);
            let t = store
                .things
                .get(&thing)
                .ok_or_else(|| AwsError::not_found(format!("thing {thing} does not exist")))?;
            Ok(axum::Json(json!({
                "defaultClientId": thing,
                "thingName": thing,
                "thingId": t.thing_id,
                "thingArn": format!("arn:aws:iot:{region}:{ACCOUNT}:thing/{thing}"),
                "attributes": t.attributes,
                "version": t.version,
            }))
            .into_response())
        })
        .await
    }

    pub(crate) async fn delete_thing(
        State(emu): State<Emulator>,
        Path(thing): Path<String>,
        req: Req,
    ) -> Response {
        const OP: &str = "DeleteThing";
        emu.run(OP, IOT, req, |emu, req| async move {
            let native = emu.native(OP)?.clone();
            let q = query(&req.uri, &["expectedVersion"])?;
            no_body(&req)?;
            let mut store = lock(&emu.store);
            // AWS: "Returns successfully with no error if the deletion is successful or you
            // specify a thing that doesn't exist."
            let Some(t) = store.things.get(&thing) else {
                return ok();
            };
            if let Some(v) = q.get("expectedVersion") {
                if v.parse::<u64>().ok() != Some(t.version) {
                    return Err(AwsError::new(
                        409,
                        "VersionConflictException",
                        format!("thing {thing} is at version {}, not {v}", t.version),
                    ));
                }
            }
            if !t.principals.is_empty() {
                return Err(AwsError::invalid(format!(
                    "Cannot delete. Thing {thing} is still attached to one or more principals"
                )));
            }
            store.things.remove(&thing);
            native.save_thing(&store, &thing)?;
            ok()
        })
        .await
    }

    pub(crate) async fn describe_endpoint(State(emu): State<Emulator>, req: Req) -> Response {
        const OP: &str = "DescribeEndpoint";
        emu.run(OP, IOT, req, |emu, req| async move {
            emu.native(OP)?;
            let q = query(&req.uri, &["endpointType"])?;
            no_body(&req)?;
            match q.get("endpointType").map(String::as_str) {
                None
                | Some("iot:Data" | "iot:Data-ATS" | "iot:CredentialProvider" | "iot:Jobs") => {}
                Some(t) => return Err(AwsError::invalid(format!("unknown endpointType {t}"))),
            }
            let host = req
                .headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| AwsError::invalid("no Host header"))?;
            Ok(axum::Json(json!({ "endpointAddress": host })).into_response())
        })
        .await
    }

    /// The topic rules of AWS IoT's message broker (protocol limits).
    fn check_topic(topic: &str) -> Result<(), AwsError> {
        if topic.is_empty() || topic.len() > 256 {
            return Err(AwsError::invalid("topic must be 1 to 256 bytes"));
        }
        if topic.contains(['+', '#', '\0']) {
            return Err(AwsError::invalid(format!(
                "topic {topic:?} has a wildcard or NUL"
            )));
        }
        if topic.matches('/').count() > 7 {
            return Err(AwsError::invalid(format!(
                "topic {topic:?} has more than 7 slashes"
            )));
        }
        Ok(())
    }

    pub(crate) async fn publish(
        State(emu): State<Emulator>,
        Path(topic): Path<String>,
        req: Req,
    ) -> Response {
        const OP: &str = "Publish";
        emu.run(OP, IOTDATA, req, |emu, req| async move {
            let native = emu.native(OP)?.clone();
            let q = query(
                &req.uri,
                &[
                    "qos",
                    "retain",
                    "contentType",
                    "responseTopic",
                    "messageExpiry",
                ],
            )?;
            query_bool(&q, "retain")?;
            let qos = match q.get("qos").map(String::as_str) {
                None | Some("0") => 0,
                Some("1") => 1,
                Some(v) => return Err(AwsError::invalid(format!("qos {v} is not 0 or 1"))),
            };
            check_topic(&topic)?;
            if req.body.len() > 128 * 1024 {
                return Err(AwsError::new(
                    413,
                    "RequestEntityTooLargeException",
                    "payload over 128 KB",
                ));
            }
            native
                .broker
                .publish(&topic, req.body.to_vec(), qos)
                .await
                .map_err(|e| AwsError::internal(format!("broker: {e}")))?;
            ok()
        })
        .await
    }
}
