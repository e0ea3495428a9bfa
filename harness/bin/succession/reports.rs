//! The commands that work on run directories after the fact: `summary` over many runs,
//! `timeline` redrawn from a report, `check` of a ledger's history re-run offline.

use std::path::Path;

use succession::exit::Exit;
use succession::report::Verdict;

pub fn summarize(root: &Path) -> Exit {
    use succession::report::summary::{find_reports, Summary};
    let mut runs = Vec::new();
    for dir in find_reports(root) {
        match succession::report::Report::read(&dir) {
            Ok(report) => {
                let rel = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
                runs.push((rel, report));
            }
            Err(e) => {
                eprintln!(
                    "error: failed to read {}: {e}",
                    dir.join("report.json").display()
                );
                return Exit::InvalidInput;
            }
        }
    }
    if runs.is_empty() {
        eprintln!("error: no report.json under {}", root.display());
        return Exit::InvalidInput;
    }
    let summary = Summary::of(&runs);
    let json = match serde_json::to_string_pretty(&summary) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Environment;
        }
    };
    let written = std::fs::write(root.join("summary.json"), json + "\n")
        .and_then(|()| std::fs::write(root.join("index.html"), summary.render_html()));
    if let Err(e) = written {
        eprintln!(
            "error: failed to write the summary into {}: {e}",
            root.display()
        );
        return Exit::Environment;
    }
    print!("{}", summary.render_text());
    println!(
        "wrote {} and {}",
        root.join("summary.json").display(),
        root.join("index.html").display()
    );
    Exit::of(summary.verdict)
}

/// `succession trace FILE`: the spans of a traced run summed by name.
pub fn trace(file: &Path) -> Exit {
    use succession::base::trace;
    match trace::read(file) {
        Ok(spans) => {
            let (totals, wall) = trace::breakdown(&spans);
            print!("{}", trace::render(&totals, wall));
            Exit::Pass
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::InvalidInput
        }
    }
}

pub fn redraw(dir: &Path) -> Exit {
    let report = match succession::report::Report::read(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: failed to read {}: {e}",
                dir.join("report.json").display()
            );
            return Exit::InvalidInput;
        }
    };
    // A run without a ledger has no history; one whose history is unreadable is an error.
    let history = if dir.join("history.json").exists() {
        match succession::ledger::History::read(dir) {
            Ok(h) => Some(h),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::InvalidInput;
            }
        }
    } else {
        None
    };
    match succession::report::timeline::write(dir, &report, history.as_ref()) {
        Ok(()) => {
            println!("wrote {}", dir.join("timeline.html").display());
            println!("wrote {}", dir.join("timeline.svg").display());
            Exit::Pass
        }
        Err(e) => {
            eprintln!(
                "error: failed to write the timeline into {}: {e}",
                dir.display()
            );
            Exit::Environment
        }
    }
}

/// Judges every history a report directory holds again, offline; the verdict merges them.
pub fn check(dir: &Path, search_budget: u64) -> Exit {
    let ledger = dir.join(succession::ledger::history::HISTORY_FILE).exists();
    let workload = dir.join(succession::workload::WORKLOAD_FILE).exists();
    if !ledger && !workload {
        eprintln!(
            "error: {} holds neither {} (the write ledger's history) nor {} (the consistency workload's): was it written by `succession run --report DIR` of a scenario with `[ledger]` or `[workload]`?",
            dir.display(),
            succession::ledger::history::HISTORY_FILE,
            succession::workload::WORKLOAD_FILE
        );
        return Exit::InvalidInput;
    }
    let report = succession::report::Report::read(dir).ok();
    let mut verdict = Verdict::Pass;
    if ledger {
        match check_ledger(dir, report.as_ref()) {
            Ok(v) => verdict = verdict.merge(v),
            Err(exit) => return exit,
        }
    }
    if workload {
        match check_workload(dir, report.as_ref(), search_budget) {
            Ok(v) => verdict = verdict.merge(v),
            Err(exit) => return exit,
        }
    }
    Exit::of(verdict)
}

fn check_ledger(dir: &Path, report: Option<&succession::report::Report>) -> Result<Verdict, Exit> {
    let history = succession::ledger::History::read(dir).map_err(|e| {
        eprintln!("error: {e}");
        Exit::InvalidInput
    })?;
    let verdict = succession::ledger::check(&history);
    println!(
        "ledger of scenario {} (run {}): {} writes under {}, tolerating {}",
        history.scenario,
        history.run_id,
        history.records.len(),
        history.prefix,
        history.tolerate.describe()
    );
    print!("{}", succession::report::render_ledger(&verdict));
    // The run's own verdict, when its report is there: an offline check must agree with it.
    match report.and_then(|r| r.ledger.as_ref()) {
        Some(recorded) if *recorded == verdict => println!("  same verdict as the run's report.json"),
        Some(_) => println!(
            "  note: report.json recorded a different ledger verdict (made by another version of succession?)"
        ),
        None => {}
    }
    Ok(if verdict.pass {
        Verdict::Pass
    } else {
        Verdict::Fail
    })
}

fn check_workload(
    dir: &Path,
    report: Option<&succession::report::Report>,
    search_budget: u64,
) -> Result<Verdict, Exit> {
    let history = succession::workload::WorkloadHistory::read(dir).map_err(|e| {
        eprintln!("error: {e}");
        Exit::InvalidInput
    })?;
    let verdict = succession::workload::judge(&history, search_budget);
    println!(
        "workload of scenario {} (run {}): {} operations by {} clients on {} keys under {}, {} watches",
        history.scenario,
        history.run_id,
        history.operations.len(),
        history.settings.clients,
        history.settings.keys,
        history.settings.prefix,
        history.watches.len()
    );
    print!("{}", succession::report::render_consistency(&verdict));
    // Timings differ run to run; the verdicts and the breaches must not.
    let same = |a: &succession::workload::ConsistencyVerdict| {
        a.checks.len() == verdict.checks.len()
            && a.checks.iter().zip(&verdict.checks).all(|(x, y)| {
                x.checker == y.checker && x.status == y.status && x.breaches == y.breaches
            })
    };
    match report.and_then(|r| r.consistency.as_ref()) {
        Some(recorded) if same(recorded) => println!("  same verdicts as the run's report.json"),
        Some(_) => println!(
            "  note: report.json recorded different consistency verdicts (made by another version of succession?)"
        ),
        None => {}
    }
    Ok(verdict.status().into())
}
