//! chunkprov's cloud half: an AWS Lambda that registers a device and publishes its credentials
//! in small MQTT frames encoded with `chunkprov-protocol`.
//!
//! The logic lives in plain functions ([`handler`]) over three backends ([`backend::Registry`],
//! [`backend::Publisher`], [`backend::State`]); [`aws`] implements them with the AWS SDK and
//! [`fakes`] in memory for tests. `main.rs` is only the `lambda_runtime` glue.
//!
//! Inputs ([`event`]): the events of three IoT topic rules (request, pull, confirmation) and the
//! scheduled sweep. Each rule's SQL passes the device's payload base64-encoded beside the
//! connection's client id, the topic and the broker's timestamp:
//!
//! ```sql
//! SELECT encode(*, 'base64') AS payload, clientid() AS clientId, topic() AS topic,
//!        timestamp() AS timestamp FROM '<prefix>/+/json'              -- request
//! SELECT encode(*, 'base64') AS payload, clientid() AS clientId, topic() AS topic,
//!        timestamp() AS timestamp FROM '<prefix>/+/pull'              -- pull
//! SELECT encode(*, 'base64') AS payload, clientid() AS clientId, topic() AS topic,
//!        timestamp() AS timestamp FROM '<prefix>/+/confirm'           -- confirmation
//! ```
//!
//! The sweep is an EventBridge scheduled event (`"detail-type": "Scheduled Event"`).
//!
//! Key material (private keys from key mode) is never logged, stored or returned: it exists only
//! in the memory of the invocation that created it and in the frames it publishes.

pub mod aws;
pub mod backend;
pub mod config;
pub mod csr;
pub mod event;
pub mod fakes;
pub mod handler;
pub mod retry;
pub mod state;
pub mod validate;

pub use config::Config;
pub use handler::{Env, Failure, Outcome};
