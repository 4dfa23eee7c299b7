//! The handler's logic, as plain functions over the backends.

use crate::backend::{
    BackendError, CertStatus, ErrorKind, IssuedCertificate, Publisher, Registry, State,
};
use crate::csr::hex;
use crate::event::{Event, RuleEvent};
use crate::retry::Backoff;
use crate::state::{Item, Phase};
use crate::validate::{validate, Claim, Refusal, Valid, Wanted};
use crate::Config;
use chunkprov_protocol::bundle::{self, Bundle};
use chunkprov_protocol::chunking::Plan;
use chunkprov_protocol::confirm::ConfirmAccepted;
use chunkprov_protocol::pull::Pull;
use chunkprov_protocol::reject::Rejection;
use chunkprov_protocol::topic::{self, Kind};
use chunkprov_protocol::{frame, Nonce, RejectCode, MAX_TOPIC_LEN};
use futures::future::try_join_all;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::{info, warn};

/// Seconds since the epoch.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    })
}

/// Everything an invocation runs on: built once per cold start.
#[derive(Clone)]
pub struct Env {
    /// The deployment's configuration.
    pub config: Config,
    /// IoT control plane.
    pub registry: Arc<dyn Registry>,
    /// IoT data plane.
    pub publisher: Arc<dyn Publisher>,
    /// State table.
    pub state: Arc<dyn State>,
    /// The wall clock (seconds since the epoch).
    pub clock: Clock,
}

/// What an invocation did, when it did what it could (a retry of the event cannot help).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Frames were published.
    Published {
        /// The serial.
        serial: String,
        /// The transfer.
        transfer_id: u32,
        /// The frame indices published, in order.
        frames: Vec<u16>,
        /// Whether a new certificate was issued by this invocation.
        issued: bool,
    },
    /// The message was answered with a rejection (or could not be answered at all).
    Rejected(RejectCode),
    /// Another invocation is serving the same request: nothing done.
    Duplicate,
    /// A confirmation was accepted and answered.
    Confirmed {
        /// The serial.
        serial: String,
        /// The confirmed certificate.
        certificate_id: String,
    },
    /// The sweep ran.
    Swept {
        /// Certificates revoked and deleted.
        revoked: usize,
        /// Items whose cleanup failed (retried by the next sweep).
        failed: usize,
    },
}

/// A failure a retry of the same event may fix (throttling, a 5xx, the time budget): the
/// handler returns it as an error so the async invocation's retry policy acts. The device has
/// been sent the matching retryable rejection when it could be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// [`RejectCode::Throttled`] or [`RejectCode::Internal`].
    pub code: RejectCode,
    /// What failed.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Failure {}

fn failure(e: &BackendError) -> Failure {
    Failure {
        code: if e.kind == ErrorKind::Throttled {
            RejectCode::Throttled
        } else {
            RejectCode::Internal
        },
        message: e.to_string(),
    }
}

