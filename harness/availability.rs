//! Availability as the monitor recorded it: every request through the border with its outcome
//! and time. Summaries and checks are pure functions of those samples, so a saved report can be
//! re-checked without a cluster.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::report::{StepReport, StepStatus};
use crate::spec::Check;

/// One request of the availability monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Which target (`app`, `mesos`, `marathon`).
    pub target: String,
    /// When it was sent, ms after the first step started.
    pub at_ms: u64,
    /// Whether it got the expected answer.
    pub ok: bool,
    /// How long it took.
    pub latency_ms: u64,
    /// The status code, or why there was none.
    pub outcome: String,
}

/// A failed request, as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// When it was sent.
    pub at_ms: u64,
    /// What came back instead.
    pub outcome: String,
}

/// The availability of one target over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    /// Requests sent.
    pub requests: usize,
    /// Requests that got the expected answer.
    pub ok: usize,
    /// ok / requests (1.0 when none were sent).
    pub ratio: f64,
    /// The longest run of failed requests, from its first failure to the next success.
    pub longest_outage_ms: u64,
    /// When that outage began (ms after the first step).
    pub longest_outage_at_ms: Option<u64>,
    /// The first failures (at most 20).
    pub failures: Vec<Failure>,
}

/// Summarizes one target's samples sent within `[from_ms, to_ms]`.
pub fn summarize(samples: &[Sample], target: &str, from_ms: u64, to_ms: u64) -> Availability {
    let mut window: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.target == target && s.at_ms >= from_ms && s.at_ms <= to_ms)
        .collect();
    window.sort_by_key(|s| s.at_ms);
    let requests = window.len();
    let ok = window.iter().filter(|s| s.ok).count();
    let mut longest = 0u64;
    let mut longest_at = None;
    let mut run_start: Option<u64> = None;
    for s in &window {
        match (s.ok, run_start) {
            (false, None) => run_start = Some(s.at_ms),
            (true, Some(start)) => {
                let length = s.at_ms - start;
                if length > longest || longest_at.is_none() {
                    longest = length;
                    longest_at = Some(start);
                }
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(start) = run_start {
        // Still failing when the window closed.
        let length = to_ms.max(start) - start;
        if length >= longest || longest_at.is_none() {
            longest = length;
            longest_at = Some(start);
        }
    }
    Availability {
        requests,
        ok,
        ratio: if requests == 0 {
            1.0
        } else {
            ok as f64 / requests as f64
        },
        longest_outage_ms: longest,
        longest_outage_at_ms: longest_at,
        failures: window
            .iter()
            .filter(|s| !s.ok)
            .take(20)
            .map(|s| Failure {
                at_ms: s.at_ms,
                outcome: s.outcome.clone(),
            })
            .collect(),
    }
}

/// A check's outcome in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The check's name.
    pub name: String,
    /// Passed or failed.
    pub status: StepStatus,
    /// What was measured against what was required.
    pub detail: String,
    /// The target.
    pub target: String,
    /// The window, ms after the first step.
    pub from_ms: u64,
    /// The window's end.
    pub to_ms: u64,
    /// What was measured in it.
    pub measured: Availability,
}

/// Evaluates a check against the samples and the steps that delimit its window.
pub fn evaluate(
    check: &Check,
    samples: &[Sample],
    steps: &[StepReport],
    run_end_ms: u64,
) -> CheckReport {
    let step = |name: &Option<String>| {
        name.as_ref()
            .and_then(|n| steps.iter().find(|s| &s.name == n))
    };
    let from_ms = step(&check.from).map(|s| s.started_ms).unwrap_or(0);
    let to_ms = step(&check.to)
        .map(|s| s.started_ms + s.elapsed_ms)
        .unwrap_or(run_end_ms);
    let unreached = [&check.from, &check.to]
        .iter()
        .filter_map(|n| step(n))
        .any(|s| s.status == StepStatus::Skipped);
    let measured = summarize(samples, &check.target, from_ms, to_ms);
    let max_outage = check.max_outage.as_millis() as u64;
    let mut problems = Vec::new();
    if unreached {
        problems.push("its window was never reached (a step it names was skipped)".to_string());
    }
    if measured.requests == 0 && !unreached {
        problems.push("no request was sent in its window".to_string());
    }
    if measured.ratio < check.min_ratio {
        problems.push(format!(
            "{:.1}% of requests succeeded, {:.1}% required",
            measured.ratio * 100.0,
            check.min_ratio * 100.0
        ));
    }
    if max_outage == 0 && measured.ok < measured.requests {
        problems.push(format!(
            "{} requests failed where none may (first at {} ms: {})",
            measured.requests - measured.ok,
            measured.failures.first().map(|f| f.at_ms).unwrap_or(0),
            measured
                .failures
                .first()
                .map(|f| f.outcome.as_str())
                .unwrap_or("")
        ));
    } else if measured.longest_outage_ms > max_outage {
        problems.push(format!(
            "an outage of {} ms from {} ms, {} ms allowed",
            measured.longest_outage_ms,
            measured.longest_outage_at_ms.unwrap_or(0),
            max_outage
        ));
    }
    let summary = format!(
        "{}/{} requests ok ({:.1}%), longest outage {} ms",
        measured.ok,
        measured.requests,
        measured.ratio * 100.0,
        measured.longest_outage_ms
    );
    CheckReport {
        name: check.name.clone(),
        status: if problems.is_empty() {
            StepStatus::Passed
        } else {
            StepStatus::Failed
        },
        detail: if problems.is_empty() {
            summary
        } else {
            format!("{summary}: {}", problems.join("; "))
        },
        target: check.target.clone(),
        from_ms,
        to_ms,
        measured,
    }
}

/// How long a tolerated outage may be, in a sentence for people.
pub fn describe_tolerance(max_outage: Duration) -> String {
    if max_outage.is_zero() {
        "no failed request".to_string()
    } else {
        format!("outages up to {} ms", max_outage.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(at_ms: u64, ok: bool) -> Sample {
        Sample {
            target: "app".into(),
            at_ms,
            ok,
            latency_ms: 1,
            outcome: if ok {
                "200".into()
            } else {
                "connection refused".into()
            },
        }
    }

    #[test]
    fn an_outage_lasts_from_the_first_failure_to_the_next_success() {
        let samples: Vec<Sample> = (0..10)
            .map(|i| sample(i * 100, !(3..6).contains(&i)))
            .collect();
        let a = summarize(&samples, "app", 0, 1000);
        assert_eq!((a.requests, a.ok), (10, 7));
        assert_eq!(a.longest_outage_ms, 300);
        assert_eq!(a.longest_outage_at_ms, Some(300));
        assert_eq!(a.failures.len(), 3);
    }

    #[test]
    fn an_outage_still_open_runs_to_the_window_end() {
        let samples = vec![sample(0, true), sample(100, false), sample(200, false)];
        assert_eq!(summarize(&samples, "app", 0, 500).longest_outage_ms, 400);
    }

    proptest! {
        #[test]
        fn summaries_stay_within_their_window(oks in proptest::collection::vec(any::<bool>(), 0..200), step in 1u64..500) {
            let samples: Vec<Sample> = oks.iter().enumerate().map(|(i, ok)| sample(i as u64 * step, *ok)).collect();
            let end = oks.len() as u64 * step;
            let a = summarize(&samples, "app", 0, end);
            prop_assert!(a.ratio >= 0.0 && a.ratio <= 1.0);
            prop_assert!(a.longest_outage_ms <= end);
            prop_assert_eq!(a.requests, oks.len());
            if oks.iter().all(|o| *o) {
                prop_assert_eq!(a.longest_outage_ms, 0);
                prop_assert_eq!(a.longest_outage_at_ms, None);
            }
            if oks.iter().any(|o| !*o) {
                prop_assert!(a.longest_outage_at_ms.is_some());
            }
        }
    }
}
