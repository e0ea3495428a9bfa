//! Availability as the monitor recorded it: every request through the border with its outcome
//! and time. Summaries and checks are pure functions of those samples, so a saved report can be
//! re-checked without a cluster.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
        // Ties go to the earlier outage, as above.
        if length > longest || longest_at.is_none() {
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

/// How a check over the history came out: merged as fail > unknown > pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    /// Enough evidence, and it holds.
    Passed,
    /// The evidence shows it does not hold.
    Failed,
    /// Nothing contradicts it, but there is too little evidence to say it holds.
    Unknown,
}

/// What a check was judged on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Samples in the window.
    pub samples: usize,
    /// The window's length, ms.
    pub window_ms: u64,
    /// The monitor's interval between requests, ms.
    pub interval_ms: u64,
    /// The longest stretch of the window with no request sent, ms (edges included).
    pub longest_gap_ms: u64,
    /// The least number of samples the check is judged on.
    pub min_samples: usize,
}

impl Evidence {
    /// Why this is too little to judge on, if it is: fewer samples than required, or a part of
    /// the window longer than two samples' share of it that no request covered.
    pub fn insufficient(&self) -> Option<String> {
        let window = format!("{:.2} s", self.window_ms as f64 / 1000.0);
        if self.samples < self.min_samples {
            return Some(format!(
                "{} samples over {window}; at least {} needed",
                self.samples, self.min_samples
            ));
        }
        let share = self.window_ms / self.min_samples.max(1) as u64;
        let allowed = (2 * share).max(2 * self.interval_ms);
        if self.longest_gap_ms > allowed {
            return Some(format!(
                "no request was sent for {} ms of the {window} window; at most {allowed} ms may go unsampled",
                self.longest_gap_ms
            ));
        }
        None
    }

    /// "31 samples over 3.05 s, one every 100 ms".
    pub fn describe(&self) -> String {
        format!(
            "{} samples over {:.2} s, one every {} ms",
            self.samples,
            self.window_ms as f64 / 1000.0,
            self.interval_ms
        )
    }
}

/// A check's outcome in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The check's name.
    pub name: String,
    /// Passed, failed, or unknown (too little evidence).
    pub status: CheckStatus,
    /// What was measured against what was required, and the evidence.
    pub detail: String,
    /// The target.
    pub target: String,
    /// The window, ms after the first step.
    pub from_ms: u64,
    /// The window's end.
    pub to_ms: u64,
    /// What was measured in it.
    pub measured: Availability,
    /// What it was judged on.
    pub evidence: Evidence,
}

/// The longest stretch of `[from_ms, to_ms]` with no sample sent in it.
fn longest_gap(times: &[u64], from_ms: u64, to_ms: u64) -> u64 {
    let mut last = from_ms;
    let mut gap = 0;
    for &t in times {
        gap = gap.max(t.saturating_sub(last));
        last = last.max(t);
    }
    gap.max(to_ms.saturating_sub(last))
}

/// The stretch of the run a check judges, ms after the first step, and whether the steps that
/// delimit it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Its start.
    pub from_ms: u64,
    /// Its end.
    pub to_ms: u64,
    /// Whether every step it names ran (a skipped one leaves it unjudged).
    pub reached: bool,
}