/// A request's outcome inside the state loop.
enum Step {
    Done(Result<Outcome, Failure>),
    Refuse(RejectCode, &'static str),
    /// A conditional write lost: read the item again.
    Again,
}

impl Env {
    /// The backoff for an invocation that must finish by `deadline`.
    pub fn backoff(&self, deadline: Instant) -> Backoff {
        Backoff {
            deadline: deadline.min(Instant::now() + self.config.budget),
            base: self.config.retry_base,
            max: self.config.retry_max,
        }
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Handles one event; `deadline` is when the invocation must have returned.
    pub async fn handle(&self, event: Event, deadline: Instant) -> Result<Outcome, Failure> {
        let bo = self.backoff(deadline);
        match event {
            Event::Sweep => self.sweep(&bo).await,
            Event::Rule(ev) => self.rule(&bo, &ev).await,
        }
    }

    async fn rule(&self, bo: &Backoff, ev: &RuleEvent) -> Result<Outcome, Failure> {
        let valid = match validate(&self.config, ev) {
            Ok(v) => v,
            Err(refusal) => return self.refuse(bo, refusal).await,
        };
        match valid {
            Valid::Request(claim, wanted) => {
                info!(serial = %claim.serial, nonce = %wanted.nonce, csr = wanted.csr.is_some(), "request");
                let nonce = wanted.nonce;
                let result = self.request(bo, &claim, &wanted).await;
                self.finish(bo, &claim.client_id, Some(nonce), result).await
            }
            Valid::Pull(claim, pull) => {
                info!(serial = %claim.serial, transfer_id = pull.transfer_id, "pull");
                let nonce = pull.nonce;
                let result = self.pull(bo, &claim, &pull).await;
                self.finish(bo, &claim.client_id, Some(nonce), result).await
            }
            Valid::Confirm {
                thing_name,
                serial,
                transfer_id,
                certificate_id,
            } => {
                info!(%serial, transfer_id, %certificate_id, "confirmation");
                let result = self
                    .confirm(bo, &thing_name, &serial, transfer_id, &certificate_id)
                    .await;
                self.finish(bo, &thing_name, None, result).await
            }
        }
    }

    /// Sends the rejections a step's result calls for.
    async fn finish(
        &self,
        bo: &Backoff,
        reply_to: &str,
        nonce: Option<Nonce>,
        step: Step,
    ) -> Result<Outcome, Failure> {
        let refusal = |code, message: String| Refusal {
            reply_to: Some(reply_to.to_string()),
            nonce,
            code,
            message,
        };
        match step {
            Step::Done(Ok(o)) => Ok(o),
            Step::Done(Err(f)) => {
                warn!(code = %f.code, message = %f.message, "failed; the async retry may help");
                let _ = self.refuse(bo, refusal(f.code, short(&f.message))).await;
                Err(f)
            }
            Step::Refuse(code, m) => self.refuse(bo, refusal(code, m.to_string())).await,
            Step::Again => Err(Failure {
                code: RejectCode::Internal,
                message: "the item kept changing".into(),
            }),
        }
    }

    /// Publishes a rejection on the refusal's reply topic.
    async fn refuse(&self, bo: &Backoff, r: Refusal) -> Result<Outcome, Failure> {
        info!(code = %r.code, message = %r.message, reply_to = ?r.reply_to, "rejected");
        let Some(reply_to) = &r.reply_to else {
            return Ok(Outcome::Rejected(r.code));
        };
        let mut tbuf = [0u8; MAX_TOPIC_LEN];
        let Ok(topic) = topic::build(&self.config.prefix, reply_to, Kind::Rejected, &mut tbuf)
        else {
            warn!(code = %r.code, "rejection topic breaks AWS IoT limits: not sent");
            return Ok(Outcome::Rejected(r.code));
        };
        let mut buf = [0u8; 160];
        let n = Rejection::new(r.nonce, r.code, &r.message)
            .encode(&mut buf)
            .map_err(|_| Failure {
                code: RejectCode::Internal,
                message: "rejection encoding".into(),
            })?;
        bo.run(|| self.publisher.publish(topic, &buf[..n]))
            .await
            .map_err(|e| failure(&e))?;
        Ok(Outcome::Rejected(r.code))
    }

    // ----- requests -----

    async fn request(&self, bo: &Backoff, claim: &Claim, w: &Wanted) -> Step {
        for _ in 0..4 {
            let cur = match bo.run(|| self.state.get(&claim.serial)).await {
                Ok(c) => c,
                Err(e) => return Step::Done(Err(failure(&e))),
            };
            let step = match &cur {
                None => self.issue(bo, claim, w, None).await,
                Some(it) => match it.phase {
                    Phase::Confirmed => {
                        Step::Refuse(RejectCode::AlreadyProvisioned, "serial already provisioned")
                    }
                    Phase::Issuing
                        if self.now() - it.updated_at
                            < self.config.stale_after.as_secs() as i64 =>
                    {
                        if it.nonce == w.nonce.to_string() {
                            info!(serial = %claim.serial, "duplicate of a request in progress");
                            Step::Done(Ok(Outcome::Duplicate))
                        } else {
                            Step::Refuse(RejectCode::Throttled, "another request is in progress")
                        }
                    }
                    Phase::Pending
                        if it.nonce == w.nonce.to_string()
                            && it.csr_sha256.is_some()
                            && it.csr_sha256 == w.csr.as_ref().map(|c| c.sha256.clone()) =>
                    {
                        info!(serial = %claim.serial, "same nonce: republishing");
                        let first = first_window(it);
                        Step::Done(self.publish_rebuilt(bo, claim, it, &first).await)
                    }
                    Phase::Pending
                        if it.csr_sha256.is_some()
                            && it.csr_sha256 == w.csr.as_ref().map(|c| c.sha256.clone()) =>
                    {
                        self.new_transfer(bo, claim, w, it).await
                    }
                    _ => self.issue(bo, claim, w, cur.clone()).await,
                },
            };
            if !matches!(step, Step::Again) {
                return step;
            }
        }
        Step::Again
    }

    /// Same CSR, new nonce: the same certificate in a new transfer.
    async fn new_transfer(&self, bo: &Backoff, claim: &Claim, w: &Wanted, cur: &Item) -> Step {
        let mut it = cur.clone();
        it.version += 1;
        it.transfer_id = cur.transfer_id.wrapping_add(1);
        it.nonce = w.nonce.to_string();
        it.packet_limit = w.packet_limit;
        it.window = w.window;
        it.max_chunk = w.max_chunk;
        it.updated_at = self.now();
        if Plan::for_bundle(it.bundle_len, it.max_chunk).is_none() {
            return Step::Refuse(RejectCode::BundleTooLarge, "bundle needs too many frames");
        }
        match bo.run(|| self.state.put(&it, Some(cur.version))).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::Conflict => return Step::Again,
            Err(e) => return Step::Done(Err(failure(&e))),
        }
        info!(serial = %claim.serial, transfer_id = it.transfer_id, "same CSR: new transfer");
        let first = first_window(&it);
        Step::Done(self.publish_rebuilt(bo, claim, &it, &first).await)
    }

