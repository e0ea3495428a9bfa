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

async fn session(cluster: &str, timeout: Duration) -> Result<zk::Client, String> {
    let connect = zk::Client::connector()
        .with_session_timeout(timeout.max(Duration::from_secs(2)))
        .with_connection_timeout(timeout)
        .connect(cluster);
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!(
            "failed to open a ZooKeeper session to {cluster}: {e}"
        )),
        Err(_) => Err(format!(
            "failed to open a ZooKeeper session to {cluster}: no session within {} ms",
            timeout.as_millis()
        )),
    }
}

/// Creates `path` (and its missing parents) holding `data`, or overwrites its data.
pub async fn write(
    servers: &[SocketAddr],
    path: &str,
    data: &[u8],
    timeout: Duration,
) -> Result<(), String> {
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
                Err(e) => return Err(format!("failed to create {parent}: {e}")),
            }
        }
        match client.create(path, data, &persistent).await {
            Ok(_) => Ok(()),
            Err(zk::Error::NodeExists) => client
                .set_data(path, data, None)
                .await
                .map(|_| ())
                .map_err(|e| format!("failed to set the data of {path}: {e}")),
            Err(e) => Err(format!("failed to create {path}: {e}")),
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "failed to write {path} through {cluster}: no answer within {} ms",
            timeout.as_millis()
        )),
    }
}

/// The data of `path` as one server has it, after a `sync` so it has caught up with the
/// leader.
pub async fn read(server: SocketAddr, path: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    let client = session(&server.to_string(), timeout).await?;
    let work = async {
        client
            .sync(path)
            .await
            .map_err(|e| format!("failed to sync {path} on {server}: {e}"))?;
        client
            .get_data(path)
            .await
            .map(|(data, _)| data)
            .map_err(|e| format!("failed to read {path} from {server}: {e}"))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "failed to read {path} from {server}: no answer within {} ms",
            timeout.as_millis()
        )),
    }
}

/// Creates an ephemeral sequential znode through one server only (`prefix` + a sequence, under
/// the root), and closes the session, which removes it. An acknowledged create was committed
/// by the ensemble's quorum through that server: proof that its leader serves writes.
pub async fn create_ephemeral(
    server: SocketAddr,
    prefix: &str,
    timeout: Duration,
) -> Result<String, String> {
    let client = session(&server.to_string(), timeout).await?;
    let mode = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let work = client.create(prefix, b"", &mode);
    let created = match tokio::time::timeout(timeout, work).await {
        Ok(Ok((_, sequence))) => Ok(format!("{prefix}{sequence}")),
        Ok(Err(e)) => Err(format!("failed to create {prefix}… through {server}: {e}")),
        Err(_) => Err(format!(
            "failed to create {prefix}… through {server}: no answer within {} ms",
            timeout.as_millis()
        )),
    };
    drop(client);
    created
}
