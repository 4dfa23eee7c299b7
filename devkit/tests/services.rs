//! The local stack's services on real processes: `moto_server` with the state table, the
//! Lambda's real binary behind `cargo lambda watch --only-lambda-apis`, and the topic rules
//! engine between the real Mosquitto brokers and that Lambda. A missing tool fails the test
//! with its install command; nothing is skipped.

mod support;

use chunkprov_devkit::broker::{Broker, Topics};
use chunkprov_devkit::ca::LocalPki;
use chunkprov_devkit::functions::{lambda_binary, FunctionConfig, Functions};
use chunkprov_devkit::moto::{Moto, REGION};
use chunkprov_devkit::mqtt;
use chunkprov_devkit::rules::{self, RuleStats, Rules, RulesConfig};
use chunkprov_lambda::event::{parse, Event, RuleEvent};
use chunkprov_protocol::reject::Rejection;
use chunkprov_protocol::RejectCode;
use rumqttc::{AsyncClient, EventLoop, QoS};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::TempDir;

const TABLE: &str = "chunkprov";

/// A scheduled sweep, as EventBridge sends it.
fn sweep() -> serde_json::Value {
    serde_json::json!({
        "version": "0", "id": "b", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": REGION,
        "resources": [], "detail": {}
    })
}

fn moto(dir: &TempDir) -> Moto {
    Moto::start(&dir.0.join("logs")).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The Lambda's environment with every AWS endpoint at `aws` and the data plane at `data`.
fn lambda_env(aws: &str, data: &str, table: &str) -> Vec<(String, String)> {
    [
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_ENDPOINT_URL", aws),
        ("IOT_DATA_ENDPOINT", data),
        ("TABLE_NAME", table),
        // These tests are about the Runtime API and the rules: each failing backend call
        // should fail its invocation at once, not be retried within the Lambda's budget.
        ("RETRY_BUDGET_MS", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn functions(dir: &TempDir, concurrency: usize, env: Vec<(String, String)>) -> Functions {
    let binary = lambda_binary().unwrap_or_else(|e| panic!("{e:#}"));
    Functions::start(FunctionConfig {
        binary,
        name: "chunkprov".into(),
        concurrency,
        env,
        log_dir: dir.0.join("logs"),
    })
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// The request ids a function process's log names (`requestId="…"` in the runtime's span).
fn request_ids(log: &str) -> BTreeSet<String> {
    log.split("requestId=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

/// A stand-in AWS endpoint that answers every request with HTTP 500 after `delay`, counting
/// requests and the most it held at once.
struct Failing {
    port: u16,
    requests: Arc<AtomicUsize>,
    max_open: Arc<AtomicUsize>,
    paths: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Failing {
    fn start(delay: Duration) -> Self {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let max_open = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
        let open = Arc::new(AtomicUsize::new(0));
        let (r, m, p) = (requests.clone(), max_open.clone(), paths.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { return };
                let (r, m, p, open) = (r.clone(), m.clone(), p.clone(), open.clone());
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&buf);
                    p.lock()
                        .unwrap()
                        .push(line.lines().next().unwrap_or_default().to_string());
                    r.fetch_add(1, Ordering::SeqCst);
                    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(delay);
                    open.fetch_sub(1, Ordering::SeqCst);
                    let _ = s.write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\
                          Content-Length: 2\r\nConnection: close\r\n\r\n{}",
                    );
                });
            }
        });
        Self {
            port,
            requests,
            max_open,
            paths,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

// ----- moto -----

/// The `StateTable` resource of `deploy/template.yaml`, flattened to its `Key: value` lines in
/// order (no `Type`, no comments).
fn template_state_table() -> Vec<String> {
    let yaml = include_str!("../../deploy/template.yaml");
    let start = yaml
        .find("\n  StateTable:\n")
        .expect("StateTable in the template")
        + 1;
    yaml[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.trim().is_empty() || l.starts_with("   "))
        .map(|l| l.trim().trim_start_matches("- ").trim())
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let v = v.trim();
            (!v.is_empty() && k != "Type").then(|| format!("{k}: {v}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_creates_the_state_table_exactly_as_the_template_declares_it() {
    let dir = TempDir::new("table");
    let moto = moto(&dir);
    moto.create_state_table(TABLE).await.unwrap();
    let ddb = moto.dynamodb();
    let t = ddb
        .describe_table()
        .table_name(TABLE)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let mut got = Vec::new();
    let billing = t.billing_mode_summary().and_then(|b| b.billing_mode());
    got.push(format!("BillingMode: {}", billing.unwrap().as_str()));
    for a in t.attribute_definitions() {
        got.push(format!("AttributeName: {}", a.attribute_name()));
        got.push(format!("AttributeType: {}", a.attribute_type().as_str()));
    }
    for k in t.key_schema() {
        got.push(format!("AttributeName: {}", k.attribute_name()));
        got.push(format!("KeyType: {}", k.key_type().as_str()));
    }
    for g in t.global_secondary_indexes() {
        got.push(format!("IndexName: {}", g.index_name().unwrap()));
        for k in g.key_schema() {
            got.push(format!("AttributeName: {}", k.attribute_name()));
            got.push(format!("KeyType: {}", k.key_type().as_str()));
        }
        let p = g.projection().and_then(|p| p.projection_type()).unwrap();
        got.push(format!("ProjectionType: {}", p.as_str()));
    }
    let ttl = ddb
        .describe_time_to_live()
        .table_name(TABLE)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    got.push(format!("AttributeName: {}", ttl.attribute_name().unwrap()));
    let on = |s: &str| (s == "ENABLED").to_string();
    got.push(format!(
        "Enabled: {}",
        on(ttl.time_to_live_status().unwrap().as_str())
    ));
    let backups = ddb
        .describe_continuous_backups()
        .table_name(TABLE)
        .send()
        .await
        .unwrap()
        .continuous_backups_description
        .unwrap();
    let pitr = backups
        .point_in_time_recovery_description()
        .and_then(|p| p.point_in_time_recovery_status())
        .unwrap();
    got.push(format!("PointInTimeRecoveryEnabled: {}", on(pitr.as_str())));
    let sse = t.sse_description().and_then(|s| s.status()).unwrap();
    got.push(format!("SSEEnabled: {}", on(sse.as_str())));
    assert_eq!(got, template_state_table());
    // The sparse index really is queryable as the sweep queries it.
    let q = ddb
        .query()
        .table_name(TABLE)
        .index_name("pending")
        .key_condition_expression("pending_pk = :p AND pending_since < :t")
        .expression_attribute_values(
            ":p",
            aws_sdk_dynamodb::types::AttributeValue::S("pending".into()),
        )
        .expression_attribute_values(":t", aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(q.count(), 0);
}

// ----- functions -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_binary_answers_through_the_runtime_api_and_its_errors_are_reported() {
    let dir = TempDir::new("functions");
    let moto = moto(&dir);
    moto.create_state_table(TABLE).await.unwrap();
    let m = moto.endpoint();
    let good = functions(&dir, 1, lambda_env(&m, &m, TABLE));
    let t = Instant::now();
    let r = good.invoke(&sweep()).await.unwrap();
    println!("sweep answered in {:?}: {r:?}", t.elapsed());
    assert!(r.ok, "{r:?}");
    assert_eq!(
        r.body,
        serde_json::json!({"outcome": "Swept { revoked: 0, failed: 0 }"})
    );
    // An event that is not chunkprov's is logged and ignored, not an error.
    let r = good
        .invoke(&serde_json::json!({"hello": "world"}))
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.body["outcome"], "ignored");
    drop(good);

    // The same sweep with the table missing: the handler returns an error.
    let bad = functions(&dir, 1, lambda_env(&m, &m, "no-such-table"));
    let r = bad.invoke(&sweep()).await.unwrap();
    println!("failed sweep: {r:?}");
    assert!(!r.ok, "{r:?}");
    let message = r.body["errorMessage"].as_str().unwrap();
    assert!(message.contains("ResourceNotFound"), "{message}");
    assert!(r.body["errorType"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_concurrent_invocations_are_served_by_n_processes_at_once() {
    const N: usize = 4;
    let dir = TempDir::new("concurrency");
    // Every AWS call waits 1.5 s and fails: each invocation is one slow DynamoDB Query.
    let slow = Failing::start(Duration::from_millis(1500));
    let e = slow.endpoint();
    let f = Arc::new(functions(&dir, N, lambda_env(&e, &e, TABLE)));
    assert_eq!(f.concurrency(), N);
    let t = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..N {
        let f = f.clone();
        calls.spawn(async move { f.invoke(&sweep()).await });
    }
    while let Some(r) = calls.join_next().await {
        let r = r.unwrap().unwrap();
        assert!(!r.ok, "the backend fails every call: {r:?}");
    }
    let elapsed = t.elapsed();
    let per_process: Vec<usize> = f
        .logs()
        .iter()
        .map(|p| request_ids(&std::fs::read_to_string(p).unwrap()).len())
        .collect();
    println!(
        "{N} invocations of 1.5 s each in {elapsed:?}; per process {per_process:?}; \
         backend held {} requests at once",
        slow.max_open.load(Ordering::SeqCst)
    );
    // Each process served exactly one, and all N backend calls were open at the same time.
    assert_eq!(per_process, vec![1; N]);
    assert_eq!(slow.requests.load(Ordering::SeqCst), N);
    assert_eq!(slow.max_open.load(Ordering::SeqCst), N);
}

// ----- rules -----

#[test]
fn rule_events_are_what_the_lambda_parses() {
    for prefix in ["chunkprov", "fleet/eu/chunkprov"] {
        for (id, kind) in [
            ("claim-352656100000000", "json"),
            ("claim-352656100000000", "pull"),
            ("dev-352656100000000", "confirm"),
        ] {
            let topic = format!("{prefix}/{id}/{kind}");
            let payload = br#"{"SerialNumber":"352656100000000"}"#;
            let ev = rules::event(prefix, &topic, payload, 1_764_412_345_678).unwrap();
            let Event::Rule(got) = parse(ev).unwrap() else {
                panic!("not a rule event")
            };
            assert_eq!(
                got,
                RuleEvent {
                    payload: "eyJTZXJpYWxOdW1iZXIiOiIzNTI2NTYxMDAwMDAwMDAifQ==".into(),
                    client_id: id.into(),
                    topic,
                    timestamp: 1_764_412_345_678,
                }
            );
        }
        // Binary payloads are encoded whole, like encode(*, 'base64').
        let ev = rules::event(prefix, &format!("{prefix}/claim-1/json"), &[0, 255], 0).unwrap();
        assert_eq!(ev["payload"], "AP8=");
        for t in [
            format!("{prefix}/claim-1/frame"),
            format!("{prefix}/claim-1/rejected"),
            format!("{prefix}/dev-1/confirm/accepted"),
            format!("{prefix}//json"),
            format!("{prefix}/json"),
            format!("{prefix}x/claim-1/json"),
            format!("other/{prefix}/claim-1/json"),
            format!("{prefix}/a/b/json"),
        ] {
            assert_eq!(rules::event(prefix, &t, b"{}", 0), None, "{t}");
        }
    }
    let (claim, device) = rules::filters("a/b");
    assert_eq!(claim, ["a/b/+/json", "a/b/+/pull"]);
    assert_eq!(device, ["a/b/+/confirm"]);
}

/// CA and brokers in `dir`.
fn pki_and_broker(dir: &TempDir) -> (LocalPki, Broker) {
    let pki = LocalPki::open(&dir.0.join("state")).unwrap();
    let broker = Broker::start(&pki, Topics::default()).unwrap_or_else(|e| panic!("{e:#}"));
    (pki, broker)
}

/// Connects with `pair` under `id` and keeps the connection polled.
async fn connect(
    pki: &LocalPki,
    pair: &chunkprov_devkit::ca::Pair,
    port: u16,
    id: &str,
) -> (AsyncClient, tokio::task::JoinHandle<()>) {
    let tls = mqtt::tls_config(
        pki.server.cert_pem().as_bytes(),
        pair.cert_pem.as_bytes(),
        pair.key_pem.as_bytes(),
    )
    .unwrap();
    let (client, mut ev): (AsyncClient, EventLoop) =
        mqtt::connect(mqtt::options(id, port, tls, None), Duration::from_secs(10))
            .await
            .unwrap();
    let h = tokio::spawn(async move { while ev.poll().await.is_ok() {} });
    (client, h)
}

async fn wait_for(rules: &Rules, what: &str, cond: impl Fn(&RuleStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond(&rules.stats()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            rules.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_engine_invokes_the_lambda_for_requests_pulls_and_confirmations() {
    let dir = TempDir::new("rules");
    let (pki, broker) = pki_and_broker(&dir);
    let moto = moto(&dir);
    moto.create_state_table(TABLE).await.unwrap();
    moto.start_recording().await.unwrap();
    let m = moto.endpoint();
    let f = Arc::new(functions(&dir, 2, lambda_env(&m, &m, TABLE)));
    let rules = Rules::start(
        &pki,
        &broker,
        f.clone(),
        RulesConfig::new(Topics::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));

    // A claim holder's malformed request and pull, and a malformed confirmation on the device
    // broker (published here through its service listener).
    let claim = pki.claim_certificate("batch-1").unwrap();
    let (device, _h1) = connect(&pki, &claim, broker.claim_port, "claim-352656100000009").await;
    let service = pki.service_certificate("tests").unwrap();
    let (cloud, _h2) = connect(&pki, &service, broker.device_service_port, "tests").await;
    let t = Instant::now();
    for kind in ["json", "pull"] {
        device
            .publish(
                format!("chunkprov/claim-352656100000009/{kind}"),
                QoS::AtLeastOnce,
                false,
                b"not json".to_vec(),
            )
            .await
            .unwrap();
    }
    cloud
        .publish(
            "chunkprov/dev-352656100000009/confirm",
            QoS::AtLeastOnce,
            false,
            b"not json".to_vec(),
        )
        .await
        .unwrap();
    wait_for(&rules, "three events", |s| s.received == 3).await;
    assert!(rules.wait_idle(Duration::from_secs(60)).await);
    println!("3 messages answered in {:?}", t.elapsed());
    let s = rules.stats();
    assert_eq!(
        s,
        RuleStats {
            received: 3,
            invoked: 3,
            succeeded: 3,
            ..RuleStats::default()
        }
    );
    // The Lambda answered each with a rejection, published through moto's iot-data.
    let mut rejected: Vec<(String, u16, String)> = moto
        .published()
        .await
        .unwrap()
        .iter()
        .map(|p| {
            let r = Rejection::decode(&p.payload).unwrap();
            (p.topic.clone(), r.code, r.message.to_string())
        })
        .collect();
    rejected.sort();
    let malformed = RejectCode::Malformed as u16;
    assert_eq!(
        rejected,
        [
            (
                "chunkprov/claim-352656100000009/rejected".into(),
                malformed,
                "payload is not JSON".into()
            ),
            (
                "chunkprov/claim-352656100000009/rejected".into(),
                malformed,
                "payload is not JSON".into()
            ),
            (
                "chunkprov/dev-352656100000009/rejected".into(),
                malformed,
                "payload is not JSON".into()
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_invocation_is_retried_twice_then_counted_failed() {
    let dir = TempDir::new("retries");
    let (pki, broker) = pki_and_broker(&dir);
    // The data plane fails every Publish (after 300 ms), so answering a rejection fails and
    // the handler returns an error.
    let failing = Failing::start(Duration::from_millis(300));
    let e = failing.endpoint();
    let f = Arc::new(functions(&dir, 1, lambda_env(&e, &e, TABLE)));
    let mut cfg = RulesConfig::new(Topics::default());
    cfg.retry_delays = vec![Duration::from_millis(200), Duration::from_millis(400)];
    let rules = Rules::start(&pki, &broker, f.clone(), cfg)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let claim = pki.claim_certificate("batch-1").unwrap();
    let (device, _h) = connect(&pki, &claim, broker.claim_port, "claim-352656100000010").await;
    let t = Instant::now();
    for _ in 0..2 {
        device
            .publish(
                "chunkprov/claim-352656100000010/json",
                QoS::AtLeastOnce,
                false,
                b"not json".to_vec(),
            )
            .await
            .unwrap();
    }
    // Asynchronous: the second message is taken while the first is still being tried.
    wait_for(&rules, "both events", |s| s.received == 2).await;
    let s = rules.stats();
    assert_eq!(s.failed, 0, "{s:?}");
    assert!(rules.wait_idle(Duration::from_secs(60)).await);
    println!("2 events failed (3 attempts each) in {:?}", t.elapsed());
    assert_eq!(
        rules.stats(),
        RuleStats {
            received: 2,
            invoked: 6,
            errors: 6,
            retried: 4,
            failed: 2,
            ..RuleStats::default()
        }
    );
    // Each attempt really ran the Lambda: one Publish of the rejection per attempt.
    let paths = failing.paths.lock().unwrap().clone();
    assert_eq!(paths.len(), 6, "{paths:?}");
    assert!(
        paths
            .iter()
            .all(|p| p.starts_with("POST /topics/chunkprov%2Fclaim-352656100000010%2Frejected")),
        "{paths:?}"
    );
    let failures = rules.failures();
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0].topic, "chunkprov/claim-352656100000010/json");
    assert!(failures[0].error.contains("errorMessage"), "{failures:?}");
}
