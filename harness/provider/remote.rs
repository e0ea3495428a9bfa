//! What the providers whose nodes are other machines (containers, EC2 instances) do the same
//! way: every effect on a node is a shell command run there (`node_shell`), so starting,
//! watching and signalling processes, files and neighbour tables are written once here, over
//! the one thing that differs — how a command reaches a node.

use std::path::Path;

use super::node_shell as shell;
use super::record::{NodeRecord, ProcessId, RunRecord, RUN_LABEL};
use super::{ClusterError, ExecOutput, ProcessState, Signal, Spawn};
use crate::probe::neighbour::{parse_ip_neigh, Neighbour};

/// A run whose nodes are reached by running commands on them.
#[allow(async_fn_in_trait)]
pub trait RemoteNodes {
    /// The run's record: its nodes, their addresses and whether they live.
    fn run_record(&self) -> &RunRecord;
    /// Runs one of the harness's own short commands on a live node.
    async fn run_on(
        &self,
        fqdn: &str,
        action: &str,
        argv: &[String],
    ) -> Result<ExecOutput, ClusterError>;
}

/// A node of the run.
pub fn node<'a>(record: &'a RunRecord, fqdn: &str) -> Result<&'a NodeRecord, ClusterError> {
    record
        .nodes
        .get(fqdn)
        .ok_or_else(|| ClusterError::node("find the node", fqdn, "no such node in this run"))
}

/// A node of the run that has not been terminated.
pub fn live_node<'a>(
    record: &'a RunRecord,
    fqdn: &str,
    action: &str,
) -> Result<&'a NodeRecord, ClusterError> {
    let n = node(record, fqdn)?;
    if !n.alive {
        return Err(ClusterError::node(action, fqdn, "the node was terminated"));
    }
    Ok(n)
}

/// Runs a command that must exit 0.
pub async fn run_ok<R: RemoteNodes>(
    r: &R,
    fqdn: &str,
    action: &str,
    argv: &[String],
) -> Result<ExecOutput, ClusterError> {
    let out = r.run_on(fqdn, action, argv).await?;
    if out.code != Some(0) {
        return Err(ClusterError::node(
            action,
            fqdn,
            format!("exit {:?}: {}", out.code, out.stderr.trim()),
        ));
    }
    Ok(out)
}

/// Starts a long-running process labelled with the run.
pub async fn spawn<R: RemoteNodes>(
    r: &R,
    fqdn: &str,
    spawn: &Spawn,
) -> Result<ProcessId, ClusterError> {
    let action = format!("start `{}`", spawn.argv.join(" "));
    let mut argv = vec![
        "env".to_string(),
        format!("{RUN_LABEL}={}", r.run_record().id),
    ];
    argv.extend(shell::spawn(spawn));
    let out = r.run_on(fqdn, &action, &argv).await?;
    shell::parse_spawned(&out.stdout).ok_or_else(|| {
        ClusterError::node(
            &action,
            fqdn,
            format!(
                "the process exited at once (see {}) {}",
                spawn.log.display(),
                out.stderr.trim()
            ),
        )
    })
}

/// Whether a process the run started still runs.
pub async fn process_state<R: RemoteNodes>(r: &R, fqdn: &str, process: ProcessId) -> ProcessState {
    if !r.run_record().nodes.get(fqdn).is_some_and(|n| n.alive) {
        return ProcessState::Exited;
    }
    match r
        .run_on(fqdn, "read a process", &shell::stat(process.pid))
        .await
    {
        Ok(out) if shell::is_alive(process, &out.stdout) => ProcessState::Running,
        Ok(_) => ProcessState::Exited,
        // No answer: nothing is known to have stopped.
        Err(_) => ProcessState::Running,
    }
}

/// Signals a process the run started, unless it already exited (or its pid was reused).
pub async fn signal<R: RemoteNodes>(
    r: &R,
    fqdn: &str,
    process: ProcessId,
    signal: Signal,
) -> Result<(), ClusterError> {
    if process_state(r, fqdn, process).await == ProcessState::Exited {
        return Ok(());
    }
    let argv = shell::kill(process.pid, signal.number());
    run_ok(r, fqdn, "signal a process", &argv).await.map(|_| ())
}

/// Reads a file on a node.
pub async fn read_file<R: RemoteNodes>(
    r: &R,
    fqdn: &str,
    path: &Path,
) -> Result<Vec<u8>, ClusterError> {
    let action = format!("read {}", path.display());
    let out = run_ok(r, fqdn, &action, &shell::cat(path)).await?;
    Ok(out.stdout.into_bytes())
}

/// Whether a directory on a node holds anything.
pub async fn holds_files<R: RemoteNodes>(
    r: &R,
    fqdn: &str,
    path: &Path,
) -> Result<bool, ClusterError> {
    let action = format!("look into {}", path.display());
    let out = r.run_on(fqdn, &action, &shell::holds_files(path)).await?;
    Ok(out.code == Some(0))
}

/// Removes a directory on a node; true when it held anything.
pub async fn remove_dir<R: RemoteNodes>(
    r: &R,
    fqdn: &str,
    path: &Path,
) -> Result<bool, ClusterError> {
    let held = holds_files(r, fqdn, path).await?;
    let action = format!("remove {}", path.display());
    run_ok(r, fqdn, &action, &shell::remove_dir(path)).await?;
    Ok(held)
}

/// `observer`'s neighbour entry for `target`'s address.
pub async fn neighbour<R: RemoteNodes>(
    r: &R,
    observer: &str,
    target: &str,
) -> Result<Neighbour, ClusterError> {
    let address = node(r.run_record(), target)?.address;
    let argv = shell::neighbour(address);
    let out = run_ok(r, observer, "read its neighbour table", &argv).await?;
    Ok(parse_ip_neigh(&out.stdout))
}

/// Deletes `observer`'s neighbour entry for `target` (`arp -d`).
pub async fn purge_neighbour<R: RemoteNodes>(
    r: &R,
    observer: &str,
    target: &str,
) -> Result<(), ClusterError> {
    let address = node(r.run_record(), target)?.address;
    let action = format!("purge its neighbour entry for {target}");
    run_ok(r, observer, &action, &shell::purge_neighbour(address))
        .await
        .map(|_| ())
}
