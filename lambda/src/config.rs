//! Deployment configuration, read from the Lambda's environment once per cold start.

use std::collections::HashSet;
use std::time::Duration;

/// What one deployment decides.
#[derive(Debug, Clone)]
pub struct Config {
    /// Topic prefix (`TOPIC_PREFIX`, default `chunkprov`); may contain `/`.
    pub prefix: String,
    /// Claim client ids are `<claim_prefix><serial>` (`CLAIM_PREFIX`, default `claim-`).
    pub claim_prefix: String,
    /// The thing-name rule: `<thing_prefix><serial>` (`THING_PREFIX`, default `dev-`).
    pub thing_prefix: String,
    /// Whether a request without a CSR is served in key mode (`KEY_MODE=allow`; default off).
    pub key_mode: bool,
    /// Optional allow-list of serials (`ALLOW_LIST`, comma separated; absent: every serial).
    pub allow_list: Option<HashSet<String>>,
    /// How many times a serial may be issued a new certificate after the first
    /// (`REPROVISION_CAP`, default 3).
    pub reprovision_cap: u32,
    /// The fleet provisioning template RegisterThing uses (`TEMPLATE_NAME`).
    pub template_name: String,
    /// The server CA PEM put in every bundle (`SERVER_CA_PEM`), if any.
    pub server_ca_pem: Option<String>,
    /// A pending certificate unconfirmed for this long is revoked by the sweep
    /// (`SWEEP_AFTER_SECS`, default 86400: well beyond the device's confirmation retries).
    pub sweep_after: Duration,
    /// An item claimed by an invocation that has not finished within this time is taken over
    /// (`STALE_AFTER_SECS`, default 900, the Lambda's longest run).
    pub stale_after: Duration,
    /// TTL of terminal (revoked) items (`TERMINAL_TTL_SECS`, default 30 days).
    pub terminal_ttl: Duration,
    /// Time budget for retries within one invocation (`RETRY_BUDGET_MS`, default 20000),
    /// further capped by the invocation's deadline.
    pub budget: Duration,
    /// First backoff delay (`RETRY_BASE_MS`, default 50); doubles up to `retry_max`.
    pub retry_base: Duration,
    /// Longest backoff delay (`RETRY_MAX_MS`, default 2000).
    pub retry_max: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            prefix: "chunkprov".into(),
            claim_prefix: "claim-".into(),
            thing_prefix: "dev-".into(),
            key_mode: false,
            allow_list: None,
            reprovision_cap: 3,
            template_name: "chunkprov".into(),
            server_ca_pem: None,
            sweep_after: Duration::from_secs(86_400),
            stale_after: Duration::from_secs(900),
            terminal_ttl: Duration::from_secs(30 * 86_400),
            budget: Duration::from_secs(20),
            retry_base: Duration::from_millis(50),
            retry_max: Duration::from_secs(2),
        }
    }
}

impl Config {
    /// Reads the configuration from environment variables (see each field).
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let d = Self::default();
        let num = |k: &str, default: u64| -> Result<u64, String> {
            get(k).map_or(Ok(default), |v| {
                v.trim().parse().map_err(|_| format!("{k}: not a number"))
            })
        };
        let cfg = Self {
            prefix: get("TOPIC_PREFIX").unwrap_or(d.prefix),
            claim_prefix: get("CLAIM_PREFIX").unwrap_or(d.claim_prefix),
            thing_prefix: get("THING_PREFIX").unwrap_or(d.thing_prefix),
            key_mode: match get("KEY_MODE").as_deref() {
                None | Some("" | "deny") => false,
                Some("allow") => true,
                Some(_) => return Err("KEY_MODE: allow or deny".into()),
            },
            allow_list: get("ALLOW_LIST").filter(|s| !s.trim().is_empty()).map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            }),
            reprovision_cap: u32::try_from(num("REPROVISION_CAP", 3)?)
                .map_err(|_| "REPROVISION_CAP: too large")?,
            template_name: get("TEMPLATE_NAME").unwrap_or(d.template_name),
            server_ca_pem: get("SERVER_CA_PEM").filter(|s| !s.is_empty()),
            sweep_after: Duration::from_secs(num("SWEEP_AFTER_SECS", 86_400)?),
            stale_after: Duration::from_secs(num("STALE_AFTER_SECS", 900)?),
            terminal_ttl: Duration::from_secs(num("TERMINAL_TTL_SECS", 30 * 86_400)?),
            budget: Duration::from_millis(num("RETRY_BUDGET_MS", 20_000)?),
            retry_base: Duration::from_millis(num("RETRY_BASE_MS", 50)?),
            retry_max: Duration::from_millis(num("RETRY_MAX_MS", 2_000)?),
        };
        if !chunkprov_protocol::is_valid_client_id(&format!("{}x", cfg.claim_prefix)) {
            return Err("CLAIM_PREFIX: not client-id characters".into());
        }
        if chunkprov_protocol::topic::check(&format!("{}/x/json", cfg.prefix)).is_err() {
            return Err("TOPIC_PREFIX: not a valid topic prefix".into());
        }
        Ok(cfg)
    }

    /// The thing name the deployment derives from `serial`.
    pub fn thing_name(&self, serial: &str) -> String {
        format!("{}{}", self.thing_prefix, serial)
    }

    /// The serial a thing name was derived from, if it follows the rule.
    pub fn serial_of_thing<'t>(&self, thing: &'t str) -> Option<&'t str> {
        thing
            .strip_prefix(self.thing_prefix.as_str())
            .filter(|s| !s.is_empty())
    }
}
