//! The workload's clients: each bound to one etcd member, doing one operation at a time —
//! put, get (linearizable or serializable), delete, compare-and-set — on a small shared key
//! set with a value unique per write, and each keeping a watch on the prefix that reconnects
//! from the revision after the last it saw. Every call and return is recorded on the run's
//! clock.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Txn, TxnOp, WatchOptions,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::history::{ClientOp, OkAnswer, OpOutcome, Request, WorkloadHistory};
use crate::consistency::watch::{Change, Segment, Watch, WatchEvent};
use crate::ledger::history::Outcome as LedgerOutcome;
use crate::ledger::writer::{classify, Endpoint};
use crate::probe::etcd::client_url;
use crate::rng::SeededRng;
use crate::spec::WorkloadSettings;

/// A value no client writes: what an event carries when its value is not a number.
const FOREIGN_VALUE: u64 = u64::MAX;

struct Shared {
    origin: Instant,
    settings: WorkloadSettings,
    next_value: AtomicU64,
    operations: Mutex<Vec<ClientOp>>,
    watches: Mutex<Vec<Watch>>,
    /// Per watch task: its member, and the revision it would resume from (one past the last
    /// event delivered).
    resume_from: Mutex<Vec<(String, i64)>>,
}

impl Shared {
    fn ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn key(&self, n: u32) -> String {
        WorkloadHistory::key(&self.settings.prefix, n)
    }
}

/// The running workload; dropping it stops every task at once.
pub struct Workload {
    shared: Arc<Shared>,
    stop_clients: watch::Sender<bool>,
    clients: Vec<JoinHandle<()>>,
    stop_watches: watch::Sender<bool>,
    watches: Vec<JoinHandle<()>>,
    /// The revision the watches start after.
    pub start_revision: i64,
}

/// How long the watches are given, once the clients stopped, to deliver the last write that
/// was acknowledged: a member that rejoined late may still be catching up, and what it then
/// delivers (or fails to) belongs in the history that is judged.
pub const CATCH_UP_DEADLINE: Duration = Duration::from_secs(10);

/// How often the catch-up is looked at.
const CATCH_UP_POLL: Duration = Duration::from_millis(20);

/// Whether the watches delivered the last acknowledged write before they were stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatchUp {
    /// Nothing to wait for: no watch, or no write acknowledged.
    Nothing,
    /// Every watch delivered `revision`, `after_ms` after the clients stopped.
    Delivered {
        /// The last acknowledged write's revision.
        revision: i64,
        /// How long after the clients stopped.
        after_ms: u64,
    },
    /// These watches had not delivered `revision` by the deadline (member, resume revision).
    Behind {
        /// The last acknowledged write's revision.
        revision: i64,
        /// Each lagging watch's member and the revision it would resume from.
        lagging: Vec<(String, i64)>,
    },
}

impl std::fmt::Display for CatchUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatchUp::Nothing => write!(f, "no acknowledged write for the watches to deliver"),
            CatchUp::Delivered { revision, after_ms } => write!(
                f,
                "every watch delivered revision {revision}, the last acknowledged write, {after_ms} ms after the clients stopped"
            ),
            CatchUp::Behind { revision, lagging } => {
                let names: Vec<String> = lagging
                    .iter()
                    .map(|(m, next)| format!("on {m} at revision {}", next - 1))
                    .collect();
                write!(
                    f,
                    "watches had not delivered revision {revision}, the last acknowledged write, within {} s of the clients stopping: {}",
                    CATCH_UP_DEADLINE.as_secs(),
                    names.join(", ")
                )
            }
        }
    }
}

/// The revision of the last acknowledged write that changed a key under the prefix: what every
/// watch on the prefix must deliver.
pub(super) fn last_acknowledged_write(operations: &[ClientOp]) -> Option<i64> {
    operations
        .iter()
        .filter_map(super::judge::written)
        .map(|w| w.revision)
        .max()
}

/// Why the workload could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the workload could not read the store's revision through any member: {}", .0.join("; "))]
pub struct NotStarted(pub Vec<String>);

fn options(timeout: Duration, require_leader: bool) -> ConnectOptions {
    ConnectOptions::new()
        .with_require_leader(require_leader)
        .with_connect_timeout(timeout)
        .with_timeout(timeout)
}

