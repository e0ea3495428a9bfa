//! The workload's ZooKeeper sessions: each bound to one server (its connect string names that
//! server alone), one operation at a time — create a sequential znode, set a shared znode's
//! data at the version it last saw, `sync`, read — recorded with the zxid each reply shows
//! (a create's czxid, a set's mzxid, the mzxid of the znode read). At the end the created
//! znodes are listed, for "every acknowledged create survives".

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use zookeeper_client as zk;

use crate::consistency::zookeeper::{ZkOperation, ZkRequest};
use crate::rng::SeededRng;

/// The znode every ZooKeeper operation of the workload is under.
pub const ZK_BASE: &str = "/succession-workload";
/// How many shared znodes sessions set and read.
const SHARED: u32 = 4;

/// A ZooKeeper server a session is bound to.
#[derive(Debug, Clone)]
pub struct ZkServer {
    /// Its node's short name.
    pub node: String,
    /// Its client port, as the harness dials it.
    pub address: SocketAddr,
}

struct Shared {
    origin: Instant,
    interval: Duration,
    timeout: Duration,
    operations: Mutex<Vec<ZkOperation>>,
}

impl Shared {
    fn ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
}

/// The running sessions; dropping it stops them at once.
pub struct ZkWorkload {
    shared: Arc<Shared>,
    servers: Vec<ZkServer>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Why the ZooKeeper workload could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the ZooKeeper workload could not create {ZK_BASE} through any server: {}", .0.join("; "))]
pub struct ZkNotStarted(pub Vec<String>);

fn shared_path(n: u32) -> String {
    format!("{ZK_BASE}/k{n}")
}

/// Why a session could not be made or the workload's znodes created through it.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    /// The server refused or failed the session.
    #[error("{0}")]
    Refused(#[from] zk::Error),
    /// No session in time.
    #[error("no session within {0:?}")]
    TimedOut(Duration),
    /// A znode of the workload could not be created.
    #[error("create {path}: {source}")]
    Create {
        /// The znode.
        path: String,
        /// Why.
        source: zk::Error,
    },
}

async fn session(address: SocketAddr, timeout: Duration) -> Result<zk::Client, SessionError> {
    let cluster = address.to_string();
    let connect = zk::Client::connector()
        .with_session_timeout(timeout.max(Duration::from_secs(4)))
        .with_connection_timeout(timeout)
        .connect(&cluster);
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(SessionError::Refused(e)),
        Err(_) => Err(SessionError::TimedOut(timeout)),
    }
}

