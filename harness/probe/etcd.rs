//! etcd through its gRPC API, one client per endpoint so every member's own view is seen
//! (a client with several endpoints load-balances and would hide which member answered).

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use serde::Serialize;
use tokio::sync::Mutex;

use super::answer::NoAnswer;

/// What one member says of itself and of the leader.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    /// This member's id.
    pub member_id: u64,
    /// The leader's id as this member sees it (0: none).
    pub leader: u64,
    /// The raft term.
    pub raft_term: u64,
    /// The current revision.
    pub revision: i64,
    /// The rest of `endpoint status`: what a preflight compares across members.
    pub detail: StatusDetail,
}

/// What `endpoint status` says beyond the leader.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusDetail {
    /// The cluster this member belongs to (its reply header's).
    pub cluster_id: u64,
    /// The server's version.
    pub version: String,
    /// The backend database's size on disk, bytes.
    pub db_size: i64,
    /// The part of it in use, bytes (the rest is freed pages a defragmentation returns).
    pub db_size_in_use: i64,
    /// The last raft index this member has.
    pub raft_index: u64,
    /// The last raft index it has applied.
    pub raft_applied_index: u64,
    /// Whether it is a learner.
    pub is_learner: bool,
    /// What the member reports wrong with itself, raised alarms among them
    /// (`memberID:… alarm:NOSPACE`).
    pub errors: Vec<String>,
}

impl StatusDetail {
    /// The alarms among the errors `endpoint status` reports: read from the status itself,
    /// because `alarm list` goes through raft (it adds an entry to the log) and a preflight
    /// must not.
    pub fn alarms(&self) -> Vec<Alarm> {
        self.errors
            .iter()
            .filter_map(|e| {
                let mut member_id = None;
                let mut alarm = None;
                for word in e.split_whitespace() {
                    if let Some(id) = word.strip_prefix("memberID:") {
                        member_id = id.parse().ok();
                    } else if let Some(a) = word.strip_prefix("alarm:") {
                        alarm = Some(a.to_string());
                    }
                }
                Some(Alarm {
                    member_id: member_id?,
                    alarm: alarm?,
                })
            })
            .collect()
    }
}

/// A raised alarm, as `endpoint status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alarm {
    /// The member that raised it.
    pub member_id: u64,
    /// `NOSPACE` or `CORRUPT`.
    pub alarm: String,
}

/// `hashkv` of one member at one revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KvHash {
    /// The revision hashed up to.
    pub revision: i64,
    /// The hash of every key-value up to it.
    pub hash: u32,
    /// The compacted revision the hash began at.
    pub compact_revision: i64,
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
    /// The member whose peer URL is at `address`, in a member list.
    pub fn at(members: &[Member], address: std::net::Ipv4Addr) -> Option<&Member> {
        let host = address.to_string();
        members
            .iter()
            .find(|m| m.peer_urls.iter().any(|u| url_host(u) == host))
    }

    /// Whether the member has started (etcdctl shows unstarted ones with no name).
    pub fn is_started(&self) -> bool {
        !self.name.is_empty()
    }

    /// Whether the member has ever run and published its client URLs: members of an initial
    /// cluster are named from the start, but publish only once they have run with data.
    pub fn has_published(&self) -> bool {
        !self.client_urls.is_empty()
    }
}

/// Why an etcd call failed; each prints what the harness has always printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    /// No connection within the probe's timeout.
    #[error("failed to connect to etcd at {endpoint}: timed out")]
    ConnectTimedOut {
        /// The client URL.
        endpoint: String,
    },
    /// The connection failed.
    #[error("failed to connect to etcd at {endpoint}: {detail}")]
    Connect {
        /// The client URL.
        endpoint: String,
        /// What the client said.
        detail: String,
    },
    /// The call failed (etcd's own error, or the transport's).
    #[error("failed to {what} at {endpoint}: {detail}")]
    Call {
        /// What was asked ("list etcd members").
        what: String,
        /// The client URL.
        endpoint: String,
        /// What etcd or the client said.
        detail: String,
    },
    /// No answer within the probe's timeout.
    #[error("failed to {what} at {endpoint}: no answer within {ms} ms")]
    TimedOut {
        /// What was asked.
        what: String,
        /// The client URL.
        endpoint: String,
        /// The timeout.
        ms: u128,
    },
    /// A snapshot could not be taken or written.
    #[error("{0}")]
    Snapshot(String),
}

