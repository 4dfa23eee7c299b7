//! DynamoDB (and, for tests, IoT and its data plane) from `moto_server` (PyPI `moto[server]`),
//! started on a free loopback port, waited for, and killed (and reaped) when the [`Moto`] is
//! dropped.
//!
//! [`Moto::create_state_table`] creates the Lambda's state table exactly as
//! `deploy/template.yaml`'s `StateTable` declares it. moto's request recorder is switched on
//! ([`Moto::start_recording`]) so tests can read back what was sent to it, e.g. the iot-data
//! `Publish` calls ([`Moto::published`]).

use crate::broker::{die_with_parent, listening};
use crate::functions::http_request;
use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType,
    SseSpecification, TimeToLiveSpecification,
};
use base64::Engine as _;
use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to install `moto_server`, quoted in every error about a missing one.
pub const INSTALL_HINT: &str = "install it with `python3 -m pip install 'moto[server]'` \
     (then `pyenv rehash` under pyenv), or point CHUNKPROV_MOTO_SERVER at the executable";

/// The region the clients made here use (moto accepts any).
pub const REGION: &str = "eu-west-1";

/// The state table's sparse index the sweep queries (`deploy/template.yaml`).
pub const PENDING_INDEX: &str = "pending";

/// The TTL attribute of the state table (set only on terminal items).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// One iot-data `Publish` moto received (read from its recorder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The topic (percent-decoded).
    pub topic: String,
    /// The query string (e.g. `qos=1`).
    pub query: String,
    /// The payload.
    pub payload: Vec<u8>,
}

