//! etcd through its gRPC API, one client per endpoint so every member's own view is seen
//! (a client with several endpoints load-balances and would hide which member answered).

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use serde::Serialize;
use tokio::sync::Mutex;

/// What one member says of itself and of the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// This member's id.
    pub member_id: u64,
    /// The leader's id as this member sees it (0: none).
    pub leader: u64,
    /// The raft term.
    pub raft_term: u64,
    /// The current revision.
    pub revision: i64,
}

/// One entry of `member list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Member id.
    pub id: u64,
    /// Name; empty while the member has not started.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs; empty while the member has not started.
    pub client_urls: Vec<String>,
    /// Whether it is a learner.
    pub is_learner: bool,
}

impl Member {
    /// Whether the member has started (etcdctl shows unstarted ones with no name).
    pub fn is_started(&self) -> bool {
        !self.name.is_empty()
    }
}

/// Talks to etcd members, caching one client per endpoint.
pub struct EtcdProbe {
    clients: Mutex<BTreeMap<String, Client>>,
    timeout: Duration,
}

impl Default for EtcdProbe {
    fn default() -> Self {
        Self::new(Duration::from_millis(1500))
    }
}

impl EtcdProbe {
    /// A probe whose every call gives up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            clients: Mutex::new(BTreeMap::new()),
            timeout,
        }
    }

    async fn client(&self, endpoint: &str) -> Result<Client, String> {
        if let Some(c) = self.clients.lock().await.get(endpoint) {
            return Ok(c.clone());
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(self.timeout)
            .with_timeout(self.timeout);
        let client = tokio::time::timeout(self.timeout, Client::connect([endpoint], Some(options)))
            .await
            .map_err(|_| format!("failed to connect to etcd at {endpoint}: timed out"))?
            .map_err(|e| format!("failed to connect to etcd at {endpoint}: {e}"))?;
        self.clients
            .lock()
            .await
            .insert(endpoint.to_string(), client.clone());
        Ok(client)
    }

    /// Runs one call with the timeout; a failed call drops the cached client so the next one
    /// reconnects (a replaced node keeps its address but is a new server).
    async fn call<T, F, Fut>(&self, endpoint: &str, what: &str, f: F) -> Result<T, String>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let client = self.client(endpoint).await?;
        let result = match tokio::time::timeout(self.timeout, f(client)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => format!("failed to {what} at {endpoint}: {e}"),
            Err(_) => format!(
                "failed to {what} at {endpoint}: no answer within {} ms",
                self.timeout.as_millis()
            ),
        };
        self.clients.lock().await.remove(endpoint);
        Err(result)
    }

    /// `endpoint status` of one member.
    pub async fn status(&self, endpoint: &str) -> Result<Status, String> {
        self.call(endpoint, "read etcd status", |mut c| async move {
            let s = c.status().await?;
            let header = s.header();
            Ok(Status {
                member_id: header.map(|h| h.member_id()).unwrap_or(0),
                leader: s.leader(),
                raft_term: s.raft_term(),
                revision: header.map(|h| h.revision()).unwrap_or(0),
            })
        })
        .await
    }

    /// A linearizable read of one key, as `etcdctl endpoint health` does: it needs a quorum
    /// and changes nothing.
    pub async fn health(&self, endpoint: &str) -> Result<(), String> {
        self.call(endpoint, "read from etcd", |mut c| async move {
            c.get("health", None).await?;
            Ok(())
        })
        .await
    }

    /// `member list` as one member sees it.
    pub async fn members(&self, endpoint: &str) -> Result<Vec<Member>, String> {
        self.call(endpoint, "list etcd members", |mut c| async move {
            let r = c.member_list().await?;
            Ok(r.members().iter().map(convert).collect())
        })
        .await
    }

    /// `member add` with a peer URL; returns the new member and the list after the add.
    pub async fn member_add(
        &self,
        endpoint: &str,
        peer_url: &str,
    ) -> Result<(Member, Vec<Member>), String> {
        let url = peer_url.to_string();
        self.call(endpoint, "add an etcd member", |mut c| async move {
            let r = c.member_add([url], None).await?;
            let added = r.member().map(convert).unwrap_or(Member {
                id: 0,
                name: String::new(),
                peer_urls: Vec::new(),
                client_urls: Vec::new(),
                is_learner: false,
            });
            Ok((added, r.member_list().iter().map(convert).collect()))
        })
        .await
    }

    /// `member remove` by id.
    pub async fn member_remove(&self, endpoint: &str, id: u64) -> Result<Vec<Member>, String> {
        self.call(endpoint, "remove an etcd member", |mut c| async move {
            let r = c.member_remove(id).await?;
            Ok(r.members().iter().map(convert).collect())
        })
        .await
    }

    /// `move-leader`; must be sent to the current leader.
    pub async fn move_leader(&self, leader_endpoint: &str, target: u64) -> Result<(), String> {
        self.call(
            leader_endpoint,
            "move etcd leadership",
            |mut c| async move {
                c.move_leader(target).await?;
                Ok(())
            },
        )
        .await
    }
}

fn convert(m: &etcd_client::Member) -> Member {
    Member {
        id: m.id(),
        name: m.name().to_string(),
        peer_urls: m.peer_urls().to_vec(),
        client_urls: m.client_urls().to_vec(),
        is_learner: m.is_learner(),
    }
}
