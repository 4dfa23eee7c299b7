//! The backends on AWS: `aws-sdk-iot` (control plane), `aws-sdk-iotdataplane` (publish) and
//! `aws-sdk-dynamodb` (state). The SDK's own retries are turned off in [`configs`]: the
//! handler retries throttling and 5xx itself, within the invocation's time budget.

use crate::backend::{
    BResult, BackendError, CertStatus, ErrorKind, IssuedCertificate, Publisher, Registry, State,
};
use crate::state::{Item, Phase};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_iot::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_iot::types::CertificateStatus;
use std::collections::HashMap;
use tokio::sync::Mutex;

type HttpResponse = aws_sdk_iot::config::http::HttpResponse;

/// The sweep index's name and its partition key's one value (a sparse index: only items in
/// progress carry the attribute).
pub const PENDING_INDEX: &str = "pending";
/// The attribute that puts an item in [`PENDING_INDEX`].
pub const PENDING_PK: &str = "pending_pk";

/// Maps an SDK error to the handler's kinds.
pub fn classify<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().unwrap_or_default().to_string();
    let message = match err.message() {
        Some(m) => format!("{code}: {m}"),
        None => format!("{code} {}", DisplayErrorContext(&err)),
    };
    let kind = match (&err, code.as_str(), status) {
        (
            _,
            "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "ThrottledException",
            _,
        ) => ErrorKind::Throttled,
        (_, "ConditionalCheckFailedException", _) => ErrorKind::Conflict,
        (_, "ResourceNotFoundException", _) => ErrorKind::NotFound,
        (_, _, Some(429)) => ErrorKind::Throttled,
        (_, _, Some(500..=599)) => ErrorKind::Transient,
        (
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_),
            _,
            _,
        ) => ErrorKind::Transient,
        (_, "InvalidRequestException" | "ValidationException", _) => ErrorKind::Invalid,
        _ => ErrorKind::Other,
    };
    BackendError::new(kind, op, message)
}

/// The IoT control plane through `aws-sdk-iot`.
pub struct AwsRegistry {
    iot: aws_sdk_iot::Client,
    provisioning: aws_sdk_iot::Client,
    templates: Mutex<HashMap<String, String>>,
}

impl AwsRegistry {
    /// A registry on `iot` for everything. `provisioning` serves `DescribeProvisioningTemplate`
    /// and `RegisterThing`: the same client in AWS; the project's emulator in tests, since
    /// moto has neither.
    pub fn new(iot: aws_sdk_iot::Client, provisioning: aws_sdk_iot::Client) -> Self {
        Self {
            iot,
            provisioning,
            templates: Mutex::new(HashMap::new()),
        }
    }
}

fn missing(op: &'static str, what: &str) -> BackendError {
    BackendError::new(ErrorKind::Other, op, format!("response without {what}"))
}

fn issued(
    op: &'static str,
    id: Option<&str>,
    arn: Option<&str>,
    pem: Option<&str>,
) -> BResult<IssuedCertificate> {
    Ok(IssuedCertificate {
        id: id.ok_or_else(|| missing(op, "certificateId"))?.to_string(),
        arn: arn
            .ok_or_else(|| missing(op, "certificateArn"))?
            .to_string(),
        pem: pem
            .ok_or_else(|| missing(op, "certificatePem"))?
            .to_string(),
        private_key_pem: None,
    })
}

#[async_trait]
impl Registry for AwsRegistry {
    async fn create_certificate_from_csr(&self, csr_pem: &str) -> BResult<IssuedCertificate> {
        const OP: &str = "CreateCertificateFromCsr";
        let out = self
            .iot
            .create_certificate_from_csr()
            .certificate_signing_request(csr_pem)
            .set_as_active(false)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        issued(
            OP,
            out.certificate_id(),
            out.certificate_arn(),
            out.certificate_pem(),
        )
    }

