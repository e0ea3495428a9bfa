//! What a scenario's report must hold besides passing: its checks judged on enough samples,
//! its measurements, the ledger's counts and losses, the workload's verdicts — each recomputed
//! offline by `succession check` where it can be.

use super::*;

/// Every `[[check]]` of the scenario is in the report, passed on enough samples spread over its
/// window; the monitor's figures are there for each target a check judges; an election measured
/// on etcd or ZooKeeper has its serving figure and a resolution within a few polls (or is
/// marked as an upper bound).
pub(super) fn check_evidence(text: &str, report: &serde_json::Value) -> TestResult {
    let declared = text.matches("[[check]]").count();
    let checks = report["checks"]
        .as_array()
        .ok_or("no checks in the report")?;
    if checks.len() != declared {
        return Err(fail(format!(
            "the scenario declares {declared} checks; the report judged {}",
            checks.len()
        )));
    }
    for c in checks {
        let samples = c["evidence"]["samples"].as_u64().unwrap_or(0);
        let min = c["evidence"]["min_samples"].as_u64().unwrap_or(u64::MAX);
        if c["status"] != "passed" || samples < min || min < 20 {
            return Err(fail(format!(
                "a check did not pass on enough evidence: {c:#}"
            )));
        }
        // A check over the whole run judged exactly the monitor's figures for its target.
        let target = c["target"].as_str().unwrap_or_default();
        let whole_run = c["from_ms"] == 0 && c["to_ms"] == report["duration_ms"];
        let measured = &report["availability"][target];
        if whole_run
            && (measured["requests"] != c["measured"]["requests"]
                || measured["ok"] != c["measured"]["ok"])
        {
            return Err(fail(format!(
                "the availability of {target} does not agree with its check: {measured:#} vs {c:#}"
            )));
        }
    }
    let measurements = report["measurements"]
        .as_object()
        .ok_or("no measurements")?;
    for (name, _) in measurements
        .iter()
        .filter(|(n, _)| !n.ends_with(" (serving)"))
    {
        let serving = format!("{name} (serving)");
        let elects_with_writes = name.starts_with("etcd") || name.starts_with("zookeeper");
        if elects_with_writes && name.contains("re-election") {
            let (elected, served) = (
                measurements[name].as_u64().unwrap_or(0),
                measurements.get(&serving).and_then(|v| v.as_u64()),
            );
            match served {
                Some(s) if s >= elected => {}
                other => {
                    return Err(fail(format!(
                    "`{name}` was elected after {elected} ms but its serving figure is {other:?}"
                )))
                }
            }
        }
        // An election is polled every few tens of ms; a quorum loss is seen only once each
        // probe's write and read have timed out, so its figure is known less closely.
        let bound = if elects_with_writes && name.contains("re-election") {
            500
        } else {
            5_000
        };
        // A figure whose resolution is the whole figure already held when its step first
        // looked (an election over while an earlier step still waited): an upper bound, said
        // so, rather than a moment claimed to within one poll.
        let figure = measurements[name].as_u64();
        let resolution = report["measurement_resolution_ms"][name.as_str()].as_u64();
        let upper_bound = resolution.is_some() && resolution == figure;
        if !upper_bound && resolution.is_none_or(|r| r > bound) {
            return Err(fail(format!(
                "`{name}` has no resolution or a coarse one: {resolution:?}"
            )));
        }
    }
    Ok(())
}

/// What each procedure must say it lost, by scenario (the ledger's plain-words statements), and
/// how many acknowledged writes it must at least have lost as tolerated: a restore or a wipe
/// that loses nothing did not happen.
fn expected_losses(scenario: &str) -> (&'static [&'static str], u64) {
    match scenario {
        "etcd-snapshot-restore" => (
            &[
                "restore from the ",
                " snapshot `backup` lost ",
                "; none before it",
            ],
            20,
        ),
        "etcd-dump-restore" => (
            &[
                " dump `backup` lost ",
                "; none before it",
                "recreating the cluster empty at ",
            ],
            5,
        ),
        "etcd-recreate-from-config" => (
            &[
                "recreating the cluster empty at ",
                " made before it and never restored",
                "losing the majority at ",
            ],
            20,
        ),
        "etcd-force-new-cluster" => (&["losing the majority at "], 0),
        _ => (&[], 0),
    }
}

