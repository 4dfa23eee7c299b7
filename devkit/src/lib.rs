//! chunkprov's host tools: the local stack's parts that run on a development machine.
//!
//! - [`ca`]: the local certificate authorities (claim certificates per batch, device
//!   certificates from a CSR or with a new key, the broker's certificate), on disk.
//! - [`broker`]: Mosquitto started with TLS client certificates and ACLs mirroring the AWS IoT
//!   claim and device policies.
//! - [`sim`]: the device simulator, the device library's sans-IO client over `rumqttc` with a
//!   NOR flash image in a file ([`flash`]).
//! - [`mqtt`]: TLS client configuration and connection helpers shared by the above.
//! - [`moto`]: `moto_server` (DynamoDB with the state table as the template declares it).
//! - [`functions`]: the Lambda's binary behind `cargo lambda watch --only-lambda-apis`, one
//!   process per unit of reserved concurrency.
//! - [`rules`]: the topic rules engine, invoking the function with the event the rule SQL
//!   builds.
//!
//! See `README.md` beside this crate for what is here, what the end-to-end demo adds, and what
//! must be installed.

pub mod broker;
pub mod ca;
pub mod demo;
pub mod flash;
pub mod fleet;
pub mod functions;
pub mod moto;
pub mod mqtt;
pub mod rules;
pub mod sim;
pub mod stack;
