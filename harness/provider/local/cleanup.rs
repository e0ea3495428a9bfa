//! Removing what a run of the local provider created: its processes (found by their run label
//! whatever namespace they are in), namespaces, host link, lease and directory.

use crate::provider::leases;
use crate::provider::netns;
use crate::provider::process::{ProcessId, ProcessState};
use crate::provider::record::{RunDir, RunRecord, RUN_LABEL};

/// Every live process carrying a run label, with the run id (found through /proc, whatever
/// namespace the process is in).
pub fn all_labelled_processes() -> Vec<(String, ProcessId)> {
    let prefix = format!("{RUN_LABEL}=");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let id = env
                .split(|b| *b == 0)
                .find_map(|var| var.strip_prefix(prefix.as_bytes()))
                .map(|id| String::from_utf8_lossy(id).into_owned())?;
            let process = ProcessId::of(pid)?;
            (process.state() == ProcessState::Running).then_some((id, process))
        })
        .collect()
}

/// Live processes labelled with a run's id.
pub fn labelled_processes(run_id: &str) -> Vec<ProcessId> {
    all_labelled_processes()
        .into_iter()
        .filter(|(id, _)| id == run_id)
        .map(|(_, p)| p)
        .collect()
}

/// Removes everything a run created: processes, namespaces, the host link, its lease and its
/// directory. Idempotent, synchronous, usable from Drop, teardown and gc alike.
pub fn destroy_run(dir: &RunDir, record: &RunRecord, keep_files: bool) {
    for svc in record.services.values() {
        if let Some(p) = svc.process {
            if p.state() != ProcessState::Gone {
                p.kill();
            }
        }
    }
    for node in record.nodes.values() {
        netns::destroy_namespace(&node.host);
    }
    // Anything of the run still alive outside its namespaces (a namespace can be deleted while
    // a process still holds it).
    for p in labelled_processes(&record.id) {
        p.kill();
    }
    // Namespaces created but not yet recorded under a node (killed mid-provisioning).
    for ns in netns::list_namespaces() {
        if netns::run_id_of(&ns) == Some(record.id.as_str()) {
            netns::destroy_namespace(&ns);
        }
    }
    // The faulty disks' mounts: their daemons are dead now, and a dead mount would keep the
    // run's directory from being removed.
    super::mounts::detach_run(&record.id);
    netns::delete_host_link(&netns::host_link_name(&record.id));
    if let Some(subnet) = record.subnet {
        leases::release_subnet(&record.id, subnet);
    }
    if !keep_files {
        let _ = std::fs::remove_dir_all(&dir.path);
    }
}
