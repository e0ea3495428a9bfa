//! The service lifecycle, written once over any provider's [`Hosts`]: what each service starts
//! with (rendered from the topology and from what steps decided — etcd's bootstrap or join,
//! ZooKeeper's id and ensemble), starting and stopping with the escalation to SIGKILL, logs,
//! data directories and the status table.

pub mod disk;
mod etcd_identity;
mod launch;
mod status_table;
/// How long a process may take to go once SIGKILLed before the stop is reported as failed.
const KILL_BOUND: Duration = Duration::from_secs(5);
/// How often a stopping process is looked at.
const STOP_POLL: Duration = Duration::from_millis(10);

/// SIGTERM, then SIGKILL once `grace` has passed without the process exiting; true when SIGKILL
/// was needed. Returns once the process has exited.
async fn stop_escalating<H: Hosts>(
    hosts: &mut H,
    fqdn: &str,
    process: ProcessId,
    grace: Duration,
) -> Result<bool, ClusterError> {
    hosts.signal(fqdn, process, Signal::Terminate).await?;
    if exits_within(hosts, fqdn, process, grace).await {
        return Ok(false);
    }
    hosts.signal(fqdn, process, Signal::Kill).await?;
    if exits_within(hosts, fqdn, process, KILL_BOUND).await {
        return Ok(true);
    }
    Err(ClusterError::node(
        "stop a process",
        fqdn,
        format!(
            "pid {} still runs {} s after SIGKILL",
            process.pid,
            KILL_BOUND.as_secs()
        ),
    ))
}

/// Polls until the process has exited, up to `within`.
async fn exits_within<H: Hosts>(
    hosts: &H,
    fqdn: &str,
    process: ProcessId,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if hosts.process_state(fqdn, process).await != ProcessState::Running {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(STOP_POLL).await;
    }
}

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::provider::{
    service_key, ClusterError, Hosts, Intent, NodeRecord, ProcessId, ProcessState, ServiceRecord,
    Signal, Spawn,
};
use crate::service::{etcd, zookeeper, ServiceKind};

pub use launch::Launch;
pub use status_table::status_table;

/// One row of the status table (like systemd's `LoadState ActiveState SubState Id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    /// Node full name.
    pub node: String,
    /// The service.
    pub service: ServiceKind,
    /// `active`, `inactive` or `failed`.
    pub active: &'static str,
    /// `running`, `dead` or `exited`.
    pub sub: &'static str,
    /// The pid while running.
    pub pid: Option<u32>,
    /// When it last started or stopped.
    pub since: String,
}

impl ServiceStatus {
    /// Whether it is active and running.
    pub fn is_running(&self) -> bool {
        self.active == "active" && self.sub == "running"
    }
}

/// What the supervisor decided for the next starts, beyond the topology.
#[derive(Debug, Default)]
pub struct Supervisor {
    /// How etcd starts next on a node, when a step decided it (join, new cluster, forced).
    etcd_bootstrap: BTreeMap<String, etcd::Bootstrap>,
    /// Nodes whose etcd lost its data (replaced, or wiped) and has not been told how to start
    /// since: started as it was, it would revive the old member's identity with nothing in it.
    etcd_without_data: BTreeSet<String>,
    /// ZooKeeper ids and ensembles set by steps, used at the next start instead of the
    /// topology's.
    zookeeper_next: BTreeMap<String, zookeeper::Assignment>,
    /// What each ZooKeeper server was last started with.
    zookeeper_started: BTreeMap<String, zookeeper::Assignment>,
}

fn node<'h, H: Hosts>(hosts: &'h H, fqdn: &str) -> Result<&'h NodeRecord, ClusterError> {
    hosts
        .record()
        .nodes
        .get(fqdn)
        .ok_or_else(|| ClusterError::Node {
            action: "find the node".into(),
            node: fqdn.to_string(),
            detail: "no such node in this run".into(),
        })
}

fn live_node<'h, H: Hosts>(
    hosts: &'h H,
    fqdn: &str,
    action: &str,
) -> Result<&'h NodeRecord, ClusterError> {
    let n = node(hosts, fqdn)?;
    if !n.alive {
        return Err(ClusterError::Node {
            action: action.into(),
            node: fqdn.to_string(),
            detail: "the node was terminated".into(),
        });
    }
    Ok(n)
}

impl Supervisor {
    /// The directory a service keeps its data in on a node.
    pub fn data_dir<H: Hosts>(
        hosts: &H,
        fqdn: &str,
        service: ServiceKind,
    ) -> Result<PathBuf, ClusterError> {
        Ok(hosts.data_root(fqdn)?.join(service.name()))
    }

    fn log_path<H: Hosts>(
        hosts: &H,
        fqdn: &str,
        service: ServiceKind,
    ) -> Result<PathBuf, ClusterError> {
        Ok(hosts
            .data_root(fqdn)?
            .join(format!("{}.log", service.name())))
    }