    /// Issues a new certificate (revoking the previous one, if any) and publishes it.
    async fn issue(&self, bo: &Backoff, claim: &Claim, w: &Wanted, cur: Option<Item>) -> Step {
        let cfg = &self.config;
        let attempts = match &cur {
            None => 0,
            Some(c) => c.attempts + 1,
        };
        if attempts > cfg.reprovision_cap {
            return Step::Refuse(RejectCode::ReprovisionLimit, "re-provisioning cap reached");
        }
        let now = self.now();
        let mut it = Item::new(&claim.serial, &claim.thing_name);
        it.version = cur.as_ref().map_or(1, |c| c.version + 1);
        it.transfer_id = cur.as_ref().map_or(1, |c| c.transfer_id.wrapping_add(1));
        it.thing_created = cur.as_ref().is_some_and(|c| c.thing_created);
        it.nonce = w.nonce.to_string();
        it.csr_sha256 = w.csr.as_ref().map(|c| c.sha256.clone());
        it.packet_limit = w.packet_limit;
        it.window = w.window;
        it.max_chunk = w.max_chunk;
        it.attempts = attempts;
        it.pending_since = Some(now);
        it.updated_at = now;
        // Claim the serial: of concurrent invocations only one gets past this write.
        match bo
            .run(|| self.state.put(&it, cur.as_ref().map(|c| c.version)))
            .await
        {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::Conflict => return Step::Again,
            Err(e) => return Step::Done(Err(failure(&e))),
        }
        // One active certificate per serial: the previous one goes first.
        if let Some(old) = cur.as_ref().filter(|c| c.certificate_id.is_some()) {
            info!(serial = %claim.serial, certificate_id = ?old.certificate_id, "revoking the previous certificate");
            if let Err(e) = self.retire(bo, old).await {
                // Hand it to the sweep: the item stays in the index, as due now.
                let mut r = old.clone();
                r.phase = Phase::Revoking;
                r.version = it.version + 1;
                r.pending_since = Some(0);
                r.attempts = it.attempts;
                r.updated_at = now;
                let _ = bo.run(|| self.state.put(&r, Some(it.version))).await;
                return Step::Done(Err(failure(&e)));
            }
        }
        let created = match &w.csr {
            Some(csr) => {
                bo.run(|| self.registry.create_certificate_from_csr(&csr.pem))
                    .await
            }
            None => bo.run(|| self.registry.create_keys_and_certificate()).await,
        };
        let cert = match created {
            Ok(c) => c,
            Err(e) => {
                self.release(bo, &it, cur.as_ref()).await;
                if e.kind == ErrorKind::Invalid {
                    return Step::Refuse(RejectCode::CsrInvalid, "AWS IoT refused the CSR");
                }
                return Step::Done(Err(failure(&e)));
            }
        };
        info!(serial = %claim.serial, certificate_id = %cert.id, "certificate created");
        let built = self.bundle(&claim.thing_name, &cert, cert.private_key_pem.as_deref());
        let (bytes, plan) = match built.and_then(|b| {
            let plan =
                Plan::for_bundle(b.len() as u32, w.max_chunk).ok_or(RejectCode::BundleTooLarge)?;
            Ok((b, plan))
        }) {
            Ok(x) => x,
            Err(code) => {
                let _ = self.cleanup(bo, &cert, None).await;
                self.release(bo, &it, cur.as_ref()).await;
                return Step::Refuse(code, "bundle too large for the frames");
            }
        };
        let registered = self.register(bo, claim, &cert).await;
        let thing_created = match registered {
            Ok(created) => created,
            Err((e, created)) => {
                let thing = created.then_some(claim.thing_name.as_str());
                let _ = self.cleanup(bo, &cert, thing).await;
                self.release(bo, &it, cur.as_ref()).await;
                return Step::Done(Err(failure(&e)));
            }
        };
        // Activated only once registration succeeded.
        if let Err(e) = bo
            .run(|| {
                self.registry
                    .update_certificate(&cert.id, CertStatus::Active)
            })
            .await
        {
            let thing = thing_created.then_some(claim.thing_name.as_str());
            let _ = self.cleanup(bo, &cert, thing).await;
            self.release(bo, &it, cur.as_ref()).await;
            return Step::Done(Err(failure(&e)));
        }
        let claimed = it.version;
        it.version += 1;
        it.phase = Phase::Pending;
        it.thing_created |= thing_created;
        it.certificate_id = Some(cert.id.clone());
        it.certificate_arn = Some(cert.arn.clone());
        it.certificate_pem = Some(cert.pem.clone());
        it.bundle_len = bytes.len() as u32;
        it.bundle_sha256 = hex(&Sha256::digest(&bytes));
        it.key_len = cert
            .private_key_pem
            .as_ref()
            .map(|k| normalize_pem(k).len() as u32);
        it.updated_at = self.now();
        if let Err(e) = bo.run(|| self.state.put(&it, Some(claimed))).await {
            // Someone took the serial over (our claim went stale): our certificate must go.
            let thing = thing_created.then_some(claim.thing_name.as_str());
            let _ = self.cleanup(bo, &cert, thing).await;
            return if e.kind == ErrorKind::Conflict {
                Step::Done(Ok(Outcome::Duplicate))
            } else {
                Step::Done(Err(failure(&e)))
            };
        }
        // Key mode: the key exists only now, so every frame goes out in this invocation.
        let frames: Vec<u16> = if it.key_len.is_some() {
            (0..plan.count()).collect()
        } else {
            first_window(&it)
        };
        let published = self
            .publish(bo, &claim.client_id, &it, &bytes, &frames)
            .await;
        Step::Done(published.map(|frames| Outcome::Published {
            serial: claim.serial.clone(),
            transfer_id: it.transfer_id,
            frames,
            issued: true,
        }))
    }

