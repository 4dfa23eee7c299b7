//! Many simulated devices against one [`LocalStack`]: arrivals at a stated pattern, every
//! device's outcome verified, throughput and latency measured.

use crate::sim::{DeviceSpec, Limits, Mode, Outcome, Provisioned, Simulator};
use crate::stack::LocalStack;
use anyhow::{Context, Result};
use chunkprov_iot_emulator::OpStats;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How devices arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// All at once.
    Burst,
    /// Evenly spaced, this many per second.
    Ramp(f64),
}

impl std::fmt::Display for Arrival {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arrival::Burst => write!(f, "all at once"),
            Arrival::Ramp(r) => write!(f, "a ramp of {r} per second"),
        }
    }
}

/// A fleet run.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// How many devices.
    pub devices: usize,
    /// How they arrive.
    pub arrival: Arrival,
    /// CSR or key mode.
    pub mode: Mode,
    /// The devices' packet limit.
    pub packet_limit: u32,
    /// Frames in flight.
    pub window: u16,
    /// How long a device waits for an answer before asking again (ms): the device's retry
    /// budget must exceed the queueing delay of the arrival pattern, or devices re-ask while
    /// their first request still waits.
    pub device_timeout_ms: u32,
    /// Where the devices' flash files go.
    pub dir: PathBuf,
    /// The production batch (claim certificate).
    pub batch: String,
    /// Serial numbers are `serial_base + i`.
    pub serial_base: u64,
    /// Give up on a device after this long.
    pub deadline: Duration,
    /// Print progress once a second.
    pub progress: bool,
}

impl FleetConfig {
    /// `devices` devices in CSR mode, 256-byte packets, window 4, under `dir`.
    pub fn new(devices: usize, dir: PathBuf) -> Self {
        Self {
            devices,
            arrival: Arrival::Burst,
            mode: Mode::Csr,
            packet_limit: 256,
            window: 4,
            device_timeout_ms: 10_000,
            dir,
            batch: "fleet".into(),
            serial_base: 352_656_100_000_000,
            deadline: Duration::from_secs(1800),
            progress: false,
        }
    }
}

/// One device's run.
#[derive(Debug, Clone)]
pub struct DeviceResult {
    /// Its serial.
    pub serial: String,
    /// From its arrival to its confirmation (or failure).
    pub latency: Duration,
    /// When it ended, from the first arrival.
    pub ended: Duration,
    /// Messages it published.
    pub sent: usize,
    /// Messages it received.
    pub received: usize,
    /// Frames it received.
    pub frames: usize,
    /// Its credentials, or why it has none.
    pub outcome: Result<Provisioned, String>,
    /// Whether the credentials were checked (see [`LocalStack::verify`]), or why not.
    pub verified: Result<(), String>,
}

/// What a fleet run measured.
#[derive(Debug, Clone)]
pub struct FleetReport {
    /// The configuration.
    pub config: FleetConfig,
    /// Every device, by serial.
    pub devices: Vec<DeviceResult>,
    /// IoT API calls, throttles and failures by operation.
    pub api: BTreeMap<String, OpStats>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl FleetReport {
    /// Devices provisioned and verified.
    pub fn verified(&self) -> usize {
        self.devices
            .iter()
            .filter(|d| d.outcome.is_ok() && d.verified.is_ok())
            .count()
    }

    /// The verified devices.
    fn ok(&self) -> impl Iterator<Item = &DeviceResult> {
        self.devices
            .iter()
            .filter(|d| d.outcome.is_ok() && d.verified.is_ok())
    }

    /// From the first arrival to the last verified device's confirmation.
    pub fn span(&self) -> Duration {
        self.ok().map(|d| d.ended).max().unwrap_or_default()
    }

    /// Verified devices per second, first arrival to last verified confirmation.
    pub fn throughput(&self) -> f64 {
        self.verified() as f64 / self.span().as_secs_f64().max(1e-9)
    }

    /// The `p`-th percentile of the verified devices' latencies (arrival to confirmation).
    pub fn latency(&self, p: f64) -> Duration {
        let mut l: Vec<Duration> = self.ok().map(|d| d.latency).collect();
        l.sort();
        percentile(&l, p)
    }

    /// Mean messages sent and received per device.
    pub fn messages_per_device(&self) -> (f64, f64) {
        let n = self.devices.len().max(1) as f64;
        let sent: usize = self.devices.iter().map(|d| d.sent).sum();
        let received: usize = self.devices.iter().map(|d| d.received).sum();
        (sent as f64 / n, received as f64 / n)
    }

    /// The summary, a line per figure.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let c = &self.config;
        let mut s = String::new();
        let (sent, received) = self.messages_per_device();
        let _ = writeln!(
            s,
            "devices      {} ({:?} mode, {}-byte packets, window {}), arriving {}",
            c.devices, c.mode, c.packet_limit, c.window, c.arrival
        );
        let _ = writeln!(
            s,
            "verified     {} of {}",
            self.verified(),
            self.devices.len()
        );
        let _ = writeln!(
            s,
            "throughput   {:.1} devices/s ({} verified in {:.1} s, first arrival to last confirmation)",
            self.throughput(),
            self.verified(),
            self.span().as_secs_f64()
        );
        let _ = writeln!(
            s,
            "latency      p50 {:.2} s, p99 {:.2} s, max {:.2} s (arrival to confirmation, verified devices)",
            self.latency(50.0).as_secs_f64(),
            self.latency(99.0).as_secs_f64(),
            self.latency(100.0).as_secs_f64()
        );
        let _ = writeln!(
            s,
            "messages     {sent:.2} sent and {received:.2} received per device"
        );
        let calls: Vec<String> = self
            .api
            .iter()
            .filter(|(_, o)| o.calls > 0)
            .map(|(op, o)| {
                if o.throttled > 0 || o.failed > 0 {
                    format!(
                        "{op} {} ({} throttled, {} answered with an error)",
                        o.calls, o.throttled, o.failed
                    )
                } else {
                    format!("{op} {}", o.calls)
                }
            })
            .collect();
        let _ = writeln!(s, "IoT API      {}", calls.join(", "));
        for d in self
            .devices
            .iter()
            .filter(|d| d.outcome.is_err() || d.verified.is_err())
        {
            let why = match (&d.outcome, &d.verified) {
                (Err(e), _) | (Ok(_), Err(e)) => e.clone(),
                _ => String::new(),
            };
            let _ = writeln!(s, "FAILED       {}: {why}", d.serial);
        }
        s
    }
}

