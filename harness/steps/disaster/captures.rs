//! Snapshots and dumps: taken to files outside every node, restored onto the cluster, with the
//! ledger told exactly which writes each holds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{etcd_running, etcd_targets, list, node_view, peer};
use crate::backups::{etcdctl, Dump, DumpEntry};
use crate::cluster_views::Observer;
use crate::ledger::{CaptureKind, History, LedgerEvent, SeqSet};
use crate::provider::Hosts;
use crate::runner::state::{CaptureFile, StepState};
use crate::runner::waits::{wait_leader, MEMBERSHIP_DEADLINE};
use crate::runner::{poll_until, Poll, Runner, StepResult, POLL_INTERVAL};
use crate::service::{etcd, ServiceKind};
use crate::spec::{NodeRef, Target};

/// How long a snapshot may take to stream.
const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(60);
/// How long restoring a dump is retried.
const RESTORE_DEADLINE: Duration = Duration::from_secs(60);

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
pub(super) async fn snapshot<H: Hosts>(
    r: &mut Runner<'_, H>,
    label: &str,
    node: Option<&NodeRef>,
) -> StepResult {
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
        .ledger
        .run
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
        r.ledger.event(LedgerEvent::Capture {
            at_ms,
            started_ms,
            label: label.to_string(),
            kind: CaptureKind::Snapshot,
            revision: status.revision,
            through: view.short.clone(),
            seqs,
        });
    }
    r.state.captures.insert(
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
pub(super) fn capture<'s>(
    state: &'s StepState,
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
pub(super) async fn snapshot_restore<H: Hosts>(
    r: &mut Runner<'_, H>,
    label: &str,
    on: &Target,
) -> StepResult {
    require_etcdctl()?;
    let (file, revision) = {
        let c = capture(&r.state, label, CaptureKind::Snapshot)?;
        (c.path.clone(), c.revision)
    };
    let nodes = etcd_targets(r, on)?;
    for n in &nodes {
        if etcd_running(r, &n.fqdn).await {
            return Err(format!(
                "etcd is running on {}; stop it on every member before restoring",
                n.short
            )
            .into());
        }
    }
    // One cluster of exactly these members, under a token of its own.
    let peers: Vec<etcd::Peer> = nodes.iter().map(peer).collect();
    let initial = etcd::initial_cluster(&peers);
    r.state.incarnation += 1;
    let token = format!(
        "succession-{}-restore{}",
        r.cluster.run_id(),
        r.state.incarnation
    );
    let at_ms = r.rec.elapsed_ms();
    r.ledger.event(LedgerEvent::Restore {
        at_ms,
        label: label.to_string(),
        replace: true,
    });
    for n in &nodes {
        // Restoring needs a data directory that does not exist yet; re-running wipes the last
        // attempt's first.
        r.cluster.wipe_data(&n.fqdn, ServiceKind::Etcd).await?;
        let data = r.cluster.data_dir(&n.fqdn, ServiceKind::Etcd)?;
        // "Copy the previously created single etcd backup to every master node's file system."
        let copy = r
            .cluster
            .files_dir(&n.fqdn)?
            .join("restore")
            .join(format!("{label}.db"));
        r.cluster.copy_to_node(&n.fqdn, &file, &copy).await?;
        let argv = etcdctl::snapshot_restore(&copy, &peer(n), &initial, &token, &data);
        let out = r.cluster.exec(&n.fqdn, &argv).await?;
        if out.code != Some(0) {
            let tail: Vec<&str> = out.stderr.lines().rev().take(3).collect();
            return Err(format!(
                "`etcdctl snapshot restore` failed on {} (exit {:?}): {}",
                n.short,
                out.code,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )
            .into());
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
pub(super) async fn dump<H: Hosts>(r: &mut Runner<'_, H>, label: &str, prefix: &str) -> StepResult {
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
                        Err(e) => errors.push(e.to_string()),
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
    if let Some(ledger) = &r.ledger.run {
        let ledger_prefix = ledger.spec.settings.prefix.clone();
        let seqs = SeqSet::from_seqs(
            kvs.iter()
                .filter_map(|(k, _)| History::seq_of(&ledger_prefix, &String::from_utf8_lossy(k))),
        );
        let at_ms = r.rec.elapsed_ms();
        r.ledger.event(LedgerEvent::Capture {
            at_ms,
            started_ms,
            label: label.to_string(),
            kind: CaptureKind::Dump,
            revision,
            through: through.clone(),
            seqs,
        });
    }
    r.state.captures.insert(
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
pub(super) async fn dump_restore<H: Hosts>(r: &mut Runner<'_, H>, label: &str) -> StepResult {
    let path = capture(&r.state, label, CaptureKind::Dump)?.path.clone();
    let dump = Dump::read(&path)?;
    let mut entries = Vec::with_capacity(dump.keys.len());
    for e in &dump.keys {
        entries.push((e.key_bytes()?, e.value_bytes()?, e.shown_key()));
    }
    let at_ms = r.rec.elapsed_ms();
    r.ledger.event(LedgerEvent::Restore {
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
                    .map_err(String::from)
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
                )
                .into())
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
