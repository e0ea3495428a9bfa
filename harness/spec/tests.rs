//! Properties of the file formats: valid files round-trip, and no input makes the parser panic
//! or point outside the file.

use proptest::prelude::*;

use super::topology::Topology;
use crate::scenario::Scenario;
use crate::source::SourceFile;

#[derive(Debug, Clone)]
struct RoleSpec {
    name: String,
    count: usize,
    etcd: bool,
    zookeeper: bool,
}

fn role_spec() -> impl Strategy<Value = RoleSpec> {
    (
        "[a-z][a-z0-9]{0,7}",
        1usize..6,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(name, count, etcd, zookeeper)| RoleSpec {
            name,
            count,
            etcd,
            zookeeper,
        })
}

fn render(roles: &[RoleSpec], cell: &str, heartbeat_ms: u64, factor: u64) -> String {
    let mut text = format!("cell = \"{cell}\"\ndc = \"dc-9\"\n");
    for r in roles {
        let mut services = Vec::new();
        if r.zookeeper {
            services.push("\"zookeeper\"");
        }
        if r.etcd {
            services.push("\"etcd\"");
        }
        text.push_str(&format!(
            "\n[roles.{}]\ncount = {}\nservices = [{}]\n",
            r.name,
            r.count,
            services.join(", ")
        ));
    }
    text.push_str(&format!(
        "\n[services.etcd]\nheartbeat_interval = \"{heartbeat_ms}ms\"\nelection_timeout = \"{}ms\"\n",
        heartbeat_ms * factor
    ));
    text
}

