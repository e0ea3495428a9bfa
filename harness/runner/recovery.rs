//! What the etcd disaster-recovery steps do, and the write ledger's life within a run: started
//! before the first step, told of members and phases as they change, read back when a step asks
//! and at the end, and judged by the pure `ledger::check`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use futures::future::join_all;

use super::etcd_members::MEMBERSHIP_DEADLINE;
use super::leadership::wait_leader;
use super::steps::target_nodes;
use super::{
    name, poll_until, poll_until_held, Poll, Recorder, Runner, ELECTION_POLL_INTERVAL,
    POLL_INTERVAL,
};
use crate::cluster::Cluster;
use crate::ledger::history::HISTORY_VERSION;
use crate::ledger::writer::{Endpoint, LedgerWriter};
use crate::ledger::{
    check, CaptureKind, History, LedgerEvent, LedgerRecord, LedgerVerdict, SeqSet,
};
use crate::observe::Observer;
use crate::probe::leader::MemberView;
use crate::provider::{Hosts, NodeView};
use crate::recovery::{choose_masters, etcdctl, Dump, DumpEntry, MasterChoice};
use crate::service::{etcd, ServiceKind};
use crate::spec::{LedgerSpec, NodeRef, RecoveryStep, Target};

/// How long a snapshot may take to stream.
const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(60);
/// How long restoring a dump is retried.
const RESTORE_DEADLINE: Duration = Duration::from_secs(60);
/// How long a forced member may take to lead a cluster of itself.
const FORCE_DEADLINE: Duration = Duration::from_secs(30);
/// How long the final read-back is retried (shorter when the run failed already).
const FINAL_READ_DEADLINE: Duration = Duration::from_secs(30);
const FAILED_RUN_READ_DEADLINE: Duration = Duration::from_secs(5);
/// The key the quorum-loss probe tries to write.
const PROBE_KEY: &str = "/succession/probe/quorum";
/// The phase of writes made before any step names one.
pub const FIRST_PHASE: &str = "start";

/// A snapshot or dump file taken in this run.
struct CaptureFile {
    path: PathBuf,
    kind: CaptureKind,
    revision: i64,
}

/// The ledger of a run while it writes.
struct LedgerRun {
    spec: LedgerSpec,
    writer: LedgerWriter,
    events: Vec<LedgerEvent>,
    started_wall: String,
    scenario: String,
    run_id: String,
}

/// What recovery steps carry from step to step.
#[derive(Default)]
pub(crate) struct State {
    ledger: Option<LedgerRun>,
    captures: BTreeMap<String, CaptureFile>,
    /// Clusters created anew so far (each gets a token of its own).
    incarnation: u32,
    /// The step running (read-backs are reported under its name).
    pub(super) step: String,
    /// The ledger's history, once the run has ended.
    pub(super) history: Option<History>,
    /// The ledger's verdict, once the run has ended.
    pub(super) verdict: Option<LedgerVerdict>,
}

fn endpoints<H: Hosts>(cluster: &Cluster<H>) -> Vec<Endpoint> {
    cluster
        .members(ServiceKind::Etcd)
        .into_iter()
        .map(|n| Endpoint {
            address: cluster.endpoint(&n, crate::base::ports::ETCD_CLIENT),
            node: n.short,
        })
        .collect()
}

impl State {
    /// Starts the ledger writing (before the first step).
    pub(super) fn start_ledger<H: Hosts>(
        &mut self,
        spec: &LedgerSpec,
        scenario: &str,
        cluster: &Cluster<H>,
        rec: &mut Recorder,
    ) {
        let origin_wall = SystemTime::now()
            .checked_sub(rec.origin.elapsed())
            .unwrap_or_else(SystemTime::now);
        let writer = LedgerWriter::start(
            spec.settings.clone(),
            cluster.run_id(),
            rec.origin,
            endpoints(cluster),
            FIRST_PHASE,
        );
        rec.record(format!(
            "ledger: writing a key under {} every {}",
            spec.settings.prefix,
            crate::base::time::human_ms(spec.settings.interval.as_millis() as u64)
        ));
        self.ledger = Some(LedgerRun {
            spec: spec.clone(),
            writer,
            events: vec![LedgerEvent::Phase {
                at_ms: rec.elapsed_ms(),
                name: FIRST_PHASE.to_string(),
            }],
            started_wall: humantime::format_rfc3339_millis(origin_wall).to_string(),
            scenario: scenario.to_string(),
            run_id: cluster.run_id().to_string(),
        });
    }

    /// Tells the ledger which members are live now.
    pub(super) fn refresh<H: Hosts>(&self, cluster: &Cluster<H>) {
        if let Some(l) = &self.ledger {
            l.writer.set_endpoints(endpoints(cluster));
        }
    }

    /// Begins a phase.
    pub(super) fn set_phase(&mut self, name: &str, at_ms: u64) {
        if let Some(l) = &mut self.ledger {
            l.writer.set_phase(name);
            l.events.push(LedgerEvent::Phase {
                at_ms,
                name: name.to_string(),
            });
        }
    }

    fn event(&mut self, event: LedgerEvent) {
        if let Some(l) = &mut self.ledger {
            l.events.push(event);
        }
    }

    fn history_with(&self, records: Vec<LedgerRecord>) -> Option<History> {
        let l = self.ledger.as_ref()?;
        Some(History {
            version: HISTORY_VERSION,
            scenario: l.scenario.clone(),
            run_id: l.run_id.clone(),
            started_wall: l.started_wall.clone(),
            prefix: l.spec.settings.prefix.clone(),
            tolerate: l.spec.tolerate.clone(),
            records,
            events: l.events.clone(),
        })
    }

    /// The history so far, for a run that ended before the ledger was read back at the end.
    pub(super) fn history_so_far(&self) -> Option<History> {
        let records = self.ledger.as_ref()?.writer.records();
        self.history_with(records)
    }
}

