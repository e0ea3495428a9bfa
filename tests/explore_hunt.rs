//! `succession explore` finds a real etcd bug without being told where: on Debian's etcd
//! 3.4.23, a member that rejoins through the leader's snapshot makes a watch open on it go back
//! in revision (etcd issue 15271). Given only a topology that snapshots often and a fast
//! workload (`tests/fixtures/scenarios/explore-watch-catchup.toml`), explore draws faults from
//! a fixed seed with long holds, finds a schedule whose history breaks the watch guarantees,
//! shrinks it to at most three faults, and the replay line fails the same way.
//!
//! About ten minutes of real clusters: this is a nightly suite (`cargo test --features nightly
//! --test explore_hunt`, run by `ci/nightly`); `ci/test` keeps the fast, deterministic
//! representative, the planted `etcd-watch-after-snapshot-catchup`. Root and the Debian packages
//! are needed, as for tests/explore.rs; with `CI` set their absence fails it.

use libtest_mimic::{Arguments, Trial};

mod support;
use support::*;

fn main() {
    let args = Arguments::from_args();
    let trials = vec![Trial::test(
        "explore::finds_shrinks_and_replays_etcd_issue_15271",
        hunt,
    )];
    libtest_mimic::run(&args, gate(trials, missing_prerequisite())).exit();
}

fn hunt() -> TestResult {
    let out_dir = report_dir("explore-hunt-15271");
    // Seed 1 draws, on this space: a crash-restart of a follower, a partition with a follower
    // in the minority, then a pause of the leader — held past the 5,000 entries the leader
    // keeps for a laggard, so the paused member rejoins through the snapshot.
    let out = succession()
        .arg("explore")
        .arg(root_dir().join("tests/fixtures/scenarios/explore-watch-catchup.toml"))
        .args([
            "--seed",
            "1",
            "--runs",
            "3",
            "--budget",
            "40m",
            "--min-hold",
            "55s",
            "--max-hold",
            "60s",
            "--max-faults",
            "2",
            "--max-shrinks",
            "4",
            "--leader-within",
            "30s",
            "--out",
        ])
        .arg(&out_dir)
        .output()?;
    let text = output_text(&out);
    if out.status.code() != Some(1)
        || !text.contains("FAIL the workload's history broke watch guarantees")
    {
        return Err(fail(format!(
            "explore did not find the watch going back\n{text}"
        )));
    }
    let outcome: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("explore.json"))
            .map_err(|e| fail(format!("no explore.json: {e}")))?,
    )
    .map_err(|e| fail(format!("bad explore.json: {e}")))?;
    let finding = &outcome["finding"];
    let shrunk = finding["shrunk"].as_array().ok_or("no shrunk schedule")?;
    if shrunk.is_empty() || shrunk.len() > 3 {
        return Err(fail(format!("shrunk to {} faults\n{text}", shrunk.len())));
    }
    if finding["broken"]["of"] != "watch guarantees" {
        return Err(fail(format!(
            "unexpected invariant {}\n{text}",
            finding["broken"]
        )));
    }
    let replay = finding["replay"].as_str().ok_or("no replay line")?;
    let words: Vec<&str> = replay.split_whitespace().collect();
    if words.first() != Some(&"succession") {
        return Err(fail(format!("bad replay line `{replay}`")));
    }
    let replay_dir = out_dir.join("replay");
    let again = succession()
        .args(&words[1..])
        .arg("--report")
        .arg(&replay_dir)
        .output()?;
    let report = read_report(&replay_dir)?;
    let went_back = report["consistency"]["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["checker"] == "watch guarantees" && c["status"] == "fail")
        .flat_map(|c| c["breaches"].as_array().cloned().unwrap_or_default())
        // The bug shows as the watch going back, or — when the member resends from the last
        // revision it had delivered — as that event delivered twice.
        .any(|b| {
            b["what"]
                .as_str()
                .is_some_and(|w| w.contains("went back from revision") || w.contains("twice"))
        });
    if again.status.code() != Some(1) || !went_back {
        return Err(fail(format!(
            "the replay did not fail the same way\n{}",
            output_text(&again)
        )));
    }
    Ok(())
}