    /// `DescribeProvisioningTemplate`, then `RegisterThing`. Returns whether the thing is new;
    /// on failure also whether a thing appeared that this invocation created.
    async fn register(
        &self,
        bo: &Backoff,
        claim: &Claim,
        cert: &IssuedCertificate,
    ) -> Result<bool, (BackendError, bool)> {
        let existed = bo
            .run(|| self.registry.thing_exists(&claim.thing_name))
            .await
            .map_err(|e| (e, false))?;
        let body = bo
            .run(|| self.registry.template_body(&self.config.template_name))
            .await
            .map_err(|e| (e, false))?;
        let params = HashMap::from([
            ("SerialNumber".to_string(), claim.serial.clone()),
            ("ThingName".to_string(), claim.thing_name.clone()),
            ("AWS::IoT::Certificate::Id".to_string(), cert.id.clone()),
        ]);
        match bo
            .run(|| self.registry.register_thing(&body, &params))
            .await
        {
            Ok(()) => Ok(!existed),
            Err(e) => {
                let now_exists = if existed {
                    true
                } else {
                    bo.run(|| self.registry.thing_exists(&claim.thing_name))
                        .await
                        .unwrap_or(false)
                };
                Err((e, !existed && now_exists))
            }
        }
    }

    /// Gives the claim on a serial back after a failed issue: deletes a fresh item, or leaves
    /// the old one revoked (its certificate is gone by now).
    async fn release(&self, bo: &Backoff, claimed: &Item, cur: Option<&Item>) {
        let r = match cur {
            None => {
                bo.run(|| self.state.delete(&claimed.serial, claimed.version))
                    .await
            }
            Some(c) => {
                let mut r = claimed.clone();
                r.version += 1;
                r.phase = Phase::Revoked;
                r.attempts = c.attempts;
                r.certificate_id = None;
                r.certificate_arn = None;
                r.certificate_pem = None;
                r.pending_since = None;
                r.expires_at = Some(self.now() + self.config.terminal_ttl.as_secs() as i64);
                bo.run(|| self.state.put(&r, Some(claimed.version))).await
            }
        };
        if let Err(e) = r {
            warn!(serial = %claimed.serial, error = %e, "could not release the claim; the sweep will");
        }
    }