impl From<EtcdError> for String {
    fn from(e: EtcdError) -> Self {
        e.to_string()
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

    async fn client(&self, endpoint: &str) -> Result<Client, EtcdError> {
        if let Some(c) = self.clients.lock().await.get(endpoint) {
            return Ok(c.clone());
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(self.timeout)
            .with_timeout(self.timeout);
        let client = tokio::time::timeout(self.timeout, Client::connect([endpoint], Some(options)))
            .await
            .map_err(|_| EtcdError::ConnectTimedOut {
                endpoint: endpoint.to_string(),
            })?
            .map_err(|e| EtcdError::Connect {
                endpoint: endpoint.to_string(),
                detail: e.to_string(),
            })?;
        self.clients
            .lock()
            .await
            .insert(endpoint.to_string(), client.clone());
        Ok(client)
    }

    /// Runs one call with the timeout; a failed call drops the cached client so the next one
    /// reconnects (a replaced node keeps its address but is a new server).
    async fn call<T, F, Fut>(&self, endpoint: &str, what: &str, f: F) -> Result<T, EtcdError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let client = self.client(endpoint).await?;
        let result = match tokio::time::timeout(self.timeout, f(client)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => EtcdError::Call {
                what: what.to_string(),
                endpoint: endpoint.to_string(),
                detail: e.to_string(),
            },
            Err(_) => EtcdError::TimedOut {
                what: what.to_string(),
                endpoint: endpoint.to_string(),
                ms: self.timeout.as_millis(),
            },
        };
        self.clients.lock().await.remove(endpoint);
        Err(result)
    }

    /// `endpoint status` of one member.
    pub async fn status(&self, endpoint: &str) -> Result<Status, EtcdError> {
        self.call(endpoint, "read etcd status", |mut c| async move {
            let s = c.status().await?;
            let header = s.header();
            Ok(Status {
                member_id: header.map(|h| h.member_id()).unwrap_or(0),
                leader: s.leader(),
                raft_term: s.raft_term(),
                revision: header.map(|h| h.revision()).unwrap_or(0),
                detail: StatusDetail {
                    cluster_id: header.map(|h| h.cluster_id()).unwrap_or(0),
                    version: s.version().to_string(),
                    db_size: s.db_size(),
                    db_size_in_use: s.raft_used_db_size(),
                    raft_index: s.raft_index(),
                    raft_applied_index: s.raft_applied_index(),
                    is_learner: s.is_learner(),
                    errors: s.errors().to_vec(),
                },
            })
        })
        .await
    }

    /// `hashkv` of one member up to `revision`, or to its current revision when 0 (read-only).
    pub async fn hash_kv(&self, endpoint: &str, revision: i64) -> Result<KvHash, EtcdError> {
        self.call(endpoint, "hash etcd's keys", |mut c| async move {
            let r = c.hash_kv(revision).await?;
            Ok(KvHash {
                revision: if revision == 0 {
                    r.header().map_or(0, |h| h.revision())
                } else {
                    revision
                },
                hash: r.hash(),
                compact_revision: r.compact_version(),
            })
        })
        .await
    }

    /// A linearizable read of one key, as `etcdctl endpoint health` does: it needs a quorum
    /// and changes nothing.
    pub async fn health(&self, endpoint: &str) -> Result<(), EtcdError> {
        self.call(endpoint, "read from etcd", |mut c| async move {
            c.get("health", None).await?;
            Ok(())
        })
        .await
    }

    /// `member list` as one member sees it.
    pub async fn members(&self, endpoint: &str) -> Result<Vec<Member>, EtcdError> {
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
    ) -> Result<(Member, Vec<Member>), EtcdError> {
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
    pub async fn member_remove(&self, endpoint: &str, id: u64) -> Result<Vec<Member>, EtcdError> {
        self.call(endpoint, "remove an etcd member", |mut c| async move {
            let r = c.member_remove(id).await?;
            Ok(r.members().iter().map(convert).collect())
        })
        .await
    }

    /// `move-leader`; must be sent to the current leader.
    pub async fn move_leader(&self, leader_endpoint: &str, target: u64) -> Result<(), EtcdError> {
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

/// A member's raft state as etcd publishes it at `/debug/vars` (`raft.status`): one snapshot
/// taken by the raft loop, so its term and leader belong together. (The status RPC's term is
/// the term of the last applied entry, read apart from the leader: a member that has just
/// learnt of a new leader reports it at the old term, which would read as two leaders in one.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RaftStatus {
    /// This member's id.
    pub id: u64,
    /// The leader's id as this member sees it (0: none).
    pub lead: u64,
    /// The raft term.
    pub term: u64,
}

/// What `/debug/vars` lacked of `raft.status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaftStatusError {
    /// No `raft.status` at all (not an etcd, or one that does not publish it).
    #[error("/debug/vars has no raft.status")]
    Missing,
    /// A field etcd writes in hexadecimal is absent or not hexadecimal.
    #[error("raft.status has no hexadecimal `{0}`")]
    NoHex(&'static str),
    /// The term is absent or not a number.
    #[error("raft.status has no numeric `term`")]
    NoTerm,
}

/// Reads `raft.status` out of `/debug/vars`.
pub fn parse_raft_status(vars: &serde_json::Value) -> Result<RaftStatus, RaftStatusError> {
    let raft = vars.get("raft.status").ok_or(RaftStatusError::Missing)?;
    let hex = |key: &'static str| {
        raft.get(key)
            .and_then(|v| v.as_str())
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .ok_or(RaftStatusError::NoHex(key))
    };
    Ok(RaftStatus {
        id: hex("id")?,
        lead: hex("lead")?,
        term: raft
            .get("term")
            .and_then(|v| v.as_u64())
            .ok_or(RaftStatusError::NoTerm)?,
    })
}

/// One member's raft state, from its client endpoint's `/debug/vars`.
pub async fn raft_status(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
) -> Result<RaftStatus, NoAnswer> {
    let url = format!("http://{addr}/debug/vars");
    super::answer::get_json(http, &url, parse_raft_status).await
}

/// Keys and values as read, with the revision they were read at.
pub type KeyValues = (i64, Vec<(Vec<u8>, Vec<u8>)>);

/// Keys per page of a prefix read.
const PAGE: i64 = 1000;

/// The end of the range of keys that start with `prefix` (etcd's `--prefix`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte is 0xff (or the prefix is empty): to the end of the keyspace.
    vec![0]
}

impl EtcdProbe {
    /// `put`; returns the revision it was written at.
    pub async fn put(&self, endpoint: &str, key: &[u8], value: &[u8]) -> Result<i64, EtcdError> {
        let (key, value) = (key.to_vec(), value.to_vec());
        self.call(endpoint, "write to etcd", |mut c| async move {
            let r = c.put(key, value, None).await?;
            Ok(r.header().map(|h| h.revision()).unwrap_or(0))
        })
        .await
    }

