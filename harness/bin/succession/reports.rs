//! The commands that work on run directories after the fact: `summary` over many runs,
//! `timeline` redrawn from a report, `check` of a ledger's history re-run offline.

use std::path::Path;

use succession::exit::Exit;

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

pub fn check(dir: &Path) -> Exit {
    let history = match succession::ledger::History::read(dir) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::InvalidInput;
        }
    };
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
    if let Ok(report) = succession::report::Report::read(dir) {
        match &report.ledger {
            Some(recorded) if *recorded == verdict => {
                println!("  same verdict as the run's report.json")
            }
            Some(_) => println!(
                "  note: report.json recorded a different ledger verdict (made by another version of succession?)"
            ),
            None => {}
        }
    }
    if verdict.pass {
        Exit::Pass
    } else {
        Exit::CheckFailed
    }
}
