//! Faults of the faulty disk under a service's data: a slow fsync (verified by an fsync timed
//! on the node, in the data directory, before and after the heal) and a power loss (the
//! service and the disk die together, what was not synced is lost, and the service starts
//! again on what remains — verified by two canary files written just before: the synced one
//! must hold what it was written with after, the unsynced one must not).

use std::time::Duration;

use super::{argv, ActiveFault, FaultError, Faults};
use crate::base::names::short;
use crate::cluster::Cluster;
use crate::node_tools::faultfs::Latencies;
use crate::node_tools::timing::Timings;
use crate::provider::Hosts;
use crate::service::ServiceKind;

/// The canary written without fsync: a power loss must take it.
const UNSYNCED_CANARY: &str = ".succession-power-canary-unsynced";
/// The canary written and synced: a power loss must leave it.
const SYNCED_CANARY: &str = ".succession-power-canary-synced";

fn need_disk<H: Hosts>(
    cluster: &Cluster<H>,
    node: &str,
    service: ServiceKind,
) -> Result<(), FaultError> {
    if cluster.faulty_disk(service) {
        return Ok(());
    }
    Err(FaultError::NoFaultyDisk {
        service,
        node: short(node).to_string(),
    })
}

/// Times one fsync in a service's data directory, on the node.
async fn fsync_time<H: Hosts>(
    cluster: &Cluster<H>,
    node: &str,
    service: ServiceKind,
) -> Result<Timings, FaultError> {
    let dir = cluster.data_dir(node, service)?.display().to_string();
    let binary = cluster.node_binary().display().to_string();
    let out = cluster
        .exec(
            node,
            &argv(&[&binary, "fsync-time", "--dir", &dir, "--count", "1"]),
        )
        .await?;
    serde_json::from_str(out.stdout.trim()).map_err(|e| FaultError::ToolOutput {
        tool: "fsync-time",
        node: short(node).to_string(),
        detail: format!("{e}: {} {}", out.stdout.trim(), out.stderr.trim()),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Slows a service's disk on a node (fsync, and writes when asked) and verifies a timed
/// fsync takes at least the latency.
pub(super) async fn slow<H: Hosts>(
    faults: &mut Faults,
    cluster: &mut Cluster<H>,
    node: &str,
    service: ServiceKind,
    latencies: Latencies,
) -> Result<String, FaultError> {
    need_disk(cluster, node, service)?;
    let before = fsync_time(cluster, node, service).await?;
    cluster.set_disk_latencies(node, service, latencies).await?;
    let fault = ActiveFault::SlowDisk {
        node: node.to_string(),
        service,
        fsync_ms: latencies.fsync_latency_ms,
        write_ms: latencies.write_latency_ms,
    };
    faults.push(fault.clone());
    let with = fsync_time(cluster, node, service).await?;
    if with.min() < Duration::from_millis(latencies.fsync_latency_ms) {
        return Err(FaultError::DiskLatencyUnseen {
            what: "the latency is not in effect",
            service,
            node: short(node).to_string(),
            seen_ms: ms(with.min()),
            latency_ms: latencies.fsync_latency_ms,
        });
    }
    Ok(format!(
        "{} (a timed fsync {:.1} → {:.1} ms)",
        fault.describe(),
        ms(before.min()),
        ms(with.min())
    ))
}

/// Takes a slow disk's latency away and verifies a timed fsync is fast again.
pub(super) async fn heal_slow<H: Hosts>(
    cluster: &mut Cluster<H>,
    fault: &ActiveFault,
) -> Result<(), FaultError> {
    let ActiveFault::SlowDisk {
        node,
        service,
        fsync_ms,
        ..
    } = fault
    else {
        return Ok(());
    };
    if cluster.node(node).is_none_or(|n| !n.alive) {
        return Ok(());
    }
    cluster
        .set_disk_latencies(node, *service, Latencies::default())
        .await?;
    let after = fsync_time(cluster, node, *service).await?;
    if after.min() < Duration::from_millis(*fsync_ms) / 2 {
        return Ok(());
    }
    Err(FaultError::DiskLatencyUnseen {
        what: "the latency outlived its heal",
        service: *service,
        node: short(node).to_string(),
        seen_ms: ms(after.min()),
        latency_ms: *fsync_ms,
    })
}

/// Where the two canaries go: the synced one, the unsynced one.
fn canaries<H: Hosts>(
    cluster: &Cluster<H>,
    node: &str,
    service: ServiceKind,
) -> Result<(String, String), FaultError> {
    let dir = cluster.data_dir(node, service)?;
    let at = |name: &str| dir.join(name).display().to_string();
    Ok((at(SYNCED_CANARY), at(UNSYNCED_CANARY)))
}

/// Writes the two canaries into the service's data on its disk: one synced, one not.
async fn write_canaries<H: Hosts>(
    cluster: &Cluster<H>,
    node: &str,
    service: ServiceKind,
) -> Result<(), FaultError> {
    let (synced, unsynced) = canaries(cluster, node, service)?;
    let script = r#"printf synced >"$1" && sync -- "$1" && printf unsynced >"$2""#;
    let out = cluster
        .exec(node, &argv(&["sh", "-c", script, "sh", &synced, &unsynced]))
        .await?;
    if out.code == Some(0) {
        return Ok(());
    }
    Err(FaultError::PowerLossUnseen {
        node: short(node).to_string(),
        detail: format!("the canaries could not be written: {}", out.stderr.trim()),
    })
}

/// Checks the canaries after the power came back: the synced one is there, the unsynced one
/// is not; then removes the synced one.
async fn check_canaries<H: Hosts>(
    cluster: &Cluster<H>,
    node: &str,
    service: ServiceKind,
) -> Result<(), FaultError> {
    let (synced, unsynced) = canaries(cluster, node, service)?;
    // The unsynced canary's name may have become durable with another file's fsync (the
    // journal commits every name at once); what it held must not have.
    let script = r#"[ "$(cat -- "$1" 2>/dev/null)" = synced ] && echo synced-kept; [ "$(cat -- "$2" 2>/dev/null)" = unsynced ] && echo unsynced-kept; rm -f -- "$1" "$2"; true"#;
    let out = cluster
        .exec(node, &argv(&["sh", "-c", script, "sh", &synced, &unsynced]))
        .await?;
    let kept_synced = out.stdout.lines().any(|l| l == "synced-kept");
    let kept_unsynced = out.stdout.lines().any(|l| l == "unsynced-kept");
    match (kept_synced, kept_unsynced) {
        (true, false) => Ok(()),
        (_, true) => Err(FaultError::PowerLossUnseen {
            node: short(node).to_string(),
            detail: "what a file held without fsync survived it".to_string(),
        }),
        (false, false) => Err(FaultError::PowerLossUnseen {
            node: short(node).to_string(),
            detail: "a file written and synced was lost".to_string(),
        }),
    }
}

/// Cuts the power under a service on several nodes at once, as a rack's power cut does: the
/// canaries written on each, then every service killed, then every disk's unsynced writes
/// dropped, every disk mounted again and its canaries checked, and (when `restart`) every
/// service started again on what remains. Without `restart` the services stay down as killed
/// services (faults the heal starts again).
pub(super) async fn lose_power<H: Hosts>(
    faults: &mut Faults,
    cluster: &mut Cluster<H>,
    nodes: &[String],
    service: ServiceKind,
    restart: bool,
) -> Result<String, FaultError> {
    for node in nodes {
        need_disk(cluster, node, service)?;
        write_canaries(cluster, node, service).await?;
    }
    for node in nodes {
        if cluster.process_of(node, service).is_some() {
            // Killed, recorded as a fault in effect, verified gone: as `kill-service`.
            super::processes::kill(faults, cluster, node, service).await?;
        } else {
            faults.push(ActiveFault::Killed {
                node: node.clone(),
                service,
            });
        }
    }
    for node in nodes {
        // The latency, if any, went with the power: the disk comes back as configured.
        faults.forget_disk(node, service);
        cluster.cut_disk_power(node, service).await?;
    }
    for node in nodes {
        cluster.mount_disk(node, service).await?;
        check_canaries(cluster, node, service).await?;
    }
    let names = nodes
        .iter()
        .map(|n| short(n))
        .collect::<Vec<_>>()
        .join(", ");
    if !restart {
        return Ok(format!(
            "power lost under {service} on {names}: killed, unsynced writes dropped (verified); left down"
        ));
    }
    for node in nodes {
        cluster.start_service(node, service).await?;
        faults.forget(&ActiveFault::Killed {
            node: node.clone(),
            service,
        });
    }
    Ok(format!(
        "power lost under {service} on {names}: killed, unsynced writes dropped (verified), started again on what remained"
    ))
}
