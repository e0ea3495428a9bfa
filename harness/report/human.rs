//! The terminal rendering: a line per step as it ends, and a summary.

use super::{Report, StepReport, StepStatus};
use crate::availability::CheckStatus;
use crate::base::time::human_ms;

/// One step as it ends: mark, index, name, timing, then what it found.
pub fn render_step_line(step: &StepReport, total: usize) -> String {
    let mark = match step.status {
        StepStatus::Passed => "ok  ",
        StepStatus::Failed => "FAIL",
        StepStatus::Skipped => "skip",
        StepStatus::Interrupted => "intr",
    };
    let width = total.to_string().len();
    let mut line = format!(
        "  {mark} [{:>width$}/{total}] {:<52} {:>9}",
        step.index,
        step.name,
        if step.status == StepStatus::Skipped {
            String::new()
        } else {
            human_ms(step.elapsed_ms)
        },
    );
    if !step.detail.is_empty() {
        line.push_str(&format!("\n{:>w$}{}", "", step.detail, w = width * 2 + 11));
    }
    line
}

/// How the steps of a run ended, derived from the step reports: a step whose phase ran again
/// is reported more than once and counts once, by how it ended last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepCounts {
    /// Distinct steps.
    pub steps: usize,
    /// Steps whose last run passed.
    pub passed: usize,
    /// Interruptions on purpose (each followed by its phase running again).
    pub interrupted: usize,
}

impl StepCounts {
    /// Counts the step reports of a run.
    pub fn of(steps: &[StepReport]) -> Self {
        let mut last: std::collections::BTreeMap<usize, StepStatus> = Default::default();
        for s in steps {
            last.insert(s.index, s.status);
        }
        Self {
            steps: last.len(),
            passed: last.values().filter(|s| **s == StepStatus::Passed).count(),
            interrupted: steps
                .iter()
                .filter(|s| s.status == StepStatus::Interrupted)
                .count(),
        }
    }
}

/// The closing summary: verdict, counts, measurements, how to replay.
pub fn render_summary(report: &Report) -> String {
    let counts = StepCounts::of(&report.steps);
    let failed: Vec<&StepReport> = report
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
        .collect();
    let mut out = String::new();
    out.push_str(&format!(
        "\n{} {} — {}/{} steps passed{} in {} (cluster ready in {})\n",
        report.verdict.word(),
        report.scenario,
        counts.passed,
        counts.steps,
        match counts.interrupted {
            0 => String::new(),
            1 => " (1 interrupted on purpose, its phase run again)".to_string(),
            n => format!(" ({n} interrupted on purpose, their phases run again)"),
        },
        human_ms(report.duration_ms),
        human_ms(report.provision_ms),
    ));
    for step in failed {
        out.push_str(&format!(
            "  failed: [{}] {}: {}\n",
            step.index, step.name, step.detail
        ));
    }
    if let Some(error) = &report.error {
        out.push_str(&format!("  error: {error}\n"));
    }
    out.push_str(&render_availability(report));
    out.push_str(&render_checks(report));
    out.push_str(&render_measurements(report));
    if let Some(ledger) = &report.ledger {
        out.push_str(&render_ledger(ledger));
    }
    if let Some(consistency) = &report.consistency {
        out.push_str(&render_consistency(consistency));
    }
    let run = if report.run_id.is_empty() {
        "nothing provisioned".to_string()
    } else {
        format!("run {}", report.run_id)
    };
    out.push_str(&format!(
        "  provider {} · {run} · seed {}\n  replay: {}\n",
        report.provider, report.seed, report.replay
    ));
    out
}

/// Each availability target's requests and its longest outage.
fn render_availability(report: &Report) -> String {
    let mut out = String::new();
    if !report.availability.is_empty() {
        out.push_str("  availability through the border:\n");
        for (target, a) in &report.availability {
            let outage = match a.longest_outage_at_ms {
                Some(at) => format!(
                    "longest outage {} from {} ms",
                    human_ms(a.longest_outage_ms),
                    at
                ),
                None => "no outage".to_string(),
            };
            out.push_str(&format!(
                "    {target:<10} {:>6}/{:<6} ok ({:>5.1}%), {outage}\n",
                a.ok,
                a.requests,
                a.ratio * 100.0
            ));
        }
    }
    out
}

