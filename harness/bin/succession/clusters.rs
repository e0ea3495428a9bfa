//! The commands on clusters: `up`, and `status`, `exec`, `down` and `inventory` on a cluster
//! left up, reopened with the provider that made it.

use std::path::Path;
use std::time::Instant;

use succession::base::table::columns;
use succession::cluster::Cluster;
use succession::exit::Exit;
use succession::on_provider;
use succession::preflight;
use succession::provider::choice::{self, KeptHosts, ProviderKind};
use succession::provider::Hosts;
use succession::runner::Runner;
use succession::session;
use succession::spec::Topology;
use succession::supervisor::status_table;

use crate::Terminal;

pub async fn up(
    topology: &Path,
    seed: Option<u64>,
    provider: Option<ProviderKind>,
    image: Option<String>,
) -> Exit {
    let topo = match Topology::load(topology) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::InvalidInput;
        }
    };
    let chosen = match choice::choose(provider, image, &topo) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Environment;
        }
    };
    on_provider!(chosen, p => up_on(&p, topology, &topo, seed).await)
}

async fn up_on<P: succession::provider::Provider>(
    provider: &P,
    file: &Path,
    topo: &Topology,
    seed: Option<u64>,
) -> Exit {
    let seed = seed.unwrap_or_else(succession::rng::fresh_seed);
    let t0 = Instant::now();
    let say = |line: &str| println!("{line}");
    let purpose = format!("up {}", file.display());
    let mut cluster = match session::bring_up(provider, topo, &purpose, seed, &say).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Environment;
        }
    };
    let ready = Runner::new(&mut cluster, &Terminal)
        .wait_ready(t0, topo.settings.ready_timeout)
        .await;
    if let Err(e) = ready {
        eprintln!("error: {e}");
        cluster.teardown();
        return Exit::Environment;
    }
    if let Err(e) = cluster.keep() {
        eprintln!("error: {e}");
        cluster.teardown();
        return Exit::Environment;
    }
    print!("{}", status_table(&cluster.status().await));
    println!(
        "run {} is up ({} provider): `succession status`, `succession exec quorum -- CMD`, `succession down` when done",
        cluster.run_id(),
        provider.name()
    );
    cluster.teardown();
    Exit::Pass
}

/// The run left up on purpose that a command names (or the only one), reopened with the
/// provider that made it.
pub fn kept_run(id: Option<&str>, provider: Option<ProviderKind>) -> Result<KeptHosts, Exit> {
    let mut kept = succession::provider::record::kept_runs();
    if let Some(kind) = provider {
        kept.retain(|(_, r)| r.provider == kind.name());
    }
    if let Some(id) = id {
        kept.retain(|(_, r)| r.id == id);
        if kept.is_empty() {
            eprintln!("error: no cluster with run id {id} is up (`succession status` lists them)");
            return Err(Exit::Environment);
        }
    }
    match kept.len() {
        0 => {
            eprintln!(
                "error: no cluster is up; start one with `succession up topologies/cell.toml`"
            );
            Err(Exit::Environment)
        }
        1 => {
            let (dir, record) = kept.remove(0);
            choice::reopen(dir, record).map_err(|e| {
                eprintln!("error: {e}");
                Exit::Environment
            })
        }
        _ => {
            let ids: Vec<String> = kept
                .iter()
                .map(|(_, r)| format!("{} ({}, {})", r.id, r.purpose, r.provider))
                .collect();
            eprintln!(
                "error: several clusters are up; choose one with --run: {}",
                ids.join(", ")
            );
            Err(Exit::InvalidInput)
        }
    }
}

pub async fn print_status<H: Hosts>(cluster: Cluster<H>) {
    let record = cluster.hosts().record();
    let rows: Vec<Vec<String>> = cluster
        .nodes()
        .iter()
        .map(|n| {
            vec![
                n.fqdn.clone(),
                n.role.clone(),
                n.address.to_string(),
                n.mac.clone(),
                if n.alive {
                    "up".into()
                } else {
                    "terminated".into()
                },
            ]
        })
        .collect();
    println!(
        "run {} ({}, created {})",
        record.id, record.purpose, record.created
    );
    print!(
        "{}",
        columns(&["NODE", "ROLE", "ADDRESS", "MAC", "STATE"], &rows)
    );
    println!();
    print!("{}", status_table(&cluster.status().await));
}

pub async fn exec<H: Hosts>(hosts: H, target: &str, command: &[String]) -> Exit {
    let cluster = Cluster::new(hosts);
    let nodes: Vec<String> = match cluster
        .nodes()
        .into_iter()
        .find(|n| n.fqdn == target || n.short == target)
    {
        Some(n) => vec![n.fqdn],
        None => cluster
            .nodes()
            .into_iter()
            .filter(|n| n.role == target && n.alive)
            .map(|n| n.fqdn)
            .collect(),
    };
    if nodes.is_empty() {
        let names: Vec<String> = cluster.nodes().into_iter().map(|n| n.short).collect();
        eprintln!(
            "error: `{target}` is no node or role of run {}; nodes: {}",
            cluster.run_id(),
            names.join(", ")
        );
        return Exit::InvalidInput;
    }
    let mut worst = Exit::Pass;
    // Written without `println!`, which panics when the reader has gone (`| head`): the
    // command still runs on every node asked, its output dropped.
    let say = |text: &str| {
        use std::io::Write as _;
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    };
    for fqdn in nodes {
        say(&format!("--[ {fqdn} ]--\n"));
        match cluster.exec(&fqdn, command).await {
            Ok(out) => {
                say(&out.stdout);
                eprint!("{}", out.stderr);
                if out.code != Some(0) {
                    eprintln!(
                        "(exit {})",
                        out.code
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "by signal".into())
                    );
                    worst = Exit::CheckFailed;
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Environment;
            }
        }
    }
    worst
}

pub fn write_inventory<H: Hosts>(hosts: &H, output: Option<&Path>) -> Exit {
    let text = preflight::inventory::render_for_run(hosts.record(), &|n| hosts.exec_prefix(n));
    match output {
        None => {
            print!("{text}");
            Exit::Pass
        }
        Some(path) => match std::fs::write(path, &text) {
            Ok(()) => {
                println!(
                    "wrote the inventory of run {} ({} nodes) to {}",
                    hosts.record().id,
                    hosts.record().nodes.len(),
                    path.display()
                );
                Exit::Pass
            }
            Err(e) => {
                eprintln!("error: failed to write {}: {e}", path.display());
                Exit::Environment
            }
        },
    }
}
