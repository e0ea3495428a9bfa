//! etcd from Debian's etcd-server: command lines for bootstrapping and for joining.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::base::ports;
use crate::spec::topology::ServiceSettings;

/// The etcd server binary.
pub const BINARY: &str = "/usr/bin/etcd";

/// One member of an etcd cluster as the harness names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Member name (the node's short name, as in the seed's `name=quorum-2`).
    pub name: String,
    /// Its address.
    pub address: Ipv4Addr,
}

/// `http://ADDR:2380`
pub fn peer_url(address: Ipv4Addr) -> String {
    format!("http://{address}:{}", ports::ETCD_PEER)
}

/// `name=peerURL,…` for `--initial-cluster`.
pub fn initial_cluster(peers: &[Peer]) -> String {
    peers
        .iter()
        .map(|p| format!("{}={}", p.name, peer_url(p.address)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a member starts a new cluster or joins one that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// `--initial-cluster-state new`
    New,
    /// `--initial-cluster-state existing` (after `member add`)
    Existing,
}

/// How a member starts: the cluster it bootstraps or joins, under which token, and whether it
/// forces a new cluster of itself out of its existing data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// `--initial-cluster`
    pub initial_cluster: String,
    /// `--initial-cluster-state`
    pub state: ClusterState,
    /// `--initial-cluster-token` of a recreated cluster; `None` keeps the run's own.
    pub token: Option<String>,
    /// `--force-new-cluster`
    pub force_new_cluster: bool,
}

impl Bootstrap {
    /// Joining an existing cluster after `member add`.
    pub fn join(initial_cluster: String) -> Self {
        Self {
            initial_cluster,
            state: ClusterState::Existing,
            token: None,
            force_new_cluster: false,
        }
    }
}

/// The full command line of one member.
pub fn command(
    me: &Peer,
    initial: &str,
    state: ClusterState,
    token: &str,
    data_dir: &Path,
    settings: &ServiceSettings,
) -> Vec<String> {
    let client = format!("http://{}:{}", me.address, ports::ETCD_CLIENT);
    let peer = peer_url(me.address);
    [
        BINARY,
        "--name",
        &me.name,
        "--data-dir",
        &data_dir.display().to_string(),
        "--listen-client-urls",
        &client,
        "--advertise-client-urls",
        &client,
        "--listen-peer-urls",
        &peer,
        "--initial-advertise-peer-urls",
        &peer,
        "--initial-cluster",
        initial,
        "--initial-cluster-state",
        match state {
            ClusterState::New => "new",
            ClusterState::Existing => "existing",
        },
        "--initial-cluster-token",
        token,
        "--heartbeat-interval",
        &settings.etcd_heartbeat_interval.as_millis().to_string(),
        "--election-timeout",
        &settings.etcd_election_timeout.as_millis().to_string(),
        "--logger",
        "zap",
        "--log-outputs",
        "stderr",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(tuning(settings))
    .collect()
}

/// The flags a topology's `[services.etcd]` sets beyond the timing, each only when set.
fn tuning(settings: &ServiceSettings) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(n) = settings.etcd_snapshot_count {
        flags.extend(["--snapshot-count".to_string(), n.to_string()]);
    }
    if let Some(n) = settings.etcd_quota_backend_bytes {
        flags.extend(["--quota-backend-bytes".to_string(), n.to_string()]);
    }
    if let Some(n) = settings.etcd_compaction_revisions {
        flags.extend([
            "--auto-compaction-mode".to_string(),
            "revision".to_string(),
            "--auto-compaction-retention".to_string(),
            n.to_string(),
        ]);
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_quota_and_compaction_flags_come_only_when_set() {
        let me = Peer {
            name: "quorum-1".into(),
            address: Ipv4Addr::new(10, 1, 2, 10),
        };
        let plain = command(
            &me,
            "",
            ClusterState::New,
            "t",
            Path::new("/d"),
            &ServiceSettings::default(),
        );
        assert!(!plain
            .iter()
            .any(|a| a.contains("snapshot") || a.contains("quota") || a.contains("compaction")));
        let tuned = ServiceSettings {
            etcd_snapshot_count: Some(100),
            etcd_quota_backend_bytes: Some(1 << 20),
            etcd_compaction_revisions: Some(50),
            ..ServiceSettings::default()
        };
        let cmd = command(&me, "", ClusterState::New, "t", Path::new("/d"), &tuned).join(" ");
        assert!(cmd.ends_with("--snapshot-count 100 --quota-backend-bytes 1048576 --auto-compaction-mode revision --auto-compaction-retention 50"), "{cmd}");
    }

    #[test]
    fn initial_cluster_lists_every_peer_by_name() {
        let peers = vec![
            Peer {
                name: "quorum-1".into(),
                address: Ipv4Addr::new(10, 1, 2, 10),
            },
            Peer {
                name: "quorum-2".into(),
                address: Ipv4Addr::new(10, 1, 2, 11),
            },
        ];
        assert_eq!(
            initial_cluster(&peers),
            "quorum-1=http://10.1.2.10:2380,quorum-2=http://10.1.2.11:2380"
        );
        let cmd = command(
            &peers[0],
            &initial_cluster(&peers),
            ClusterState::Existing,
            "t",
            Path::new("/d"),
            &ServiceSettings::default(),
        );
        let state = cmd
            .iter()
            .position(|a| a == "--initial-cluster-state")
            .unwrap();
        assert_eq!(cmd[state + 1], "existing");
    }
}
