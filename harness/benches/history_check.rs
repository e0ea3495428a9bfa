//! Measures what judging a long recorded history costs: a real etcd quorum of three runs the
//! consistency workload (four clients at their natural rate — an operation as soon as the last
//! one answered — each with a watch) for `HISTORY_MINUTES` (default 10), then `succession check`
//! judges the recorded history again offline. Prints the history's size, the check's wall time
//! and its peak resident memory against the goals (30 s, 200 MB), and exits 1 when either is
//! missed.
//!
//! `sudo cargo bench --bench history_check` (`HISTORY_DIR=DIR` judges an existing report
//! directory instead of recording a new one).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const TOPOLOGY: &str = "topologies/etcd-quorum.toml";
const GOAL_SECONDS: f64 = 30.0;
const GOAL_MB: f64 = 200.0;

/// The scenario that records: one wait as long as the history is to be, the workload on.
fn scenario(root: &Path, minutes: u64) -> String {
    format!(
        r#"name = "history-check-bench"
topology = "{}"

[[step]]
name = "the workload records for {minutes} minutes"
action = "wait"
for = "{minutes}m"

[workload]
clients = 4
interval = "1ms"
"#,
        root.join(TOPOLOGY).display()
    )
}

fn record(root: &Path, minutes: u64) -> Result<PathBuf, String> {
    let tmp = std::env::temp_dir();
    let file = tmp.join(format!(
        "succession-history-bench-{}.toml",
        std::process::id()
    ));
    std::fs::write(&file, scenario(root, minutes)).map_err(|e| e.to_string())?;
    let dir = tmp.join(format!("succession-history-bench-{}", std::process::id()));
    eprintln!(
        "history_check: recording {minutes} minutes of the workload into {}",
        dir.display()
    );
    let status = Command::new(env!("CARGO_BIN_EXE_succession"))
        .current_dir(root)
        .arg("run")
        .arg(&file)
        .arg("--report")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("failed to start succession: {e}"))?;
    let _ = std::fs::remove_file(&file);
    if !dir.join("workload.json").exists() {
        return Err(format!(
            "the run ({status}) recorded no workload.json in {}",
            dir.display()
        ));
    }
    Ok(dir)
}

/// Runs `succession check DIR` and returns its exit code, wall time and peak RSS (KiB), the
/// latter from the kernel's own accounting of the child.
fn timed_check(dir: &Path) -> Result<(i32, f64, i64), String> {
    let began = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_succession"))
        .arg("check")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("failed to start succession check: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in; pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        return Err(format!("wait4 failed: {}", std::io::Error::last_os_error()));
    }
    let seconds = began.elapsed().as_secs_f64();
    Ok((libc::WEXITSTATUS(status), seconds, usage.ru_maxrss))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let minutes: u64 = std::env::var("HISTORY_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let (dir, recorded_here) = match std::env::var_os("HISTORY_DIR") {
        Some(d) => (PathBuf::from(d), false),
        None => match record(root, minutes) {
            Ok(d) => (d, true),
            Err(e) => {
                eprintln!("history_check: {e}");
                std::process::exit(1);
            }
        },
    };
    // Judged first: a child's peak memory as the kernel counts it includes what its parent
    // held when it was forked, so the bench reads the history itself only afterwards.
    let (code, seconds, max_kib) = match timed_check(&dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("history_check: {e}");
            std::process::exit(1);
        }
    };
    let history = match succession::workload::WorkloadHistory::read(&dir) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("history_check: {e}");
            std::process::exit(1);
        }
    };
    let operations = history.operations.len();
    let events: usize = history
        .watches
        .iter()
        .flat_map(|w| &w.segments)
        .map(|s| s.events.len())
        .sum();
    let bytes = std::fs::metadata(dir.join("workload.json")).map_or(0, |m| m.len());
    let mb = max_kib as f64 / 1024.0;
    println!(
        "history: {operations} operations and {events} watch events ({:.1} MB of JSON) in {}",
        bytes as f64 / 1e6,
        dir.display()
    );
    println!(
        "succession check: exit {code}, {seconds:.1} s (goal < {GOAL_SECONDS} s), peak {mb:.0} MB resident (goal < {GOAL_MB} MB)"
    );
    if recorded_here && code == 0 {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if seconds >= GOAL_SECONDS || mb >= GOAL_MB {
        println!("history_check: a goal was missed");
        std::process::exit(1);
    }
}
