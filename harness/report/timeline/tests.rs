use super::*;
use crate::report::{Report, StepReport, TimelineEntry, Verdict};

fn entry(at_ms: u64, kind: TimelineKind, subject: Option<&str>, what: &str) -> TimelineEntry {
    TimelineEntry {
        at_ms,
        wall: String::new(),
        kind,
        subject: subject.map(str::to_string),
        what: what.to_string(),
    }
}

fn step(
    index: usize,
    started_ms: u64,
    elapsed_ms: u64,
    status: StepStatus,
    detail: &str,
) -> StepReport {
    StepReport {
        index,
        name: format!("step {index}"),
        kind: "expect".into(),
        status,
        started_ms,
        elapsed_ms,
        detail: detail.into(),
    }
}

fn report() -> Report {
    let observation = TimelineKind::Observation;
    let mut r: Report = serde_json::from_str(QUORUM).expect("the recorded report");
    r.steps = vec![
        step(1, 0, 100, StepStatus::Passed, ""),
        step(2, 100, 10, StepStatus::Passed, "quorum-1 terminated"),
        step(
            3,
            110,
            1290,
            StepStatus::Passed,
            "etcd leader quorum-2; etcd re-election: elected after 1300 ms (to within 20 ms)",
        ),
        step(4, 1400, 600, StepStatus::Failed, "not within 0.6 s"),
    ];
    r.timeline = vec![
        entry(
            5,
            observation,
            Some("etcd"),
            "etcd: leader quorum-1 at term 2, backed by 3 of 3 configured members (quorum-1, quorum-2, quorum-3)",
        ),
        entry(100, TimelineKind::Action, None, "terminated quorum-1"),
        entry(
            130,
            observation,
            Some("etcd"),
            "etcd: no leader: live members name different leaders (views: quorum-2 names quorum-1)",
        ),
        entry(
            1400,
            observation,
            Some("etcd"),
            "etcd: leader quorum-2 at term 3, backed by 2 of 3 configured members (quorum-2, quorum-3)",
        ),
        entry(1500, TimelineKind::Action, None, "started etcd on quorum-1"),
        entry(1600, observation, Some("etcd members"), "etcd: leader nobody"),
    ];
    r.measurements = [("etcd re-election".to_string(), 1300u64)].into();
    r.samples = Vec::new();
    r.availability = Default::default();
    r.duration_ms = 2000;
    r.verdict = Verdict::Fail;
    r
}

#[test]
fn leadership_is_drawn_from_majority_backed_observations_only() {
    let t = Timeline::build(&report(), None);
    assert_eq!(t.leaders.len(), 1, "only elected services get a lane");
    let lane = &t.leaders[0];
    assert_eq!(lane.service, "etcd");
    assert_eq!(
        lane.segments,
        vec![
            LeaderSegment {
                from_ms: 5,
                to_ms: 100,
                leader: Leadership::Led("quorum-1".into())
            },
            LeaderSegment {
                from_ms: 100,
                to_ms: 130,
                leader: Leadership::Unobserved
            },
            LeaderSegment {
                from_ms: 130,
                to_ms: 1400,
                leader: Leadership::None
            },
            LeaderSegment {
                from_ms: 1400,
                to_ms: 2000,
                leader: Leadership::Led("quorum-2".into())
            },
        ]
    );
    assert_eq!(t.leader_nodes(), vec!["quorum-1", "quorum-2"]);
}

#[test]
fn the_same_leader_seen_again_extends_its_stretch() {
    let mut r = report();
    r.timeline.insert(
        1,
        entry(
            50,
            TimelineKind::Observation,
            Some("etcd"),
            "etcd: leader quorum-1 at term 2, backed by 2 of 3 configured members (quorum-1, quorum-2)",
        ),
    );
    let t = Timeline::build(&r, None);
    assert_eq!(t.leaders[0].segments[0].to_ms, 100);
    assert_eq!(t.leaders[0].segments.len(), 4);
}

#[test]
fn a_fault_ends_leadership_only_where_it_names_the_leader() {
    let elected = ["etcd", "zookeeper"];
    assert!(fault_ends(
        "terminated quorum-1",
        "quorum-1",
        "etcd",
        &elected
    ));
    assert!(!fault_ends(
        "terminated quorum-10",
        "quorum-1",
        "etcd",
        &elected
    ));
    assert!(fault_ends(
        "stopped etcd on quorum-1",
        "quorum-1",
        "etcd",
        &elected
    ));
    assert!(!fault_ends(
        "stopped zookeeper on quorum-1",
        "quorum-1",
        "etcd",
        &elected
    ));
    assert!(!fault_ends(
        "started etcd on quorum-1",
        "quorum-1",
        "etcd",
        &elected
    ));
}

#[test]
fn faults_are_told_from_repairs() {
    let t = Timeline::build(&report(), None);
    let kinds: Vec<(u64, MarkerKind)> = t.markers.iter().map(|m| (m.at_ms, m.kind)).collect();
    assert_eq!(
        kinds,
        vec![(100, MarkerKind::Fault), (1500, MarkerKind::Action)]
    );
}

#[test]
fn a_figure_ends_where_its_step_did_and_lasts_as_long_as_it() {
    let t = Timeline::build(&report(), None);
    let figure = t
        .figures
        .iter()
        .find(|f| f.label.starts_with("etcd re-election"))
        .expect("the re-election figure");
    assert_eq!((figure.from_ms, figure.to_ms), (100, 1400));
    assert_eq!(figure.label, "etcd re-election 1.3 s");
}

