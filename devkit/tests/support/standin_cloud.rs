//! A STAND-IN for the cloud (the Lambda behind the IoT topic rules), written in Rust for these
//! tests until the real Lambda binary runs in the local stack. It is deliberately small: it does
//! what `protocol/README.md` says the cloud answers, with the local CA really signing CSRs (or
//! issuing keys), and none of the Lambda's validation beyond the identity checks.
//!
//! It connects to both brokers' *service* listeners, subscribes to `<prefix>/+/json`,
//! `<prefix>/+/pull` (claim broker) and `<prefix>/+/confirm` (device broker), and takes the
//! client id from the topic (Mosquitto does not tell a subscriber who published; the ACLs bind
//! the topic's id to the publisher's client id or certificate CN).

use chunkprov_devkit::broker::Broker;
use chunkprov_devkit::ca::LocalPki;
use chunkprov_devkit::mqtt;
use chunkprov_protocol::bundle::{self, Bundle};
use chunkprov_protocol::chunking::{max_chunk, Plan};
use chunkprov_protocol::confirm::{ConfirmAccepted, Confirmation};
use chunkprov_protocol::frame;
use chunkprov_protocol::pull::Pull;
use chunkprov_protocol::reject::Rejection;
use chunkprov_protocol::request::Request;
use chunkprov_protocol::topic::{self, Kind};
use chunkprov_protocol::{Nonce, RejectCode};
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One transfer the stand-in cloud has in progress.
#[derive(Clone, Debug)]
pub struct Transfer {
    pub client_id: String,
    pub thing_name: String,
    pub certificate_id: String,
    pub certificate_pem: String,
    pub nonce: Nonce,
    pub transfer_id: u32,
    pub window: u16,
    pub bundle: Vec<u8>,
    pub plan: Plan,
    pub confirmed: bool,
}

/// What the stand-in cloud saw and did.
#[derive(Default, Debug)]
pub struct CloudLog {
    /// Requests, by client id.
    pub requests: Vec<String>,
    /// Pulls: client id and the frame indices asked for.
    pub pulls: Vec<(String, Vec<u16>)>,
    /// Frames published: client id and index.
    pub frames_sent: Vec<(String, u16)>,
    /// Confirmations accepted, by thing name.
    pub confirmations: Vec<String>,
    /// Rejections sent: id and code.
    pub rejections: Vec<(String, RejectCode)>,
}

struct State {
    /// Frames (client id, index) to lose the first time they are sent.
    drop_once: Vec<(String, u16)>,
    pki: LocalPki,
    prefix: String,
    claim_prefix: String,
    next_tid: u32,
    by_client: HashMap<String, Transfer>,
    log: CloudLog,
}

/// The stand-in cloud, running in the background until dropped.
pub struct StandInCloud {
    state: Arc<Mutex<State>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for StandInCloud {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn subscribe_all(client: &AsyncClient, ev: &mut EventLoop, topics: &[String]) {
    for t in topics {
        client
            .subscribe(t.as_str(), QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    let mut acks = 0;
    while acks < topics.len() {
        let e = tokio::time::timeout(Duration::from_secs(5), ev.poll())
            .await
            .expect("stand-in cloud: no SUBACK")
            .expect("stand-in cloud: connection");
        if let Event::Incoming(Packet::SubAck(_)) = e {
            acks += 1;
        }
    }
}

impl StandInCloud {
    /// Connects to both service listeners and starts answering. `state_dir` is the local CA's
    /// state directory (a second handle on the same CAs).
    pub async fn start(broker: &Broker, state_dir: &std::path::Path) -> Self {
        let pki = LocalPki::open(state_dir).unwrap();
        let pair = pki.service_certificate("standin-cloud").unwrap();
        let tls = mqtt::tls_config(
            pki.server.cert_pem().as_bytes(),
            pair.cert_pem.as_bytes(),
            pair.key_pem.as_bytes(),
        )
        .unwrap();
        let t = &broker.topics;
        let claim_id = format!("{}.standin-cloud", t.claim_prefix);
        let (claim_client, mut claim_ev) = mqtt::connect(
            mqtt::options(&claim_id, broker.claim_service_port, tls.clone(), None),
            Duration::from_secs(5),
        )
        .await
        .expect("stand-in cloud: claim broker service listener");
        let (device_client, mut device_ev) = mqtt::connect(
            mqtt::options("standin-cloud", broker.device_service_port, tls, None),
            Duration::from_secs(5),
        )
        .await
        .expect("stand-in cloud: device broker service listener");
        let p = &t.prefix;
        subscribe_all(
            &claim_client,
            &mut claim_ev,
            &[format!("{p}/+/json"), format!("{p}/+/pull")],
        )
        .await;
        subscribe_all(&device_client, &mut device_ev, &[format!("{p}/+/confirm")]).await;
        let state = Arc::new(Mutex::new(State {
            drop_once: Vec::new(),
            pki,
            prefix: t.prefix.clone(),
            claim_prefix: t.claim_prefix.clone(),
            next_tid: 3000,
            by_client: HashMap::new(),
            log: CloudLog::default(),
        }));
        let mut tasks = Vec::new();
        for (client, mut ev) in [(claim_client, claim_ev), (device_client, device_ev)] {
            let st = state.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match ev.poll().await {
                        Ok(Event::Incoming(Packet::Publish(m))) => {
                            let out = st.lock().unwrap().handle(&m.topic, &m.payload);
                            for (topic, payload) in out {
                                client
                                    .publish(topic, QoS::AtLeastOnce, false, payload)
                                    .await
                                    .unwrap();
                            }
                        }
                        Ok(_) => {}
                        Err(e) => panic!("stand-in cloud lost its connection: {e}"),
                    }
                }
            }));
        }
        Self { state, tasks }
    }

