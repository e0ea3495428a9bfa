//! `succession gc` for the local provider: removes whatever runs left behind when the harness
//! was killed — their processes, namespaces, host links, leases and directories.

use super::cleanup::{all_labelled_processes, destroy_run};
use super::Local;
use crate::provider::leases::orphan_leases;
use crate::provider::netns;
use crate::provider::record::{all_runs, collectable};
use crate::provider::{GcReport, Provider};

/// Removes every run whose owner is gone (and kept runs too when `all`).
pub fn collect(all: bool) -> GcReport {
    let mut report = GcReport::default();
    for dir in all_runs() {
        // A run killed before its first record: it created nothing but the directory.
        if dir.load().is_err()
            && (dir.path.join("run.json").exists()
                || std::fs::read_dir(&dir.path)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false))
        {
            let _ = std::fs::remove_dir_all(&dir.path);
            report
                .strays
                .push(format!("unreadable run directory {}", dir.path.display()));
        }
    }
    for (dir, record) in collectable(Local.name(), all, &mut report) {
        let id = record.id.clone();
        destroy_run(&dir, &record, false);
        report.removed.push(format!(
            "run {id} ({}, {} nodes)",
            record.purpose,
            record.nodes.len()
        ));
    }
    let live: Vec<String> = all_runs()
        .iter()
        .filter_map(|d| d.path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let orphan =
        |name: &str| netns::run_id_of(name).is_some_and(|id| !live.iter().any(|l| l == id));
    for ns in netns::list_namespaces() {
        if orphan(&ns) {
            netns::destroy_namespace(&ns);
            report.strays.push(format!("namespace {ns}"));
        }
    }
    for link in netns::list_host_links() {
        if orphan(&link) {
            netns::delete_host_link(&link);
            report.strays.push(format!("interface {link}"));
        }
    }
    if let Ok(entries) = std::fs::read_dir("/etc/netns") {
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if orphan(&name) {
                let _ = std::fs::remove_dir_all(e.path());
                report.strays.push(format!("/etc/netns/{name}"));
            }
        }
    }
    for (id, process) in all_labelled_processes() {
        if !live.contains(&id) {
            process.kill();
            report
                .strays
                .push(format!("process {} of run {id}", process.pid));
        }
    }
    for (run, target) in super::mounts::faulty_disk_mounts() {
        if !live.contains(&run) && super::mounts::detach(&target) {
            report
                .strays
                .push(format!("faulty-disk mount {target} of run {run}"));
        }
    }
    for (path, owner) in orphan_leases() {
        let _ = std::fs::remove_file(&path);
        report
            .strays
            .push(format!("subnet lease {} of run {owner}", path.display()));
    }
    report
}
