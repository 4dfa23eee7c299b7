//! The topic rules engine: the local stand-in for the three AWS IoT topic rules of
//! `deploy/template.yaml` (request, pull, confirmation), each of the form
//!
//! ```sql
//! SELECT encode(*, 'base64') AS payload, clientid() AS clientId, topic() AS topic,
//!        timestamp() AS timestamp FROM '<prefix>/+/json'      -- and '+/pull', '+/confirm'
//! ```
//!
//! with a Lambda action. It connects to both brokers' *service* listeners with a service
//! certificate (on the claim broker under a claim-prefixed client id, `<claim prefix>.<name>`,
//! which no serial can produce), subscribes at QoS 1 to `<prefix>/+/json` and `<prefix>/+/pull`
//! (claim broker) and `<prefix>/+/confirm` (device broker), and turns every message into the
//! event the rule SQL builds ([`event`]).
//!
//! # Where it differs from AWS IoT
//!
//! - **`clientId`** is the topic level after the prefix, not the publishing connection's client
//!   id: Mosquitto does not tell a subscriber who published. The brokers' ACLs bind that level
//!   to the publisher (its client id on the claim listener, its certificate's CN on the device
//!   listener), so for any message a device can publish the two agree.
//! - **Invocation** is asynchronous, like the rule's Lambda action (`InvocationType` `Event`):
//!   the engine never waits for a function before taking the next message. Each event is sent
//!   to the function's invoke endpoint and queues there until one of the function's processes
//!   (its reserved concurrency) takes it. At most [`RulesConfig::max_in_flight`] invoke
//!   requests are open at once; further events wait in the engine, in arrival order.
//! - **Retries** follow Lambda's asynchronous invocation policy (`MaximumRetryAttempts: 2`):
//!   an invocation that returns an error is tried again twice, after delays scaled down for
//!   local use ([`RulesConfig::retry_delays`], default 1 s then 2 s; AWS waits about a minute,
//!   then two), then counted as failed and logged (AWS would drop it too: the template
//!   configures no on-failure destination).
//! - The `timestamp` is the engine's clock when the message arrived, not the broker's.
//!
//! A lost connection is re-established by the event loop and the subscriptions renewed (clean
//! sessions: messages published while it was down are lost, as they would be for a disabled
//! rule).

use crate::broker::{Broker, Topics};
use crate::ca::LocalPki;
use crate::functions::Functions;
use crate::mqtt;
use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS, SubscribeReasonCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

/// The topic kinds the rules select (`<prefix>/+/<kind>`).
pub const KINDS: [&str; 3] = ["json", "pull", "confirm"];

/// How many failed events [`Rules::failures`] keeps (the most recent).
const KEPT_FAILURES: usize = 100;

/// The event a rule's SQL builds for a message on `topic` with `payload`, received at
/// `timestamp_ms` (milliseconds since the epoch):
/// `{"payload": base64(payload), "clientId": <topic level after the prefix>, "topic": topic,
/// "timestamp": timestamp_ms}`. `None` when no rule selects the topic: not
/// `<prefix>/<id>/json`, `…/pull` or `…/confirm` with `<id>` one non-empty level (`prefix` may
/// itself contain `/`).
pub fn event(
    prefix: &str,
    topic: &str,
    payload: &[u8],
    timestamp_ms: i64,
) -> Option<serde_json::Value> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let (id, kind) = rest.split_once('/')?;
    if id.is_empty() || id.contains(['+', '#']) || !KINDS.contains(&kind) {
        return None;
    }
    Some(serde_json::json!({
        "payload": base64::engine::general_purpose::STANDARD.encode(payload),
        "clientId": id,
        "topic": topic,
        "timestamp": timestamp_ms,
    }))
}

/// The topic filters of the rules: those served by the claim broker (requests, pulls) and by
/// the device broker (confirmations).
pub fn filters(prefix: &str) -> (Vec<String>, Vec<String>) {
    (
        vec![format!("{prefix}/+/json"), format!("{prefix}/+/pull")],
        vec![format!("{prefix}/+/confirm")],
    )
}

/// How the rules engine runs.
#[derive(Debug, Clone)]
pub struct RulesConfig {
    /// The deployment's topic prefix and claim client-id prefix.
    pub topics: Topics,
    /// The service certificate's name and the client ids' suffix (default `rules`).
    pub name: String,
    /// The delay before each retry of an event whose invocation failed; its length is the
    /// number of retries (default 1 s, 2 s: Lambda's two async retries, scaled down).
    pub retry_delays: Vec<Duration>,
    /// The most invoke requests open at once (each one a connection to the Runtime API,
    /// queued there or running; default 16: `cargo lambda watch` 1.9 stops answering with
    /// hundreds open at once).
    pub max_in_flight: usize,
}