#[test]
fn a_consistency_breach_is_drawn_over_the_operations_it_names() {
    use crate::workload::judge::{Breach, CheckerResult};
    use crate::workload::{CheckerStatus, ConsistencyVerdict};
    let mut r = report();
    r.consistency = Some(ConsistencyVerdict {
        checks: vec![CheckerResult {
            checker: "watch guarantees".into(),
            status: CheckerStatus::Fail,
            operations: 10,
            states: 0,
            elapsed_ms: 1,
            detail: String::new(),
            breaches: vec![Breach {
                what: "the watch on quorum-3 went back from revision 531 to 2".into(),
                from_ms: 900,
                to_ms: 900,
            }],
        }],
    });
    let t = Timeline::build(&r, None);
    assert_eq!(t.breaches.len(), 1);
    assert_eq!((t.breaches[0].from_ms, t.breaches[0].to_ms), (900, 900));
    let svg = render_svg(&t);
    assert!(svg.contains("data-lane=\"breaches\""), "{svg}");
    assert!(svg.contains(
        "data-breach=\"watch guarantees: the watch on quorum-3 went back from revision 531 to 2\""
    ));
    // A run without a workload draws no such lane.
    assert!(!render_svg(&Timeline::build(&report(), None)).contains("data-lane=\"breaches\""));
}

#[test]
fn the_failed_step_is_shown_where_it_failed() {
    let t = Timeline::build(&report(), None);
    let svg = render_svg(&t);
    assert!(svg.contains("data-failed-step=\"4\""), "{svg}");
    assert!(svg.contains("✗ step 4 failed here"));
    let page = render_page(&t);
    assert!(page.contains("step 4 failed: step 4 — not within 0.6 s"));
}

#[test]
fn text_is_escaped() {
    let mut r = report();
    r.scenario = "a <b> & \"c\"".into();
    let svg = render_svg(&Timeline::build(&r, None));
    assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
    assert!(!svg.contains("<b>"));
}

#[test]
fn observed_leaders_read_the_backed_form_only() {
    assert_eq!(
        observed_leader("zookeeper: leader quorum-3, backed by 2 of 3", "zookeeper"),
        Some("quorum-3".into())
    );
    assert_eq!(
        observed_leader("zookeeper: no leader: quorum-3 is not live", "zookeeper"),
        None
    );
    assert_eq!(observed_leader("etcd: leader ", "etcd"), None);
}

const QUORUM: &str =
    include_str!("../../../tests/fixtures/timeline/quorum-destroy-restore/report.json");
const STRICT: &str =
    include_str!("../../../tests/fixtures/timeline/strict-snapshot-restore/report.json");
const STRICT_HISTORY: &str =
    include_str!("../../../tests/fixtures/timeline/strict-snapshot-restore/history.json");

/// The picture of a recorded run (a real `succession run --report` of the seed's quorum
/// destroy & restore), as users see it: both elections, the faults, every request.
#[test]
fn a_recorded_quorum_run_renders_as_recorded() {
    let r: Report = serde_json::from_str(QUORUM).expect("the recorded report");
    let t = Timeline::build(&r, None);
    let services: Vec<&str> = t.leaders.iter().map(|l| l.service.as_str()).collect();
    assert_eq!(services, vec!["zookeeper", "etcd"]);
    // The leader's node was terminated: neither lane may show it leading after that.
    let kill = t
        .markers
        .iter()
        .find(|m| m.label.starts_with("terminated "))
        .expect("the termination");
    let dead = kill.label.trim_start_matches("terminated ").to_string();
    for lane in &t.leaders {
        assert!(
            lane.segments
                .iter()
                .all(|s| s.leader != Leadership::Led(dead.clone()) || s.to_ms <= kill.at_ms),
            "{lane:?}"
        );
    }
    assert_eq!(t.targets.len(), 3);
    assert!(t.markers.iter().any(|m| m.kind == MarkerKind::Fault));
    insta::assert_snapshot!("recorded-quorum-run-svg", render_svg(&t));
}

/// A recorded run whose ledger check failed: its lost writes and the step where it failed.
#[test]
fn a_recorded_failed_restore_shows_its_lost_writes() {
    let r: Report = serde_json::from_str(STRICT).expect("the recorded report");
    let history: crate::ledger::History =
        serde_json::from_str(STRICT_HISTORY).expect("the recorded history");
    let t = Timeline::build(&r, Some(&history));
    let writes = t.writes.as_ref().expect("the ledger lane");
    let lost = writes.iter().filter(|w| w.fate == WriteFate::Lost).count();
    assert_eq!(
        lost as u64,
        r.ledger
            .as_ref()
            .map(|l| l.phases.iter().map(|p| p.lost).sum::<u64>())
            .unwrap_or(0)
    );
    assert!(lost > 0);
    let window = t
        .figures
        .iter()
        .find(|f| f.label.starts_with("loss window"))
        .expect("the loss window is annotated");
    assert!(window.label.contains(&format!(
        "{lost} acknowledged writes lost ({lost} untolerated)"
    )));
    insta::assert_snapshot!("recorded-failed-restore-svg", render_svg(&t));
}
