//! `chunkprov-devkit`: the local stack, the device simulator, the demo and the fleet
//! benchmark from one command line. `chunkprov-devkit <command> --help` explains each.

use anyhow::{anyhow, bail, Context, Result};
use chunkprov_devkit::broker::Topics;
use chunkprov_devkit::ca::{LocalPki, Pair};
use chunkprov_devkit::demo::{self, DemoConfig};
use chunkprov_devkit::fleet::{self, Arrival, FleetConfig};
use chunkprov_devkit::sim::{DeviceSpec, Endpoints, Limits, Mode, Outcome, Simulator};
use chunkprov_devkit::stack::{LocalStack, StackConfig};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "chunkprov-devkit",
    version,
    about = "chunkprov on one machine: a local AWS IoT stack around the real Lambda binary, simulated devices, the end-to-end demo and the fleet benchmark",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the end-to-end demo: start the local stack, provision one device in CSR mode with
    /// 256-byte packets showing each step, prove the new certificate with a TLS connection,
    /// stop everything.
    Demo(DemoArgs),
    /// Provision a fleet of simulated devices against a fresh local stack and print devices
    /// per second, p50/p99 latency, messages per device and how many were verified.
    Fleet(FleetArgs),
    /// Run the local stack in the foreground until Ctrl-C; `device` then simulates devices
    /// against it.
    Stack(StackArgs),
    /// Simulate one device against a running local stack or a real AWS IoT endpoint.
    Device(DeviceArgs),
    /// Create a claim certificate for a production batch, locally or in an AWS account.
    Claim(ClaimArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    /// The device makes its key and sends a CSR (the default).
    Csr,
    /// The cloud makes the key and sends it in the bundle (opt-in on the cloud side).
    Key,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Csr => Mode::Csr,
            ModeArg::Key => Mode::Key,
        }
    }
}

#[derive(Args)]
struct DeviceShape {
    /// CSR or key mode.
    #[arg(long, value_enum, default_value = "csr")]
    mode: ModeArg,
    /// The largest MQTT packet the device can receive, bytes (256 to 16384).
    #[arg(long, default_value_t = 256)]
    packet_limit: u32,
    /// Frames in flight (1 to 16).
    #[arg(long, default_value_t = 4)]
    window: u16,
}

