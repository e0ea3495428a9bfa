//! Measures, on each provider side by side (local, containers; `BENCH_PROVIDERS=local` for one),
//! over real runs of the seed's quorum scenario:
//! - time from `succession run` to a healthy cell quorum,
//! - re-election as the harness measures it (kill → every survivor agrees on a new leader)
//!   against what the servers log (etcd's `elected leader` line; ZooKeeper's `LEADING`),
//! - the harness's own peak memory: the `succession` process's VmHWM, read while it runs (and
//!   wait4's max RSS, which on the local provider is its largest child, a server).
//!
//! Then, over runs of the seed's master scenario: Mesos and Marathon re-election as the harness
//! measures it against the stand-ins' own `elected leader` log lines, and the app's
//! availability through the border.
//!
//! Last, each provider's overhead against the local one: the difference of the medians.
//!
//! `sudo cargo bench --bench quorum` (BENCH_RUNS=N for more runs; default 3;
//! BENCH_TRACE=DIR writes each run's spans there, for `succession trace FILE`). The containers
//! provider needs the node image (`succession image build`).

use std::path::{Path, PathBuf};
use std::process::Command;

mod containers_alone;
use std::time::{Duration, SystemTime};

const SCENARIO: &str = "scenarios/quorum-destroy-restore.toml";
const MASTER_SCENARIO: &str = "scenarios/master-destroy-restore.toml";

struct MasterSample {
    mesos_harness_ms: u64,
    mesos_logged_ms: Option<u64>,
    marathon_harness_ms: u64,
    marathon_logged_ms: Option<u64>,
    app_requests: u64,
    app_failed: u64,
    wall_ms: u64,
    harness_peak_kib: u64,
}

