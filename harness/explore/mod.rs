//! `succession explore`: seeded random fault schedules, each run on a fresh cluster with the
//! invariants checked all along; a failing schedule is shrunk live — fewer faults, shorter
//! holds, simpler kinds and targets — keeping a smaller candidate only when it breaks the same
//! invariant, and the smallest is written as a scenario file that `succession run` replays.
//!
//! Schedules come from proptest strategies (`schedule.rs`) drawn with a generator seeded from
//! the explore seed and the run's number; shrinking walks proptest's value tree, each candidate
//! run on the cluster rather than in memory.

mod options;
mod outcome;
pub mod schedule;

pub use options::ExploreOptions;
pub use outcome::{ExploreError, ExploreOutcome, Finding};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::base::progress::Progress;
use crate::exit::Exit;
use crate::provider::Provider;
use crate::report::{Explored, Quiet, Report};
use crate::service::ServiceKind;
use crate::session::{self, RunError, RunOptions};
use crate::source::InputError;
use crate::spec::{Topology, WorkloadSettings};
use schedule::{Broken, Checks, Fault, Space};

/// The topology a target names: the file itself, or a scenario's `topology`.
pub fn topology_of(target: &Path) -> Result<Topology, InputError> {
    Ok(target_of(target)?.0)
}

/// The topology a target names, and the `[workload]` of a scenario that has one.
fn target_of(target: &Path) -> Result<(Topology, Option<WorkloadSettings>), InputError> {
    let text = std::fs::read_to_string(target).unwrap_or_default();
    let is_scenario = toml::from_str::<toml::Table>(&text)
        .map(|t| t.contains_key("topology") && !t.contains_key("role"))
        .unwrap_or(false);
    if is_scenario {
        let scenario = crate::scenario::Scenario::load(target, None)?;
        Ok((scenario.topology, scenario.workload))
    } else {
        Ok((Topology::load(target)?, None))
    }
}

/// The faults' space and the checks every schedule runs with, from the topology.
fn setup(
    options: &ExploreOptions,
    topology: &Topology,
    workload: Option<WorkloadSettings>,
) -> Result<(Space, Checks), InputError> {
    let runs = |s: ServiceKind| !topology.nodes_running(s).is_empty();
    let services: Vec<ServiceKind> = [ServiceKind::Etcd, ServiceKind::Zookeeper]
        .into_iter()
        .filter(|s| runs(*s))
        .collect();
    if services.is_empty() {
        return Err(InputError::about_file(
            &topology.file,
            "the topology runs neither etcd nor ZooKeeper: explore has no leaders to fault",
        ));
    }
    let members = services
        .iter()
        .map(|s| (*s, topology.nodes_running(*s).len()))
        .collect();
    let availability = if runs(ServiceKind::Ingress) && runs(ServiceKind::App) {
        vec!["app".to_string()]
    } else {
        Vec::new()
    };
    let topology_file = std::fs::canonicalize(&topology.file).unwrap_or(topology.file.clone());
    Ok((
        Space {
            services: services.clone(),
            max_faults: options.max_faults,
            hold_ms: options.hold_ms.0..=options.hold_ms.1.max(options.hold_ms.0),
            max_down: options.max_down.unwrap_or(Space::minority(&members)).max(1),
            members,
            faulty_disks: topology
                .settings
                .faulty_disk
                .iter()
                .copied()
                .filter(|s| services.contains(s))
                .collect(),
        },
        Checks {
            topology: topology_file,
            watched: services,
            leader_within: options.leader_within,
            ledger: runs(ServiceKind::Etcd),
            // The workload talks to etcd and ZooKeeper; a scenario's own settings (a faster
            // rate, say) win.
            workload: (runs(ServiceKind::Etcd) || runs(ServiceKind::Zookeeper))
                .then(|| workload.unwrap_or_default()),
            availability,
            min_availability: options.min_availability,
        },
    ))
}

/// A proptest runner whose generator is fixed by the explore seed and the run's number.
fn runner_for(seed: u64, run: usize) -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&(run as u64).to_le_bytes());
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// The seed a run's cluster uses (picks by role, the ledger's values).
fn run_seed(seed: u64, run: usize) -> u64 {
    let mut rng = crate::rng::SeededRng::new(seed ^ (run as u64).wrapping_mul(0x9E37_79B9));
    rng.next_u64()
}

