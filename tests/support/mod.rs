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

/// Where the harness keeps its runs and leases: the harness's own rule (`SUCCESSION_STATE_DIR`,
/// else `/run/succession`), which it and these tests read from the same environment.
pub fn state_root() -> PathBuf {
    succession::provider::record::state_root()
}

/// `STATE_ROOT/runs`, one directory per run.
pub fn runs_root() -> PathBuf {
    state_root().join("runs")
}

/// The names in a directory; a directory that does not exist holds none, and any other failure
/// to read it (or one of its entries) is an error, never "none".
pub fn dir_names(dir: &Path) -> Result<Vec<String>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("failed to read {}: {e}", dir.display())),
    };
    entries
        .map(|e| {
            e.map(|e| e.file_name().to_string_lossy().into_owned())
                .map_err(|e| format!("failed to read an entry of {}: {e}", dir.display()))
        })
        .collect()
}

/// Every run directory under the state root; an unreadable root is an error, not "none".
pub fn run_dirs() -> Result<Vec<String>, Failed> {
    dir_names(&runs_root()).map_err(fail)
}

/// The runs created since `before` was listed whose purpose is `purpose` (other tests run at
/// the same time; only runs of this invocation count). A run directory without a record yet
/// (another run being set up, or one removed meanwhile) is not this one; a record that cannot
/// be read is an error.
pub fn runs_created_for(before: &[String], purpose: &str) -> Result<Vec<String>, Failed> {
    let quoted = format!("\"{purpose}\"");
    let mut ours = Vec::new();
    for run in run_dirs()?.into_iter().filter(|r| !before.contains(r)) {
        let record = runs_root().join(&run).join("run.json");
        match std::fs::read_to_string(&record) {
            Ok(text) if text.contains(&quoted) => ours.push(run),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(format!("failed to read {}: {e}", record.display()))),
        }
    }
    Ok(ours)
}

/// Every network namespace of the host; a failed `ip netns list` is an error.
pub fn namespaces() -> Result<Vec<String>, Failed> {
    list_namespaces().map_err(fail)
}

