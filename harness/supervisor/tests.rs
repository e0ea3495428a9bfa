//! The supervisor driven through mock hosts: no root, no servers.

use std::path::Path;

use crate::cluster::Cluster;
use crate::provider::mock::MockHosts;
use crate::provider::{Hosts, Intent, Signal};
use crate::service::{zookeeper, ServiceKind};
use crate::source::SourceFile;
use crate::spec::Topology;

const CELL: &str = r#"
cell = "cell-1"
[roles.border]
count = 1
services = ["ingress"]
[roles.quorum]
count = 3
services = ["zookeeper", "etcd"]
[roles.master]
count = 1
services = ["mesos-master", "marathon"]
[roles.worker]
count = 1
services = ["app"]
"#;

fn cluster() -> Cluster<MockHosts> {
    let topology =
        Topology::parse(&SourceFile::from_text("cell.toml", CELL)).expect("a valid topology");
    Cluster::new(MockHosts::new(&topology))
}

const Q1: &str = "quorum-1.cell-1.dc-1.demo.lan";
const Q2: &str = "quorum-2.cell-1.dc-1.demo.lan";
const M1: &str = "master-1.cell-1.dc-1.demo.lan";
const B1: &str = "border-1.cell-1.dc-1.demo.lan";

fn argv_of(c: &Cluster<MockHosts>, node: &str, word: &str) -> Vec<String> {
    c.hosts()
        .started_on(node)
        .into_iter()
        .rev()
        .find(|p| p.spawn.argv.iter().any(|a| a.contains(word)))
        .map(|p| p.spawn.argv.clone())
        .unwrap_or_default()
}

fn flag<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .map(String::as_str)
}

#[tokio::test]
async fn every_service_starts_with_what_the_topology_renders() {
    let mut c = cluster();
    c.start_all().await.expect("started");
    // etcd: a new cluster of the three quorum nodes under the run's token.
    let etcd = argv_of(&c, Q1, "etcd");
    assert_eq!(flag(&etcd, "--name"), Some("quorum-1"));
    assert_eq!(flag(&etcd, "--initial-cluster-state"), Some("new"));
    assert_eq!(
        flag(&etcd, "--initial-cluster-token"),
        Some("succession-m0c0c0")
    );
    assert_eq!(
        flag(&etcd, "--initial-cluster"),
        Some("quorum-1=http://10.0.0.12:2380,quorum-2=http://10.0.0.13:2380,quorum-3=http://10.0.0.14:2380")
    );
    assert_eq!(flag(&etcd, "--data-dir"), Some("/data/quorum-1/etcd"));
    // ZooKeeper: zoo.cfg with the static ensemble, and myid, written before it starts.
    let cfg = c
        .hosts()
        .file(Q2, Path::new("/data/quorum-2/zookeeper/zoo.cfg"))
        .expect("zoo.cfg");
    assert!(cfg.contains("server.1=10.0.0.12:2888:3888\nserver.2=10.0.0.13:2888:3888\nserver.3=10.0.0.14:2888:3888\n"), "{cfg}");
    assert_eq!(
        c.hosts()
            .file(Q2, Path::new("/data/quorum-2/zookeeper/myid"))
            .as_deref(),
        Some("2\n")
    );
    // The stand-ins run from where the hosts keep the binary, electing through the ensemble.
    let mesos = argv_of(&c, M1, "mesos-master");
    assert_eq!(mesos[0], "/opt/succession-standin");
    assert_eq!(
        flag(&mesos, "--zk"),
        Some("10.0.0.12:2181,10.0.0.13:2181,10.0.0.14:2181")
    );
    // The ingress fronts the app and both master endpoints.
    let haproxy = c
        .hosts()
        .file(B1, Path::new("/data/border-1/ingress/haproxy.cfg"))
        .expect("haproxy.cfg");
    for backend in ["backend app", "backend mesos", "backend marathon"] {
        assert!(haproxy.contains(backend), "{haproxy}");
    }
    // Every service is active and running.
    let status = c.status().await;
    assert_eq!(status.len(), 10);
    assert!(status.iter().all(|s| s.is_running()), "{status:?}");
    assert_eq!(c.members(ServiceKind::Etcd).len(), 3);
}

