//! `succession explore` on real clusters: a planted bug — a bound on re-election tighter than
//! the servers can meet, which only some faults trip — is found without being told where,
//! shrunk to at most three faults, and the scenario it writes replays the failure; a clean
//! cluster survives a fixed-seed budget with no false failure, on both providers.
//!
//! Root, the Debian packages and (for containers) the node image are needed, as for
//! tests/cluster.rs: without them these are ignored with the reason, and with `CI` set they fail.

use std::path::Path;

use libtest_mimic::{Arguments, Trial};

mod support;
use support::*;

fn main() {
    let args = Arguments::from_args();
    let local = vec![
        Trial::test(
            "explore::finds_and_shrinks_a_planted_tight_bound",
            finds_and_shrinks_a_planted_bound,
        ),
        Trial::test("explore::a_clean_cluster_survives_a_fixed_seed", || {
            clean_budget(On::Local, "quorum", "5", 2)
        }),
        // Seed 3 draws two losses in effect together on five ZooKeeper servers, whose
        // minority of two the default bound allows down at once.
        Trial::test("explore::overlapping_faults_keep_a_majority_up", || {
            clean_budget(On::Local, "zookeeper-five", "3", 3)
        }),
    ];
    let containers = vec![Trial::test(
        "explore::containers::a_clean_cluster_survives_a_fixed_seed",
        || clean_budget(On::Containers, "quorum", "5", 1),
    )];
    let mut all = gate(local, missing_prerequisite());
    all.extend(gate(containers, On::Containers.missing()));
    libtest_mimic::run(&args, all).exit();
}

fn explore(
    on: On,
    topology: &str,
    tag: &str,
    extra: &[&str],
) -> Result<(std::process::Output, std::path::PathBuf), libtest_mimic::Failed> {
    let out_dir = report_dir(&format!("explore-{tag}-{}", on.name()));
    let out = succession()
        .arg("explore")
        .arg(root_dir().join(format!("topologies/{topology}.toml")))
        .args(on.args())
        .arg("--out")
        .arg(&out_dir)
        .args(extra)
        .output()?;
    Ok((out, out_dir))
}

