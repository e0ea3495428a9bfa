//! Many runs at once, for nightly pipelines: the pass rate of each scenario on each provider,
//! the medians and spreads of its measured figures and outages, what its ledger lost, and one
//! HTML index linking every run's timeline. Pure over the reports it is given.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Report, Verdict};
use crate::base::time::human_ms;

/// Median, spread and extremes of one figure over runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    /// How many runs measured it.
    pub runs: usize,
    /// Smallest, ms.
    pub min: u64,
    /// Median, ms (the upper one of an even count).
    pub median: u64,
    /// Largest, ms.
    pub max: u64,
}

impl Spread {
    fn of(mut values: Vec<u64>) -> Option<Self> {
        values.sort_unstable();
        Some(Self {
            runs: values.len(),
            min: *values.first()?,
            median: values[values.len() / 2],
            max: *values.last()?,
        })
    }
}

/// One scenario on one provider over every run of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioSummary {
    /// The scenario.
    pub scenario: String,
    /// The provider.
    pub provider: String,
    /// Runs.
    pub runs: usize,
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Could not be judged.
    pub unknown: usize,
    /// passed / runs.
    pub pass_rate: f64,
    /// Each measured figure (re-elections…).
    pub figures: BTreeMap<String, Spread>,
    /// Each target's longest outage.
    pub outages: BTreeMap<String, Spread>,
    /// Acknowledged writes the ledger found lost, beyond and within what the scenario
    /// tolerates, over all runs.
    pub ledger_lost: u64,
    /// Lost as tolerated.
    pub ledger_lost_tolerated: u64,
}

/// One run in the index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEntry {
    /// Its report directory, relative to the summary's.
    pub dir: String,
    /// The scenario.
    pub scenario: String,
    /// The provider.
    pub provider: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Its length, ms.
    pub duration_ms: u64,
    /// Why it could not be judged, when it could not.
    pub error: Option<String>,
}

/// Every run under a directory, summed up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The worst verdict of any run.
    pub verdict: Verdict,
    /// Per scenario and provider.
    pub scenarios: Vec<ScenarioSummary>,
    /// Every run.
    pub runs: Vec<RunEntry>,
}

/// `report.json` files under a directory, each with its directory relative to it, in order.
pub fn find_reports(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|n| n == "report.json") {
                found.push(dir.clone());
            }
        }
    }
    found.sort();
    found
}

impl Summary {
    /// Sums up runs, each given with its directory relative to the summary's.
    pub fn of(runs: &[(String, Report)]) -> Self {
        let mut groups: BTreeMap<(String, String), Vec<&Report>> = BTreeMap::new();
        for (_, r) in runs {
            groups
                .entry((r.scenario.clone(), r.provider.clone()))
                .or_default()
                .push(r);
        }
        let scenarios = groups
            .into_iter()
            .map(|((scenario, provider), reports)| {
                let count = |v: Verdict| reports.iter().filter(|r| r.verdict == v).count();
                let mut figures: BTreeMap<String, Vec<u64>> = BTreeMap::new();
                let mut outages: BTreeMap<String, Vec<u64>> = BTreeMap::new();
                let (mut lost, mut tolerated) = (0, 0);
                for r in &reports {
                    for (name, ms) in &r.measurements {
                        figures.entry(name.clone()).or_default().push(*ms);
                    }
                    for (target, a) in &r.availability {
                        outages
                            .entry(target.clone())
                            .or_default()
                            .push(a.longest_outage_ms);
                    }
                    if let Some(l) = &r.ledger {
                        lost += l.phases.iter().map(|p| p.lost).sum::<u64>();
                        tolerated += l.phases.iter().map(|p| p.lost_tolerated).sum::<u64>();
                    }
                }
                let spreads = |m: BTreeMap<String, Vec<u64>>| {
                    m.into_iter()
                        .filter_map(|(k, v)| Spread::of(v).map(|s| (k, s)))
                        .collect()
                };
                let passed = count(Verdict::Pass);
                ScenarioSummary {
                    scenario,
                    provider,
                    runs: reports.len(),
                    passed,
                    failed: count(Verdict::Fail),
                    unknown: count(Verdict::Unknown),
                    pass_rate: passed as f64 / reports.len().max(1) as f64,
                    figures: spreads(figures),
                    outages: spreads(outages),
                    ledger_lost: lost,
                    ledger_lost_tolerated: tolerated,
                }
            })
            .collect();
        let verdict = runs
            .iter()
            .map(|(_, r)| r.verdict)
            .fold(Verdict::Pass, Verdict::merge);
        Self {
            verdict,
            scenarios,
            runs: runs
                .iter()
                .map(|(dir, r)| RunEntry {
                    dir: dir.clone(),
                    scenario: r.scenario.clone(),
                    provider: r.provider.clone(),
                    verdict: r.verdict,
                    duration_ms: r.duration_ms,
                    error: r.error.clone(),
                })
                .collect(),
        }
    }

