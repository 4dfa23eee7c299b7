//! The end-to-end demo: the local stack, one device provisioned in CSR mode with small
//! packets, each step shown, the new certificate proven by a TLS connection, everything
//! stopped.

use crate::ca::Pair;
use crate::sim::{DeviceSpec, Limits, Mode, Outcome, Simulator};
use crate::stack::{LocalStack, StackConfig};
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the demo does.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The stack's state directory.
    pub state_dir: PathBuf,
    /// The device's serial.
    pub serial: String,
    /// CSR (default) or key mode.
    pub mode: Mode,
    /// The device's packet limit.
    pub packet_limit: u32,
    /// Frames in flight.
    pub window: u16,
    /// Lambda processes.
    pub concurrency: usize,
    /// The Lambda binary (`None`: built once, dev profile).
    pub lambda_binary: Option<PathBuf>,
}

/// What the demo showed.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    /// The device's serial.
    pub serial: String,
    /// CSR or key mode.
    pub mode: Mode,
    /// The thing it became.
    pub thing_name: String,
    /// Its certificate id.
    pub certificate_id: String,
    /// Bundle length and frames.
    pub bundle: (u32, u16),
    /// The packet limit it declared.
    pub packet_limit: u32,
    /// Messages it published and received.
    pub sent: usize,
    /// Messages received.
    pub received: usize,
    /// From the device's start to its confirmation.
    pub provisioning: Duration,
    /// Everything, stack start-up and shutdown included.
    pub total: Duration,
}

impl std::fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Csr => "CSR mode: the private key never left the device",
            Mode::Key => "key mode: the key came in the bundle",
        };
        writeln!(f, "device        {} ({mode})", self.serial)?;
        writeln!(f, "thing         {}", self.thing_name)?;
        writeln!(
            f,
            "certificate   {} (ACTIVE, signed by the local device CA, attached to the thing)",
            self.certificate_id
        )?;
        writeln!(
            f,
            "bundle        {} bytes in {} frames, packets of at most {} bytes",
            self.bundle.0, self.bundle.1, self.packet_limit
        )?;
        writeln!(
            f,
            "messages      {} sent, {} received by the device",
            self.sent, self.received
        )?;
        writeln!(
            f,
            "proof         a new TLS connection with the certificate from flash was accepted on the device listener"
        )?;
        writeln!(
            f,
            "time          {:.2} s provisioning, {:.2} s in all",
            self.provisioning.as_secs_f64(),
            self.total.as_secs_f64()
        )?;
        write!(f, "stopped       brokers, IoT emulator, moto, Runtime API and Lambda processes: none left listening")
    }
}

fn step(t0: Instant, what: &str) {
    eprintln!("[{:>6.2} s] {what}", t0.elapsed().as_secs_f64());
}

/// Runs the demo.
pub async fn run(cfg: &DemoConfig) -> Result<DemoSummary> {
    let t0 = Instant::now();
    step(
        t0,
        "starting the local stack (first run builds the Lambda, dev profile)",
    );
    let mut sc = StackConfig::new(cfg.state_dir.clone());
    sc.concurrency = cfg.concurrency;
    sc.key_mode = cfg.mode == Mode::Key;
    sc.lambda_binary = cfg.lambda_binary.clone();
    let stack = LocalStack::start(sc).await?;
    let ports = stack.ports();
    step(
        t0,
        &format!(
            "stack up: claim broker 127.0.0.1:{} (claim certificates), device broker 127.0.0.1:{} (device certificates), IoT emulator {}, moto (DynamoDB) {}, Lambda Runtime API {} with {} Lambda processes, topic rules subscribed",
            stack.broker.claim_port,
            stack.broker.device_port,
            stack.iot_endpoint(),
            stack.moto.endpoint(),
            stack.functions.invoke_url(),
            cfg.concurrency
        ),
    );
    let endpoints = stack.endpoints("demo")?;
    step(
        t0,
        "claim certificate for batch \"demo\" (CN claim-demo), signed by the local claim CA",
    );
    // A new device every time, even in a kept state directory.
    let device_dir = cfg.state_dir.join("devices").join(&cfg.serial);
    let _ = std::fs::remove_dir_all(&device_dir);
    let mut spec = DeviceSpec::new(&cfg.serial, device_dir);
    spec.topics = stack.config.topics.clone();
    spec.mode = cfg.mode;
    spec.packet_limit = cfg.packet_limit;
    spec.window = cfg.window;
    spec.verbose = true;
    step(
        t0,
        &format!(
            "device {}: {} mode, packet limit {} bytes, window {}",
            cfg.serial,
            if cfg.mode == Mode::Csr { "CSR" } else { "key" },
            cfg.packet_limit,
            cfg.window
        ),
    );
    let started = Instant::now();
    let mut sim = Simulator::open(spec, endpoints.clone())?;
    let report = sim.run(&Limits::default()).await?;
    let provisioning = started.elapsed();
    let p = match &report.outcome {
        Some(Outcome::Done(p)) => p.clone(),
        other => bail!(
            "the device did not finish: {other:?}\nsteps:\n  {}\nLambda logs: {}",
            report.log.join("\n  "),
            cfg.state_dir.join("logs").display()
        ),
    };
    step(t0, "verifying: chain to the device CA, the device's own key, ACTIVE and attached to the thing in the control plane");
    stack.verify(&p).await?;
    step(t0, &format!("proving: new TLS connection to the device listener as {} with the certificate and key from flash", p.thing_name));
    let pair = Pair {
        cert_pem: p.certificate_pem.clone(),
        key_pem: p.key_pem.clone(),
    };
    stack
        .prove_credentials(&pair, &endpoints.server_ca_pem, &p.thing_name)
        .await
        .context("the broker refused the new certificate")?;
    step(t0, "accepted (CONNACK 0)");
    if stack
        .prove_credentials(&endpoints.claim, &endpoints.server_ca_pem, &p.thing_name)
        .await
        .is_ok()
    {
        bail!("the claim certificate was accepted on the device listener");
    }
    step(t0, "and the claim certificate is refused there");
    let bundle = report
        .bundle
        .ok_or_else(|| anyhow!("no frame was received"))?;
    step(t0, "stopping the stack");
    drop(stack);
    // Processes are reaped by then; the emulator's listener closes as its task winds down.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let still: Vec<u16> = ports
            .iter()
            .copied()
            .filter(|&port| crate::broker::listening(port))
            .collect();
        if still.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("ports still listening after the stack stopped: {still:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(DemoSummary {
        serial: cfg.serial.clone(),
        mode: cfg.mode,
        thing_name: p.thing_name,
        certificate_id: p.certificate_id,
        bundle,
        packet_limit: cfg.packet_limit,
        sent: report.published.len(),
        received: report.received,
        provisioning,
        total: t0.elapsed(),
    })
}