    async fn create_keys_and_certificate(&self) -> BResult<IssuedCertificate> {
        const OP: &str = "CreateKeysAndCertificate";
        let out = self
            .iot
            .create_keys_and_certificate()
            .set_as_active(false)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let mut c = issued(
            OP,
            out.certificate_id(),
            out.certificate_arn(),
            out.certificate_pem(),
        )?;
        c.private_key_pem = Some(
            out.key_pair()
                .and_then(|k| k.private_key())
                .ok_or_else(|| missing(OP, "keyPair"))?
                .to_string(),
        );
        Ok(c)
    }

    async fn describe_certificate(&self, id: &str) -> BResult<(String, CertStatus)> {
        const OP: &str = "DescribeCertificate";
        let out = self
            .iot
            .describe_certificate()
            .certificate_id(id)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let d = out
            .certificate_description()
            .ok_or_else(|| missing(OP, "certificateDescription"))?;
        let status = match d.status() {
            Some(CertificateStatus::Active) => CertStatus::Active,
            Some(CertificateStatus::Revoked) => CertStatus::Revoked,
            _ => CertStatus::Inactive,
        };
        let pem = d
            .certificate_pem()
            .ok_or_else(|| missing(OP, "certificatePem"))?;
        Ok((pem.to_string(), status))
    }

    async fn update_certificate(&self, id: &str, status: CertStatus) -> BResult<()> {
        let s = match status {
            CertStatus::Active => CertificateStatus::Active,
            CertStatus::Inactive => CertificateStatus::Inactive,
            CertStatus::Revoked => CertificateStatus::Revoked,
        };
        self.iot
            .update_certificate()
            .certificate_id(id)
            .new_status(s)
            .send()
            .await
            .map_err(|e| classify("UpdateCertificate", e))?;
        Ok(())
    }

    async fn delete_certificate(&self, id: &str) -> BResult<()> {
        self.iot
            .delete_certificate()
            .certificate_id(id)
            .force_delete(false)
            .send()
            .await
            .map_err(|e| classify("DeleteCertificate", e))?;
        Ok(())
    }

