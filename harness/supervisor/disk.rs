//! The faulty disk under a service's data directory, when the topology asks for one
//! (`faulty_disk = true`): the node-side binary's FUSE passthrough (`succession-standin
//! faultfs`), mounted over the data directory before the service starts. Its durable and live
//! copies, control and stats files sit beside the data, under `.faulty-disk/SERVICE/`.
//!
//! Mounts are made and removed in the node's mount namespace (`Hosts::mount_namespace`, entered
//! with `nsenter`): on the local provider every command runs under `ip netns exec`, which gives
//! it a private mount namespace, so a mount made there would be seen by no one else; there it is
//! the harness's own. In a container or an instance it is the node's first process's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::node_tools::faultfs::Latencies;
use crate::provider::record::ServiceRecord;
use crate::provider::{ClusterError, Hosts, Intent, ProcessId, ProcessState, Signal, Spawn};
use crate::service::ServiceKind;

/// How long a mount may take to appear, or a daemon to go.
const MOUNT_DEADLINE: Duration = Duration::from_secs(15);
/// How often the mount table is read while waiting.
const MOUNT_POLL: Duration = Duration::from_millis(50);

/// Where one service's faulty disk keeps its parts on a node.
#[derive(Debug, Clone)]
pub struct DiskPaths {
    /// What survives a power loss.
    pub durable: PathBuf,
    /// What the service sees (the passthrough's backing directory).
    pub live: PathBuf,
    /// The latencies, re-read on SIGHUP.
    pub control: PathBuf,
    /// The daemon's counters.
    pub stats: PathBuf,
    /// The service's data directory, where the filesystem is mounted.
    pub mount: PathBuf,
    /// The daemon's log.
    pub log: PathBuf,
}

/// The paths of a service's faulty disk on a node.
pub fn paths<H: Hosts>(
    hosts: &H,
    fqdn: &str,
    service: ServiceKind,
) -> Result<DiskPaths, ClusterError> {
    let root = hosts.data_root(fqdn)?;
    let base = root.join(".faulty-disk").join(service.name());
    Ok(DiskPaths {
        durable: base.join("durable"),
        live: base.join("live"),
        control: base.join("control.json"),
        stats: base.join("stats.json"),
        mount: root.join(service.name()),
        log: base.join("faultfs.log"),
    })
}

/// Whether the topology puts this service's data on the faulty disk.
pub fn enabled<H: Hosts>(hosts: &H, service: ServiceKind) -> bool {
    hosts.topology().settings.faulty_disk.contains(&service)
}

/// The run record's key for a disk's daemon, beside its service's.
fn disk_key(fqdn: &str, service: ServiceKind) -> String {
    format!("{}.disk", crate::provider::service_key(fqdn, service))
}

/// The name the filesystem is mounted under: the run's id in it lets gc find a mount a killed
/// harness left.
pub fn fsname(run_id: &str) -> String {
    format!("succession-faultfs-{run_id}")
}

/// A command run in the node's mount namespace.
fn in_node_mounts<H: Hosts>(hosts: &H, fqdn: &str, words: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "nsenter".to_string(),
        format!("--mount={}", hosts.mount_namespace(fqdn).display()),
    ];
    argv.extend(words.iter().map(|w| w.to_string()));
    argv
}

/// Whether `mount` is a mount point of the node now, as its first mount namespace sees it.
async fn mounted<H: Hosts>(hosts: &H, fqdn: &str, mount: &Path) -> Result<bool, ClusterError> {
    let out = hosts
        .run_ok(
            fqdn,
            "read the mount table",
            &in_node_mounts(hosts, fqdn, &["cat", "/proc/self/mounts"]),
        )
        .await?;
    let target = mount.display().to_string();
    Ok(out
        .stdout
        .lines()
        .any(|line| line.split_whitespace().nth(1) == Some(target.as_str())))
}

/// The daemon the run record holds for a disk, while it runs.
async fn daemon<H: Hosts>(hosts: &H, fqdn: &str, service: ServiceKind) -> Option<ProcessId> {
    let process = hosts
        .record()
        .services
        .get(&disk_key(fqdn, service))
        .and_then(|r| r.process)?;
    (hosts.process_state(fqdn, process).await == ProcessState::Running).then_some(process)
}

fn record_daemon<H: Hosts>(
    hosts: &mut H,
    fqdn: &str,
    service: ServiceKind,
    process: Option<ProcessId>,
) -> Result<(), ClusterError> {
    let key = disk_key(fqdn, service);
    hosts.update_services(&mut |services| {
        services.insert(
            key.clone(),
            ServiceRecord {
                intent: if process.is_some() {
                    Intent::Active
                } else {
                    Intent::Stopped
                },
                process,
                since: crate::base::time::now_rfc3339(),
            },
        );
    })
}