    /// The text printed at the end of a pipeline.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for s in &self.scenarios {
            let _ = writeln!(
                out,
                "{:<32} {:<11} {}/{} passed ({:.0}%){}",
                s.scenario,
                s.provider,
                s.passed,
                s.runs,
                s.pass_rate * 100.0,
                if s.ledger_lost > 0 {
                    format!(", {} writes lost untolerated", s.ledger_lost)
                } else {
                    String::new()
                }
            );
            for (name, f) in &s.figures {
                let _ = writeln!(
                    out,
                    "    {name:<36} median {:>8}  ({} to {}, {} runs)",
                    human_ms(f.median),
                    human_ms(f.min),
                    human_ms(f.max),
                    f.runs
                );
            }
        }
        let _ = writeln!(out, "{} runs: {}", self.runs.len(), self.verdict.word());
        out
    }

    /// One HTML page: the table of scenarios and providers, and every run with its timeline.
    pub fn render_html(&self) -> String {
        let e = super::timeline::escape;
        let mut page = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>succession runs</title><style>body{font-family:sans-serif;margin:16px}table{border-collapse:collapse;margin-bottom:18px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}.Pass{color:#2a7d2a}.Fail{color:#c33}.Unknown{color:#b8860b}</style></head><body>\n",
        );
        let _ = writeln!(
            page,
            "<h1>succession runs: <span class=\"{:?}\">{}</span></h1>",
            self.verdict,
            self.verdict.word()
        );
        page.push_str("<table><tr><th>scenario</th><th>provider</th><th>passed</th><th>figures (median, min–max)</th><th>longest outages (median, max)</th><th>ledger lost (untolerated / tolerated)</th></tr>\n");
        for s in &self.scenarios {
            let figures: Vec<String> = s
                .figures
                .iter()
                .map(|(n, f)| {
                    format!(
                        "{}: {} ({}–{})",
                        e(n),
                        human_ms(f.median),
                        human_ms(f.min),
                        human_ms(f.max)
                    )
                })
                .collect();
            let outages: Vec<String> = s
                .outages
                .iter()
                .map(|(t, f)| format!("{}: {} ({})", e(t), human_ms(f.median), human_ms(f.max)))
                .collect();
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}/{} ({:.0}%)</td><td>{}</td><td>{}</td><td>{} / {}</td></tr>",
                e(&s.scenario),
                e(&s.provider),
                s.passed,
                s.runs,
                s.pass_rate * 100.0,
                figures.join("<br>"),
                outages.join("<br>"),
                s.ledger_lost,
                s.ledger_lost_tolerated
            );
        }
        page.push_str("</table>\n<table><tr><th>run</th><th>scenario</th><th>provider</th><th>verdict</th><th>length</th><th>links</th></tr>\n");
        for r in &self.runs {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{:?}\">{:?}{}</td><td>{}</td><td><a href=\"{}/timeline.html\">timeline</a> · <a href=\"{}/report.json\">report</a> · <a href=\"{}/junit.xml\">JUnit</a></td></tr>",
                e(&r.dir),
                e(&r.scenario),
                e(&r.provider),
                r.verdict,
                r.verdict,
                r.error.as_deref().map(|x| format!(": {}", e(x))).unwrap_or_default(),
                human_ms(r.duration_ms),
                e(&r.dir),
                e(&r.dir),
                e(&r.dir)
            );
        }
        page.push_str("</table></body></html>\n");
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(scenario: &str, provider: &str, verdict: Verdict, reelection: u64) -> Report {
        let mut r: Report = serde_json::from_str(include_str!(
            "../../tests/fixtures/timeline/quorum-destroy-restore/report.json"
        ))
        .expect("the recorded report");
        r.scenario = scenario.into();
        r.provider = provider.into();
        r.verdict = verdict;
        r.measurements = [("etcd re-election".to_string(), reelection)].into();
        r
    }

    #[test]
    fn runs_are_grouped_by_scenario_and_provider_with_their_spreads() {
        let runs = vec![
            ("a/1".to_string(), report("q", "local", Verdict::Pass, 900)),
            ("a/2".to_string(), report("q", "local", Verdict::Fail, 1500)),
            ("a/3".to_string(), report("q", "local", Verdict::Pass, 1100)),
            (
                "b/1".to_string(),
                report("q", "containers", Verdict::Pass, 700),
            ),
        ];
        let s = Summary::of(&runs);
        assert_eq!(s.verdict, Verdict::Fail);
        assert_eq!(s.scenarios.len(), 2);
        let local = s
            .scenarios
            .iter()
            .find(|x| x.provider == "local")
            .expect("local");
        assert_eq!((local.runs, local.passed, local.failed), (3, 2, 1));
        assert!((local.pass_rate - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(
            local.figures["etcd re-election"],
            Spread {
                runs: 3,
                min: 900,
                median: 1100,
                max: 1500
            }
        );
        let html = s.render_html();
        assert!(html.contains("<a href=\"a/2/timeline.html\">timeline</a>"));
        assert!(s.render_text().contains("4 runs: FAIL"));
    }

    #[test]
    fn an_unknown_run_is_not_a_pass() {
        let runs = vec![
            ("1".to_string(), report("q", "local", Verdict::Pass, 1)),
            ("2".to_string(), report("q", "local", Verdict::Unknown, 1)),
        ];
        assert_eq!(Summary::of(&runs).verdict, Verdict::Unknown);
    }
}
