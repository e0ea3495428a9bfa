//! The EC2 provider's own command: the simulated region.

use std::net::Ipv4Addr;
use std::path::Path;

use succession::exit::Exit;
use succession::provider::containers::{engine::Engine, image};
use succession::provider::ec2::api::Ec2;
use succession::provider::ec2::sim;

/// `succession ec2-sim`: moto on loopback, every instance it runs a container, until Ctrl-C.
pub async fn simulate(
    port: u16,
    subnet: Ipv4Addr,
    image: Option<String>,
    lines: Option<&Path>,
) -> Exit {
    let image = image.unwrap_or_else(image::default_image);
    let engine = match Engine::connect().await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Environment;
        }
    };
    match engine.has_image(&image).await {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("error: image {image} not found; `succession image build` makes it");
            return Exit::Environment;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Environment;
        }
    }
    let moto = match sim::start_emulator(port).await {
        Ok(child) => child,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Environment;
        }
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let ec2 = Ec2::connect("us-east-1", Some(&endpoint)).await;
    let region = match sim::create_region(&ec2, &engine, &endpoint, subnet).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Environment;
        }
    };
    let text = region.topology_lines();
    if let Some(path) = lines {
        if let Err(e) = std::fs::write(path, &text) {
            eprintln!("error: failed to write {}: {e}", path.display());
            return Exit::Environment;
        }
    }
    println!("simulated EC2 region at {endpoint}; a topology runs in it with:\n\n{text}");
    println!("ready: instances launched here become containers; Ctrl-C removes them");
    let say = |line: &str| println!("{line}");
    let stop = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    sim::realise(&ec2, &engine, &region, &image, &say, stop).await;
    drop(moto);
    println!("simulated region stopped; its containers and network removed");
    Exit::Pass
}
