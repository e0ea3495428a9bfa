//! The kinds of server a node can run.

use std::fmt;

/// One kind of server, as named in topology and scenario files.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceKind {
    /// etcd from Debian's etcd-server package.
    Etcd,
    /// ZooKeeper from Debian's zookeeper package.
    Zookeeper,
    /// Stand-in for the Mesos master (elects through ZooKeeper as the real one does).
    MesosMaster,
    /// Stand-in for Marathon (Curator leader latch in ZooKeeper).
    Marathon,
    /// The demo application on the workers (stands in for the seed's Voting App).
    App,
    /// The border's ingress: Debian's haproxy, balancing to the workers with health checks.
    Ingress,
}

impl ServiceKind {
    /// Every kind, in the order they start on a node.
    pub const ALL: &'static [ServiceKind] = &[
        ServiceKind::Zookeeper,
        ServiceKind::Etcd,
        ServiceKind::MesosMaster,
        ServiceKind::Marathon,
        ServiceKind::App,
        ServiceKind::Ingress,
    ];

    /// The name used in files and output.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Etcd => "etcd",
            ServiceKind::Zookeeper => "zookeeper",
            ServiceKind::MesosMaster => "mesos-master",
            ServiceKind::Marathon => "marathon",
            ServiceKind::App => "app",
            ServiceKind::Ingress => "ingress",
        }
    }

    /// Parses a file's service name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// The names accepted in files.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.name()).collect()
    }

    /// Whether the service elects a leader the harness can observe.
    pub fn elects_leader(self) -> bool {
        matches!(
            self,
            ServiceKind::Etcd
                | ServiceKind::Zookeeper
                | ServiceKind::MesosMaster
                | ServiceKind::Marathon
        )
    }

    /// The Debian packages a node running it needs (none for the stand-ins, which are the
    /// harness's own build).
    pub fn debian_packages(self) -> &'static [&'static str] {
        match self {
            ServiceKind::Etcd => &["etcd-server", "etcd-client"],
            ServiceKind::Zookeeper => &["zookeeper", "libslf4j-java"],
            ServiceKind::Ingress => &["haproxy"],
            ServiceKind::MesosMaster | ServiceKind::Marathon | ServiceKind::App => &[],
        }
    }

    /// Whether the harness runs a stand-in rather than the real server.
    pub fn is_stand_in(self) -> bool {
        matches!(
            self,
            ServiceKind::MesosMaster | ServiceKind::Marathon | ServiceKind::App
        )
    }

    /// Whether member lists can be read (etcd `member list`, ZooKeeper `conf`).
    pub fn has_member_list(self) -> bool {
        matches!(self, ServiceKind::Etcd | ServiceKind::Zookeeper)
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
