//! The ports, paths and ZooKeeper layout the servers and stand-ins speak, as the real ones do.
//! Probes, stand-ins, the ingress's configuration and providers all read them here.

/// etcd's client port.
pub const ETCD_CLIENT: u16 = 2379;
/// etcd's peer port.
pub const ETCD_PEER: u16 = 2380;
/// ZooKeeper's client port.
pub const ZOOKEEPER_CLIENT: u16 = 2181;
/// ZooKeeper's quorum port.
pub const ZOOKEEPER_QUORUM: u16 = 2888;
/// ZooKeeper's leader-election port.
pub const ZOOKEEPER_ELECTION: u16 = 3888;
/// ZooKeeper's admin server (its HTTP commands). Not ZooKeeper's default of 8080, which
/// Marathon uses where a node runs both.
pub const ZOOKEEPER_ADMIN: u16 = 8081;
/// Mesos's master HTTP port.
pub const MESOS: u16 = 5050;
/// Marathon's HTTP port.
pub const MARATHON: u16 = 8080;
/// The app's port on a worker.
pub const APP: u16 = 8000;
/// The app's port on the border's ingress.
pub const INGRESS_APP: u16 = 80;

/// The app's health path.
pub const APP_HEALTH: &str = "/health";
/// Mesos's health path.
pub const MESOS_HEALTH: &str = "/health";
/// Marathon's health path.
pub const MARATHON_PING: &str = "/ping";
/// Where Mesos names its leader (307 Location).
pub const MESOS_REDIRECT: &str = "/redirect";
/// Where Marathon names its leader.
pub const MARATHON_LEADER: &str = "/v2/leader";

/// Where Mesos masters elect (`json.info_` children).
pub const MESOS_DIR: &str = "/mesos";
/// The Mesos candidate prefix.
pub const MESOS_MARKER: &str = "json.info_";
/// Where Marathon's Curator leader latch lives.
pub const MARATHON_DIR: &str = "/marathon/leader-curator";
/// What orders Curator latch nodes.
pub const MARATHON_MARKER: &str = "latch-";
