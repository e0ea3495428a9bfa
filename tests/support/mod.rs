//! Helpers shared by the real-cluster test binaries: running the harness, reading its report,
//! and proving a run left nothing behind.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use libtest_mimic::{Failed, Trial};

/// A test's outcome.
pub type TestResult = Result<(), Failed>;

/// Trials that need root and the servers: with everything present they run; without, they are
/// ignored with the reason, and with `CI` set they fail with it, so a pipeline never passes by
/// skipping them.
pub fn gate(trials: Vec<Trial>, missing: Option<String>) -> Vec<Trial> {
    trials
        .into_iter()
        .map(|t| match &missing {
            None => t,
            Some(why) if std::env::var_os("CI").is_some() => {
                let why = why.clone();
                let name = t.name().to_string();
                Trial::test(name, move || Err(format!("cannot run in CI: {why}").into()))
            }
            Some(why) => t
                .with_ignored_flag(true)
                .with_kind(format!("ignored: {why}")),
        })
        .collect()
}

/// Every run directory under the state root; an unreadable root is an error, not "none".
pub fn run_dirs() -> Result<Vec<String>, Failed> {
    match std::fs::read_dir("/run/succession/runs") {
        Ok(d) => Ok(d
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(fail(format!("failed to read /run/succession/runs: {e}"))),
    }
}

/// The runs created since `before` was listed whose purpose is `purpose` (other tests run at
/// the same time; only runs of this invocation count).
pub fn runs_created_for(before: &[String], purpose: &str) -> Result<Vec<String>, Failed> {
    let quoted = format!("\"{purpose}\"");
    Ok(run_dirs()?
        .into_iter()
        .filter(|r| !before.contains(r))
        .filter(|r| {
            std::fs::read_to_string(Path::new("/run/succession/runs").join(r).join("run.json"))
                .is_ok_and(|t| t.contains(&quoted))
        })
        .collect())
}

/// Every network namespace of the host; a failed `ip netns list` is an error.
pub fn namespaces() -> Result<Vec<String>, Failed> {
    let out = Command::new("ip").args(["netns", "list"]).output()?;
    if !out.status.success() {
        return Err(fail(format!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// The repository.
pub fn root_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The harness binary, run from the repository.
pub fn succession() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_succession"));
    cmd.current_dir(root_dir());
    cmd
}

/// Why these tests cannot run here, if they cannot.
pub fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for network namespaces (run `sudo ci/test`)".into());
    }
    for (path, package) in [
        ("/usr/bin/etcd", "etcd-server"),
        ("/usr/share/java/zookeeper.jar", "zookeeper"),
        ("/usr/share/java/slf4j-simple.jar", "libslf4j-java"),
        ("/usr/bin/etcdctl", "etcd-client"),
    ] {
        if !Path::new(path).exists() {
            return Some(format!(
                "needs {path} (Debian's {package}; run ci/setup-host)"
            ));
        }
    }
    None
}

/// The provider a trial runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// Network namespaces on this host.
    Local,
    /// Docker containers from the node image.
    Containers,
}

impl On {
    /// Both providers, local first.
    pub const ALL: [On; 2] = [On::Local, On::Containers];

    /// Its name on the command line and in trial names.
    pub fn name(self) -> &'static str {
        match self {
            On::Local => "local",
            On::Containers => "containers",
        }
    }

    /// The arguments that choose it.
    pub fn args(self) -> [&'static str; 2] {
        ["--provider", self.name()]
    }

    /// Why trials on it cannot run here, if they cannot.
    pub fn missing(self) -> Option<String> {
        missing_prerequisite().or_else(|| match self {
            On::Local => None,
            On::Containers => missing_container_prerequisite(),
        })
    }
}

/// The Docker engine and the node image, for trials on the containers provider.
fn missing_container_prerequisite() -> Option<String> {
    let image = match succession().args(["image", "name"]).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => {
            return Some(format!(
                "`succession image name` failed: {}",
                output_text(&o)
            ))
        }
        Err(e) => return Some(format!("cannot run the harness: {e}")),
    };
    match Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &image])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "needs the Docker engine and the node image {image} (`succession image build`; ci/test builds it): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("needs the docker command line to inspect {image}: {e}")),
    }
}

