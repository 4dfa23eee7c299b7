//! chunkprov's own **emulator** of the AWS IoT control-plane operations that moto does not
//! implement: `DescribeProvisioningTemplate` and `RegisterThing`. It is a stand-in for AWS, used
//! by the tests and (later) the local stack; it is not AWS and does not pretend to be complete.
//!
//! It answers on 127.0.0.1 in AWS IoT's REST/JSON shapes (`GET /provisioning-templates/{name}`,
//! `POST /things`), and checks that each request is exactly what the AWS SDK sends: SigV4
//! `Authorization` for the `iot` service, `X-Amz-Date`, a JSON body with only the members the
//! operation defines. A request it does not understand is answered with an error, never
//! guessed at. Errors carry `x-amzn-ErrorType` as AWS's do, so the SDK classifies them.
//!
//! RegisterThing's effects (thing, attributes, thing principal, policy attachment, certificate
//! status) go to the emulator's [`Store`] and, with [`Emulator::with_backend`], to a control
//! plane that holds the certificates (moto_server in the tests), so cleanup after a partial
//! failure meets the same attachments it would in AWS.
//!
//! Built to grow: every operation is a route over one [`Store`], every request is recorded
//! ([`Emulator::requests`]), and any operation can be made to fail ([`Emulator::fail`]). The
//! local stack will add a CA that signs CSRs, the data plane and topic rules as further routes
//! over the same store.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The account id the emulator reports in ARNs.
pub const ACCOUNT: &str = "123456789012";

/// A provisioning template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The template body (JSON text).
    pub body: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// The provisioning role ARN.
    pub role_arn: String,
}

/// A request the emulator received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The operation it was taken for (`RegisterThing`, …) or `Unknown`.
    pub operation: String,
    /// Method and path.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Lower-cased header names and values.
    pub headers: BTreeMap<String, String>,
    /// The body, parsed as JSON if it is JSON.
    pub body: Value,
}

/// What a thing looks like in the emulator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thing {
    /// Attributes from the template's `AttributePayload`.
    pub attributes: BTreeMap<String, String>,
    /// Attached principals (certificate ARNs).
    pub principals: BTreeSet<String>,
}

/// A failure to inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// HTTP status.
    pub status: u16,
    /// `x-amzn-ErrorType`, e.g. `ThrottlingException`.
    pub error_type: String,
}

/// Everything the emulator holds.
#[derive(Debug, Default)]
pub struct Store {
    /// Provisioning templates by name.
    pub templates: BTreeMap<String, Template>,
    /// Things by name.
    pub things: BTreeMap<String, Thing>,
    /// (policy name, principal ARN) attachments made by templates.
    pub policy_attachments: BTreeSet<(String, String)>,
    /// Certificate ids a template asked to be set to a status (id → status).
    pub certificate_status: BTreeMap<String, String>,
    /// Every request, in order.
    pub requests: Vec<Recorded>,
    /// Injected failures by operation.
    pub faults: HashMap<String, VecDeque<Fault>>,
    /// Injected failures returned after the operation took effect (a lost response).
    pub faults_after: HashMap<String, VecDeque<Fault>>,
}

/// The emulator: cheap to clone, all clones share one [`Store`].
#[derive(Clone, Default)]
pub struct Emulator {
    store: Arc<Mutex<Store>>,
    backend: Option<aws_sdk_iot::Client>,
}

/// A running emulator; stops when dropped.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    /// The endpoint URL to give an SDK client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An AWS-shaped error response.
#[derive(Debug)]
pub struct AwsError {
    status: StatusCode,
    error_type: String,
    message: String,
}

impl AwsError {
    fn new(status: u16, error_type: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error_type: error_type.to_string(),
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidRequestException", message)
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        (
            self.status,
            [
                ("x-amzn-ErrorType", self.error_type.clone()),
                ("content-type", "application/json".to_string()),
            ],
            json!({ "message": self.message }).to_string(),
        )
            .into_response()
    }
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

impl Emulator {
    /// An empty emulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// An emulator that also applies RegisterThing's effects (create the thing, attach the
    /// policy and the thing principal, set the certificate's status) through `backend`, an
    /// IoT control plane that holds the certificates (moto_server in tests; AWS would do all
    /// of this itself).
    pub fn with_backend(backend: aws_sdk_iot::Client) -> Self {
        Self {
            store: Arc::default(),
            backend: Some(backend),
        }
    }