    /// Removes a certificate this invocation created, in the order AWS requires: revoked,
    /// policies detached, thing principal detached, deleted; then the thing, only if this
    /// invocation created it.
    async fn cleanup(
        &self,
        bo: &Backoff,
        cert: &IssuedCertificate,
        created_thing: Option<&str>,
    ) -> Result<(), BackendError> {
        warn!(certificate_id = %cert.id, "cleaning up after a failure");
        self.remove_certificate(bo, &cert.id, &cert.arn).await?;
        if let Some(thing) = created_thing {
            bo.run(|| self.registry.delete_thing(thing)).await?;
        }
        Ok(())
    }

    /// Revokes and deletes an item's certificate.
    async fn retire(&self, bo: &Backoff, item: &Item) -> Result<(), BackendError> {
        match (&item.certificate_id, &item.certificate_arn) {
            (Some(id), Some(arn)) => self.remove_certificate(bo, id, arn).await,
            _ => Ok(()),
        }
    }

    async fn remove_certificate(
        &self,
        bo: &Backoff,
        id: &str,
        arn: &str,
    ) -> Result<(), BackendError> {
        let gone = |r: Result<(), BackendError>| match r {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            r => r,
        };
        gone(
            bo.run(|| self.registry.update_certificate(id, CertStatus::Revoked))
                .await,
        )?;
        for p in bo.run(|| self.registry.list_attached_policies(arn)).await? {
            gone(bo.run(|| self.registry.detach_policy(&p, arn)).await)?;
        }
        for t in bo.run(|| self.registry.list_principal_things(arn)).await? {
            gone(
                bo.run(|| self.registry.detach_thing_principal(&t, arn))
                    .await,
            )?;
        }
        gone(bo.run(|| self.registry.delete_certificate(id)).await)?;
        info!(certificate_id = %id, "certificate revoked and deleted");
        Ok(())
    }

    // ----- bundles and frames -----

    fn bundle(
        &self,
        thing: &str,
        cert: &IssuedCertificate,
        key: Option<&str>,
    ) -> Result<Vec<u8>, RejectCode> {
        build_bundle(
            thing,
            &cert.id,
            &cert.pem,
            key,
            self.config.server_ca_pem.as_deref(),
        )
    }

