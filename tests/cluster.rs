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

#[path = "cluster/cleanup.rs"]
mod cleanup;
#[path = "cluster/evidence.rs"]
mod evidence;
#[path = "cluster/kept.rs"]
mod kept;
#[path = "cluster/preflight_diverged.rs"]
mod preflight_diverged;
#[path = "cluster/preflight_hazards.rs"]
mod preflight_hazards;
#[path = "cluster/rehearsal.rs"]
mod rehearsal;
#[path = "cluster/slow_faults.rs"]
mod slow_faults;

use cleanup::*;
use evidence::*;
use kept::*;
use preflight_diverged::*;
use preflight_hazards::*;
use rehearsal::*;
use slow_faults::*;

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
    // A shipped scenario the planted suite keeps failing (a real upstream bug it shows) is run
    // there, with its verdict and message, not here as one that must pass.
    let planted = std::fs::read_to_string(root_dir().join("tests/planted/catalog.toml"))
        .expect("tests/planted/catalog.toml");
    scenarios.retain(|p| {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        !planted.contains(&format!("broken = \"../../scenarios/{name}\""))
    });
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
            format!("cleanup::{tag}after_sigkill_with_slow_faults_then_gc"),
            move || sigkill_with_slow_faults_then_gc_cleans_up(on),
        ));
        group.push(Trial::test(
            format!("faults::{tag}delays_add_up_and_heal"),
            move || delays_stack_and_heal(on),
        ));
        group.push(Trial::test(
            format!("faults::{tag}a_full_delay_queue_drops_and_counts"),
            move || a_full_delay_queue_drops_and_counts(on),
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
        "faults::a_delay_on_a_cut_off_node_is_made_not_measured",
        a_delay_on_a_cut_off_node_is_made_not_measured,
    ));
    trials.push(Trial::test(
        "preflight::read_only_on_a_live_cell",
        preflight_changes_nothing,
    ));
    trials.push(Trial::test(
        "preflight::etcd_hazards_are_caught",
        etcd_hazards_are_caught,
    ));
    trials.push(Trial::test(
        "preflight::etcd_diverged_keyspace_is_caught",
        etcd_diverged_keyspace_is_caught,
    ));
    trials.push(Trial::test(
        "preflight::zookeeper_hazards_are_caught",
        zookeeper_hazards_are_caught,
    ));
    trials.push(Trial::test(
        "preflight::rehearsal_of_seed_004",
        rehearsal_of_seed_004,
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
    if text.contains("[workload]") {
        check_workload(&dir, &report)?;
    }
    assert_clean(&run_id)?;
    discard_if_kept(&dir);
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
        .args([
            "--runs",
            "1",
            "--providers",
            "local",
            "--skip-mutants",
            "--skip-hunt",
            "--scenarios",
        ])
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
    // The same run shows that the harness's commands rode one node agent per node: its trace
    // holds a handful of engine execs (each new container's MAC, the image check) and the
    // rest as agent commands. A fall back to an exec per command fails here.
    let dir = report_dir("announces-containers");
    let trace = dir.with_extension("trace.jsonl");
    let _ = std::fs::remove_file(&trace);
    let out = succession()
        .arg("run")
        .arg("tests/fixtures/scenarios/replacement-announces.toml")
        .args(On::Containers.args())
        .arg("--report")
        .arg(&dir)
        .env("SUCCESSION_TRACE", &trace)
        .output()?;
    let report = read_report(&dir).map_err(|e| fail(format!("{e:?}\n{}", output_text(&out))))?;
    if out.status.code() != Some(0) || report["verdict"] != "pass" {
        return Err(fail(format!(
            "peers must hold the replacement's MAC without any purge\n{}",
            output_text(&out)
        )));
    }
    let spans = succession::base::trace::read(&trace).map_err(|e| fail(e.to_string()))?;
    let _ = std::fs::remove_file(&trace);
    let count = |name: &str| spans.iter().filter(|s| s.span == name).count();
    // The scenario's topology, tests/fixtures/topologies/trio.toml: four nodes.
    let nodes = 4;
    let (execs, opens, commands) = (
        count("engine.exec"),
        count("agent.open"),
        count("agent.command"),
    );
    // Four nodes and one replacement: five MACs set and one image check; an agent per
    // container (the replaced one's included). An exec per command would be dozens.
    if execs > nodes + 2 || opens > nodes + 1 || commands < 2 * execs {
        return Err(fail(format!(
            "commands did not ride the node agents: {execs} engine execs, {opens} agents opened, {commands} agent commands"
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
