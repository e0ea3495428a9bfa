//! `succession gc` for the containers provider: removes the runs whose harness is gone, and
//! every container, network and volume labelled with a run that has no record left.

use super::engine::{block_on, Engine, RUN_LABEL};
use super::{destroy_run, Containers};
use crate::provider::record::{all_runs, collectable};
use crate::provider::{GcReport, Provider};

/// Removes every run whose owner is gone (and kept runs too when `all`), then strays.
pub fn collect(all: bool) -> GcReport {
    let mut report = GcReport::default();
    let runs = collectable(Containers::default().name(), all, &mut report);
    let engine = match block_on(Engine::connect()).and_then(|e| e) {
        Ok(engine) => engine,
        Err(e) => {
            if !runs.is_empty() {
                report.left.push(format!(
                    "{} container runs: {e}; run `succession gc` again once it answers",
                    runs.len()
                ));
            }
            return report;
        }
    };
    for (dir, record) in runs {
        let failures = destroy_run(&engine, &dir, &record);
        match failures.first() {
            None => report.removed.push(format!(
                "run {} ({}, {} containers)",
                record.id,
                record.purpose,
                record.nodes.len()
            )),
            Some(e) => report.left.push(format!("run {}: {e}", record.id)),
        }
    }
    let live: Vec<String> = all_runs()
        .iter()
        .filter_map(|d| d.path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let strays = block_on(async {
        let mut removed = Vec::new();
        let orphan = |labels: &std::collections::HashMap<String, String>| {
            labels
                .get(RUN_LABEL)
                .filter(|id| !live.contains(id))
                .cloned()
        };
        if let Ok(found) = engine.labelled_containers(RUN_LABEL, None).await {
            for (name, labels) in found {
                if let Some(id) = orphan(&labels) {
                    if engine.remove_container(&name).await.is_ok() {
                        removed.push(format!("container {name} of run {id}"));
                    }
                }
            }
        }
        if let Ok(found) = engine.labelled_networks(RUN_LABEL, None).await {
            for (name, labels) in found {
                if let Some(id) = orphan(&labels) {
                    if engine.remove_network(&name).await.is_ok() {
                        removed.push(format!("network {name} of run {id}"));
                    }
                }
            }
        }
        if let Ok(found) = engine.labelled_volumes(RUN_LABEL, None).await {
            for (name, labels) in found {
                if let Some(id) = orphan(&labels) {
                    if engine.remove_volume(&name).await.is_ok() {
                        removed.push(format!("volume {name} of run {id}"));
                    }
                }
            }
        }
        removed
    })
    .unwrap_or_default();
    report.strays.extend(strays);
    report
}
