//! The planted-mistake suite: every broken procedure or false claim in tests/planted/catalog.toml
//! must end in its verdict (FAIL, exit 1, unless it says otherwise) exactly where the catalog
//! says — the step that is the first to fail, every step before it passed, or the check that
//! alone does not pass — with every message it lists in that step's or check's own detail in
//! report.json; and its correct twin must pass. This is the suite's detection power: if a
//! verdict ever passed a broken procedure, or failed it for another reason than its mistake, a
//! trial here would fail.
//!
//! Needs root and the servers, like tests/cluster.rs; with `CI` set it fails instead of skipping.
//! The catalog itself is checked against the scenario files without a cluster.

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Trial};
use serde::Deserialize;
use serde_json::Value;

mod support;
use support::*;

#[path = "planted/checkers.rs"]
mod checkers;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Catalog {
    mistake: Vec<Mistake>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mistake {
    name: String,
    area: String,
    mistake: String,
    broken: PathBuf,
    twin: PathBuf,
    #[serde(default = "fail_verdict")]
    verdict: String,
    /// Where the broken run must fail.
    at: At,
    /// Every one of these must be in the detail of the step or check it fails at.
    #[serde(default)]
    messages: Vec<String>,
    /// At least one of these must be in that detail: how the mistake shows can depend on
    /// timing (a lone ZooKeeper server may be seen still leading, or already not serving).
    #[serde(default)]
    any_of: Vec<String>,
}

/// Where a broken run fails.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum At {
    /// A step of the scenario, by its 1-based index and its name as report.json records it: the
    /// first step to fail, every step before it passed.
    Step { step: usize, name: String },
    /// A `[[check]]`, or a check over the whole run (the write ledger, one leader per term), by
    /// name: every step passed, and it is the one check that did not.
    Check { check: String },
    /// A consistency checker over the workload's history, by name: every step and every other
    /// check passed, and it alone failed; its breaches are the detail.
    Consistency { consistency: String },
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Step { step, name } => write!(f, "step [{step}] `{name}`"),
            At::Check { check } => write!(f, "check `{check}`"),
            At::Consistency { consistency } => write!(f, "consistency checker `{consistency}`"),
        }
    }
}

fn fail_verdict() -> String {
    "fail".to_string()
}

fn planted_dir() -> PathBuf {
    root_dir().join("tests/planted")
}

fn catalog() -> Catalog {
    let path = planted_dir().join("catalog.toml");
    let text = std::fs::read_to_string(&path).expect("tests/planted/catalog.toml");
    toml::from_str(&text).expect("a valid catalog")
}

fn main() {
    let args = Arguments::from_args();
    let catalog = catalog();
    // The catalog is read against the scenario files, which needs no cluster: it always runs.
    let mut all = vec![
        Trial::test("catalog::covers_every_area", {
            let catalog = catalog.clone();
            move || covers_every_area(&catalog)
        }),
        Trial::test("catalog::names_steps_and_checks_the_scenarios_have", {
            let catalog = catalog.clone();
            move || names_what_the_scenarios_have(&catalog)
        }),
    ];
    // Planted anomalies in recorded histories, judged offline by `succession check`.
    all.extend(checkers::trials());
    let mut trials = Vec::new();
    let mut on_containers = Vec::new();
    for m in catalog.mistake {
        for on in On::ALL {
            let (group, tag) = match on {
                On::Local => (&mut trials, String::new()),
                On::Containers => (&mut on_containers, "containers::".to_string()),
            };
            let broken = m.clone();
            group.push(Trial::test(
                format!("planted::{tag}{}::caught", m.name),
                move || caught(on, &broken),
            ));
            let twin = m.clone();
            group.push(Trial::test(
                format!("planted::{tag}{}::twin_passes", m.name),
                move || twin_passes(on, &twin),
            ));
        }
    }
    all.extend(gate(trials, missing_prerequisite()));
    all.extend(gate(on_containers, On::Containers.missing()));
    libtest_mimic::run(&args, all).exit();
}

