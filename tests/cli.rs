//! The command line on bad input: the exact message users read, the documented exit code, and
//! nothing started. None of this needs root: validation happens before anything is created.
//!
//! Every command runs in a sandbox of its own test: a private state root
//! (`SUCCESSION_STATE_DIR`) and a private working directory that sees the repository's inputs
//! through links. What a command creates is then what its own invocation created, whatever other
//! tests do at the same time, and each test checks that no command wrote into its working
//! directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's entries a command reads, linked into each sandbox's working directory so
/// relative paths (and the messages that name them) read as from the repository.
const INPUTS: [&str; 3] = ["scenarios", "tests", "topologies"];

/// One test's private world, removed when the test ends.
struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    fn new(test: &str) -> Self {
        let root =
            std::env::temp_dir().join(format!("succession-cli-test-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let sandbox = Self { root };
        std::fs::create_dir_all(sandbox.work()).expect("the sandbox's working directory");
        for input in INPUTS {
            std::os::unix::fs::symlink(repo().join(input), sandbox.work().join(input))
                .expect("link an input into the sandbox");
        }
        sandbox
    }

    /// The state root its commands use; it must not exist unless a command made it.
    fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    /// The working directory its commands run in.
    fn work(&self) -> PathBuf {
        self.root.join("work")
    }

    /// Where a test puts what it asks a command to write.
    fn scratch(&self, name: &str) -> PathBuf {
        self.root.join("scratch").join(name)
    }

    /// The harness, run in the sandbox.
    fn succession(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_succession"));
        cmd.current_dir(self.work())
            .env("SUCCESSION_STATE_DIR", self.state());
        cmd
    }

    /// What its commands wrote into the working directory: anything beside the linked inputs.
    fn written_into_work(&self) -> Vec<String> {
        let mut written: Vec<String> = std::fs::read_dir(self.work())
            .expect("read the sandbox's working directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| !INPUTS.contains(&n.as_str()))
            .collect();
        written.sort();
        written
    }

    /// Fails unless the commands left the working directory as it was.
    fn assert_work_untouched(&self, what: &str) {
        assert_eq!(
            self.written_into_work(),
            Vec::<String>::new(),
            "{what} wrote into its working directory"
        );
    }

    /// Fails unless the commands created no run state and wrote nothing into the working
    /// directory.
    fn assert_created_nothing(&self, what: &str) {
        assert!(
            !self.state().exists(),
            "{what} created run state under {}",
            self.state().display()
        );
        self.assert_work_untouched(what);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bad_fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/fixtures/bad"))
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.strip_prefix(repo()).map(Path::to_path_buf).unwrap_or(p))
        .collect();
    files.sort();
    files
}

#[test]
fn lint_rejects_every_bad_file_with_a_located_message_and_exit_2() {
    let sandbox = Sandbox::new("lint-bad");
    let files = bad_fixtures();
    assert!(
        files.len() >= 10,
        "expected the bad fixtures, found {files:?}"
    );
    for file in files {
        let out = sandbox
            .succession()
            .arg("lint")
            .arg(&file)
            .output()
            .expect("run lint");
        assert_eq!(out.status.code(), Some(2), "{}: {:?}", file.display(), out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            stderr.contains(&format!("{}:", file.display())),
            "{name}: the message must name the file: {stderr}"
        );
        insta::assert_snapshot!(format!("lint-{name}"), stderr);
    }
    sandbox.assert_created_nothing("lint");
}

#[test]
fn run_on_a_bad_scenario_exits_2_and_creates_nothing() {
    let sandbox = Sandbox::new("run-bad");
    let out = sandbox
        .succession()
        .args(["run", "tests/fixtures/bad/unknown-node.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tests/fixtures/bad/unknown-node.toml:6:8: unknown node `quorum-9`"),
        "{stderr}"
    );
    sandbox.assert_created_nothing("a rejected scenario");
}

#[test]
fn run_on_a_missing_file_exits_2_naming_it() {
    let sandbox = Sandbox::new("run-missing");
    let out = sandbox
        .succession()
        .args(["run", "scenarios/no-such.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scenarios/no-such.toml: failed to read the file"),
        "{stderr}"
    );
    sandbox.assert_created_nothing("a missing scenario");
}

#[test]
fn explore_refuses_bad_input_with_exit_2_and_creates_nothing() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["explore", "topologies/no-such.toml"],
            "topologies/no-such.toml: failed to read the file",
        ),
        (
            &["explore", "tests/fixtures/bad/unknown-node.toml"],
            "tests/fixtures/bad/unknown-node.toml:6:8: unknown node `quorum-9`",
        ),
        (
            &["explore", "tests/fixtures/bad-explore/no-leaders.toml"],
            "the topology runs neither etcd nor ZooKeeper",
        ),
        (
            &["explore", "topologies/quorum.toml", "--runs", "0"],
            "--runs must be at least 1",
        ),
    ];
    for (i, (args, says)) in cases.into_iter().enumerate() {
        let sandbox = Sandbox::new(&format!("explore-bad-{i}"));
        let out = sandbox.succession().args(args).output().expect("explore");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        sandbox.assert_created_nothing(&format!("{args:?}"));
    }
}