fn read_json(path: &Path) -> Result<serde_json::Value, libtest_mimic::Failed> {
    let text =
        std::fs::read_to_string(path).map_err(|e| fail(format!("no {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| fail(format!("bad {}: {e}", path.display())))
}

fn finds_and_shrinks_a_planted_bound() -> TestResult {
    // Nothing says which fault trips the bound: killing a follower does not, faults that
    // cost the leader its standing do.
    let (out, dir) = explore(
        On::Local,
        "quorum",
        "planted",
        &[
            "--seed",
            "11",
            "--runs",
            "4",
            "--budget",
            "10m",
            "--leader-within",
            "300ms",
            "--min-hold",
            "2s",
            "--max-hold",
            "2500ms",
            "--max-faults",
            "3",
            "--max-shrinks",
            "8",
        ],
    )?;
    let text = output_text(&out);
    if out.status.code() != Some(1)
        || !text.contains("FAIL no etcd leader named by every member")
            && !text.contains("FAIL no zookeeper leader named by every member")
    {
        return Err(fail(format!("the planted bound was not found\n{text}")));
    }
    let outcome = read_json(&dir.join("explore.json"))?;
    let finding = &outcome["finding"];
    let shrunk = finding["shrunk"].as_array().ok_or("no shrunk schedule")?;
    let found = finding["found"].as_array().ok_or("no found schedule")?;
    if shrunk.is_empty() || shrunk.len() > 3 || shrunk.len() > found.len() {
        return Err(fail(format!(
            "shrunk to {} faults from {}\n{text}",
            shrunk.len(),
            found.len()
        )));
    }
    if finding["broken"]["invariant"] != "leader-after-heal" {
        return Err(fail(format!(
            "unexpected invariant {}\n{text}",
            finding["broken"]
        )));
    }
    // Every run's report carries its schedule and the explore seed.
    let first = read_json(&dir.join("run-1/report.json"))?;
    if first["explored"]["seed"] != 11
        || first["explored"]["schedule"]
            .as_array()
            .is_none_or(|s| s.is_empty())
    {
        return Err(fail(format!(
            "run-1's report lacks its schedule: {}",
            first["explored"]
        )));
    }
    // The printed replay line replays the failure, the same way.
    let replay = finding["replay"].as_str().ok_or("no replay line")?;
    let words: Vec<&str> = replay.split_whitespace().collect();
    if words.first() != Some(&"succession") || !text.contains(replay) {
        return Err(fail(format!("bad replay line `{replay}`\n{text}")));
    }
    // A shrunk schedule sits near the bound it trips (a hold just long enough), so one replay
    // may pass: the printed line must fail the same way in one of three, and never otherwise.
    for attempt in 1..=3 {
        let report_dir = dir.join(format!("replay-{attempt}"));
        let again = succession()
            .args(&words[1..])
            .arg("--report")
            .arg(&report_dir)
            .output()?;
        match replayed_the_same_way(&again, &read_report(&report_dir)?) {
            Ok(true) => return Ok(()),
            Ok(false) if attempt < 3 => continue,
            Ok(false) => {
                return Err(fail(format!(
                    "the minimal scenario passed three replays\n{}",
                    output_text(&again)
                )))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether a replay failed the same way (true), passed (false), or failed otherwise (an error).
fn replayed_the_same_way(
    again: &std::process::Output,
    report: &serde_json::Value,
) -> Result<bool, libtest_mimic::Failed> {
    let failed: Vec<&str> = report["steps"]
        .as_array()
        .ok_or("no steps")?
        .iter()
        .filter(|s| s["status"] == "failed")
        .filter_map(|s| s["name"].as_str())
        .collect();
    if again.status.code() == Some(0) && failed.is_empty() {
        return Ok(false);
    }
    // The same invariant broken again: no leader named by every member within the planted
    // bound after a heal. Which service misses it first may differ from the exploration's run:
    // a fault on a node (isolating the etcd leader's node cuts its ZooKeeper server off too)
    // delays both services' recovery, and against a 300 ms bound either can be the one late.
    let leader_after_heal =
        |n: &&str| n.starts_with("after fault") && n.ends_with("leader named by every member");
    if again.status.code() != Some(1) || !failed.first().is_some_and(leader_after_heal) {
        return Err(fail(format!(
            "the minimal scenario did not fail the same way on replay: failed {failed:?}\n{}",
            output_text(again)
        )));
    }
    Ok(true)
}

fn clean_budget(on: On, topology: &str, seed: &str, runs: usize) -> TestResult {
    let runs = runs.to_string();
    let (out, dir) = explore(
        on,
        topology,
        &format!("clean-{topology}"),
        &[
            "--seed",
            seed,
            "--runs",
            &runs,
            "--budget",
            "10m",
            "--max-hold",
            "2s",
        ],
    )?;
    let text = output_text(&out);
    if out.status.code() != Some(0) || !text.contains("PASS every invariant held") {
        return Err(fail(format!("a clean cluster failed exploring\n{text}")));
    }
    let outcome = read_json(&dir.join("explore.json"))?;
    if outcome["runs"].as_u64() != runs.parse().ok() || !outcome["finding"].is_null() {
        return Err(fail(format!("unexpected outcome {outcome}\n{text}")));
    }
    // The invariants were judged, not skipped: the term watch's checks are in the report.
    let report = read_json(&dir.join("run-1/report.json"))?;
    let watched = report["steps"]
        .as_array()
        .ok_or("no steps")?
        .iter()
        .filter(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("at most one"))
                && s["status"] == "passed"
        })
        .count();
    if watched == 0 {
        return Err(fail(format!("run-1 judged no leader per term\n{report}")));
    }
    Ok(())
}