    /// `del` of one key.
    pub async fn delete(&self, endpoint: &str, key: &[u8]) -> Result<(), EtcdError> {
        let key = key.to_vec();
        self.call(endpoint, "delete from etcd", |mut c| async move {
            c.delete(key, None).await?;
            Ok(())
        })
        .await
    }

    /// `get` of one key, linearizable unless `serializable`.
    pub async fn get(
        &self,
        endpoint: &str,
        key: &str,
        serializable: bool,
    ) -> Result<Option<Vec<u8>>, EtcdError> {
        let key = key.to_string();
        self.call(endpoint, "read from etcd", |mut c| async move {
            let options = serializable.then(|| etcd_client::GetOptions::new().with_serializable());
            let r = c.get(key, options).await?;
            Ok(r.kvs().first().map(|kv| kv.value().to_vec()))
        })
        .await
    }

    /// How many keys the whole keyspace holds, as this member alone sees it when `serializable`.
    pub async fn count_all(&self, endpoint: &str, serializable: bool) -> Result<i64, EtcdError> {
        self.call(endpoint, "count etcd keys", |mut c| async move {
            let mut options = etcd_client::GetOptions::new()
                .with_all_keys()
                .with_count_only();
            if serializable {
                options = options.with_serializable();
            }
            Ok(c.get(vec![0u8], Some(options)).await?.count())
        })
        .await
    }