proptest! {
    #[test]
    fn valid_topologies_parse_to_what_they_say(
        roles in proptest::collection::btree_map("[a-z][a-z0-9]{0,7}", role_spec(), 1..5),
        cell in "[a-z][a-z0-9-]{0,6}[a-z0-9]",
        heartbeat_ms in 10u64..500,
        factor in 5u64..20,
    ) {
        let roles: Vec<RoleSpec> = roles.into_iter().map(|(name, mut r)| { r.name = name; r }).collect();
        let text = render(&roles, &cell, heartbeat_ms, factor);
        let topo = Topology::parse(&SourceFile::from_text("t.toml", text.clone())).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(topo.nodes().len(), roles.iter().map(|r| r.count).sum::<usize>());
        prop_assert_eq!(topo.settings.etcd_heartbeat_interval.as_millis() as u64, heartbeat_ms);
        for (role, spec) in topo.roles.iter().zip(&roles) {
            prop_assert_eq!(&role.name, &spec.name);
            prop_assert_eq!(role.count, spec.count);
            prop_assert_eq!(role.services.contains(&crate::service::ServiceKind::Etcd), spec.etcd);
        }
        let names: std::collections::BTreeSet<String> = topo.nodes().into_iter().map(|n| n.fqdn).collect();
        prop_assert_eq!(names.len(), topo.nodes().len());
        for n in topo.nodes() {
            let suffix = format!(".{cell}.dc-9.demo.lan");
            prop_assert!(n.fqdn.ends_with(&suffix), "{} lacks {}", n.fqdn, suffix);
            prop_assert_eq!(topo.node(&n.short).map(|m| m.fqdn), Some(n.fqdn.clone()));
        }
    }

    #[test]
    fn any_text_is_accepted_or_rejected_at_a_place_in_the_file(text in "\\PC{0,400}") {
        let source = SourceFile::from_text("any.toml", text.clone());
        if let Err(e) = Topology::parse(&source) {
            let lines = text.lines().count().max(1);
            prop_assert!(e.line <= lines + 1, "line {} of {}", e.line, lines);
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn every_mutilated_scenario_is_accepted_or_rejected_at_a_place(drop_line in 0usize..200, cut in 0usize..4000) {
        let original = include_str!("../../scenarios/quorum-destroy-restore.toml");
        let lines: Vec<&str> = original.lines().collect();
        let mut text: String = lines.iter().enumerate().filter(|(i, _)| *i != drop_line % lines.len()).map(|(_, l)| format!("{l}\n")).collect();
        let cut = cut.min(text.len());
        let cut = (0..=cut).rev().find(|c| text.is_char_boundary(*c)).unwrap_or(0);
        text.truncate(cut);
        let source = SourceFile::from_text("scenarios/mutilated.toml", text.clone());
        let topology_text = include_str!("../../topologies/cell.toml");
        let result = Scenario::parse(&source, |_| Topology::parse(&SourceFile::from_text("topologies/cell.toml", topology_text)));
        if let Err(e) = result {
            prop_assert!(e.line <= text.lines().count() + 1, "{}", e);
            prop_assert!(e.file.ends_with("mutilated.toml"), "{}", e);
        }
    }
}

#[test]
fn the_shipped_scenario_reads_as_written() {
    let source = SourceFile::from_text(
        "scenarios/q.toml",
        include_str!("../../scenarios/quorum-destroy-restore.toml"),
    );
    let scenario = Scenario::parse(&source, |_| {
        Topology::parse(&SourceFile::from_text(
            "topologies/cell.toml",
            include_str!("../../topologies/cell.toml"),
        ))
    })
    .expect("valid");
    assert_eq!(scenario.name, "quorum-destroy-restore");
    assert_eq!(scenario.topology.nodes().len(), 10);
    assert_eq!(
        scenario
            .topology
            .nodes_running(crate::service::ServiceKind::Etcd)
            .len(),
        3
    );
    let kinds: Vec<String> = scenario
        .steps
        .iter()
        .map(|s| {
            serde_json::to_value(&s.kind).expect("json")["kind"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    insta::assert_snapshot!(kinds.join("\n"));
}

#[test]
fn bindings_must_come_before_use() {
    let topo = || {
        Topology::parse(&SourceFile::from_text(
            "t.toml",
            "[roles.quorum]\ncount = 3\nservices = [\"etcd\"]\n",
        ))
    };
    let text = "topology = \"t\"\n[[step]]\nexpect = \"leader\"\nservice = \"etcd\"\nnot = \"$old\"\n[[step]]\naction = \"find-leader\"\nservice = \"etcd\"\nbind = \"old\"\n";
    let e = Scenario::parse(&SourceFile::from_text("s.toml", text), |_| topo()).unwrap_err();
    assert_eq!((e.line, e.column), (5, 7));
    assert!(e.message.contains("`$old` is not bound"), "{}", e.message);
}

#[test]
fn a_topology_can_fix_host_parts_and_zookeeper_ids() {
    let topo = Topology::parse(&SourceFile::from_text(
        "topologies/zookeeper-five.toml",
        include_str!("../../topologies/zookeeper-five.toml"),
    ))
    .expect("valid");
    let hosts: Vec<u8> = topo.nodes().iter().map(|n| n.host).collect();
    assert_eq!(hosts, [8, 9, 10, 11, 12]);
    let ids: Vec<u64> = topo
        .nodes()
        .iter()
        .filter_map(|n| topo.zookeeper_id(&n.fqdn))
        .collect();
    assert_eq!(ids, [1, 2, 5, 4, 3]);
    // Without `hosts` and `ids`: numbered from .10 and from 1 in file order, as before.
    let plain = Topology::parse(&SourceFile::from_text(
        "t.toml",
        "[roles.border]\n[roles.quorum]\ncount = 3\nservices = [\"zookeeper\"]\n",
    ))
    .unwrap();
    let hosts: Vec<u8> = plain.nodes().iter().map(|n| n.host).collect();
    assert_eq!(hosts, [10, 11, 12, 13]);
    assert_eq!(plain.zookeeper_id("quorum-1.cell-1.dc-1.demo.lan"), Some(1));
    assert_eq!(plain.zookeeper_id("border-1.cell-1.dc-1.demo.lan"), None);
}

#[test]
fn fixed_hosts_and_ids_are_checked_where_written() {
    let cases = [
        (
            "[roles.border]\n[roles.quorum]\nhosts = [12, 10]\n",
            (3, 14),
            "host 10 is given to both border-1 and quorum-2",
        ),
        (
            "[roles.quorum]\ncount = 2\nhosts = [12]\n",
            (3, 9),
            "role `quorum` has `count = 2` but 1 `hosts`",
        ),
        (
            "[roles.quorum]\nhosts = [1]\n",
            (2, 10),
            "host 1 of role `quorum` is out of range",
        ),
        (
            "[roles.quorum]\ncount = 2\nservices = [\"zookeeper\"]\n[services.zookeeper]\nids = { quorum-1 = 3, quorum-2 = 3 }\n",
            (5, 34),
            "server id 3 is given to both quorum-1 and quorum-2",
        ),
        (
            "[roles.quorum]\ncount = 2\nservices = [\"zookeeper\"]\n[services.zookeeper]\nids = { quorum-1 = 0, quorum-2 = 3 }\n",
            (5, 20),
            "server id 0 of quorum-1 is out of range (1 to 255)",
        ),
        (
            "[roles.quorum]\ncount = 2\nservices = [\"zookeeper\"]\n[services.zookeeper]\nids = { quorum-1 = 1 }\n",
            (5, 7),
            "`ids` gives no server id to quorum-2; give every zookeeper node one",
        ),
        (
            "[roles.border]\n[roles.quorum]\nservices = [\"zookeeper\"]\n[services.zookeeper]\nids = { border-1 = 1 }\n",
            (5, 9),
            "`border-1` is no node that runs zookeeper",
        ),
    ];
    for (text, at, message) in cases {
        let e = Topology::parse(&SourceFile::from_text("t.toml", text)).expect_err(text);
        assert_eq!(
            (e.line, e.column, e.message.as_str()),
            (at.0, at.1, message),
            "{text}"
        );
    }
}

#[test]
fn the_migration_scenario_reads_as_written() {
    let source = SourceFile::from_text(
        "scenarios/zookeeper-static-migration.toml",
        include_str!("../../scenarios/zookeeper-static-migration.toml"),
    );
    let scenario = Scenario::parse(&source, |_| {
        Topology::parse(&SourceFile::from_text(
            "topologies/zookeeper-five.toml",
            include_str!("../../topologies/zookeeper-five.toml"),
        ))
    })
    .expect("valid");
    let kinds: Vec<String> = scenario
        .steps
        .iter()
        .map(|s| serde_json::to_string(&s.kind).expect("json"))
        .collect();
    insta::assert_snapshot!(kinds.join("\n"));
}

#[test]
fn recovery_scenarios_read_as_written() {
    let topology = || {
        Topology::parse(&SourceFile::from_text(
            "topologies/etcd-quorum.toml",
            include_str!("../../topologies/etcd-quorum.toml"),
        ))
    };
    let source = SourceFile::from_text(
        "scenarios/r.toml",
        include_str!("../../scenarios/etcd-recreate-from-config.toml"),
    );
    let scenario = Scenario::parse(&source, |_| topology()).expect("valid");
    let ledger = scenario.ledger.as_ref().expect("a ledger");
    assert!(ledger.tolerate.wiped && !ledger.tolerate.after_snapshot);
    assert_eq!(ledger.settings.prefix, "/succession/ledger/");
    assert_eq!(ledger.settings.interval.as_millis(), 50);
    let phases: Vec<&str> = scenario
        .steps
        .iter()
        .filter_map(|s| s.phase.as_deref())
        .collect();
    assert_eq!(
        phases,
        vec![
            "before the failure",
            "majority lost",
            "recreate",
            "join the remaining nodes",
            "reload the configuration"
        ]
    );
    let interrupted: Vec<&str> = scenario
        .steps
        .iter()
        .filter(|s| s.interrupt)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        interrupted,
        vec!["choose the masters and create a new cluster from the configuration on disk"]
    );
    let recovery: Vec<String> = scenario
        .steps
        .iter()
        .filter(|s| matches!(s.kind, crate::steps::StepKind::Disaster(_)))
        .map(|s| {
            serde_json::to_value(&s.kind).expect("json")["recovery"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        recovery,
        vec![
            "etcd-load-config",
            "expect-etcd-config",
            "expect-ledger",
            "expect-quorum-lost",
            "etcd-wipe",
            "etcd-new-cluster",
            "etcd-load-config",
            "expect-etcd-health",
            "expect-etcd-config",
            "expect-ledger",
        ]
    );
    let strict =
        "topology = \"t\"\n[ledger]\nuncommitted_window = \"2s\"\n[[step]]\nexpect = \"ledger\"\n";
    let e = Scenario::parse(&SourceFile::from_text("s.toml", strict), |_| topology()).unwrap_err();
    assert!(
        e.message
            .contains("`uncommitted_window` is set but `tolerate` does not list"),
        "{}",
        e.message
    );
}

#[test]
fn a_scenario_is_refused_on_a_provider_without_what_its_steps_need() {
    use crate::spec::capability::Capability;
    let source = SourceFile::from_text(
        "scenarios/chaos-faults.toml",
        include_str!("../../scenarios/chaos-faults.toml"),
    );
    let scenario = Scenario::parse(&source, |_| {
        Topology::parse(&SourceFile::from_text(
            "topologies/quorum.toml",
            include_str!("../../topologies/quorum.toml"),
        ))
    })
    .expect("valid");
    let every = [
        Capability::StableAddress,
        Capability::NeighbourTables,
        Capability::PacketFilters,
        Capability::Pause,
    ];
    assert!(scenario.refuse_unmet("local", &every).is_ok());
    // Each need points at the step that has it: the first pause, then the first partition.
    let text = &source.text;
    let line_of = |needle: &str| {
        text[..text.find(needle).expect("in the scenario")]
            .lines()
            .count()
            + 1
    };
    let e = scenario
        .refuse_unmet("pods", &[Capability::PacketFilters])
        .expect_err("no pause");
    assert_eq!(
        (e.line, e.column),
        (line_of("action = \"pause-service\""), 10)
    );
    assert_eq!(
        e.message,
        "`pause-service` needs pausing processes (pause), which the pods provider does not offer"
    );
    let e = scenario
        .refuse_unmet("pods", &[Capability::Pause])
        .expect_err("no packet filters");
    assert_eq!((e.line, e.column), (line_of("action = \"partition\""), 10));
    // A step that needs nothing of the provider (the first, kill-service) carries no need.
    assert!(scenario.steps[0].needs.is_empty());
}

#[test]
fn the_servers_snapshot_and_compaction_settings_are_read_and_checked() {
    let text = "cell = \"c\"\ndc = \"d\"\ndomain = \"x.lan\"\n\n[roles.quorum]\ncount = 3\nservices = [\"etcd\", \"zookeeper\"]\n\n[services.etcd]\nsnapshot_count = 100\nquota_backend_bytes = 1048576\nauto_compaction_revisions = 50\n\n[services.zookeeper]\nsnap_count = 20\n";
    let topo = Topology::parse(&SourceFile::from_text("t.toml", text.to_string()))
        .expect("a valid topology");
    assert_eq!(topo.settings.etcd_snapshot_count, Some(100));
    assert_eq!(topo.settings.etcd_quota_backend_bytes, Some(1_048_576));
    assert_eq!(topo.settings.etcd_compaction_revisions, Some(50));
    assert_eq!(topo.settings.zookeeper_snap_count, Some(20));
    let too_low = text.replace("snap_count = 20", "snap_count = 1");
    let e = Topology::parse(&SourceFile::from_text("t.toml", too_low))
        .expect_err("ZooKeeper needs a snapCount of 2 or more");
    assert!(
        e.to_string()
            .starts_with("t.toml:15:14: `snap_count` must be at least 2"),
        "{e}"
    );
    let zero = text.replace("snapshot_count = 100", "snapshot_count = 0");
    let e = Topology::parse(&SourceFile::from_text("t.toml", zero)).expect_err("no snapshots");
    assert!(
        e.to_string()
            .starts_with("t.toml:10:18: `snapshot_count` must be at least 1"),
        "{e}"
    );
}

#[test]
fn the_workload_claims_are_read_and_a_claim_it_does_not_know_is_located() {
    let topo = || {
        Topology::parse(&SourceFile::from_text(
            "t.toml",
            "[roles.quorum]\ncount = 3\nservices = [\"etcd\"]\n",
        ))
    };
    let text = "topology = \"t\"\n[workload]\njudge_serializable_reads_as = \"linearizable\"\njudge_compacted_watches_as = \"complete\"\nretry_unknown_puts = true\njudge_retried_puts_as = \"one write\"\n[[step]]\naction = \"wait\"\nfor = \"1s\"\n";
    let s = Scenario::parse(&SourceFile::from_text("s.toml", text), |_| topo()).expect("valid");
    let w = s.workload.expect("a workload");
    assert!(w.serializable_claimed_linearizable && w.compacted_watch_claimed_complete);
    assert!(w.retry_unknown_puts && w.retried_put_counted_as_one);
    let zk = "topology = \"t\"\n[workload]\nzookeeper_readers = 3\n[[step]]\naction = \"wait\"\nfor = \"1s\"\n";
    let e = Scenario::parse(&SourceFile::from_text("s.toml", zk), |_| topo()).unwrap_err();
    assert_eq!((e.line, e.column), (3, 21));
    assert!(e.message.contains("needs ZooKeeper"), "{}", e.message);
    let honest = text.replace("\"one write\"", "\"attempts\"");
    let s = Scenario::parse(&SourceFile::from_text("s.toml", &honest), |_| topo()).expect("valid");
    assert!(!s.workload.expect("a workload").retried_put_counted_as_one);
    let bad = text.replace("\"complete\"", "\"whole\"");
    let e = Scenario::parse(&SourceFile::from_text("s.toml", &bad), |_| topo()).unwrap_err();
    assert_eq!((e.line, e.column), (4, 30));
    assert!(
        e.message
            .contains("unknown `judge_compacted_watches_as = \"whole\"`"),
        "{}",
        e.message
    );
}

#[test]
fn a_topology_with_a_faulty_disk_is_refused_where_the_provider_offers_none() {
    use crate::scenario::Scenario;
    use crate::spec::capability::Capability;
    let source = SourceFile::from_text(
        "scenarios/zookeeper-power-loss.toml",
        include_str!("../../scenarios/zookeeper-power-loss.toml"),
    );
    let scenario = Scenario::parse(&source, |_| {
        Topology::parse(&SourceFile::from_text(
            "topologies/zookeeper-faulty-disk.toml",
            include_str!("../../topologies/zookeeper-faulty-disk.toml"),
        ))
    })
    .expect("valid");
    assert!(scenario
        .refuse_unmet("local", crate::spec::capability::EVERY)
        .is_ok());
    let without: Vec<Capability> = crate::spec::capability::EVERY
        .iter()
        .copied()
        .filter(|c| *c != Capability::FaultyDisk)
        .collect();
    let e = scenario
        .refuse_unmet("ec2", &without)
        .expect_err("no faulty disk on EC2");
    // The lose-power step is what needs it first, at its line.
    assert!(
        e.message
            .starts_with("`lose-power` needs a faulty disk (FUSE)"),
        "{}",
        e.message
    );
    // A scenario without a disk step on such a topology is refused for the topology itself.
    let quiet = SourceFile::from_text(
        "scenarios/quiet.toml",
        "name = \"quiet\"\ntopology = \"t\"\n\n[[step]]\naction = \"wait\"\nfor = \"1s\"\n",
    );
    let scenario = Scenario::parse(&quiet, |_| {
        Topology::parse(&SourceFile::from_text(
            "topologies/zookeeper-faulty-disk.toml",
            include_str!("../../topologies/zookeeper-faulty-disk.toml"),
        ))
    })
    .expect("valid");
    let e = scenario.refuse_unmet("ec2", &without).expect_err("refused");
    assert_eq!(
        e.message,
        "the topology puts the data of zookeeper on the faulty disk (`faulty_disk = true`), which the ec2 provider does not offer"
    );
    assert!(scenario.topology.settings.zookeeper_snapshot_trust_empty);
    assert!(scenario.topology.settings.zookeeper_force_sync);
}

#[test]
fn zookeeper_durability_settings_are_read_and_typos_refused() {
    let text = "cell = \"c\"\ndc = \"d\"\ndomain = \"x.lan\"\n\n[roles.quorum]\ncount = 3\nservices = [\"zookeeper\"]\n\n[services.zookeeper]\nforce_sync = false\nfaulty_disk = true\n";
    let topo = Topology::parse(&SourceFile::from_text("t.toml", text.to_string()))
        .expect("a valid topology");
    assert!(!topo.settings.zookeeper_force_sync);
    assert!(topo
        .settings
        .faulty_disk
        .contains(&crate::service::ServiceKind::Zookeeper));
    let typo = text.replace("faulty_disk", "faulty_disc");
    let e = Topology::parse(&SourceFile::from_text("t.toml", typo)).expect_err("unknown key");
    assert!(e.to_string().contains("faulty_disc"), "{e}");
}
