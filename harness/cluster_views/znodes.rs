//! The master tier's leader as ZooKeeper's election znodes name it, read over one session
//! kept between polls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{node_by_name, Observer};
use crate::cluster::Cluster;
use crate::probe::masters::{self, MastersError};
use crate::provider::Hosts;
use crate::service::ServiceKind;

/// Why the election znodes could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ZnodeLeaderError {
    /// The service does not elect its leader through ZooKeeper.
    #[error("{0} does not elect through ZooKeeper")]
    NotElected(ServiceKind),
    /// No ZooKeeper server runs.
    #[error("no live ZooKeeper server to read znodes from")]
    NoServer,
    /// No session within the connect deadline.
    #[error("failed to connect to ZooKeeper at {connect}: timed out")]
    ConnectTimedOut {
        /// The connect string.
        connect: String,
    },
    /// The session could not be made.
    #[error("failed to connect to ZooKeeper at {connect}: {source}")]
    Connect {
        /// The connect string.
        connect: String,
        /// What the client said.
        source: zookeeper_client::Error,
    },
    /// The election directory could not be listed.
    #[error("failed to list {dir}: {source}")]
    List {
        /// The directory.
        dir: &'static str,
        /// What the client said.
        source: zookeeper_client::Error,
    },
    /// The lowest candidate's znode went between listing and reading it.
    #[error("{0} vanished while read")]
    Vanished(String),
    /// The lowest candidate's znode could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The znode.
        path: String,
        /// What the client said.
        source: zookeeper_client::Error,
    },
    /// The candidate's data names no master.
    #[error(transparent)]
    Data(Arc<MastersError>),
}

impl From<MastersError> for ZnodeLeaderError {
    fn from(e: MastersError) -> Self {
        Self::Data(Arc::new(e))
    }
}

impl Observer {
    /// The leader ZooKeeper's election znodes name for a master-tier service: the lowest
    /// sequence under `/mesos` (MasterInfo hostname) or `/marathon/leader-curator` (latch data).
    pub async fn znode_leader<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
        service: ServiceKind,
    ) -> Result<Option<String>, ZnodeLeaderError> {
        let (dir, marker) = match service {
            ServiceKind::MesosMaster => (
                crate::base::ports::MESOS_DIR,
                crate::base::ports::MESOS_MARKER,
            ),
            ServiceKind::Marathon => (
                crate::base::ports::MARATHON_DIR,
                crate::base::ports::MARATHON_MARKER,
            ),
            _ => return Err(ZnodeLeaderError::NotElected(service)),
        };
        let client = self.zk_client(cluster).await?;
        let children = match client.list_children(dir).await {
            Ok(c) => c,
            Err(zookeeper_client::Error::NoNode) => return Ok(None),
            Err(source) => {
                self.zk.lock().await.take();
                return Err(ZnodeLeaderError::List { dir, source });
            }
        };
        let Some(lowest) = crate::standin::election::lowest(&children, marker) else {
            return Ok(None);
        };
        let path = format!("{dir}/{lowest}");
        let data = match client.get_data(&path).await {
            Ok((d, _)) => d,
            Err(zookeeper_client::Error::NoNode) => return Err(ZnodeLeaderError::Vanished(path)),
            Err(source) => return Err(ZnodeLeaderError::Read { path, source }),
        };
        let host = match service {
            ServiceKind::MesosMaster => masters::parse_master_info(&data)?.hostname,
            _ => masters::latch_host(&data)?,
        };
        Ok(Some(node_by_name(&cluster.nodes(), &host)))
    }

    async fn zk_client<H: Hosts>(
        &self,
        cluster: &Cluster<H>,
    ) -> Result<zookeeper_client::Client, ZnodeLeaderError> {
        let servers: Vec<SocketAddr> = cluster
            .members(ServiceKind::Zookeeper)
            .iter()
            .map(|n| cluster.zookeeper_addr(n))
            .collect();
        if servers.is_empty() {
            return Err(ZnodeLeaderError::NoServer);
        }
        let connect = crate::probe::znodes::connect_string(&servers);
        let mut slot = self.zk.lock().await;
        if let Some((c, client)) = slot.as_ref() {
            let usable = !matches!(
                client.state(),
                zookeeper_client::SessionState::Expired
                    | zookeeper_client::SessionState::Closed
                    | zookeeper_client::SessionState::AuthFailed
            );
            if *c == connect && usable {
                return Ok(client.clone());
            }
        }
        // Short: a poll of the master tier waits on this, and an election is measured to
        // within one poll.
        let client = tokio::time::timeout(
            Duration::from_millis(1500),
            zookeeper_client::Client::connector()
                .with_session_timeout(Duration::from_secs(6))
                .with_connection_timeout(Duration::from_millis(500))
                .connect(&connect),
        )
        .await
        .map_err(|_| ZnodeLeaderError::ConnectTimedOut {
            connect: connect.clone(),
        })?
        .map_err(|source| ZnodeLeaderError::Connect {
            connect: connect.clone(),
            source,
        })?;
        *slot = Some((connect, client.clone()));
        Ok(client)
    }
}
