//! Removing what EC2 runs left: every instance tagged with a run whose harness is gone (found
//! by tag, so a run killed before it recorded an instance's id is still found), and, given a
//! region (`gc --region`), instances of runs that have no record on this machine at all,
//! launched at least `--older-than` ago.

use std::time::Duration;

use super::api::{Ec2, Ec2Error};
use super::{block, settings_of, Ec2Provider};
use crate::provider::record::{all_runs, collectable, RunDir, RunRecord};
use crate::provider::{GcReport, Provider};

/// Terminates every live instance of a run (by tag) and, when that worked, removes its record.
pub fn destroy_run(ec2: &Ec2, dir: &RunDir, record: &RunRecord) -> Vec<Ec2Error> {
    let id = record.id.clone();
    let ec2 = ec2.clone();
    let failures = block(async move {
        let mut failures = Vec::new();
        match ec2.instances(Some(&id)).await {
            Ok(found) => {
                for i in found
                    .iter()
                    .filter(|i| i.state != "terminated" && i.state != "shutting-down")
                {
                    if let Err(e) = ec2.terminate(&id, &i.id).await {
                        failures.push(e);
                    }
                }
            }
            Err(e) => failures.push(e),
        }
        failures
    })
    .unwrap_or_else(|e| {
        vec![Ec2Error::Api {
            call: "any",
            detail: e.to_string(),
        }]
    });
    // The run's SSH connections (a killed harness leaves its multiplexing masters behind).
    let config = dir.path.join("ssh").join("config");
    if config.exists() {
        for node in record.nodes.values() {
            let _ = std::process::Command::new("ssh")
                .arg("-F")
                .arg(&config)
                .args(["-O", "exit"])
                .arg(node.address.to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&dir.path);
    }
    failures
}

fn client_of(record: &RunRecord) -> Option<Ec2> {
    let topology = record.parsed_topology().ok()?;
    let (settings, _) = settings_of(&topology).ok()?;
    block(Ec2::connect(
        &settings.region,
        settings.endpoint_url.as_deref(),
    ))
    .ok()
}

/// `succession gc` for EC2.
pub fn collect(all: bool, strays: &crate::provider::StraySearch) -> GcReport {
    let mut report = GcReport::default();
    for (dir, record) in collectable(Ec2Provider.name(), all, &mut report) {
        let Some(ec2) = client_of(&record) else {
            report.left.push(format!(
                "run {}: its topology no longer says where its instances are",
                record.id
            ));
            continue;
        };
        let failures = destroy_run(&ec2, &dir, &record);
        match failures.first() {
            None => report.removed.push(format!(
                "run {} ({}, {} instances)",
                record.id,
                record.purpose,
                record.nodes.len()
            )),
            Some(e) => report.left.push(format!("run {}: {e}", record.id)),
        }
    }
    let Some(region) = strays.region.clone() else {
        return report;
    };
    let endpoint = strays.endpoint_url.clone();
    let older_than: Duration = strays.older_than;
    let live: Vec<String> = all_runs()
        .iter()
        .filter_map(|d| d.path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let strays = block(async move {
        let ec2 = Ec2::connect(&region, endpoint.as_deref()).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut removed = Vec::new();
        if let Ok(found) = ec2.instances(None).await {
            for i in found {
                let Some(run) = i.run.clone() else { continue };
                let old_enough = i
                    .launched_secs
                    .is_some_and(|t| now - t >= older_than.as_secs() as i64);
                let live_state = i.state != "terminated" && i.state != "shutting-down";
                if live_state
                    && old_enough
                    && !live.contains(&run)
                    && ec2.terminate(&run, &i.id).await.is_ok()
                {
                    removed.push(format!("instance {} of run {run}", i.id));
                }
            }
        }
        removed
    })
    .unwrap_or_default();
    report.strays.extend(strays);
    report
}
