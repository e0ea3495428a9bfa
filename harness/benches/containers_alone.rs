//! The containers provider's floor: what the engine takes to start and remove a cell's
//! containers with nothing running in them, made as the provider makes them (the node image, a
//! bridge network with fixed addresses, four at a time), and the CPU the engine's own daemons
//! (dockerd, containerd) spend on it. On a two-core machine that CPU is taken from the servers
//! booting beside it, which is why overlapping creation with the servers' start gains less
//! than the creation takes.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use futures::StreamExt;
use succession::provider::containers::engine::{ContainerSpec, Engine};
use succession::provider::containers::image::default_image;

/// What one round of start-and-remove took.
pub struct Alone {
    pub containers: usize,
    pub up_ms: u64,
    pub removed_ms: u64,
    pub engine_cpu_ms: u64,
}

/// CPU time (user + system) of the engine's daemons, ms.
fn engine_cpu_ms() -> u64 {
    let tick = 1000 / clock_ticks();
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for e in entries.flatten() {
        let stat = match std::fs::read_to_string(e.path().join("stat")) {
            Ok(s) => s,
            Err(_) => continue,
        };
        let Some((name, rest)) = stat.split_once(" (").and_then(|(_, r)| r.split_once(") ")) else {
            continue;
        };
        if name != "dockerd" && name != "containerd" {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are the 14th and 15th fields of the line, 12th and 13th after the name.
        let ticks: u64 = fields
            .get(11..13)
            .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
            .unwrap_or(0);
        total += ticks * tick;
    }
    total
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// Starts `count` containers of the node image, four at a time, then removes them all at once.
pub fn measure(count: usize) -> Result<Alone, String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let engine = Engine::connect().await.map_err(|e| e.to_string())?;
        let id = format!("bench{}", std::process::id() % 100_000);
        let network = format!("succ-{id}");
        let labels = HashMap::from([("succession.run".to_string(), id.clone())]);
        let subnet = Ipv4Addr::new(10, 254, 99, 0);
        engine
            .create_network(&network, &format!("scn{id}"), subnet, labels.clone())
            .await
            .map_err(|e| e.to_string())?;
        let cpu0 = engine_cpu_ms();
        let t0 = Instant::now();
        let specs: Vec<ContainerSpec> = (0..count)
            .map(|i| ContainerSpec {
                name: format!("succ-{id}-n{i}"),
                image: default_image(),
                hostname: format!("n{i}"),
                network: network.clone(),
                address: Ipv4Addr::new(10, 254, 99, 10 + i as u8),
                mac: format!("02:42:0a:fe:63:{:02x}", 10 + i),
                labels: labels.clone(),
                extra_hosts: vec![],
                read_only_binds: vec![],
                tmpfs: vec!["/var/lib/succession".to_string()],
                fuse: false,
            })
            .collect();
        let started: Vec<Result<(), String>> = futures::stream::iter(&specs)
            .map(|spec| {
                let engine = engine.clone();
                async move { engine.run_container(spec).await.map_err(|e| e.to_string()) }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        let up_ms = t0.elapsed().as_millis() as u64;
        let t1 = Instant::now();
        let removals = specs.iter().map(|s| engine.remove_container(&s.name));
        let removed = futures::future::join_all(removals).await;
        let removed_ms = t1.elapsed().as_millis() as u64;
        let engine_cpu = engine_cpu_ms().saturating_sub(cpu0);
        let _ = engine.remove_network(&network).await;
        started.into_iter().collect::<Result<(), String>>()?;
        removed
            .into_iter()
            .collect::<Result<(), _>>()
            .map_err(|e| e.to_string())?;
        Ok(Alone {
            containers: count,
            up_ms,
            removed_ms,
            engine_cpu_ms: engine_cpu,
        })
    })
}

/// The cell's ten containers started and removed with nothing in them, `runs` times.
pub fn report(runs: usize, row: fn(&str, Vec<u64>)) {
    let mut alone = Vec::new();
    for i in 0..runs {
        match measure(10) {
            Ok(a) => {
                println!(
                    "containers alone, round {}: {} up in {} ms, removed in {} ms, engine CPU {} ms",
                    i + 1,
                    a.containers,
                    a.up_ms,
                    a.removed_ms,
                    a.engine_cpu_ms
                );
                alone.push(a);
            }
            Err(e) => {
                eprintln!("containers alone, round {}: {e}", i + 1);
                std::process::exit(1);
            }
        }
    }
    println!("\nthe cell's 10 containers with nothing in them (min / median / max):");
    row(
        "all started, 4 at a time (ms)",
        alone.iter().map(|a| a.up_ms).collect(),
    );
    row(
        "all removed at once (ms)",
        alone.iter().map(|a| a.removed_ms).collect(),
    );
    row(
        "CPU of dockerd + containerd for both (ms)",
        alone.iter().map(|a| a.engine_cpu_ms).collect(),
    );
}