struct Attempt {
    broken: Option<Broken>,
    /// Nothing broke, but some check had too little evidence to be judged.
    inconclusive: bool,
    dir: PathBuf,
}

impl Attempt {
    /// The run's outcome in a few words.
    fn verdict(&self) -> String {
        match (&self.broken, self.inconclusive) {
            (Some(b), _) => format!("FAILED: {}", b.describe()),
            (None, true) => format!(
                "INCONCLUSIVE: a check had too little evidence (report: {})",
                self.dir.display()
            ),
            (None, false) => "every invariant held".to_string(),
        }
    }
}

struct Explorer<'a, P: Provider> {
    provider: &'a P,
    options: &'a ExploreOptions,
    checks: Checks,
    say: &'a dyn Fn(&str),
    progress: Progress,
    started: Instant,
    runs: usize,
    failures: usize,
    inconclusive: usize,
    shrink_runs: usize,
    /// Schedules already run in this shrink, by their description: the tree often offers the
    /// same candidate again after a step back.
    tried: BTreeMap<String, Option<Broken>>,
}

impl<P: Provider> Explorer<'_, P> {
    fn over_budget(&self) -> bool {
        self.started.elapsed() >= self.options.budget
    }

    fn status(&self, doing: &str) {
        self.progress.message(format!(
            "explore: {} runs, {} failures, {} shrink steps — {doing}",
            self.runs, self.failures, self.shrink_runs
        ));
    }

    /// Runs one schedule on a fresh cluster.
    async fn attempt(
        &mut self,
        label: &str,
        faults: &[Fault],
        seed: u64,
        header: Vec<String>,
    ) -> Result<Attempt, ExploreError> {
        let dir = self.options.out.join(label);
        std::fs::create_dir_all(&dir).map_err(|source| ExploreError::Write {
            path: dir.clone(),
            source,
        })?;
        let name = format!("explore-{}-{label}", self.options.seed);
        let (text, origins) = schedule::render(&name, &header, faults, &self.checks, seed);
        let path = schedule::scenario_path(&dir);
        std::fs::write(&path, &text).map_err(|source| ExploreError::Write {
            path: path.clone(),
            source,
        })?;
        let options = RunOptions {
            scenario: path.clone(),
            report_dir: Some(dir.clone()),
            seed: Some(seed),
            ..RunOptions::default()
        };
        let outcome = session::run(self.provider, &options, &Quiet)
            .await
            .map_err(|e| match e {
                RunError::Input(e) => ExploreError::Input(e),
            })?;
        if outcome.exit == Exit::Interrupted {
            return Err(ExploreError::Interrupted {
                run: label.to_string(),
            });
        }
        if outcome.exit == Exit::Environment {
            return Err(ExploreError::Environment {
                run: label.to_string(),
                why: outcome.report.error.clone().unwrap_or_default(),
                report: dir,
            });
        }
        let broken = schedule::broken(&outcome.report, &origins);
        let inconclusive = broken.is_none() && outcome.exit != Exit::Pass;
        let mut report: Report = outcome.report;
        report.explored = Some(Explored {
            seed: self.options.seed,
            run: label.to_string(),
            schedule: faults.iter().map(Fault::describe).collect(),
            broken: broken.as_ref().map(Broken::describe),
        });
        report.write(&dir).map_err(|source| ExploreError::Write {
            path: dir.join("report.json"),
            source,
        })?;
        Ok(Attempt {
            broken,
            inconclusive,
            dir,
        })
    }

    /// What the search came to.
    fn outcome(&self, finding: Option<Finding>, budget_spent: bool) -> ExploreOutcome {
        ExploreOutcome {
            runs: self.runs,
            shrink_runs: self.shrink_runs,
            finding,
            budget_spent,
            inconclusive: self.inconclusive,
        }
    }

    /// Shrinks a failing schedule found in run `run` and writes the smallest as a scenario
    /// that replays it.
    async fn minimal(
        &mut self,
        tree: impl ValueTree<Value = Vec<Fault>>,
        broken: Broken,
        (faults, found_dir): (Vec<Fault>, PathBuf),
        seed: u64,
        run: usize,
    ) -> Result<Finding, ExploreError> {
        let (shrunk, dir) = self
            .shrink(tree, &broken, (faults.clone(), found_dir), seed)
            .await?;
        let minimal = self.options.out.join("minimal.toml");
        let header = self.header(
            &format!(
                "the smallest schedule found that breaks \"{}\" (from run {run})",
                broken.describe()
            ),
            &shrunk,
        );
        let name = format!("explore-{}-minimal", self.options.seed);
        let (text, _) = schedule::render(&name, &header, &shrunk, &self.checks, seed);
        std::fs::write(&minimal, text).map_err(|source| ExploreError::Write {
            path: minimal.clone(),
            source,
        })?;
        let replay = format!("succession run {} --seed {seed}", minimal.display());
        (self.say)(&format!(
            "explore: shrunk to {} fault(s) in {} live runs (report: {}); replay: {replay}",
            shrunk.len(),
            self.shrink_runs,
            dir.display()
        ));
        Ok(Finding {
            broken,
            found: faults,
            shrunk,
            scenario: minimal,
            seed,
            replay,
            shrink_runs: self.shrink_runs,
        })
    }

    fn header(&self, what: &str, faults: &[Fault]) -> Vec<String> {
        let mut lines = vec![format!(
            "Written by `succession explore` (seed {}): {what}.",
            self.options.seed
        )];
        lines.extend(
            faults
                .iter()
                .enumerate()
                .map(|(i, f)| format!("fault {}: {}", i + 1, f.describe())),
        );
        lines
    }

    /// Shrinks a failing schedule live; returns the smallest that broke `broken` the same way,
    /// its run directory and seed.
    async fn shrink(
        &mut self,
        mut tree: impl ValueTree<Value = Vec<Fault>>,
        broken: &Broken,
        best: (Vec<Fault>, PathBuf),
        seed: u64,
    ) -> Result<(Vec<Fault>, PathBuf), ExploreError> {
        self.tried.clear();
        self.tried
            .insert(format!("{:?}", best.0), Some(broken.clone()));
        let mut kept = vec![best.clone()];
        if tree.simplify() {
            self.walk(&mut tree, broken, &mut kept, seed).await?;
        }
        self.confirm(kept, broken, seed).await
    }

    /// The smallest kept schedule that fails the same way once more: near a threshold (a hold
    /// just long enough for an election) a candidate fails only sometimes, and a minimal
    /// scenario that does not replay is no use. Falls back, larger each time, to the first.
    async fn confirm(
        &mut self,
        mut kept: Vec<(Vec<Fault>, PathBuf)>,
        broken: &Broken,
        seed: u64,
    ) -> Result<(Vec<Fault>, PathBuf), ExploreError> {
        while kept.len() > 1 && !self.over_budget() {
            let Some((faults, dir)) = kept.pop() else {
                break;
            };
            self.shrink_runs += 1;
            let label = format!("confirm-{}", self.shrink_runs);
            let header = self.header(&format!("confirming {}", broken.describe()), &faults);
            let attempt = self.attempt(&label, &faults, seed, header).await?;
            let again = attempt.broken.as_ref() == Some(broken);
            (self.say)(&format!(
                "explore: confirming the smallest ({} fault(s)): {}",
                faults.len(),
                if again {
                    "fails the same way again"
                } else {
                    "passed this time; falling back to the next smallest"
                }
            ));
            if again {
                return Ok((faults, dir));
            }
        }
        Ok(kept.swap_remove(0))
    }

    /// Walks the value tree: simplify after a candidate that fails the same way, complicate
    /// after one that does not, each new candidate run live.
    async fn walk(
        &mut self,
        tree: &mut impl ValueTree<Value = Vec<Fault>>,
        broken: &Broken,
        kept: &mut Vec<(Vec<Fault>, PathBuf)>,
        seed: u64,
    ) -> Result<(), ExploreError> {
        let mut steps_here = 0;
        loop {
            if self.over_budget() || steps_here >= self.options.max_shrinks {
                (self.say)(&format!(
                    "explore: shrinking stopped ({}); the smallest so far has {} faults",
                    if self.over_budget() {
                        "budget spent"
                    } else {
                        "shrink limit reached"
                    },
                    kept.last().map(|k| k.0.len()).unwrap_or_default()
                ));
                return Ok(());
            }
            let candidate = tree.current();
            let key = format!("{candidate:?}");
            let result = match self.tried.get(&key) {
                Some(r) => r.clone(),
                None => {
                    steps_here += 1;
                    self.shrink_runs += 1;
                    self.status(&format!(
                        "shrink step {steps_here}: {} faults",
                        candidate.len()
                    ));
                    let label = format!("shrink-{}", self.shrink_runs);
                    let header = self.header(
                        &format!("shrink candidate for {}", broken.describe()),
                        &candidate,
                    );
                    let attempt = self.attempt(&label, &candidate, seed, header).await?;
                    (self.say)(&format!(
                        "explore: shrink step {steps_here}: {} fault(s) [{}] → {}",
                        candidate.len(),
                        candidate
                            .iter()
                            .map(Fault::describe)
                            .collect::<Vec<_>>()
                            .join("; "),
                        match &attempt.broken {
                            Some(b) if b == broken => "fails the same way".to_string(),
                            Some(b) => format!("fails otherwise ({}); not kept", b.describe()),
                            None => "passes".to_string(),
                        }
                    ));
                    if attempt.broken.as_ref() == Some(broken) {
                        kept.push((candidate.clone(), attempt.dir));
                    }
                    self.tried.insert(key, attempt.broken.clone());
                    attempt.broken
                }
            };
            let same = result.as_ref() == Some(broken);
            let more = if same {
                tree.simplify()
            } else {
                tree.complicate()
            };
            if !more {
                return Ok(());
            }
        }
    }
}

