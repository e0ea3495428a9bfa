//! Leader election as the real servers do it in ZooKeeper: every candidate creates an ephemeral
//! sequential znode in one directory, and the lowest sequence leads. Mesos masters use
//! `/mesos/json.info_NNNNNNNNNN`; Marathon's Curator leader latch uses
//! `/marathon/leader-curator/_c_<uuid>-latch-NNNNNNNNNN`.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use zookeeper_client as zk;

/// The sequence number of a candidate's znode: the digits after the last `marker`.
pub fn sequence_of(name: &str, marker: &str) -> Option<u64> {
    let at = name.rfind(marker)?;
    let digits = &name[at + marker.len()..];
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The leading candidate among a directory's children: the lowest sequence. Children that are
/// not candidates are ignored.
pub fn lowest<'a>(children: &'a [String], marker: &str) -> Option<&'a str> {
    children
        .iter()
        .filter_map(|c| sequence_of(c, marker).map(|s| (s, c.as_str())))
        .min()
        .map(|(_, c)| c)
}

/// One server's standing in its election.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    /// The leader's znode data, when one is known and the session is connected.
    pub leader: Option<Vec<u8>>,
    /// Whether this server leads.
    pub leading: bool,
    /// The session, while connected (for reading other znodes).
    pub client: Option<zk::Client>,
}

/// What a candidate writes and where.
#[derive(Debug, Clone)]
pub struct Candidacy {
    /// ZooKeeper connect string, `host:port,host:port`.
    pub connect: String,
    /// The election directory (`/mesos`).
    pub dir: String,
    /// The name prefix of this candidate's znode (`json.info_`, `_c_<uuid>-latch-`).
    pub prefix: String,
    /// What orders candidates (`json.info_`, `latch-`).
    pub marker: String,
    /// The znode's data (MasterInfo JSON, `host:port`).
    pub data: Vec<u8>,
    /// ZooKeeper session timeout.
    pub session_timeout: Duration,
}