/// The store's revision now, read through the first member that answers.
async fn current_revision(members: &[Endpoint], timeout: Duration) -> Result<i64, NotStarted> {
    let mut errors = Vec::new();
    for m in members {
        let attempt = async {
            let mut c =
                Client::connect([client_url(m.address)], Some(options(timeout, true))).await?;
            c.get("/", Some(GetOptions::new().with_count_only())).await
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(r)) => return Ok(r.header().map_or(0, |h| h.revision())),
            Ok(Err(e)) => errors.push(format!("{}: {e}", m.node)),
            Err(_) => errors.push(format!("{}: no answer within {timeout:?}", m.node)),
        }
    }
    Err(NotStarted(errors))
}

impl Workload {
    /// Starts the clients (and their watches) on `members`; times are ms after `origin`.
    pub async fn start(
        settings: WorkloadSettings,
        origin: Instant,
        members: Vec<Endpoint>,
        seed: u64,
    ) -> Result<Self, NotStarted> {
        if members.is_empty() {
            return Err(NotStarted(vec!["no live etcd member".to_string()]));
        }
        let start_revision = current_revision(&members, settings.timeout).await?;
        let shared = Arc::new(Shared {
            origin,
            settings,
            next_value: AtomicU64::new(1),
            operations: Mutex::new(Vec::new()),
            watches: Mutex::new(Vec::new()),
            resume_from: Mutex::new(Vec::new()),
        });
        let (stop_clients, clients_stopped) = watch::channel(false);
        let (stop_watches, watches_stopped) = watch::channel(false);
        let mut clients = Vec::new();
        let mut watches = Vec::new();
        for client in 0..shared.settings.clients {
            let member = members[client as usize % members.len()].clone();
            let rng = SeededRng::new(seed ^ (u64::from(client) + 1).wrapping_mul(0x9e37_79b9));
            clients.push(tokio::spawn(client_loop(
                shared.clone(),
                client,
                member.clone(),
                rng,
                clients_stopped.clone(),
            )));
            if shared.settings.watch {
                let slot = {
                    let mut resume = lock(&shared.resume_from);
                    resume.push((member.node.clone(), start_revision + 1));
                    resume.len() - 1
                };
                watches.push(tokio::spawn(watch_loop(
                    shared.clone(),
                    member,
                    client,
                    slot,
                    start_revision + 1,
                    watches_stopped.clone(),
                )));
            }
        }
        Ok(Self {
            shared,
            stop_clients,
            clients,
            stop_watches,
            watches,
            start_revision,
        })
    }

    /// Stops the clients and waits for the operations in flight (each bounded by the
    /// timeout); polls, to `CATCH_UP_DEADLINE`, until every watch delivered the last
    /// acknowledged write; stops the watches; returns everything recorded, operations in call
    /// order, and how the catch-up went.
    pub async fn stop(&mut self) -> (Vec<ClientOp>, Vec<Watch>, CatchUp) {
        super::stop_tasks(&self.stop_clients, &mut self.clients).await;
        let mut operations = super::take_recorded(&self.shared.operations);
        operations.sort_by_key(|o| (o.call_ms, o.client));
        let catch_up = self.catch_up(last_acknowledged_write(&operations)).await;
        super::stop_tasks(&self.stop_watches, &mut self.watches).await;
        (
            operations,
            super::take_recorded(&self.shared.watches),
            catch_up,
        )
    }

