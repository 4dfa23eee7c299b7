//! chunkprov's own **emulator** of the AWS IoT operations the provisioning Lambda uses. It is a
//! stand-in for AWS, for the tests and the local stack; it is not AWS and does not pretend to be
//! complete.
//!
//! # What it emulates
//!
//! It answers on 127.0.0.1 in AWS IoT's REST/JSON shapes and checks that each request is exactly
//! what the AWS SDK sends: SigV4 `Authorization` for the right service (`iot` for the control
//! plane, `iotdata` for Publish), `X-Amz-Date`, only the query parameters and JSON members the
//! operation defines. A request it does not understand is answered with an error, never guessed
//! at; an operation it does not have answers `UnknownOperationException`. Errors carry
//! `x-amzn-ErrorType` and AWS's status codes, so the SDK classifies them as it would AWS's.
//!
//! Two modes:
//!
//! - [`Emulator::new`] / [`Emulator::with_backend`]: only `DescribeProvisioningTemplate` and
//!   `RegisterThing` (what moto lacks). RegisterThing's effects go to the in-memory [`Store`]
//!   and, with a backend, to a control plane that holds the certificates (moto_server in the
//!   tests).
//! - [`Emulator::open`] (native mode): the emulator itself holds certificates and things,
//!   persisted under a directory, and serves every operation the Lambda calls:
//!   `CreateCertificateFromCsr`, `CreateKeysAndCertificate` (through an [`Authority`]),
//!   `DescribeCertificate`, `UpdateCertificate`, `DeleteCertificate`, `ListAttachedPolicies`,
//!   `DetachPolicy`, `ListPrincipalThings`, `DetachThingPrincipal`, `DescribeThing`,
//!   `DeleteThing`, `DescribeEndpoint`, `DescribeProvisioningTemplate`, `RegisterThing`, and the
//!   iot-data `Publish`, handed to a [`Broker`]. After every change that can alter who may act as
//!   a thing, the broker is told the whole set of [`Grant`]s.
//!
//! Every operation can be rate limited ([`Emulator::rate_limit`], [`Emulator::aws_rates`] with
//! [`AWS_RATES`]), slowed ([`Emulator::latency`]), made to fail before or after its effects
//! ([`Emulator::fail`], [`Emulator::fail_after_effects`]) and counted ([`Emulator::stats`]);
//! requests are recorded, the newest [`RECORD_LIMIT`] of them, unless switched off
//! ([`Emulator::record_requests`]).
//!
//! # What it does not emulate
//!
//! - No MQTT: it neither accepts device connections nor delivers messages itself. Publish goes
//!   to the [`Broker`] (the local Mosquitto), which also enforces who may connect and publish.
//! - No policy evaluation: policies are names only (no documents, no `CreatePolicy`; any name a
//!   template or a call gives is accepted). The broker's ACLs, built from the grants, enforce.
//! - No SigV4 signature verification (the header's shape is checked, not the signature), no IAM.
//! - Only the operations listed above, and of provisioning templates only what chunkprov's
//!   template uses (`Ref`, `AWS::IoT::Thing` / `Certificate` / `Policy` by name). Templates are
//!   not persisted; `put_template` them after [`Emulator::open`].
//! - No rules engine, shadows, jobs, thing types or groups, no certificate validity or CRLs.

mod limits;
mod native;
mod provisioning;

pub use limits::{OpStats, AWS_RATES};
pub use native::{Authority, Broker, Grant};

use axum::body::Bytes;
use axum::extract::FromRequest;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use limits::{Bucket, Control};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The fleet-provisioning template body as a CloudFormation template declares it: the block
/// under the first `TemplateBody: !Sub |`, unindented, with `${DevicePolicy}` replaced by
/// `device_policy`. `deploy/template.yaml` is read this way by the tests and the local stack,
/// so they register things with exactly what the deployment installs.
pub fn cloudformation_template_body(yaml: &str, device_policy: &str) -> Result<String, String> {
    let start = yaml
        .find("TemplateBody: !Sub |")
        .ok_or("no `TemplateBody: !Sub |` in the template")?;
    let mut lines = yaml[start..].lines().skip(1);
    let first = lines.next().unwrap_or_default();
    let indent = first.len() - first.trim_start().len();
    let mut body = String::from(first.trim_start());
    for l in lines {
        if !l.trim().is_empty() && l.len() - l.trim_start().len() < indent {
            break;
        }
        body.push('\n');
        body.push_str(l.get(indent..).unwrap_or(""));
    }
    let body = body.replace("${DevicePolicy}", device_policy);
    serde_json::from_str::<Value>(&body)
        .map_err(|e| format!("the template body is not JSON: {e}"))?;
    Ok(body)
}

