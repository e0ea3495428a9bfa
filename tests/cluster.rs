//! Real clusters: every scenario in scenarios/ end to end, and the harness's cleanup after a
//! pass, a failure, a panic, Ctrl-C, and a SIGKILL followed by `succession gc`.
//!
//! These need root (network namespaces) and the Debian packages `ci/setup-host` installs.
//! Without root they are listed as ignored, with the reason; with `CI` set they fail instead,
//! so a pipeline never passes by skipping them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

mod support;
use support::*;

fn main() {
    let args = Arguments::from_args();
    let missing = missing_prerequisite();
    let mut trials = Vec::new();
    let mut on_containers = Vec::new();

    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(root_dir().join("scenarios"))
        .expect("scenarios/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    scenarios.sort();
    for path in scenarios {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let local = path.clone();
        trials.push(Trial::test(format!("scenario::{stem}"), move || {
            scenario_passes(On::Local, &local)
        }));
        on_containers.push(Trial::test(
            format!("scenario::containers::{stem}"),
            move || scenario_passes(On::Containers, &path),
        ));
    }
    for on in On::ALL {
        let group = if on == On::Local {
            &mut trials
        } else {
            &mut on_containers
        };
        let tag = match on {
            On::Local => String::new(),
            On::Containers => "containers::".to_string(),
        };
        group.push(Trial::test(
            format!("cleanup::{tag}after_a_failing_scenario"),
            move || failing_scenario_cleans_up(on),
        ));
        group.push(Trial::test(
            format!("cleanup::{tag}after_sigkill_then_gc"),
            move || sigkill_then_gc_cleans_up(on),
        ));
        group.push(Trial::test(
            format!("cleanup::{tag}after_ctrl_c"),
            move || ctrl_c_cleans_up(on),
        ));
        group.push(Trial::test(
            format!("cleanup::{tag}after_a_panic"),
            move || panic_cleans_up(on),
        ));
        group.push(Trial::test(
            format!("cli::{tag}up_status_exec_down"),
            move || up_status_exec_down(on),
        ));
    }
    on_containers.push(Trial::test(
        "environment::containers::missing_image_exits_3_and_creates_nothing",
        missing_image_creates_nothing,
    ));
    on_containers.push(Trial::test(
        "neighbours::containers::a_replacement_announces_its_new_mac",
        replacement_announces,
    ));
    trials.push(Trial::test(
        "pipelines::nightly_keeps_every_run_and_exits_by_the_worst_verdict",
        nightly_pipeline,
    ));
    trials.push(Trial::test(
        "scenario::zookeeper-naive-upgrade-is-caught",
        naive_upgrade_is_caught,
    ));
    trials.push(Trial::test("isolation::two_runs_at_once", two_runs_at_once));
    trials.push(Trial::test(
        "preflight::read_only_on_a_live_cell",
        preflight_changes_nothing,
    ));
    trials.push(Trial::test(
        "preflight::flags_out_of_order_zookeeper_ids",
        preflight_flags_out_of_order_ids,
    ));
    trials.push(Trial::test(
        "environment::missing_binary_exits_3_and_creates_nothing",
        missing_binary_creates_nothing,
    ));
    trials.push(Trial::test(
        "environment::stale_standin_exits_3_naming_it",
        stale_standin_is_refused,
    ));
    trials.push(Trial::test(
        "ledger::an_untolerated_loss_fails_the_run_and_the_offline_check",
        untolerated_loss_fails,
    ));

    let mut all = gate(trials, missing);
    all.extend(gate(on_containers, On::Containers.missing()));
    libtest_mimic::run(&args, all).exit();
}

fn scenario_passes(on: On, path: &Path) -> TestResult {
    let Ran { out, report, dir } =
        run_with_report_on(on, path, &path.file_stem().unwrap().to_string_lossy())?;
    let run_id = report["run_id"].as_str().unwrap_or_default().to_string();
    if out.status.code() != Some(0) || report["verdict"] != "pass" {
        return Err(fail(format!(
            "scenario did not pass\n{}",
            output_text(&out)
        )));
    }
    let steps = report["steps"].as_array().ok_or("no steps")?;
    // A step interrupted on purpose is followed by its phase running again from an earlier step.
    for (i, s) in steps.iter().enumerate() {
        match s["status"].as_str() {
            Some("passed") => {}
            Some("interrupted") => {
                let next = steps
                    .get(i + 1)
                    .ok_or("nothing ran after an interrupted step")?;
                if next["index"].as_u64() > s["index"].as_u64() {
                    return Err(fail(format!(
                        "after interrupted step {} the phase did not run again: next was {}",
                        s["index"], next["index"]
                    )));
                }
            }
            _ => return Err(fail(format!("a step did not pass: {s}"))),
        }
    }
    if steps.is_empty() {
        return Err(fail("no steps"));
    }
    for s in steps {
        if s["name"].as_str().unwrap_or("").is_empty() || !s["elapsed_ms"].is_u64() {
            return Err(fail(format!("step without name or timing: {s}")));
        }
    }
    let text = std::fs::read_to_string(path)?;
    for line in text
        .lines()
        .filter(|l| l.trim_start().starts_with("measure"))
    {
        let name = line.split('"').nth(1).unwrap_or_default();
        if !report["measurements"][name].is_u64() {
            return Err(fail(format!(
                "measurement `{name}` missing from the report"
            )));
        }
    }
    check_evidence(&text, &report)?;
    let junit = std::fs::read_to_string(dir.join("junit.xml"))?;
    if !junit.contains("<testsuite") {
        return Err(fail("junit.xml is not a test suite"));
    }
    if text.contains("interrupt = true") && !steps.iter().any(|s| s["status"] == "interrupted") {
        return Err(fail(
            "the scenario interrupts a step, but no step was interrupted",
        ));
    }
    if text.contains("expect = \"quorum-lost\"") {
        let seen = report["timeline"].as_array().is_some_and(|t| {
            t.iter().any(|e| {
                e["what"]
                    .as_str()
                    .is_some_and(|w| w.starts_with("etcd quorum lost: "))
            })
        });
        if !seen {
            return Err(fail("the quorum loss is not reported in the timeline"));
        }
    }
    if text.contains("[ledger]") {
        check_ledger(path, &dir, &report)?;
    }
    assert_clean(&run_id)
}

/// Every `[[check]]` of the scenario is in the report, passed on enough samples spread over its
/// window; the monitor's figures are there for each target a check judges; an election measured
/// on etcd or ZooKeeper has its serving figure and a resolution within a few polls.
fn check_evidence(text: &str, report: &serde_json::Value) -> TestResult {
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
        let resolution = report["measurement_resolution_ms"][name.as_str()].as_u64();
        if resolution.is_none_or(|r| r > bound) {
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
fn check_ledger(path: &Path, dir: &Path, report: &serde_json::Value) -> TestResult {
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

fn untolerated_loss_fails() -> TestResult {
    let Ran { out, report, dir } = run_with_report(
        Path::new("tests/fixtures/scenarios/strict-snapshot-restore.toml"),
        "strict-restore",
    )?;
    if out.status.code() != Some(1) || report["verdict"] != "fail" {
        return Err(fail(format!(
            "expected the run to fail\n{}",
            output_text(&out)
        )));
    }
    let steps = report["steps"].as_array().ok_or("no steps")?;
    let last = steps.last().ok_or("no steps")?;
    let detail = last["detail"].as_str().unwrap_or_default();
    if last["kind"] != "check"
        || last["status"] != "failed"
        || !detail.contains("lost made after the restored capture")
        || steps[..steps.len() - 1]
            .iter()
            .any(|s| s["status"] != "passed")
    {
        return Err(fail(format!(
            "every step should pass and the ledger check fail on the writes made after the snapshot: {report:#}"
        )));
    }
    let out = succession().arg("check").arg(&dir).output()?;
    let printed = String::from_utf8_lossy(&out.stdout);
    if out.status.code() != Some(1) || !printed.contains("violation: at the end: ") {
        return Err(fail(format!(
            "`succession check` should fail the same way\n{}",
            output_text(&out)
        )));
    }
    assert_clean(report["run_id"].as_str().unwrap_or_default())
}

fn failing_scenario_cleans_up(on: On) -> TestResult {
    let Ran { out, report, .. } = run_with_report_on(
        on,
        Path::new("tests/fixtures/scenarios/impossible-members.toml"),
        "failing",
    )?;
    if out.status.code() != Some(1) {
        return Err(fail(format!("expected exit 1\n{}", output_text(&out))));
    }
    if report["verdict"] != "fail"
        || report["steps"][1]["status"] != "failed"
        || report["steps"][2]["status"] != "skipped"
    {
        return Err(fail(format!("unexpected report: {report:#}")));
    }
    let detail = report["steps"][1]["detail"].as_str().unwrap_or_default();
    if !detail.contains("not within 2.0 s") || !detail.contains("unexpected quorum-2") {
        return Err(fail(format!(
            "the failure must say what was seen: {detail}"
        )));
    }
    assert_clean(report["run_id"].as_str().unwrap_or_default())
}

/// The upgrade's renumbering done in one go must not pass: the first restart hands quorum-3
/// the id quorum-1 still holds, exactly as the pure prediction says, and the run fails there.
fn naive_upgrade_is_caught() -> TestResult {
    let Ran { out, report, .. } = run_with_report(
        Path::new("tests/fixtures/scenarios/zookeeper-naive-upgrade.toml"),
        "naive-upgrade",
    )?;
    if out.status.code() != Some(1) || report["verdict"] != "fail" {
        return Err(fail(format!(
            "the naive renumbering must fail (exit 1)\n{}",
            output_text(&out)
        )));
    }
    let steps = &report["steps"];
    if steps[0]["status"] != "passed"
        || steps[1]["status"] != "failed"
        || steps[2]["status"] != "skipped"
        || steps[3]["status"] != "skipped"
    {
        return Err(fail(format!("unexpected steps: {steps:#}")));
    }
    let detail = steps[1]["detail"].as_str().unwrap_or_default();
    for want in [
        "restart 1 of 5: quorum-3 restarted as id 1",
        "two servers claim id 1",
        "quorum-1",
        "predicted before any restart: restart 1 of 5: quorum-3 (id 5) takes id 1, which quorum-1 holds until restart 4",
    ] {
        if !detail.contains(want) {
            return Err(fail(format!(
                "the failure must name the conflict (`{want}`): {detail}"
            )));
        }
    }
    assert_clean(report["run_id"].as_str().unwrap_or_default())
}

/// Starts `run` on the long fixture and waits until its cluster is healthy; returns the child
/// and the run id it printed.
fn start_long_run(
    on: On,
    extra_env: &[(&str, &str)],
    scenario: &str,
) -> Result<(Child, String), Failed> {
    let mut cmd = succession();
    cmd.args(["run", scenario])
        .args(on.args())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut run_id = String::new();
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(rest) = line.split("(run ").nth(1) {
                    run_id = rest.trim_end_matches(')').to_string();
                }
                let healthy = line.starts_with("cluster healthy");
                seen.push(line);
                if healthy {
                    // The steps start right after this line; what the tests do next holds
                    // whether or not the first one has begun.
                    return Ok((child, run_id));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.kill();
    Err(fail(format!(
        "the run never became healthy: {}",
        seen.join("\n")
    )))
}

fn wait_exit(child: &mut Child, within: Duration) -> Result<std::process::ExitStatus, Failed> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return Err(fail("the harness did not exit in time"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigkill_then_gc_cleans_up(on: On) -> TestResult {
    let (mut child, run_id) = start_long_run(on, &[], "tests/fixtures/scenarios/hold.toml")?;
    child.kill()?; // SIGKILL: no teardown runs.
    child.wait()?;
    let left = leftovers(&run_id);
    let host = match on {
        On::Local => "namespace",
        On::Containers => "container",
    };
    if !left.iter().any(|l| l.starts_with(host)) || !left.iter().any(|l| l.starts_with("process")) {
        return Err(fail(format!(
            "a killed run should leave its cluster behind for gc; found {left:?}"
        )));
    }
    let out = succession().arg("gc").output()?;
    if !out.status.success() {
        return Err(fail(format!("gc failed\n{}", output_text(&out))));
    }
    // Another gc running at the same time on this host may have removed it first; what counts
    // is that nothing is left.
    assert_clean(&run_id)
}

fn ctrl_c_cleans_up(on: On) -> TestResult {
    let (mut child, run_id) = start_long_run(on, &[], "tests/fixtures/scenarios/hold.toml")?;
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = wait_exit(&mut child, Duration::from_secs(60))?;
    if status.code() != Some(130) {
        return Err(fail(format!(
            "expected exit 130 after SIGINT, got {status:?}"
        )));
    }
    assert_clean(&run_id)
}

fn panic_cleans_up(on: On) -> TestResult {
    let (mut child, run_id) = start_long_run(
        on,
        &[("SUCCESSION_FAULT_PANIC_AFTER_MS", "500")],
        "tests/fixtures/scenarios/hold.toml",
    )?;
    let status = wait_exit(&mut child, Duration::from_secs(60))?;
    if status.code() != Some(101) {
        return Err(fail(format!(
            "expected the injected panic (exit 101), got {status:?}"
        )));
    }
    assert_clean(&run_id)
}

fn two_runs_at_once() -> TestResult {
    let dirs = [report_dir("iso-a"), report_dir("iso-b")];
    let children: Vec<Child> = dirs
        .iter()
        .map(|d| {
            succession()
                .args([
                    "run",
                    "tests/fixtures/scenarios/leader-failover.toml",
                    "--report",
                ])
                .arg(d)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output())
        .collect::<Result<_, _>>()?;
    let mut ids = Vec::new();
    for (out, dir) in outputs.iter().zip(&dirs) {
        let report = read_report(dir).map_err(|e| fail(format!("{e:?}\n{}", output_text(out))))?;
        if out.status.code() != Some(0) {
            return Err(fail(format!(
                "a concurrent run failed\n{}",
                output_text(out)
            )));
        }
        ids.push(report["run_id"].as_str().unwrap_or_default().to_string());
    }
    if ids[0] == ids[1] {
        return Err(fail("two runs shared a run id"));
    }
    for id in &ids {
        assert_clean(id)?;
    }
    Ok(())
}

fn up_status_exec_down(on: On) -> TestResult {
    // The shared state root (gc elsewhere must see this run's owner), and `--run` everywhere so
    // no other cluster that is up gets picked.
    let (run_id, text) = bring_up(&[
        "tests/fixtures/topologies/trio.toml",
        "--provider",
        on.name(),
    ])?;
    if !text.contains("is up") {
        return Err(fail(format!("up failed\n{text}")));
    }
    let result = (|| -> TestResult {
        let out = succession().args(["status", "--run", &run_id]).output()?;
        let st = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || st.matches("active  running").count() != 6 {
            return Err(fail(format!(
                "status should show 6 running services\n{}",
                output_text(&out)
            )));
        }
        let out = succession()
            .args([
                "exec",
                "quorum-1",
                "--run",
                &run_id,
                "--",
                "getent",
                "hosts",
                "quorum-2.cell-t.dc-t.demo.lan",
            ])
            .output()?;
        let ex = String::from_utf8_lossy(&out.stdout);
        if !out.status.success()
            || !ex.contains("--[ quorum-1.cell-t.dc-t.demo.lan ]--")
            || !ex.contains("quorum-2")
        {
            return Err(fail(format!(
                "exec on a node should resolve its peers\n{}",
                output_text(&out)
            )));
        }
        if on == On::Containers {
            // The seed's `$(hostname)` idiom: a container's hostname is its node's full name.
            let out = succession()
                .args(["exec", "quorum-2", "--run", &run_id, "--", "hostname"])
                .output()?;
            if !String::from_utf8_lossy(&out.stdout).contains("\nquorum-2.cell-t.dc-t.demo.lan\n") {
                return Err(fail(format!(
                    "a container's hostname must be its full name\n{}",
                    output_text(&out)
                )));
            }
        }
        let srvr =
            "echo srvr | nc -q1 $(ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1) 2181";
        let out = succession()
            .args(["exec", "quorum", "--run", &run_id, "--", "sh", "-c", srvr])
            .output()?;
        let ex = String::from_utf8_lossy(&out.stdout);
        if ex.matches("Mode: ").count() != 3 {
            return Err(fail(format!(
                "exec on a role should reach every quorum node\n{}",
                output_text(&out)
            )));
        }
        Ok(())
    })();
    let out = succession().args(["down", "--run", &run_id]).output()?;
    result?;
    if !out.status.success() {
        return Err(fail(format!("down failed\n{}", output_text(&out))));
    }
    assert_clean(&run_id)
}

/// Brings a topology up with `succession up`; returns its run id.
fn up(topology: &str) -> Result<String, Failed> {
    bring_up(&[topology]).map(|(run_id, _)| run_id)
}

/// Runs `body` against a cluster that is up, then takes it down and checks nothing is left.
fn with_cluster(topology: &str, body: impl FnOnce(&str) -> TestResult) -> TestResult {
    let run_id = up(topology)?;
    let result = body(&run_id);
    let out = succession().args(["down", "--run", &run_id]).output()?;
    result?;
    if !out.status.success() {
        return Err(fail(format!("down failed\n{}", output_text(&out))));
    }
    assert_clean(&run_id)
}

fn write_inventory(run_id: &str) -> Result<PathBuf, Failed> {
    let path = std::env::temp_dir().join(format!("succession-inventory-{run_id}.toml"));
    let out = succession()
        .args(["inventory", "--run", run_id, "--output"])
        .arg(&path)
        .output()?;
    if !out.status.success() {
        return Err(fail(format!("inventory failed\n{}", output_text(&out))));
    }
    Ok(path)
}

/// What a preflight must not change: every etcd member's revision and raft term, every
/// ZooKeeper server's zxid and mode, and the status table (pids, states, since).
fn cell_state(run_id: &str, inventory: &Path) -> Result<Vec<String>, Failed> {
    use succession::probe::etcd::EtcdProbe;
    use succession::probe::zookeeper::{four_letter, parse_srvr};
    let inv = succession::preflight::Inventory::load(inventory).map_err(|e| fail(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut state = runtime.block_on(async {
        let etcd = EtcdProbe::default();
        let mut lines = Vec::new();
        for n in &inv.nodes {
            if let Some(url) = &n.etcd {
                let s = etcd.status(url).await?;
                lines.push(format!(
                    "{} etcd revision {} term {}",
                    n.name, s.revision, s.raft_term
                ));
            }
            if let Some(addr) = n.zookeeper {
                let reply = four_letter(addr, "srvr", Duration::from_secs(2)).await?;
                let s = parse_srvr(&reply)?;
                lines.push(format!(
                    "{} zookeeper zxid {:?} mode {:?}",
                    n.name, s.zxid, s.mode
                ));
            }
        }
        Ok::<_, String>(lines)
    })?;
    let out = succession().args(["status", "--run", run_id]).output()?;
    if !out.status.success() {
        return Err(fail(format!("status failed\n{}", output_text(&out))));
    }
    state.push(String::from_utf8_lossy(&out.stdout).into_owned());
    Ok(state)
}

fn preflight_changes_nothing() -> TestResult {
    // The seed's whole cell: etcd, ZooKeeper, the masters and the neighbour tables are all
    // checked, and nothing of it may move.
    with_cluster("topologies/cell.toml", |run_id| {
        let inventory = write_inventory(run_id)?;
        // A quiet cell first: the same state twice in a row, so that only the preflight could
        // move anything after.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut before = cell_state(run_id, &inventory)?;
        loop {
            let again = cell_state(run_id, &inventory)?;
            if again == before {
                break;
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "the cell never settled: {before:#?} then {again:#?}"
                )));
            }
            before = again;
        }
        let out = succession()
            .arg("preflight")
            .arg("--inventory")
            .arg(&inventory)
            .output()?;
        let table = output_text(&out);
        if out.status.code() != Some(0) || !table.contains("11 checks: 11 pass, 0 fail") {
            return Err(fail(format!(
                "a healthy cell must pass every check\n{table}"
            )));
        }
        let out = succession()
            .arg("preflight")
            .arg("--inventory")
            .arg(&inventory)
            .args(["--format", "json"])
            .output()?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| fail(format!("bad JSON: {e}\n{}", output_text(&out))))?;
        if out.status.code() != Some(0) || json["verdict"] != "pass" {
            return Err(fail(format!(
                "JSON preflight did not pass\n{}",
                output_text(&out)
            )));
        }
        let after = cell_state(run_id, &inventory)?;
        let _ = std::fs::remove_file(&inventory);
        if before != after {
            return Err(fail(format!(
                "preflight changed the cell:\nbefore: {before:#?}\nafter: {after:#?}"
            )));
        }
        if !before.iter().any(|l| l.contains("etcd revision"))
            || !before.iter().any(|l| l.contains("zxid Some"))
        {
            return Err(fail(format!("nothing recorded to compare: {before:#?}")));
        }
        Ok(())
    })
}

fn preflight_flags_out_of_order_ids() -> TestResult {
    with_cluster("topologies/zookeeper-five.toml", |run_id| {
        let inventory = write_inventory(run_id)?;
        let out = succession()
            .arg("preflight")
            .arg("--inventory")
            .arg(&inventory)
            .args(["--format", "json"])
            .output()?;
        let _ = std::fs::remove_file(&inventory);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| fail(format!("bad JSON: {e}\n{}", output_text(&out))))?;
        let ids = &json["zookeeper_ids"];
        let failed: Vec<&str> = json["checks"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter(|c| c["outcome"] == "fail")
                    .filter_map(|c| c["check"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        if out.status.code() != Some(1)
            || failed != ["ids match what the upgrade writes"]
            || ids["conflicts"].as_array().is_none_or(|c| c.is_empty())
            || ids["plan"].as_array().is_none_or(|p| p.is_empty())
        {
            return Err(fail(format!(
                "out-of-order ids must fail exactly the id check, with conflicts and a plan\n{}",
                output_text(&out)
            )));
        }
        Ok(())
    })
}

fn missing_binary_creates_nothing() -> TestResult {
    let runs_before = run_dirs()?;
    let dir = report_dir("missing-binary");
    let out = succession()
        // A path of its own, so its runs (there must be none) are told from the scenario trial's.
        .args(["run", "./scenarios/master-destroy-restore.toml", "--report"])
        .arg(&dir)
        .env("SUCCESSION_STANDIN", "/nonexistent/succession-standin")
        .output()?;
    let text = output_text(&out);
    if out.status.code() != Some(3) {
        return Err(fail(format!(
            "expected exit 3 for a missing binary\n{text}"
        )));
    }
    if !text.contains("/nonexistent/succession-standin not found") || !text.contains("stand-in") {
        return Err(fail(format!(
            "the error must name the missing binary and the service\n{text}"
        )));
    }
    let report = read_report(&dir)?;
    if report["verdict"] != "unknown"
        || report["error"]
            .as_str()
            .is_none_or(|e| !e.contains("not found"))
    {
        return Err(fail(format!(
            "the report must say why nothing ran: {report:#}"
        )));
    }
    let ours = runs_created_for(&runs_before, "run ./scenarios/master-destroy-restore.toml")?;
    if !ours.is_empty() {
        return Err(fail(format!("a run was created: {ours:?}")));
    }
    Ok(())
}

/// `ci/nightly` over a passing and a failing scenario: every run keeps its report, JUnit and
/// timeline; the summary counts both and the pipeline exits 1.
fn nightly_pipeline() -> TestResult {
    let out_dir = report_dir("nightly");
    let out = Command::new("ci/nightly")
        .current_dir(root_dir())
        .env("SUCCESSION_BIN", env!("CARGO_BIN_EXE_succession"))
        .args(["--runs", "1", "--providers", "local", "--skip-mutants", "--scenarios"])
        .arg("tests/fixtures/scenarios/leader-failover.toml tests/fixtures/scenarios/impossible-members.toml")
        .arg("--out")
        .arg(&out_dir)
        .output()?;
    let text = output_text(&out);
    if out.status.code() != Some(1) {
        return Err(fail(format!(
            "a failing scenario must fail the night (exit 1)\n{text}"
        )));
    }
    for name in ["leader-failover", "impossible-members"] {
        let dir = out_dir.join("local").join(name).join("run-1");
        for file in [
            "report.json",
            "junit.xml",
            "timeline.html",
            "timeline.svg",
            "output.txt",
        ] {
            if !dir.join(file).exists() {
                return Err(fail(format!("{} lacks {file}\n{text}", dir.display())));
            }
        }
        let report = read_report(&dir)?;
        assert_clean(report["run_id"].as_str().unwrap_or_default())?;
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json"))?)?;
    let rates: Vec<(String, f64)> = summary["scenarios"]
        .as_array()
        .ok_or("no scenarios in summary.json")?
        .iter()
        .map(|s| {
            (
                s["scenario"].as_str().unwrap_or_default().to_string(),
                s["pass_rate"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    if rates
        != vec![
            ("impossible-members".to_string(), 0.0),
            ("leader-failover".to_string(), 1.0),
        ]
        || summary["verdict"] != "fail"
        || !out_dir.join("index.html").exists()
    {
        return Err(fail(format!("unexpected summary {summary:#}\n{text}")));
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    Ok(())
}

fn missing_image_creates_nothing() -> TestResult {
    let runs_before = run_dirs()?;
    let dir = report_dir("missing-image");
    let out = succession()
        .args([
            "run",
            "./tests/fixtures/scenarios/leader-failover.toml",
            "--provider",
            "containers",
            "--image",
            "succession-node:no-such-tag",
            "--report",
        ])
        .arg(&dir)
        .output()?;
    let text = output_text(&out);
    if out.status.code() != Some(3)
        || !text.contains("image succession-node:no-such-tag not found")
        || !text.contains("succession image build")
    {
        return Err(fail(format!(
            "a missing image must exit 3 naming it and how to build one\n{text}"
        )));
    }
    let ours = runs_created_for(
        &runs_before,
        "run ./tests/fixtures/scenarios/leader-failover.toml",
    )?;
    if !ours.is_empty() {
        return Err(fail(format!("a run was created: {ours:?}")));
    }
    Ok(())
}

fn replacement_announces() -> TestResult {
    let Ran { out, report, .. } = run_with_report_on(
        On::Containers,
        Path::new("tests/fixtures/scenarios/replacement-announces.toml"),
        "announces",
    )?;
    if out.status.code() != Some(0) || report["verdict"] != "pass" {
        return Err(fail(format!(
            "peers must hold the replacement's MAC without any purge\n{}",
            output_text(&out)
        )));
    }
    assert_clean(report["run_id"].as_str().unwrap_or_default())
}

fn stale_standin_is_refused() -> TestResult {
    let runs_before = run_dirs()?;
    // A stand-in built from other sources answers `build-id` with another id.
    let dir = std::env::temp_dir().join(format!("succession-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let fake = dir.join("succession-standin");
    std::fs::write(&fake, "#!/bin/sh\necho 0123456789abcdef\n")?;
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let out = succession()
        .args(["run", "./scenarios/marathon-leader-apart.toml"])
        .env("SUCCESSION_STANDIN", &fake)
        .output()?;
    let _ = std::fs::remove_dir_all(&dir);
    let text = output_text(&out);
    if out.status.code() != Some(3)
        || !text.contains("was built from other sources than this harness")
        || !text.contains("0123456789abcdef")
    {
        return Err(fail(format!(
            "a stale stand-in must be refused before anything starts (exit 3, naming it)\n{text}"
        )));
    }
    let ours = runs_created_for(&runs_before, "run ./scenarios/marathon-leader-apart.toml")?;
    if !ours.is_empty() {
        return Err(fail(format!("a refused run created state: {ours:?}")));
    }
    Ok(())
}
