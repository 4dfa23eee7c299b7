//! Handler time for a 4 KB bundle in 256-byte frames, on the in-memory fakes (so it measures
//! the handler's own work: validation, CSR check, bundle, frames; no network). Run with
//! `cargo run --release -p chunkprov-lambda --example bench_handler` (scripts/bench-lambda.sh).

use base64::Engine as _;
use chunkprov_lambda::event::{Event, RuleEvent};
use chunkprov_lambda::fakes::{FakePublisher, FakeRegistry, FakeState};
use chunkprov_lambda::{Config, Env, Outcome};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CSR: &str = include_str!("../fixtures/p384.csr.pem");
const SERIAL: &str = "352656100000001";

fn event(nonce: u64, window: u16) -> Event {
    let body = serde_json::json!({
        "SerialNumber": SERIAL, "Nonce": format!("{nonce:016x}"), "Csr": CSR,
        "PacketLimit": 256, "Window": window,
    });
    Event::Rule(RuleEvent {
        payload: base64::engine::general_purpose::STANDARD.encode(body.to_string()),
        client_id: format!("claim-{SERIAL}"),
        topic: format!("chunkprov/claim-{SERIAL}/json"),
        timestamp: 0,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // The fake certificate is about 1.4 KB; a server CA brings the bundle to about 4 KB.
    let ca = format!(
        "-----BEGIN CERTIFICATE-----\n{}-----END CERTIFICATE-----\n",
        format!("{}\n", "Q".repeat(64)).repeat(38)
    );
    let iterations = 200;
    let mut total = Duration::ZERO;
    let mut frames = 0;
    for i in 0..iterations {
        let env = Env {
            config: Config {
                server_ca_pem: Some(ca.clone()),
                ..Config::default()
            },
            registry: Arc::new(FakeRegistry::with_template("chunkprov")),
            publisher: Arc::new(FakePublisher::default()),
            state: Arc::new(FakeState::default()),
            clock: chunkprov_lambda::handler::system_clock(),
        };
        let started = Instant::now();
        let out = env
            .handle(
                event(i + 1, 16),
                tokio::time::Instant::now() + Duration::from_secs(10),
            )
            .await
            .expect("published");
        total += started.elapsed();
        let Outcome::Published { frames: f, .. } = out else {
            panic!("{out:?}")
        };
        frames = f.len();
        if i == 0 {
            let item = env.state.get(SERIAL).await.unwrap().unwrap();
            println!(
                "bundle {} bytes, packet limit 256, max frame payload {} bytes, {} frames in the transfer",
                item.bundle_len,
                item.max_chunk,
                chunkprov_protocol::chunking::Plan::for_bundle(item.bundle_len, item.max_chunk)
                    .unwrap()
                    .count()
            );
        }
    }
    println!(
        "handler time (new certificate, first window of {frames} frames encoded and published, fakes): {:.3} ms mean over {iterations}",
        total.as_secs_f64() * 1000.0 / f64::from(iterations as u32)
    );
}
