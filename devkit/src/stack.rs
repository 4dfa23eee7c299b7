//! The local stack: everything the device meets in AWS, on one machine, around the Lambda's
//! real binary.
//!
//! ```text
//!  device ──TLS──▶ claim broker ─┐ service listeners ┌─▶ rules ──invoke──▶ Runtime API ─▶ Lambda ×N
//!  (sim)   ◀─────  device broker ┘ (Mosquitto)       └── data plane ◀── emulator ◀──────┘   │
//!                                                                                  moto ◀───┘
//! ```
//!
//! - [`Broker`]: two Mosquitto processes with the claim and device ACLs.
//! - the IoT emulator (`chunkprov-iot-emulator`) in this process: the control plane the
//!   Lambda calls, backed by [`LocalPki`] (it really signs CSRs and issues keys), things and
//!   certificates on disk; its data plane's `Publish` goes to the broker through [`Bridge`];
//!   the certificates it says may act as a thing become the device listener's ACL.
//! - [`Moto`]: DynamoDB (the state table as `deploy/template.yaml` declares it).
//! - [`Functions`]: the Lambda binary, unchanged, behind `cargo lambda watch
//!   --only-lambda-apis`, as many processes as the reserved concurrency; only its endpoints
//!   point at loopback (`AWS_ENDPOINT_URL_IOT`, `AWS_ENDPOINT_URL_DYNAMODB`,
//!   `IOT_DATA_ENDPOINT`).
//! - [`Rules`]: the topic rules, invoking the Lambda with the event the rule SQL builds.
//!
//! Everything is stopped when the [`LocalStack`] is dropped.

use crate::broker::{Broker, DeviceGrant, Topics};
use crate::ca::{LocalPki, Pair};
use crate::functions::{FunctionConfig, Functions};
use crate::moto::Moto;
use crate::mqtt;
use crate::rules::{Rules, RulesConfig};
use crate::sim::{Endpoints, Provisioned};
use anyhow::{anyhow, bail, Context, Result};
use chunkprov_iot_emulator::{Authority, Emulator, Grant, Running};
use chunkprov_protocol::topic::{self, Kind};
use rumqttc::{AsyncClient, QoS};
use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The provisioning template's name, the state table's and the function's.
pub const NAME: &str = "chunkprov";
/// The device policy RegisterThing attaches.
pub const DEVICE_POLICY: &str = "chunkprov-device";
/// The region the Lambda is configured for (any would do: nothing leaves the machine).
pub const REGION: &str = "eu-west-1";

/// How to run the stack.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Where the CAs, certificates, things, broker configurations and logs live.
    pub state_dir: PathBuf,
    /// Topic prefix and claim client-id prefix (the Lambda's `TOPIC_PREFIX`, `CLAIM_PREFIX`).
    pub topics: Topics,
    /// The thing-name rule's prefix (`THING_PREFIX`).
    pub thing_prefix: String,
    /// Serve requests without a CSR (`KEY_MODE=allow`).
    pub key_mode: bool,
    /// Concurrent invocations: the template's reserved concurrency (default 5).
    pub concurrency: usize,
    /// Hold every IoT API to AWS's default rate (RegisterThing about 10 per second).
    pub aws_rates: bool,
    /// The Lambda binary; `None` builds it (dev profile) once.
    pub lambda_binary: Option<PathBuf>,
    /// Extra environment for the Lambda (e.g. `REPROVISION_CAP`).
    pub lambda_env: Vec<(String, String)>,
}

impl StackConfig {
    /// The deployment's defaults in `state_dir`.
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            state_dir,
            topics: Topics::default(),
            thing_prefix: "dev-".into(),
            key_mode: false,
            concurrency: 5,
            aws_rates: false,
            lambda_binary: None,
            lambda_env: Vec::new(),
        }
    }
}

/// The emulator's certificate authority: the local device CA.
struct LocalAuthority(Arc<LocalPki>);

impl Authority for LocalAuthority {
    fn sign_csr(&self, csr_pem: &str) -> Result<String, String> {
        self.0
            .sign_csr(csr_pem)
            .map(|i| i.cert_pem)
            .map_err(|e| format!("{e:#}"))
    }

    fn create_keys_and_certificate(&self) -> Result<(String, String, String), String> {
        let issued = self
            .0
            .issue_keys_and_certificate()
            .map_err(|e| format!("{e:#}"))?;
        let key_pem = issued.key_pem.ok_or("the local CA returned no key")?;
        let public = rcgen::KeyPair::from_pem(&key_pem)
            .map_err(|e| format!("reading the new key: {e}"))?
            .public_key_pem();
        Ok((issued.cert_pem, key_pem, public))
    }
}