    /// Starts a service; nothing happens when it runs already (as `systemctl start`).
    pub async fn start<H: Hosts>(
        &mut self,
        hosts: &mut H,
        fqdn: &str,
        service: ServiceKind,
    ) -> Result<(), ClusterError> {
        let node = live_node(hosts, fqdn, &format!("start {service}"))?.clone();
        let fail = |detail: String| ClusterError::Service {
            action: "start".into(),
            service,
            node: fqdn.to_string(),
            detail,
        };
        if !node.services.contains(&service) {
            return Err(fail(format!(
                "the topology does not run {service} on role {}",
                node.role
            )));
        }
        let key = service_key(fqdn, service);
        if let Some(p) = hosts.record().services.get(&key).and_then(|s| s.process) {
            if hosts.process_state(fqdn, p).await == ProcessState::Running {
                return Ok(());
            }
        }
        // A member's first start on the node the run created holds no identity to take over:
        // asking its peers then (booting, without a quorum to answer) would only wait out
        // their time limit.
        let first_start = node.generation == 0 && !hosts.record().services.contains_key(&key);
        if service == ServiceKind::Etcd && !self.etcd_bootstrap.contains_key(fqdn) && !first_start {
            let remembered =
                self.etcd_without_data
                    .contains(fqdn)
                    .then_some(if node.generation > 0 {
                        "the node was replaced"
                    } else {
                        "its data was wiped"
                    });
            etcd_identity::check(hosts, fqdn, remembered)
                .await
                .map_err(fail)?;
        }
        let data = Self::data_dir(hosts, fqdn, service)?;
        let launch = launch::render(self, hosts, fqdn, &node, service, &data).map_err(fail)?;
        let faulty_disk = disk::enabled(hosts, service);
        if faulty_disk {
            disk::ensure_mounted(hosts, fqdn, service).await?;
        }
        for (path, contents) in &launch.files {
            hosts.write_file(fqdn, path, contents.as_bytes()).await?;
        }
        if faulty_disk {
            // What the harness writes into the data directory (myid, zoo.cfg) is what an
            // operator's tooling leaves on disk: synced, so a power loss keeps it.
            let on_disk: Vec<PathBuf> = launch
                .files
                .iter()
                .map(|(path, _)| path.clone())
                .filter(|path| path.starts_with(&data))
                .collect();
            disk::sync_files(hosts, fqdn, &on_disk).await?;
        }
        let log = Self::log_path(hosts, fqdn, service)?;
        let process = hosts
            .spawn(
                fqdn,
                &Spawn {
                    argv: launch.argv,
                    workdir: data,
                    log,
                    banner: format!(
                        "--- succession: starting {service} at {} ---",
                        crate::base::time::now_rfc3339()
                    ),
                },
            )
            .await?;
        if service == ServiceKind::Zookeeper {
            if let Some(a) = launch.zookeeper {
                self.zookeeper_started.insert(fqdn.to_string(), a);
            }
        }
        hosts.update_services(&mut |services| {
            services.insert(
                key.clone(),
                ServiceRecord {
                    intent: Intent::Active,
                    process: Some(process),
                    since: crate::base::time::now_rfc3339(),
                },
            );
        })
    }

    /// Stops a service gracefully, with SIGKILL after the topology's bound; true when SIGKILL
    /// was needed.
    pub async fn stop<H: Hosts>(
        &mut self,
        hosts: &mut H,
        fqdn: &str,
        service: ServiceKind,
    ) -> Result<bool, ClusterError> {
        live_node(hosts, fqdn, &format!("stop {service}"))?;
        let key = service_key(fqdn, service);
        let grace = hosts.topology().settings.stop_timeout;
        let escalated = match hosts.record().services.get(&key).and_then(|s| s.process) {
            Some(p) => stop_escalating(hosts, fqdn, p, grace).await?,
            None => false,
        };
        hosts.update_services(&mut |services| {
            if let Some(rec) = services.get_mut(&key) {
                rec.intent = Intent::Stopped;
                rec.process = None;
                rec.since = crate::base::time::now_rfc3339();
            }
        })?;
        Ok(escalated)
    }

    /// A node was terminated: its services are stopped, with it.
    pub fn node_terminated<H: Hosts>(
        &mut self,
        hosts: &mut H,
        fqdn: &str,
    ) -> Result<(), ClusterError> {
        let prefix = format!("{fqdn}/");
        hosts.update_services(&mut |services| {
            for (key, rec) in services.iter_mut() {
                if key.starts_with(&prefix) {
                    rec.intent = Intent::Stopped;
                    rec.process = None;
                    rec.since = crate::base::time::now_rfc3339();
                }
            }
        })
    }

    /// A node was replaced: it starts empty, so etcd must be told anew how to start there.
    pub fn node_replaced<H: Hosts>(&mut self, hosts: &H, fqdn: &str) {
        self.etcd_bootstrap.remove(fqdn);
        if hosts
            .record()
            .nodes
            .get(fqdn)
            .is_some_and(|n| n.services.contains(&ServiceKind::Etcd))
        {
            self.etcd_without_data.insert(fqdn.to_string());
        }
    }

