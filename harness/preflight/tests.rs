//! Preflights of recorded observations: what users read for a healthy cell and for one whose
//! ZooKeeper ids are out of order, and how each kind of trouble is judged.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::*;
use crate::probe::etcd::{KvHash, Member, Status, StatusDetail};
use crate::probe::neighbour::Neighbour;
use crate::probe::zookeeper::{Conf, ConfServer, Mode};
use crate::source::SourceFile;

pub(super) const CELL: &str = r#"cell = "cell-1"
[[node]]
name = "border-1.cell-1.dc-1.demo.lan"
role = "border"
address = "10.213.7.10"
exec = ["ip", "netns", "exec", "succ-abc123-border-1"]
[[node]]
name = "quorum-1.cell-1.dc-1.demo.lan"
role = "quorum"
address = "10.213.7.11"
etcd = "http://10.213.7.11:2379"
zookeeper = "10.213.7.11:2181"
exec = ["ip", "netns", "exec", "succ-abc123-quorum-1"]
[[node]]
name = "quorum-2.cell-1.dc-1.demo.lan"
role = "quorum"
address = "10.213.7.12"
etcd = "http://10.213.7.12:2379"
zookeeper = "10.213.7.12:2181"
exec = ["ip", "netns", "exec", "succ-abc123-quorum-2"]
[[node]]
name = "quorum-3.cell-1.dc-1.demo.lan"
role = "quorum"
address = "10.213.7.13"
etcd = "http://10.213.7.13:2379"
zookeeper = "10.213.7.13:2181"
exec = ["ip", "netns", "exec", "succ-abc123-quorum-3"]
[[node]]
name = "master-1.cell-1.dc-1.demo.lan"
role = "master"
address = "10.213.7.14"
mesos = "10.213.7.14:5050"
marathon = "10.213.7.14:8080"
exec = ["ip", "netns", "exec", "succ-abc123-master-1"]
[[node]]
name = "master-2.cell-1.dc-1.demo.lan"
role = "master"
address = "10.213.7.15"
mesos = "10.213.7.15:5050"
marathon = "10.213.7.15:8080"
exec = ["ip", "netns", "exec", "succ-abc123-master-2"]
"#;

/// The seed's shape: five servers whose ids, in address order as strings, read 5,4,3,1,2.
pub(super) const FIVE: &str = r#"cell = "cell-1"
[[node]]
name = "quorum-1.cell-1.dc-1.demo.lan"
role = "quorum"
address = "10.213.7.8"
zookeeper = "10.213.7.8:2181"
[[node]]
name = "quorum-2.cell-1.dc-1.demo.lan"
role = "quorum"
address = "10.213.7.9"
zookeeper = "10.213.7.9:2181"
[[node]]
name = "quorum-3.cell-1.dc-1.demo.lan"
role = "quorum"
address = "10.213.7.10"
zookeeper = "10.213.7.10:2181"
[[node]]
name = "quorum-4.cell-1.dc-1.demo.lan"
role = "quorum"
address = "10.213.7.11"
zookeeper = "10.213.7.11:2181"
[[node]]
name = "quorum-5.cell-1.dc-1.demo.lan"
role = "quorum"
address = "10.213.7.12"
zookeeper = "10.213.7.12:2181"
"#;

pub(super) fn inventory(text: &str) -> Inventory {
    Inventory::parse(&SourceFile::from_text("cell.inventory.toml", text)).expect("valid")
}

fn mac(n: u8) -> String {
    format!("02:00:00:00:07:{n:02x}")
}

pub(super) fn member(id: u64, host: u8) -> Member {
    Member {
        id,
        name: format!("quorum-{}", host - 10),
        peer_urls: vec![format!("http://10.213.7.{host}:2380")],
        client_urls: vec![format!("http://10.213.7.{host}:2379")],
        is_learner: false,
    }
}

fn zk(mode: Mode, id: u64, ensemble: &[(u64, u8)]) -> Result<ZookeeperSeen, String> {
    Ok(ZookeeperSeen {
        mode,
        zxid: Some(0x1_0000_0004),
        conf: Some(Conf {
            server_id: Some(id),
            servers: ensemble
                .iter()
                .map(|(id, host)| {
                    (
                        *id,
                        ConfServer {
                            host: format!("10.213.7.{host}"),
                            role: "participant".to_string(),
                        },
                    )
                })
                .collect(),
        }),
        synced_followers: (mode == Mode::Leader).then(|| ensemble.len() - 1),
    })
}

