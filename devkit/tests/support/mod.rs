//! Test support: the CA and the real Mosquitto brokers in a temporary state directory, and
//! helpers to watch MQTT connections.
#![allow(dead_code)]

use chunkprov_devkit::broker::{Broker, Topics};
use chunkprov_devkit::ca::{LocalPki, Pair};
use chunkprov_devkit::mqtt;
use chunkprov_devkit::sim::{DeviceSpec, Endpoints};
use rumqttc::{AsyncClient, Event, EventLoop, Packet, Publish};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "chunkprov-devkit-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The CA and both brokers, in a fresh state directory. Fails with the reason (e.g. Mosquitto
/// not installed) rather than skipping.
pub struct Stack {
    pub broker: Broker,
    pub pki: LocalPki,
    pub claim: Pair,
    pub dir: TempDir,
}

impl Stack {
    pub fn start(tag: &str) -> Self {
        let dir = TempDir::new(tag);
        let pki = LocalPki::open(&dir.0.join("state")).expect("local CA");
        let broker = match Broker::start(&pki, Topics::default()) {
            Ok(b) => b,
            Err(e) => panic!("cannot start the local broker: {e:#}"),
        };
        let claim = pki.claim_certificate("batch-1").expect("claim certificate");
        Self {
            broker,
            pki,
            claim,
            dir,
        }
    }

    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            host: mqtt::HOST.into(),
            claim_port: self.broker.claim_port,
            device_port: self.broker.device_port,
            server_ca_pem: self.pki.server.cert_pem().to_string(),
            claim: self.claim.clone(),
        }
    }

    pub fn device(&self, serial: &str) -> DeviceSpec {
        let mut spec = DeviceSpec::new(serial, self.dir.0.join("devices").join(serial));
        // Nothing is lost on loopback: a long timeout keeps a loaded machine from causing
        // retries, so the tests can count messages exactly.
        spec.timeout_ms = 5000;
        spec
    }

    /// Connects with `pair` to `port` under `client_id`.
    pub async fn connect(
        &self,
        pair: &Pair,
        port: u16,
        client_id: &str,
    ) -> anyhow::Result<(AsyncClient, EventLoop)> {
        let tls = mqtt::tls_config(
            self.pki.server.cert_pem().as_bytes(),
            pair.cert_pem.as_bytes(),
            pair.key_pem.as_bytes(),
        )?;
        mqtt::connect(
            mqtt::options(client_id, port, tls, None),
            Duration::from_secs(5),
        )
        .await
    }

    /// A cloud-side (service) connection to the broker serving `port`.
    pub async fn service(&self, port: u16, name: &str) -> (AsyncClient, EventLoop) {
        let pair = self.pki.service_certificate("tests").unwrap();
        // The claim broker only admits claim-prefixed client ids, the cloud side included.
        let id = format!("{}.{name}", self.broker.topics.claim_prefix);
        self.connect(&pair, port, &id).await.unwrap()
    }
}

/// What a test connection observed.
#[derive(Default, Debug)]
pub struct Seen {
    pub publishes: Vec<Publish>,
    pub suback_codes: Vec<rumqttc::SubscribeReasonCode>,
    pub pubacks: u32,
    pub error: Option<String>,
}

/// Polls `ev` in the background, recording what arrives.
pub fn watch(mut ev: EventLoop) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let h = tokio::spawn(async move {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => s.lock().unwrap().publishes.push(p),
                Ok(Event::Incoming(Packet::SubAck(a))) => {
                    s.lock().unwrap().suback_codes.extend(a.return_codes)
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => s.lock().unwrap().pubacks += 1,
                Ok(_) => {}
                Err(e) => {
                    s.lock().unwrap().error = Some(e.to_string());
                    return;
                }
            }
        }
    });
    (seen, h)
}

/// Waits until `cond` holds on `seen`, or panics after `secs` seconds with `what`.
pub async fn wait_for(
    seen: &Arc<Mutex<Seen>>,
    secs: u64,
    what: &str,
    cond: impl Fn(&Seen) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !cond(&seen.lock().unwrap()) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; seen: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