    /// How etcd on a node starts next: a join after `member add`, a new cluster over chosen
    /// members under a new token, or a forced new cluster.
    pub fn set_etcd_bootstrap(&mut self, fqdn: &str, bootstrap: etcd::Bootstrap) {
        self.etcd_without_data.remove(fqdn);
        self.etcd_bootstrap.insert(fqdn.to_string(), bootstrap);
    }

    /// The id and static ensemble ZooKeeper on a node starts with from now on (what an
    /// operator writes into `myid` and zoo.cfg); a running server reads them when restarted.
    pub fn set_zookeeper_config(&mut self, fqdn: &str, assignment: zookeeper::Assignment) {
        self.zookeeper_next.insert(fqdn.to_string(), assignment);
    }

    /// The id and ensemble ZooKeeper on a node was last started with.
    pub fn zookeeper_started_with(&self, fqdn: &str) -> Option<zookeeper::Assignment> {
        self.zookeeper_started.get(fqdn).cloned()
    }

    /// What a service logged since it last started.
    pub async fn log_since_start<H: Hosts>(
        hosts: &H,
        fqdn: &str,
        service: ServiceKind,
    ) -> Option<String> {
        let path = Self::log_path(hosts, fqdn, service).ok()?;
        let bytes = hosts.read_file(fqdn, &path).await.ok()?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let marker = format!("--- succession: starting {service} at ");
        Some(match text.rfind(&marker) {
            Some(i) => text[i..].to_string(),
            None => text,
        })
    }

    /// Whether a service's data directory on a node holds anything.
    pub async fn holds_data<H: Hosts>(
        hosts: &H,
        fqdn: &str,
        service: ServiceKind,
    ) -> Result<bool, ClusterError> {
        hosts
            .holds_files(fqdn, &Self::data_dir(hosts, fqdn, service)?)
            .await
    }

    /// Deletes a stopped service's data directory on a node (`rm -rf`); true when it held
    /// anything. Refuses while the service runs there.
    pub async fn wipe<H: Hosts>(
        &mut self,
        hosts: &mut H,
        fqdn: &str,
        service: ServiceKind,
    ) -> Result<bool, ClusterError> {
        live_node(hosts, fqdn, &format!("wipe {service}'s data"))?;
        let running = match hosts
            .record()
            .services
            .get(&service_key(fqdn, service))
            .and_then(|s| s.process)
        {
            Some(p) => hosts.process_state(fqdn, p).await == ProcessState::Running,
            None => false,
        };
        if running {
            return Err(ClusterError::Service {
                action: "wipe the data of".into(),
                service,
                node: fqdn.to_string(),
                detail: "it is running; stop it first".into(),
            });
        }
        if service == ServiceKind::Etcd {
            // How it starts next must be decided anew (join after member add, a new cluster,
            // a restore): the old start flags would revive the old member with no data.
            self.etcd_bootstrap.remove(fqdn);
            self.etcd_without_data.insert(fqdn.to_string());
        }
        let dir = Self::data_dir(hosts, fqdn, service)?;
        if disk::enabled(hosts, service) {
            // A wiped disk is a new disk: nothing of the old one survives, durable or not.
            let held = hosts.holds_files(fqdn, &dir).await?;
            disk::unmount_clean(hosts, fqdn, service).await?;
            let p = disk::paths(hosts, fqdn, service)?;
            hosts.remove_dir(fqdn, &dir).await?;
            hosts.remove_dir(fqdn, &p.durable).await?;
            hosts.remove_dir(fqdn, &p.live).await?;
            return Ok(held);
        }
        hosts.remove_dir(fqdn, &dir).await
    }

    /// The status table: every service of every node, in topology order.
    pub async fn status<H: Hosts>(hosts: &H) -> Vec<ServiceStatus> {
        let record = hosts.record();
        let mut nodes: Vec<(&String, &NodeRecord)> = record.nodes.iter().collect();
        nodes.sort_by_key(|(_, n)| n.ordinal);
        let mut rows = Vec::new();
        for (fqdn, node) in nodes {
            for service in &node.services {
                let rec = record.services.get(&service_key(fqdn, *service));
                let (active, sub, pid) = match (node.alive, rec) {
                    (false, _) | (true, None) => ("inactive", "dead", None),
                    (true, Some(r)) => match (r.intent, r.process) {
                        (Intent::Stopped, _) | (_, None) => ("inactive", "dead", None),
                        (Intent::Active, Some(p)) => match hosts.process_state(fqdn, p).await {
                            ProcessState::Running => ("active", "running", Some(p.pid)),
                            ProcessState::Exited => ("failed", "exited", None),
                        },
                    },
                };
                rows.push(ServiceStatus {
                    node: fqdn.clone(),
                    service: *service,
                    active,
                    sub,
                    pid,
                    since: rec.map(|r| r.since.clone()).unwrap_or_default(),
                });
            }
        }
        rows
    }
}