    /// Rebuilds the item's bundle and publishes `frames`. In key mode the key is not kept: a
    /// frame that holds any of its bytes cannot be rebuilt, so the serial gets a new
    /// certificate in a new transfer instead.
    async fn publish_rebuilt(
        &self,
        bo: &Backoff,
        claim: &Claim,
        it: &Item,
        frames: &[u16],
    ) -> Result<Outcome, Failure> {
        let internal = |m: &str| Failure {
            code: RejectCode::Internal,
            message: m.to_string(),
        };
        let (Some(id), Some(_)) = (&it.certificate_id, &it.certificate_arn) else {
            return Err(internal("pending item without a certificate"));
        };
        let pem = match &it.certificate_pem {
            Some(pem) => pem.clone(),
            None => {
                bo.run(|| self.registry.describe_certificate(id))
                    .await
                    .map_err(|e| failure(&e))?
                    .0
            }
        };
        let placeholder = it.key_len.map(|n| placeholder_key(n as usize));
        let cert = IssuedCertificate {
            id: id.clone(),
            arn: String::new(),
            pem,
            private_key_pem: None,
        };
        let bytes = self
            .bundle(&it.thing_name, &cert, placeholder.as_deref())
            .map_err(|_| internal("bundle no longer encodes"))?;
        if placeholder.is_none() && hex(&Sha256::digest(&bytes)) != it.bundle_sha256 {
            return Err(internal("rebuilt bundle differs from the first"));
        }
        if placeholder.is_some() {
            let span = bundle::locate_in(&bytes)
                .ok()
                .and_then(|l| l.private_key)
                .ok_or_else(|| internal("key-mode bundle without a key"))?;
            let plan = Plan::for_bundle(it.bundle_len, it.max_chunk)
                .ok_or_else(|| internal("stored plan invalid"))?;
            let touches_key = frames.iter().any(|&i| {
                plan.frame(i).is_some_and(|(off, len)| {
                    off < span.offset + span.len && span.offset < off + len
                })
            });
            if touches_key {
                info!(serial = %claim.serial, "key-mode frame lost: issuing a new certificate");
                let w = Wanted {
                    nonce: Nonce::from_hex(&it.nonce).ok_or_else(|| internal("stored nonce"))?,
                    csr: None,
                    packet_limit: it.packet_limit,
                    window: it.window,
                    max_chunk: it.max_chunk,
                };
                return match self.issue(bo, claim, &w, Some(it.clone())).await {
                    Step::Done(r) => r,
                    Step::Refuse(code, m) => {
                        self.refuse(
                            bo,
                            Refusal {
                                reply_to: Some(claim.client_id.clone()),
                                nonce: Some(w.nonce),
                                code,
                                message: m.into(),
                            },
                        )
                        .await
                    }
                    Step::Again => Err(internal("the item changed during a key-mode re-issue")),
                };
            }
        }
        let frames = self
            .publish_with_digest(bo, &claim.client_id, it, &bytes, frames)
            .await?;
        Ok(Outcome::Published {
            serial: claim.serial.clone(),
            transfer_id: it.transfer_id,
            frames,
            issued: false,
        })
    }

    async fn publish(
        &self,
        bo: &Backoff,
        client_id: &str,
        it: &Item,
        bundle: &[u8],
        frames: &[u16],
    ) -> Result<Vec<u16>, Failure> {
        self.publish_with_digest(bo, client_id, it, bundle, frames)
            .await
    }

    /// Publishes `frames` of `bundle` (whose SHA-256 the item records), one window at a time,
    /// the frames of a window concurrently.
    async fn publish_with_digest(
        &self,
        bo: &Backoff,
        client_id: &str,
        it: &Item,
        bundle: &[u8],
        frames: &[u16],
    ) -> Result<Vec<u16>, Failure> {
        let internal = |m: &str| Failure {
            code: RejectCode::Internal,
            message: m.to_string(),
        };
        let mut digest = [0u8; 32];
        let sha = hex_decode(&it.bundle_sha256).ok_or_else(|| internal("stored digest"))?;
        digest.copy_from_slice(&sha);
        let nonce = Nonce::from_hex(&it.nonce).ok_or_else(|| internal("stored nonce"))?;
        let plan = Plan::for_bundle(it.bundle_len, it.max_chunk)
            .ok_or_else(|| internal("stored plan invalid"))?;
        let mut tbuf = [0u8; MAX_TOPIC_LEN];
        let topic = topic::build(&self.config.prefix, client_id, Kind::Frame, &mut tbuf)
            .map_err(|_| internal("frame topic"))?
            .to_string();
        let mut encoded = Vec::with_capacity(frames.len());
        for &i in frames {
            let (header, payload) = plan
                .frame_of(bundle, i, nonce, it.transfer_id, &digest)
                .ok_or_else(|| internal("frame index"))?;
            let mut out = vec![0u8; frame::HEADER_MAX_LEN + payload.len()];
            let n = frame::encode(&header, payload, &mut out)
                .map_err(|_| internal("frame encoding"))?;
            out.truncate(n);
            encoded.push(out);
        }
        let window = usize::from(it.window.max(1));
        for group in encoded.chunks(window) {
            try_join_all(
                group
                    .iter()
                    .map(|f| bo.run(|| self.publisher.publish(&topic, f))),
            )
            .await
            .map_err(|e| failure(&e))?;
        }
        info!(serial = %it.serial, transfer_id = it.transfer_id, frames = frames.len(), of = plan.count(), "frames published");
        Ok(frames.to_vec())
    }