#[tokio::test]
async fn starting_what_runs_starts_nothing_and_a_stop_is_recorded() {
    let mut c = cluster();
    c.start_all().await.expect("started");
    let before = c.hosts().processes.len();
    c.start_service(Q1, ServiceKind::Etcd).await.expect("start");
    assert_eq!(c.hosts().processes.len(), before);
    assert!(!c.stop_service(Q1, ServiceKind::Etcd).await.expect("stop"));
    let row = c
        .status()
        .await
        .into_iter()
        .find(|s| s.node == Q1 && s.service == ServiceKind::Etcd)
        .expect("row");
    assert_eq!((row.active, row.sub), ("inactive", "dead"));
    assert_eq!(c.members(ServiceKind::Etcd).len(), 2);
    c.start_service(Q1, ServiceKind::Etcd).await.expect("start");
    assert_eq!(c.hosts().processes.len(), before + 1);
}

fn etcd_on_q1(hosts: &MockHosts) -> &crate::provider::mock::MockProcess {
    hosts
        .started_on(Q1)
        .into_iter()
        .find(|p| p.spawn.argv.iter().any(|a| a.contains("etcd")))
        .expect("etcd ran on q1")
}

#[tokio::test(start_paused = true)]
async fn a_stop_that_needs_sigkill_says_so() {
    let mut c = cluster();
    c.start_all().await.expect("started");
    let mut hosts = c.into_hosts();
    hosts.hangs_on = Some("etcd".into());
    let mut c = Cluster::new(hosts);
    let grace = c.hosts().topology().settings.stop_timeout;
    let began = tokio::time::Instant::now();
    // The records carried over: the supervisor stops the process it finds there.
    assert!(c.stop_service(Q1, ServiceKind::Etcd).await.expect("stop"));
    assert!(began.elapsed() >= grace, "SIGKILL before the grace ran out");
    let etcd = etcd_on_q1(c.hosts());
    assert_eq!(etcd.signals, [Signal::Terminate, Signal::Kill]);
    assert!(!etcd.running);
}

#[tokio::test(start_paused = true)]
async fn a_stop_that_sigterm_ends_sends_nothing_more() {
    let mut c = cluster();
    c.start_all().await.expect("started");
    assert!(!c.stop_service(Q1, ServiceKind::Etcd).await.expect("stop"));
    let etcd = etcd_on_q1(c.hosts());
    assert_eq!(etcd.signals, [Signal::Terminate]);
}

#[tokio::test]
async fn a_crashed_service_shows_failed() {
    let mut c = cluster();
    c.start_all().await.expect("started");
    let pid = c.hosts().record().services[&format!("{Q2}/zookeeper")]
        .process
        .expect("a process")
        .pid;
    let mut hosts = c.into_hosts();
    hosts.crash(pid);
    let c = Cluster::new(hosts);
    let row = c
        .status()
        .await
        .into_iter()
        .find(|s| s.node == Q2 && s.service == ServiceKind::Zookeeper)
        .expect("row");
    assert_eq!((row.active, row.sub), ("failed", "exited"));
}