/// With no `--out`, explore writes under the state root, never into the directory it was
/// started in. A budget of nothing stops it before any cluster is made (which needs no root):
/// it still writes its outcome, where the default says.
#[test]
fn explore_writes_under_the_state_root_by_default() {
    let sandbox = Sandbox::new("explore-default-out");
    let out = sandbox
        .succession()
        .args([
            "explore",
            "topologies/quorum.toml",
            "--seed",
            "7",
            "--budget",
            "0s",
        ])
        .output()
        .expect("explore");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let dir = sandbox.state().join("explore/7");
    assert!(
        stdout.contains(&format!("reports in {}", dir.display())),
        "{stdout}"
    );
    let outcome: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("explore.json")).expect("explore.json under the state root"),
    )
    .expect("json");
    assert_eq!(outcome["runs"], 0);
    assert_eq!(outcome["budget_spent"], true);
    sandbox.assert_work_untouched("explore");
}

#[test]
fn lint_accepts_every_shipped_scenario_and_topology() {
    let sandbox = Sandbox::new("lint-shipped");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [
        "scenarios",
        "topologies",
        "tests/fixtures/scenarios",
        "tests/fixtures/topologies",
    ] {
        for e in std::fs::read_dir(repo().join(dir)).expect("dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|e| e == "toml") {
                files.push(p);
            }
        }
    }
    let out = sandbox
        .succession()
        .arg("lint")
        .args(&files)
        .output()
        .expect("lint");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        files.len()
    );
    // Every shipped scenario asks nothing of a provider that the providers lack.
    let scenarios: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("scenarios")))
        .collect();
    for provider in ["local", "containers", "ec2"] {
        let out = sandbox
            .succession()
            .args(["lint", "--provider", provider])
            .args(&scenarios)
            .output()
            .expect("lint");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{provider}: {stdout}");
        let checked = if provider == "ec2" && !cfg!(feature = "ec2") {
            "the ec2 provider is not in this build: what the steps need of it is unchecked)"
                .to_string()
        } else {
            format!("{provider} provider)")
        };
        for line in stdout.lines() {
            assert!(line.ends_with(&checked), "{provider}: {line}");
        }
        assert_eq!(stdout.lines().count(), scenarios.len());
    }
    sandbox.assert_created_nothing("lint");
}

#[test]
fn help_documents_the_exit_codes() {
    let sandbox = Sandbox::new("help");
    let out = sandbox.succession().arg("--help").output().expect("help");
    let text = String::from_utf8_lossy(&out.stdout);
    for code in [
        "0    pass",
        "1    fail",
        "2    invalid input",
        "3    environment",
        "130  interrupted",
    ] {
        assert!(text.contains(code), "missing `{code}` in help:\n{text}");
    }
    sandbox.assert_created_nothing("--help");
}