/// Explores: runs schedules until one fails or the runs or budget are spent; shrinks the
/// failure and writes `DIR/minimal.toml`; writes the outcome as `DIR/explore.json`.
pub async fn explore<P: Provider>(
    provider: &P,
    options: &ExploreOptions,
    say: &dyn Fn(&str),
) -> Result<ExploreOutcome, ExploreError> {
    let outcome = search(provider, options, say).await?;
    let path = options.out.join("explore.json");
    serde_json::to_string_pretty(&outcome)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(&path, json + "\n"))
        .map_err(|source| ExploreError::Write { path, source })?;
    Ok(outcome)
}

async fn search<P: Provider>(
    provider: &P,
    options: &ExploreOptions,
    say: &dyn Fn(&str),
) -> Result<ExploreOutcome, ExploreError> {
    let (topology, workload) = target_of(&options.target)?;
    let (space, checks) = setup(options, &topology, workload)?;
    std::fs::create_dir_all(&options.out).map_err(|source| ExploreError::Write {
        path: options.out.clone(),
        source,
    })?;
    let strategy = schedule::schedules(&space);
    let mut ex = Explorer {
        provider,
        options,
        checks,
        say,
        progress: Progress::spinner("explore"),
        started: Instant::now(),
        runs: 0,
        failures: 0,
        inconclusive: 0,
        shrink_runs: 0,
        tried: BTreeMap::new(),
    };
    say(&format!(
        "explore: topology {}, seed {}, up to {} runs within {}; faults on {}; leader within {} after each heal",
        topology.file.display(),
        options.seed,
        options.runs,
        humantime::format_duration(options.budget),
        space.services.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "),
        crate::base::time::human_ms(options.leader_within.as_millis() as u64)
    ));
    for run in 1..=options.runs {
        if ex.over_budget() {
            say(&format!("explore: budget spent after {} runs", ex.runs));
            return Ok(ex.outcome(None, true));
        }
        let mut runner = runner_for(options.seed, run);
        let tree = strategy.new_tree(&mut runner).map_err(|e| {
            InputError::about_file(&options.target, format!("no schedule could be drawn: {e}"))
        })?;
        let faults = tree.current();
        let seed = run_seed(options.seed, run);
        ex.status(&format!("run {run}: {} faults", faults.len()));
        let label = format!("run-{run}");
        let header = ex.header(&format!("run {run}"), &faults);
        let attempt = ex.attempt(&label, &faults, seed, header).await?;
        ex.runs += 1;
        say(&format!(
            "explore: run {run}/{}: {} → {}",
            options.runs,
            faults
                .iter()
                .map(Fault::describe)
                .collect::<Vec<_>>()
                .join("; "),
            attempt.verdict()
        ));
        ex.inconclusive += usize::from(attempt.inconclusive);
        let Some(broken) = attempt.broken else {
            continue;
        };
        ex.failures += 1;
        let finding = ex
            .minimal(tree, broken, (faults, attempt.dir), seed, run)
            .await?;
        return Ok(ex.outcome(Some(finding), false));
    }
    Ok(ex.outcome(None, false))
}

#[cfg(test)]
mod tests;