    /// Every key under `prefix` with its value, read page by page at one revision: `revision`,
    /// or the revision of the first page when 0. Linearizable unless `serializable`.
    pub async fn range(
        &self,
        endpoint: &str,
        prefix: &[u8],
        serializable: bool,
        revision: i64,
    ) -> Result<KeyValues, EtcdError> {
        let end = prefix_end(prefix);
        let mut from = prefix.to_vec();
        let mut revision = revision;
        let mut out = Vec::new();
        loop {
            let (at, page, more) = self
                .call(endpoint, "read etcd keys", |mut c| {
                    let (from, end) = (from.clone(), end.clone());
                    async move {
                        let mut options = etcd_client::GetOptions::new()
                            .with_range(end)
                            .with_limit(PAGE);
                        if serializable {
                            options = options.with_serializable();
                        }
                        if revision > 0 {
                            options = options.with_revision(revision);
                        }
                        let r = c.get(from, Some(options)).await?;
                        let page: Vec<(Vec<u8>, Vec<u8>)> = r
                            .kvs()
                            .iter()
                            .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
                            .collect();
                        Ok((
                            r.header().map(|h| h.revision()).unwrap_or(0),
                            page,
                            r.more(),
                        ))
                    }
                })
                .await?;
            if revision == 0 {
                revision = at;
            }
            let next = page.last().map(|(k, _)| {
                let mut k = k.clone();
                k.push(0);
                k
            });
            out.extend(page);
            match (more, next) {
                (true, Some(next)) => from = next,
                _ => return Ok((revision, out)),
            }
        }
    }

    /// Streams a snapshot (`etcdctl snapshot save`) from one member into a file; returns its
    /// size. `within` bounds the whole transfer.
    pub async fn snapshot_to(
        &self,
        endpoint: &str,
        path: &std::path::Path,
        within: Duration,
    ) -> Result<u64, EtcdError> {
        use tokio::io::AsyncWriteExt;
        let mut client = self.client(endpoint).await?;
        let part = path.with_extension("part");
        // The transfer's own failures are said as they happen, then typed once.
        let transfer = async {
            let mut stream = client
                .snapshot()
                .await
                .map_err(|e| format!("failed to start a snapshot at {endpoint}: {e}"))?;
            let mut file = tokio::fs::File::create(&part)
                .await
                .map_err(|e| format!("failed to create {}: {e}", part.display()))?;
            let mut size = 0u64;
            while let Some(message) = stream
                .message()
                .await
                .map_err(|e| format!("failed to read a snapshot from {endpoint}: {e}"))?
            {
                file.write_all(message.blob())
                    .await
                    .map_err(|e| format!("failed to write {}: {e}", part.display()))?;
                size += message.blob().len() as u64;
            }
            file.sync_all()
                .await
                .map_err(|e| format!("failed to write {}: {e}", part.display()))?;
            tokio::fs::rename(&part, path)
                .await
                .map_err(|e| format!("failed to move the snapshot to {}: {e}", path.display()))?;
            Ok::<_, String>(size)
        };
        let result = match tokio::time::timeout(within, transfer).await {
            Ok(r) => r.map_err(EtcdError::Snapshot),
            Err(_) => Err(EtcdError::Snapshot(format!(
                "failed to take a snapshot at {endpoint}: not done within {} s",
                within.as_secs()
            ))),
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(&part).await;
            self.clients.lock().await.remove(endpoint);
        }
        result
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

/// `http://ADDR:PORT`, the client URL the harness dials.
pub fn client_url(endpoint: std::net::SocketAddr) -> String {
    format!("http://{endpoint}")
}

/// The host part of `http://10.1.2.3:2380`.
pub fn url_host(url: &str) -> &str {
    let rest = url.split("://").nth(1).unwrap_or(url);
    rest.split(['/', ':']).next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_status_is_read_from_debug_vars_or_says_what_is_missing() {
        let vars =
            serde_json::json!({"raft.status": {"id": "8e9e05c52164694d", "lead": "0", "term": 7}});
        assert_eq!(
            parse_raft_status(&vars),
            Ok(RaftStatus {
                id: 0x8e9e_05c5_2164_694d,
                lead: 0,
                term: 7
            })
        );
        let no_status = serde_json::json!({"cmdline": []});
        assert_eq!(parse_raft_status(&no_status), Err(RaftStatusError::Missing));
        let decimal_lead = serde_json::json!({"raft.status": {"id": "1", "lead": "zz", "term": 7}});
        let e = parse_raft_status(&decimal_lead).unwrap_err();
        assert_eq!(e.to_string(), "raft.status has no hexadecimal `lead`");
        let text_term = serde_json::json!({"raft.status": {"id": "1", "lead": "2", "term": "7"}});
        assert_eq!(parse_raft_status(&text_term), Err(RaftStatusError::NoTerm));
    }

    #[test]
    fn url_hosts_are_extracted() {
        assert_eq!(url_host("http://10.136.89.99:2380"), "10.136.89.99");
        assert_eq!(url_host("10.1.1.1:2380"), "10.1.1.1");
    }

    #[test]
    fn prefix_ends_follow_etcd() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