/// A running `moto_server`.
pub struct Moto {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

/// The `moto_server` executable: `$CHUNKPROV_MOTO_SERVER`, else `moto_server` on `PATH`.
pub fn moto_server_binary() -> Result<PathBuf> {
    find_moto(
        std::env::var_os("CHUNKPROV_MOTO_SERVER"),
        std::env::var_os("PATH").unwrap_or_default(),
    )
}

fn find_moto(explicit: Option<std::ffi::OsString>, path: std::ffi::OsString) -> Result<PathBuf> {
    if let Some(p) = explicit {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!(
                "CHUNKPROV_MOTO_SERVER={} is not a file; {INSTALL_HINT}",
                p.display()
            );
        }
        return Ok(p);
    }
    std::env::split_paths(&path)
        .map(|d| d.join("moto_server"))
        .find(|p| p.is_file())
        .with_context(|| format!("moto_server not found on PATH; {INSTALL_HINT}"))
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

impl Moto {
    /// Starts `moto_server -H 127.0.0.1 -p <free port>` with its output in
    /// `<log_dir>/moto.log` (and its recorder file beside it), and returns once it answers
    /// HTTP. Fails, naming the install command, when `moto_server` is missing or does not start.
    pub fn start(log_dir: &Path) -> Result<Self> {
        let bin = moto_server_binary()?;
        fs::create_dir_all(log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
        let log = log_dir.join("moto.log");
        let mut last = String::new();
        // A free port can be taken between finding it and moto binding it: try a few.
        for _ in 0..3 {
            let port = free_port()?;
            let out =
                fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
            let err = out.try_clone()?;
            let mut cmd = Command::new(&bin);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env(
                    "MOTO_RECORDER_FILEPATH",
                    log_dir.join("moto-recording.jsonl"),
                )
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0);
            die_with_parent(&mut cmd);
            let child = cmd
                .spawn()
                .with_context(|| format!("starting {}; {INSTALL_HINT}", bin.display()))?;
            let mut moto = Self {
                child: Some(child),
                port,
                log: log.clone(),
            };
            match moto.wait_ready(Duration::from_secs(60)) {
                Ok(()) => return Ok(moto),
                Err(e) => last = format!("{e:#}"),
            }
        }
        bail!("moto_server did not start: {last}; {INSTALL_HINT}")
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                bail!("moto_server exited ({status}); log:\n{}", self.log());
            }
            if listening(self.port) && self.get_blocking("/moto-api/") {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = self.log();
                self.stop();
                bail!("moto_server did not answer within {timeout:?}; log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A blocking `GET` answered with 200 (start-up probe, before any runtime exists).
    fn get_blocking(&self, path: &str) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
    }

    /// The endpoint URL (`http://127.0.0.1:<port>`), for `AWS_ENDPOINT_URL*`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// moto's log, for diagnostics.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A DynamoDB client for this moto (static credentials, [`REGION`]).
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(REGION))
                .credentials_provider(Credentials::new(
                    "local",
                    "local",
                    None,
                    None,
                    "chunkprov-devkit",
                ))
                .endpoint_url(self.endpoint())
                .build(),
        )
    }

    /// Creates the Lambda's state table named `name` exactly as `deploy/template.yaml`'s
    /// `StateTable` declares it: on-demand billing; key `serial` (S); the sparse global
    /// secondary index `pending` (`pending_pk` S hash, `pending_since` N range, projection ALL);
    /// TTL on `expires_at`; server-side encryption; point-in-time recovery.
    pub async fn create_state_table(&self, name: &str) -> Result<()> {
        let ddb = self.dynamodb();
        let attr = |n: &str, t: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(t)
                .build()
        };
        let key = |n: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
        };
        ddb.create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("serial", ScalarAttributeType::S)?)
            .attribute_definitions(attr("pending_pk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("pending_since", ScalarAttributeType::N)?)
            .key_schema(key("serial", KeyType::Hash)?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(PENDING_INDEX)
                    .key_schema(key("pending_pk", KeyType::Hash)?)
                    .key_schema(key("pending_since", KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()?,
            )
            .sse_specification(SseSpecification::builder().enabled(true).build())
            .send()
            .await
            .with_context(|| format!("CreateTable {name} on moto"))?;
        ddb.update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .with_context(|| format!("UpdateTimeToLive {name} on moto"))?;
        ddb.update_continuous_backups()
            .table_name(name)
            .point_in_time_recovery_specification(
                PointInTimeRecoverySpecification::builder()
                    .point_in_time_recovery_enabled(true)
                    .build()?,
            )
            .send()
            .await
            .with_context(|| format!("UpdateContinuousBackups {name} on moto"))?;
        Ok(())
    }

    async fn api(&self, method: &str, path: &str) -> Result<Vec<u8>> {
        let r = http_request(self.port, method, path, b"", Duration::from_secs(30))
            .await
            .with_context(|| format!("moto {method} {path}"))?;
        if r.status != 200 {
            bail!("moto {method} {path}: HTTP {}", r.status);
        }
        Ok(r.body)
    }

    /// Starts moto's request recorder (what it receives from then on is kept).
    pub async fn start_recording(&self) -> Result<()> {
        self.api("POST", "/moto-api/recorder/start-recording")
            .await
            .map(drop)
    }

    /// The requests moto recorded: (method, percent-decoded path with query, body).
    pub async fn recording(&self) -> Result<Vec<(String, String, Vec<u8>)>> {
        let body = self
            .api("GET", "/moto-api/recorder/download-recording")
            .await?;
        let text = String::from_utf8(body).context("moto's recording is not UTF-8")?;
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value =
                serde_json::from_str(line).context("a line of moto's recording")?;
            let url = v["url"].as_str().unwrap_or_default();
            let path = url
                .splitn(4, '/')
                .nth(3)
                .map(|p| format!("/{p}"))
                .unwrap_or_default();
            let raw = v["body"].as_str().unwrap_or("");
            let body = if v["body_encoded"].as_bool() == Some(true) {
                base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .context("a recorded body")?
            } else {
                raw.as_bytes().to_vec()
            };
            out.push((
                v["method"].as_str().unwrap_or_default().to_string(),
                percent_decode(&path),
                body,
            ));
        }
        Ok(out)
    }

    /// The iot-data `Publish` calls moto recorded since [`Moto::start_recording`], in order.
    pub async fn published(&self) -> Result<Vec<Published>> {
        Ok(self
            .recording()
            .await?
            .into_iter()
            .filter(|(m, p, _)| m == "POST" && p.starts_with("/topics/"))
            .map(|(_, p, payload)| {
                let rest = &p["/topics/".len()..];
                let (topic, query) = rest.split_once('?').unwrap_or((rest, ""));
                Published {
                    topic: topic.to_string(),
                    query: query.to_string(),
                    payload,
                }
            })
            .collect())
    }

    /// Kills moto (its whole process group) and reaps it; also done on drop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(&mut c);
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kills a child started with `process_group(0)` together with its group, and reaps it.
pub(crate) fn kill_group(c: &mut Child) {
    if let Ok(pid) = i32::try_from(c.id()) {
        // SAFETY: killpg only sends a signal; the group is the child's own (process_group(0)).
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
    let _ = c.kill();
    let _ = c.wait();
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("/topics/a%2Fb%2Fc?qos=1"),
            "/topics/a/b/c?qos=1"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn a_missing_moto_server_is_named_with_the_install_command() {
        for e in [
            find_moto(None, "/nonexistent".into()).unwrap_err(),
            find_moto(Some("/nonexistent/moto_server".into()), "".into()).unwrap_err(),
        ] {
            assert!(
                format!("{e}").contains("python3 -m pip install 'moto[server]'"),
                "{e}"
            );
        }
    }
}