    // ----- pulls -----

    async fn pull(&self, bo: &Backoff, claim: &Claim, p: &Pull) -> Step {
        let it = match bo.run(|| self.state.get(&claim.serial)).await {
            Ok(Some(it)) => it,
            Ok(None) => {
                return Step::Refuse(RejectCode::UnknownTransfer, "no transfer in progress")
            }
            Err(e) => return Step::Done(Err(failure(&e))),
        };
        if it.phase != Phase::Pending
            || it.nonce != p.nonce.to_string()
            || it.transfer_id != p.transfer_id
        {
            return Step::Refuse(RejectCode::UnknownTransfer, "no such transfer in progress");
        }
        let Some(plan) = Plan::for_bundle(it.bundle_len, it.max_chunk) else {
            return Step::Done(Err(Failure {
                code: RejectCode::Internal,
                message: "stored plan invalid".into(),
            }));
        };
        if !p.within(plan.count()) {
            return Step::Refuse(
                RejectCode::FrameIndexInvalid,
                "frame index past the transfer",
            );
        }
        let mut frames: Vec<u16> = Vec::new();
        if let Some(next) = p.next {
            let end = (u32::from(next) + u32::from(it.window)).min(u32::from(plan.count()));
            frames.extend(next..end as u16);
        }
        for &m in &p.missing {
            if !frames.contains(&m) {
                frames.push(m);
            }
        }
        Step::Done(self.publish_rebuilt(bo, claim, &it, &frames).await)
    }

    // ----- confirmations -----

    async fn confirm(
        &self,
        bo: &Backoff,
        thing: &str,
        serial: &str,
        transfer_id: u32,
        certificate_id: &str,
    ) -> Step {
        for _ in 0..4 {
            let it = match bo.run(|| self.state.get(serial)).await {
                Ok(it) => it,
                Err(e) => return Step::Done(Err(failure(&e))),
            };
            let Some(it) = it.filter(|it| {
                it.thing_name == thing
                    && it.certificate_id.as_deref() == Some(certificate_id)
                    && it.transfer_id == transfer_id
                    && matches!(it.phase, Phase::Pending | Phase::Confirmed)
            }) else {
                return Step::Refuse(
                    RejectCode::CertificateMismatch,
                    "not the certificate issued to this thing",
                );
            };
            if it.phase == Phase::Pending {
                let mut c = it.clone();
                c.version += 1;
                c.phase = Phase::Confirmed;
                c.pending_since = None;
                c.updated_at = self.now();
                match bo.run(|| self.state.put(&c, Some(it.version))).await {
                    Ok(()) => {}
                    Err(e) if e.kind == ErrorKind::Conflict => continue,
                    Err(e) => return Step::Done(Err(failure(&e))),
                }
                info!(%serial, %certificate_id, "confirmed");
            }
            let mut tbuf = [0u8; MAX_TOPIC_LEN];
            let Ok(topic) =
                topic::build(&self.config.prefix, thing, Kind::ConfirmAccepted, &mut tbuf)
            else {
                return Step::Refuse(RejectCode::TopicInvalid, "answer topic too long");
            };
            let mut buf = [0u8; 96];
            let a = ConfirmAccepted {
                transfer_id,
                certificate_id,
            };
            let Ok(n) = a.encode(&mut buf) else {
                return Step::Refuse(RejectCode::Malformed, "certificate id too long");
            };
            return Step::Done(
                bo.run(|| self.publisher.publish(topic, &buf[..n]))
                    .await
                    .map(|()| Outcome::Confirmed {
                        serial: serial.to_string(),
                        certificate_id: certificate_id.to_string(),
                    })
                    .map_err(|e| failure(&e)),
            );
        }
        Step::Again
    }

