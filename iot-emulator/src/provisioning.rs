//! Fleet provisioning: `DescribeProvisioningTemplate` and `RegisterThing`.

use crate::{lock, region_of, AwsError, Emulator, Req, ACCOUNT, IOT};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub(crate) async fn describe_provisioning_template(
    State(emu): State<Emulator>,
    Path(name): Path<String>,
    req: Req,
) -> Response {
    emu.run(
        "DescribeProvisioningTemplate",
        IOT,
        req,
        |emu, req| async move {
            if !req.body.is_empty() || req.uri.query().is_some() {
                return Err(AwsError::invalid(
                    "DescribeProvisioningTemplate takes no body or query",
                ));
            }
            let region = region_of(&req.headers);
            let store = lock(&emu.store);
            let t = store
                .templates
                .get(&name)
                .ok_or_else(|| AwsError::not_found(format!("no template {name}")))?;
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
        },
    )
    .await
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

/// RegisterThing's effects, planned before any is applied.
pub(crate) struct Plan {
    pub(crate) thing: Option<String>,
    pub(crate) attributes: BTreeMap<String, String>,
    /// Certificate id and the status the template sets, if any.
    pub(crate) cert: Option<(String, Option<String>)>,
    pub(crate) cert_arn: Option<String>,
    pub(crate) policies: Vec<String>,
}

fn plan(req: &Req) -> Result<(Plan, Map<String, Value>), AwsError> {
    let req_body = crate::json_body(req, &["templateBody", "parameters"])?;
    let body_text = req_body
        .get("templateBody")
        .and_then(Value::as_str)
        .ok_or_else(|| AwsError::invalid("templateBody is required"))?;
    let empty = Map::new();
    let params = match req_body.get("parameters") {
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
    let region = region_of(&req.headers);
    let mut p = Plan {
        thing: None,
        attributes: BTreeMap::new(),
        cert: None,
        cert_arn: None,
        policies: Vec::new(),
    };
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
                        p.attributes.insert(k.clone(), resolve(v, &resolved)?);
                    }
                }
                arns.insert(
                    logical.clone(),
                    json!(format!("arn:aws:iot:{region}:{ACCOUNT}:thing/{name}")),
                );
                p.thing = Some(name);
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
                let arn = format!("arn:aws:iot:{region}:{ACCOUNT}:cert/{id}");
                arns.insert(logical.clone(), json!(arn));
                p.cert = Some((id, status));
                p.cert_arn = Some(arn);
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
                p.policies.push(name);
            }
            other => {
                return Err(AwsError::invalid(format!(
                    "resource {logical}: type {other:?} not supported"
                )))
            }
        }
    }
    Ok((p, arns))
}

pub(crate) async fn register_thing(State(emu): State<Emulator>, req: Req) -> Response {
    emu.run("RegisterThing", IOT, req, |emu, req| async move {
        // Plan every effect before applying any: a bad template changes nothing.
        let (p, arns) = plan(&req)?;
        if let Some(native) = &emu.native {
            native.register(&emu, &p)?;
        } else {
            if let Some(backend) = &emu.backend {
                apply(backend, &p)
                    .await
                    .map_err(|m| AwsError::new(500, "InternalFailureException", m))?;
            }
            let mut store = lock(&emu.store);
            if let Some((id, Some(status))) = &p.cert {
                store.certificate_status.insert(id.clone(), status.clone());
            }
            if let Some(name) = &p.thing {
                let t = store.things.entry(name.clone()).or_default();
                t.version = t.version.max(1);
                t.attributes.extend(p.attributes.clone());
                if let Some(arn) = &p.cert_arn {
                    t.principals.insert(arn.clone());
                }
            }
            if let Some(arn) = &p.cert_arn {
                for policy in &p.policies {
                    store
                        .policy_attachments
                        .insert((policy.clone(), arn.clone()));
                }
            }
        }
        Ok(axum::Json(json!({ "resourceArns": arns })).into_response())
    })
    .await
}

/// RegisterThing's effects on a backend control plane.
async fn apply(iot: &aws_sdk_iot::Client, p: &Plan) -> Result<(), String> {
    use aws_sdk_iot::types::{AttributePayload, CertificateStatus};
    let arn = match &p.cert {
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
    if let Some(thing) = &p.thing {
        if iot.describe_thing().thing_name(thing).send().await.is_err() {
            let mut payload = AttributePayload::builder();
            for (k, v) in &p.attributes {
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
        for policy in &p.policies {
            iot.attach_policy()
                .policy_name(policy)
                .target(arn)
                .send()
                .await
                .map_err(|e| format!("backend AttachPolicy: {e}"))?;
        }
    }
    if let Some((id, Some(status))) = &p.cert {
        iot.update_certificate()
            .certificate_id(id)
            .new_status(CertificateStatus::from(status.as_str()))
            .send()
            .await
            .map_err(|e| format!("backend UpdateCertificate: {e}"))?;
    }
    Ok(())
}
