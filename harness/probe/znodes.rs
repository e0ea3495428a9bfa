//! Data in ZooKeeper through a real client session (`zookeeper-client`): write a znode through
//! the ensemble, read it back from one server at a time.

use std::net::SocketAddr;
use std::time::Duration;

use zookeeper_client as zk;

/// `host:port,host:port,…` for a client that may use any of the servers.
pub fn connect_string(servers: &[SocketAddr]) -> String {
    servers
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Failed to write or read a znode; names the servers and the path.
#[derive(Debug, thiserror::Error)]
pub enum ZnodeError {
    /// No session could be opened.
    #[error("failed to open a ZooKeeper session to {cluster}: {source}")]
    Session {
        /// The servers asked (`host:port,…`).
        cluster: String,
        /// What the client said.
        source: zk::Error,
    },
    /// No session within the time allowed.
    #[error("failed to open a ZooKeeper session to {cluster}: no session within {ms} ms")]
    SessionTimedOut {
        /// The servers asked.
        cluster: String,
        /// The time allowed.
        ms: u128,
    },
    /// A znode could not be created (`…` after a sequential prefix).
    #[error("failed to create {path}{through}: {source}")]
    Create {
        /// The znode.
        path: String,
        /// " through SERVER" when one server was asked.
        through: String,
        /// What the server said.
        source: zk::Error,
    },
    /// An existing znode's data could not be set.
    #[error("failed to set the data of {path}: {source}")]
    SetData {
        /// The znode.
        path: String,
        /// What the server said.
        source: zk::Error,
    },
    /// A server could not catch up with the leader before a read.
    #[error("failed to sync {path} on {server}: {source}")]
    Sync {
        /// The znode.
        path: String,
        /// The server.
        server: SocketAddr,
        /// What it said.
        source: zk::Error,
    },
    /// A znode could not be read from a server.
    #[error("failed to read {path} from {server}: {source}")]
    Read {
        /// The znode.
        path: String,
        /// The server.
        server: SocketAddr,
        /// What it said.
        source: zk::Error,
    },
    /// An operation got no answer in time.
    #[error("failed to {what}: no answer within {ms} ms")]
    TimedOut {
        /// What was being done ("write /x through …").
        what: String,
        /// The time allowed.
        ms: u128,
    },
}

// Where a znode failure is one reason among others, as text.
impl From<ZnodeError> for String {
    fn from(e: ZnodeError) -> String {
        e.to_string()
    }
}

async fn session(cluster: &str, timeout: Duration) -> Result<zk::Client, ZnodeError> {
    let connect = zk::Client::connector()
        .with_session_timeout(timeout.max(Duration::from_secs(2)))
        .with_connection_timeout(timeout)
        .connect(cluster);
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(source)) => Err(ZnodeError::Session {
            cluster: cluster.to_string(),
            source,
        }),
        Err(_) => Err(ZnodeError::SessionTimedOut {
            cluster: cluster.to_string(),
            ms: timeout.as_millis(),
        }),
    }
}

/// Creates `path` (and its missing parents) holding `data`, or overwrites its data.
pub async fn write(
    servers: &[SocketAddr],
    path: &str,
    data: &[u8],
    timeout: Duration,
) -> Result<(), ZnodeError> {
    let cluster = connect_string(servers);
    let client = session(&cluster, timeout).await?;
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let work = async {
        let mut parent = String::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            parent.push('/');
            parent.push_str(part);
            match client.create(&parent, b"", &persistent).await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(source) => {
                    return Err(ZnodeError::Create {
                        path: parent,
                        through: String::new(),
                        source,
                    })
                }
            }
        }
        match client.create(path, data, &persistent).await {
            Ok(_) => Ok(()),
            Err(zk::Error::NodeExists) => client
                .set_data(path, data, None)
                .await
                .map(|_| ())
                .map_err(|source| ZnodeError::SetData {
                    path: path.to_string(),
                    source,
                }),
            Err(source) => Err(ZnodeError::Create {
                path: path.to_string(),
                through: String::new(),
                source,
            }),
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ZnodeError::TimedOut {
            what: format!("write {path} through {cluster}"),
            ms: timeout.as_millis(),
        }),
    }
}

/// The data of `path` as one server has it, after a `sync` so it has caught up with the
/// leader.
pub async fn read(
    server: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<Vec<u8>, ZnodeError> {
    let client = session(&server.to_string(), timeout).await?;
    let work = async {
        client.sync(path).await.map_err(|source| ZnodeError::Sync {
            path: path.to_string(),
            server,
            source,
        })?;
        client
            .get_data(path)
            .await
            .map(|(data, _)| data)
            .map_err(|source| ZnodeError::Read {
                path: path.to_string(),
                server,
                source,
            })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ZnodeError::TimedOut {
            what: format!("read {path} from {server}"),
            ms: timeout.as_millis(),
        }),
    }
}

/// Creates an ephemeral sequential znode through one server only (`prefix` + a sequence, under
/// the root), and closes the session, which removes it. An acknowledged create was committed
/// by the ensemble's quorum through that server: proof that its leader serves writes.
pub async fn create_ephemeral(
    server: SocketAddr,
    prefix: &str,
    timeout: Duration,
) -> Result<String, ZnodeError> {
    let client = session(&server.to_string(), timeout).await?;
    let mode = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let work = client.create(prefix, b"", &mode);
    let created = match tokio::time::timeout(timeout, work).await {
        Ok(Ok((_, sequence))) => Ok(format!("{prefix}{sequence}")),
        Ok(Err(source)) => Err(ZnodeError::Create {
            path: format!("{prefix}…"),
            through: format!(" through {server}"),
            source,
        }),
        Err(_) => Err(ZnodeError::TimedOut {
            what: format!("create {prefix}… through {server}"),
            ms: timeout.as_millis(),
        }),
    };
    drop(client);
    created
}