/// Runs the fleet against `stack`; every device's credentials are verified.
pub async fn run(stack: &LocalStack, cfg: &FleetConfig) -> Result<FleetReport> {
    let endpoints = stack.endpoints(&cfg.batch)?;
    std::fs::create_dir_all(&cfg.dir).with_context(|| format!("creating {}", cfg.dir.display()))?;
    let before = stack.emulator.stats();
    let done = Arc::new(AtomicUsize::new(0));
    let arrived = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(cfg.devices);
    let progress = if cfg.progress {
        let (done, arrived, n) = (done.clone(), arrived.clone(), cfg.devices);
        let emu = stack.emulator.clone();
        Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let throttled: u64 = emu.stats().values().map(|o| o.throttled).sum();
                eprintln!(
                    "  {:>6.1} s  arrived {:>5}/{n}  finished {:>5}  throttled calls {throttled}",
                    start.elapsed().as_secs_f64(),
                    arrived.load(Ordering::Relaxed),
                    done.load(Ordering::Relaxed)
                );
            }
        }))
    } else {
        None
    };
    for i in 0..cfg.devices {
        if let Arrival::Ramp(rate) = cfg.arrival {
            let at = start + Duration::from_secs_f64(i as f64 / rate.max(1e-6));
            tokio::time::sleep_until(at.into()).await;
        }
        let serial = (cfg.serial_base + i as u64).to_string();
        let mut spec = DeviceSpec::new(&serial, cfg.dir.join(&serial));
        spec.topics = stack.config.topics.clone();
        spec.mode = cfg.mode;
        spec.packet_limit = cfg.packet_limit;
        spec.window = cfg.window;
        spec.timeout_ms = cfg.device_timeout_ms;
        let ep = endpoints.clone();
        let limits = Limits {
            stop_after_frames: None,
            deadline: cfg.deadline,
        };
        let (done, arrived) = (done.clone(), arrived.clone());
        arrived.fetch_add(1, Ordering::Relaxed);
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let run = async {
                let mut sim = Simulator::open(spec, ep)?;
                sim.run(&limits).await
            };
            let r = run.await;
            let latency = t0.elapsed();
            done.fetch_add(1, Ordering::Relaxed);
            let (outcome, sent, received, frames) = match r {
                Ok(report) => (
                    match report.outcome {
                        Some(Outcome::Done(p)) => Ok(p),
                        other => Err(format!("ended {other:?}")),
                    },
                    report.published.len(),
                    report.received,
                    report.frames.len(),
                ),
                Err(e) => (Err(format!("{e:#}")), 0, 0, 0),
            };
            DeviceResult {
                serial,
                latency,
                ended: start.elapsed(),
                sent,
                received,
                frames,
                outcome,
                verified: Err("not checked".into()),
            }
        }));
    }
    let mut devices = Vec::with_capacity(cfg.devices);
    for t in tasks {
        devices.push(t.await.context("a device task panicked")?);
    }
    if let Some(p) = progress {
        p.abort();
    }
    let after = stack.emulator.stats();
    for d in &mut devices {
        if let Ok(p) = &d.outcome {
            d.verified = stack.verify(p).await.map_err(|e| format!("{e:#}"));
        }
    }
    let api = after
        .into_iter()
        .map(|(op, a)| {
            let b = before.get(&op).cloned().unwrap_or_default();
            (
                op,
                OpStats {
                    calls: a.calls - b.calls,
                    throttled: a.throttled - b.throttled,
                    failed: a.failed - b.failed,
                },
            )
        })
        .collect();
    Ok(FleetReport {
        config: cfg.clone(),
        devices,
        api,
    })
}
