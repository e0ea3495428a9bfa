//! `etcdctl snapshot` command lines (etcd 3.4's tool, Debian's etcd-client package) and the
//! parsing of what they print.

use std::path::Path;

use crate::service::etcd::{peer_url, Peer};

/// The etcdctl binary.
pub const ETCDCTL: &str = "/usr/bin/etcdctl";
/// The Debian package that provides it.
pub const ETCDCTL_PACKAGE: &str = "etcd-client";

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// `etcdctl snapshot restore` of one member into a fresh data directory, as DC/OS's restore
/// script runs it on every master: the member's own name and peer URL, and the same initial
/// cluster and token on every member.
pub fn snapshot_restore(
    snapshot: &Path,
    me: &Peer,
    initial_cluster: &str,
    token: &str,
    data_dir: &Path,
) -> Vec<String> {
    strings(&[
        ETCDCTL,
        "snapshot",
        "restore",
        &snapshot.display().to_string(),
        "--name",
        &me.name,
        "--initial-cluster",
        initial_cluster,
        "--initial-cluster-token",
        token,
        "--initial-advertise-peer-urls",
        &peer_url(me.address),
        "--data-dir",
        &data_dir.display().to_string(),
    ])
}

/// `etcdctl snapshot status FILE -w json`
pub fn snapshot_status(snapshot: &Path) -> Vec<String> {
    strings(&[
        ETCDCTL,
        "snapshot",
        "status",
        &snapshot.display().to_string(),
        "-w",
        "json",
    ])
}

/// What `snapshot status -w json` says of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct SnapshotStatus {
    /// Its hash.
    pub hash: u64,
    /// The revision it holds.
    pub revision: i64,
    /// Keys in it.
    #[serde(rename = "totalKey")]
    pub total_key: u64,
    /// Its size in bytes.
    #[serde(rename = "totalSize")]
    pub total_size: u64,
}

/// Parses `snapshot status -w json`.
pub fn parse_snapshot_status(output: &str) -> Result<SnapshotStatus, String> {
    let line = output
        .lines()
        .find(|l| l.trim_start().starts_with('{') && l.contains("revision"))
        .ok_or_else(|| format!("no status in etcdctl's output: {}", output.trim()))?;
    serde_json::from_str(line.trim()).map_err(|e| {
        format!(
            "failed to parse etcdctl's snapshot status `{}`: {e}",
            line.trim()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn restore_names_the_member_its_peer_url_and_a_fresh_data_dir() {
        let me = Peer {
            name: "quorum-2".into(),
            address: Ipv4Addr::new(10, 1, 2, 11),
        };
        let argv = snapshot_restore(
            Path::new("/r/quorum-2/backup.db"),
            &me,
            "quorum-1=http://10.1.2.10:2380,quorum-2=http://10.1.2.11:2380",
            "succession-abc-r1",
            Path::new("/r/quorum-2/etcd"),
        );
        assert_eq!(
            argv.join(" "),
            "/usr/bin/etcdctl snapshot restore /r/quorum-2/backup.db --name quorum-2 --initial-cluster quorum-1=http://10.1.2.10:2380,quorum-2=http://10.1.2.11:2380 --initial-cluster-token succession-abc-r1 --initial-advertise-peer-urls http://10.1.2.11:2380 --data-dir /r/quorum-2/etcd"
        );
    }

    #[test]
    fn snapshot_status_is_read_from_etcdctl_json() {
        let out = "{\"hash\":2348279734,\"revision\":21,\"totalKey\":26,\"totalSize\":24576}\n";
        assert_eq!(
            parse_snapshot_status(out).unwrap(),
            SnapshotStatus {
                hash: 2348279734,
                revision: 21,
                total_key: 26,
                total_size: 24576
            }
        );
        assert!(parse_snapshot_status("Error: no such file").is_err());
    }
}
