//! The harness's end of the node agent (`node_tools::agent`): one open connection per node,
//! over which every command the harness runs there goes, concurrently, instead of one remote
//! call (or several: the engine's exec is create, start, attach and inspect) per command.
//!
//! A provider gives the way in — a function that starts `succession-standin agent` on a node
//! and hands back its standard input and output ([`Transport`]) — and the rest is here, the same
//! for every provider: the connection opened on first use, requests numbered, replies matched,
//! a connection that closed (a node terminated, replaced, its agent killed) opened again on the
//! next command. The connections live on the hosts' background runtime (`background.rs`), so
//! they outlast the short runtimes that provisioning and teardown run on.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::ExecOutput;
use crate::node_tools::agent::{to_hex, AgentReply, AgentRequest};

/// What a provider hands back when it has started an agent on a node.
pub struct Transport {
    /// The agent's standard input.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    /// What it prints on its standard output, as it arrives.
    pub output: Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>,
}

/// A provider's way of starting an agent on a node.
pub type Opening = Pin<Box<dyn Future<Output = Result<Transport, String>> + Send>>;

/// Why a command sent to an agent gave no reply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    /// The agent could not be started on the node.
    #[error("cannot start the node agent: {0}")]
    Start(String),
    /// Its connection closed before the reply came.
    #[error("the node agent's connection closed: {0}")]
    Closed(String),
    /// The command ran past its limit and was killed.
    #[error("`{command}` did not finish within {} s", limit.as_secs())]
    Timeout {
        /// The command.
        command: String,
        /// Its limit.
        limit: Duration,
    },
    /// The agent could not run it (no such program, say).
    #[error("{0}")]
    Refused(String),
    /// A thread panicked while holding the connections.
    #[error("the node agents' connections are unusable: {0}")]
    Poisoned(String),
}

/// One request waiting to be sent, and where its reply goes.
struct Pending {
    argv: Vec<String>,
    stdin: Option<Vec<u8>>,
    limit: Duration,
    reply: oneshot::Sender<Result<AgentReply, AgentError>>,
}

/// The connections of one run's hosts, one per node, opened on first use.
pub struct AgentLinks {
    /// Where the connections run: the hosts' background runtime.
    runtime: tokio::runtime::Handle,
    links: Mutex<HashMap<String, mpsc::UnboundedSender<Pending>>>,
}

/// How much longer than a command's own limit the harness waits for its reply: the agent kills
/// the command at its limit and says so; past this the agent itself is not answering.
const REPLY_GRACE: Duration = Duration::from_secs(5);