/// Connects, retrying until ZooKeeper answers (the stand-ins start while it may still be electing).
pub async fn connect(connect: &str, session_timeout: Duration) -> zk::Client {
    loop {
        let attempt = zk::Client::connector()
            .with_session_timeout(session_timeout)
            .with_connection_timeout(Duration::from_secs(2))
            .connect(connect)
            .await;
        match attempt {
            Ok(client) => return client,
            Err(e) => {
                super::log(format!(
                    "failed to connect to ZooKeeper at {connect}: {e}; retrying"
                ));
                // A retry pace for a server process, not a wait for a state of the harness.
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

async fn create_candidate(client: &zk::Client, c: &Candidacy) -> Result<String, zk::Error> {
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client.mkdir(&c.dir, &persistent).await?;
    let ephemeral = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let (_, sequence) = client
        .create(&format!("{}/{}", c.dir, c.prefix), &c.data, &ephemeral)
        .await?;
    Ok(format!("{}{sequence}", c.prefix))
}

/// Runs a candidacy for ever: joins, follows the election, publishes the standing, gives up
/// leadership when the session is lost (as the real servers do), rejoins at the back of the
/// line with a new session when it expires, and re-queues when asked to abdicate.
/// Returns when `stop` turns true, after deleting this candidate's znode so that the others
/// elect at once (a graceful stop, as a service manager's stop would be).
pub async fn run(
    c: Candidacy,
    standing: watch::Sender<Standing>,
    mut abdicate: mpsc::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let client = connect(&c.connect, c.session_timeout).await;
        let mut states = client.state_watcher();
        let mut mine = match create_candidate(&client, &c).await {
            Ok(name) => name,
            Err(e) => {
                super::log(format!("failed to join the election in {}: {e}", c.dir));
                continue;
            }
        };
        super::log(format!("joined the election in {} as {mine}", c.dir));
        'session: loop {
            let listed = client.list_and_watch_children(&c.dir).await;
            let (children, watcher) = match listed {
                Ok(r) => r,
                Err(e) => {
                    standing.send_replace(Standing::default());
                    super::log(format!("failed to list {}: {e}", c.dir));
                    if matches!(
                        client.state(),
                        zk::SessionState::Expired | zk::SessionState::Closed
                    ) {
                        break 'session;
                    }
                    match states.changed().await {
                        zk::SessionState::SyncConnected => continue 'session,
                        _ => break 'session,
                    }
                }
            };
            let leading = publish_standing(&client, &c, &children, &mine, &standing).await;
            tokio::select! {
                _ = watcher.changed() => {}
                state = states.changed() => {
                    match state {
                        zk::SessionState::SyncConnected => {}
                        zk::SessionState::Disconnected | zk::SessionState::ConnectedReadOnly => {
                            // A disconnection is not yet a lost session: like the real masters,
                            // keep the last standing while the session may still be alive, and
                            // give leadership up once it cannot be (its timeout has passed).
                            super::log("lost the ZooKeeper connection; keeping leadership until the session times out");
                            tokio::select! {
                                state = states.changed() => match state {
                                    zk::SessionState::SyncConnected => continue 'session,
                                    _ => break 'session,
                                },
                                _ = tokio::time::sleep(c.session_timeout) => {}
                                _ = stop.changed() => return,
                            }
                            super::log("ZooKeeper session lost; giving up leadership");
                            standing.send_replace(Standing::default());
                            match states.changed().await {
                                zk::SessionState::SyncConnected => {}
                                _ => break 'session,
                            }
                        }
                        _ => break 'session,
                    }
                }
                _ = stop.changed() => {
                    let _ = client.delete(&format!("{}/{mine}", c.dir), None).await;
                    standing.send_replace(Standing::default());
                    return;
                }
                Some(()) = abdicate.recv() => {
                    if leading {
                        super::log("abdicating");
                        let _ = client.delete(&format!("{}/{mine}", c.dir), None).await;
                        match create_candidate(&client, &c).await {
                            Ok(name) => mine = name,
                            Err(e) => {
                                super::log(format!("failed to rejoin the election after abdicating: {e}"));
                                break 'session;
                            }
                        }
                    }
                }
            }
        }
        super::log("ZooKeeper session ended; rejoining with a new one");
        standing.send_replace(Standing::default());
    }
}

/// Who leads, by the lowest candidate znode, published to `standing` (with the leader's data,
/// what the masters serve as the leader's info); whether it is this candidate.
async fn publish_standing(
    client: &zk::Client,
    c: &Candidacy,
    children: &[String],
    mine: &str,
    standing: &watch::Sender<Standing>,
) -> bool {
    let leader = lowest(children, &c.marker).map(str::to_string);
    let data = match &leader {
        Some(name) => client
            .get_data(&format!("{}/{name}", c.dir))
            .await
            .ok()
            .map(|(d, _)| d),
        None => None,
    };
    let leading = leader.as_deref() == Some(mine);
    if standing.borrow().leading != leading {
        super::log(if leading {
            "elected leader"
        } else {
            "following"
        });
    }
    standing.send_replace(Standing {
        leader: data,
        leading,
        client: Some(client.clone()),
    });
    leading
}

/// Keeps an ephemeral znode registered, re-creating it with each new session, until `stop`
/// turns true (then deletes it).
pub async fn register(
    connect_string: String,
    path: String,
    data: Vec<u8>,
    session_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let client = connect(&connect_string, session_timeout).await;
        let mut states = client.state_watcher();
        let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("/");
        let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        let created = async {
            if !parent.is_empty() && parent != "/" {
                client.mkdir(parent, &persistent).await?;
            }
            match client.create(&path, &data, &ephemeral).await {
                Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
                Err(e) => Err(e),
            }
        }
        .await;
        if let Err(e) = created {
            super::log(format!("failed to register {path}: {e}"));
            continue;
        }
        loop {
            tokio::select! {
                state = states.changed() => match state {
                    zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed => break,
                    _ => {}
                },
                _ = stop.changed() => {
                    let _ = client.delete(&path, None).await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_follow_the_marker() {
        assert_eq!(sequence_of("json.info_0000000007", "json.info_"), Some(7));
        assert_eq!(
            sequence_of(
                "_c_3f2a9c1e-77aa-4bd5-9c3e-0a1b2c3d4e5f-latch-0000000012",
                "latch-"
            ),
            Some(12)
        );
        assert_eq!(sequence_of("log_replicas", "json.info_"), None);
        assert_eq!(sequence_of("json.info_", "json.info_"), None);
    }

    #[test]
    fn the_lowest_sequence_leads_whatever_the_prefix() {
        let children: Vec<String> = [
            "_c_ffff-latch-0000000009",
            "_c_0000-latch-0000000011",
            "_c_aaaa-latch-0000000003",
            "leader",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            lowest(&children, "latch-"),
            Some("_c_aaaa-latch-0000000003")
        );
        assert_eq!(lowest(&[], "latch-"), None);
    }
}
