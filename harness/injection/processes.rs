//! Faults on service processes: SIGSTOP and SIGKILL, each verified in the kernel's view of the
//! process, and their heals (SIGCONT, a fresh start).

use std::time::Instant;

use super::{argv, ActiveFault, FaultError, Faults, SIGNAL_DEADLINE, VERIFY_INTERVAL};
use crate::base::names::short;
use crate::cluster::Cluster;
use crate::provider::{Hosts, ProcessId, ProcessState, Signal};
use crate::service::ServiceKind;

pub(super) async fn pause<H: Hosts>(
    faults: &mut Faults,
    cluster: &mut Cluster<H>,
    node: &str,
    service: ServiceKind,
) -> Result<String, FaultError> {
    signal_fault(faults, cluster, node, service, Signal::Pause).await
}

pub(super) async fn kill<H: Hosts>(
    faults: &mut Faults,
    cluster: &mut Cluster<H>,
    node: &str,
    service: ServiceKind,
) -> Result<String, FaultError> {
    signal_fault(faults, cluster, node, service, Signal::Kill).await
}

/// Signals a service's process (SIGSTOP or SIGKILL), records the fault before verifying it, so
/// it is healed even when the verification fails, and verifies it took.
async fn signal_fault<H: Hosts>(
    faults: &mut Faults,
    cluster: &mut Cluster<H>,
    node: &str,
    service: ServiceKind,
    signal: Signal,
) -> Result<String, FaultError> {
    let process = cluster.signal_service(node, service, signal).await?;
    let paused = signal == Signal::Pause;
    let fault = if paused {
        ActiveFault::Paused {
            node: node.to_string(),
            service,
        }
    } else {
        ActiveFault::Killed {
            node: node.to_string(),
            service,
        }
    };
    faults.push(fault.clone());
    if paused {
        wait_for_state(cluster, node, process, true).await?;
        return Ok(fault.describe());
    }
    let end = Instant::now() + SIGNAL_DEADLINE;
    while cluster.process_state(node, process).await != ProcessState::Exited {
        if Instant::now() >= end {
            return Err(FaultError::Survived {
                service,
                node: short(node).to_string(),
                secs: SIGNAL_DEADLINE.as_secs(),
            });
        }
        tokio::time::sleep(VERIFY_INTERVAL).await;
    }
    Ok(fault.describe())
}

/// The state letter of /proc/PID/stat as the node sees it (`T` when stopped).
async fn state_letter<H: Hosts>(
    cluster: &Cluster<H>,
    node: &str,
    process: ProcessId,
) -> Result<char, FaultError> {
    let stat = format!("/proc/{}/stat", process.pid);
    let out = cluster.exec(node, &argv(&["cat", &stat])).await?;
    // The command name is in parentheses and may hold spaces; the state follows the last ')'.
    out.stdout
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .ok_or_else(|| FaultError::NoState {
            pid: process.pid,
            stderr: out.stderr.trim().to_string(),
        })
}

async fn wait_for_state<H: Hosts>(
    cluster: &Cluster<H>,
    node: &str,
    process: ProcessId,
    stopped: bool,
) -> Result<(), FaultError> {
    let end = Instant::now() + SIGNAL_DEADLINE;
    loop {
        let letter = state_letter(cluster, node, process).await?;
        if (letter == 'T') == stopped {
            return Ok(());
        }
        if Instant::now() >= end {
            return Err(FaultError::StateUnchanged {
                pid: process.pid,
                node: short(node).to_string(),
                letter,
                secs: SIGNAL_DEADLINE.as_secs(),
            });
        }
        tokio::time::sleep(VERIFY_INTERVAL).await;
    }
}

/// Undoes a fault on a process and verifies it is gone.
pub(super) async fn heal<H: Hosts>(
    cluster: &mut Cluster<H>,
    fault: &ActiveFault,
) -> Result<(), FaultError> {
    match fault {
        ActiveFault::Dropped { .. }
        | ActiveFault::Delayed { .. }
        | ActiveFault::SlowDisk { .. } => Ok(()),
        ActiveFault::Paused { node, service } => {
            if cluster.node(node).is_none_or(|n| !n.alive) {
                return Ok(());
            }
            let Some(process) = cluster.process_of(node, *service) else {
                return Ok(());
            };
            cluster
                .signal_service(node, *service, Signal::Resume)
                .await?;
            wait_for_state(cluster, node, process, false).await
        }
        ActiveFault::Killed { node, service } => {
            if cluster.node(node).is_none_or(|n| !n.alive) {
                return Ok(());
            }
            Ok(cluster.start_service(node, *service).await?)
        }
    }
}

pub(super) async fn resume<H: Hosts>(
    faults: &mut Faults,
    cluster: &mut Cluster<H>,
    node: &str,
    service: ServiceKind,
) -> Result<String, FaultError> {
    let fault = ActiveFault::Paused {
        node: node.to_string(),
        service,
    };
    let Some(process) = cluster.process_of(node, service) else {
        return Err(FaultError::NotRunning {
            service,
            node: short(node).to_string(),
        });
    };
    let letter = state_letter(cluster, node, process).await?;
    if letter != 'T' {
        return Err(FaultError::NotPaused {
            service,
            node: short(node).to_string(),
            pid: process.pid,
            letter,
        });
    }
    let recorded = faults.forget(&fault);
    if let Err(e) = heal(cluster, &fault).await {
        // Still stopped, as far as anyone knows: left for the heal at the end.
        faults.push(fault);
        return Err(e);
    }
    Ok(if recorded {
        format!("{service} resumed on {}", short(node))
    } else {
        format!(
            "{service} resumed on {} (paused, though not by this run)",
            short(node)
        )
    })
}