struct Sample {
    provision_ms: u64,
    zk_harness_ms: u64,
    zk_logged_ms: Option<u64>,
    zk_self_reported_ms: Option<u64>,
    etcd_harness_ms: u64,
    etcd_logged_ms: Option<u64>,
    wall_ms: u64,
    max_rss_kib: i64,
    harness_peak_kib: u64,
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("the benchmark runs real clusters in network namespaces: run it as root (sudo cargo bench --bench quorum)");
        std::process::exit(3);
    }
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` asks for the list of benchmarks; there is one.
        println!("quorum: benchmark");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let providers: Vec<String> = std::env::var("BENCH_PROVIDERS")
        .unwrap_or_else(|_| "local,containers".to_string())
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let mut medians: Vec<(String, Medians)> = Vec::new();
    for provider in &providers {
        medians.push((provider.clone(), bench_provider(root, provider, runs)));
    }
    if medians.len() > 1 {
        println!("\nmedians side by side, and each provider's overhead over the first:");
        let (base_name, base) = &medians[0];
        for (name, m) in &medians[1..] {
            for (what, b, v) in [
                (
                    "time from run to healthy quorum (ms)",
                    base.healthy,
                    m.healthy,
                ),
                (
                    "quorum scenario, whole run (ms)",
                    base.quorum_wall,
                    m.quorum_wall,
                ),
                (
                    "master scenario, whole run (ms)",
                    base.master_wall,
                    m.master_wall,
                ),
                ("zookeeper re-election, harness (ms)", base.zk, m.zk),
                ("etcd re-election, harness (ms)", base.etcd, m.etcd),
                (
                    "mesos-master re-election, harness (ms)",
                    base.mesos,
                    m.mesos,
                ),
                ("harness alone, peak memory, quorum (KiB)", base.rss, m.rss),
                (
                    "harness alone, peak memory, master (KiB)",
                    base.master_rss,
                    m.master_rss,
                ),
            ] {
                let ratio = if b == 0 { 0.0 } else { v as f64 / b as f64 };
                println!(
                    "  {what:<44} {base_name} {b:>6}  {name} {v:>6}  overhead {:>+6}  ({ratio:.2}×)",
                    v as i64 - b as i64
                );
            }
        }
    }
}

/// Medians of one provider's runs, for the side-by-side table.
struct Medians {
    healthy: u64,
    quorum_wall: u64,
    master_wall: u64,
    zk: u64,
    etcd: u64,
    mesos: u64,
    rss: u64,
    master_rss: u64,
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

fn bench_provider(root: &Path, provider: &str, runs: usize) -> Medians {
    let samples = quorum_runs(root, provider, runs);
    let masters = master_runs(root, provider, runs);
    if provider == "containers" {
        containers_alone::report(runs, row);
    }
    Medians {
        healthy: median(samples.iter().map(|s| s.provision_ms).collect()),
        quorum_wall: median(samples.iter().map(|s| s.wall_ms).collect()),
        master_wall: median(masters.iter().map(|m| m.wall_ms).collect()),
        zk: median(samples.iter().map(|s| s.zk_harness_ms).collect()),
        etcd: median(samples.iter().map(|s| s.etcd_harness_ms).collect()),
        mesos: median(masters.iter().map(|m| m.mesos_harness_ms).collect()),
        rss: median(samples.iter().map(|s| s.harness_peak_kib).collect()),
        master_rss: median(masters.iter().map(|m| m.harness_peak_kib).collect()),
    }
}

/// The quorum scenario `runs` times, each run's figures and then their spread.
fn quorum_runs(root: &Path, provider: &str, runs: usize) -> Vec<Sample> {
    let mut samples = Vec::new();
    for i in 0..runs {
        match one_run(root, provider, i) {
            Ok(s) => {
                println!(
                    "{provider} run {}: healthy after {} ms; zookeeper re-election {} ms (logged {}); etcd re-election {} ms (logged {}); peak RSS {} KiB",
                    i + 1,
                    s.provision_ms,
                    s.zk_harness_ms,
                    opt(s.zk_logged_ms),
                    s.etcd_harness_ms,
                    opt(s.etcd_logged_ms),
                    s.max_rss_kib
                );
                samples.push(s);
            }
            Err(e) => {
                eprintln!("{provider} run {}: {e}", i + 1);
                std::process::exit(1);
            }
        }
    }
    println!(
        "\n{} runs of {SCENARIO} on the {provider} provider (min / median / max):",
        samples.len()
    );
    row(
        "time from run to healthy quorum (ms)",
        samples.iter().map(|s| s.provision_ms).collect(),
    );
    row(
        "whole run, provisioning to teardown (ms)",
        samples.iter().map(|s| s.wall_ms).collect(),
    );
    row(
        "zookeeper re-election, harness (ms)",
        samples.iter().map(|s| s.zk_harness_ms).collect(),
    );
    row(
        "zookeeper re-election, server log (ms)",
        samples.iter().filter_map(|s| s.zk_logged_ms).collect(),
    );
    row(
        "zookeeper election time it reports (ms)",
        samples
            .iter()
            .filter_map(|s| s.zk_self_reported_ms)
            .collect(),
    );
    row(
        "etcd re-election, harness (ms)",
        samples.iter().map(|s| s.etcd_harness_ms).collect(),
    );
    row(
        "etcd re-election, server log (ms)",
        samples.iter().filter_map(|s| s.etcd_logged_ms).collect(),
    );
    row(
        "peak RSS with reaped children (KiB)",
        samples.iter().map(|s| s.max_rss_kib as u64).collect(),
    );
    row(
        "harness alone, peak memory (KiB)",
        samples.iter().map(|s| s.harness_peak_kib).collect(),
    );
    samples
}

/// The master scenario `runs` times, each run's figures and then their spread.
fn master_runs(root: &Path, provider: &str, runs: usize) -> Vec<MasterSample> {
    let mut masters = Vec::new();
    for i in 0..runs {
        match master_run(root, provider, i) {
            Ok(m) => {
                println!(
                    "{provider} master run {}: mesos re-election {} ms (logged {}); marathon re-election {} ms (logged {}); app {}/{} requests failed",
                    i + 1,
                    m.mesos_harness_ms,
                    opt(m.mesos_logged_ms),
                    m.marathon_harness_ms,
                    opt(m.marathon_logged_ms),
                    m.app_failed,
                    m.app_requests
                );
                masters.push(m);
            }
            Err(e) => {
                eprintln!("{provider} master run {}: {e}", i + 1);
                std::process::exit(1);
            }
        }
    }
    println!(
        "\n{} runs of {MASTER_SCENARIO} on the {provider} provider (min / median / max):",
        masters.len()
    );
    row(
        "whole run (ms)",
        masters.iter().map(|m| m.wall_ms).collect(),
    );
    row(
        "mesos-master re-election, harness (ms)",
        masters.iter().map(|m| m.mesos_harness_ms).collect(),
    );
    row(
        "mesos-master re-election, stand-in log (ms)",
        masters.iter().filter_map(|m| m.mesos_logged_ms).collect(),
    );
    row(
        "marathon re-election, harness (ms)",
        masters.iter().map(|m| m.marathon_harness_ms).collect(),
    );
    row(
        "marathon re-election, stand-in log (ms)",
        masters
            .iter()
            .filter_map(|m| m.marathon_logged_ms)
            .collect(),
    );
    row(
        "app requests through the border",
        masters.iter().map(|m| m.app_requests).collect(),
    );
    row(
        "app requests failed",
        masters.iter().map(|m| m.app_failed).collect(),
    );
    row(
        "harness alone, peak memory (KiB)",
        masters.iter().map(|m| m.harness_peak_kib).collect(),
    );
    masters
}

fn opt(v: Option<u64>) -> String {
    v.map(|v| format!("{v} ms")).unwrap_or_else(|| "n/a".into())
}

fn row(name: &str, mut values: Vec<u64>) {
    if values.is_empty() {
        println!("  {name:<44} n/a");
        return;
    }
    values.sort_unstable();
    println!(
        "  {name:<44} {:>6} / {:>6} / {:>6}",
        values[0],
        values[values.len() / 2],
        values[values.len() - 1]
    );
}

/// Lines of every node's log of that name (the survivors' logs hold the election): read from
/// the run's node directories on the local provider, from inside each container on the
/// containers provider.
fn logs(run: &KeptRun, file: &str) -> Vec<String> {
    if run.provider == "local" {
        return local_logs(&run.nodes, file);
    }
    let filter = format!("label=succession.run={}", run.run_id);
    let names = Command::new("docker")
        .args(["ps", "--filter", &filter, "--format", "{{.Names}}"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut lines = Vec::new();
    for name in names.lines() {
        let path = format!("/var/lib/succession/{file}");
        if let Ok(out) = Command::new("docker")
            .args(["exec", name, "cat", &path])
            .output()
        {
            lines.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::to_string),
            );
        }
    }
    lines
}

fn local_logs(nodes: &Path, file: &str) -> Vec<String> {
    let mut lines = Vec::new();
    if let Ok(entries) = std::fs::read_dir(nodes) {
        for e in entries.flatten() {
            let path: PathBuf = e.path().join(file);
            if let Ok(text) = std::fs::read_to_string(path) {
                lines.extend(text.lines().map(str::to_string));
            }
        }
    }
    lines
}

/// ms from the kill to the first line containing `needle` logged after it.
fn first_after(
    lines: &[String],
    needle: &str,
    kill: SystemTime,
    time: fn(&str) -> Option<SystemTime>,
) -> Option<u64> {
    lines
        .iter()
        .filter(|l| l.contains(needle))
        .filter_map(|l| time(l))
        .filter(|t| *t > kill)
        .min()
        .and_then(|t| t.duration_since(kill).ok())
        .map(|d: Duration| d.as_millis() as u64)
}

fn zk_time(line: &str) -> Option<SystemTime> {
    // 2026-11-21T23:39:22.153+0000 [...]
    let stamp = line.split_whitespace().next()?.trim_end_matches("+0000");
    humantime::parse_rfc3339_weak(stamp).ok()
}

fn etcd_time(line: &str) -> Option<SystemTime> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    humantime::parse_rfc3339_weak(v["ts"].as_str()?.trim_end_matches('Z')).ok()
}

/// Waits for a child and returns its exit code and peak RSS in KiB (wait4's rusage).
fn wait_with_rusage(pid: u32) -> (i32, i64) {
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by wait4 for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid with valid out-pointers.
    unsafe {
        libc::wait4(pid as i32, &mut status, 0, &mut usage);
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage.ru_maxrss)
}

/// When the scenario's first termination happened, from the report's timeline.
fn kill_time(report: &serde_json::Value) -> Result<SystemTime, String> {
    report["timeline"]
        .as_array()
        .and_then(|t| {
            t.iter().find(|e| {
                e["what"]
                    .as_str()
                    .is_some_and(|w| w.starts_with("terminated "))
            })
        })
        .and_then(|e| e["wall"].as_str())
        .and_then(|w| humantime::parse_rfc3339_weak(w.trim_end_matches('Z')).ok())
        .ok_or_else(|| "no termination in the timeline".to_string())
}

fn standin_time(line: &str) -> Option<SystemTime> {
    // 2026-11-21T23:39:22.153Z elected leader
    humantime::parse_rfc3339_weak(line.split_whitespace().next()?.trim_end_matches('Z')).ok()
}

/// What one kept run left to read: its report, its nodes' logs, its timing and memory.
struct KeptRun {
    provider: String,
    run_id: String,
    report: serde_json::Value,
    nodes: PathBuf,
    kill_at: SystemTime,
    wall_ms: u64,
    max_rss_kib: i64,
    harness_peak_kib: u64,
}

/// The `succession` process's own peak memory (VmHWM, its children left out: on the local
/// provider the servers are its children, and wait4's figure is the largest of them), read
/// from /proc every 20 ms while it runs; the last reading before it exits.
fn watch_peak_memory(pid: u32) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let path = format!("/proc/{pid}/status");
        let mut peak = 0;
        loop {
            let Ok(status) = std::fs::read_to_string(&path) else {
                return peak;
            };
            // A process that has exited (a zombie not yet reaped) has no memory left to show.
            let Some(kib) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            else {
                return peak;
            };
            peak = peak.max(kib);
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// Runs a scenario with `--keep`, hands what it left to `read`, then tears the run down.
fn with_kept_run<T>(
    root: &Path,
    provider: &str,
    scenario: &str,
    i: usize,
    read: impl FnOnce(&KeptRun) -> T,
) -> Result<T, String> {
    let report_dir =
        std::env::temp_dir().join(format!("succession-bench-{}-{i}", std::process::id()));
    let started = SystemTime::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_succession"));
    if let Some(dir) = std::env::var_os("BENCH_TRACE") {
        // Where each run's time went: `succession trace FILE` sums it up.
        let scenario_name = Path::new(scenario)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = Path::new(&dir).join(format!("{provider}-{scenario_name}-{}.jsonl", i + 1));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::remove_file(&file);
        command.env("SUCCESSION_TRACE", file);
    }
    let child = command
        .current_dir(root)
        .args([
            "run",
            scenario,
            "--provider",
            provider,
            "--keep",
            "--report",
        ])
        .arg(&report_dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("failed to start succession: {e}"))?;
    let harness_peak = watch_peak_memory(child.id());
    let (status, max_rss_kib) = wait_with_rusage(child.id());
    let harness_peak_kib = harness_peak.join().unwrap_or(0);
    let wall_ms = started.elapsed().map(|d| d.as_millis() as u64).unwrap_or(0);
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report_dir.join("report.json"))
            .map_err(|e| format!("no report: {e}"))?,
    )
    .map_err(|e| e.to_string())?;
    let run_id = report["run_id"].as_str().unwrap_or_default().to_string();
    let result = if status != 0 {
        Err(format!(
            "{scenario} did not pass (exit {status}); see {}",
            report_dir.display()
        ))
    } else {
        kill_time(&report).map(|kill_at| {
            read(&KeptRun {
                provider: provider.to_string(),
                run_id: run_id.clone(),
                nodes: Path::new("/run/succession/runs")
                    .join(&run_id)
                    .join("nodes"),
                report,
                kill_at,
                wall_ms,
                max_rss_kib,
                harness_peak_kib,
            })
        })
    };
    let _ = Command::new(env!("CARGO_BIN_EXE_succession"))
        .args(["down", "--run", &run_id])
        .stdout(std::process::Stdio::null())
        .status();
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&report_dir);
    }
    result
}

fn one_run(root: &Path, provider: &str, i: usize) -> Result<Sample, String> {
    with_kept_run(root, provider, SCENARIO, i, |run| {
        let zk_logs = logs(run, "zookeeper.log");
        let ms = |name: &str| run.report["measurements"][name].as_u64().unwrap_or(0);
        Sample {
            provision_ms: run.report["provision_ms"].as_u64().unwrap_or(0),
            zk_harness_ms: ms("zookeeper re-election"),
            zk_logged_ms: first_after(
                &zk_logs,
                "LEADING - LEADER ELECTION TOOK",
                run.kill_at,
                zk_time,
            ),
            zk_self_reported_ms: zk_logs
                .iter()
                .filter(|l| {
                    l.contains("LEADING - LEADER ELECTION TOOK")
                        && zk_time(l).is_some_and(|t| t > run.kill_at)
                })
                .filter_map(|l| {
                    l.split("TOOK - ")
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
                .next(),
            etcd_harness_ms: ms("etcd re-election"),
            etcd_logged_ms: first_after(
                &logs(run, "etcd.log"),
                "elected leader",
                run.kill_at,
                etcd_time,
            ),
            wall_ms: run.wall_ms,
            max_rss_kib: run.max_rss_kib,
            harness_peak_kib: run.harness_peak_kib,
        }
    })
}

fn master_run(root: &Path, provider: &str, i: usize) -> Result<MasterSample, String> {
    with_kept_run(root, provider, MASTER_SCENARIO, i, |run| {
        let ms = |name: &str| run.report["measurements"][name].as_u64().unwrap_or(0);
        let app = &run.report["availability"]["app"];
        let requests = app["requests"].as_u64().unwrap_or(0);
        MasterSample {
            mesos_harness_ms: ms("mesos-master re-election"),
            mesos_logged_ms: first_after(
                &logs(run, "mesos-master.log"),
                "elected leader",
                run.kill_at,
                standin_time,
            ),
            marathon_harness_ms: ms("marathon re-election"),
            marathon_logged_ms: first_after(
                &logs(run, "marathon.log"),
                "elected leader",
                run.kill_at,
                standin_time,
            ),
            app_requests: requests,
            app_failed: requests - app["ok"].as_u64().unwrap_or(0),
            wall_ms: run.wall_ms,
            harness_peak_kib: run.harness_peak_kib,
        }
    })
}