fn list_namespaces() -> Result<Vec<String>, String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map_err(|e| format!("failed to run `ip netns list`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
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

/// Whether a Docker engine could hold anything here: the harness reaches it through
/// `DOCKER_HOST` or the default socket, so with neither there is nothing to look at.
fn docker_engine_here() -> bool {
    std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists()
}

/// What Docker still holds of a run (containers, networks, volumes labelled with it). A look
/// that fails is reported as `unknown: …`, never read as clean; with no engine here there is
/// nothing to hold.
fn docker_leftovers(run_id: &str) -> Vec<String> {
    if !docker_engine_here() {
        return Vec::new();
    }
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
        let look = format!("docker {}", args[..2].join(" "));
        match Command::new("docker").args(&args).output() {
            Ok(o) if o.status.success() => left.extend(
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| format!("{what} {l}")),
            ),
            Ok(o) => left.push(format!(
                "unknown: `{look}` failed ({})",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => left.push(format!("unknown: failed to run `{look}`: {e}")),
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
/// A test's report directory: under `SUCCESSION_TEST_REPORTS` when it is set (CI keeps that
/// directory as an artefact), else the temporary directory.
pub fn report_dir(tag: &str) -> PathBuf {
    let base = std::env::var_os("SUCCESSION_TEST_REPORTS")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let _ = std::fs::create_dir_all(&base);
    let dir = base.join(format!("succession-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Removes a passing run's report directory when reports are kept for CI, so what is kept
/// there is what failed.
pub fn discard_if_kept(dir: &Path) {
    if std::env::var_os("SUCCESSION_TEST_REPORTS").is_some() {
        let _ = std::fs::remove_dir_all(dir);
    }
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

/// Everything of a run still present on the host: namespaces, host links, Docker objects, state,
/// processes, leases. A look that fails is no evidence of a clean host: it is reported as a
/// leftover `unknown: …`.
pub fn leftovers(run_id: &str) -> Vec<String> {
    let mut left = Vec::new();
    let prefix = format!("succ-{run_id}-");
    match list_namespaces() {
        Ok(ns) => left.extend(
            ns.into_iter()
                .filter(|n| n.starts_with(&prefix))
                .map(|n| format!("namespace {n}")),
        ),
        Err(e) => left.push(format!("unknown: {e}")),
    }
    for link in [format!("succ{run_id}"), format!("scn{run_id}")] {
        match Command::new("ip")
            .args(["link", "show", "dev", &link])
            .output()
        {
            Ok(o) if o.status.success() => left.push(format!("interface {link}")),
            Ok(o) if String::from_utf8_lossy(&o.stderr).contains("does not exist") => {}
            Ok(o) => left.push(format!(
                "unknown: `ip link show dev {link}` failed ({})",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => left.push(format!("unknown: failed to run `ip link show`: {e}")),
        }
    }
    left.extend(docker_leftovers(run_id));
    // A faulty disk's FUSE mount on this host (the local provider's; a container's go with it).
    match std::fs::read_to_string("/proc/self/mounts") {
        Ok(table) => left.extend(
            table
                .lines()
                .filter(|l| l.starts_with(&format!("succession-faultfs-{run_id} ")))
                .map(|l| format!("mount {}", l.split_whitespace().nth(1).unwrap_or("?"))),
        ),
        Err(e) => left.push(format!("unknown: failed to read /proc/self/mounts: {e}")),
    }
    let state = runs_root().join(run_id);
    match state.try_exists() {
        Ok(false) => {}
        Ok(true) => left.push(format!("state directory {}", state.display())),
        Err(e) => left.push(format!(
            "unknown: failed to look for {}: {e}",
            state.display()
        )),
    }
    left.extend(labelled_processes(run_id));
    match dir_names(Path::new("/etc/netns")) {
        Ok(names) => left.extend(
            names
                .into_iter()
                .filter(|n| n.starts_with(&prefix))
                .map(|n| format!("/etc/netns/{n}")),
        ),
        Err(e) => left.push(format!("unknown: {e}")),
    }
    let leases = state_root().join("leases");
    match dir_names(&leases) {
        Ok(names) => {
            for name in names {
                let lease = leases.join(name);
                match std::fs::read_to_string(&lease) {
                    Ok(holder) if holder == run_id => {
                        left.push(format!("lease {}", lease.display()))
                    }
                    Ok(_) => {}
                    // Released between the listing and the read.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        left.push(format!("unknown: failed to read {}: {e}", lease.display()))
                    }
                }
            }
        }
        Err(e) => left.push(format!("unknown: {e}")),
    }
    left
}

/// Whether a failed read under `/proc/PID` means the process is gone (it exited between the
/// listing and the read), which is no leftover.
fn vanished(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// What `/proc/PID/stat` says of a process, which anyone may read.
struct Stat {
    /// A zombie: it has exited and holds nothing.
    zombie: bool,
    /// A kernel thread, which has no environment at all.
    kernel_thread: bool,
    /// When it started, in clock ticks after boot.
    started: u64,
}

/// `PF_KTHREAD` in the flags of `/proc/PID/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

fn parse_stat(text: &str) -> Option<Stat> {
    // The fields follow the command name, which may itself hold ')' and spaces; field 3 (the
    // state) comes first, so field N is at N - 3.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    Some(Stat {
        // A zombie leader whose other threads still run holds the process's files and
        // sockets: only one with no thread left holds nothing (field 20 counts threads).
        zombie: fields.first()?.starts_with('Z') && fields.get(17)?.parse::<u64>().ok()? <= 1,
        kernel_thread: fields.get(6)?.parse::<u64>().ok()? & PF_KTHREAD != 0,
        started: fields.get(19)?.parse().ok()?,
    })
}

/// Live processes labelled with the run: every service process carries `SUCCESSION_RUN=<id>`,
/// whichever namespace it ended up in. A process whose environment cannot be read is
/// `unknown`, unless it cannot be the run's: a kernel thread (no environment), or one started
/// before this test process, which made the run (here, PID 1 of a sandbox with more privilege
/// than the tests).
fn labelled_processes(run_id: &str) -> Vec<String> {
    let mut left = Vec::new();
    let pids = match dir_names(Path::new("/proc")) {
        Ok(names) => names,
        Err(e) => return vec![format!("unknown: {e}")],
    };
    let ours = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(parse_stat)
        .map(|s| s.started);
    let needle = format!("{}={run_id}", succession::provider::record::RUN_LABEL);
    for pid in pids
        .into_iter()
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
    {
        let dir = Path::new("/proc").join(&pid);
        let stat = match std::fs::read_to_string(dir.join("stat")) {
            Ok(text) => match parse_stat(&text) {
                Some(stat) => stat,
                None => {
                    left.push(format!("unknown: cannot parse /proc/{pid}/stat: {text}"));
                    continue;
                }
            },
            Err(e) if vanished(&e) => continue,
            Err(e) => {
                left.push(format!("unknown: failed to read /proc/{pid}/stat: {e}"));
                continue;
            }
        };
        if stat.zombie || stat.kernel_thread {
            continue;
        }
        match std::fs::read(dir.join("environ")) {
            Ok(env) => {
                if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
                    let command = std::fs::read(dir.join("cmdline"))
                        .map(|c| {
                            c.split(|b| *b == 0)
                                .take(2)
                                .map(|w| String::from_utf8_lossy(w).into_owned())
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default();
                    left.push(format!("process {pid} ({command})"));
                }
            }
            Err(e) if vanished(&e) => {}
            Err(_) if ours.is_some_and(|ours| stat.started < ours) => {}
            Err(e) => left.push(format!("unknown: failed to read /proc/{pid}/environ: {e}")),
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
