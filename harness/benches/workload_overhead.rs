//! Measures what the consistency workload costs a scenario's re-election figures: the seed's
//! quorum scenario run alternately as it is and with `[workload]` added (the defaults: four
//! etcd clients and four ZooKeeper sessions, an operation each every 25 ms, a watch per etcd
//! client), on the local provider; the medians of each figure with and without, and the
//! difference in per cent.
//!
//! `sudo cargo bench --bench workload_overhead` (BENCH_RUNS=N runs of each; default 3).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const SCENARIO: &str = "scenarios/quorum-destroy-restore.toml";
const TOPOLOGY: &str = "topologies/cell.toml";
const FIGURES: &[&str] = &["zookeeper re-election", "etcd re-election"];

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// The scenario with `[workload]` added, written beside the temporary report directories (its
/// topology given on the command line, so the relative path in the file does not matter).
fn with_workload(root: &Path) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(root.join(SCENARIO)).map_err(|e| e.to_string())?;
    let path = std::env::temp_dir().join(format!(
        "succession-bench-workload-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, format!("{text}\n[workload]\n")).map_err(|e| e.to_string())?;
    Ok(path)
}

/// One run's figures, ms.
fn figures(root: &Path, scenario: &Path, tag: &str) -> Result<BTreeMap<String, u64>, String> {
    let dir = std::env::temp_dir().join(format!(
        "succession-bench-overhead-{}-{tag}",
        std::process::id()
    ));
    let status = Command::new(env!("CARGO_BIN_EXE_succession"))
        .current_dir(root)
        .arg("run")
        .arg(scenario)
        .arg("--topology")
        .arg(root.join(TOPOLOGY))
        .arg("--report")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("failed to start succession: {e}"))?;
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("report.json")).map_err(|e| format!("no report: {e}"))?,
    )
    .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!(
            "{} did not pass ({status}); see {}",
            scenario.display(),
            dir.display()
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(FIGURES
        .iter()
        .filter_map(|f| Some((f.to_string(), report["measurements"][*f].as_u64()?)))
        .collect())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let loaded = match with_workload(root) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("workload_overhead: {e}");
            std::process::exit(1);
        }
    };
    let mut without: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut with: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    // Alternated, so a machine that slows down over the bench weighs on both alike.
    for i in 0..runs {
        for (scenario, into, tag) in [
            (root.join(SCENARIO), &mut without, format!("bare-{i}")),
            (loaded.clone(), &mut with, format!("workload-{i}")),
        ] {
            match figures(root, &scenario, &tag) {
                Ok(f) => {
                    eprintln!("run {} {tag}: {f:?}", i + 1);
                    for (name, ms) in f {
                        into.entry(name).or_default().push(ms);
                    }
                }
                Err(e) => eprintln!("run {} {tag}: {e}", i + 1),
            }
        }
    }
    let _ = std::fs::remove_file(&loaded);
    if without.is_empty() || with.is_empty() {
        eprintln!("workload_overhead: no run passed on one side: no figure to compare");
        std::process::exit(1);
    }
    println!("re-election with and without the consistency workload, local provider, medians of {runs} runs");
    println!(
        "{:<24} {:>10} {:>10} {:>8}",
        "figure", "without", "with", "change"
    );
    for f in FIGURES {
        let a = median(without.get(*f).cloned().unwrap_or_default());
        let b = median(with.get(*f).cloned().unwrap_or_default());
        let change = if a == 0 {
            "-".to_string()
        } else {
            format!("{:+.0} %", (b as f64 - a as f64) * 100.0 / a as f64)
        };
        println!("{f:<24} {a:>8} ms {b:>8} ms {change:>8}");
    }
}