    // ----- the sweep -----

    /// Revokes and deletes certificates left unconfirmed for longer than `sweep_after`.
    async fn sweep(&self, bo: &Backoff) -> Result<Outcome, Failure> {
        let cutoff = self.now() - self.config.sweep_after.as_secs() as i64;
        let due = bo
            .run(|| self.state.pending_before(cutoff))
            .await
            .map_err(|e| failure(&e))?;
        let (mut revoked, mut failed) = (0, 0);
        for it in due {
            let mut r = it.clone();
            if it.phase != Phase::Revoking {
                r.version += 1;
                r.phase = Phase::Revoking;
                r.updated_at = self.now();
                match bo.run(|| self.state.put(&r, Some(it.version))).await {
                    Ok(()) => {}
                    // Confirmed or re-requested meanwhile: not ours to revoke any more.
                    Err(e) if e.kind == ErrorKind::Conflict => continue,
                    Err(_) => {
                        failed += 1;
                        continue;
                    }
                }
            }
            if let Err(e) = self.retire(bo, &r).await {
                warn!(serial = %r.serial, error = %e, "sweep: cleanup failed; next sweep retries");
                failed += 1;
                continue;
            }
            let mut done = r.clone();
            done.version += 1;
            done.phase = Phase::Revoked;
            done.certificate_id = None;
            done.certificate_arn = None;
            done.certificate_pem = None;
            done.pending_since = None;
            done.expires_at = Some(self.now() + self.config.terminal_ttl.as_secs() as i64);
            done.updated_at = self.now();
            match bo.run(|| self.state.put(&done, Some(r.version))).await {
                Ok(()) => revoked += 1,
                Err(_) => failed += 1,
            }
            info!(serial = %r.serial, "sweep: unconfirmed certificate revoked");
        }
        Ok(Outcome::Swept { revoked, failed })
    }
}

fn first_window(it: &Item) -> Vec<u16> {
    let count = Plan::for_bundle(it.bundle_len, it.max_chunk).map_or(0, |p| p.count());
    (0..count.min(it.window)).collect()
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A stand-in of the same length for a key that is not kept: the bundle's bytes outside the
/// key are then exactly those of the real bundle.
fn placeholder_key(len: usize) -> String {
    let head = "-----BEGIN ";
    format!("{head}{}\n", "K".repeat(len.saturating_sub(head.len() + 1)))
}

/// Normalises a PEM from AWS (`\n` line endings, ending in `\n`).
fn normalize_pem(pem: &str) -> String {
    let mut s: String = pem.chars().filter(|&c| c != '\r').collect();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// The deterministic bundle for these credentials.
pub fn build_bundle(
    thing: &str,
    certificate_id: &str,
    certificate_pem: &str,
    key_pem: Option<&str>,
    server_ca_pem: Option<&str>,
) -> Result<Vec<u8>, RejectCode> {
    let cert = normalize_pem(certificate_pem);
    let key = key_pem.map(normalize_pem);
    let ca = server_ca_pem.map(normalize_pem);
    let b = Bundle {
        thing_name: thing,
        certificate_id,
        certificate_pem: &cert,
        private_key_pem: key.as_deref(),
        server_ca_pem: ca.as_deref(),
    };
    let mut out = vec![0u8; bundle::encoded_len(&b)];
    match bundle::encode(&b, &mut out) {
        Ok(n) => {
            out.truncate(n);
            Ok(out)
        }
        Err(bundle::EncodeError::TooLarge) => Err(RejectCode::BundleTooLarge),
        Err(_) => Err(RejectCode::Internal),
    }
}