/// Each check over the history, its verdict spelled out.
fn render_checks(report: &Report) -> String {
    let mut out = String::new();
    if !report.checks.is_empty() {
        out.push_str("  checks:\n");
        for c in &report.checks {
            // Spelled out: an unknown verdict is not a pass, and a reader must not have to
            // guess what a mark means.
            let mark = match c.status {
                CheckStatus::Passed => "ok",
                CheckStatus::Failed => "FAIL",
                CheckStatus::Unknown => "UNKNOWN",
            };
            out.push_str(&format!("    {mark:<7} {}: {}\n", c.name, c.detail));
        }
    }
    out
}

/// What the run measured, with how often it polled and to within how much.
fn render_measurements(report: &Report) -> String {
    let mut out = String::new();
    if !report.measurements.is_empty() {
        let every = |kind: &str| {
            report
                .poll_intervals_ms
                .get(kind)
                .map(|ms| format!("{kind}s polled every {ms} ms"))
        };
        let polls: Vec<String> = ["election", "expectation"]
            .iter()
            .filter_map(|k| every(k))
            .collect();
        out.push_str(&if polls.is_empty() {
            "  measured:\n".to_string()
        } else {
            format!("  measured ({}):\n", polls.join(", "))
        });
        for (name, ms) in &report.measurements {
            let within = report
                .measurement_resolution_ms
                .get(name)
                .map(|r| {
                    if r == ms && *ms > 0 {
                        // The state already held when its step first looked: the figure is
                        // an upper bound, not a moment.
                        "  (at most: it already held at the first look)".to_string()
                    } else {
                        format!("  (to within {r} ms)")
                    }
                })
                .unwrap_or_default();
            out.push_str(&format!("    {name:<44} {:>9}{within}\n", human_ms(*ms)));
        }
    }
    out
}

/// What the write ledger measured: per-phase counts and what each procedure lost.
pub fn render_ledger(ledger: &crate::ledger::LedgerVerdict) -> String {
    let mut out = format!(
        "  write ledger: {} — {}\n",
        if ledger.pass { "PASS" } else { "FAIL" },
        ledger.summary()
    );
    let rows: Vec<Vec<String>> = ledger
        .phases
        .iter()
        .map(|p| {
            vec![
                p.phase.clone(),
                p.sent.to_string(),
                p.acknowledged.to_string(),
                p.kept.to_string(),
                p.lost_tolerated.to_string(),
                p.lost.to_string(),
                p.failed_leaderless.to_string(),
                p.failed_unreachable.to_string(),
                p.failed_other.to_string(),
                p.indeterminate.to_string(),
                p.loss_window
                    .as_ref()
                    .map(|(a, b)| {
                        if a == b {
                            a.clone()
                        } else {
                            format!("{a}–{b}")
                        }
                    })
                    .unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    let table = crate::base::table::columns(
        &[
            "PHASE",
            "SENT",
            "ACKED",
            "KEPT",
            "LOST(TOLERATED)",
            "LOST",
            "FAILED(NO LEADER)",
            "FAILED(UNREACHABLE)",
            "FAILED(OTHER)",
            "INDETERMINATE",
            "LOSS WINDOW",
        ],
        &rows,
    );
    for line in table.lines() {
        out.push_str(&format!("    {line}\n"));
    }
    for s in &ledger.statements {
        out.push_str(&format!("    {s}\n"));
    }
    for v in &ledger.violations {
        out.push_str(&format!("    violation: {v}\n"));
    }
    out
}

/// Breaches shown per checker in the terminal; report.json keeps them all.
const SHOWN_BREACHES: usize = 10;

/// What each consistency checker found, with its evidence and every breach.
pub fn render_consistency(verdict: &crate::workload::ConsistencyVerdict) -> String {
    let mut out = format!("  consistency: {}\n", verdict.status().word());
    for c in &verdict.checks {
        out.push_str(&format!(
            "    {:<20} {:<7} {} ({} states, {})\n",
            c.checker,
            c.status.word(),
            c.detail,
            c.states,
            human_ms(c.elapsed_ms)
        ));
        for b in c.breaches.iter().take(SHOWN_BREACHES) {
            out.push_str(&format!(
                "      breach ({}–{} ms): {}\n",
                b.from_ms, b.to_ms, b.what
            ));
        }
        if c.breaches.len() > SHOWN_BREACHES {
            out.push_str(&format!(
                "      … and {} more (report.json lists them all)\n",
                c.breaches.len() - SHOWN_BREACHES
            ));
        }
    }
    out
}
