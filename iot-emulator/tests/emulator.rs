//! The emulator answers the AWS SDK as AWS IoT would for the operations it implements, and
//! refuses what the SDK would never send.

mod common;

use chunkprov_iot_emulator::Emulator;
use common::iot as client;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};

const TEMPLATE: &str = r#"{
  "Parameters": {
    "ThingName": {"Type": "String"},
    "Color": {"Type": "String", "Default": "blue"},
    "AWS::IoT::Certificate::Id": {"Type": "String"}
  },
  "Resources": {
    "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "ThingName"},
      "AttributePayload": {"attributes": {"color": {"Ref": "Color"}}}}},
    "certificate": {"Type": "AWS::IoT::Certificate",
      "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}},
    "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "p1"}}
  }
}"#;

fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_provisioning_template_and_register_thing_through_the_sdk() {
    let emu = Emulator::new();
    emu.put_template("t1", TEMPLATE, true);
    let running = emu
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let iot = client(&running.endpoint());

    let d = iot
        .describe_provisioning_template()
        .template_name("t1")
        .send()
        .await
        .unwrap();
    assert_eq!(d.template_name(), Some("t1"));
    assert_eq!(d.template_body(), Some(TEMPLATE));
    assert_eq!(d.enabled(), Some(true));
    assert_eq!(
        d.template_arn(),
        Some("arn:aws:iot:eu-west-1:123456789012:provisioningtemplate/t1")
    );
    assert!(d.provisioning_role_arn().is_some());
    let e = iot
        .describe_provisioning_template()
        .template_name("nope")
        .send()
        .await
        .unwrap_err();
    assert!(e
        .as_service_error()
        .unwrap()
        .is_resource_not_found_exception());

    let id = "0f".repeat(32);
    let out = iot
        .register_thing()
        .template_body(TEMPLATE)
        .parameters("ThingName", "dev-1")
        .parameters("AWS::IoT::Certificate::Id", &id)
        .send()
        .await
        .unwrap();
    let arns = out.resource_arns().unwrap();
    assert_eq!(
        arns["thing"],
        "arn:aws:iot:eu-west-1:123456789012:thing/dev-1"
    );
    assert_eq!(
        arns["certificate"],
        format!("arn:aws:iot:eu-west-1:123456789012:cert/{id}")
    );
    assert_eq!(
        arns["policy"],
        "arn:aws:iot:eu-west-1:123456789012:policy/p1"
    );
    let thing = emu.thing("dev-1").unwrap();
    assert_eq!(thing.attributes["color"], "blue", "the parameter's default");
    assert!(thing.principals.contains(&arns["certificate"]));
    emu.with_store(|s| {
        assert!(s
            .policy_attachments
            .contains(&("p1".to_string(), arns["certificate"].clone())));
        assert_eq!(s.certificate_status[&id], "ACTIVE");
    });

    // Refusals, each changing nothing.
    let things_before = emu.with_store(|s| s.things.len());
    let bad: [(&str, HashMap<String, String>); 3] = [
        (
            TEMPLATE,
            HashMap::from([("AWS::IoT::Certificate::Id".into(), id.clone())]),
        ),
        (
            TEMPLATE,
            HashMap::from([
                ("ThingName".into(), "dev-2".into()),
                ("AWS::IoT::Certificate::Id".into(), id.clone()),
                ("Undeclared".into(), "x".into()),
            ]),
        ),
        (
            r#"{"Resources":{"x":{"Type":"AWS::IoT::Other"}}}"#,
            HashMap::new(),
        ),
    ];
    for (body, params) in bad {
        let e = iot
            .register_thing()
            .template_body(body)
            .set_parameters(Some(params))
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error().unwrap().is_invalid_request_exception(),
            "{e:?}"
        );
    }
    assert_eq!(emu.with_store(|s| s.things.len()), things_before);

    // Injected faults come back as the SDK's typed errors.
    emu.fail("RegisterThing", 400, "ThrottlingException", 1);
    let e = iot
        .register_thing()
        .template_body(TEMPLATE)
        .send()
        .await
        .unwrap_err();
    assert!(e.as_service_error().unwrap().is_throttling_exception());
    emu.fail(
        "DescribeProvisioningTemplate",
        500,
        "InternalFailureException",
        1,
    );
    let e = iot
        .describe_provisioning_template()
        .template_name("t1")
        .send()
        .await
        .unwrap_err();
    assert!(e
        .as_service_error()
        .unwrap()
        .is_internal_failure_exception());

    // Every request was recorded with what the SDK sent.
    let reqs = emu.requests();
    assert!(reqs
        .iter()
        .all(|r| r.headers["authorization"].starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={}/",
            common::ACCESS_KEY
        ))));
    assert_eq!(
        reqs.iter()
            .filter(|r| r.operation == "RegisterThing")
            .count(),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_unsigned_requests_and_operations_it_does_not_implement() {
    let emu = Emulator::new();
    emu.put_template("t1", TEMPLATE, true);
    let running = emu
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let r = raw(
        running.addr,
        "GET /provisioning-templates/t1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r
        .to_ascii_lowercase()
        .contains("x-amzn-errortype: unauthorizedexception"));
    // An operation the emulator does not have is an error, never a guess.
    let iot = client(&running.endpoint());
    let e = iot.list_things().send().await.unwrap_err();
    assert_eq!(
        aws_sdk_iot::error::ProvideErrorMetadata::code(&e),
        Some("UnknownOperationException")
    );
    // Dropping the handle stops the server.
    let addr = running.addr;
    drop(running);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(TcpStream::connect(addr).is_err());
}
