//! A `moto_server` started by the tests on a free loopback port and killed on drop, and SDK
//! clients pointed at it (or at the project's IoT emulator).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGION: &str = "eu-west-1";

pub struct Moto {
    pub port: u16,
    child: Child,
    _dir: TempDir,
}

/// A temporary directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "chunkprov-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    /// Starts `moto_server` (PyPI `moto[server]`, installed by `scripts/setup.sh`). Fails the
    /// test, never skips it, when moto is missing.
    pub fn start() -> Self {
        for _ in 0..5 {
            let dir = TempDir::new("moto");
            let port = free_port();
            let child = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_RECORDER_FILEPATH", dir.0.join("recording"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start moto_server ({e}): the AWS tests need it; install it with \
                         scripts/setup.sh (pip install 'moto[server]')"
                    )
                });
            let mut moto = Moto {
                port,
                child,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = moto.child.try_wait() {
                    eprintln!("moto_server exited with {status}; retrying on another port");
                    break;
                }
                if moto.try_http("GET", "/moto-api/", b"").is_some() {
                    return moto;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("moto_server did not come up on 127.0.0.1");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn try_http(&self, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes()).ok()?;
        s.write_all(body).ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        let text_end = out.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&out[..text_end]).ok()?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let mut body = out[text_end + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        Some((status, body))
    }

    /// A plain HTTP call to moto (its `/moto-api/` endpoints).
    pub fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.try_http(method, path, body)
            .unwrap_or_else(|| panic!("moto {method} {path} failed"))
    }

    pub fn start_recording(&self) {
        assert_eq!(
            self.http("POST", "/moto-api/recorder/start-recording", b"")
                .0,
            200
        );
    }

    /// The requests moto recorded: (method, decoded URL path with query, body bytes).
    pub fn recording(&self) -> Vec<(String, String, Vec<u8>)> {
        use base64::Engine as _;
        let (status, body) = self.http("GET", "/moto-api/recorder/download-recording", b"");
        assert_eq!(status, 200);
        String::from_utf8(body)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let url = v["url"].as_str().unwrap();
                let path = url
                    .splitn(4, '/')
                    .nth(3)
                    .map(|p| format!("/{p}"))
                    .unwrap_or_default();
                let raw = v["body"].as_str().unwrap_or("");
                let body = if v["body_encoded"].as_bool() == Some(true) {
                    base64::engine::general_purpose::STANDARD
                        .decode(raw)
                        .unwrap()
                } else {
                    raw.as_bytes().to_vec()
                };
                (
                    v["method"].as_str().unwrap().to_string(),
                    percent_decode(&path),
                    body,
                )
            })
            .collect()
    }

    /// What moto received on `iot-data` `Publish`: (topic, qos, payload), in order.
    pub fn published(&self) -> Vec<(String, String, Vec<u8>)> {
        self.recording()
            .into_iter()
            .filter(|(m, p, _)| m == "POST" && p.starts_with("/topics/"))
            .map(|(_, p, b)| {
                let rest = &p["/topics/".len()..];
                let (topic, query) = rest.split_once('?').unwrap_or((rest, ""));
                (topic.to_string(), query.to_string(), b)
            })
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n =
            usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn creds() -> aws_sdk_iot::config::Credentials {
    aws_sdk_iot::config::Credentials::new("testing", "testing", None, None, "chunkprov-tests")
}

pub fn iot(endpoint: &str) -> aws_sdk_iot::Client {
    aws_sdk_iot::Client::from_conf(
        aws_sdk_iot::Config::builder()
            .behavior_version(aws_sdk_iot::config::BehaviorVersion::latest())
            .region(aws_sdk_iot::config::Region::new(REGION))
            .credentials_provider(creds())
            .endpoint_url(endpoint)
            .retry_config(aws_sdk_iot::config::retry::RetryConfig::disabled())
            .build(),
    )
}

pub fn iot_data(endpoint: &str) -> aws_sdk_iotdataplane::Client {
    aws_sdk_iotdataplane::Client::from_conf(
        aws_sdk_iotdataplane::Config::builder()
            .behavior_version(aws_sdk_iotdataplane::config::BehaviorVersion::latest())
            .region(aws_sdk_iotdataplane::config::Region::new(REGION))
            .credentials_provider(creds())
            .endpoint_url(endpoint)
            .retry_config(aws_sdk_iotdataplane::config::retry::RetryConfig::disabled())
            .build(),
    )
}

pub fn dynamodb(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new(REGION))
            .credentials_provider(creds())
            .endpoint_url(endpoint)
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build(),
    )
}

/// Creates the state table as `deploy/template.yaml` declares it: key `serial`, TTL on
/// `expires_at`, the sparse sweep index.
pub async fn create_table(ddb: &aws_sdk_dynamodb::Client, table: &str) {
    use aws_sdk_dynamodb::types::*;
    let attr = |n: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(t)
            .build()
            .unwrap()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    ddb.create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("serial", ScalarAttributeType::S))
        .attribute_definitions(attr("pending_pk", ScalarAttributeType::S))
        .attribute_definitions(attr("pending_since", ScalarAttributeType::N))
        .key_schema(key("serial", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("pending")
                .key_schema(key("pending_pk", KeyType::Hash))
                .key_schema(key("pending_since", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    ddb.update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}
