//! Cleanup after a run ends badly — SIGKILL then `gc`, Ctrl-C, a panic — and two runs at once.

use super::*;

/// Starts `run` on the long fixture and waits until its cluster is healthy; returns the child
/// and the run id it printed.
pub(super) fn start_long_run(
    on: On,
    extra_env: &[(&str, &str)],
    scenario: &str,
) -> Result<(Child, String), Failed> {
    start_run_until(on, extra_env, scenario, "cluster healthy")
}

/// Starts `run` on a scenario and waits until it prints a line starting with `marker`;
/// returns the child and the run id it printed.
fn start_run_until(
    on: On,
    extra_env: &[(&str, &str)],
    scenario: &str,
    marker: &str,
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
                let healthy = line.trim_start().starts_with(marker);
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
        "the run never printed `{marker}`: {}",
        seen.join("\n")
    )))
}

pub(super) fn wait_exit(
    child: &mut Child,
    within: Duration,
) -> Result<std::process::ExitStatus, Failed> {
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

pub(super) fn sigkill_then_gc_cleans_up(on: On) -> TestResult {
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

/// SIGKILL while a packet delay and a slow faulty disk are in effect: the delay queue, the
/// disk's daemon and its mount are left for `gc`, which removes them with the rest.
pub(super) fn sigkill_with_slow_faults_then_gc_cleans_up(on: On) -> TestResult {
    let (mut child, run_id) = start_run_until(
        on,
        &[],
        "tests/fixtures/scenarios/hold-slow.toml",
        "ok   [2/",
    )?;
    child.kill()?; // SIGKILL: no teardown, no heal.
    child.wait()?;
    let left = leftovers(&run_id);
    let delay_queue = |l: &String| l.starts_with("process") && l.contains("delay-queue");
    let expected = match on {
        On::Local => left.iter().any(delay_queue) && left.iter().any(|l| l.starts_with("mount")),
        On::Containers => left.iter().any(|l| l.starts_with("container")),
    };
    if !expected {
        return Err(fail(format!(
            "a killed run should leave its delay queue and faulty disk for gc; found {left:?}"
        )));
    }
    let out = succession().arg("gc").output()?;
    if !out.status.success() {
        return Err(fail(format!("gc failed\n{}", output_text(&out))));
    }
    assert_clean(&run_id)
}

pub(super) fn ctrl_c_cleans_up(on: On) -> TestResult {
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

pub(super) fn panic_cleans_up(on: On) -> TestResult {
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

pub(super) fn two_runs_at_once() -> TestResult {
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