    /// The next `times` requests for `operation` take effect, then fail with this status and
    /// error type (as when AWS did the work but the answer was lost).
    pub fn fail_after_effects(&self, operation: &str, status: u16, error_type: &str, times: usize) {
        let f = Fault {
            status,
            error_type: error_type.to_string(),
        };
        lock(&self.store)
            .faults_after
            .entry(operation.to_string())
            .or_default()
            .extend(std::iter::repeat_n(f, times));
    }

    /// Adds (or replaces) a provisioning template.
    pub fn put_template(&self, name: &str, body: &str, enabled: bool) {
        lock(&self.store).templates.insert(
            name.to_string(),
            Template {
                body: body.to_string(),
                enabled,
                role_arn: format!("arn:aws:iam::{ACCOUNT}:role/chunkprov-provisioning"),
            },
        );
    }

    /// The next `times` requests for `operation` fail with this status and error type.
    pub fn fail(&self, operation: &str, status: u16, error_type: &str, times: usize) {
        let f = Fault {
            status,
            error_type: error_type.to_string(),
        };
        lock(&self.store)
            .faults
            .entry(operation.to_string())
            .or_default()
            .extend(std::iter::repeat_n(f, times));
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.store).requests.clone()
    }

    /// A thing, if the emulator holds it.
    pub fn thing(&self, name: &str) -> Option<Thing> {
        lock(&self.store).things.get(name).cloned()
    }

    /// Reads the store.
    pub fn with_store<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&lock(&self.store))
    }

    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/provisioning-templates/{name}",
                get(describe_provisioning_template),
            )
            .route("/things", post(register_thing))
            .fallback(unknown)
            .method_not_allowed_fallback(unknown)
            .with_state(self.clone())
    }

    /// Serves on `addr` (use port 0 for a free one) until the returned handle is dropped.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<Running> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = self.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Running {
            addr,
            shutdown: Some(tx),
        })
    }

    /// Records a request, checks what every SDK request carries, and applies injected faults.
    fn admit(
        &self,
        operation: &str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), AwsError> {
        let mut store = lock(&self.store);
        let hdrs: BTreeMap<String, String> = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let parsed = serde_json::from_slice(body).unwrap_or(Value::Null);
        store.requests.push(Recorded {
            operation: operation.to_string(),
            method: method.to_string(),
            path: uri.to_string(),
            headers: hdrs.clone(),
            body: parsed,
        });
        let auth = hdrs.get("authorization").map(String::as_str).unwrap_or("");
        if !auth.starts_with("AWS4-HMAC-SHA256 Credential=")
            || !auth.contains("/iot/aws4_request")
            || !auth.contains("SignedHeaders=")
            || !auth.contains("Signature=")
        {
            return Err(AwsError::new(
                403,
                "UnauthorizedException",
                "request not SigV4-signed for the iot service",
            ));
        }
        if !hdrs.contains_key("x-amz-date") {
            return Err(AwsError::new(403, "UnauthorizedException", "no X-Amz-Date"));
        }
        if let Some(f) = store
            .faults
            .get_mut(operation)
            .and_then(VecDeque::pop_front)
        {
            return Err(AwsError::new(
                f.status,
                &f.error_type,
                "injected by the emulator",
            ));
        }
        Ok(())
    }
}

fn region_of(headers: &HeaderMap) -> String {
    // Credential=AKID/20250101/eu-west-1/iot/aws4_request
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or("us-east-1")
        .to_string()
}

async fn unknown(method: Method, uri: Uri) -> AwsError {
    AwsError::new(
        404,
        "UnknownOperationException",
        format!("the emulator does not implement {method} {uri}"),
    )
}