    /// Loses frame `index` of `client_id` the first time it is sent (as a lossy link would).
    pub fn drop_once(&self, client_id: &str, index: u16) {
        self.state
            .lock()
            .unwrap()
            .drop_once
            .push((client_id.to_string(), index));
    }

    /// Runs `f` on the log.
    pub fn log<R>(&self, f: impl FnOnce(&CloudLog) -> R) -> R {
        f(&self.state.lock().unwrap().log)
    }

    /// The transfer in progress (or done) for a claim client id.
    pub fn transfer(&self, client_id: &str) -> Option<Transfer> {
        self.state.lock().unwrap().by_client.get(client_id).cloned()
    }
}

impl State {
    fn topic(&self, id: &str, kind: Kind) -> String {
        let mut buf = [0u8; 256];
        topic::build(&self.prefix, id, kind, &mut buf)
            .unwrap()
            .to_string()
    }

    fn reject(&mut self, id: &str, nonce: Option<Nonce>, code: RejectCode) -> (String, Vec<u8>) {
        let mut buf = [0u8; 160];
        let n = Rejection::new(nonce, code, code.name())
            .encode(&mut buf)
            .unwrap();
        self.log.rejections.push((id.to_string(), code));
        (self.topic(id, Kind::Rejected), buf[..n].to_vec())
    }

    fn frames(
        &mut self,
        client_id: &str,
        indices: impl IntoIterator<Item = u16>,
    ) -> Vec<(String, Vec<u8>)> {
        let t = self.by_client[client_id].clone();
        let sha: [u8; 32] = Sha256::digest(&t.bundle).into();
        let topic = self.topic(client_id, Kind::Frame);
        let mut out = Vec::new();
        for i in indices {
            let Some((h, payload)) = t.plan.frame_of(&t.bundle, i, t.nonce, t.transfer_id, &sha)
            else {
                continue;
            };
            let mut buf = vec![0u8; payload.len() + frame::HEADER_MAX_LEN];
            let n = frame::encode(&h, payload, &mut buf).unwrap();
            buf.truncate(n);
            self.log.frames_sent.push((client_id.to_string(), i));
            let key = (client_id.to_string(), i);
            if let Some(pos) = self.drop_once.iter().position(|d| *d == key) {
                self.drop_once.remove(pos);
                continue;
            }
            out.push((topic.clone(), buf));
        }
        out
    }

    /// One message in, the messages to publish out.
    fn handle(&mut self, topic_name: &str, payload: &[u8]) -> Vec<(String, Vec<u8>)> {
        let Some((id, kind)) = topic::parse(&self.prefix, topic_name) else {
            return vec![];
        };
        let id = id.to_string();
        match kind {
            Kind::Request => self.request(&id, payload),
            Kind::Pull => self.pull(&id, payload),
            Kind::Confirm => self.confirm(&id, payload),
            _ => vec![],
        }
    }