/// Stops the ledger, reads it back, and judges it; `None` when the scenario runs no ledger.
/// Returns whether it passed and what to say.
pub(super) async fn finish_ledger<H: Hosts>(
    r: &mut Runner<'_, H>,
    run_failed: bool,
) -> Option<(bool, String)> {
    let ledger = r.recovery.ledger.as_mut()?;
    let records = ledger.writer.stop().await;
    let prefix = ledger.spec.settings.prefix.clone();
    let run_id = ledger.run_id.clone();
    r.rec.record(format!(
        "ledger: stopped after {} writes; reading them back",
        records.len()
    ));
    let deadline = if run_failed {
        FAILED_RUN_READ_DEADLINE
    } else {
        FINAL_READ_DEADLINE
    };
    let at_ms = r.rec.elapsed_ms();
    let read = {
        let (cluster, observer, rec) = r.split();
        let (prefix, run_id) = (&prefix, &run_id);
        poll_until(deadline, rec, || async move {
            let outcome = read_any(observer, cluster, None, prefix, run_id).await;
            Poll {
                observation: Some((
                    "ledger read-back".to_string(),
                    match &outcome {
                        Ok(read) => format!("read through {}", read.through),
                        Err(e) => e.clone(),
                    },
                )),
                outcome,
            }
        })
        .await
    };
    let event = match read {
        Ok((read, _)) => LedgerEvent::ReadBack {
            at_ms,
            through: read.through,
            step: "end of run".to_string(),
            final_read: true,
            present: read.present,
            mismatched: read.mismatched,
            foreign: read.foreign,
        },
        Err(error) => LedgerEvent::ReadFailed {
            at_ms,
            step: "end of run".to_string(),
            final_read: true,
            error,
        },
    };
    r.recovery.event(event);
    let history = r.recovery.history_with(records)?;
    let verdict = check(&history);
    for s in &verdict.statements {
        r.rec.record(format!("ledger: {s}"));
    }
    let detail = if verdict.pass {
        verdict.summary()
    } else {
        format!("{}; {}", verdict.violations.join("; "), verdict.summary())
    };
    let pass = verdict.pass;
    r.recovery.history = Some(history);
    r.recovery.verdict = Some(verdict);
    Some((pass, detail))
}

/// What one read of the ledger found.
struct Read {
    through: String,
    keys: usize,
    present: SeqSet,
    mismatched: Vec<u64>,
    foreign: u64,
}

async fn read_ledger(
    observer: &Observer,
    node: &NodeView,
    url: &str,
    prefix: &str,
    run_id: &str,
) -> Result<Read, String> {
    let (_, kvs) = observer
        .etcd
        .range(url, prefix.as_bytes(), false, 0)
        .await?;
    let mut present = Vec::new();
    let mut mismatched = Vec::new();
    let mut foreign = 0;
    for (key, value) in &kvs {
        match History::seq_of(prefix, &String::from_utf8_lossy(key)) {
            Some(seq) => {
                present.push(seq);
                if value.as_slice() != History::value(run_id, seq).as_bytes() {
                    mismatched.push(seq);
                }
            }
            None => foreign += 1,
        }
    }
    Ok(Read {
        through: node.short.clone(),
        keys: kvs.len(),
        present: SeqSet::from_seqs(present),
        mismatched,
        foreign,
    })
}

/// Reads the ledger through `node`, or through the first live member that answers.
async fn read_any<H: Hosts>(
    observer: &Observer,
    cluster: &Cluster<H>,
    node: Option<&str>,
    prefix: &str,
    run_id: &str,
) -> Result<Read, String> {
    let candidates: Vec<NodeView> = match node {
        Some(fqdn) => cluster
            .nodes()
            .into_iter()
            .filter(|n| n.fqdn == fqdn)
            .collect(),
        None => cluster.members(ServiceKind::Etcd),
    };
    let mut errors = Vec::new();
    for n in &candidates {
        match read_ledger(observer, n, &cluster.etcd_url(n), prefix, run_id).await {
            Ok(read) => return Ok(read),
            Err(e) => errors.push(e),
        }
    }
    if candidates.is_empty() {
        errors.push("no live etcd member to read through".to_string());
    }
    Err(errors.join("; "))
}

/// Runs one recovery step.
pub(super) async fn execute<H: Hosts>(
    r: &mut Runner<'_, H>,
    step: &RecoveryStep,
) -> Result<String, String> {
    let result = match step {
        RecoveryStep::EtcdLoadConfig => load_config(r).await,
        RecoveryStep::EtcdWipe { on } => wipe(r, on).await,
        RecoveryStep::EtcdNewCluster { role, nodes } => new_cluster(r, role, nodes).await,
        RecoveryStep::EtcdForceNewCluster { node } => force_new_cluster(r, node).await,
        RecoveryStep::EtcdSnapshot { label, node } => snapshot(r, label, node.as_ref()).await,
        RecoveryStep::EtcdSnapshotRestore { label, on } => snapshot_restore(r, label, on).await,
        RecoveryStep::EtcdDump { label, prefix } => dump(r, label, prefix).await,
        RecoveryStep::EtcdDumpRestore { label } => dump_restore(r, label).await,
        RecoveryStep::ExpectQuorumLost { within, measure } => {
            expect_quorum_lost(r, *within, measure.as_deref()).await
        }
        RecoveryStep::ExpectEtcdHealth { on, within } => expect_health(r, on, *within).await,
        RecoveryStep::ExpectEtcdConfig { within } => expect_config(r, *within).await,
        RecoveryStep::ExpectDumpRestored { label, within } => {
            expect_dump_restored(r, label, *within).await
        }
        RecoveryStep::ExpectLedger {
            node,
            acknowledged,
            within,
        } => expect_ledger(r, node.as_ref(), *acknowledged, *within).await,
    };
    r.recovery.refresh(&*r.cluster);
    result
}

fn node_view<H: Hosts>(r: &Runner<'_, H>, fqdn: &str) -> Result<NodeView, String> {
    r.cluster
        .nodes()
        .into_iter()
        .find(|n| n.fqdn == fqdn)
        .ok_or_else(|| format!("unknown node {fqdn}"))
}

