//! Runs the chunkprov IoT control-plane emulator on 127.0.0.1.
//!
//! `chunkprov-iot-emulator [PORT] [TEMPLATE_NAME=path/to/body.json ...]`

use chunkprov_iot_emulator::Emulator;
use std::net::{Ipv4Addr, SocketAddr};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map_or(Ok(0), |p| p.parse())?;
    let emu = Emulator::new();
    for spec in args {
        let (name, path) = spec.split_once('=').ok_or("TEMPLATE_NAME=path expected")?;
        emu.put_template(name, &std::fs::read_to_string(path)?, true);
    }
    let running = emu
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await?;
    println!(
        "chunkprov IoT control-plane emulator on {}",
        running.endpoint()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
