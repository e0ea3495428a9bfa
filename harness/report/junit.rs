//! JUnit XML, one test case per step, for CI systems that show test reports.

use std::fmt::Write as _;

use super::{Report, StepStatus};
use crate::availability::CheckStatus;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Renders a report as a JUnit test suite.
pub fn render_junit(report: &Report) -> String {
    let failures = report
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
        .count();
    let skipped = report
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Skipped)
        .count();
    let failures = failures
        + report
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Failed)
            .count();
    // A check with too little evidence to judge is an error: it neither passed nor failed.
    let errors = usize::from(report.error.is_some())
        + report
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Unknown)
            .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"{errors}\" time=\"{:.3}\">",
        escape(&report.scenario),
        report.steps.len() + report.checks.len(),
        report.duration_ms as f64 / 1000.0
    );
    for step in &report.steps {
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{:02} {}\" time=\"{:.3}\"",
            escape(&report.scenario),
            step.index,
            escape(&step.name),
            step.elapsed_ms as f64 / 1000.0
        );
        match step.status {
            StepStatus::Passed => out.push_str("/>\n"),
            StepStatus::Failed => {
                let _ = writeln!(
                    out,
                    ">\n    <failure message=\"{}\"/>\n  </testcase>",
                    escape(&step.detail)
                );
            }
            StepStatus::Skipped => out.push_str(">\n    <skipped/>\n  </testcase>\n"),
            // Failed on purpose and re-run: the step itself did what it should.
            StepStatus::Interrupted => {
                let _ = writeln!(
                    out,
                    ">\n    <system-out>{}</system-out>\n  </testcase>",
                    escape(&step.detail)
                );
            }
        }
    }
    for check in &report.checks {
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"check: {}\" time=\"0.000\"",
            escape(&report.scenario),
            escape(&check.name)
        );
        match check.status {
            CheckStatus::Passed => {
                let _ = writeln!(
                    out,
                    ">\n    <system-out>{}</system-out>\n  </testcase>",
                    escape(&check.detail)
                );
            }
            CheckStatus::Failed => {
                let _ = writeln!(
                    out,
                    ">\n    <failure message=\"{}\"/>\n  </testcase>",
                    escape(&check.detail)
                );
            }
            CheckStatus::Unknown => {
                let _ = writeln!(
                    out,
                    ">\n    <error type=\"unknown\" message=\"{}\"/>\n  </testcase>",
                    escape(&check.detail)
                );
            }
        }
    }
    if let Some(error) = &report.error {
        let _ = writeln!(out, "  <system-err>{}</system-err>", escape(error));
    }
    out.push_str("</testsuite>\n");
    out
}
