//! The Lambda running locally behind a Lambda Runtime API: ONE `cargo lambda watch
//! --only-lambda-apis` (PyPI `cargo-lambda`) and as many processes of the prebuilt function
//! binary as the function's reserved concurrency, all polling that one Runtime API.
//!
//! # What `cargo lambda watch --only-lambda-apis` does (cargo-lambda 1.9, checked by hand and
//! by `tests/services.rs`)
//!
//! - It serves the invoke endpoint (`POST /2015-03-31/functions/_/invocations`, function `_`
//!   when it does not start the function itself; another name makes it look for a binary of
//!   that name in the Cargo project it was started in) and the Runtime API under
//!   `http://<address>:<port>/.rt`.
//! - Invocations queue, and each one goes to whichever process is waiting in
//!   `GET …/runtime/invocation/next`: N processes serve N invocations at once (5 processes,
//!   5 invocations of 2 s each: 2.07 s in all). A process that is busy is simply not asking.
//! - The function's answer comes back with HTTP 200. A function error (the handler returned
//!   `Err`, which the runtime posts to `…/invocation/<id>/error`) comes back with **HTTP 500**
//!   and the runtime's error document as the body, `{"errorType": …, "errorMessage": …}`
//!   (AWS's Invoke API answers 200 with an `X-Amz-Function-Error` header instead; both are
//!   read as [`Invocation::ok`] = false).
//! - **Any** other HTTP request to the port (even `GET /`) is turned into an invocation (an
//!   API Gateway event), so readiness is checked from `/proc/net/tcp`, never with a request.
//! - The `Lambda-Runtime-Deadline-Ms` it hands out is a constant `600000` (not a time since the
//!   epoch), so a function computing its remaining time from it sees the deadline long past.
//!
//! cargo-lambda reads the Cargo project of its working directory at start-up; it is started in
//! a stub project of its own under the log directory, so it never looks at (or builds) the
//! workspace.
//!
//! The function processes get an environment like a Lambda's: the runtime's variables,
//! `PATH`, and [`FunctionConfig::env`], nothing else inherited (no developer credentials or
//! profiles leak in). Their output (stdout and stderr) goes to `<log_dir>/<name>-<i>.log`.

use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::broker::{die_with_parent, listening};
use crate::moto::kill_group;

/// How to install cargo-lambda, quoted in every error about a missing one.
pub const CARGO_LAMBDA_HINT: &str = "install it with `python3 -m pip install cargo-lambda` \
     (then `pyenv rehash` under pyenv) or `cargo install cargo-lambda`";

/// What the function binary logs once it is ready to take invocations.
pub const INITIALIZED: &str = "initialized: waiting for invocations";

/// How long [`Functions::invoke`] waits by default: the template's `MaximumEventAgeInSeconds`
/// (an event queued longer than that is dropped by AWS's async invocation).
pub const DEFAULT_INVOKE_TIMEOUT: Duration = Duration::from_secs(600);

/// The memory size the function is declared with (`deploy/template.yaml`'s `MemorySize`).
pub const MEMORY_SIZE_MB: u32 = 128;

/// The function name cargo-lambda's invoke endpoint routes to the `--only-lambda-apis`
/// Runtime API.
const ROUTED_NAME: &str = "_";