    async fn catch_up(&self, last_write: Option<i64>) -> CatchUp {
        let Some(revision) = last_write.filter(|_| !self.watches.is_empty()) else {
            return CatchUp::Nothing;
        };
        let began = Instant::now();
        loop {
            let lagging: Vec<(String, i64)> = {
                let resume = lock(&self.shared.resume_from);
                resume
                    .iter()
                    .filter(|(_, next)| *next <= revision)
                    .cloned()
                    .collect()
            };
            if lagging.is_empty() {
                return CatchUp::Delivered {
                    revision,
                    after_ms: began.elapsed().as_millis() as u64,
                };
            }
            if began.elapsed() >= CATCH_UP_DEADLINE {
                return CatchUp::Behind { revision, lagging };
            }
            tokio::time::sleep(CATCH_UP_POLL).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for Workload {
    fn drop(&mut self) {
        for task in self.clients.iter().chain(&self.watches) {
            task.abort();
        }
    }
}

/// What a client does next, drawn from its seeded generator.
fn draw(rng: &mut SeededRng, shared: &Shared, last_seen: Option<u64>) -> Request {
    let value = || shared.next_value.fetch_add(1, Ordering::Relaxed);
    match rng.below(100) {
        0..=29 => Request::Put { value: value() },
        30..=54 => Request::Get {
            serializable: false,
        },
        55..=64 => Request::Get { serializable: true },
        65..=74 => Request::Delete,
        _ => Request::CompareAndSet {
            expect: last_seen,
            value: value(),
        },
    }
}

async fn client_loop(
    shared: Arc<Shared>,
    client: u32,
    member: Endpoint,
    mut rng: SeededRng,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(shared.settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Two connections: one that requires a leader (a leaderless member refuses at once rather
    // than hold the operation to its timeout), and one for serializable reads, which a member
    // serves from its own store with or without a leader — that is what they are for.
    let mut connections: [Option<Client>; 2] = [None, None];
    // The last value this client saw in each key, what its compare-and-sets expect.
    let mut seen: BTreeMap<u32, Option<u64>> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tick.tick() => {}
        }
        let n = rng.below(shared.settings.keys as usize) as u32;
        let request = draw(&mut rng, &shared, seen.get(&n).copied().flatten());
        let key = shared.key(n);
        let local = matches!(request, Request::Get { serializable: true });
        let connection = &mut connections[usize::from(local)];
        let mut retry = false;
        loop {
            let call_ms = shared.ms();
            let outcome = perform(&shared, connection, !local, member.address, &key, request).await;
            if let OpOutcome::Ok { answer, .. } = &outcome {
                if let Some(v) = value_after(request, answer) {
                    seen.insert(n, v);
                }
            } else {
                // A client that lost its connection starts again on a new one.
                *connection = None;
            }
            // An application that does not know whether its put applied sends it again (once,
            // here): the first send may still apply, and the history must say there were two.
            let again = !retry
                && shared.settings.retry_unknown_puts
                && matches!(request, Request::Put { .. })
                && matches!(outcome, OpOutcome::Indeterminate { .. });
            let op = ClientOp {
                client,
                member: member.node.as_str().into(),
                key: key.as_str().into(),
                request,
                call_ms,
                return_ms: shared.ms(),
                outcome,
                retry,
            };
            shared
                .operations
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(op);
            if !again {
                break;
            }
            retry = true;
        }
    }
}

/// What the key holds after an answered operation, as its client saw it (none: it did not
/// tell).
fn value_after(request: Request, answer: &OkAnswer) -> Option<Option<u64>> {
    match (request, answer) {
        (Request::Put { value }, _) => Some(Some(value)),
        (Request::Delete, _) => Some(None),
        (Request::CompareAndSet { value, .. }, OkAnswer::Swapped { applied: true }) => {
            Some(Some(value))
        }
        (_, OkAnswer::Read { value }) => Some(*value),
        _ => None,
    }
}

/// Does one operation through the member, within the workload's timeout.
async fn perform(
    shared: &Shared,
    connection: &mut Option<Client>,
    require_leader: bool,
    address: SocketAddr,
    key: &str,
    request: Request,
) -> OpOutcome {
    let timeout = shared.settings.timeout;
    let started = Instant::now();
    if connection.is_none() {
        // Dialling first tells "never sent" (certainly not applied) from "sent, no answer":
        // the client connects lazily and would blur the two.
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return OpOutcome::Failed {
                    error: format!("failed to connect to {address}: {e}"),
                }
            }
            Err(_) => {
                return OpOutcome::Failed {
                    error: format!("failed to connect to {address} within {timeout:?}"),
                }
            }
        }
    }
    let remaining = timeout.saturating_sub(started.elapsed());
    let attempt = async {
        let client = match connection {
            Some(c) => c,
            None => connection.insert(
                Client::connect(
                    [client_url(address)],
                    Some(options(remaining, require_leader)),
                )
                .await?,
            ),
        };
        call(client, key, request).await
    };
    match tokio::time::timeout(remaining, attempt).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => match classify(&e.to_string()) {
            LedgerOutcome::Failed { error, .. } => OpOutcome::Failed { error },
            LedgerOutcome::Indeterminate { error } => OpOutcome::Indeterminate { error },
            LedgerOutcome::Acknowledged { .. } => OpOutcome::Indeterminate {
                error: e.to_string(),
            },
        },
        Err(_) => OpOutcome::Indeterminate {
            error: format!("no answer within {} ms", timeout.as_millis()),
        },
    }
}

fn parse_value(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(FOREIGN_VALUE)
}