/// A scenario with a ledger: it passed with no loss beyond tolerance, its history is saved, and
/// `succession check` recomputes the same verdict offline.
pub(super) fn check_ledger(path: &Path, dir: &Path, report: &serde_json::Value) -> TestResult {
    let ledger = &report["ledger"];
    if ledger["pass"] != true {
        return Err(fail(format!("the ledger did not pass: {ledger:#}")));
    }
    let phases = ledger["phases"].as_array().ok_or("no ledger phases")?;
    let acked: u64 = phases
        .iter()
        .filter_map(|p| p["acknowledged"].as_u64())
        .sum();
    if acked == 0 || phases.iter().any(|p| p["lost"] != 0) {
        return Err(fail(format!("unexpected ledger counts: {ledger:#}")));
    }
    let statements: Vec<&str> = ledger["statements"]
        .as_array()
        .ok_or("no statements")?
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    let all = statements.join("\n");
    let scenario = path.file_stem().unwrap_or_default().to_string_lossy();
    let (wanted, min_tolerated) = expected_losses(&scenario);
    for want in wanted {
        if !all.contains(want) {
            return Err(fail(format!("the ledger should say `{want}`:\n{all}")));
        }
    }
    let tolerated: u64 = phases
        .iter()
        .filter_map(|p| p["lost_tolerated"].as_u64())
        .sum();
    if tolerated < min_tolerated {
        return Err(fail(format!(
            "the procedure should have lost at least {min_tolerated} writes (it restores or wipes them), lost {tolerated}:\n{all}"
        )));
    }
    if !dir.join("history.json").exists() {
        return Err(fail("no history.json beside report.json"));
    }
    let out = succession().arg("check").arg(dir).output()?;
    let printed = String::from_utf8_lossy(&out.stdout);
    if out.status.code() != Some(0)
        || !printed.contains("same verdict as the run's report.json")
        || !statements.iter().all(|s| printed.contains(s))
    {
        return Err(fail(format!(
            "`succession check` should recompute the same verdict\n{}",
            output_text(&out)
        )));
    }
    Ok(())
}

/// A scenario with a workload: every checker passed on evidence (the etcd ones, the ZooKeeper
/// one, for the servers the topology runs; at least 20 operations or events each), the history
/// is beside the report, and `succession check` gives the same verdicts offline.
pub(super) fn check_workload(dir: &Path, report: &serde_json::Value) -> TestResult {
    let checks = report["consistency"]["checks"]
        .as_array()
        .ok_or("no consistency verdicts in the report")?;
    let names: Vec<&str> = checks
        .iter()
        .filter_map(|c| c["checker"].as_str())
        .collect();
    // The etcd checkers, the ZooKeeper one, or both, for the servers the topology runs.
    let etcd = ["linearizable", "serializable reads", "watch guarantees"];
    let zookeeper = ["zookeeper"];
    let both = [&etcd[..], &zookeeper[..]].concat();
    if names != etcd && names != zookeeper && names != both {
        return Err(fail(format!("unexpected checkers: {names:?}")));
    }
    for c in checks {
        if c["status"] != "pass" || c["operations"].as_u64().unwrap_or(0) < 20 {
            return Err(fail(format!("a checker did not pass on evidence: {c:#}")));
        }
    }
    if !dir.join("workload.json").exists() {
        return Err(fail("no workload.json beside report.json"));
    }
    let out = succession().arg("check").arg(dir).output()?;
    let printed = String::from_utf8_lossy(&out.stdout);
    if out.status.code() != Some(0) || !printed.contains("same verdicts as the run's report.json") {
        return Err(fail(format!(
            "`succession check` should recompute the same consistency verdicts\n{}",
            output_text(&out)
        )));
    }
    Ok(())
}
