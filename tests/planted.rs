//! The planted-mistake suite: every broken procedure or false claim in tests/planted/catalog.toml
//! must end in its verdict (FAIL, exit 1, unless it says otherwise) with every message it lists,
//! and its correct twin must pass. This is the suite's detection power: if a verdict ever
//! passed a broken procedure, a trial here would fail.
//!
//! Needs root and the servers, like tests/cluster.rs; with `CI` set it fails instead of skipping.

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Trial};
use serde::Deserialize;

mod support;
use support::*;

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
    /// Every one of these must be printed.
    #[serde(default)]
    messages: Vec<String>,
    /// At least one of these must be printed: how the mistake shows can depend on timing (a
    /// lone ZooKeeper server may be seen still leading, or already not serving).
    #[serde(default)]
    any_of: Vec<String>,
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
    let mut trials = vec![Trial::test("catalog::covers_every_area", {
        let catalog = catalog.clone();
        move || covers_every_area(&catalog)
    })];
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
    let mut all = gate(trials, missing_prerequisite());
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
    for want in &m.messages {
        if !text.contains(want.as_str()) {
            return Err(fail(format!(
                "{}: the output must name the mistake (`{want}`)\n{text}",
                m.name
            )));
        }
    }
    if !m.any_of.is_empty() && !m.any_of.iter().any(|w| text.contains(w.as_str())) {
        return Err(fail(format!(
            "{}: the output must name the mistake (one of {:?})\n{text}",
            m.name, m.any_of
        )));
    }
    assert_clean(report["run_id"].as_str().unwrap_or_default())
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