#[test]
fn status_without_a_cluster_up_says_how_to_start_one() {
    let sandbox = Sandbox::new("status");
    let out = sandbox.succession().arg("status").output().expect("status");
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no cluster is up; start one with `succession up"),
        "{stderr}"
    );
    sandbox.assert_created_nothing("status");
}

#[test]
fn preflight_on_a_bad_inventory_exits_2_with_a_located_message() {
    let sandbox = Sandbox::new("preflight-bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/fixtures/inventory"))
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.strip_prefix(repo()).map(Path::to_path_buf).unwrap_or(p))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        let out = sandbox
            .succession()
            .arg("preflight")
            .arg("--inventory")
            .arg(&file)
            .output()
            .expect("run preflight");
        assert_eq!(out.status.code(), Some(2), "{}: {:?}", file.display(), out);
        assert!(out.stdout.is_empty(), "nothing is checked on bad input");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(format!("preflight-{name}"), stderr);
    }
    sandbox.assert_created_nothing("preflight");
}

#[test]
fn preflight_names_a_node_it_cannot_reach_and_exits_3() {
    let sandbox = Sandbox::new("preflight-unreachable");
    let out = sandbox
        .succession()
        .args([
            "preflight",
            "--inventory",
            "tests/fixtures/unreachable.inventory.toml",
            "--format",
            "json",
        ])
        .output()
        .expect("run preflight");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("error: cannot reach quorum-1 (zookeeper): failed to connect to 127.0.0.1:1"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["exit"], 3);
    assert_eq!(report["verdict"], "unreachable");
    assert_eq!(report["checks"][0]["outcome"], "unreachable");
    sandbox.assert_created_nothing("preflight");
}

#[test]
fn check_recomputes_a_saved_ledger_history_offline() {
    let sandbox = Sandbox::new("check");
    // A history recorded by a real snapshot-restore run, and the same with nothing tolerated.
    let out = sandbox
        .succession()
        .args(["check", "tests/fixtures/ledger/snapshot-restore"])
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    insta::assert_snapshot!(
        "check-snapshot-restore",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = sandbox
        .succession()
        .args(["check", "tests/fixtures/ledger/snapshot-restore-strict"])
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    insta::assert_snapshot!(
        "check-snapshot-restore-strict",
        String::from_utf8_lossy(&out.stdout)
    );
    sandbox.assert_created_nothing("check");
}

#[test]
fn check_without_a_history_exits_2_naming_the_file() {
    let sandbox = Sandbox::new("check-missing");
    let out = sandbox
        .succession()
        .args(["check", "tests/fixtures/bad"])
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tests/fixtures/bad holds neither history.json")
            && stderr.contains("nor workload.json"),
        "{stderr}"
    );
    sandbox.assert_created_nothing("check");
}

/// `succession report DIR` draws a recorded run's timeline again, and the page renders in a
/// real headless browser: its lanes and labels are there and its script ran without error.
#[test]
fn the_timeline_page_renders_in_a_real_browser() {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "needs Debian's chromium to open the timeline page (ci/setup-host installs it)"
    );
    let sandbox = Sandbox::new("timeline");
    let dir = sandbox.scratch("timeline");
    std::fs::create_dir_all(&dir).expect("report directory");
    std::fs::copy(
        repo().join("tests/fixtures/timeline/quorum-destroy-restore/report.json"),
        dir.join("report.json"),
    )
    .expect("copy the recorded report");
    let out = sandbox
        .succession()
        .arg("report")
        .arg(&dir)
        .output()
        .expect("run report");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    sandbox.assert_created_nothing("report");
    let page = dir.join("timeline.html");
    assert!(page.exists() && dir.join("timeline.svg").exists());
    let dom = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=2000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("data-rendered=\"yes\""),
        "the page's script did not run: {dom}"
    );
    assert!(!dom.contains("data-script-error"), "a script error: {dom}");
    // Steps, actions, two leader lanes, three targets, the figures.
    assert!(dom.contains("data-lanes=\"8\""), "{dom}");
    for label in [
        "zookeeper leader",
        "etcd leader",
        "app (49/49 ok)",
        "terminated quorum-3",
        "etcd re-election 2.8 s",
        "replay: <code>succession run scenarios/quorum-destroy-restore.toml --seed 7</code>",
    ] {
        assert!(dom.contains(label), "`{label}` is not on the page");
    }
}

/// The pre-upgrade gate stops a pipeline when preflight cannot vouch for the cell, keeping its
/// JSON as the artefact.
#[test]
fn the_preflight_gate_stops_the_pipeline_and_keeps_its_json() {
    let sandbox = Sandbox::new("preflight-gate");
    let out_dir = sandbox.scratch("preflight-gate");
    // The script runs from the repository (it changes to it itself); only the state root and
    // the artefact's directory are the sandbox's.
    let out = Command::new("ci/preflight")
        .current_dir(repo())
        .env("SUCCESSION_BIN", env!("CARGO_BIN_EXE_succession"))
        .env("SUCCESSION_STATE_DIR", sandbox.state())
        .arg("tests/fixtures/unreachable.inventory.toml")
        .arg(&out_dir)
        .output()
        .expect("run ci/preflight");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out_dir.join("preflight.json")).expect("preflight.json kept"),
    )
    .expect("json");
    assert_eq!(json["verdict"], "unreachable");
    assert!(String::from_utf8_lossy(&out.stdout).contains("preflight: exit 3"));
    sandbox.assert_created_nothing("ci/preflight");
}

/// `succession summary` over a directory of runs: the figures per scenario, the index page,
/// the exit by the worst verdict; and a directory with no run is refused.
#[test]
fn summary_sums_up_runs_and_exits_by_the_worst_verdict() {
    let sandbox = Sandbox::new("summary");
    let root = sandbox.scratch("summary");
    for (i, verdict) in ["pass", "fail"].iter().enumerate() {
        let dir = root.join(format!("local/quorum/run-{i}"));
        std::fs::create_dir_all(&dir).expect("run directory");
        let text = std::fs::read_to_string(
            repo().join("tests/fixtures/timeline/quorum-destroy-restore/report.json"),
        )
        .expect("recorded report");
        let mut report: serde_json::Value = serde_json::from_str(&text).expect("json");
        report["verdict"] = serde_json::Value::from(*verdict);
        std::fs::write(dir.join("report.json"), report.to_string()).expect("write");
    }
    let out = sandbox
        .succession()
        .arg("summary")
        .arg(&root)
        .output()
        .expect("summary");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("quorum-destroy-restore           local       1/2 passed (50%)"),
        "{stdout}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("summary.json")).expect("summary.json"))
            .expect("json");
    assert_eq!(summary["verdict"], "fail");
    assert_eq!(summary["scenarios"][0]["runs"], 2);
    let index = std::fs::read_to_string(root.join("index.html")).expect("index.html");
    assert!(index.contains("href=\"local/quorum/run-1/timeline.html\""));

    let empty = sandbox.scratch("summary-empty");
    std::fs::create_dir_all(&empty).expect("dir");
    let out = sandbox
        .succession()
        .arg("summary")
        .arg(&empty)
        .output()
        .expect("summary");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no report.json under"));
    sandbox.assert_created_nothing("summary");
}

#[test]
fn a_dry_run_where_the_provider_cannot_check_exits_2_and_creates_nothing() {
    let sandbox = Sandbox::new("dry-run-local");
    for provider in ["local", "containers"] {
        let out = sandbox
            .succession()
            .args([
                "run",
                "scenarios/quorum-destroy-restore.toml",
                "--dry-run",
                "--provider",
                provider,
            ])
            .output()
            .expect("run --dry-run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{provider}: {stderr}");
        assert!(
            stderr.contains(&format!("the {provider} provider has no dry run")),
            "{provider}: {stderr}"
        );
    }
    sandbox.assert_created_nothing("run --dry-run");
}