impl RulesConfig {
    /// The defaults for `topics`.
    pub fn new(topics: Topics) -> Self {
        Self {
            topics,
            name: "rules".into(),
            retry_delays: vec![Duration::from_secs(1), Duration::from_secs(2)],
            max_in_flight: 16,
        }
    }
}

/// What the engine has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleStats {
    /// Messages a rule selected (events built).
    pub received: u64,
    /// Invocations made (first attempts and retries).
    pub invoked: u64,
    /// Invocations that failed: the function returned an error, or the invocation could not be
    /// made or answered.
    pub errors: u64,
    /// Retries scheduled after an error.
    pub retried: u64,
    /// Events given up after the last retry failed.
    pub failed: u64,
    /// Events whose invocation succeeded (at the first attempt or a retry).
    pub succeeded: u64,
    /// Events received and not finished yet: waiting, queued at the Runtime API, running, or
    /// waiting for a retry.
    pub in_flight: u64,
}

/// An event given up after its retries.
#[derive(Debug, Clone)]
pub struct FailedEvent {
    /// The message's topic.
    pub topic: String,
    /// The last attempt's error (the function's error document, or why the invocation failed).
    pub error: String,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    invoked: AtomicU64,
    errors: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    succeeded: AtomicU64,
    in_flight: AtomicU64,
}

struct Shared {
    functions: Arc<Functions>,
    prefix: String,
    retry_delays: Vec<Duration>,
    permits: Semaphore,
    counters: Counters,
    idle: Notify,
    failures: Mutex<Vec<FailedEvent>>,
}

impl Shared {
    /// Takes one message off the broker: builds the event and invokes in the background.
    fn dispatch(self: &Arc<Self>, tasks: &mut JoinSet<()>, topic: &str, payload: &[u8]) {
        // Reap finished invocations so the set does not grow with every message.
        while tasks.try_join_next().is_some() {}
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let Some(ev) = event(&self.prefix, topic, payload, now) else {
            tracing::debug!(topic, "rules: no rule selects this topic");
            return;
        };
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        self.counters.in_flight.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        let topic = topic.to_string();
        tasks.spawn(async move {
            me.run(&topic, &ev).await;
            if me.counters.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                me.idle.notify_waiters();
            }
        });
    }

    /// Invokes with `ev` until it succeeds or the retries are spent.
    async fn run(&self, topic: &str, ev: &serde_json::Value) {
        let c = &self.counters;
        let mut attempt = 0;
        loop {
            let result = match self.permits.acquire().await {
                Ok(_permit) => {
                    c.invoked.fetch_add(1, Ordering::Relaxed);
                    self.functions.invoke(ev).await
                }
                Err(_) => Err(anyhow!("the rules engine is stopping")),
            };
            let error = match result {
                Ok(inv) if inv.ok => {
                    c.succeeded.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(topic, answer = %inv.body, "rules: invoked");
                    return;
                }
                Ok(inv) => inv.body.to_string(),
                Err(e) => format!("{e:#}"),
            };
            c.errors.fetch_add(1, Ordering::Relaxed);
            let Some(delay) = self.retry_delays.get(attempt) else {
                c.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    topic,
                    attempts = attempt + 1,
                    error,
                    "rules: invocation failed; event dropped after its retries"
                );
                let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
                if f.len() == KEPT_FAILURES {
                    f.remove(0);
                }
                f.push(FailedEvent {
                    topic: topic.to_string(),
                    error,
                });
                return;
            };
            attempt += 1;
            c.retried.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                topic,
                attempt,
                ?delay,
                error,
                "rules: invocation failed; retrying"
            );
            tokio::time::sleep(*delay).await;
        }
    }
}

/// The running rules engine; stopped (connections closed, pending invocations abandoned) when
/// dropped.
pub struct Rules {
    shared: Arc<Shared>,
    pumps: Vec<JoinHandle<()>>,
}