/// What the data plane did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataPlaneStats {
    /// Messages handed to the broker.
    pub published: u64,
    /// Frames dropped on purpose ([`LocalStack::lose_frames_once`]).
    pub lost: u64,
}

/// Between the emulator and the brokers: its data plane publishes through the service
/// listeners, and its grants become the device listener's ACL.
pub struct Bridge {
    topics: Topics,
    // Weak: the stack owns the brokers, so dropping it stops them even while the emulator's
    // server task (which holds this bridge) is still winding down.
    broker: Weak<Broker>,
    claim_port: u16,
    claim_side: AsyncClient,
    device_side: AsyncClient,
    lose: Mutex<BTreeSet<(String, u16)>>,
    names: Mutex<HashMap<String, String>>,
    last_grants: Mutex<Vec<DeviceGrant>>,
    published: AtomicU64,
    lost: AtomicU64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Bridge {
    async fn connect(pki: &LocalPki, broker: Arc<Broker>) -> Result<Self> {
        let pair = pki.service_certificate("data-plane")?;
        let tls = mqtt::tls_config(
            pki.server.cert_pem().as_bytes(),
            pair.cert_pem.as_bytes(),
            pair.key_pem.as_bytes(),
        )?;
        let topics = broker.topics.clone();
        let mut tasks = Vec::new();
        let mut sides = Vec::new();
        for (port, id) in [
            (
                broker.claim_service_port,
                format!("{}.data-plane", topics.claim_prefix),
            ),
            (broker.device_service_port, "data-plane".to_string()),
        ] {
            let mut opts = mqtt::options(&id, port, tls.clone(), None);
            // The data plane carries every frame of a fleet.
            opts.set_inflight(1000);
            let (client, mut events) =
                mqtt::connect_with_capacity(opts, Duration::from_secs(10), 10_000)
                    .await
                    .with_context(|| format!("data plane connecting to port {port}"))?;
            tasks.push(tokio::spawn(async move {
                loop {
                    if let Err(e) = events.poll().await {
                        tracing::warn!(error = %e, "data plane connection lost; reconnecting");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }));
            sides.push(client);
        }
        let device_side = sides
            .pop()
            .ok_or_else(|| anyhow!("internal: no device side"))?;
        let claim_side = sides
            .pop()
            .ok_or_else(|| anyhow!("internal: no claim side"))?;
        Ok(Self {
            topics,
            claim_port: broker.claim_service_port,
            broker: Arc::downgrade(&broker),
            claim_side,
            device_side,
            lose: Mutex::default(),
            names: Mutex::default(),
            last_grants: Mutex::default(),
            published: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            tasks,
        })
    }

    /// Whether this publish is a frame to lose (once). Frames are decoded only while some loss
    /// is pending, so the data plane's usual path does no extra work.
    fn loses(&self, id: &str, kind: Kind, payload: &[u8]) -> bool {
        if kind != Kind::Frame {
            return false;
        }
        let mut lose = self.lose.lock().unwrap_or_else(|e| e.into_inner());
        if lose.is_empty() {
            return false;
        }
        match chunkprov_protocol::frame::decode(payload) {
            Ok((h, _)) => lose.remove(&(id.to_string(), h.index)),
            Err(_) => false,
        }
    }

    /// The data plane's counters.
    pub fn stats(&self) -> DataPlaneStats {
        DataPlaneStats {
            published: self.published.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[async_trait::async_trait]
impl chunkprov_iot_emulator::Broker for Bridge {
    async fn publish(&self, topic_name: &str, payload: Vec<u8>, qos: u8) -> Result<(), String> {
        let (id, kind) = topic::parse(&self.topics.prefix, topic_name)
            .ok_or_else(|| format!("{topic_name}: not a chunkprov topic"))?;
        if self.loses(id, kind, &payload) {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let broker = self.broker.upgrade().ok_or("the broker has stopped")?;
        let side = if broker.service_port_for(id) == self.claim_port {
            &self.claim_side
        } else {
            &self.device_side
        };
        let qos = if qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        side.publish(topic_name, qos, false, payload)
            .await
            .map_err(|e| format!("data plane: {e}"))?;
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn grants_changed(&self, grants: &[Grant]) {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let mut device: Vec<DeviceGrant> = grants
            .iter()
            .filter_map(|g| {
                let cn = match names.get(&g.certificate_id) {
                    Some(cn) => cn.clone(),
                    None => {
                        let cn = LocalPki::common_name(&g.certificate_pem).ok()?;
                        names.insert(g.certificate_id.clone(), cn.clone());
                        cn
                    }
                };
                Some(DeviceGrant {
                    username: cn,
                    thing: g.thing.clone(),
                })
            })
            .collect();
        device.sort();
        device.dedup();
        let mut last = self.last_grants.lock().unwrap_or_else(|e| e.into_inner());
        if *last == device {
            return;
        }
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        match broker.set_device_grants(&device) {
            Ok(()) => *last = device,
            Err(e) => tracing::error!(error = %e, "could not update the device listener's ACL"),
        }
    }
}

/// The running local stack.
pub struct LocalStack {
    /// How it was started.
    pub config: StackConfig,
    /// The authorities.
    pub pki: Arc<LocalPki>,
    /// The brokers.
    pub broker: Arc<Broker>,
    /// The IoT emulator (control plane, data plane).
    pub emulator: Emulator,
    /// Data plane and grants.
    pub bridge: Arc<Bridge>,
    /// The Lambda's processes and its Runtime API.
    pub functions: Arc<Functions>,
    /// The topic rules.
    pub rules: Rules,
    /// DynamoDB.
    pub moto: Moto,
    served: Running,
}

/// The provisioning template body exactly as `deploy/template.yaml` deploys it, with the
/// device policy's name filled in.
pub fn deployed_template_body(policy: &str) -> Result<String> {
    chunkprov_iot_emulator::cloudformation_template_body(
        include_str!("../../deploy/template.yaml"),
        policy,
    )
    .map_err(|e| anyhow!("deploy/template.yaml: {e}"))
}

impl LocalStack {
    /// Starts every part; fails with the reason (a missing tool names its install command).
    pub async fn start(config: StackConfig) -> Result<Self> {
        let dir = &config.state_dir;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let pki = Arc::new(LocalPki::open(dir)?);
        let broker = Arc::new(Broker::start(&pki, config.topics.clone())?);
        let bridge = Arc::new(Bridge::connect(&pki, broker.clone()).await?);
        let emulator = Emulator::open(
            &dir.join("iot"),
            Arc::new(LocalAuthority(pki.clone())),
            bridge.clone(),
        )
        .context("opening the IoT emulator's store")?;
        emulator.record_requests(false);
        emulator.put_template(NAME, &deployed_template_body(DEVICE_POLICY)?, true);
        if config.aws_rates {
            emulator.aws_rates();
        }
        let served = emulator
            .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .context("starting the IoT emulator")?;
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let moto = Moto::start(&logs)?;
        moto.create_state_table(NAME).await?;
        let binary = match &config.lambda_binary {
            Some(b) => b.clone(),
            None => crate::functions::lambda_binary()?,
        };
        let iot = served.endpoint();
        let mut env: Vec<(String, String)> = [
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", "local".into()),
            ("AWS_SECRET_ACCESS_KEY", "local".into()),
            ("AWS_ENDPOINT_URL_IOT", iot.clone()),
            ("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint()),
            ("IOT_DATA_ENDPOINT", iot),
            ("TABLE_NAME", NAME.into()),
            ("TOPIC_PREFIX", config.topics.prefix.clone()),
            ("CLAIM_PREFIX", config.topics.claim_prefix.clone()),
            ("THING_PREFIX", config.thing_prefix.clone()),
            (
                "KEY_MODE",
                if config.key_mode { "allow" } else { "deny" }.into(),
            ),
            ("TEMPLATE_NAME", NAME.into()),
            ("SERVER_CA_PEM", pki.server.cert_pem().to_string()),
            ("RUST_LOG", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.extend(config.lambda_env.iter().cloned());
        let functions = Arc::new(Functions::start(FunctionConfig {
            binary,
            name: NAME.into(),
            concurrency: config.concurrency,
            env,
            log_dir: logs.clone(),
        })?);
        let rules = Rules::start(
            &pki,
            &broker,
            functions.clone(),
            RulesConfig {
                // Invocations queue in the engine, two per Lambda process at the Runtime API:
                // `cargo lambda watch` 1.9 stops answering with hundreds of invocations open
                // at once (seen with a 1,000-device burst).
                max_in_flight: config.concurrency.max(1) * 2,
                ..RulesConfig::new(config.topics.clone())
            },
        )
        .await?;
        Ok(Self {
            config,
            pki,
            broker,
            emulator,
            bridge,
            functions,
            rules,
            moto,
            served,
        })
    }

    /// Every loopback port the stack listens on (to check that a stop left none behind).
    pub fn ports(&self) -> Vec<u16> {
        let port_of = |url: &str| -> Option<u16> {
            let rest = url.split("://").nth(1).unwrap_or(url);
            let hostport = rest.split('/').next()?;
            hostport.rsplit(':').next()?.parse().ok()
        };
        let mut ports = vec![
            self.broker.claim_port,
            self.broker.claim_service_port,
            self.broker.device_port,
            self.broker.device_service_port,
            self.served.addr.port(),
            self.moto.port(),
        ];
        ports.extend(port_of(&self.functions.invoke_url()));
        ports
    }

    /// Where the IoT emulator listens.
    pub fn iot_endpoint(&self) -> String {
        self.served.endpoint()
    }

    /// What a device of production batch `batch` is given: the listeners, the server CA and
    /// the batch's claim certificate (created on first use).
    pub fn endpoints(&self, batch: &str) -> Result<Endpoints> {
        Ok(Endpoints {
            host: mqtt::HOST.to_string(),
            claim_port: self.broker.claim_port,
            device_port: self.broker.device_port,
            server_ca_pem: self.pki.server.cert_pem().to_string(),
            claim: self.pki.claim_certificate(batch)?,
        })
    }

    /// The next delivery of frame `index` to client id `id` is lost between the cloud and the
    /// device (the broker never sees it), once per call.
    pub fn lose_frames_once(&self, id: &str, indices: &[u16]) {
        let mut lose = self.bridge.lose.lock().unwrap_or_else(|e| e.into_inner());
        for &i in indices {
            lose.insert((id.to_string(), i));
        }
    }

    /// A TLS connection to the device listener with `pair` under `client_id`: `Ok` once the
    /// broker accepted it (CONNACK).
    pub async fn prove_credentials(
        &self,
        pair: &Pair,
        server_ca_pem: &str,
        client_id: &str,
    ) -> Result<()> {
        let tls = mqtt::tls_config(
            server_ca_pem.as_bytes(),
            pair.cert_pem.as_bytes(),
            pair.key_pem.as_bytes(),
        )?;
        let (client, _events) = mqtt::connect(
            mqtt::options(client_id, self.broker.device_port, tls, None),
            Duration::from_secs(10),
        )
        .await?;
        let _ = client.disconnect().await;
        Ok(())
    }

    /// Checks a device's confirmed credentials for real: the certificate chains to the local
    /// device CA and is valid now, carries the public key of the private key the device holds,
    /// has the id the bundle names, and the control plane holds it ACTIVE and attached to the
    /// thing.
    pub async fn verify(&self, p: &Provisioned) -> Result<()> {
        use x509_parser::prelude::*;
        let der = crate::ca::pem_der(&p.certificate_pem, "CERTIFICATE")?;
        let ca_der = crate::ca::pem_der(self.pki.device.cert_pem(), "CERTIFICATE")?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(|e| anyhow!("certificate: {e}"))?;
        let (_, ca) = X509Certificate::from_der(&ca_der).map_err(|e| anyhow!("device CA: {e}"))?;
        cert.verify_signature(Some(ca.public_key()))
            .map_err(|e| anyhow!("not signed by the local device CA: {e}"))?;
        if !cert.validity().is_valid() {
            bail!("the certificate is not valid now");
        }
        let key = rcgen::KeyPair::from_pem(&p.key_pem).context("the device's private key")?;
        if cert.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
            bail!("the certificate does not carry the device's key");
        }
        let id = crate::ca::certificate_id(&p.certificate_pem)?;
        if id != p.certificate_id {
            bail!(
                "certificate id {} in the bundle, {id} computed",
                p.certificate_id
            );
        }
        // Read from the emulator's store, not through its API: checking is not part of what a
        // fleet measures, and must not be held to the API's rates.
        let c = self
            .emulator
            .certificate(&id)
            .ok_or_else(|| anyhow!("the control plane has no certificate {id}"))?;
        if c.status != "ACTIVE" {
            bail!("certificate {id} is {}, not ACTIVE", c.status);
        }
        let thing = self
            .emulator
            .thing(&p.thing_name)
            .ok_or_else(|| anyhow!("the control plane has no thing {}", p.thing_name))?;
        if !thing.principals.contains(&c.arn) {
            bail!("certificate {id} is not attached to {}", p.thing_name);
        }
        Ok(())
    }

    /// Waits until no rule invocation is queued or running (or `timeout` passes).
    pub async fn settle(&self, timeout: Duration) -> bool {
        self.rules.wait_idle(timeout).await
    }
}