    fn request(&mut self, client_id: &str, payload: &[u8]) -> Vec<(String, Vec<u8>)> {
        self.log.requests.push(client_id.to_string());
        let Ok(req) = serde_json::from_slice::<Request<String>>(payload) else {
            return vec![self.reject(client_id, None, RejectCode::Malformed)];
        };
        let Some(serial) = client_id.strip_prefix(&self.claim_prefix) else {
            return vec![self.reject(client_id, Some(req.nonce), RejectCode::ClientIdNotClaim)];
        };
        if req.serial_number != serial {
            return vec![self.reject(client_id, Some(req.nonce), RejectCode::IdentityMismatch)];
        }
        let same = self
            .by_client
            .get(client_id)
            .is_some_and(|t| t.nonce == req.nonce);
        if !same {
            let thing = format!("dev-{serial}");
            let issued = match &req.csr {
                Some(csr) => self.pki.sign_csr(csr, &thing),
                None => self.pki.issue_keys_and_certificate(&thing),
            };
            let issued = match issued {
                Ok(i) => i,
                Err(_) => {
                    return vec![self.reject(client_id, Some(req.nonce), RejectCode::CsrInvalid)]
                }
            };
            let b = Bundle {
                thing_name: &thing,
                certificate_id: &issued.certificate_id,
                certificate_pem: &issued.cert_pem,
                private_key_pem: issued.key_pem.as_deref(),
                server_ca_pem: Some(self.pki.server.cert_pem()),
            };
            let mut bytes = vec![0u8; bundle::encoded_len(&b)];
            let n = bundle::encode(&b, &mut bytes).unwrap();
            bytes.truncate(n);
            let frame_topic = self.topic(client_id, Kind::Frame);
            let Some(plan) = max_chunk(req.packet_limit, frame_topic.len() as u32)
                .and_then(|c| Plan::for_bundle(bytes.len() as u32, c))
            else {
                return vec![self.reject(
                    client_id,
                    Some(req.nonce),
                    RejectCode::PacketLimitInvalid,
                )];
            };
            self.next_tid += 1;
            self.by_client.insert(
                client_id.to_string(),
                Transfer {
                    client_id: client_id.to_string(),
                    thing_name: thing,
                    certificate_id: issued.certificate_id,
                    certificate_pem: issued.cert_pem,
                    nonce: req.nonce,
                    transfer_id: self.next_tid,
                    window: req.window,
                    bundle: bytes,
                    plan,
                    confirmed: false,
                },
            );
        }
        let t = &self.by_client[client_id];
        let first = 0..t.window.min(t.plan.count());
        self.frames(client_id, first)
    }

    fn pull(&mut self, client_id: &str, payload: &[u8]) -> Vec<(String, Vec<u8>)> {
        let Ok(p) = Pull::decode(payload) else {
            return vec![self.reject(client_id, None, RejectCode::Malformed)];
        };
        let known = self
            .by_client
            .get(client_id)
            .is_some_and(|t| t.nonce == p.nonce && t.transfer_id == p.transfer_id);
        if !known {
            return vec![self.reject(client_id, Some(p.nonce), RejectCode::UnknownTransfer)];
        }
        let t = &self.by_client[client_id];
        let mut asked: Vec<u16> = p.missing.iter().copied().collect();
        if let Some(next) = p.next {
            asked.extend(next..(next + t.window).min(t.plan.count()));
        }
        self.log.pulls.push((client_id.to_string(), asked.clone()));
        self.frames(client_id, asked)
    }

    fn confirm(&mut self, thing: &str, payload: &[u8]) -> Vec<(String, Vec<u8>)> {
        let Ok(c) = Confirmation::decode(payload) else {
            return vec![self.reject(thing, None, RejectCode::Malformed)];
        };
        let Some(t) = self.by_client.values_mut().find(|t| t.thing_name == thing) else {
            return vec![self.reject(thing, None, RejectCode::ThingNameInvalid)];
        };
        if t.transfer_id != c.transfer_id || t.certificate_id != c.certificate_id {
            return vec![self.reject(thing, None, RejectCode::CertificateMismatch)];
        }
        t.confirmed = true;
        self.log.confirmations.push(thing.to_string());
        let mut buf = [0u8; 128];
        let n = ConfirmAccepted {
            transfer_id: c.transfer_id,
            certificate_id: c.certificate_id,
        }
        .encode(&mut buf)
        .unwrap();
        vec![(self.topic(thing, Kind::ConfirmAccepted), buf[..n].to_vec())]
    }
}