async fn describe_provisioning_template(
    State(emu): State<Emulator>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AwsError> {
    emu.admit(
        "DescribeProvisioningTemplate",
        &method,
        &uri,
        &headers,
        &body,
    )?;
    if !body.is_empty() || uri.query().is_some() {
        return Err(AwsError::invalid(
            "DescribeProvisioningTemplate takes no body or query",
        ));
    }
    let region = region_of(&headers);
    let store = lock(&emu.store);
    let t = store.templates.get(&name).ok_or_else(|| {
        AwsError::new(
            404,
            "ResourceNotFoundException",
            format!("no template {name}"),
        )
    })?;
    Ok(axum::Json(json!({
        "templateArn": format!("arn:aws:iot:{region}:{ACCOUNT}:provisioningtemplate/{name}"),
        "templateName": name,
        "description": "chunkprov device provisioning",
        "creationDate": 1_700_000_000.0,
        "lastModifiedDate": 1_700_000_000.0,
        "defaultVersionId": 1,
        "templateBody": t.body,
        "enabled": t.enabled,
        "provisioningRoleArn": t.role_arn,
        "type": "FLEET_PROVISIONING",
    }))
    .into_response())
}

/// Resolves `{"Ref": "Param"}` or a literal string.
fn resolve(v: &Value, params: &Map<String, Value>) -> Result<String, AwsError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Object(o) if o.len() == 1 && o.contains_key("Ref") => {
            let name = o["Ref"].as_str().unwrap_or_default();
            params
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| AwsError::invalid(format!("Ref to unknown parameter {name}")))
        }
        _ => Err(AwsError::invalid(
            "the emulator resolves only strings and Ref",
        )),
    }
}

