use std::path::PathBuf;
use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};

use super::schedule::{self, Broken, Checks, Fault, FaultKind, Origin, Space};
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
    }
}

fn checks() -> Checks {
    Checks {
        topology: topology_path(),
        watched: vec![ServiceKind::Etcd, ServiceKind::Zookeeper],
        leader_within: Duration::from_secs(15),
        ledger: true,
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
    ];
    let (text, origins) = schedule::render("x", &["a header".into()], &faults, &checks(), 7);
    let scenario = parse(&text);
    assert_eq!(scenario.seed, Some(7));
    assert_eq!(scenario.steps.len(), origins.len());
    assert_eq!(
        scenario.one_leader_per_term,
        vec![ServiceKind::Etcd, ServiceKind::Zookeeper]
    );
    assert!(scenario.ledger.is_some());
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

proptest::proptest! {
    #[test]
    fn every_drawn_schedule_is_a_valid_scenario(seed in proptest::num::u64::ANY) {
        let mut runner = runner_for(seed, 1);
        let faults = schedule::schedules(&space()).new_tree(&mut runner).unwrap().current();
        proptest::prop_assert!(!faults.is_empty() && faults.len() <= 4);
        let (text, origins) = schedule::render("x", &[], &faults, &checks(), seed);
        let scenario = parse(&text);
        proptest::prop_assert_eq!(scenario.steps.len(), origins.len());
        let healed = faults.iter().filter(|f| !f.overlaps_next).count();
        proptest::prop_assert_eq!(scenario.steps.len(), faults.len() * 2 + healed * 3);
    }

    #[test]
    fn no_drawn_schedule_takes_more_down_at_once_than_the_bound(
        seed in proptest::num::u64::ANY,
        max_down in 1usize..4,
    ) {
        let space = Space { max_down, ..space() };
        let faults = schedule::schedules(&space).new_tree(&mut runner_for(seed, 1)).unwrap().current();
        let mut down = 0;
        for f in &faults {
            down += space.takes_down(f);
            proptest::prop_assert!(down <= max_down, "{faults:?}");
            if !f.overlaps_next {
                down = 0;
            }
        }
        proptest::prop_assert!(!faults.last().unwrap().overlaps_next);
    }
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
    let err = setup(&options, &topology).unwrap_err();
    assert!(err.message.contains("neither etcd nor ZooKeeper"), "{err}");
}