/// What Docker still holds of a run (containers, networks, volumes labelled with it); nothing
/// when no Docker engine answers here.
fn docker_leftovers(run_id: &str) -> Vec<String> {
    let filter = format!("label=succession.run={run_id}");
    let mut left = Vec::new();
    for (what, args) in [
        (
            "container",
            vec!["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
        ),
        (
            "network",
            vec![
                "network",
                "ls",
                "--filter",
                &filter,
                "--format",
                "{{.Name}}",
            ],
        ),
        (
            "volume",
            vec!["volume", "ls", "--filter", &filter, "--format", "{{.Name}}"],
        ),
    ] {
        if let Ok(o) = Command::new("docker").args(&args).output() {
            if o.status.success() {
                left.extend(
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .filter(|l| !l.is_empty())
                        .map(|l| format!("{what} {l}")),
                );
            }
        }
    }
    left
}

/// `succession up ARGS…`: the run id it printed and everything it printed, or a failure with
/// that text.
pub fn bring_up<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<(String, String), Failed> {
    let out = succession().arg("up").args(args).output()?;
    let text = output_text(&out);
    let run_id = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("run ")
                .and_then(|r| r.split_whitespace().next())
        })
        .unwrap_or("")
        .to_string();
    if !out.status.success() || run_id.len() != 6 {
        return Err(fail(format!("up failed\n{text}")));
    }
    Ok((run_id, text))
}

/// A failure with a message.
pub fn fail(msg: impl Into<String>) -> Failed {
    msg.into().into()
}

/// Exit code, stdout and stderr of a finished command.
pub fn output_text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A fresh report directory for one test.
pub fn report_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("succession-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// What one `succession run SCENARIO --report DIR` gave.
pub struct Ran {
    /// What the command printed and how it exited.
    pub out: Output,
    /// report.json, parsed.
    pub report: serde_json::Value,
    /// The report directory.
    pub dir: PathBuf,
}

/// Runs a scenario with a report directory of its own and reads the report back.
pub fn run_with_report(scenario: &Path, tag: &str) -> Result<Ran, Failed> {
    run_with_report_on(On::Local, scenario, tag)
}

/// Runs a scenario on a provider with a report directory of its own and reads the report back.
pub fn run_with_report_on(on: On, scenario: &Path, tag: &str) -> Result<Ran, Failed> {
    let dir = report_dir(&format!("{tag}-{}", on.name()));
    let out = succession()
        .arg("run")
        .arg(scenario)
        .args(on.args())
        .arg("--report")
        .arg(&dir)
        .output()?;
    let report = read_report(&dir).map_err(|e| fail(format!("{e:?}\n{}", output_text(&out))))?;
    Ok(Ran { out, report, dir })
}

pub fn read_report(dir: &Path) -> Result<serde_json::Value, Failed> {
    let text = std::fs::read_to_string(dir.join("report.json"))
        .map_err(|e| fail(format!("no report.json: {e}")))?;
    serde_json::from_str(&text).map_err(|e| fail(format!("bad report.json: {e}")))
}

/// Everything of a run still present on the host: namespaces, host link, state, processes.
pub fn leftovers(run_id: &str) -> Vec<String> {
    let mut left = Vec::new();
    // A look that fails is no evidence of a clean host: it is reported as a leftover.
    let ns = match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            left.push(format!(
                "unknown: `ip netns list` failed ({})",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            String::new()
        }
        Err(e) => {
            left.push(format!("unknown: failed to run `ip netns list`: {e}"));
            String::new()
        }
    };
    for line in ns.lines() {
        if line.starts_with(&format!("succ-{run_id}-")) {
            left.push(format!("namespace {line}"));
        }
    }
    for link in [format!("succ{run_id}"), format!("scn{run_id}")] {
        if Command::new("ip")
            .args(["link", "show", "dev", &link])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            left.push(format!("interface {link}"));
        }
    }
    left.extend(docker_leftovers(run_id));
    let state = Path::new("/run/succession/runs").join(run_id);
    if state.exists() {
        left.push(format!("state directory {}", state.display()));
    }
    // Every service process carries SUCCESSION_RUN=<id>, whichever namespace it ended up in.
    let needle = format!("SUCCESSION_RUN={run_id}");
    let procs = match std::fs::read_dir("/proc") {
        Ok(p) => Some(p),
        Err(e) => {
            left.push(format!("unknown: failed to read /proc: {e}"));
            None
        }
    };
    if let Some(entries) = procs {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let labelled = std::fs::read(e.path().join("environ"))
                .map(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
                .unwrap_or(false);
            let zombie = std::fs::read_to_string(e.path().join("stat"))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(false);
            if labelled && !zombie {
                left.push(format!("process {name}"));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/etc/netns") {
        for e in entries.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!("succ-{run_id}-"))
            {
                left.push(format!("/etc/netns/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/run/succession/leases") {
        for e in entries.flatten() {
            if std::fs::read_to_string(e.path()).is_ok_and(|o| o == run_id) {
                left.push(format!("lease {}", e.path().display()));
            }
        }
    }
    left
}

/// Fails with what a run left behind, if anything.
pub fn assert_clean(run_id: &str) -> TestResult {
    if run_id.len() != 6 {
        return Err(fail(format!("no run id to check (got {run_id:?})")));
    }
    let left = leftovers(run_id);
    if left.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "run {run_id} left behind: {}",
            left.join(", ")
        )))
    }
}