#[tokio::test]
async fn a_replaced_node_starts_etcd_only_once_told_how_to_join() {
    let mut c = cluster();
    c.start_all().await.expect("started");
    c.terminate(Q2).await.expect("terminated");
    assert!(c.members(ServiceKind::Etcd).iter().all(|n| n.fqdn != Q2));
    assert_eq!(
        c.hosts().record().services[&format!("{Q2}/etcd")].intent,
        Intent::Stopped
    );
    let view = c.replace(Q2).await.expect("replaced");
    assert_eq!(view.generation, 1);
    let e = c.start_service(Q2, ServiceKind::Etcd).await.unwrap_err();
    assert!(
        e.to_string().contains(
            "etcd on quorum-2 lost its data (the node was replaced) and was never added back"
        ),
        "{e}"
    );
    c.set_etcd_join(
        Q2,
        "quorum-1=http://10.0.0.11:2380,quorum-2=http://10.0.0.12:2380".into(),
    );
    c.start_service(Q2, ServiceKind::Etcd).await.expect("joins");
    let etcd = argv_of(&c, Q2, "etcd");
    assert_eq!(flag(&etcd, "--initial-cluster-state"), Some("existing"));
}

#[tokio::test]
async fn a_wipe_refuses_a_running_service_and_makes_etcd_wait_for_a_decision() {
    let mut c = cluster();
    c.start_all().await.expect("started");
    c.hosts()
        .write_file(Q1, Path::new("/data/quorum-1/etcd/member/wal/0.wal"), b"x")
        .await
        .expect("write");
    let e = c.wipe_data(Q1, ServiceKind::Etcd).await.unwrap_err();
    assert!(
        e.to_string().contains("it is running; stop it first"),
        "{e}"
    );
    c.stop_service(Q1, ServiceKind::Etcd).await.expect("stop");
    assert!(c.holds_data(Q1, ServiceKind::Etcd).await.expect("look"));
    assert!(c.wipe_data(Q1, ServiceKind::Etcd).await.expect("wiped"));
    assert!(!c.holds_data(Q1, ServiceKind::Etcd).await.expect("look"));
    let e = c.start_service(Q1, ServiceKind::Etcd).await.unwrap_err();
    assert!(e.to_string().contains("(its data was wiped)"), "{e}");
}

#[tokio::test]
async fn zookeeper_restarts_with_the_id_and_ensemble_a_step_set() {
    let mut c = cluster();
    c.start_all().await.expect("started");
    let started = c.zookeeper_started_with(Q1).expect("started with");
    assert_eq!(started.id, 1);
    let mut next = started.clone();
    next.id = 7;
    next.ensemble[0] = zookeeper::Server {
        id: 7,
        address: next.ensemble[0].address,
    };
    c.set_zookeeper_config(Q1, next.clone());
    // Nothing changes until the server restarts.
    assert_eq!(c.zookeeper_started_with(Q1), Some(started));
    c.stop_service(Q1, ServiceKind::Zookeeper)
        .await
        .expect("stop");
    c.start_service(Q1, ServiceKind::Zookeeper)
        .await
        .expect("start");
    assert_eq!(c.zookeeper_started_with(Q1), Some(next));
    assert_eq!(
        c.hosts()
            .file(Q1, Path::new("/data/quorum-1/zookeeper/myid"))
            .as_deref(),
        Some("7\n")
    );
}

#[tokio::test]
async fn the_log_since_the_last_start_is_read_from_its_banner() {
    let mut c = cluster();
    c.start_all().await.expect("started");
    c.stop_service(Q1, ServiceKind::Zookeeper)
        .await
        .expect("stop");
    c.start_service(Q1, ServiceKind::Zookeeper)
        .await
        .expect("start");
    let log = c
        .service_log_since_start(Q1, ServiceKind::Zookeeper)
        .await
        .expect("a log");
    assert!(
        log.starts_with("--- succession: starting zookeeper at "),
        "{log}"
    );
    assert_eq!(log.matches("--- succession: starting").count(), 1, "{log}");
}

#[tokio::test]
async fn a_service_the_role_does_not_run_is_refused() {
    let mut c = cluster();
    let e = c.start_service(M1, ServiceKind::Etcd).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to start etcd on master-1.cell-1.dc-1.demo.lan: the topology does not run etcd on role master"
    );
    assert!(c.hosts().processes.is_empty());
}