async fn register_thing(
    State(emu): State<Emulator>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AwsError> {
    emu.admit("RegisterThing", &method, &uri, &headers, &body)?;
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return Err(AwsError::invalid("content-type must be application/json"));
    }
    let req: Value = serde_json::from_slice(&body)
        .map_err(|_| AwsError::new(400, "SerializationException", "body is not JSON"))?;
    let req = req
        .as_object()
        .ok_or_else(|| AwsError::invalid("body is not an object"))?;
    if let Some(k) = req
        .keys()
        .find(|k| !matches!(k.as_str(), "templateBody" | "parameters"))
    {
        return Err(AwsError::invalid(format!("unknown member {k}")));
    }
    let body_text = req
        .get("templateBody")
        .and_then(Value::as_str)
        .ok_or_else(|| AwsError::invalid("templateBody is required"))?;
    let empty = Map::new();
    let params = match req.get("parameters") {
        None => &empty,
        Some(Value::Object(p)) if p.values().all(Value::is_string) => p,
        Some(_) => return Err(AwsError::invalid("parameters must map strings to strings")),
    };
    let template: Value = serde_json::from_str(body_text)
        .map_err(|_| AwsError::invalid("templateBody is not JSON"))?;
    let declared = template
        .get("Parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut resolved = params.clone();
    for (name, decl) in &declared {
        if !resolved.contains_key(name) {
            match decl.get("Default") {
                Some(d) => {
                    resolved.insert(name.clone(), d.clone());
                }
                None => return Err(AwsError::invalid(format!("parameter {name} is required"))),
            }
        }
    }
    if let Some(k) = params.keys().find(|k| !declared.contains_key(*k)) {
        return Err(AwsError::invalid(format!("parameter {k} is not declared")));
    }
    let resources = template
        .get("Resources")
        .and_then(Value::as_object)
        .ok_or_else(|| AwsError::invalid("template has no Resources"))?;
    let region = region_of(&headers);
    // Plan every effect before applying any: a bad template changes nothing.
    let mut thing_name = None;
    let mut attributes = BTreeMap::new();
    let mut cert = None;
    let mut policies = Vec::new();
    let mut arns = Map::new();
    for (logical, r) in resources {
        let props = r.get("Properties").cloned().unwrap_or(json!({}));
        match r.get("Type").and_then(Value::as_str) {
            Some("AWS::IoT::Thing") => {
                let name = resolve(
                    props
                        .get("ThingName")
                        .ok_or_else(|| AwsError::invalid("Thing without ThingName"))?,
                    &resolved,
                )?;
                if let Some(Value::Object(a)) = props
                    .get("AttributePayload")
                    .and_then(|p| p.get("attributes"))
                {
                    for (k, v) in a {
                        attributes.insert(k.clone(), resolve(v, &resolved)?);
                    }
                }
                arns.insert(
                    logical.clone(),
                    json!(format!("arn:aws:iot:{region}:{ACCOUNT}:thing/{name}")),
                );
                thing_name = Some(name);
            }
            Some("AWS::IoT::Certificate") => {
                let id = resolve(
                    props
                        .get("CertificateId")
                        .ok_or_else(|| AwsError::invalid("Certificate without CertificateId"))?,
                    &resolved,
                )?;
                let status = props
                    .get("Status")
                    .map(|s| resolve(s, &resolved))
                    .transpose()?;
                arns.insert(
                    logical.clone(),
                    json!(format!("arn:aws:iot:{region}:{ACCOUNT}:cert/{id}")),
                );
                cert = Some((id, status));
            }
            Some("AWS::IoT::Policy") => {
                let name = resolve(
                    props
                        .get("PolicyName")
                        .ok_or_else(|| AwsError::invalid("the emulator needs PolicyName"))?,
                    &resolved,
                )?;
                arns.insert(
                    logical.clone(),
                    json!(format!("arn:aws:iot:{region}:{ACCOUNT}:policy/{name}")),
                );
                policies.push(name);
            }
            other => {
                return Err(AwsError::invalid(format!(
                    "resource {logical}: type {other:?} not supported"
                )))
            }
        }
    }
    let cert_arn = cert
        .as_ref()
        .map(|(id, _)| format!("arn:aws:iot:{region}:{ACCOUNT}:cert/{id}"));
    if let Some(backend) = &emu.backend {
        apply(
            backend,
            thing_name.as_deref(),
            &attributes,
            cert.as_ref(),
            &policies,
        )
        .await
        .map_err(|m| AwsError::new(500, "InternalFailureException", m))?;
    }
    let mut store = lock(&emu.store);
    if let Some((id, Some(status))) = &cert {
        store.certificate_status.insert(id.clone(), status.clone());
    }
    if let Some(name) = &thing_name {
        let t = store.things.entry(name.clone()).or_default();
        t.attributes.extend(attributes);
        if let Some(arn) = &cert_arn {
            t.principals.insert(arn.clone());
        }
    }
    if let Some(arn) = &cert_arn {
        for p in policies {
            store.policy_attachments.insert((p, arn.clone()));
        }
    }
    if let Some(f) = store
        .faults_after
        .get_mut("RegisterThing")
        .and_then(VecDeque::pop_front)
    {
        return Err(AwsError::new(
            f.status,
            &f.error_type,
            "injected after the effects",
        ));
    }
    Ok(axum::Json(json!({ "resourceArns": arns })).into_response())
}

/// RegisterThing's effects on a backend control plane.
async fn apply(
    iot: &aws_sdk_iot::Client,
    thing: Option<&str>,
    attributes: &BTreeMap<String, String>,
    cert: Option<&(String, Option<String>)>,
    policies: &[String],
) -> Result<(), String> {
    use aws_sdk_iot::types::{AttributePayload, CertificateStatus};
    let arn = match cert {
        Some((id, _)) => Some(
            iot.describe_certificate()
                .certificate_id(id)
                .send()
                .await
                .map_err(|e| format!("backend DescribeCertificate: {e}"))?
                .certificate_description()
                .and_then(|d| d.certificate_arn())
                .ok_or("backend: certificate without ARN")?
                .to_string(),
        ),
        None => None,
    };
    if let Some(thing) = thing {
        if iot.describe_thing().thing_name(thing).send().await.is_err() {
            let mut payload = AttributePayload::builder();
            for (k, v) in attributes {
                payload = payload.attributes(k, v);
            }
            iot.create_thing()
                .thing_name(thing)
                .attribute_payload(payload.build())
                .send()
                .await
                .map_err(|e| format!("backend CreateThing: {e}"))?;
        }
        if let Some(arn) = &arn {
            iot.attach_thing_principal()
                .thing_name(thing)
                .principal(arn)
                .send()
                .await
                .map_err(|e| format!("backend AttachThingPrincipal: {e}"))?;
        }
    }
    if let Some(arn) = &arn {
        for p in policies {
            iot.attach_policy()
                .policy_name(p)
                .target(arn)
                .send()
                .await
                .map_err(|e| format!("backend AttachPolicy: {e}"))?;
        }
    }
    if let Some((id, Some(status))) = cert {
        iot.update_certificate()
            .certificate_id(id)
            .new_status(CertificateStatus::from(status.as_str()))
            .send()
            .await
            .map_err(|e| format!("backend UpdateCertificate: {e}"))?;
    }
    Ok(())
}