#[derive(Args)]
struct StackShape {
    /// Concurrent Lambda invocations (the template's ReservedConcurrency).
    #[arg(long, default_value_t = 5)]
    concurrency: usize,
    /// Hold every IoT API to AWS's default rate (RegisterThing about 10 per second).
    #[arg(long)]
    aws_rates: bool,
    /// The Lambda binary to run (default: build chunkprov-lambda once, dev profile).
    #[arg(long, env = "CHUNKPROV_LAMBDA_BIN")]
    lambda_binary: Option<PathBuf>,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    device: DeviceShape,
    /// The device's serial number.
    #[arg(long, default_value = "352656100000001")]
    serial: String,
    /// Concurrent Lambda invocations.
    #[arg(long, default_value_t = 5)]
    concurrency: usize,
    /// The Lambda binary to run (default: build chunkprov-lambda once, dev profile).
    #[arg(long, env = "CHUNKPROV_LAMBDA_BIN")]
    lambda_binary: Option<PathBuf>,
    /// Keep the state directory (CAs, certificates, things, flash, logs) here instead of a
    /// temporary one removed at the end.
    #[arg(long)]
    state: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ArrivalArg {
    /// All devices at once.
    Burst,
    /// Evenly spaced at --rate per second.
    Ramp,
}

#[derive(Args)]
struct FleetArgs {
    /// How many devices.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// How they arrive.
    #[arg(long, value_enum, default_value = "burst")]
    arrival: ArrivalArg,
    /// Arrivals per second for --arrival ramp.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// How long a device waits before asking again, ms (keep it above the queueing delay).
    #[arg(long, default_value_t = 120_000)]
    device_timeout_ms: u32,
    #[command(flatten)]
    device: DeviceShape,
    #[command(flatten)]
    stack: StackShape,
    /// Keep the state directory here instead of a temporary one removed at the end.
    #[arg(long)]
    state: Option<PathBuf>,
}

#[derive(Args)]
struct StackArgs {
    /// The state directory (kept: CAs, claim certificates, things, logs).
    #[arg(long, default_value = "chunkprov-state")]
    state: PathBuf,
    /// Serve requests without a CSR (KEY_MODE=allow).
    #[arg(long)]
    key_mode: bool,
    #[command(flatten)]
    stack: StackShape,
}

#[derive(Args)]
struct DeviceArgs {
    /// The device's serial number.
    #[arg(long)]
    serial: String,
    #[command(flatten)]
    device: DeviceShape,
    /// Against the local stack running with `stack --state DIR` (the default).
    #[arg(long, default_value = "chunkprov-state")]
    state: PathBuf,
    /// Production batch whose claim certificate to use (local stack).
    #[arg(long, default_value = "batch-1")]
    batch: String,
    /// Against AWS IoT instead: the account's data endpoint (`aws iot describe-endpoint
    /// --endpoint-type iot:Data-ATS`).
    #[arg(long, requires_all = ["claim_cert", "claim_key", "server_ca"])]
    endpoint: Option<String>,
    /// MQTT port of --endpoint.
    #[arg(long, default_value_t = 8883)]
    port: u16,
    /// Claim certificate PEM (with --endpoint).
    #[arg(long)]
    claim_cert: Option<PathBuf>,
    /// Claim private key PEM (with --endpoint).
    #[arg(long)]
    claim_key: Option<PathBuf>,
    /// Server CA PEM (with --endpoint: Amazon Root CA 1).
    #[arg(long)]
    server_ca: Option<PathBuf>,
    /// Topic prefix (the stack's TopicPrefix).
    #[arg(long, default_value = "chunkprov")]
    prefix: String,
    /// Claim client-id prefix (the stack's ClaimPrefix).
    #[arg(long, default_value = "claim-")]
    claim_prefix: String,
    /// The device's directory (flash.bin, device.key); kept between runs, so a second run
    /// resumes or reconnects with what is in flash.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Cut the power after this many frames (run again to resume).
    #[arg(long)]
    stop_after_frames: Option<usize>,
}

#[derive(Args)]
struct ClaimArgs {
    /// The production batch.
    #[arg(long)]
    batch: String,
    /// The local stack's state directory.
    #[arg(long, default_value = "chunkprov-state")]
    state: PathBuf,
    /// Create it in the AWS account of the default credential chain instead
    /// (CreateKeysAndCertificate, then AttachPolicy).
    #[arg(long, requires = "policy")]
    aws: bool,
    /// The claim policy to attach (the stack output ClaimPolicyName), with --aws.
    #[arg(long)]
    policy: Option<String>,
    /// Where to write `<batch>.crt` and `<batch>.key`, with --aws.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

/// A temporary directory removed on drop, or a kept one.
struct StateDir {
    path: PathBuf,
    remove: bool,
}

impl StateDir {
    fn new(kept: Option<PathBuf>, tag: &str) -> Result<Self> {
        Ok(match kept {
            Some(path) => Self {
                path,
                remove: false,
            },
            None => {
                let path =
                    std::env::temp_dir().join(format!("chunkprov-{tag}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&path);
                Self { path, remove: true }
            }
        })
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs `work` until it ends or Ctrl-C, so that on Ctrl-C everything it started is dropped
/// (processes stopped, temporary state removed) rather than left behind.
fn run_until_interrupted<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    runtime()?.block_on(async {
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    })
}

impl StateDir {
    /// Keeps a temporary directory (for its logs) and says where it is.
    fn keep_for_diagnosis(&mut self) {
        if self.remove {
            self.remove = false;
            eprintln!(
                "state kept for diagnosis in {} (logs in {}/logs)",
                self.path.display(),
                self.path.display()
            );
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Demo(a) => demo_cmd(a),
        Command::Fleet(a) => fleet_cmd(a),
        Command::Stack(a) => stack_cmd(a),
        Command::Device(a) => device_cmd(a),
        Command::Claim(a) => claim_cmd(a),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn demo_cmd(a: DemoArgs) -> Result<()> {
    let mut state = StateDir::new(a.state, "demo")?;
    let cfg = DemoConfig {
        state_dir: state.path.clone(),
        serial: a.serial,
        mode: a.device.mode.into(),
        packet_limit: a.device.packet_limit,
        window: a.device.window,
        concurrency: a.concurrency,
        lambda_binary: a.lambda_binary,
    };
    let summary = match run_until_interrupted(demo::run(&cfg)) {
        Ok(s) => s,
        Err(e) => {
            if e.to_string() != "interrupted" {
                state.keep_for_diagnosis();
            }
            return Err(e);
        }
    };
    println!("\nchunkprov demo: provisioned end to end\n{summary}");
    Ok(())
}

fn stack_config(state: &Path, s: &StackShape) -> StackConfig {
    let mut c = StackConfig::new(state.to_path_buf());
    c.concurrency = s.concurrency;
    c.aws_rates = s.aws_rates;
    c.lambda_binary = s.lambda_binary.clone();
    c
}

fn fleet_cmd(a: FleetArgs) -> Result<()> {
    if a.devices == 0 {
        bail!("--devices must be at least 1");
    }
    let mut state = StateDir::new(a.state, "fleet")?;
    let mut sc = stack_config(&state.path, &a.stack);
    sc.key_mode = matches!(a.device.mode, ModeArg::Key);
    let mut fc = FleetConfig::new(a.devices, state.path.join("devices"));
    fc.arrival = match a.arrival {
        ArrivalArg::Burst => Arrival::Burst,
        ArrivalArg::Ramp if a.rate > 0.0 => Arrival::Ramp(a.rate),
        ArrivalArg::Ramp => bail!("--rate must be above 0"),
    };
    fc.mode = a.device.mode.into();
    fc.packet_limit = a.device.packet_limit;
    fc.window = a.device.window;
    fc.device_timeout_ms = a.device_timeout_ms;
    fc.progress = true;
    let rates = if a.stack.aws_rates {
        "IoT APIs held to AWS's default rates"
    } else {
        "IoT APIs unthrottled"
    };
    eprintln!(
        "fleet: {} devices, {}; {rates}; {} Lambda processes",
        a.devices, fc.arrival, a.stack.concurrency
    );
    let report = run_until_interrupted(async {
        let stack = LocalStack::start(sc).await?;
        eprintln!("stack up; devices arriving");
        fleet::run(&stack, &fc).await
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            if e.to_string() != "interrupted" {
                state.keep_for_diagnosis();
            }
            return Err(e);
        }
    };
    println!("\nchunkprov fleet ({rates})\n{}", report.summary());
    if report.verified() != report.devices.len() {
        state.keep_for_diagnosis();
        bail!(
            "{} of {} devices not verified",
            report.devices.len() - report.verified(),
            report.devices.len()
        );
    }
    Ok(())
}

fn stack_cmd(a: StackArgs) -> Result<()> {
    let mut sc = stack_config(&a.state, &a.stack);
    sc.key_mode = a.key_mode;
    runtime()?.block_on(async {
        let stack = LocalStack::start(sc).await?;
        let info = serde_json::json!({
            "claim_port": stack.broker.claim_port,
            "device_port": stack.broker.device_port,
            "prefix": stack.config.topics.prefix,
            "claim_prefix": stack.config.topics.claim_prefix,
        });
        let path = a.state.join("stack.json");
        std::fs::write(&path, info.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "chunkprov local stack running (state {})",
            a.state.display()
        );
        println!("  claim listener   127.0.0.1:{}", stack.broker.claim_port);
        println!("  device listener  127.0.0.1:{}", stack.broker.device_port);
        println!("  IoT emulator     {}", stack.iot_endpoint());
        println!("  DynamoDB (moto)  {}", stack.moto.endpoint());
        println!(
            "  Lambda           {} ({} processes)",
            stack.functions.invoke_url(),
            stack.config.concurrency
        );
        println!("  logs             {}", a.state.join("logs").display());
        println!(
            "simulate a device: chunkprov-devkit device --state {} --serial 352656100000002",
            a.state.display()
        );
        println!("Ctrl-C stops everything");
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        let _ = std::fs::remove_file(&path);
        Ok(())
    })
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn device_cmd(a: DeviceArgs) -> Result<()> {
    let (endpoints, topics) = match &a.endpoint {
        Some(host) => {
            let need = |p: &Option<PathBuf>, what: &str| -> Result<String> {
                read(
                    p.as_deref()
                        .ok_or_else(|| anyhow!("{what} is required with --endpoint"))?,
                )
            };
            (
                Endpoints {
                    host: host.clone(),
                    claim_port: a.port,
                    device_port: a.port,
                    server_ca_pem: need(&a.server_ca, "--server-ca")?,
                    claim: Pair {
                        cert_pem: need(&a.claim_cert, "--claim-cert")?,
                        key_pem: need(&a.claim_key, "--claim-key")?,
                    },
                },
                Topics {
                    prefix: a.prefix.clone(),
                    claim_prefix: a.claim_prefix.clone(),
                },
            )
        }
        None => {
            let info_path = a.state.join("stack.json");
            let info: serde_json::Value = serde_json::from_str(&read(&info_path).context(
                "no local stack is running there: start one with `chunkprov-devkit stack` (or give --endpoint)",
            )?)
            .context("stack.json")?;
            let port = |k: &str| -> Result<u16> {
                info[k]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| anyhow!("stack.json: no {k}"))
            };
            let pki = LocalPki::open(&a.state)?;
            (
                Endpoints {
                    host: chunkprov_devkit::mqtt::HOST.into(),
                    claim_port: port("claim_port")?,
                    device_port: port("device_port")?,
                    server_ca_pem: pki.server.cert_pem().to_string(),
                    claim: pki.claim_certificate(&a.batch)?,
                },
                Topics {
                    prefix: info["prefix"].as_str().unwrap_or("chunkprov").into(),
                    claim_prefix: info["claim_prefix"].as_str().unwrap_or("claim-").into(),
                },
            )
        }
    };
    let dir = a
        .dir
        .clone()
        .unwrap_or_else(|| a.state.join("devices").join(&a.serial));
    let mut spec = DeviceSpec::new(&a.serial, dir);
    spec.topics = topics;
    spec.mode = a.device.mode.into();
    spec.packet_limit = a.device.packet_limit;
    spec.window = a.device.window;
    spec.verbose = true;
    let limits = Limits {
        stop_after_frames: a.stop_after_frames,
        deadline: Duration::from_secs(300),
    };
    let report = run_until_interrupted(async {
        let mut sim = Simulator::open(spec, endpoints)?;
        sim.run(&limits).await
    })?;
    match report.outcome {
        Some(Outcome::Done(p)) => {
            println!(
                "provisioned: thing {}, certificate {}, slot {:?}; {} messages sent, {} received",
                p.thing_name,
                p.certificate_id,
                p.slot,
                report.published.len(),
                report.received
            );
            Ok(())
        }
        Some(Outcome::Stopped) => {
            println!(
                "power cut after {} frames; run the same command again to resume",
                report.frames.len()
            );
            Ok(())
        }
        other => bail!("the device did not finish: {other:?}"),
    }
}

fn claim_cmd(a: ClaimArgs) -> Result<()> {
    if !a.aws {
        LocalPki::open(&a.state)?.claim_certificate(&a.batch)?;
        println!(
            "claim certificate for batch {} (CN claim-{}): {}/claims/{}.crt and .key",
            a.batch,
            a.batch,
            a.state.display(),
            a.batch
        );
        return Ok(());
    }
    let policy = a
        .policy
        .ok_or_else(|| anyhow!("--policy is required with --aws"))?;
    runtime()?.block_on(async {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let iot = aws_sdk_iot::Client::new(&sdk);
        let out = iot
            .create_keys_and_certificate()
            .set_as_active(true)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "CreateKeysAndCertificate: {}",
                    aws_sdk_iot::error::DisplayErrorContext(&e)
                )
            })?;
        let (Some(arn), Some(cert), Some(keys)) =
            (out.certificate_arn(), out.certificate_pem(), out.key_pair())
        else {
            bail!("CreateKeysAndCertificate returned no certificate or key");
        };
        let key = keys
            .private_key()
            .ok_or_else(|| anyhow!("CreateKeysAndCertificate returned no private key"))?;
        iot.attach_policy()
            .policy_name(&policy)
            .target(arn)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "AttachPolicy {policy}: {}",
                    aws_sdk_iot::error::DisplayErrorContext(&e)
                )
            })?;
        std::fs::create_dir_all(&a.out)?;
        let crt = a.out.join(format!("{}.crt", a.batch));
        let keyp = a.out.join(format!("{}.key", a.batch));
        std::fs::write(&crt, cert).with_context(|| format!("writing {}", crt.display()))?;
        chunkprov_devkit::ca::write_private(&keyp, key)?;
        println!(
            "claim certificate {} for batch {} with policy {policy}: {} and {}",
            out.certificate_id().unwrap_or_default(),
            a.batch,
            crt.display(),
            keyp.display()
        );
        Ok(())
    })
}