async fn call(
    client: &mut Client,
    key: &str,
    request: Request,
) -> Result<OpOutcome, etcd_client::Error> {
    let revision = |h: Option<&etcd_client::ResponseHeader>| h.map_or(0, |h| h.revision());
    Ok(match request {
        Request::Put { value } => {
            let r = client.put(key, value.to_string(), None).await?;
            OpOutcome::Ok {
                revision: revision(r.header()),
                answer: OkAnswer::Written,
            }
        }
        Request::Delete => {
            let r = client.delete(key, None).await?;
            OpOutcome::Ok {
                revision: revision(r.header()),
                answer: OkAnswer::Deleted { count: r.deleted() },
            }
        }
        Request::CompareAndSet { expect, value } => {
            let compare = match expect {
                Some(v) => Compare::value(key, CompareOp::Equal, v.to_string()),
                None => Compare::version(key, CompareOp::Equal, 0),
            };
            let txn =
                Txn::new()
                    .when([compare])
                    .and_then([TxnOp::put(key, value.to_string(), None)]);
            let r = client.txn(txn).await?;
            OpOutcome::Ok {
                revision: revision(r.header()),
                answer: OkAnswer::Swapped {
                    applied: r.succeeded(),
                },
            }
        }
        Request::Get { serializable } => {
            let options = serializable.then(|| GetOptions::new().with_serializable());
            let r = client.get(key, options).await?;
            OpOutcome::Ok {
                revision: revision(r.header()),
                answer: OkAnswer::Read {
                    value: r.kvs().first().map(|kv| parse_value(kv.value())),
                },
            }
        }
    })
}

/// Keeps a watch on the prefix through `member` until stopped, reconnecting from the revision
/// after the last event seen; a watch whose revision was compacted away ends, and a new one
/// starts where the store now is.
async fn watch_loop(
    shared: Arc<Shared>,
    member: Endpoint,
    client: u32,
    slot: usize,
    from: i64,
    mut stopped: watch::Receiver<bool>,
) {
    let mut current = Watch {
        member: member.node.clone(),
        client: Some(client),
        begun_at_compaction: None,
        segments: Vec::new(),
    };
    let mut next = from;
    let mut retry = tokio::time::interval(shared.settings.interval.max(Duration::from_millis(50)));
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    'connections: loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = retry.tick() => {}
        }
        // No leader required: a watch stays open on a member cut off from the others, as an
        // application's would, and sees what that member delivers when it comes back.
        let timeout = shared.settings.timeout;
        let opened = tokio::time::timeout(timeout, async {
            let mut c =
                Client::connect([client_url(member.address)], Some(options(timeout, false)))
                    .await?;
            c.watch(
                shared.settings.prefix.as_str(),
                Some(WatchOptions::new().with_prefix().with_start_revision(next)),
            )
            .await
        })
        .await;
        let Ok(Ok(mut stream)) = opened else {
            continue;
        };
        current.segments.push(Segment {
            from_revision: next,
            events: Vec::new(),
        });
        loop {
            let message = tokio::select! {
                _ = stopped.changed() => break 'connections,
                m = stream.message() => m,
            };
            let Ok(Some(response)) = message else {
                continue 'connections;
            };
            if response.canceled() {
                if response.compact_revision() > 0 {
                    let ended = std::mem::replace(
                        &mut current,
                        Watch {
                            member: member.node.clone(),
                            client: Some(client),
                            begun_at_compaction: Some(response.compact_revision()),
                            segments: Vec::new(),
                        },
                    );
                    push_watch(&shared, ended);
                    next = response.compact_revision();
                    resumes_from(&shared, slot, next);
                }
                continue 'connections;
            }
            let at_ms = shared.ms();
            let Some(segment) = current.segments.last_mut() else {
                continue 'connections;
            };
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let change = match event.event_type() {
                    EventType::Put => Change::Put {
                        value: parse_value(kv.value()),
                    },
                    EventType::Delete => Change::Delete,
                };
                segment.events.push(WatchEvent {
                    revision: kv.mod_revision(),
                    key: String::from_utf8_lossy(kv.key()).into(),
                    change,
                    at_ms,
                });
                next = next.max(kv.mod_revision() + 1);
            }
            resumes_from(&shared, slot, next);
        }
    }
    push_watch(&shared, current);
}

/// Publishes where watch task `slot` would resume, for the catch-up at the end.
fn resumes_from(shared: &Shared, slot: usize, next: i64) {
    if let Some(entry) = lock(&shared.resume_from).get_mut(slot) {
        entry.1 = next;
    }
}

fn push_watch(shared: &Shared, watch: Watch) {
    if !watch.segments.is_empty() {
        shared
            .watches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(watch);
    }
}
