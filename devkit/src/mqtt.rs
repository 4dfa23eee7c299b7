//! MQTT over TLS with client certificates (`rumqttc` over `rustls` with `ring`).

use anyhow::{anyhow, Context, Result};
use rumqttc::{AsyncClient, EventLoop, MqttOptions, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;

/// The host every local listener binds to.
pub const HOST: &str = "127.0.0.1";

/// A rustls client configuration trusting `server_ca_pem` and presenting `cert_pem` / `key_pem`.
/// PEM inputs may end in a NUL byte (as credentials in a bundle do).
pub fn tls_config(
    server_ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ClientConfig>> {
    let strip = |b: &[u8]| -> Vec<u8> { b.strip_suffix(&[0]).unwrap_or(b).to_vec() };
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&strip(server_ca_pem)) {
        roots
            .add(c.context("server CA PEM")?)
            .context("adding the server CA")?;
    }
    if roots.is_empty() {
        return Err(anyhow!("no server CA certificate"));
    }
    let certs = CertificateDer::pem_slice_iter(&strip(cert_pem))
        .collect::<Result<Vec<_>, _>>()
        .context("client certificate PEM")?;
    if certs.is_empty() {
        return Err(anyhow!("no client certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(&strip(key_pem)).context("client key PEM")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .context("client certificate and key")?;
    Ok(Arc::new(cfg))
}

/// The largest MQTT *remaining length* a packet of at most `packet_limit` bytes can have
/// (rumqttc checks incoming packets against the remaining length, the protocol's `PacketLimit`
/// counts the whole packet).
pub fn remaining_limit(packet_limit: u32) -> usize {
    let varint_len = |r: u32| match r {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    (1..=4u32)
        .filter_map(|vl| {
            let r = packet_limit.checked_sub(1 + vl)?;
            (varint_len(r) == vl).then_some(r as usize)
        })
        .max()
        .unwrap_or(0)
}

/// Options for a clean-session TLS connection to `127.0.0.1:port`. `packet_limit`, when given,
/// is the largest PUBLISH the client accepts (whole packet, as the device declares it); larger
/// packets fail the connection, as on a device.
pub fn options(
    client_id: &str,
    port: u16,
    tls: Arc<ClientConfig>,
    packet_limit: Option<u32>,
) -> MqttOptions {
    options_at(HOST, client_id, port, tls, packet_limit)
}

/// [`options`] for a broker at `host` (e.g. an AWS IoT data endpoint on port 8883).
pub fn options_at(
    host: &str,
    client_id: &str,
    port: u16,
    tls: Arc<ClientConfig>,
    packet_limit: Option<u32>,
) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    o.set_clean_session(true);
    o.set_keep_alive(Duration::from_secs(30));
    let incoming = packet_limit.map_or(1 << 20, remaining_limit);
    // Outgoing: a request with a CSR is larger than the frames a small device receives.
    o.set_max_packet_size(incoming, 16 * 1024);
    o
}

/// Connects and waits for the CONNACK (or the refusal).
pub async fn connect(opts: MqttOptions, timeout: Duration) -> Result<(AsyncClient, EventLoop)> {
    connect_with_capacity(opts, timeout, 64).await
}

/// [`connect`] with room for `capacity` requests queued in the client before `publish` waits.
pub async fn connect_with_capacity(
    opts: MqttOptions,
    timeout: Duration,
    capacity: usize,
) -> Result<(AsyncClient, EventLoop)> {
    let (client, mut ev) = AsyncClient::new(opts, capacity);
    let wait = async {
        loop {
            match ev.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(anyhow!("connection failed: {e}")),
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| anyhow!("no CONNACK within {timeout:?}"))??;
    Ok((client, ev))
}
