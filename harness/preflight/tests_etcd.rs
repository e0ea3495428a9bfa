//! The etcd store checks against each hazard, one at a time on an otherwise healthy cell: the
//! row that must catch it, its outcome, and the evidence it names.

use super::tests::{healthy_cell, inventory, member, CELL};
use super::*;
use crate::probe::etcd::{Alarm, KvHash};

const Q3: &str = "quorum-3.cell-1.dc-1.demo.lan";

/// The outcome and evidence of the etcd row named `check` once `hazard` is done to the
/// healthy cell.
fn row_after(check: &str, hazard: impl FnOnce(&mut Observations)) -> (Outcome, String) {
    let inv = inventory(CELL);
    let mut obs = healthy_cell(&inv);
    hazard(&mut obs);
    let p = evaluate(&inv, &obs);
    let c = p
        .checks
        .iter()
        .find(|c| c.service == "etcd" && c.check == check)
        .unwrap_or_else(|| panic!("no row {check}: {p:#?}"));
    (c.outcome, c.evidence.clone())
}

fn each_member(obs: &mut Observations, f: impl Fn(&str, &mut EtcdSeen)) {
    for (name, seen) in obs.etcd.iter_mut() {
        if let Ok(seen) = seen {
            f(name, seen);
        }
    }
}

#[test]
fn a_raised_alarm_fails_naming_it_and_its_member() {
    let (outcome, evidence) = row_after("no alarms", |obs| {
        each_member(obs, |_, s| {
            s.status.detail.errors = vec!["memberID:60 alarm:NOSPACE ".into()];
        })
    });
    assert_eq!(
        (outcome, evidence.as_str()),
        (Outcome::Fail, "NOSPACE on quorum-3")
    );
    // Read from `endpoint status` as etcd 3.4 words it; other errors are no alarm.
    let detail = crate::probe::etcd::StatusDetail {
        errors: vec!["memberID:60 alarm:CORRUPT ".into(), "slow disk".into()],
        ..Default::default()
    };
    assert_eq!(
        detail.alarms(),
        vec![Alarm {
            member_id: 60,
            alarm: "CORRUPT".into()
        }]
    );
}

#[test]
fn a_database_near_its_quota_or_mostly_free_warns() {
    let (outcome, evidence) = row_after("database size within the quota", |obs| {
        each_member(obs, |name, s| {
            if name == Q3 {
                s.status.detail.db_size = 1_800_000_000;
            }
        })
    });
    assert_eq!(outcome, Outcome::Warn, "{evidence}");
    assert!(
        evidence.contains("quorum-3 1800.0 MB of 2147.5 MB (84 %), at or above 80 %"),
        "{evidence}"
    );
    let (outcome, evidence) = row_after("database size within the quota", |obs| {
        each_member(obs, |_, s| {
            s.quota_bytes = Ok(8_000_000_000);
            s.status.detail.db_size = 3_000_000_000;
            s.status.detail.db_size_in_use = 500_000_000;
        })
    });
    assert_eq!(outcome, Outcome::Warn, "{evidence}");
    assert!(
        evidence.contains("2500.0 MB free of 3000.0 MB (defragment it first)"),
        "{evidence}"
    );
    let (outcome, evidence) = row_after("database size within the quota", |obs| {
        each_member(obs, |_, s| {
            s.quota_bytes = Err("GET /metrics: refused".into())
        })
    });
    assert_eq!(outcome, Outcome::Unknown, "{evidence}");
}

#[test]
fn members_holding_different_keys_fail_and_different_compactions_are_unknown() {
    let (outcome, evidence) = row_after("key-value hashes agree", |obs| {
        each_member(obs, |name, s| {
            if name == Q3 {
                s.hash = Some(Ok(KvHash {
                    revision: 12,
                    hash: 0xdead_beef,
                    compact_revision: 0,
                }));
            }
        })
    });
    assert_eq!(outcome, Outcome::Fail, "{evidence}");
    assert_eq!(
        evidence,
        "the members hold different keys at revision 12: 0x5eedcafe (never compacted) on quorum-1, quorum-2, 0xdeadbeef (never compacted) on quorum-3"
    );
    let (outcome, _) = row_after("key-value hashes agree", |obs| {
        each_member(obs, |name, s| {
            if name == Q3 {
                s.hash = Some(Ok(KvHash {
                    revision: 12,
                    hash: 0xdead_beef,
                    compact_revision: 9,
                }));
            }
        })
    });
    assert_eq!(outcome, Outcome::Unknown);
    let (outcome, _) = row_after("key-value hashes agree", |obs| {
        each_member(obs, |name, s| {
            if name == Q3 {
                s.hash = Some(Err("required revision has been compacted".into()));
            }
        })
    });
    assert_eq!(outcome, Outcome::Unknown);
}

#[test]
fn a_removed_member_that_still_answers_fails() {
    let (outcome, evidence) = row_after("no removed member still answers", |obs| {
        let two = vec![member(0x1a, 11), member(0x2b, 12)];
        each_member(obs, |name, s| {
            if name != Q3 {
                s.members = two.clone();
            }
        })
    });
    assert_eq!((outcome, evidence.as_str()), (
        Outcome::Fail,
        "quorum-3 answers at http://10.213.7.13:2379 as member 3c, which the member list no longer has"
    ));
}

#[test]
fn members_of_another_cluster_or_version_fail_and_a_lagging_one_warns() {
    let (outcome, evidence) = row_after("endpoint status agrees", |obs| {
        each_member(obs, |name, s| {
            if name == Q3 {
                s.status.detail.cluster_id = 0xff;
            }
        })
    });
    assert_eq!(outcome, Outcome::Fail);
    assert_eq!(
        evidence,
        "cluster c1 on quorum-1, quorum-2, cluster ff on quorum-3"
    );
    let (outcome, evidence) = row_after("endpoint status agrees", |obs| {
        each_member(obs, |name, s| {
            if name == Q3 {
                s.status.detail.version = "3.5.9".into();
            }
        })
    });
    assert_eq!(outcome, Outcome::Fail);
    assert!(
        evidence.ends_with("(an earlier upgrade is unfinished)"),
        "{evidence}"
    );
    let (outcome, evidence) = row_after("endpoint status agrees", |obs| {
        each_member(obs, |name, s| {
            s.status.detail.raft_index = 5000;
            s.status.detail.raft_applied_index = if name == Q3 { 3000 } else { 5000 };
        })
    });
    assert_eq!(outcome, Outcome::Warn);
    assert!(
        evidence.starts_with("quorum-3 applied 3000 of 5000"),
        "{evidence}"
    );
}

#[test]
fn a_version_below_the_floor_fails_and_one_with_a_known_bug_warns_naming_the_issue() {
    let (outcome, evidence) = row_after("version above the floor, no known bug", |obs| {
        each_member(obs, |_, s| s.status.detail.version = "3.4.23".into())
    });
    assert_eq!(outcome, Outcome::Warn);
    assert!(
        evidence.contains("https://github.com/etcd-io/etcd/issues/15271"),
        "{evidence}"
    );
    let (outcome, evidence) = row_after("version above the floor, no known bug", |obs| {
        each_member(obs, |_, s| s.status.detail.version = "3.3.27".into())
    });
    assert_eq!(outcome, Outcome::Fail);
    assert!(
        evidence.starts_with("3.3.27 is below the floor 3.4.22"),
        "{evidence}"
    );
}