impl AgentLinks {
    /// No connection yet; they will run on `runtime`, which must outlive the commands sent.
    pub fn new(runtime: tokio::runtime::Handle) -> Self {
        Self {
            runtime,
            links: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `argv` on `node` through its agent (opened with `open` if it has none), with
    /// `stdin` as its input, killed past `limit`.
    pub async fn run(
        &self,
        node: &str,
        open: impl FnOnce() -> Opening,
        argv: &[String],
        stdin: Option<&[u8]>,
        limit: Duration,
    ) -> Result<ExecOutput, AgentError> {
        let command = argv.join(" ");
        let span = tracing::info_span!(
            "agent.command",
            node,
            program = argv.first().map(String::as_str).unwrap_or("")
        );
        async {
            let (reply, answer) = oneshot::channel();
            let pending = Pending {
                argv: argv.to_vec(),
                stdin: stdin.map(<[u8]>::to_vec),
                limit,
                reply,
            };
            self.send(node, open, pending)?;
            let reply = match tokio::time::timeout(limit + REPLY_GRACE, answer).await {
                Ok(Ok(reply)) => reply?,
                Ok(Err(_)) => return Err(AgentError::Closed("the connection was dropped".into())),
                Err(_) => return Err(AgentError::Timeout { command, limit }),
            };
            match reply.error {
                Some(e) if e.starts_with("timed out") => {
                    Err(AgentError::Timeout { command, limit })
                }
                Some(e) => Err(AgentError::Refused(e)),
                None => Ok(ExecOutput {
                    code: reply.code,
                    stdout: reply.stdout,
                    stderr: reply.stderr,
                }),
            }
        }
        .instrument(span)
        .await
    }

    /// Hands a request to the node's connection, opening one when there is none or it closed.
    fn send(
        &self,
        node: &str,
        open: impl FnOnce() -> Opening,
        pending: Pending,
    ) -> Result<(), AgentError> {
        let mut links = self
            .links
            .lock()
            .map_err(|_| AgentError::Poisoned("a thread panicked holding them".into()))?;
        let pending = match links.get(node) {
            Some(link) => match link.send(pending) {
                Ok(()) => return Ok(()),
                // Its connection closed since: open another below.
                Err(mpsc::error::SendError(p)) => p,
            },
            None => pending,
        };
        let (link, requests) = mpsc::unbounded_channel();
        let opening = open();
        // No span of the caller's: a span stays open while anything under it is, and the
        // connection outlives the command that opened it.
        self.runtime
            .spawn(drive(opening, requests).instrument(tracing::Span::none()));
        // The new connection's receiver is alive: this send cannot fail.
        let _ = link.send(pending);
        links.insert(node.to_string(), link);
        Ok(())
    }

    /// Closes a node's connection (the node was terminated or is being replaced).
    pub fn forget(&self, node: &str) {
        if let Ok(mut links) = self.links.lock() {
            links.remove(node);
        }
    }
}

/// One connection: opens it, then sends requests and matches replies until either side ends.
async fn drive(opening: Opening, mut requests: mpsc::UnboundedReceiver<Pending>) {
    let opened = opening
        .instrument(tracing::info_span!(parent: None, "agent.open"))
        .await;
    let Transport {
        mut input,
        mut output,
    } = match opened {
        Ok(t) => t,
        Err(e) => {
            requests.close();
            while let Some(p) = requests.recv().await {
                let _ = p.reply.send(Err(AgentError::Start(e.clone())));
            }
            return;
        }
    };
    let mut waiting: HashMap<u64, oneshot::Sender<Result<AgentReply, AgentError>>> = HashMap::new();
    let mut next_id: u64 = 1;
    let mut buffer: Vec<u8> = Vec::new();
    let closed = loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(p) = request else {
                    // The hosts let go of this connection: closing its input ends the agent.
                    break "the harness closed it".to_string();
                };
                let id = next_id;
                next_id += 1;
                let line = AgentRequest {
                    id,
                    argv: p.argv,
                    stdin_hex: p.stdin.as_deref().map(to_hex),
                    timeout_ms: p.limit.as_millis() as u64,
                };
                let Ok(mut text) = serde_json::to_string(&line) else {
                    let _ = p.reply.send(Err(AgentError::Refused("cannot encode the request".into())));
                    continue;
                };
                text.push('\n');
                let written = async {
                    input.write_all(text.as_bytes()).await?;
                    input.flush().await
                }.await;
                if let Err(e) = written {
                    let _ = p.reply.send(Err(AgentError::Closed(e.to_string())));
                    break format!("cannot write to it: {e}");
                }
                waiting.insert(id, p.reply);
            }
            chunk = output.next() => match chunk {
                Some(Ok(bytes)) => {
                    buffer.extend_from_slice(&bytes);
                    while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=end).collect();
                        match serde_json::from_slice::<AgentReply>(&line) {
                            Ok(reply) => {
                                if let Some(to) = waiting.remove(&reply.id) {
                                    let _ = to.send(Ok(reply));
                                }
                            }
                            Err(e) => tracing::warn!(
                                line = %String::from_utf8_lossy(&line),
                                "the node agent printed what is not a reply: {e}"
                            ),
                        }
                    }
                }
                Some(Err(e)) => break e.to_string(),
                None => break "the agent exited".to_string(),
            },
        }
    };
    for (_, to) in waiting.drain() {
        let _ = to.send(Err(AgentError::Closed(closed.clone())));
    }
    requests.close();
    while let Some(p) = requests.recv().await {
        let _ = p.reply.send(Err(AgentError::Closed(closed.clone())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    /// An agent served in-process over a pipe: the transport every provider hands over.
    fn local_agent(started: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Opening {
        Box::pin(async move {
            started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (harness_end, agent_end) = tokio::io::duplex(1 << 16);
            let (agent_in, agent_out) = tokio::io::split(agent_end);
            tokio::spawn(crate::node_tools::agent::serve(agent_in, agent_out));
            let (read, write) = tokio::io::split(harness_end);
            let lines = tokio_stream_lines(read);
            Ok(Transport {
                input: Box::pin(write),
                output: lines,
            })
        })
    }

    fn tokio_stream_lines(
        read: impl tokio::io::AsyncRead + Send + Unpin + 'static,
    ) -> Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>> {
        let lines = tokio::io::BufReader::new(read).lines();
        Box::pin(futures::stream::unfold(lines, |mut lines| async move {
            match lines.next_line().await {
                Ok(Some(l)) => Some((Ok(Bytes::from(l + "\n")), lines)),
                Ok(None) => None,
                Err(e) => Some((Err(e), lines)),
            }
        }))
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commands_share_one_connection_per_node_and_run_at_once() {
        let links = AgentLinks::new(tokio::runtime::Handle::current());
        let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let limit = Duration::from_secs(5);
        // Each waits for the other's mark: both finish only if they run at once (one after
        // the other, the first would wait out its limit).
        let dir = tempfile::tempdir().unwrap();
        let meet = |mine: &str, theirs: &str| {
            let (mine, theirs) = (dir.path().join(mine), dir.path().join(theirs));
            argv(&[
                "sh",
                "-c",
                "touch \"$1\"; while [ ! -e \"$2\" ]; do sleep 0.01; done; echo met",
                "sh",
                &mine.display().to_string(),
                &theirs.display().to_string(),
            ])
        };
        let (one, two) = (meet("a", "b"), meet("b", "a"));
        let fast = argv(&["echo", "fast"]);
        let (a, b) = tokio::join!(
            links.run("n1", || local_agent(started.clone()), &one, None, limit),
            links.run("n1", || local_agent(started.clone()), &two, None, limit),
        );
        assert_eq!(a.unwrap().stdout, "met\n", "they ran one after the other");
        assert_eq!(b.unwrap().stdout, "met\n");
        let c = links
            .run(
                "n1",
                || local_agent(started.clone()),
                &fast,
                Some(b"x"),
                limit,
            )
            .await
            .unwrap();
        assert_eq!((c.code, c.stdout.as_str()), (Some(0), "fast\n"));
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 1);
        links
            .run("n2", || local_agent(started.clone()), &fast, None, limit)
            .await
            .unwrap();
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_opening_is_said_and_the_next_command_tries_again() {
        let links = AgentLinks::new(tokio::runtime::Handle::current());
        let refused = || -> Opening { Box::pin(async { Err("no such container".to_string()) }) };
        let e = links
            .run(
                "n1",
                refused,
                &argv(&["true"]),
                None,
                Duration::from_secs(1),
            )
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot start the node agent: no such container"
        );
        let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ok = links
            .run(
                "n1",
                || local_agent(started.clone()),
                &argv(&["true"]),
                None,
                Duration::from_secs(1),
            )
            .await
            .unwrap();
        assert_eq!(ok.code, Some(0));
    }

    #[tokio::test]
    async fn a_command_past_its_limit_is_a_timeout_naming_it() {
        let links = AgentLinks::new(tokio::runtime::Handle::current());
        let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let e = links
            .run(
                "n1",
                || local_agent(started.clone()),
                &argv(&["sleep", "5"]),
                None,
                Duration::from_millis(100),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, AgentError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("`sleep 5`"), "{e}");
    }

    #[tokio::test]
    async fn a_connection_that_closes_fails_what_waits_and_opens_again() {
        let links = AgentLinks::new(tokio::runtime::Handle::current());
        // An agent that exits at once: its output ends.
        let dying = || -> Opening {
            Box::pin(async {
                let (harness_end, _) = tokio::io::duplex(64);
                let (read, write) = tokio::io::split(harness_end);
                Ok(Transport {
                    input: Box::pin(write),
                    output: tokio_stream_lines(read),
                })
            })
        };
        let e = links
            .run("n1", dying, &argv(&["true"]), None, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, AgentError::Closed(_)), "{e}");
        let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        links
            .run(
                "n1",
                || local_agent(started.clone()),
                &argv(&["true"]),
                None,
                Duration::from_secs(1),
            )
            .await
            .unwrap();
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