/// The account id the emulator reports in ARNs.
pub const ACCOUNT: &str = "123456789012";

/// How many requests [`Emulator::requests`] keeps (the newest).
pub const RECORD_LIMIT: usize = 10_000;

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
    /// The operation it was taken for (`RegisterThing`, …).
    pub operation: String,
    /// The HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Lower-cased header names and values.
    pub headers: BTreeMap<String, String>,
    /// The body, parsed as JSON if it is JSON (else `Null`).
    pub body: Value,
}

/// What a thing looks like in the emulator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thing {
    /// Attributes (from the template's `AttributePayload`).
    pub attributes: BTreeMap<String, String>,
    /// Attached principals (certificate ARNs).
    pub principals: BTreeSet<String>,
    /// The thing's version (1 when created, +1 when its attributes change).
    pub version: u64,
    /// The thing's id (a UUID).
    pub thing_id: String,
}

/// A certificate held by the emulator (native mode).
#[derive(Debug, Clone, PartialEq)]
pub struct Certificate {
    /// `arn:aws:iot:<region>:123456789012:cert/<id>`.
    pub arn: String,
    /// The certificate, PEM, as the [`Authority`] issued it.
    pub pem: String,
    /// `ACTIVE`, `INACTIVE` or `REVOKED`.
    pub status: String,
    /// Creation time, seconds since the epoch.
    pub created: f64,
    /// Last change, seconds since the epoch.
    pub last_modified: f64,
    /// 1 when created, +1 on every status change.
    pub customer_version: u64,
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
    /// (policy name, principal ARN) attachments.
    pub policy_attachments: BTreeSet<(String, String)>,
    /// Certificate ids a template asked to be set to a status (id → status).
    pub certificate_status: BTreeMap<String, String>,
    /// Certificates by id (native mode).
    pub certificates: BTreeMap<String, Certificate>,
    /// The newest [`RECORD_LIMIT`] requests, in order.
    pub requests: VecDeque<Recorded>,
    /// Injected failures by operation.
    pub faults: HashMap<String, VecDeque<Fault>>,
    /// Injected failures returned after the operation took effect (a lost response).
    pub faults_after: HashMap<String, VecDeque<Fault>>,
}

/// The emulator: cheap to clone, all clones share one [`Store`].
#[derive(Clone, Default)]
pub struct Emulator {
    pub(crate) store: Arc<Mutex<Store>>,
    pub(crate) backend: Option<aws_sdk_iot::Client>,
    pub(crate) native: Option<Arc<native::Native>>,
    control: Arc<Mutex<Control>>,
}

