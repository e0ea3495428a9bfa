use std::path::PathBuf;
use std::time::Duration;

use std::collections::BTreeMap;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::schedule::{self, bounded, Broken, Checks, Fault, FaultKind, Origin, Space};
use super::*;
use crate::report::{StepReport, StepStatus};
use crate::steps::chaos::Pick;

fn topology_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("topologies/cell.toml")
}

fn space() -> Space {
    Space {
        services: vec![ServiceKind::Etcd, ServiceKind::Zookeeper],
        max_faults: 4,
        hold_ms: 200..=3000,
        max_down: 2,
        members: [(ServiceKind::Etcd, 3), (ServiceKind::Zookeeper, 5)]
            .into_iter()
            .collect(),
        faulty_disks: Vec::new(),
    }
}

fn checks() -> Checks {
    Checks {
        topology: topology_path(),
        watched: vec![ServiceKind::Etcd, ServiceKind::Zookeeper],
        leader_within: Duration::from_secs(15),
        ledger: true,
        workload: Some(crate::spec::WorkloadSettings::default()),
        availability: vec!["app".into()],
        min_availability: 0.95,
    }
}

fn parse(text: &str) -> crate::scenario::Scenario {
    let source = crate::source::SourceFile::from_text("explored.toml", text);
    crate::scenario::Scenario::parse(&source, |_| Topology::load(&topology_path()))
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn a_schedule_renders_as_a_scenario_that_reads_back_step_for_step() {
    let faults = vec![
        Fault {
            kind: FaultKind::Kill,
            service: ServiceKind::Zookeeper,
            pick: Pick::Leader,
            hold_ms: 1200,
            overlaps_next: false,
        },
        Fault {
            kind: FaultKind::Loss,
            service: ServiceKind::Etcd,
            pick: Pick::Any,
            hold_ms: 500,
            overlaps_next: false,
        },
        Fault {
            kind: FaultKind::CrashRestart,
            service: ServiceKind::Etcd,
            pick: Pick::Follower,
            hold_ms: 800,
            overlaps_next: false,
        },
    ];
    let (text, origins) = schedule::render("x", &["a header".into()], &faults, &checks(), 7);
    assert!(text
        .contains("action = \"crash-restart-service\"\nservice = \"etcd\"\ntarget = \"follower\""));
    let scenario = parse(&text);
    assert_eq!(scenario.seed, Some(7));
    assert_eq!(scenario.steps.len(), origins.len());
    assert_eq!(
        scenario.one_leader_per_term,
        vec![ServiceKind::Etcd, ServiceKind::Zookeeper]
    );
    assert!(scenario.ledger.is_some());
    assert!(
        scenario.workload.is_some(),
        "explore runs the consistency workload with etcd"
    );
    assert_eq!(scenario.checks.len(), 1);
    assert_eq!(origins[0], Origin::Fault(1));
    assert_eq!(origins[3], Origin::LeaderAfterHeal(1, ServiceKind::Etcd));
    // Written without the topology path, which differs per machine.
    let shown: String = text
        .lines()
        .filter(|l| !l.starts_with("topology = "))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!(shown);
}

/// How many cases each property draws.
const CASES: u32 = 256;

/// Runs `property` on `CASES` values of `strategy` (after the seeds saved under
/// proptest-regressions, as `proptest!` does) and returns how many cases it accepted: found to
/// exercise what it claims, as it says by returning true. A property whose cases never reach
/// what it is about passes on nothing, so each caller requires a healthy number.
fn accepted<S: Strategy>(
    strategy: S,
    property: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) -> u32 {
    let accepted = std::cell::Cell::new(0);
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        source_file: Some(file!()),
        ..Config::default()
    });
    let outcome = runner.run(&strategy, |value| {
        if property(value)? {
            accepted.set(accepted.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    accepted.get()
}

/// The most members of a service of `n` a partition cuts off with its target: the largest
/// group still short of half, and at least the target itself.
fn minority_cut_off(n: usize) -> usize {
    (1..n).filter(|m| 2 * m < n).max().unwrap_or(1)
}

/// How many members of each service the faults in effect together may have down, recomputed
/// from the faults themselves rather than through `Space::takes_down`, which `bounded` uses. A
/// partition cuts off its service's minority, any other fault one member; a fault on a node
/// (isolating it, a partition, dropped packets) may reach every service that node runs, so it
/// counts against each, while killing or pausing a process counts against its own service only.
fn down_per_service(
    members: &BTreeMap<ServiceKind, usize>,
    in_effect: &[&Fault],
) -> BTreeMap<ServiceKind, usize> {
    members
        .iter()
        .map(|(&service, &n)| {
            let down: usize = in_effect
                .iter()
                .filter(|f| {
                    f.service == service || !matches!(f.kind, FaultKind::Kill | FaultKind::Pause)
                })
                .map(|f| match f.kind {
                    FaultKind::Partition => minority_cut_off(members[&f.service]),
                    _ => 1,
                })
                .sum();
            (service, down.min(n))
        })
        .collect()
}

#[test]
fn the_oracle_counts_node_faults_against_every_service_and_process_faults_against_their_own() {
    let members = space().members;
    let fault = |kind, service| Fault {
        kind,
        service,
        pick: Pick::Any,
        hold_ms: 500,
        overlaps_next: true,
    };
    let partition = fault(FaultKind::Partition, ServiceKind::Zookeeper);
    let kill = fault(FaultKind::Kill, ServiceKind::Etcd);
    let down = down_per_service(&members, &[&partition, &kill]);
    assert_eq!(down[&ServiceKind::Zookeeper], 2);
    assert_eq!(down[&ServiceKind::Etcd], 3);
    let down = down_per_service(&members, &[&kill]);
    assert_eq!(down[&ServiceKind::Zookeeper], 0);
    assert_eq!(
        (
            minority_cut_off(1),
            minority_cut_off(3),
            minority_cut_off(5)
        ),
        (1, 1, 2)
    );
}

#[test]
fn every_drawn_schedule_is_a_valid_scenario() {
    // Accepted: a schedule of several faults with some in effect together, where the steps
    // differ from one fault healed at a time.
    let accepted = accepted(proptest::num::u64::ANY, |seed| {
        let mut runner = runner_for(seed, 1);
        let faults = schedule::schedules(&space())
            .new_tree(&mut runner)
            .map_err(TestCaseError::fail)?
            .current();
        proptest::prop_assert!(!faults.is_empty() && faults.len() <= 4);
        let (text, origins) = schedule::render("x", &[], &faults, &checks(), seed);
        let scenario = parse(&text);
        proptest::prop_assert_eq!(scenario.steps.len(), origins.len());
        // Each fault is made and held; each healed one is healed and followed by a leader
        // expectation per watched service (two here); then the workload runs on to settle.
        let healed = faults.iter().filter(|f| !f.overlaps_next).count();
        proptest::prop_assert_eq!(scenario.steps.len(), faults.len() * 2 + healed * 3 + 1);
        Ok(healed < faults.len())
    });
    assert!(
        accepted >= CASES / 8,
        "only {accepted} of {CASES} drawn schedules had faults in effect together"
    );
}

#[test]
fn no_drawn_schedule_takes_more_down_at_once_than_the_bound() {
    let members = space().members;
    let smallest = members.values().copied().min().unwrap_or(1);
    // Accepted: faults in effect together, the only case in which the bound can be exceeded.
    let accepted = accepted((proptest::num::u64::ANY, 1usize..4), |(seed, max_down)| {
        let space = Space {
            max_down,
            ..space()
        };
        let faults = schedule::schedules(&space)
            .new_tree(&mut runner_for(seed, 1))
            .map_err(TestCaseError::fail)?
            .current();
        let mut in_effect: Vec<&Fault> = Vec::new();
        let mut overlapped = false;
        for f in &faults {
            in_effect.push(f);
            overlapped |= in_effect.len() > 1;
            for (service, down) in down_per_service(&members, &in_effect) {
                proptest::prop_assert!(
                    down <= max_down,
                    "{down} {service} members down at once, bound {max_down}: {faults:?}"
                );
                // Within a minority of the smallest service, a majority of each stays up.
                if 2 * max_down < smallest {
                    proptest::prop_assert!(
                        2 * down < members[&service],
                        "no majority of {service} up: {faults:?}"
                    );
                }
            }
            if !f.overlaps_next {
                in_effect.clear();
            }
        }
        // Whatever is in effect at the end is healed with the last fault.
        proptest::prop_assert!(in_effect.is_empty(), "{faults:?}");
        Ok(overlapped)
    });
    assert!(
        accepted >= CASES / 8,
        "only {accepted} of {CASES} drawn schedules had faults in effect together"
    );
}

#[test]
fn overlapping_faults_are_healed_together() {
    let fault = |overlaps_next| Fault {
        kind: FaultKind::Pause,
        service: ServiceKind::Zookeeper,
        pick: Pick::Follower,
        hold_ms: 1000,
        overlaps_next,
    };
    let (text, origins) = schedule::render("x", &[], &[fault(true), fault(false)], &checks(), 1);
    assert_eq!(
        origins,
        vec![
            Origin::Fault(1),
            Origin::Hold(1),
            Origin::Fault(2),
            Origin::Hold(2),
            Origin::Heal(2),
            Origin::LeaderAfterHeal(2, ServiceKind::Etcd),
            Origin::LeaderAfterHeal(2, ServiceKind::Zookeeper),
            Origin::Settle,
        ]
    );
    assert_eq!(parse(&text).steps.len(), origins.len());
    // The default bound is a minority of the smallest service: none of three may overlap.
    let members = [(ServiceKind::Etcd, 3), (ServiceKind::Zookeeper, 5)]
        .into_iter()
        .collect();
    assert_eq!(Space::minority(&members), 1);
    let space = Space {
        max_down: 1,
        ..space()
    };
    let bounded = schedule::bounded(&space, vec![fault(true), fault(true), fault(true)]);
    assert!(bounded.iter().all(|f| !f.overlaps_next));
}

#[test]
fn one_seed_draws_one_schedule_and_runs_draw_different_ones() {
    let draw = |seed, run| {
        schedule::schedules(&space())
            .new_tree(&mut runner_for(seed, run))
            .unwrap()
            .current()
    };
    assert_eq!(draw(42, 1), draw(42, 1));
    assert_ne!(draw(42, 1), draw(42, 2));
    assert_eq!(run_seed(42, 3), run_seed(42, 3));
    assert_ne!(run_seed(42, 3), run_seed(42, 4));
}

#[test]
fn shrinking_reaches_one_fault_with_the_shortest_hold_and_the_simplest_kind() {
    // As the explorer walks the tree when every candidate fails the same way.
    let mut tree = schedule::schedules(&space())
        .new_tree(&mut runner_for(9, 1))
        .unwrap();
    while tree.simplify() {}
    let simplest = tree.current();
    assert_eq!(
        simplest,
        vec![Fault {
            kind: FaultKind::Kill,
            service: ServiceKind::Etcd,
            pick: Pick::Leader,
            hold_ms: 200,
            overlaps_next: false,
        }]
    );
}

fn step(index: usize, name: &str, status: StepStatus) -> StepReport {
    StepReport::of(index, name, false, status, 0, 0, String::new())
}

#[test]
fn a_failure_is_classed_by_the_step_it_came_from() {
    let faults = vec![Fault {
        kind: FaultKind::Pause,
        service: ServiceKind::Zookeeper,
        pick: Pick::Leader,
        hold_ms: 300,
        overlaps_next: false,
    }];
    let (_, origins) = schedule::render("x", &[], &faults, &checks(), 1);
    let mut report: crate::report::Report = serde_json::from_str(include_str!(
        "../../tests/fixtures/timeline/quorum-destroy-restore/report.json"
    ))
    .expect("a recorded report");
    report.checks.clear();
    report.steps = vec![
        step(1, "fault 1", StepStatus::Passed),
        step(2, "hold", StepStatus::Passed),
        step(3, "heal", StepStatus::Passed),
        step(4, "after: etcd", StepStatus::Passed),
        step(5, "after: zookeeper", StepStatus::Failed),
    ];
    assert_eq!(
        schedule::broken(&report, &origins),
        Some(Broken::LeaderAfterHeal(ServiceKind::Zookeeper))
    );
    report.steps[4].status = StepStatus::Passed;
    assert_eq!(schedule::broken(&report, &origins), None);
    report.steps.push(step(
        6,
        &crate::runner::one_leader_per_term_step(ServiceKind::Etcd),
        StepStatus::Failed,
    ));
    assert_eq!(
        schedule::broken(&report, &origins),
        Some(Broken::OneLeaderPerTerm(ServiceKind::Etcd))
    );
    report.steps.pop();
    report.steps[0].status = StepStatus::Failed;
    assert_eq!(
        schedule::broken(&report, &origins),
        Some(Broken::FaultIneffective)
    );
}

#[test]
fn a_topology_without_leaders_to_fault_is_refused_naming_it() {
    let options = ExploreOptions {
        target: PathBuf::new(),
        seed: 1,
        runs: 1,
        budget: Duration::from_secs(1),
        out: PathBuf::new(),
        max_faults: 3,
        hold_ms: (100, 200),
        max_down: None,
        leader_within: Duration::from_secs(1),
        min_availability: 0.9,
        max_shrinks: 1,
    };
    let source = crate::source::SourceFile::from_text(
        "web.toml",
        "subnet = \"10.77.0.0/24\"\n[roles.border]\ncount = 1\nservices = [\"ingress\"]\n",
    );
    let topology = Topology::parse(&source).expect("a valid topology");
    let err = setup(&options, &topology, None).unwrap_err();
    assert!(err.message.contains("neither etcd nor ZooKeeper"), "{err}");
}

#[test]
fn disk_faults_are_drawn_only_for_services_whose_data_is_on_the_faulty_disk() {
    let mut space = space();
    assert!(space.kinds().contains(&FaultKind::Delay));
    assert!(!space.kinds().contains(&FaultKind::SlowDisk));
    assert!(!space.kinds().contains(&FaultKind::PowerLoss));
    space.faulty_disks = vec![ServiceKind::Zookeeper];
    assert!(space.kinds().contains(&FaultKind::SlowDisk));
    assert!(space.kinds().contains(&FaultKind::PowerLoss));
    let fault = |kind, service| Fault {
        kind,
        service,
        pick: Pick::Leader,
        hold_ms: 500,
        overlaps_next: false,
    };
    let drawn = bounded(
        &space,
        vec![
            fault(FaultKind::PowerLoss, ServiceKind::Etcd),
            fault(FaultKind::SlowDisk, ServiceKind::Zookeeper),
            fault(FaultKind::PowerLoss, ServiceKind::Zookeeper),
        ],
    );
    let kinds: Vec<FaultKind> = drawn.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            FaultKind::CrashRestart,
            FaultKind::SlowDisk,
            FaultKind::PowerLoss
        ]
    );
}
