//! A preflight as JUnit XML, for pipelines that show test reports: one test case per check,
//! grouped by service; a failed check is a failure, an unknown or unreachable one an error, a
//! skipped one skipped, and a warning passes with the warning in its output.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::checks::{Outcome, Preflight};

/// Why the JUnit report could not be written.
#[derive(Debug, thiserror::Error)]
#[error("failed to write the JUnit report: {0}")]
pub struct JunitError(#[from] quick_junit::SerializeError);

/// The preflight as a JUnit report.
pub fn render_junit(p: &Preflight) -> Result<String, JunitError> {
    let mut report = Report::new("succession preflight");
    let mut suites: Vec<TestSuite> = Vec::new();
    for check in &p.checks {
        let mut status = match check.outcome {
            Outcome::Pass | Outcome::Warn => TestCaseStatus::success(),
            Outcome::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
            Outcome::Unknown | Outcome::Unreachable => {
                TestCaseStatus::non_success(NonSuccessKind::Error)
            }
            Outcome::Skip => TestCaseStatus::skipped(),
        };
        status.set_message(check.evidence.clone());
        status.set_type(check.outcome.word());
        let mut case = TestCase::new(check.check.clone(), status);
        case.set_classname(format!("preflight.{}", check.service));
        // The evidence of every check, passed ones too: what was seen is the point.
        case.set_system_out(format!("{}: {}", check.outcome.word(), check.evidence));
        match suites.iter_mut().find(|s| s.name.as_str() == check.service) {
            Some(suite) => {
                suite.add_test_case(case);
            }
            None => {
                let mut suite = TestSuite::new(check.service.clone());
                suite.add_test_case(case);
                suites.push(suite);
            }
        }
    }
    report.add_test_suites(suites);
    Ok(report.to_string()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;
    use crate::preflight::checks::Check;
    use crate::preflight::{exit_of, verdict_of};

    fn check(service: &str, name: &str, outcome: Outcome, evidence: &str) -> Check {
        Check {
            service: service.to_string(),
            check: name.to_string(),
            outcome,
            evidence: evidence.to_string(),
        }
    }

    fn preflight(checks: Vec<Check>) -> Preflight {
        Preflight {
            inventory: "cell.toml".to_string(),
            cell: Some("cell-1".to_string()),
            checks,
            zookeeper_ids: None,
            unreachable: Vec::new(),
            allow_warnings: false,
        }
    }

    #[test]
    fn each_outcome_exits_by_the_worst_and_warnings_pass_only_when_allowed() {
        let pass = check("etcd", "alarms", Outcome::Pass, "none");
        let warn = check("etcd", "database size", Outcome::Warn, "85 % of the quota");
        let unknown = check(
            "zookeeper",
            "four-letter words",
            Outcome::Unknown,
            "mntr refused",
        );
        let fail = check(
            "etcd",
            "key-value hashes agree",
            Outcome::Fail,
            "quorum-3 differs",
        );
        let mut p = preflight(vec![pass.clone()]);
        assert_eq!((exit_of(&p), verdict_of(&p)), (Exit::Pass, "pass"));
        p.checks.push(warn.clone());
        assert_eq!((exit_of(&p), verdict_of(&p)), (Exit::Warnings, "warn"));
        p.allow_warnings = true;
        assert_eq!(
            (exit_of(&p), verdict_of(&p)),
            (Exit::Pass, "pass-with-warnings")
        );
        p.checks.push(unknown);
        assert_eq!((exit_of(&p), verdict_of(&p)), (Exit::Unknown, "unknown"));
        p.checks.push(fail);
        assert_eq!((exit_of(&p), verdict_of(&p)), (Exit::CheckFailed, "fail"));
        p.unreachable
            .push("quorum-2 (etcd): connection refused".to_string());
        assert_eq!(exit_of(&p), Exit::Environment);
    }

    #[test]
    fn the_junit_report_has_a_case_per_check_by_service() {
        let p = preflight(vec![
            check("etcd", "alarms", Outcome::Pass, "none raised"),
            check(
                "etcd",
                "database size",
                Outcome::Warn,
                "quorum-1: 1.7 GB of 2.0 GB (85 %)",
            ),
            check(
                "etcd",
                "key-value hashes agree",
                Outcome::Fail,
                "quorum-3 <differs> & more",
            ),
            check(
                "zookeeper",
                "four-letter words",
                Outcome::Unknown,
                "mntr is not allowed",
            ),
            check("neighbours", "no stale entries", Outcome::Skip, "no exec"),
        ]);
        let xml = render_junit(&p).expect("serializes");
        insta::assert_snapshot!(xml);
    }
}