/// Evaluates a check against the samples in its window. A violation seen in the samples fails
/// it whatever their number; without one, it passes only on enough samples spread over the
/// window, and is `unknown` otherwise.
pub fn evaluate(
    check: &Check,
    samples: &[Sample],
    window: Window,
    interval: Duration,
) -> CheckReport {
    let Window {
        from_ms,
        to_ms,
        reached,
    } = window;
    let unreached = !reached;
    let measured = summarize(samples, &check.target, from_ms, to_ms);
    let times: Vec<u64> = samples
        .iter()
        .filter(|s| s.target == check.target && s.at_ms >= from_ms && s.at_ms <= to_ms)
        .map(|s| s.at_ms)
        .collect();
    let evidence = Evidence {
        samples: measured.requests,
        window_ms: to_ms.saturating_sub(from_ms),
        interval_ms: interval.as_millis() as u64,
        longest_gap_ms: longest_gap(&times, from_ms, to_ms),
        min_samples: check.min_samples,
    };
    let max_outage = check.max_outage.as_millis() as u64;
    let mut violations = Vec::new();
    // No request at all has a ratio of 1: it cannot fail this, only lack evidence below.
    if measured.ratio < check.min_ratio {
        violations.push(format!(
            "{:.1}% of requests succeeded, {:.1}% required",
            measured.ratio * 100.0,
            check.min_ratio * 100.0
        ));
    }
    if max_outage == 0 && measured.ok < measured.requests {
        violations.push(format!(
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
        violations.push(format!(
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
    let (status, why) = if !violations.is_empty() {
        (CheckStatus::Failed, violations.join("; "))
    } else if unreached {
        (
            CheckStatus::Unknown,
            "its window was never reached (a step it names did not run)".to_string(),
        )
    } else if let Some(short) = evidence.insufficient() {
        (
            CheckStatus::Unknown,
            format!("too little evidence: {short}"),
        )
    } else {
        (CheckStatus::Passed, String::new())
    };
    let detail = if why.is_empty() {
        format!("{summary} [{}]", evidence.describe())
    } else {
        format!("{summary}: {why} [{}]", evidence.describe())
    };
    CheckReport {
        name: check.name.clone(),
        status,
        detail,
        target: check.target.clone(),
        from_ms,
        to_ms,
        measured,
        evidence,
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

    fn check(max_outage_ms: u64, min_ratio: f64) -> Check {
        Check {
            name: "app".into(),
            target: "app".into(),
            from: None,
            to: None,
            min_ratio,
            max_outage: Duration::from_millis(max_outage_ms),
            min_samples: 20,
        }
    }

    const EVERY: Duration = Duration::from_millis(100);

    fn every_100ms(n: u64, failing: std::ops::Range<u64>) -> Vec<Sample> {
        (0..n)
            .map(|i| sample(i * 100, !failing.contains(&i)))
            .collect()
    }

    #[test]
    fn one_sample_is_too_little_evidence() {
        let r = evaluate(&check(0, 1.0), &[sample(10, true)], window(0, 50), EVERY);
        assert_eq!(r.status, CheckStatus::Unknown);
        assert_eq!(
            r.detail,
            "1/1 requests ok (100.0%), longest outage 0 ms: too little evidence: 1 samples over 0.05 s; at least 20 needed [1 samples over 0.05 s, one every 100 ms]"
        );
    }

    #[test]
    fn a_failure_fails_however_few_the_samples() {
        let r = evaluate(&check(0, 1.0), &[sample(10, false)], window(0, 50), EVERY);
        assert_eq!(r.status, CheckStatus::Failed);
        assert!(
            r.detail.contains("1 requests failed where none may"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn enough_samples_over_the_window_pass() {
        let samples = every_100ms(30, 0..0);
        let r = evaluate(&check(0, 1.0), &samples, window(0, 3000), EVERY);
        assert_eq!(r.status, CheckStatus::Passed, "{}", r.detail);
        assert_eq!(r.evidence.samples, 30);
        assert_eq!(r.evidence.longest_gap_ms, 100);
        assert_eq!(
            r.detail,
            "30/30 requests ok (100.0%), longest outage 0 ms [30 samples over 3.00 s, one every 100 ms]"
        );
    }

    #[test]
    fn a_window_with_an_unsampled_stretch_is_unknown() {
        // 30 samples, but none in the last 7 s of a 10 s window.
        let samples = every_100ms(30, 0..0);
        let r = evaluate(&check(0, 1.0), &samples, window(0, 10_000), EVERY);
        assert_eq!(r.status, CheckStatus::Unknown);
        assert!(
            r.detail
                .contains("no request was sent for 7100 ms of the 10.00 s window"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn min_samples_is_settable_per_check() {
        let samples = every_100ms(5, 0..0);
        let mut c = check(0, 1.0);
        c.min_samples = 5;
        assert_eq!(
            evaluate(&c, &samples, window(0, 500), EVERY).status,
            CheckStatus::Passed
        );
        c.min_samples = 6;
        assert_eq!(
            evaluate(&c, &samples, window(0, 500), EVERY).status,
            CheckStatus::Unknown
        );
    }

    #[test]
    fn an_outage_within_the_tolerance_passes_and_a_longer_one_fails() {
        let samples = every_100ms(40, 10..13);
        assert_eq!(
            evaluate(&check(300, 0.9), &samples, window(0, 4000), EVERY).status,
            CheckStatus::Passed
        );
        let r = evaluate(&check(299, 0.9), &samples, window(0, 4000), EVERY);
        assert_eq!(r.status, CheckStatus::Failed);
        assert!(
            r.detail
                .contains("an outage of 300 ms from 1000 ms, 299 ms allowed"),
            "{}",
            r.detail
        );
        let r = evaluate(&check(300, 0.95), &samples, window(0, 4000), EVERY);
        assert_eq!(r.status, CheckStatus::Failed);
        assert!(
            r.detail
                .contains("92.5% of requests succeeded, 95.0% required"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn the_longest_outage_is_reported_and_ties_go_to_the_earlier() {
        // Outages of 200 ms at 100, 300 ms at 500 and 300 ms at 1000 (open at the end).
        let samples: Vec<Sample> = [
            (0, true),
            (100, false),
            (300, true),
            (500, false),
            (800, true),
            (1000, false),
        ]
        .iter()
        .map(|&(at, ok)| sample(at, ok))
        .collect();
        let a = summarize(&samples, "app", 0, 1300);
        assert_eq!(
            (a.longest_outage_ms, a.longest_outage_at_ms),
            (300, Some(500))
        );
        // A later, longer outage replaces an earlier one, closed or still open.
        let a = summarize(&samples[..5], "app", 0, 900);
        assert_eq!(
            (a.longest_outage_ms, a.longest_outage_at_ms),
            (300, Some(500))
        );
        let a = summarize(&samples, "app", 0, 1400);
        assert_eq!(
            (a.longest_outage_ms, a.longest_outage_at_ms),
            (400, Some(1000))
        );
        // Two closed outages of one length: the earlier is reported.
        let tied: Vec<Sample> = [
            (0, true),
            (100, false),
            (300, true),
            (500, false),
            (700, true),
        ]
        .iter()
        .map(|&(at, ok)| sample(at, ok))
        .collect();
        let a = summarize(&tied, "app", 0, 800);
        assert_eq!(
            (a.longest_outage_ms, a.longest_outage_at_ms),
            (200, Some(100))
        );
        // An open outage shorter than an earlier one does not replace it.
        let a = summarize(&samples, "app", 0, 1100);
        assert_eq!(
            (a.longest_outage_ms, a.longest_outage_at_ms),
            (300, Some(500))
        );
    }

    fn evidence(samples: usize, window_ms: u64, interval_ms: u64, longest_gap_ms: u64) -> Evidence {
        Evidence {
            samples,
            window_ms,
            interval_ms,
            longest_gap_ms,
            min_samples: 20,
        }
    }

    #[test]
    fn an_unsampled_stretch_may_last_two_samples_share_of_the_window() {
        // 20 samples over 3 s: a share is 150 ms, so 300 ms may go unsampled (more than two
        // 100 ms intervals).
        assert_eq!(evidence(20, 3000, 100, 300).insufficient(), None);
        assert_eq!(evidence(20, 3000, 100, 250).insufficient(), None);
        assert_eq!(
            evidence(20, 3000, 100, 301).insufficient().as_deref(),
            Some("no request was sent for 301 ms of the 3.00 s window; at most 300 ms may go unsampled")
        );
        // Over a short window two intervals bound it instead: 1 s / 20 is 50 ms, but 200 ms
        // (two 100 ms intervals) may go unsampled.
        assert_eq!(evidence(20, 1000, 100, 150).insufficient(), None);
        assert_eq!(evidence(20, 1000, 100, 200).insufficient(), None);
        assert!(evidence(20, 1000, 100, 201).insufficient().is_some());
        assert!(evidence(19, 1000, 100, 0).insufficient().is_some());
    }

    #[test]
    fn another_targets_samples_do_not_cover_a_gap() {
        // The app was asked 20 times in the first 2 s of a 4 s window; another target all
        // along. Its last 2 s are unsampled whatever the other target saw.
        let mut samples = every_100ms(20, 0..0);
        samples.extend((0..40).map(|i| Sample {
            target: "other".into(),
            ..sample(i * 100, true)
        }));
        let r = evaluate(&check(0, 1.0), &samples, window(0, 4000), EVERY);
        assert_eq!(r.status, CheckStatus::Unknown, "{}", r.detail);
        assert_eq!((r.evidence.samples, r.evidence.longest_gap_ms), (20, 2100));
        // Samples before the window do not cover its start either.
        let r = evaluate(&check(0, 1.0), &samples, window(2000, 4000), EVERY);
        assert_eq!((r.evidence.samples, r.evidence.longest_gap_ms), (0, 2000));
    }

    fn window(from_ms: u64, to_ms: u64) -> Window {
        Window {
            from_ms,
            to_ms,
            reached: true,
        }
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

        /// A check passes only with no failed request (when none may fail) and with at least
        /// its minimum number of samples; a failed request always fails it.
        #[test]
        fn a_pass_needs_enough_samples_and_no_violation(
            oks in proptest::collection::vec(any::<bool>(), 0..60),
            step in 1u64..300,
            min_samples in 1usize..40,
        ) {
            let samples: Vec<Sample> = oks.iter().enumerate().map(|(i, ok)| sample(i as u64 * step, *ok)).collect();
            let end = oks.len() as u64 * step;
            let mut c = check(0, 1.0);
            c.min_samples = min_samples;
            let r = evaluate(&c, &samples, window(0, end), Duration::from_millis(step));
            let failed = oks.iter().filter(|o| !**o).count();
            match r.status {
                CheckStatus::Passed => {
                    prop_assert_eq!(failed, 0);
                    prop_assert!(oks.len() >= min_samples);
                }
                CheckStatus::Failed => prop_assert!(failed > 0),
                CheckStatus::Unknown => {
                    prop_assert_eq!(failed, 0);
                }
            }
            if failed > 0 {
                prop_assert_eq!(r.status, CheckStatus::Failed);
            }
        }
    }
}