fn peer(n: &NodeView) -> etcd::Peer {
    etcd::Peer {
        name: n.short.clone(),
        address: n.address,
    }
}

/// Whether etcd's process runs on a node.
async fn etcd_running<H: Hosts>(r: &Runner<'_, H>, fqdn: &str) -> bool {
    r.cluster.is_running(fqdn, ServiceKind::Etcd).await
}

/// The nodes of a target that run etcd.
fn etcd_targets<H: Hosts>(r: &Runner<'_, H>, on: &Target) -> Result<Vec<NodeView>, String> {
    let wanted = target_nodes(r, on)?;
    let nodes: Vec<NodeView> = r
        .cluster
        .nodes()
        .into_iter()
        .filter(|n| wanted.contains(&n.fqdn))
        .filter(|n| matches!(on, Target::Node(_)) || n.services.contains(&ServiceKind::Etcd))
        .collect();
    if nodes.is_empty() {
        return Err("no live etcd node to act on".to_string());
    }
    Ok(nodes)
}

fn list(nodes: &[NodeView]) -> String {
    nodes
        .iter()
        .map(|n| n.short.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The part of a probe error after the endpoint, with the client's timeouts said plainly.
fn brief(error: &str) -> String {
    let rest = error
        .rsplit_once(&format!(":{}: ", crate::base::ports::ETCD_CLIENT))
        .map(|(_, rest)| rest)
        .unwrap_or(error);
    if rest.contains("Timeout expired") || rest.starts_with("no answer within") {
        "no answer in time".to_string()
    } else {
        rest.to_string()
    }
}

async fn load_config<H: Hosts>(r: &mut Runner<'_, H>) -> Result<String, String> {
    let config = r.cluster.cell_config().map_err(|e| e.to_string())?;
    let keys = config.keys();
    let prefix = config.prefix();
    let (cluster, observer, rec) = r.split();
    let (keys, prefix) = (&keys, &prefix);
    let ((through, written, removed), _) = poll_until(MEMBERSHIP_DEADLINE, rec, || async move {
        let outcome = async {
            let mut errors = Vec::new();
            for m in cluster.members(ServiceKind::Etcd) {
                let url = cluster.etcd_url(&m);
                let existing = match observer.etcd.range(&url, prefix.as_bytes(), false, 0).await {
                    Ok((_, kvs)) => kvs,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                let existing: BTreeMap<Vec<u8>, Vec<u8>> = existing.into_iter().collect();
                let mut removed = 0;
                for key in existing.keys() {
                    if !keys.contains_key(String::from_utf8_lossy(key).as_ref()) {
                        observer.etcd.delete(&url, key).await?;
                        removed += 1;
                    }
                }
                let mut written = 0;
                for (k, v) in keys {
                    if existing.get(k.as_bytes()).map(Vec::as_slice) != Some(v.as_bytes()) {
                        observer.etcd.put(&url, k.as_bytes(), v.as_bytes()).await?;
                        written += 1;
                    }
                }
                return Ok((m.short, written, removed));
            }
            Err(format!(
                "no live etcd member answers: {}",
                errors.join("; ")
            ))
        }
        .await;
        Poll::attempt("configuration load", outcome)
    })
    .await?;
    rec.record(format!(
        "loaded the {} configuration keys of {} through {through}",
        keys.len(),
        config.cell
    ));
    Ok(format!(
        "{} configuration keys of {} from the configuration on disk ({written} written, {removed} stale removed) through {through}",
        keys.len(),
        config.cell
    ))
}

async fn expect_config<H: Hosts>(
    r: &mut Runner<'_, H>,
    within: Duration,
) -> Result<String, String> {
    let config = r.cluster.cell_config().map_err(|e| e.to_string())?;
    let want: BTreeMap<Vec<u8>, Vec<u8>> = config
        .keys()
        .into_iter()
        .map(|(k, v)| (k.into_bytes(), v.into_bytes()))
        .collect();
    let prefix = config.prefix();
    let (members, _) = expect_keys(r, within, &prefix, &want, true, "configuration keys").await?;
    Ok(format!(
        "{} configuration keys of {} through {members}, exactly as on disk",
        want.len(),
        config.cell
    ))
}

/// Polls until every live member holds `want` under `prefix` (exactly, or at least).
async fn expect_keys<H: Hosts>(
    r: &mut Runner<'_, H>,
    within: Duration,
    prefix: &str,
    want: &BTreeMap<Vec<u8>, Vec<u8>>,
    exact: bool,
    what: &str,
) -> Result<(String, Instant), String> {
    let (cluster, observer, rec) = r.split();
    poll_until(within, rec, || async move {
        let live = cluster.members(ServiceKind::Etcd);
        let reads = join_all(live.iter().map(|m| async move {
            let got = observer
                .etcd
                .range(&cluster.etcd_url(m), prefix.as_bytes(), false, 0)
                .await;
            (m.short.clone(), got)
        }))
        .await;
        let mut problems = Vec::new();
        for (node, got) in &reads {
            match got {
                Err(e) => problems.push(format!("{node}: {}", brief(e))),
                Ok((_, kvs)) => {
                    let got: BTreeMap<&[u8], &[u8]> = kvs
                        .iter()
                        .map(|(k, v)| (k.as_slice(), v.as_slice()))
                        .collect();
                    let shown = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
                    let missing: Vec<String> = want
                        .keys()
                        .filter(|k| !got.contains_key(k.as_slice()))
                        .map(|k| shown(k))
                        .collect();
                    let different: Vec<String> = want
                        .iter()
                        .filter(|(k, v)| got.get(k.as_slice()).is_some_and(|g| *g != v.as_slice()))
                        .map(|(k, _)| shown(k))
                        .collect();
                    let extra: Vec<String> = if exact {
                        got.keys()
                            .filter(|k| !want.contains_key(**k))
                            .map(|k| shown(k))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let mut parts = Vec::new();
                    for (n, label, keys) in [
                        (missing.len(), "missing", &missing),
                        (different.len(), "different", &different),
                        (extra.len(), "unexpected", &extra),
                    ] {
                        if n > 0 {
                            parts.push(format!("{n} {label} (e.g. {})", keys[0]));
                        }
                    }
                    if !parts.is_empty() {
                        problems.push(format!(
                            "{node}: of {} {what}, {}",
                            want.len(),
                            parts.join(", ")
                        ));
                    }
                }
            }
        }
        let outcome = if live.is_empty() {
            Err("no live etcd member to read through".to_string())
        } else if problems.is_empty() {
            Ok(reads
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "))
        } else {
            Err(problems.join("; "))
        };
        Poll {
            observation: Some((
                what.to_string(),
                match &outcome {
                    Ok(n) => format!("present through {n}"),
                    Err(e) => e.clone(),
                },
            )),
            outcome,
        }
    })
    .await
}

async fn wipe<H: Hosts>(r: &mut Runner<'_, H>, on: &Target) -> Result<String, String> {
    let nodes = etcd_targets(r, on)?;
    let mut wiped = Vec::new();
    let mut empty = Vec::new();
    for n in &nodes {
        let held = r
            .cluster
            .wipe_data(&n.fqdn, ServiceKind::Etcd)
            .await
            .map_err(|e| e.to_string())?;
        if held {
            wiped.push(n.short.clone());
        } else {
            empty.push(n.short.clone());
        }
    }
    r.rec
        .record(format!("wiped etcd's data directory on {}", list(&nodes)));
    let mut parts = Vec::new();
    if !wiped.is_empty() {
        parts.push(format!("wiped etcd's data on {}", wiped.join(", ")));
    }
    if !empty.is_empty() {
        parts.push(format!("no data to wipe on {}", empty.join(", ")));
    }
    Ok(parts.join("; "))
}

async fn new_cluster<H: Hosts>(
    r: &mut Runner<'_, H>,
    role: &str,
    named: &[NodeRef],
) -> Result<String, String> {
    // "from the configuration the harness keeps on disk": names and addresses come from there.
    let config = r.cluster.cell_config().map_err(|e| e.to_string())?;
    let live_etcd: Vec<NodeView> = r
        .cluster
        .nodes()
        .into_iter()
        .filter(|n| n.alive && n.services.contains(&ServiceKind::Etcd))
        .collect();
    let (masters, choice) = if named.is_empty() {
        let working: Vec<String> = live_etcd
            .iter()
            .filter(|n| n.role == role)
            .map(|n| n.fqdn.clone())
            .collect();
        let all: Vec<String> = live_etcd.iter().map(|n| n.fqdn.clone()).collect();
        choose_masters(&working, &all)
    } else {
        let mut masters = Vec::new();
        for n in named {
            masters.push(r.resolve(n)?);
        }
        (masters, MasterChoice::Named)
    };
    if masters.is_empty() {
        return Err("no live etcd node to make a master of the new cluster".to_string());
    }
    let mut peers = Vec::new();
    for m in &masters {
        if etcd_running(r, m).await {
            return Err(format!(
                "etcd is running on {}; stop it first (the seed stops etcd on every node)",
                name(m)
            ));
        }
        let dir = r
            .cluster
            .data_dir(m, ServiceKind::Etcd)
            .map_err(|e| e.to_string())?;
        let held = r
            .cluster
            .holds_data(m, ServiceKind::Etcd)
            .await
            .map_err(|e| e.to_string())?;
        if held {
            return Err(format!(
                "etcd's data directory on {} ({}) is not empty; wipe it first",
                name(m),
                dir.display()
            ));
        }
        let node = config
            .node(m)
            .ok_or_else(|| format!("{} is not in the cell's configuration on disk", name(m)))?;
        peers.push(etcd::Peer {
            name: node.short.clone(),
            address: node.address,
        });
    }
    let initial = etcd::initial_cluster(&peers);
    r.recovery.incarnation += 1;
    let token = format!(
        "succession-{}-new{}",
        r.cluster.run_id(),
        r.recovery.incarnation
    );
    let at_ms = r.rec.elapsed_ms();
    r.recovery.event(LedgerEvent::Reset { at_ms });
    for m in &masters {
        r.cluster.set_etcd_bootstrap(
            m,
            etcd::Bootstrap {
                initial_cluster: initial.clone(),
                state: etcd::ClusterState::New,
                token: Some(token.clone()),
                force_new_cluster: false,
            },
        );
        r.cluster
            .start_service(m, ServiceKind::Etcd)
            .await
            .map_err(|e| e.to_string())?;
    }
    let names: Vec<&str> = masters.iter().map(|m| name(m)).collect();
    r.rec.record(format!(
        "started a new etcd cluster on {} (token {token})",
        names.join(", ")
    ));
    let why = match choice {
        MasterChoice::Working => format!("three or more working {role} nodes, so those"),
        MasterChoice::AllNodes => {
            format!("fewer than three working {role} nodes, so every live etcd node")
        }
        MasterChoice::Named => "as named".to_string(),
    };
    Ok(format!(
        "new etcd cluster on {} ({why}), initial cluster {initial} from the configuration on disk",
        names.join(", ")
    ))
}

async fn force_new_cluster<H: Hosts>(
    r: &mut Runner<'_, H>,
    node: &NodeRef,
) -> Result<String, String> {
    let fqdn = r.resolve(node)?;
    let view = node_view(r, &fqdn)?;
    if etcd_running(r, &fqdn).await {
        r.cluster
            .stop_service(&fqdn, ServiceKind::Etcd)
            .await
            .map_err(|e| e.to_string())?;
    }
    let dir = r
        .cluster
        .data_dir(&fqdn, ServiceKind::Etcd)
        .map_err(|e| e.to_string())?;
    let held = r
        .cluster
        .holds_data(&fqdn, ServiceKind::Etcd)
        .await
        .map_err(|e| e.to_string())?;
    if !held {
        return Err(format!(
            "{} holds no etcd data to recover from ({} is empty)",
            view.short,
            dir.display()
        ));
    }
    let alone = etcd::initial_cluster(&[peer(&view)]);
    let forced = etcd::Bootstrap {
        initial_cluster: alone.clone(),
        state: etcd::ClusterState::New,
        token: None,
        force_new_cluster: true,
    };
    r.cluster.set_etcd_bootstrap(&fqdn, forced);
    r.cluster
        .start_service(&fqdn, ServiceKind::Etcd)
        .await
        .map_err(|e| e.to_string())?;
    r.rec.record(format!(
        "restarted etcd on {} with --force-new-cluster",
        view.short
    ));
    let url = r.cluster.etcd_url(&view);
    let result = {
        let (_, observer, rec) = r.split();
        let url = &url;
        poll_until(FORCE_DEADLINE, rec, || async move {
            let outcome = async {
                let status = observer.etcd.status(url).await?;
                let members = observer.etcd.members(url).await?;
                if status.leader == 0 || status.leader != status.member_id {
                    return Err(format!("it does not lead yet (leader {:x})", status.leader));
                }
                if members.len() != 1 {
                    return Err(format!("it lists {} members", members.len()));
                }
                Ok(status.member_id)
            }
            .await;
            Poll {
                observation: Some((
                    "forced member".to_string(),
                    match &outcome {
                        Ok(_) => "leads a cluster of itself".to_string(),
                        Err(e) => e.clone(),
                    },
                )),
                outcome,
            }
        })
        .await
    };
    // The normal start flags come back whatever happened: a restart must never force again.
    r.cluster.set_etcd_bootstrap(
        &fqdn,
        etcd::Bootstrap {
            initial_cluster: alone,
            state: etcd::ClusterState::New,
            token: None,
            force_new_cluster: false,
        },
    );
    let (id, _) = result?;
    r.rec.record(format!(
        "{} leads a new one-member cluster; normal start flags restored",
        view.short
    ));
    Ok(format!(
        "{} (member {id:x}) leads a new cluster of itself, forced from its data; its normal start flags are restored",
        view.short
    ))
}

fn backup_path<H: Hosts>(r: &Runner<'_, H>, file: &str) -> Result<PathBuf, String> {
    let dir = r.cluster.outside_dir().join("backups");
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
    Ok(dir.join(file))
}

fn require_etcdctl() -> Result<(), String> {
    if Path::new(etcdctl::ETCDCTL).exists() {
        Ok(())
    } else {
        Err(format!(
            "failed to find {} (install Debian's {} package: ci/setup-host)",
            etcdctl::ETCDCTL,
            etcdctl::ETCDCTL_PACKAGE
        ))
    }
}

async fn snapshot<H: Hosts>(
    r: &mut Runner<'_, H>,
    label: &str,
    node: Option<&NodeRef>,
) -> Result<String, String> {
    require_etcdctl()?;
    let (through, why) = match node {
        Some(n) => (r.resolve(n)?, ""),
        None => (
            wait_leader(r, ServiceKind::Etcd, MEMBERSHIP_DEADLINE, |_| Ok(()))
                .await?
                .0,
            " (the leader)",
        ),
    };
    let view = node_view(r, &through)?;
    let url = r.cluster.etcd_url(&view);
    let path = backup_path(r, &format!("{label}.db"))?;
    let ledger_prefix = r
        .recovery
        .ledger
        .as_ref()
        .map(|l| l.spec.settings.prefix.clone());
    let ((started_ms, size, status, seqs), _) = {
        let (_, observer, rec) = r.split();
        let origin = rec.origin;
        let (url, path, ledger_prefix) = (&url, &path, &ledger_prefix);
        // A transient failure (a stream cut short, a member busy) is retried to the deadline;
        // each attempt writes the file anew.
        poll_until(SNAPSHOT_DEADLINE, rec, || async move {
            let started_ms = origin.elapsed().as_millis() as u64;
            let outcome = take_snapshot(observer, url, path, ledger_prefix.as_deref())
                .await
                .map(|(size, status, seqs)| (started_ms, size, status, seqs));
            Poll {
                observation: Some((
                    "etcd snapshot".to_string(),
                    match &outcome {
                        Ok(_) => "saved".to_string(),
                        Err(e) => e.clone(),
                    },
                )),
                outcome,
            }
        })
        .await?
    };
    if let Some(seqs) = seqs {
        let at_ms = r.rec.elapsed_ms();
        r.recovery.event(LedgerEvent::Capture {
            at_ms,
            started_ms,
            label: label.to_string(),
            kind: CaptureKind::Snapshot,
            revision: status.revision,
            through: view.short.clone(),
            seqs,
        });
    }
    r.recovery.captures.insert(
        label.to_string(),
        CaptureFile {
            path: path.clone(),
            kind: CaptureKind::Snapshot,
            revision: status.revision,
        },
    );
    r.rec.record(format!(
        "snapshot `{label}` of revision {} taken from {}",
        status.revision, view.short
    ));
    Ok(format!(
        "snapshot of revision {} ({} keys, {size} bytes) from {}{why}, kept outside the cluster at {}",
        status.revision,
        status.total_key,
        view.short,
        path.display()
    ))
}

/// One attempt at a snapshot: streamed to `path`, its revision read back with `etcdctl
/// snapshot status` (the file alone, so it runs here, outside the cluster), and, with a ledger,
/// exactly the ledger writes it holds (the ledger's keys at the snapshot's revision).
async fn take_snapshot(
    observer: &Observer,
    url: &str,
    path: &Path,
    ledger_prefix: Option<&str>,
) -> Result<(u64, etcdctl::SnapshotStatus, Option<SeqSet>), String> {
    let _ = std::fs::remove_file(path);
    let size = observer
        .etcd
        .snapshot_to(url, path, SNAPSHOT_DEADLINE)
        .await?;
    let argv = etcdctl::snapshot_status(path);
    let out = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .await
        .map_err(|e| format!("failed to run {}: {e}", etcdctl::ETCDCTL))?;
    let status = etcdctl::parse_snapshot_status(&format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))?;
    let seqs = match ledger_prefix {
        None => None,
        Some(prefix) => {
            let (_, kvs) = observer
                .etcd
                .range(url, prefix.as_bytes(), true, status.revision)
                .await?;
            Some(SeqSet::from_seqs(kvs.iter().filter_map(|(k, _)| {
                History::seq_of(prefix, &String::from_utf8_lossy(k))
            })))
        }
    };
    Ok((size, status, seqs))
}

fn capture<'s>(
    state: &'s State,
    label: &str,
    kind: CaptureKind,
) -> Result<&'s CaptureFile, String> {
    match state.captures.get(label) {
        Some(c) if c.kind == kind => Ok(c),
        _ => Err(format!(
            "no {} `{label}` was taken in this run (the step that takes it did not run)",
            kind.word()
        )),
    }
}

async fn snapshot_restore<H: Hosts>(
    r: &mut Runner<'_, H>,
    label: &str,
    on: &Target,
) -> Result<String, String> {
    require_etcdctl()?;
    let (file, revision) = {
        let c = capture(&r.recovery, label, CaptureKind::Snapshot)?;
        (c.path.clone(), c.revision)
    };
    let nodes = etcd_targets(r, on)?;
    for n in &nodes {
        if etcd_running(r, &n.fqdn).await {
            return Err(format!(
                "etcd is running on {}; stop it on every member before restoring",
                n.short
            ));
        }
    }
    // One cluster of exactly these members, under a token of its own.
    let peers: Vec<etcd::Peer> = nodes.iter().map(peer).collect();
    let initial = etcd::initial_cluster(&peers);
    r.recovery.incarnation += 1;
    let token = format!(
        "succession-{}-restore{}",
        r.cluster.run_id(),
        r.recovery.incarnation
    );
    let at_ms = r.rec.elapsed_ms();
    r.recovery.event(LedgerEvent::Restore {
        at_ms,
        label: label.to_string(),
        replace: true,
    });
    for n in &nodes {
        // Restoring needs a data directory that does not exist yet; re-running wipes the last
        // attempt's first.
        r.cluster
            .wipe_data(&n.fqdn, ServiceKind::Etcd)
            .await
            .map_err(|e| e.to_string())?;
        let data = r
            .cluster
            .data_dir(&n.fqdn, ServiceKind::Etcd)
            .map_err(|e| e.to_string())?;
        // "Copy the previously created single etcd backup to every master node's file system."
        let copy = r
            .cluster
            .files_dir(&n.fqdn)
            .map_err(|e| e.to_string())?
            .join("restore")
            .join(format!("{label}.db"));
        r.cluster
            .copy_to_node(&n.fqdn, &file, &copy)
            .await
            .map_err(|e| e.to_string())?;
        let argv = etcdctl::snapshot_restore(&copy, &peer(n), &initial, &token, &data);
        let out = r
            .cluster
            .exec(&n.fqdn, &argv)
            .await
            .map_err(|e| e.to_string())?;
        if out.code != Some(0) {
            let tail: Vec<&str> = out.stderr.lines().rev().take(3).collect();
            return Err(format!(
                "`etcdctl snapshot restore` failed on {} (exit {:?}): {}",
                n.short,
                out.code,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        r.cluster.set_etcd_bootstrap(
            &n.fqdn,
            etcd::Bootstrap {
                initial_cluster: initial.clone(),
                state: etcd::ClusterState::New,
                token: Some(token.clone()),
                force_new_cluster: false,
            },
        );
    }
    r.rec
        .record(format!("restored snapshot `{label}` on {}", list(&nodes)));
    Ok(format!(
        "restored snapshot `{label}` (revision {revision}) on {} as one cluster of exactly those members",
        list(&nodes)
    ))
}

async fn dump<H: Hosts>(
    r: &mut Runner<'_, H>,
    label: &str,
    prefix: &str,
) -> Result<String, String> {
    let started_ms = r.rec.elapsed_ms();
    let ((through, revision, kvs), _) = {
        let (cluster, observer, rec) = r.split();
        poll_until(MEMBERSHIP_DEADLINE, rec, || async move {
            let outcome = async {
                let mut errors = Vec::new();
                for m in cluster.members(ServiceKind::Etcd) {
                    match observer
                        .etcd
                        .range(&cluster.etcd_url(&m), prefix.as_bytes(), false, 0)
                        .await
                    {
                        Ok((revision, kvs)) => return Ok((m.short, revision, kvs)),
                        Err(e) => errors.push(e),
                    }
                }
                Err(format!(
                    "no live etcd member answers: {}",
                    errors.join("; ")
                ))
            }
            .await;
            Poll {
                observation: Some((
                    "dump".to_string(),
                    match &outcome {
                        Ok(_) => "read".to_string(),
                        Err(e) => e.clone(),
                    },
                )),
                outcome,
            }
        })
        .await?
    };
    let dump = Dump {
        prefix: prefix.to_string(),
        revision,
        through: through.clone(),
        taken_at: crate::base::time::now_rfc3339(),
        keys: kvs.iter().map(|(k, v)| DumpEntry::new(k, v)).collect(),
    };
    let path = backup_path(r, &format!("{label}.json"))?;
    dump.write(&path)?;
    if let Some(ledger) = &r.recovery.ledger {
        let ledger_prefix = ledger.spec.settings.prefix.clone();
        let seqs = SeqSet::from_seqs(
            kvs.iter()
                .filter_map(|(k, _)| History::seq_of(&ledger_prefix, &String::from_utf8_lossy(k))),
        );
        let at_ms = r.rec.elapsed_ms();
        r.recovery.event(LedgerEvent::Capture {
            at_ms,
            started_ms,
            label: label.to_string(),
            kind: CaptureKind::Dump,
            revision,
            through: through.clone(),
            seqs,
        });
    }
    r.recovery.captures.insert(
        label.to_string(),
        CaptureFile {
            path: path.clone(),
            kind: CaptureKind::Dump,
            revision,
        },
    );
    r.rec.record(format!(
        "dumped {} keys under {prefix} as `{label}`",
        kvs.len()
    ));
    Ok(format!(
        "dumped {} keys under {prefix} at revision {revision} from {through} to {}",
        kvs.len(),
        path.display()
    ))
}

async fn dump_restore<H: Hosts>(r: &mut Runner<'_, H>, label: &str) -> Result<String, String> {
    let path = capture(&r.recovery, label, CaptureKind::Dump)?.path.clone();
    let dump = Dump::read(&path)?;
    let mut entries = Vec::with_capacity(dump.keys.len());
    for e in &dump.keys {
        entries.push((e.key_bytes()?, e.value_bytes()?, e.shown_key()));
    }
    let at_ms = r.rec.elapsed_ms();
    r.recovery.event(LedgerEvent::Restore {
        at_ms,
        label: label.to_string(),
        replace: false,
    });
    // Puts are idempotent: a put whose answer was lost is simply repeated, through the next
    // live member, until every key is back or the deadline passes.
    let deadline = Instant::now() + RESTORE_DEADLINE;
    let mut next = 0;
    let mut turn = 0usize;
    let mut through = std::collections::BTreeSet::new();
    while next < entries.len() {
        let live = r.cluster.members(ServiceKind::Etcd);
        let attempt = match live.get(turn % live.len().max(1)) {
            None => Err("no live etcd member to write through".to_string()),
            Some(m) => {
                let (key, value, _) = &entries[next];
                r.observer
                    .etcd
                    .put(&r.cluster.etcd_url(m), key, value)
                    .await
                    .map(|_| m.short.clone())
            }
        };
        match attempt {
            Ok(node) => {
                through.insert(node);
                next += 1;
            }
            Err(e) if Instant::now() < deadline => {
                r.rec.observe("dump restore", &e);
                turn = turn.wrapping_add(1);
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            Err(e) => {
                return Err(format!(
                    "failed to restore dump `{label}`: {next} of {} keys put, then {} (at {})",
                    entries.len(),
                    e,
                    entries[next].2
                ))
            }
        }
    }
    r.rec
        .record(format!("put {} keys of dump `{label}` back", entries.len()));
    Ok(format!(
        "put every one of the {} keys of dump `{label}` (revision {}) back through {}",
        entries.len(),
        dump.revision,
        through.into_iter().collect::<Vec<_>>().join(", ")
    ))
}

async fn expect_dump_restored<H: Hosts>(
    r: &mut Runner<'_, H>,
    label: &str,
    within: Duration,
) -> Result<String, String> {
    let path = capture(&r.recovery, label, CaptureKind::Dump)?.path.clone();
    let dump = Dump::read(&path)?;
    let mut want = BTreeMap::new();
    for e in &dump.keys {
        want.insert(e.key_bytes()?, e.value_bytes()?);
    }
    let (members, _) = expect_keys(r, within, &dump.prefix, &want, false, "dumped keys").await?;
    Ok(format!(
        "all {} keys of dump `{label}` back with their values through {members}",
        want.len()
    ))
}

async fn expect_health<H: Hosts>(
    r: &mut Runner<'_, H>,
    on: &Target,
    within: Duration,
) -> Result<String, String> {
    let nodes = etcd_targets(r, on)?;
    let (cluster, observer, rec) = r.split();
    let nodes = &nodes;
    let (healthy, _) = poll_until(within, rec, || async move {
        // What `etcdctl endpoint health` does: a linearizable read through the member.
        let checks = join_all(nodes.iter().map(|n| async move {
            (
                n.short.clone(),
                observer
                    .etcd
                    .get(&cluster.etcd_url(n), "health", false)
                    .await,
            )
        }))
        .await;
        let unhealthy: Vec<String> = checks
            .iter()
            .filter_map(|(n, c)| c.as_ref().err().map(|e| format!("{n}: {}", brief(e))))
            .collect();
        let outcome = if unhealthy.is_empty() {
            Ok(list(nodes))
        } else {
            Err(format!("unhealthy: {}", unhealthy.join("; ")))
        };
        Poll {
            observation: Some((
                "etcd endpoint health".to_string(),
                match &outcome {
                    Ok(n) => format!("healthy on {n}"),
                    Err(e) => e.clone(),
                },
            )),
            outcome,
        }
    })
    .await?;
    Ok(format!("endpoint health: healthy on {healthy}"))
}

/// One look at whether the quorum is lost; `Ok` says what was seen.
async fn quorum_lost<H: Hosts>(
    observer: &Observer,
    cluster: &Cluster<H>,
) -> Result<String, String> {
    let live = cluster.members(ServiceKind::Etcd);
    if live.is_empty() {
        return Err("no live etcd member to ask".to_string());
    }
    let views = observer.leader_views(cluster, ServiceKind::Etcd).await;
    for (node, view) in &views {
        match view {
            MemberView::Leader { leader, .. } => {
                return Err(format!(
                    "{} still follows leader {}",
                    name(node),
                    name(leader)
                ))
            }
            MemberView::Unreachable { why } => {
                return Err(format!("{}: {}", name(node), brief(why)))
            }
            MemberView::NoLeader { .. } | MemberView::Down { .. } => {}
        }
    }
    let probes = join_all(live.iter().map(|m| async move {
        let url = cluster.etcd_url(m);
        let (write, linearizable, serializable, members) = tokio::join!(
            observer.etcd.put(
                &url,
                PROBE_KEY.as_bytes(),
                b"written while the quorum is lost"
            ),
            observer.etcd.get(&url, PROBE_KEY, false),
            observer.etcd.count_all(&url, true),
            observer.etcd.members(&url),
        );
        (m.short.clone(), write, linearizable, serializable, members)
    }))
    .await;
    let mut writes = Vec::new();
    let mut stale = Vec::new();
    let mut fresh = Vec::new();
    let mut listed = 0;
    for (node, write, linearizable, serializable, members) in probes {
        match write {
            Ok(_) => return Err(format!("a write through {node} succeeded")),
            Err(e) => writes.push(format!("{node}: {}", brief(&e))),
        }
        match linearizable {
            Ok(_) => return Err(format!("a linearizable read through {node} succeeded")),
            Err(e) => fresh.push(format!("{node}: {}", brief(&e))),
        }
        match serializable {
            Ok(0) => return Err(format!("{node} holds no data to read")),
            Ok(keys) => stale.push(format!("{node}: {keys} keys")),
            Err(e) => {
                return Err(format!(
                    "a serializable read through {node} failed: {}",
                    brief(&e)
                ))
            }
        }
        if let Ok(m) = members {
            listed = listed.max(m.len());
        }
    }
    let names: Vec<&str> = live.iter().map(|m| m.short.as_str()).collect();
    Ok(format!(
        "{} of {listed} etcd members live ({}), none has a leader; writes fail ({}); serializable reads of the old data succeed ({}); linearizable reads fail ({})",
        live.len(),
        names.join(", "),
        writes.join("; "),
        stale.join("; "),
        fresh.join("; ")
    ))
}

async fn expect_quorum_lost<H: Hosts>(
    r: &mut Runner<'_, H>,
    within: Duration,
    measure: Option<&str>,
) -> Result<String, String> {
    let held = {
        let (cluster, observer, rec) = r.split();
        poll_until_held(within, ELECTION_POLL_INTERVAL, rec, || async move {
            let outcome = quorum_lost(observer, cluster).await;
            Poll {
                observation: Some((
                    "etcd quorum".to_string(),
                    match &outcome {
                        Ok(_) => "lost".to_string(),
                        Err(e) => format!("not seen lost: {e}"),
                    },
                )),
                outcome,
            }
        })
        .await?
    };
    let since = r.last_disruption.unwrap_or(held.at);
    let at_ms = held.at.saturating_duration_since(r.rec.origin).as_millis() as u64;
    let since_ms = since.saturating_duration_since(r.rec.origin).as_millis() as u64;
    r.recovery
        .event(LedgerEvent::QuorumLost { at_ms, since_ms });
    let seen = &held.value;
    r.rec.record(format!("etcd quorum lost: {seen}"));
    let mut detail = format!("quorum lost: {seen}");
    if let Some(measure) = measure {
        let ms = r.rec.measure(measure, since, &held);
        detail.push_str(&format!(
            "; {measure}: {ms} ms (to within {} ms)",
            held.resolution_ms()
        ));
    }
    Ok(detail)
}

async fn expect_ledger<H: Hosts>(
    r: &mut Runner<'_, H>,
    node: Option<&NodeRef>,
    acknowledged: u64,
    within: Duration,
) -> Result<String, String> {
    let through = node.map(|n| r.resolve(n)).transpose()?;
    let (prefix, run_id) = match &r.recovery.ledger {
        Some(l) => (l.spec.settings.prefix.clone(), l.run_id.clone()),
        None => return Err("the scenario runs no ledger".to_string()),
    };
    let ((at_ms, read), _) = {
        let Runner {
            cluster,
            observer,
            rec,
            recovery,
            ..
        } = &mut *r;
        let (cluster, observer) = (&**cluster, &*observer);
        let writer = &recovery
            .ledger
            .as_ref()
            .ok_or("the scenario runs no ledger")?
            .writer;
        let origin = rec.origin;
        // Writes made since the step began prove the cluster takes writes now.
        let since_ms = rec.elapsed_ms();
        let (through, prefix, run_id) = (through.as_deref(), &prefix, &run_id);
        poll_until(within, rec, || async move {
            let outcome = async {
                let fresh = writer
                    .records()
                    .iter()
                    .filter(|w| w.sent_ms >= since_ms && w.is_acknowledged())
                    .count() as u64;
                if fresh < acknowledged {
                    return Err(format!(
                        "{fresh} of {acknowledged} writes made since the step began acknowledged"
                    ));
                }
                let at_ms = origin.elapsed().as_millis() as u64;
                let read = read_any(observer, cluster, through, prefix, run_id).await?;
                Ok((at_ms, read))
            }
            .await;
            Poll {
                observation: Some((
                    "ledger read-back".to_string(),
                    match &outcome {
                        Ok((_, read)) => format!("read through {}", read.through),
                        Err(e) => e.clone(),
                    },
                )),
                outcome,
            }
        })
        .await?
    };
    let step = r.recovery.step.clone();
    let (keys, via) = (read.keys, read.through.clone());
    r.recovery.event(LedgerEvent::ReadBack {
        at_ms,
        through: read.through,
        step: step.clone(),
        final_read: false,
        present: read.present,
        mismatched: read.mismatched,
        foreign: read.foreign,
    });
    let history = r
        .recovery
        .history_so_far()
        .ok_or("the scenario runs no ledger")?;
    let verdict = check(&history);
    let mine: Vec<&String> = verdict
        .violations
        .iter()
        .filter(|v| v.starts_with(&format!("at `{step}`:")))
        .collect();
    let sum = |f: fn(&crate::ledger::PhaseCounts) -> u64| verdict.phases.iter().map(f).sum::<u64>();
    let counts = format!(
        "{} acknowledged writes kept, {} lost as tolerated, {} lost beyond tolerance",
        sum(|p| p.kept),
        sum(|p| p.lost_tolerated),
        sum(|p| p.lost)
    );
    r.rec
        .record(format!("ledger read back through {via}: {counts}"));
    if mine.is_empty() {
        Ok(format!("read {keys} ledger keys through {via}: {counts}"))
    } else {
        Err(mine
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join("; "))
    }
}