/// Creates the base and the shared znodes through the first server that answers.
async fn prepare(servers: &[ZkServer], timeout: Duration) -> Result<(), ZkNotStarted> {
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let mut errors = Vec::new();
    for s in servers {
        let attempt = async {
            let client = session(s.address, timeout).await?;
            for path in std::iter::once(ZK_BASE.to_string()).chain((0..SHARED).map(shared_path)) {
                match client.create(&path, b"", &persistent).await {
                    Ok(_) | Err(zk::Error::NodeExists) => {}
                    Err(source) => return Err(SessionError::Create { path, source }),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(timeout * 4, attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => errors.push(format!("{}: {e}", s.node)),
            Err(_) => errors.push(format!("{}: no answer in time", s.node)),
        }
    }
    Err(ZkNotStarted(errors))
}

impl ZkWorkload {
    /// Starts `sessions` sessions over `servers` (session i on server i mod servers), and
    /// `readers` sessions that only read (reader j on server j mod servers).
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        servers: Vec<ZkServer>,
        sessions: u32,
        readers: u32,
        interval: Duration,
        timeout: Duration,
        origin: Instant,
        seed: u64,
    ) -> Result<Self, ZkNotStarted> {
        if servers.is_empty() {
            return Err(ZkNotStarted(vec!["no live ZooKeeper server".to_string()]));
        }
        prepare(&servers, timeout).await?;
        let shared = Arc::new(Shared {
            origin,
            interval,
            timeout,
            operations: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = watch::channel(false);
        let tasks = (0..sessions + readers)
            .map(|i| {
                // Readers are numbered after the sessions, and start again at the first server.
                let (mix, on) = if i < sessions {
                    (Mix::All, i)
                } else {
                    (Mix::ReadsOnly, i - sessions)
                };
                let server = servers[on as usize % servers.len()].clone();
                let rng = SeededRng::new(seed ^ (u64::from(i) + 7).wrapping_mul(0x2545_f491));
                tokio::spawn(session_loop(
                    shared.clone(),
                    i,
                    mix,
                    server,
                    rng,
                    stopped.clone(),
                ))
            })
            .collect();
        Ok(Self {
            shared,
            servers,
            stop,
            tasks,
        })
    }

    /// Stops the sessions and lists the znodes that are there now (none when no server
    /// answers: then whether creates survived cannot be told).
    pub async fn stop(&mut self) -> (Vec<ZkOperation>, Option<BTreeSet<String>>) {
        super::stop_tasks(&self.stop, &mut self.tasks).await;
        let mut operations = super::take_recorded(&self.shared.operations);
        operations.sort_by_key(|o| (o.call_ms, o.session));
        (operations, self.present().await)
    }

    async fn present(&self) -> Option<BTreeSet<String>> {
        for s in &self.servers {
            let timeout = self.shared.timeout;
            let listed = tokio::time::timeout(timeout * 4, async {
                let client = session(s.address, timeout).await.ok()?;
                // Read what the ensemble has committed, not what this server has seen so far
                // (synced at the root: the workload's own znode may be gone).
                client.sync("/").await.ok()?;
                match client.list_children(ZK_BASE).await {
                    Ok(children) => Some(children),
                    // The workload's znode itself is gone, and every znode under it with it:
                    // an answer, not a failure to get one.
                    Err(zk::Error::NoNode) => Some(Vec::new()),
                    Err(_) => None,
                }
            })
            .await;
            if let Ok(Some(children)) = listed {
                return Some(
                    children
                        .into_iter()
                        .map(|c| format!("{ZK_BASE}/{c}"))
                        .collect(),
                );
            }
        }
        None
    }
}

impl Drop for ZkWorkload {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What an error says of a write: known not applied (Some(false)), or unknown (None).
fn applied_unknown(e: &zk::Error) -> bool {
    !matches!(
        e,
        zk::Error::BadVersion
            | zk::Error::NoNode
            | zk::Error::NodeExists
            | zk::Error::BadArguments(_)
    )
}

/// What a session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mix {
    /// Creates, sets, syncs and reads.
    All,
    /// Reads the shared znodes only, never `sync`: an application reading its configuration.
    /// Having no write of its own in flight, it is never held behind one (ZooKeeper answers a
    /// session in order), so it reads whatever its server has applied so far.
    ReadsOnly,
}

async fn session_loop(
    shared: Arc<Shared>,
    id: u32,
    mix: Mix,
    server: ZkServer,
    mut rng: SeededRng,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(shared.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A session is one client: when it is lost, the next operations belong to a new session id.
    let mut client: Option<zk::Client> = None;
    let mut generation = 0u32;
    let mut versions: BTreeMap<u32, i32> = BTreeMap::new();
    let persistent_sequential =
        zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tick.tick() => {}
        }
        if client.is_none() {
            match session(server.address, shared.timeout).await {
                Ok(c) => {
                    client = Some(c);
                    generation += 1;
                    versions.clear();
                }
                Err(_) => continue,
            }
        }
        let Some(c) = &client else { continue };
        // Session ids in the history: one per session made, so a new session's order starts
        // afresh (ZooKeeper orders a session, not a client that reconnects).
        let session_id = id * 1000 + generation;
        let n = rng.below(SHARED as usize) as u32;
        let call_ms = shared.ms();
        let timeout = shared.timeout;
        let pick = match mix {
            Mix::All => rng.below(100),
            Mix::ReadsOnly => 99,
        };
        let (request, result): (ZkRequest, Result<i64, bool>) = match pick {
            0..=29 => {
                let prefix = format!("{ZK_BASE}/s{id}-");
                let r = tokio::time::timeout(
                    timeout,
                    c.create(
                        &prefix,
                        call_ms.to_string().as_bytes(),
                        &persistent_sequential,
                    ),
                )
                .await;
                match r {
                    Ok(Ok((stat, seq))) => (
                        ZkRequest::Create {
                            path: format!("{prefix}{seq}"),
                        },
                        Ok(stat.czxid),
                    ),
                    Ok(Err(e)) => (ZkRequest::Create { path: prefix }, Err(applied_unknown(&e))),
                    Err(_) => (ZkRequest::Create { path: prefix }, Err(true)),
                }
            }
            30..=59 => {
                let path = shared_path(n);
                let expected = versions.get(&n).copied();
                let r = tokio::time::timeout(
                    timeout,
                    c.set_data(&path, call_ms.to_string().as_bytes(), expected),
                )
                .await;
                match r {
                    Ok(Ok(stat)) => {
                        versions.insert(n, stat.version);
                        (
                            ZkRequest::SetData {
                                path,
                                version: stat.version,
                            },
                            Ok(stat.mzxid),
                        )
                    }
                    Ok(Err(e)) => {
                        versions.remove(&n);
                        (
                            ZkRequest::SetData { path, version: -1 },
                            Err(applied_unknown(&e)),
                        )
                    }
                    Err(_) => (ZkRequest::SetData { path, version: -1 }, Err(true)),
                }
            }
            60..=74 => {
                let r = tokio::time::timeout(timeout, c.sync(ZK_BASE)).await;
                // A sync shows no zxid: it carries nothing for the view.
                (
                    ZkRequest::Sync,
                    match r {
                        Ok(Ok(())) => Ok(i64::MIN),
                        _ => Err(true),
                    },
                )
            }
            _ => {
                let path = shared_path(n);
                let r = tokio::time::timeout(timeout, c.get_data(&path)).await;
                match r {
                    Ok(Ok((_, stat))) => {
                        versions.insert(n, stat.version);
                        (
                            ZkRequest::Read {
                                path,
                                version: stat.version,
                            },
                            Ok(stat.mzxid),
                        )
                    }
                    _ => (ZkRequest::Read { path, version: -1 }, Err(true)),
                }
            }
        };
        let return_ms = shared.ms();
        let lost = matches!(result, Err(true));
        let op = ZkOperation {
            session: session_id,
            request,
            call_ms,
            acknowledged: result.ok().map(|zxid| (return_ms, zxid)),
        };
        shared
            .operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(op);
        if lost {
            // An answer lost: the session may be gone; the next operation starts a new one.
            client = None;
        }
    }
}