/// A running emulator; stops when dropped.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    /// The endpoint URL to give an SDK client (control plane and data plane alike).
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
    pub(crate) fn new(status: u16, error_type: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error_type: error_type.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidRequestException", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "ResourceNotFoundException", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalFailureException", message)
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

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request as the handlers see it.
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Req {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 4 << 20)
            .await
            .map_err(|_| AwsError::invalid("body unreadable or over 4 MiB").into_response())?;
        Ok(Self {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}

/// SigV4 service names.
pub(crate) const IOT: &str = "iot";
pub(crate) const IOTDATA: &str = "iotdata";

impl Emulator {
    /// An empty emulator (backend-less mode: templates and RegisterThing only).
    pub fn new() -> Self {
        Self::default()
    }

    /// An emulator that also applies RegisterThing's effects (create the thing, attach the
    /// policy and the thing principal, set the certificate's status) through `backend`, an
    /// IoT control plane that holds the certificates (moto_server in tests; AWS would do all
    /// of this itself).
    pub fn with_backend(backend: aws_sdk_iot::Client) -> Self {
        Self {
            backend: Some(backend),
            ..Self::default()
        }
    }

    /// Native mode: the emulator holds certificates (issued by `authority`) and things itself,
    /// persisted under `state_dir` (one small JSON file per thing and per certificate, the
    /// certificate's file holding its policy attachments), reloaded here; publishes go to
    /// `broker`, which is told the current [`Grant`]s once after loading and after every change
    /// that can alter them.
    pub fn open(
        state_dir: &std::path::Path,
        authority: Arc<dyn Authority>,
        broker: Arc<dyn Broker>,
    ) -> std::io::Result<Emulator> {
        native::open(state_dir, authority, broker)
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

    /// The next `times` requests for `operation` fail with this status and error type, with no
    /// effect.
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

    /// Limits `operation` to `per_second` requests a second with bursts of `burst` (a token
    /// bucket, full at first; a burst of 0 counts as 1). A request over the rate is answered
    /// 429 `ThrottlingException` "Rate exceeded", with no effect, and counted in
    /// [`OpStats::throttled`]. Replaces the operation's previous limit.
    pub fn rate_limit(&self, operation: &str, per_second: f64, burst: u32) {
        lock(&self.control)
            .buckets
            .insert(operation.to_string(), Bucket::new(per_second, burst));
    }

    /// Applies AWS IoT Core's default per-account rates ([`AWS_RATES`]) to every operation the
    /// emulator serves, each with a burst of one second's worth.
    pub fn aws_rates(&self) {
        for (op, rate) in AWS_RATES {
            self.rate_limit(op, *rate, rate.ceil() as u32);
        }
    }

    /// Adds a fixed service time to every admitted request for `operation` (zero removes it).
    pub fn latency(&self, operation: &str, d: Duration) {
        let mut c = lock(&self.control);
        if d.is_zero() {
            c.latency.remove(operation);
        } else {
            c.latency.insert(operation.to_string(), d);
        }
    }

    /// Calls, throttled calls and failed calls, by operation.
    pub fn stats(&self) -> BTreeMap<String, OpStats> {
        lock(&self.control).stats.clone()
    }

    /// Switches request recording on (the default) or off; [`Emulator::requests`] keeps what
    /// was recorded.
    pub fn record_requests(&self, on: bool) {
        lock(&self.control).recording = on;
    }

    /// The requests recorded (the newest [`RECORD_LIMIT`]).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.store).requests.iter().cloned().collect()
    }

    /// A thing, if the emulator holds it.
    pub fn thing(&self, name: &str) -> Option<Thing> {
        lock(&self.store).things.get(name).cloned()
    }

    /// A certificate, if the emulator holds it (native mode).
    pub fn certificate(&self, id: &str) -> Option<Certificate> {
        lock(&self.store).certificates.get(id).cloned()
    }

    /// The current grants: every (thing, certificate) where the certificate is `ACTIVE`,
    /// attached to the thing and has at least one policy attached.
    pub fn grants(&self) -> Vec<Grant> {
        native::grants(&lock(&self.store))
    }

    /// Reads the store.
    pub fn with_store<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&lock(&self.store))
    }

    /// The routes.
    pub fn router(&self) -> Router {
        use native::handlers as n;
        Router::new()
            .route(
                "/provisioning-templates/{name}",
                get(provisioning::describe_provisioning_template),
            )
            .route("/things", post(provisioning::register_thing))
            .route(
                "/things/{thing}",
                get(n::describe_thing).delete(n::delete_thing),
            )
            .route(
                "/things/{thing}/principals",
                delete(n::detach_thing_principal),
            )
            .route("/certificates", post(n::create_certificate_from_csr))
            .route(
                "/certificates/{id}",
                get(n::describe_certificate)
                    .put(n::update_certificate)
                    .delete(n::delete_certificate),
            )
            .route(
                "/keys-and-certificate",
                post(n::create_keys_and_certificate),
            )
            .route(
                "/attached-policies/{target}",
                post(n::list_attached_policies),
            )
            .route("/target-policies/{policy}", post(n::detach_policy))
            .route("/principals/things", get(n::list_principal_things))
            .route("/endpoint", get(n::describe_endpoint))
            .route("/topics/{topic}", post(n::publish))
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

    /// The native part, or the answer of an emulator that has none.
    pub(crate) fn native(&self, operation: &str) -> Result<&Arc<native::Native>, AwsError> {
        self.native.as_ref().ok_or_else(|| {
            AwsError::new(
                404,
                "UnknownOperationException",
                format!("the emulator serves {operation} only in native mode (Emulator::open)"),
            )
        })
    }

    fn count(&self, operation: &str, f: impl FnOnce(&mut OpStats)) {
        f(lock(&self.control)
            .stats
            .entry(operation.to_string())
            .or_default());
    }

    /// Admits a request (recording, SigV4 shape, rate limit, injected fault), runs `f` after
    /// the operation's service time, then applies an injected after-effects fault; counts it all.
    pub(crate) async fn run<F, Fut>(
        &self,
        operation: &'static str,
        service: &'static str,
        req: Req,
        f: F,
    ) -> Response
    where
        F: FnOnce(Emulator, Req) -> Fut,
        Fut: Future<Output = Result<Response, AwsError>>,
    {
        let delay = match self.admit(operation, service, &req) {
            Ok(d) => d,
            Err(e) => return e.into_response(),
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let out = f(self.clone(), req).await.and_then(|r| {
            match lock(&self.store)
                .faults_after
                .get_mut(operation)
                .and_then(VecDeque::pop_front)
            {
                Some(f) => Err(AwsError::new(
                    f.status,
                    &f.error_type,
                    "injected after the effects",
                )),
                None => Ok(r),
            }
        });
        match out {
            Ok(r) => r,
            Err(e) => {
                self.count(operation, |s| s.failed += 1);
                e.into_response()
            }
        }
    }

    /// Records a request, checks what every SDK request carries, applies the rate limit and
    /// injected faults; gives the service time to add.
    fn admit(
        &self,
        operation: &str,
        service: &str,
        req: &Req,
    ) -> Result<Option<Duration>, AwsError> {
        let (recording, delay) = {
            let mut c = lock(&self.control);
            c.stats.entry(operation.to_string()).or_default().calls += 1;
            (c.recording, c.latency.get(operation).copied())
        };
        let hdrs: BTreeMap<String, String> = req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        if recording {
            let mut store = lock(&self.store);
            if store.requests.len() >= RECORD_LIMIT {
                store.requests.pop_front();
            }
            store.requests.push_back(Recorded {
                operation: operation.to_string(),
                method: req.method.to_string(),
                path: req.uri.to_string(),
                headers: hdrs.clone(),
                body: serde_json::from_slice(&req.body).unwrap_or(Value::Null),
            });
        }
        let auth = hdrs.get("authorization").map(String::as_str).unwrap_or("");
        let scope = format!("/{service}/aws4_request");
        let refused = if !auth.starts_with("AWS4-HMAC-SHA256 Credential=")
            || !auth.contains(&scope)
            || !auth.contains("SignedHeaders=")
            || !auth.contains("Signature=")
        {
            Some(AwsError::new(
                403,
                "UnauthorizedException",
                format!("request not SigV4-signed for the {service} service"),
            ))
        } else if !hdrs.contains_key("x-amz-date") {
            Some(AwsError::new(403, "UnauthorizedException", "no X-Amz-Date"))
        } else {
            None
        };
        if let Some(e) = refused {
            self.count(operation, |s| s.failed += 1);
            return Err(e);
        }
        let admitted = lock(&self.control)
            .buckets
            .get_mut(operation)
            .is_none_or(|b| b.take(Instant::now()));
        if !admitted {
            self.count(operation, |s| s.throttled += 1);
            return Err(AwsError::new(429, "ThrottlingException", "Rate exceeded"));
        }
        let fault = lock(&self.store)
            .faults
            .get_mut(operation)
            .and_then(VecDeque::pop_front);
        if let Some(f) = fault {
            self.count(operation, |s| s.failed += 1);
            return Err(AwsError::new(
                f.status,
                &f.error_type,
                "injected by the emulator",
            ));
        }
        Ok(delay)
    }
}

/// The region in the request's SigV4 credential scope.
pub(crate) fn region_of(headers: &HeaderMap) -> String {
    // Credential=AKID/20250101/eu-west-1/iot/aws4_request
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or("us-east-1")
        .to_string()
}

/// The query parameters, each at most once and each one of `allowed`.
pub(crate) fn query(uri: &Uri, allowed: &[&str]) -> Result<BTreeMap<String, String>, AwsError> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| AwsError::invalid("query not UTF-8"))
    };
    let mut out = BTreeMap::new();
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k)?, decode(v)?);
        if !allowed.contains(&k.as_str()) {
            return Err(AwsError::invalid(format!("unknown query parameter {k}")));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(AwsError::invalid(format!(
                "query parameter {k} given twice"
            )));
        }
    }
    Ok(out)
}