/// How to run the function.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// The function's executable (e.g. [`lambda_binary`]).
    pub binary: PathBuf,
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`, log file names).
    pub name: String,
    /// How many processes run it: the most invocations served at once (the template's
    /// reserved concurrency).
    pub concurrency: usize,
    /// The function's own environment variables (`TABLE_NAME`, endpoints, credentials, …),
    /// applied after the runtime's.
    pub env: Vec<(String, String)>,
    /// Where the logs go (`runtime-api.log`, `<name>-<i>.log`).
    pub log_dir: PathBuf,
}

/// What an invocation answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// False when the function returned an error.
    pub ok: bool,
    /// The function's answer, or its error document (`{"errorType": …, "errorMessage": …}`);
    /// a body that is not JSON is given as a JSON string.
    pub body: serde_json::Value,
}

/// The running function: the Runtime API and its processes. Dropping it kills them all (each
/// in its own process group, so cargo-lambda's children go too) and reaps them.
pub struct Functions {
    runtime: Option<Child>,
    processes: Vec<Child>,
    port: u16,
    logs: Vec<PathBuf>,
    runtime_log: PathBuf,
    invoke_timeout: Duration,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn read_log(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

impl Functions {
    /// Starts the Runtime API and `cfg.concurrency` processes of `cfg.binary`; returns once
    /// every process has logged [`INITIALIZED`]. A process that exits first fails the start
    /// with its log; a missing cargo-lambda is named with its install command.
    pub fn start(cfg: FunctionConfig) -> Result<Self> {
        if cfg.concurrency == 0 {
            bail!("a function needs at least one process (concurrency 0)");
        }
        if !cfg.binary.is_file() {
            bail!(
                "the function binary {} does not exist",
                cfg.binary.display()
            );
        }
        fs::create_dir_all(&cfg.log_dir)
            .with_context(|| format!("creating {}", cfg.log_dir.display()))?;
        let (runtime, port, runtime_log) = start_runtime_api(&cfg.log_dir)?;
        let mut f = Self {
            runtime: Some(runtime),
            processes: Vec::new(),
            port,
            logs: Vec::new(),
            runtime_log,
            invoke_timeout: DEFAULT_INVOKE_TIMEOUT,
        };
        for i in 0..cfg.concurrency {
            let log = cfg.log_dir.join(format!("{}-{i}.log", cfg.name));
            let out =
                fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
            let err = out.try_clone()?;
            let mut cmd = Command::new(&cfg.binary);
            cmd.env_clear();
            if let Some(path) = std::env::var_os("PATH") {
                cmd.env("PATH", path);
            }
            cmd.env("AWS_LAMBDA_RUNTIME_API", f.runtime_api())
                .env("AWS_LAMBDA_FUNCTION_NAME", &cfg.name)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env(
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                    MEMORY_SIZE_MB.to_string(),
                )
                .env(
                    "AWS_LAMBDA_LOG_GROUP_NAME",
                    format!("/aws/lambda/{}", cfg.name),
                )
                .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("local/{i}"))
                .env("RUST_LOG", "info")
                .envs(cfg.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0);
            die_with_parent(&mut cmd);
            let child = cmd
                .spawn()
                .with_context(|| format!("starting {}", cfg.binary.display()))?;
            f.processes.push(child);
            f.logs.push(log);
        }
        f.wait_initialized(Duration::from_secs(60))?;
        Ok(f)
    }

    fn wait_initialized(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut ready = vec![false; self.processes.len()];
        while !ready.iter().all(|&r| r) {
            for (i, c) in self.processes.iter_mut().enumerate() {
                if ready[i] {
                    continue;
                }
                let log = read_log(&self.logs[i]);
                if log.contains(INITIALIZED) {
                    ready[i] = true;
                } else if let Ok(Some(status)) = c.try_wait() {
                    bail!(
                        "function process {i} exited ({status}) before it was initialized; \
                         {}:\n{}",
                        self.logs[i].display(),
                        tail(&log, 40)
                    );
                }
            }
            if Instant::now() > deadline {
                let late: Vec<_> = (0..ready.len()).filter(|&i| !ready[i]).collect();
                bail!(
                    "function processes {late:?} not initialized within {timeout:?}; first log:\n{}",
                    tail(&read_log(&self.logs[late[0]]), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// How long [`Functions::invoke`] waits for an answer, queueing included (default
    /// [`DEFAULT_INVOKE_TIMEOUT`]).
    pub fn with_invoke_timeout(mut self, timeout: Duration) -> Self {
        self.invoke_timeout = timeout;
        self
    }

    /// The invoke endpoint (`POST` an event here, as `cargo lambda invoke` does).
    pub fn invoke_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/2015-03-31/functions/{ROUTED_NAME}/invocations",
            self.port
        )
    }

    /// The Runtime API the processes poll (their `AWS_LAMBDA_RUNTIME_API`).
    pub fn runtime_api(&self) -> String {
        format!("http://127.0.0.1:{}/.rt", self.port)
    }

    /// How many processes serve invocations.
    pub fn concurrency(&self) -> usize {
        self.processes.len()
    }

    /// The log file of each function process, in process order.
    pub fn logs(&self) -> &[PathBuf] {
        &self.logs
    }

    /// cargo-lambda's log file.
    pub fn runtime_api_log(&self) -> &Path {
        &self.runtime_log
    }

    /// Invokes the function synchronously (RequestResponse) with `event` and waits for its
    /// answer; the invocation queues at the Runtime API while every process is busy. `Ok` with
    /// `ok: false` when the function returned an error; `Err` when the invocation could not be
    /// made or answered (no answer within the invoke timeout, an unexpected HTTP status).
    pub async fn invoke(&self, event: &serde_json::Value) -> Result<Invocation> {
        let body = serde_json::to_vec(event).context("encoding the event")?;
        let path = format!("/2015-03-31/functions/{ROUTED_NAME}/invocations");
        let r = http_request(self.port, "POST", &path, &body, self.invoke_timeout)
            .await
            .context("invoking the function")?;
        let json = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&r.body).into_owned())
        });
        let function_error = r.header("x-amz-function-error").is_some()
            || (r.status == 500 && json.get("errorType").is_some());
        match r.status {
            200 | 500 if function_error => Ok(Invocation {
                ok: false,
                body: json,
            }),
            200 => Ok(Invocation {
                ok: true,
                body: json,
            }),
            s => Err(anyhow!("invoke: HTTP {s}: {json}")),
        }
    }

    /// Kills the function processes and the Runtime API (process groups) and reaps them; also
    /// done on drop.
    pub fn stop(&mut self) {
        for mut c in self.processes.drain(..) {
            kill_group(&mut c);
        }
        if let Some(mut c) = self.runtime.take() {
            kill_group(&mut c);
        }
    }
}

impl Drop for Functions {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `cargo lambda watch --only-lambda-apis` on a free loopback port, in a stub Cargo
/// project under `log_dir`; returns once it listens.
fn start_runtime_api(log_dir: &Path) -> Result<(Child, u16, PathBuf)> {
    let project = log_dir.join("runtime-api");
    fs::create_dir_all(&project).with_context(|| format!("creating {}", project.display()))?;
    // Its own workspace, so a log directory inside another project is not taken for a member.
    fs::write(
        project.join("Cargo.toml"),
        "# generated by chunkprov-devkit: the project `cargo lambda watch` starts in\n\
         [package]\nname = \"chunkprov-runtime-api\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         publish = false\n\n[[bin]]\nname = \"_\"\npath = \"main.rs\"\n\n[workspace]\n",
    )?;
    fs::write(project.join("main.rs"), "fn main() {}\n")?;
    let log = log_dir.join("runtime-api.log");
    let mut last = String::new();
    // A free port can be taken between finding it and binding it: try a few.
    for _ in 0..3 {
        let port = free_port()?;
        let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(cargo());
        cmd.args(["lambda", "watch", "--only-lambda-apis", "--invoke-address"])
            .args(["127.0.0.1", "--invoke-port", &port.to_string()])
            .current_dir(&project)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting `cargo lambda watch`; {CARGO_LAMBDA_HINT}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let text = read_log(&log);
                if text.contains("no such command") || text.contains("no such subcommand") {
                    bail!(
                        "cargo-lambda is not installed; {CARGO_LAMBDA_HINT}\n{}",
                        tail(&text, 10)
                    );
                }
                last = format!(
                    "`cargo lambda watch` exited ({status}):\n{}",
                    tail(&text, 20)
                );
                break;
            }
            if listening(port) {
                return Ok((child, port, log));
            }
            if Instant::now() > deadline {
                kill_group(&mut child);
                bail!(
                    "`cargo lambda watch` did not listen within 60 s; {}:\n{}",
                    log.display(),
                    tail(&read_log(&log), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    bail!("{last}\n({CARGO_LAMBDA_HINT})")
}

/// The function binary: `$CHUNKPROV_LAMBDA_BIN` if set; else `chunkprov-lambda` built (dev
/// profile, `cargo build -p chunkprov-lambda --bin chunkprov-lambda` in this workspace, with
/// the caller's `CARGO_TARGET_DIR`) once per process, its path taken from cargo's own report.
pub fn lambda_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("CHUNKPROV_LAMBDA_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("CHUNKPROV_LAMBDA_BIN={} is not a file", p.display());
        }
        return Ok(p);
    }
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.as_ref() {
        return Ok(p.clone());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace root")?;
    let out = Command::new(cargo())
        .args([
            "build",
            "-p",
            "chunkprov-lambda",
            "--bin",
            "chunkprov-lambda",
        ])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build -p chunkprov-lambda")?;
    if !out.status.success() {
        bail!("cargo build -p chunkprov-lambda failed ({})", out.status);
    }
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "chunkprov-lambda")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo did not report the chunkprov-lambda executable")?;
    *built = Some(exe.clone());
    Ok(exe)
}

/// An HTTP answer.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to `127.0.0.1:port` (`Connection: close`, JSON body), answered within
/// `timeout`. Loopback only, no TLS: all the local stack needs.
pub(crate) async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        parse_response(&out)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow!("no answer from 127.0.0.1:{port}{path} within {timeout:?}"))?
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("HTTP answer without a complete head ({} bytes)", raw.len()))?;
    let head = std::str::from_utf8(&raw[..end]).context("HTTP head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad HTTP status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut r = HttpResponse {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    };
    if r.header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        r.body = dechunk(&r.body)?;
    } else if let Some(n) = r.header("content-length").and_then(|v| v.parse().ok()) {
        if r.body.len() < n {
            bail!("HTTP body cut short: {} of {n} bytes", r.body.len());
        }
        r.body.truncate(n);
    }
    Ok(r)
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let i = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunked body"))?;
        let size = std::str::from_utf8(&b[..i])?;
        let size = size.split(';').next().unwrap_or_default().trim();
        let n = usize::from_str_radix(size, 16).context("bad chunk size")?;
        if n == 0 {
            return Ok(out);
        }
        let chunk = b
            .get(i + 2..i + 2 + n)
            .ok_or_else(|| anyhow!("chunked body cut short"))?;
        out.extend_from_slice(chunk);
        b = b.get(i + 2 + n + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_are_parsed() {
        let r = parse_response(
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 5\r\nX-Amz-Function-Error: Unhandled\r\n\r\n{\"a\"}",
        )
        .unwrap();
        assert_eq!(r.status, 500);
        assert_eq!(r.body, b"{\"a\"}");
        assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc").is_err());
        assert!(parse_response(b"garbage").is_err());
    }
}