/// At least twelve mistakes, over every area the issue of detection power names.
fn covers_every_area(catalog: &Catalog) -> TestResult {
    let fails = catalog
        .mistake
        .iter()
        .filter(|m| m.verdict == "fail")
        .count();
    if fails < 12 {
        return Err(fail(format!(
            "only {fails} planted mistakes end in FAIL; at least 12 must"
        )));
    }
    for area in [
        "etcd membership",
        "etcd disaster recovery",
        "ZooKeeper leadership",
        "ZooKeeper ensembles",
        "master tier",
        "neighbour tables",
        "availability",
        "write ledger",
        "chaos",
        "consistency",
    ] {
        if !catalog.mistake.iter().any(|m| m.area == area) {
            return Err(fail(format!("no planted mistake in {area}")));
        }
    }
    for m in &catalog.mistake {
        for file in [&m.broken, &m.twin] {
            if !planted_dir().join(file).exists() {
                return Err(fail(format!(
                    "{}: {} does not exist",
                    m.name,
                    file.display()
                )));
            }
        }
        if (m.messages.is_empty() && m.any_of.is_empty()) || m.mistake.is_empty() {
            return Err(fail(format!(
                "{}: say what the mistake is and what it prints",
                m.name
            )));
        }
        if m.verdict != "fail" && m.verdict != "unknown" {
            return Err(fail(format!(
                "{}: a planted mistake ends in fail or unknown, not {}",
                m.name, m.verdict
            )));
        }
        // A step that fails makes the run fail; only a check can be unknown.
        if m.verdict == "unknown" && matches!(m.at, At::Step { .. }) {
            return Err(fail(format!(
                "{}: an unknown verdict comes from a check, not from {}",
                m.name, m.at
            )));
        }
    }
    Ok(())
}

/// Every mistake names a step the broken scenario has at that index, under that name as the
/// report will record it, or a check the scenario runs; so a renamed or moved step shows here,
/// without a cluster, and never as a broken run failing "somewhere".
fn names_what_the_scenarios_have(catalog: &Catalog) -> TestResult {
    use succession::scenario::Scenario;
    for m in &catalog.mistake {
        let path = planted_dir().join(&m.broken);
        let scenario = Scenario::load(&path, None).map_err(|e| fail(format!("{}: {e}", m.name)))?;
        Scenario::load(&planted_dir().join(&m.twin), None)
            .map_err(|e| fail(format!("{} (twin): {e}", m.name)))?;
        let found = match &m.at {
            At::Step { step, name } => step
                .checked_sub(1)
                .and_then(|i| scenario.steps.get(i))
                .is_some_and(|s| s.name == *name),
            At::Consistency { consistency } => {
                scenario.workload.is_some()
                    && succession::workload::judge::CHECKERS.contains(&consistency.as_str())
            }
            At::Check { check } => {
                scenario.checks.iter().any(|c| c.name == *check)
                    || (scenario.ledger.is_some() && check == succession::runner::LEDGER_STEP)
                    || scenario
                        .one_leader_per_term
                        .iter()
                        .any(|s| *check == succession::runner::one_leader_per_term_step(*s))
            }
        };
        if !found {
            let steps: Vec<String> = scenario
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| format!("[{}] {}", i + 1, s.name))
                .collect();
            return Err(fail(format!(
                "{}: {} has no {}; its steps: {}",
                m.name,
                path.display(),
                m.at,
                steps.join("; ")
            )));
        }
    }
    Ok(())
}

fn relative(file: &Path) -> PathBuf {
    Path::new("tests/planted").join(file)
}

fn caught(on: On, m: &Mistake) -> TestResult {
    let Ran { out, report, .. } =
        run_with_report_on(on, &relative(&m.broken), &format!("planted-{}", m.name))?;
    let code = if m.verdict == "unknown" { 4 } else { 1 };
    let text = output_text(&out);
    if out.status.code() != Some(code) || report["verdict"] != m.verdict.as_str() {
        return Err(fail(format!(
            "{} ({}) must end in {} (exit {code})\n{text}",
            m.name, m.mistake, m.verdict
        )));
    }
    let detail = match &m.at {
        At::Step { step, name } => fails_at_step(&report, *step, name),
        At::Check { check } => fails_at_check(&report, check, &m.verdict),
        At::Consistency { consistency } => fails_at_checker(&report, consistency),
    }
    .map_err(|e| fail(format!("{} must fail at {}: {e}\n{text}", m.name, m.at)))?;
    for want in &m.messages {
        if !detail.contains(want.as_str()) {
            return Err(fail(format!(
                "{}: {} must name the mistake (`{want}`); its detail: {detail}",
                m.name, m.at
            )));
        }
    }
    if !m.any_of.is_empty() && !m.any_of.iter().any(|w| detail.contains(w.as_str())) {
        return Err(fail(format!(
            "{}: {} must name the mistake (one of {:?}); its detail: {detail}",
            m.name, m.at, m.any_of
        )));
    }
    assert_clean(report["run_id"].as_str().unwrap_or_default())
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// The detail of the step the run failed at, when it is the first step to fail, it is step
/// `index` named `name`, and every step before it passed.
fn fails_at_step(report: &Value, index: usize, name: &str) -> Result<String, String> {
    let steps = report["steps"]
        .as_array()
        .ok_or("report.json has no steps")?;
    let at = steps
        .iter()
        .position(|s| s["status"] == "failed")
        .ok_or("no step failed")?;
    let failed = &steps[at];
    if failed["index"].as_u64() != Some(index as u64) || str_of(failed, "name") != name {
        return Err(format!(
            "the first step to fail is [{}] `{}` ({})",
            failed["index"],
            str_of(failed, "name"),
            str_of(failed, "detail")
        ));
    }
    if let Some(s) = steps[..at].iter().find(|s| s["status"] != "passed") {
        return Err(format!(
            "step [{}] `{}` before it is {}, not passed ({})",
            s["index"],
            str_of(s, "name"),
            str_of(s, "status"),
            str_of(s, "detail")
        ));
    }
    Ok(str_of(failed, "detail").to_string())
}

/// Every one of these steps passed; else the first that did not, in words.
fn every_passed<'a>(mut steps: impl Iterator<Item = &'a Value>) -> Result<(), String> {
    match steps.find(|s| s["status"] != "passed") {
        Some(s) => Err(format!(
            "step [{}] `{}` is {}, not passed ({})",
            s["index"],
            str_of(s, "name"),
            str_of(s, "status"),
            str_of(s, "detail")
        )),
        None => Ok(()),
    }
}