/// Mounts the faulty disk over a service's data directory unless its daemon already serves
/// it; a mount whose daemon died (a power loss, a killed harness) is removed first. The daemon
/// starts by making the live copy what the durable copy holds.
pub async fn ensure_mounted<H: Hosts>(
    hosts: &mut H,
    fqdn: &str,
    service: ServiceKind,
) -> Result<(), ClusterError> {
    let p = paths(hosts, fqdn, service)?;
    let is_mounted = mounted(hosts, fqdn, &p.mount).await?;
    if is_mounted && daemon(hosts, fqdn, service).await.is_some() {
        return Ok(());
    }
    if is_mounted {
        detach(hosts, fqdn, &p.mount).await?;
    }
    let binary = hosts.standin_binary().display().to_string();
    let fsname = fsname(&hosts.record().id);
    let argv = in_node_mounts(
        hosts,
        fqdn,
        &[
            &binary,
            "faultfs",
            "--durable",
            &p.durable.display().to_string(),
            "--live",
            &p.live.display().to_string(),
            "--mount",
            &p.mount.display().to_string(),
            "--control",
            &p.control.display().to_string(),
            "--stats",
            &p.stats.display().to_string(),
            "--fsname",
            &fsname,
        ],
    );
    hosts
        .run_ok(
            fqdn,
            "prepare the faulty disk",
            &["mkdir".to_string(), "-p".to_string()]
                .into_iter()
                .chain([&p.durable, &p.mount].map(|d| d.display().to_string()))
                .collect::<Vec<_>>(),
        )
        .await?;
    let workdir = p
        .durable
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| p.durable.clone());
    let process = hosts
        .spawn(
            fqdn,
            &Spawn {
                argv,
                workdir,
                log: p.log.clone(),
                banner: format!(
                    "--- succession: mounting the faulty disk of {service} at {} ---",
                    crate::base::time::now_rfc3339()
                ),
            },
        )
        .await?;
    record_daemon(hosts, fqdn, service, Some(process))?;
    let end = Instant::now() + MOUNT_DEADLINE;
    loop {
        if mounted(hosts, fqdn, &p.mount).await? {
            return Ok(());
        }
        if hosts.process_state(fqdn, process).await == ProcessState::Exited || Instant::now() > end
        {
            let log = hosts
                .read_file(fqdn, &p.log)
                .await
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(ClusterError::Service {
                action: "mount the faulty disk of".into(),
                service,
                node: fqdn.to_string(),
                detail: format!(
                    "{} is not mounted within {} s ({})",
                    p.mount.display(),
                    MOUNT_DEADLINE.as_secs(),
                    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                ),
            });
        }
        tokio::time::sleep(MOUNT_POLL).await;
    }
}

/// Removes a mount at once, even while something holds it (`umount -l`).
async fn detach<H: Hosts>(hosts: &H, fqdn: &str, mount: &Path) -> Result<(), ClusterError> {
    let target = mount.display().to_string();
    hosts
        .run_ok(
            fqdn,
            "detach the faulty disk",
            &in_node_mounts(hosts, fqdn, &["umount", "-l", &target]),
        )
        .await
        .map(|_| ())
}

/// Makes files the harness wrote into a faulty disk durable (`sync FILE` fsyncs each), as an
/// operator's configuration management would leave them.
pub async fn sync_files<H: Hosts>(
    hosts: &H,
    fqdn: &str,
    files: &[PathBuf],
) -> Result<(), ClusterError> {
    if files.is_empty() {
        return Ok(());
    }
    let mut argv = vec!["sync".to_string(), "--".to_string()];
    argv.extend(files.iter().map(|f| f.display().to_string()));
    hosts
        .run_ok(fqdn, "sync the files written to the faulty disk", &argv)
        .await
        .map(|_| ())
}

/// Cuts the disk's power: its daemon is killed (nothing more reaches the durable copy) and the
/// dead mount detached. The service must be gone already (a power cut takes it first).
pub async fn cut_power<H: Hosts>(
    hosts: &mut H,
    fqdn: &str,
    service: ServiceKind,
) -> Result<(), ClusterError> {
    stop_daemon(hosts, fqdn, service, Signal::Kill).await
}

/// Unmounts a disk cleanly: its daemon makes everything durable first (SIGTERM), as a machine's
/// orderly shutdown would.
pub async fn unmount_clean<H: Hosts>(
    hosts: &mut H,
    fqdn: &str,
    service: ServiceKind,
) -> Result<(), ClusterError> {
    stop_daemon(hosts, fqdn, service, Signal::Terminate).await
}

/// Stops a disk's daemon with `signal`, waits until it is gone, and detaches whatever mount
/// is left.
async fn stop_daemon<H: Hosts>(
    hosts: &mut H,
    fqdn: &str,
    service: ServiceKind,
    signal: Signal,
) -> Result<(), ClusterError> {
    let p = paths(hosts, fqdn, service)?;
    if let Some(process) = daemon(hosts, fqdn, service).await {
        hosts.signal(fqdn, process, signal).await?;
        if !super::exits_within(hosts, fqdn, process, MOUNT_DEADLINE).await {
            return Err(ClusterError::node(
                "stop the faulty disk's daemon",
                fqdn,
                format!(
                    "pid {} still runs after {} s",
                    process.pid,
                    MOUNT_DEADLINE.as_secs()
                ),
            ));
        }
    }
    record_daemon(hosts, fqdn, service, None)?;
    if mounted(hosts, fqdn, &p.mount).await? {
        detach(hosts, fqdn, &p.mount).await?;
    }
    Ok(())
}

/// Sets the disk's latencies: the control file, then SIGHUP to its daemon.
pub async fn set_latencies<H: Hosts>(
    hosts: &mut H,
    fqdn: &str,
    service: ServiceKind,
    latencies: Latencies,
) -> Result<(), ClusterError> {
    let p = paths(hosts, fqdn, service)?;
    let process = daemon(hosts, fqdn, service)
        .await
        .ok_or_else(|| ClusterError::Service {
            action: "slow the disk of".into(),
            service,
            node: fqdn.to_string(),
            detail: "its faulty disk is not mounted".into(),
        })?;
    let text = serde_json::to_string(&latencies)
        .map_err(|e| ClusterError::node("write the disk's latencies", fqdn, e))?;
    hosts.write_file(fqdn, &p.control, text.as_bytes()).await?;
    hosts.signal(fqdn, process, Signal::Hangup).await
}