/// What a quiet ZooKeeper server answers to `mntr` and `isro` (a leader with `followers`
/// synced).
pub(super) fn quiet_words(mode: Mode, followers: usize) -> ZookeeperWords {
    let mut mntr: BTreeMap<String, String> = [
        ("zk_digest_mismatches_count", "0"),
        ("zk_outstanding_requests", "0"),
        ("zk_avg_latency", "0.4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if mode == Mode::Leader {
        mntr.insert("zk_synced_followers".into(), followers.to_string());
    }
    ZookeeperWords {
        refused: Vec::new(),
        mntr: Some(mntr),
        isro: Some("rw".to_string()),
    }
}

/// What a healthy etcd member of the test cell answers.
pub(super) fn healthy_member(id: u64, members: Vec<Member>) -> EtcdSeen {
    EtcdSeen {
        status: Status {
            member_id: id,
            leader: 0x2b,
            raft_term: 3,
            revision: 12,
            detail: StatusDetail {
                cluster_id: 0xc1,
                version: "3.4.25".to_string(),
                db_size: 20_480_000,
                db_size_in_use: 16_384_000,
                raft_index: 40,
                raft_applied_index: 40,
                is_learner: false,
                errors: Vec::new(),
            },
        },
        members,
        health: Ok(()),
        read_ms: 3,
        quota_bytes: Ok(2_147_483_648),
        hash: Some(Ok(KvHash {
            revision: 12,
            hash: 0x5eed_cafe,
            compact_revision: 0,
        })),
    }
}

/// What a healthy cell answers.
pub(super) fn healthy_cell(inv: &Inventory) -> Observations {
    let members = vec![member(0x1a, 11), member(0x2b, 12), member(0x3c, 13)];
    let mut obs = Observations::default();
    for (host, id) in [(11u8, 0x1a), (12, 0x2b), (13, 0x3c)] {
        obs.etcd.insert(
            format!("quorum-{}.cell-1.dc-1.demo.lan", host - 10),
            Ok(healthy_member(id, members.clone())),
        );
    }
    let ensemble = [(1, 11), (2, 12), (3, 13)];
    for (i, mode) in [Mode::Follower, Mode::Leader, Mode::Follower]
        .into_iter()
        .enumerate()
    {
        let name = format!("quorum-{}.cell-1.dc-1.demo.lan", i + 1);
        obs.zookeeper_words
            .insert(name.clone(), quiet_words(mode, 2));
        obs.zookeeper
            .insert(name, zk(mode, i as u64 + 1, &ensemble));
    }
    for m in ["master-1", "master-2"] {
        let name = format!("{m}.cell-1.dc-1.demo.lan");
        obs.mesos.insert(
            name.clone(),
            Ok(LeaderSeen::Leader("master-1.cell-1.dc-1.demo.lan".into())),
        );
        obs.marathon.insert(
            name,
            Ok(LeaderSeen::Leader("master-1.cell-1.dc-1.demo.lan".into())),
        );
    }
    for n in &inv.nodes {
        let host = n.address.octets()[3];
        let neighbours = inv
            .nodes
            .iter()
            .filter(|o| o.address != n.address)
            .map(|o| {
                let h = o.address.octets()[3];
                (
                    o.address,
                    Neighbour::Resolved {
                        mac: mac(h),
                        nud: "REACHABLE".into(),
                    },
                )
            })
            .collect();
        obs.nets.insert(
            n.name.clone(),
            Ok(net::NodeNet {
                macs: [(n.address, mac(host))].into_iter().collect(),
                neighbours,
            }),
        );
    }
    obs
}

#[test]
fn a_healthy_cell_passes_every_check() {
    let inv = inventory(CELL);
    let p = evaluate(&inv, &healthy_cell(&inv));
    assert_eq!(exit_of(&p), Exit::Pass, "{}", render_table(&p));
    insta::assert_snapshot!(render_table(&p));
}

/// What the five servers of `FIVE` answer in seed 004's shape: in address order (.10, .11,
/// .12, .8, .9) the ids read 5, 4, 3, 1, 2, and quorum-3 (id 5) leads, as the highest id does
/// after an election.
pub(super) fn seed_004_ensemble() -> Observations {
    let ensemble = [(1, 8), (2, 9), (5, 10), (4, 11), (3, 12)];
    let mut obs = Observations::default();
    for (i, (id, _)) in ensemble.iter().enumerate() {
        let mode = if *id == 5 {
            Mode::Leader
        } else {
            Mode::Follower
        };
        let name = format!("quorum-{}.cell-1.dc-1.demo.lan", i + 1);
        obs.zookeeper_words
            .insert(name.clone(), quiet_words(mode, 4));
        obs.zookeeper.insert(name, zk(mode, *id, &ensemble));
    }
    obs
}

#[test]
fn out_of_order_zookeeper_ids_fail_with_the_conflicts_and_the_safe_plan() {
    let inv = inventory(FIVE);
    let p = evaluate(&inv, &seed_004_ensemble());
    assert_eq!(exit_of(&p), Exit::CheckFailed);
    let ids = p.zookeeper_ids.as_ref().expect("an id report");
    assert_eq!(
        ids.upgrade.to_string(),
        "1:10.213.7.10,2:10.213.7.11,3:10.213.7.12,4:10.213.7.8,5:10.213.7.9"
    );
    assert!(!ids.conflicts.is_empty());
    insta::assert_snapshot!(render_table(&p));
    insta::assert_snapshot!("out_of_order_json", render_json(&p));
}

#[test]
fn an_unreachable_member_is_exit_3_and_named() {
    let inv = inventory(CELL);
    let mut obs = healthy_cell(&inv);
    obs.etcd.insert(
        "quorum-3.cell-1.dc-1.demo.lan".into(),
        Err("failed to connect to etcd at http://10.213.7.13:2379: connection refused".into()),
    );
    let p = evaluate(&inv, &obs);
    assert_eq!(exit_of(&p), Exit::Environment);
    assert_eq!(
        p.unreachable,
        ["quorum-3 (etcd): failed to connect to etcd at http://10.213.7.13:2379: connection refused"]
    );
    let healthy = &p.checks[0];
    assert_eq!(
        (healthy.outcome, healthy.evidence.as_str()),
        (Outcome::Unreachable, "cannot reach quorum-3")
    );
}

#[test]
fn each_kind_of_trouble_fails_its_check_with_evidence() {
    let inv = inventory(CELL);
    let evidence = |obs: &Observations, service: &str, check: &str| {
        let p = evaluate(&inv, obs);
        let c = p
            .checks
            .iter()
            .find(|c| c.service == service && c.check == check)
            .cloned()
            .expect("check");
        assert_eq!(c.outcome, Outcome::Fail, "{c:?}");
        assert_eq!(exit_of(&p), Exit::CheckFailed);
        c.evidence
    };

    let mut obs = healthy_cell(&inv);
    if let Some(Ok(s)) = obs.etcd.get_mut("quorum-1.cell-1.dc-1.demo.lan") {
        s.members.push(Member {
            id: 0x4d,
            name: String::new(),
            peer_urls: vec!["http://10.213.7.99:2380".into()],
            client_urls: vec![],
            is_learner: false,
        });
    }
    assert!(
        evidence(&obs, "etcd", "members match the inventory").starts_with(
            "members disagree: quorum-1 lists [10.213.7.99, quorum-1, quorum-2, quorum-3]"
        )
    );

    let mut obs = healthy_cell(&inv);
    for s in obs.etcd.values_mut().flatten() {
        s.members[2].is_learner = true;
    }
    assert_eq!(
        evidence(&obs, "etcd", "no learners or unstarted members"),
        "quorum-3 is a learner"
    );

    let mut obs = healthy_cell(&inv);
    if let Some(Ok(s)) = obs.etcd.get_mut("quorum-2.cell-1.dc-1.demo.lan") {
        s.status.leader = 0x1a;
    }
    assert_eq!(
        evidence(&obs, "etcd", "one leader backed by a majority"),
        "quorum-1 is named leader but does not claim leadership itself (names quorum-2 at term 3); quorum-2 is named leader but does not claim leadership itself (names quorum-1 at term 3) (views: quorum-1 names quorum-2 at term 3, quorum-2 names quorum-1 at term 3, quorum-3 names quorum-2 at term 3)"
    );

    // A leader that only it and a minority know: the others answer, with no leader.
    let mut obs = healthy_cell(&inv);
    for host in ["quorum-1", "quorum-3"] {
        if let Some(Ok(s)) = obs.etcd.get_mut(&format!("{host}.cell-1.dc-1.demo.lan")) {
            s.status.leader = 0;
            s.status.raft_term = 5;
        }
    }
    assert!(
        evidence(&obs, "etcd", "one leader backed by a majority")
            .contains("a majority needs 2 (not backing: quorum-1 no leader (term 5, no leader), quorum-3 no leader (term 5, no leader))"),
        "{}",
        evidence(&obs, "etcd", "one leader backed by a majority")
    );

    let mut obs = healthy_cell(&inv);
    obs.zookeeper.insert(
        "quorum-3.cell-1.dc-1.demo.lan".into(),
        zk(Mode::Leader, 3, &[(1, 11), (2, 12), (3, 13)]),
    );
    assert_eq!(
        evidence(&obs, "zookeeper", "one leader backed by a majority"),
        "two leaders at term 1: quorum-2 and quorum-3 each claim leadership (views: quorum-1 no leader (follower while several servers lead), quorum-2 names quorum-2 at term 1, quorum-3 names quorum-3 at term 1)"
    );

    // The leader says fewer voting followers are synced with it than a majority needs.
    let mut obs = healthy_cell(&inv);
    for s in obs.zookeeper.values_mut().flatten() {
        if s.mode == Mode::Leader {
            s.synced_followers = Some(0);
        }
    }
    assert!(
        evidence(&obs, "zookeeper", "one leader backed by a majority")
            .starts_with("quorum-2 leads only 0 synced voting followers by its own count"),
    );

    let mut obs = healthy_cell(&inv);
    obs.zookeeper.insert(
        "quorum-3.cell-1.dc-1.demo.lan".into(),
        zk(Mode::Follower, 2, &[(1, 11), (2, 12), (3, 13)]),
    );
    assert_eq!(
        evidence(&obs, "zookeeper", "ids match what the upgrade writes"),
        "two servers claim id 2: quorum-2 and quorum-3"
    );

    let mut obs = healthy_cell(&inv);
    obs.zookeeper.insert(
        "quorum-1.cell-1.dc-1.demo.lan".into(),
        Ok(ZookeeperSeen {
            mode: Mode::NotServing,
            zxid: None,
            conf: None,
            synced_followers: None,
        }),
    );
    assert_eq!(
        evidence(&obs, "zookeeper", "every server serving"),
        "quorum-1 is not serving"
    );

    let mut obs = healthy_cell(&inv);
    obs.marathon.insert(
        "master-2.cell-1.dc-1.demo.lan".into(),
        Ok(LeaderSeen::Leader("master-2.cell-1.dc-1.demo.lan".into())),
    );
    assert_eq!(
        evidence(&obs, "marathon", "one leader backed by a majority of the masters"),
        "two leaders: master-1 and master-2 each claim leadership (views: master-1 names master-1, master-2 names master-2)"
    );

    let mut obs = healthy_cell(&inv);
    obs.mesos.insert(
        "master-2.cell-1.dc-1.demo.lan".into(),
        Ok(LeaderSeen::NoLeader("503: no elected master".into())),
    );
    assert_eq!(
        evidence(&obs, "mesos", "one leader backed by a majority of the masters"),
        "master-1 is backed by 1 of the 2 voters of the inventory's mesos masters; a majority needs 2 (not backing: master-2 no leader (/redirect: 503: no elected master)) (views: master-1 names master-1, master-2 no leader (/redirect: 503: no elected master))"
    );

    // The seed's replaced master: a neighbour still holds the MAC it had before.
    let mut obs = healthy_cell(&inv);
    if let Some(Ok(net)) = obs.nets.get_mut("quorum-1.cell-1.dc-1.demo.lan") {
        net.neighbours.insert(
            Ipv4Addr::new(10, 213, 7, 14),
            Neighbour::Resolved {
                mac: "02:00:00:00:07:99".into(),
                nud: "STALE".into(),
            },
        );
    }
    assert_eq!(
        evidence(&obs, "neighbours", "no stale entry for a changed MAC"),
        "quorum-1 holds 02:00:00:00:07:99 for master-1, whose MAC is 02:00:00:00:07:0e"
    );
}

#[test]
fn an_inventory_without_exec_skips_the_neighbour_check() {
    let inv = inventory(FIVE);
    let p = evaluate(&inv, &Observations::default());
    let last = p.checks.last().expect("a check");
    assert_eq!(last.outcome, Outcome::Skip);
    // Nothing observed at all: every ZooKeeper server is unreachable.
    assert_eq!(exit_of(&p), Exit::Environment);
}

#[test]
fn the_inventory_of_a_run_reads_back() {
    use crate::provider::process::ProcessId;
    use crate::provider::{NodeRecord, RunRecord};
    use crate::service::ServiceKind;
    let node = |ordinal: usize, short: &str, role: &str, host: u8, services: Vec<ServiceKind>| {
        (
            format!("{short}.cell-1.dc-1.demo.lan"),
            NodeRecord {
                ordinal,
                short: short.into(),
                role: role.into(),
                host: format!("succ-abc123-{short}"),
                address: Ipv4Addr::new(10, 213, 7, host),
                mac: mac(host),
                generation: 0,
                alive: true,
                services,
            },
        )
    };
    let record = RunRecord {
        id: "abc123".into(),
        owner: ProcessId {
            pid: 1,
            start_time: 1,
        },
        kept: true,
        created: "2026-11-21T12:00:00.000Z".into(),
        purpose: "up topologies/cell.toml".into(),
        provider: "local".into(),
        cell: "cell-1".into(),
        topology_file: "topologies/cell.toml".into(),
        topology: String::new(),
        subnet: Some(Ipv4Addr::new(10, 213, 7, 0)),
        hub: true,
        image: None,
        nodes: [
            node(0, "border-1", "border", 10, vec![]),
            node(
                1,
                "quorum-1",
                "quorum",
                11,
                vec![ServiceKind::Zookeeper, ServiceKind::Etcd],
            ),
        ]
        .into_iter()
        .collect(),
        services: BTreeMap::new(),
    };
    let text = inventory::render_for_run(&record, &|fqdn| {
        record.nodes.get(fqdn).map(|n| {
            vec![
                "ip".to_string(),
                "netns".to_string(),
                "exec".to_string(),
                n.host.clone(),
            ]
        })
    });
    insta::assert_snapshot!(text);
    let inv = Inventory::parse(&SourceFile::from_text("run.toml", text)).expect("valid");
    assert_eq!(
        inv.nodes[1].etcd.as_deref(),
        Some("http://10.213.7.11:2379")
    );
    assert_eq!(inv.nodes[1].zookeeper.map(|a| a.port()), Some(2181));
    assert_eq!(
        inv.nodes[0].exec.as_deref(),
        Some(
            &[
                "ip".to_string(),
                "netns".into(),
                "exec".into(),
                "succ-abc123-border-1".into()
            ][..]
        )
    );
}

/// A service's "members match the inventory" row for what a cell answered: its outcome and
/// evidence.
fn members_row(inv: &Inventory, obs: &Observations, service: &str) -> (Outcome, String) {
    evaluate(inv, obs)
        .checks
        .into_iter()
        .find(|c| c.service == service && c.check == "members match the inventory")
        .map(|c| (c.outcome, c.evidence))
        .expect("the members row")
}

#[test]
fn a_member_list_all_agree_on_but_unlike_the_inventory_fails_naming_the_difference() {
    let inv = inventory(CELL);
    let members_row = |obs: &Observations| members_row(&inv, obs, "etcd");
    // Every member lists a stranger instead of quorum-3.
    let mut obs = healthy_cell(&inv);
    for s in obs.etcd.values_mut().flatten() {
        s.members[2] = member(0x4d, 99);
    }
    let row = members_row(&obs);
    assert_eq!(
        (row.0, row.1.as_str()),
        (
            Outcome::Fail,
            "members are [10.213.7.99, quorum-1, quorum-2]; missing quorum-3; not in the inventory: 10.213.7.99"
        )
    );
    // Only one missing: no "not in the inventory" part.
    let mut obs = healthy_cell(&inv);
    for s in obs.etcd.values_mut().flatten() {
        s.members.pop();
    }
    let row = members_row(&obs);
    assert_eq!(
        (row.0, row.1.as_str()),
        (
            Outcome::Fail,
            "members are [quorum-1, quorum-2]; missing quorum-3"
        )
    );
    // Only one extra: no "missing" part.
    let mut obs = healthy_cell(&inv);
    for s in obs.etcd.values_mut().flatten() {
        s.members.push(member(0x4d, 99));
    }
    let row = members_row(&obs);
    assert_eq!(
        (row.0, row.1.as_str()),
        (
            Outcome::Fail,
            "members are [10.213.7.99, quorum-1, quorum-2, quorum-3]; not in the inventory: 10.213.7.99"
        )
    );
    assert_eq!(members_row(&healthy_cell(&inv)).0, Outcome::Pass);
}

#[test]
fn an_unreachable_zookeeper_server_is_named_in_each_row_it_leaves_open() {
    let inv = inventory(CELL);
    let mut obs = healthy_cell(&inv);
    obs.zookeeper.insert(
        "quorum-3.cell-1.dc-1.demo.lan".into(),
        Err("failed to connect to 10.213.7.13:2181: connection refused".into()),
    );
    let p = evaluate(&inv, &obs);
    let serving = p
        .checks
        .iter()
        .find(|c| c.service == "zookeeper" && c.check == "every server serving")
        .expect("the serving row");
    assert_eq!(
        (serving.outcome, serving.evidence.as_str()),
        (Outcome::Unreachable, "cannot reach quorum-3")
    );
}

#[test]
fn a_zookeeper_ensemble_all_agree_on_but_unlike_the_inventory_fails_naming_the_difference() {
    let inv = inventory(CELL);
    let row_for = |ensemble: &[(u64, u8)], observer: Option<(u64, u8)>| {
        let mut obs = healthy_cell(&inv);
        for s in obs.zookeeper.values_mut().flatten() {
            let mut seen = zk(s.mode, 0, ensemble).expect("seen");
            if let (Some(conf), Some((id, host))) = (seen.conf.as_mut(), observer) {
                conf.servers.insert(
                    id,
                    ConfServer {
                        host: format!("10.213.7.{host}"),
                        role: "observer".to_string(),
                    },
                );
            }
            s.conf = seen.conf;
        }
        members_row(&inv, &obs, "zookeeper")
    };
    let (outcome, evidence) = row_for(&[(1, 11), (2, 12), (3, 99)], None);
    assert_eq!(outcome, Outcome::Fail);
    assert!(
        evidence.ends_with("; missing quorum-3; not in the inventory: 10.213.7.99"),
        "{evidence}"
    );
    let (outcome, evidence) = row_for(&[(1, 11), (2, 12)], None);
    assert_eq!(outcome, Outcome::Fail);
    assert!(evidence.ends_with("; missing quorum-3"), "{evidence}");
    let (outcome, evidence) = row_for(&[(1, 11), (2, 12), (3, 13), (4, 99)], None);
    assert_eq!(outcome, Outcome::Fail);
    assert!(
        evidence.ends_with("; not in the inventory: 10.213.7.99"),
        "{evidence}"
    );
    let (outcome, evidence) = row_for(&[(1, 11), (2, 12), (3, 13)], Some((4, 14)));
    assert_eq!(outcome, Outcome::Fail);
    assert!(evidence.ends_with("; observers: master-1"), "{evidence}");
    let (outcome, _) = row_for(&[(1, 11), (2, 12), (3, 13)], None);
    assert_eq!(outcome, Outcome::Pass);
}

#[test]
fn zookeeper_members_that_cannot_be_read_or_disagree_say_so() {
    let inv = inventory(CELL);
    let members_row = |obs: &Observations| members_row(&inv, obs, "zookeeper");
    // Every server answers, none serves `conf`: a failure, nothing left unknown.
    let mut obs = healthy_cell(&inv);
    for s in obs.zookeeper.values_mut().flatten() {
        s.conf = None;
    }
    assert_eq!(
        members_row(&obs),
        (Outcome::Fail, "no server serves `conf`".to_string())
    );
    // The one that might serve it cannot be reached: unknown, and who is named.
    obs.zookeeper.insert(
        "quorum-3.cell-1.dc-1.demo.lan".into(),
        Err("failed to connect to 10.213.7.13:2181: connection refused".into()),
    );
    assert_eq!(
        members_row(&obs),
        (Outcome::Unreachable, "cannot reach quorum-3".to_string())
    );
    // One server lists another ensemble than the rest.
    let mut obs = healthy_cell(&inv);
    if let Some(Ok(s)) = obs.zookeeper.get_mut("quorum-3.cell-1.dc-1.demo.lan") {
        s.conf = zk(s.mode, 3, &[(1, 11), (2, 12), (3, 13), (4, 14)])
            .expect("seen")
            .conf;
    }
    let (outcome, evidence) = members_row(&obs);
    assert_eq!(outcome, Outcome::Fail);
    assert!(evidence.starts_with("servers disagree: "), "{evidence}");
    assert!(
        evidence.contains("quorum-3 lists 1:quorum-1,2:quorum-2,3:quorum-3,4:master-1"),
        "{evidence}"
    );
}