/// A boolean query parameter.
pub(crate) fn query_bool(q: &BTreeMap<String, String>, name: &str) -> Result<bool, AwsError> {
    match q.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(AwsError::invalid(format!("{name}={v} is not a boolean"))),
    }
}

/// The JSON object body of a request, with only `allowed` members.
pub(crate) fn json_body(req: &Req, allowed: &[&str]) -> Result<Map<String, Value>, AwsError> {
    if req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        != Some("application/json")
    {
        return Err(AwsError::invalid("content-type must be application/json"));
    }
    let v: Value = serde_json::from_slice(&req.body)
        .map_err(|_| AwsError::new(400, "SerializationException", "body is not JSON"))?;
    let Value::Object(m) = v else {
        return Err(AwsError::invalid("body is not an object"));
    };
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(AwsError::invalid(format!("unknown member {k}")));
    }
    Ok(m)
}

/// Refuses a body where the operation has none (an empty JSON object is tolerated).
pub(crate) fn no_body(req: &Req) -> Result<(), AwsError> {
    if req.body.is_empty() || req.body.as_ref() == b"{}" {
        Ok(())
    } else {
        Err(AwsError::invalid("this operation takes no body"))
    }
}

async fn unknown(method: Method, uri: Uri) -> AwsError {
    AwsError::new(
        404,
        "UnknownOperationException",
        format!("the emulator does not implement {method} {uri}"),
    )
}