/// Subscribes to `filters` and waits for every SUBACK, dispatching messages that arrive
/// meanwhile.
async fn subscribe(
    client: &AsyncClient,
    ev: &mut EventLoop,
    filters: &[String],
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
) -> Result<()> {
    for f in filters {
        client
            .subscribe(f.as_str(), QoS::AtLeastOnce)
            .await
            .with_context(|| format!("subscribing to {f}"))?;
    }
    let mut acked = 0;
    let wait = async {
        while acked < filters.len() {
            match ev.poll().await.context("waiting for SUBACK")? {
                Event::Incoming(Packet::SubAck(a)) => {
                    if a.return_codes.contains(&SubscribeReasonCode::Failure) {
                        bail!("subscription refused: {:?}", a.return_codes);
                    }
                    acked += 1;
                }
                Event::Incoming(Packet::Publish(p)) => shared.dispatch(tasks, &p.topic, &p.payload),
                _ => {}
            }
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .map_err(|_| anyhow!("no SUBACK within 10 s"))?
}

/// Polls a connection for as long as the engine runs; renews the subscriptions after a
/// reconnection.
async fn pump(
    client: AsyncClient,
    mut ev: EventLoop,
    filters: Vec<String>,
    shared: Arc<Shared>,
    mut tasks: JoinSet<()>,
    broker: &'static str,
) {
    let mut down = false;
    loop {
        match ev.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                shared.dispatch(&mut tasks, &p.topic, &p.payload)
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) if down => {
                down = false;
                tracing::info!(broker, "rules: reconnected; subscribing again");
                for f in &filters {
                    if let Err(e) = client.try_subscribe(f.as_str(), QoS::AtLeastOnce) {
                        tracing::error!(broker, filter = %f, error = %e, "rules: resubscribing");
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                if !down {
                    tracing::warn!(broker, error = %e, "rules: connection lost; reconnecting");
                }
                down = true;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

impl Rules {
    /// Connects to both service listeners of `broker` with `pki`'s service certificate
    /// `cfg.name`, subscribes (every SUBACK received before it returns), and starts invoking
    /// `functions` for every message the rules select.
    pub async fn start(
        pki: &LocalPki,
        broker: &Broker,
        functions: Arc<Functions>,
        cfg: RulesConfig,
    ) -> Result<Self> {
        if cfg.max_in_flight == 0 {
            bail!("max_in_flight must be at least 1");
        }
        let pair = pki
            .service_certificate(&cfg.name)
            .context("the rules engine's service certificate")?;
        let tls = mqtt::tls_config(
            pki.server.cert_pem().as_bytes(),
            pair.cert_pem.as_bytes(),
            pair.key_pem.as_bytes(),
        )?;
        let shared = Arc::new(Shared {
            functions,
            prefix: cfg.topics.prefix.clone(),
            retry_delays: cfg.retry_delays.clone(),
            permits: Semaphore::new(cfg.max_in_flight),
            counters: Counters::default(),
            idle: Notify::new(),
            failures: Mutex::new(Vec::new()),
        });
        // The claim broker admits only claim-prefixed client ids, the cloud side's included.
        let id = format!("{}.{}", cfg.topics.claim_prefix, cfg.name);
        let (claim_filters, device_filters) = filters(&cfg.topics.prefix);
        let mut pumps = Vec::new();
        for (port, filters, name) in [
            (broker.claim_service_port, claim_filters, "claim"),
            (broker.device_service_port, device_filters, "device"),
        ] {
            let mut opts = mqtt::options(&id, port, tls.clone(), None);
            // Incoming QoS 1 messages are acknowledged as they are read; outgoing traffic is
            // only subscriptions.
            opts.set_inflight(100);
            let (client, mut ev) = mqtt::connect(opts, Duration::from_secs(10))
                .await
                .with_context(|| {
                    format!("rules: connecting to the {name} broker's service listener")
                })?;
            let mut tasks = JoinSet::new();
            subscribe(&client, &mut ev, &filters, &shared, &mut tasks)
                .await
                .with_context(|| format!("rules: subscribing on the {name} broker"))?;
            pumps.push(tokio::spawn(pump(
                client,
                ev,
                filters,
                shared.clone(),
                tasks,
                name,
            )));
        }
        Ok(Self { shared, pumps })
    }

    /// The counters so far.
    pub fn stats(&self) -> RuleStats {
        let c = &self.shared.counters;
        RuleStats {
            received: c.received.load(Ordering::Relaxed),
            invoked: c.invoked.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            succeeded: c.succeeded.load(Ordering::Relaxed),
            in_flight: c.in_flight.load(Ordering::SeqCst),
        }
    }

    /// The most recent events given up after their retries (at most 100).
    pub fn failures(&self) -> Vec<FailedEvent> {
        self.shared
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until no event is in flight (none waiting, queued, running or waiting for a
    /// retry); `false` if that did not happen within `timeout`. Messages still on their way
    /// through the broker are not counted.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.counters.in_flight.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.shared.counters.in_flight.load(Ordering::SeqCst) == 0;
            }
        }
    }

    /// Stops the engine: closes both connections and abandons pending invocations (also done
    /// on drop).
    pub fn stop(&mut self) {
        self.shared.permits.close();
        for p in self.pumps.drain(..) {
            p.abort();
        }
    }
}

impl Drop for Rules {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_rules_topics_make_events() {
        let e = event("a/b", "a/b/claim-1/json", b"{}", 7).unwrap();
        assert_eq!(e["clientId"], "claim-1");
        assert_eq!(e["payload"], "e30=");
        assert_eq!(e["timestamp"], 7);
        for t in [
            "a/b/claim-1/frame",
            "a/b/claim-1/confirm/accepted",
            "a/b//json",
            "a/bc/x/json",
            "a/b/json",
            "x/a/b/c/json",
        ] {
            assert!(event("a/b", t, b"", 0).is_none(), "{t}");
        }
    }
}