    async fn list_attached_policies(&self, principal_arn: &str) -> BResult<Vec<String>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .iot
                .list_attached_policies()
                .target(principal_arn)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| classify("ListAttachedPolicies", e))?;
            out.extend(
                page.policies()
                    .iter()
                    .filter_map(|p| p.policy_name().map(str::to_string)),
            );
            match page.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => return Ok(out),
            }
        }
    }

    async fn detach_policy(&self, policy: &str, principal_arn: &str) -> BResult<()> {
        self.iot
            .detach_policy()
            .policy_name(policy)
            .target(principal_arn)
            .send()
            .await
            .map_err(|e| classify("DetachPolicy", e))?;
        Ok(())
    }

    async fn list_principal_things(&self, principal_arn: &str) -> BResult<Vec<String>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .iot
                .list_principal_things()
                .principal(principal_arn)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify("ListPrincipalThings", e))?;
            out.extend(page.things().iter().cloned());
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    async fn detach_thing_principal(&self, thing: &str, principal_arn: &str) -> BResult<()> {
        self.iot
            .detach_thing_principal()
            .thing_name(thing)
            .principal(principal_arn)
            .send()
            .await
            .map_err(|e| classify("DetachThingPrincipal", e))?;
        Ok(())
    }

    async fn thing_exists(&self, thing: &str) -> BResult<bool> {
        match self.iot.describe_thing().thing_name(thing).send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = classify("DescribeThing", e);
                if e.kind == ErrorKind::NotFound {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn delete_thing(&self, thing: &str) -> BResult<()> {
        self.iot
            .delete_thing()
            .thing_name(thing)
            .send()
            .await
            .map_err(|e| classify("DeleteThing", e))?;
        Ok(())
    }

    async fn template_body(&self, name: &str) -> BResult<String> {
        const OP: &str = "DescribeProvisioningTemplate";
        if let Some(body) = self.templates.lock().await.get(name) {
            return Ok(body.clone());
        }
        let out = self
            .provisioning
            .describe_provisioning_template()
            .template_name(name)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        if out.enabled() == Some(false) {
            return Err(BackendError::new(ErrorKind::Other, OP, "template disabled"));
        }
        let body = out
            .template_body()
            .ok_or_else(|| missing(OP, "templateBody"))?
            .to_string();
        self.templates
            .lock()
            .await
            .insert(name.to_string(), body.clone());
        Ok(body)
    }

    async fn register_thing(
        &self,
        template_body: &str,
        parameters: &HashMap<String, String>,
    ) -> BResult<()> {
        self.provisioning
            .register_thing()
            .template_body(template_body)
            .set_parameters(Some(parameters.clone()))
            .send()
            .await
            .map_err(|e| classify("RegisterThing", e))?;
        Ok(())
    }
}

/// The IoT data plane through `aws-sdk-iotdataplane`.
pub struct AwsPublisher {
    client: aws_sdk_iotdataplane::Client,
}

impl AwsPublisher {
    /// A publisher on `client` (whose endpoint is the account's `iot:Data-ATS` endpoint).
    pub fn new(client: aws_sdk_iotdataplane::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Publisher for AwsPublisher {
    async fn publish(&self, topic: &str, payload: &[u8]) -> BResult<()> {
        self.client
            .publish()
            .topic(topic)
            .qos(1)
            .payload(aws_sdk_iotdataplane::primitives::Blob::new(
                payload.to_vec(),
            ))
            .send()
            .await
            .map_err(|e| classify("Publish", e))?;
        Ok(())
    }
}

/// The state table through `aws-sdk-dynamodb`: partition key `serial` (S); TTL attribute
/// `expires_at`; the sparse index [`PENDING_INDEX`] on ([`PENDING_PK`] S, `pending_since` N).
pub struct DynamoState {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoState {
    /// The table `table` through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// An item as DynamoDB attributes.
pub fn to_attributes(it: &Item) -> HashMap<String, AttributeValue> {
    let mut m = HashMap::from([
        ("serial".to_string(), s(&it.serial)),
        ("phase".to_string(), s(it.phase.as_str())),
        ("version".to_string(), n(it.version)),
        ("thing_name".to_string(), s(&it.thing_name)),
        (
            "thing_created".to_string(),
            AttributeValue::Bool(it.thing_created),
        ),
        ("transfer_id".to_string(), n(it.transfer_id)),
        ("nonce".to_string(), s(&it.nonce)),
        ("packet_limit".to_string(), n(it.packet_limit)),
        ("window".to_string(), n(it.window)),
        ("max_chunk".to_string(), n(it.max_chunk)),
        ("bundle_len".to_string(), n(it.bundle_len)),
        ("bundle_sha256".to_string(), s(&it.bundle_sha256)),
        ("attempts".to_string(), n(it.attempts)),
        ("updated_at".to_string(), n(it.updated_at)),
    ]);
    let mut opt = |k: &str, v: Option<AttributeValue>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    opt("csr_sha256", it.csr_sha256.as_deref().map(s));
    opt("certificate_id", it.certificate_id.as_deref().map(s));
    opt("certificate_arn", it.certificate_arn.as_deref().map(s));
    opt("certificate_pem", it.certificate_pem.as_deref().map(s));
    opt("key_len", it.key_len.map(n));
    opt("pending_since", it.pending_since.map(n));
    opt(PENDING_PK, it.pending_since.map(|_| s("PENDING")));
    opt("expires_at", it.expires_at.map(n));
    m
}

/// An item from DynamoDB attributes.
pub fn from_attributes(m: &HashMap<String, AttributeValue>) -> Result<Item, String> {
    let gs = |k: &str| -> Result<String, String> {
        m.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| format!("attribute {k} missing"))
    };
    let os = |k: &str| m.get(k).and_then(|v| v.as_s().ok()).cloned();
    fn num<T: std::str::FromStr>(
        m: &HashMap<String, AttributeValue>,
        k: &str,
    ) -> Result<Option<T>, String> {
        match m.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_n()
                .ok()
                .and_then(|x| x.parse().ok())
                .map(Some)
                .ok_or_else(|| format!("attribute {k} not a number")),
        }
    }
    let req = |k: &str| format!("attribute {k} missing");
    Ok(Item {
        serial: gs("serial")?,
        phase: Phase::parse(&gs("phase")?).ok_or("bad phase")?,
        version: num(m, "version")?.ok_or_else(|| req("version"))?,
        thing_name: gs("thing_name")?,
        thing_created: m
            .get("thing_created")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        csr_sha256: os("csr_sha256"),
        certificate_id: os("certificate_id"),
        certificate_arn: os("certificate_arn"),
        certificate_pem: os("certificate_pem"),
        transfer_id: num(m, "transfer_id")?.ok_or_else(|| req("transfer_id"))?,
        nonce: gs("nonce")?,
        packet_limit: num(m, "packet_limit")?.ok_or_else(|| req("packet_limit"))?,
        window: num(m, "window")?.ok_or_else(|| req("window"))?,
        max_chunk: num(m, "max_chunk")?.ok_or_else(|| req("max_chunk"))?,
        bundle_len: num(m, "bundle_len")?.ok_or_else(|| req("bundle_len"))?,
        bundle_sha256: gs("bundle_sha256")?,
        key_len: num(m, "key_len")?,
        attempts: num(m, "attempts")?.ok_or_else(|| req("attempts"))?,
        pending_since: num(m, "pending_since")?,
        expires_at: num(m, "expires_at")?,
        updated_at: num(m, "updated_at")?.ok_or_else(|| req("updated_at"))?,
    })
}

fn bad_item(op: &'static str, e: String) -> BackendError {
    BackendError::new(ErrorKind::Other, op, e)
}

#[async_trait]
impl State for DynamoState {
    async fn get(&self, serial: &str) -> BResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("serial", s(serial))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        out.item()
            .map(|m| from_attributes(m).map_err(|e| bad_item("GetItem", e)))
            .transpose()
    }

    async fn put(&self, item: &Item, expected: Option<u64>) -> BResult<()> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attributes(item)));
        let req = match expected {
            None => req.condition_expression("attribute_not_exists(serial)"),
            Some(v) => req
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(v)),
        };
        req.send().await.map_err(|e| classify("PutItem", e))?;
        Ok(())
    }

    async fn delete(&self, serial: &str, expected: u64) -> BResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("serial", s(serial))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(expected))
            .send()
            .await
            .map_err(|e| classify("DeleteItem", e))?;
        Ok(())
    }

    async fn pending_before(&self, cutoff: i64) -> BResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(PENDING_INDEX)
                .key_condition_expression("#pk = :p AND pending_since < :c")
                .expression_attribute_names("#pk", PENDING_PK)
                .expression_attribute_values(":p", s("PENDING"))
                .expression_attribute_values(":c", n(cutoff))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            for m in page.items() {
                out.push(from_attributes(m).map_err(|e| bad_item("Query", e))?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }
}

/// Service configurations from a shared SDK configuration, with the SDK's retries off (the
/// handler retries within its budget). `data_endpoint` is the account's `iot:Data-ATS`
/// endpoint as an https URL.
pub fn configs(
    sdk: &aws_config::SdkConfig,
    data_endpoint: &str,
) -> (
    aws_sdk_iot::Config,
    aws_sdk_iotdataplane::Config,
    aws_sdk_dynamodb::Config,
) {
    use aws_config::retry::RetryConfig;
    let iot = aws_sdk_iot::config::Builder::from(sdk)
        .retry_config(RetryConfig::disabled())
        .build();
    let data = aws_sdk_iotdataplane::config::Builder::from(sdk)
        .retry_config(RetryConfig::disabled())
        .endpoint_url(data_endpoint)
        .build();
    let ddb = aws_sdk_dynamodb::config::Builder::from(sdk)
        .retry_config(RetryConfig::disabled())
        .build();
    (iot, data, ddb)
}