/// The breaches of the consistency checker the run failed at, when every step passed and every
/// other checker passed.
fn fails_at_checker(report: &Value, checker: &str) -> Result<String, String> {
    let steps = report["steps"]
        .as_array()
        .ok_or("report.json has no steps")?;
    every_passed(steps.iter())?;
    let checks = report["consistency"]["checks"]
        .as_array()
        .ok_or("report.json has no consistency verdicts")?;
    let mut detail = None;
    for c in checks {
        match (str_of(c, "checker") == checker, str_of(c, "status")) {
            (true, "fail") => {
                let breaches: Vec<&str> = c["breaches"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .map(|b| str_of(b, "what"))
                    .collect();
                detail = Some(breaches.join("; "));
            }
            (true, status) => {
                return Err(format!("`{checker}` is {status}: {}", str_of(c, "detail")))
            }
            (false, "pass") => {}
            (false, status) => {
                return Err(format!(
                    "another checker, `{}`, is {status} ({})",
                    str_of(c, "checker"),
                    str_of(c, "detail")
                ))
            }
        }
    }
    detail.ok_or_else(|| format!("report.json has no checker `{checker}`"))
}

/// The detail of the check the run failed at (or could not judge, for an unknown verdict), when
/// every step of the procedure passed and every other check did too: `[[check]]`s are in
/// `checks`, the checks over the whole run (the ledger, one leader per term) are steps of kind
/// `check`.
fn fails_at_check(report: &Value, name: &str, verdict: &str) -> Result<String, String> {
    let steps = report["steps"]
        .as_array()
        .ok_or("report.json has no steps")?;
    let (run_checks, procedure): (Vec<&Value>, Vec<&Value>) =
        steps.iter().partition(|s| s["kind"] == "check");
    every_passed(procedure.iter().copied())?;
    let checks = report["checks"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut found = Vec::new();
    for c in checks.iter().chain(run_checks) {
        if str_of(c, "name") == name {
            found.push(c);
        } else if c["status"] != "passed" {
            return Err(format!(
                "another check, `{}`, is {} ({})",
                str_of(c, "name"),
                str_of(c, "status"),
                str_of(c, "detail")
            ));
        }
    }
    let [check] = found.as_slice() else {
        return Err(format!(
            "report.json has {} checks of that name",
            found.len()
        ));
    };
    let status = if verdict == "unknown" {
        "unknown"
    } else {
        "failed"
    };
    if check["status"] != status {
        return Err(format!(
            "it is {}, not {status} ({})",
            str_of(check, "status"),
            str_of(check, "detail")
        ));
    }
    Ok(str_of(check, "detail").to_string())
}

fn twin_passes(on: On, m: &Mistake) -> TestResult {
    let Ran { out, report, .. } =
        run_with_report_on(on, &relative(&m.twin), &format!("twin-{}", m.name))?;
    if out.status.code() != Some(0) || report["verdict"] != "pass" {
        return Err(fail(format!(
            "the correct twin of {} must pass (no false alarm)\n{}",
            m.name,
            output_text(&out)
        )));
    }
    assert_clean(report["run_id"].as_str().unwrap_or_default())
}
