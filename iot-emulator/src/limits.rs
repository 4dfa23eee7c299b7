//! Rate limits (token buckets), added service time and per-operation counters.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// AWS IoT Core's default per-account rate, in transactions per second, for every operation the
/// emulator serves; [`crate::Emulator::aws_rates`] applies it.
///
/// Source: the "AWS IoT Throttling Limits" table of the *AWS IoT Limits* page (AWS IoT Developer
/// Guide, `limits-iot`, as archived in `awsdocs/aws-iot-docs`; the table now lives in the AWS
/// General Reference, *AWS IoT Core endpoints and quotas*, section "AWS IoT Core API throttling
/// limits"). A June 2025 third-party reading of the General Reference page gives the same
/// DescribeCertificate (10) and DescribeThing (350) but raises AttachThingPrincipal and
/// CreateThing to 100, so the thing operations here (DetachThingPrincipal, DeleteThing, 15) may
/// be lower than today's defaults. Not in that table, and assumed at the control plane's usual
/// 10: `CreateKeysAndCertificate`, `DescribeEndpoint`, `DescribeProvisioningTemplate`. `Publish`
/// (iot-data over HTTPS) has no rate of its own: it counts towards the message broker's
/// "Inbound publish requests per second per account", 20,000.
pub const AWS_RATES: &[(&str, f64)] = &[
    ("CreateCertificateFromCsr", 15.0),
    ("CreateKeysAndCertificate", 10.0),
    ("DeleteCertificate", 10.0),
    ("DeleteThing", 15.0),
    ("DescribeCertificate", 10.0),
    ("DescribeEndpoint", 10.0),
    ("DescribeProvisioningTemplate", 10.0),
    ("DescribeThing", 350.0),
    ("DetachPolicy", 15.0),
    ("DetachThingPrincipal", 15.0),
    ("ListAttachedPolicies", 15.0),
    ("ListPrincipalThings", 10.0),
    ("Publish", 20_000.0),
    ("RegisterThing", 10.0),
    ("UpdateCertificate", 10.0),
];

/// What happened to the requests for one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpStats {
    /// Requests received for the operation (throttled and failed ones included).
    pub calls: u64,
    /// Requests refused by the operation's rate limit (`ThrottlingException`, 429).
    pub throttled: u64,
    /// Requests answered with any other error: injected faults (before or after the effects)
    /// and the operation's own errors.
    pub failed: u64,
}

/// A token bucket: `burst` tokens, refilled at `rate` per second; a request takes one.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: if rate.is_finite() { rate.max(0.0) } else { 0.0 },
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Takes a token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The emulator's knobs and counters (not AWS state).
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) buckets: HashMap<String, Bucket>,
    pub(crate) latency: HashMap<String, Duration>,
    pub(crate) stats: BTreeMap<String, OpStats>,
    pub(crate) recording: bool,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            buckets: HashMap::new(),
            latency: HashMap::new(),
            stats: BTreeMap::new(),
            recording: true,
        }
    }
}
