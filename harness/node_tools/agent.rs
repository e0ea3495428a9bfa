//! The node agent: one long-lived process per node that runs the harness's commands there, so
//! a provider whose every command would otherwise cost a round trip through a remote API (the
//! Docker engine's exec: create, start, attach, inspect) pays it once per node instead.
//!
//! It speaks on its standard input and output, nothing else: it is reached only through the
//! channel the provider already has into the node (an engine exec's attached streams, an SSH
//! session), so it listens on no port and nothing outside the run can reach it. Requests and
//! replies are JSON lines; requests run concurrently and each reply carries its request's id.
//! It exits when its input closes; the commands it started as services are detached by the
//! spawn script, as they are under the engine's exec.

use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// One command to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRequest {
    /// Chosen by the harness; the reply carries it back.
    pub id: u64,
    /// The program and its arguments (no shell unless the program is one).
    pub argv: Vec<String>,
    /// Bytes written to its standard input, hex-encoded (none: /dev/null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_hex: Option<String>,
    /// How long it may run before it is killed, ms.
    pub timeout_ms: u64,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentReply {
    /// The request's id.
    pub id: u64,
    /// Its exit code (None when a signal ended it, or it did not run).
    pub code: Option<i32>,
    /// What it printed.
    pub stdout: String,
    /// What it printed on standard error.
    pub stderr: String,
    /// Why it did not run to its end: not started, timed out, a request not understood.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AgentReply {
    fn failed(id: u64, error: String) -> Self {
        Self {
            id,
            code: None,
            stdout: String::new(),
            stderr: String::new(),
            error: Some(error),
        }
    }
}

/// Bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex back to bytes; None when it is not hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Serves requests from `input` until it closes, replies on `output`; waits for the commands
/// in flight before returning.
pub async fn serve<R, W>(input: R, mut output: W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (replies, mut outbox) = mpsc::unbounded_channel::<AgentReply>();
    let writer = tokio::spawn(async move {
        while let Some(reply) = outbox.recv().await {
            let Ok(mut line) = serde_json::to_string(&reply) else {
                continue;
            };
            line.push('\n');
            output.write_all(line.as_bytes()).await?;
            output.flush().await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut lines = BufReader::new(input).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let replies = replies.clone();
        match serde_json::from_str::<AgentRequest>(&line) {
            Ok(request) => {
                tokio::spawn(async move {
                    let _ = replies.send(run(request).await);
                });
            }
            // Without an id the harness cannot match it; id 0 is never a request's.
            Err(e) => {
                let _ = replies.send(AgentReply::failed(0, format!("not a request: {e}")));
            }
        }
    }
    drop(replies);
    writer.await.map_err(std::io::Error::other)?
}

/// Runs one request to its end or its time limit.
pub async fn run(request: AgentRequest) -> AgentReply {
    let id = request.id;
    let Some((program, args)) = request.argv.split_first() else {
        return AgentReply::failed(id, "an empty command".into());
    };
    let stdin = match request.stdin_hex.as_deref().map(from_hex) {
        None => None,
        Some(Some(bytes)) => Some(bytes),
        Some(None) => return AgentReply::failed(id, "stdin is not hex".into()),
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A command past its limit is killed when its future is dropped.
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return AgentReply::failed(id, format!("cannot start {program}: {e}")),
    };
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Written beside the reading below, so a command that prints before it has read all
        // of its input cannot block on a full pipe.
        tokio::spawn(async move {
            let _ = pipe.write_all(&bytes).await;
        });
    }
    let limit = Duration::from_millis(request.timeout_ms);
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(out)) => AgentReply {
            id,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            error: None,
        },
        Ok(Err(e)) => AgentReply::failed(id, format!("cannot wait for {program}: {e}")),
        Err(_) => AgentReply::failed(id, format!("timed out after {} ms", limit.as_millis())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn request(id: u64, argv: &[&str], timeout_ms: u64) -> AgentRequest {
        AgentRequest {
            id,
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin_hex: None,
            timeout_ms,
        }
    }

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        let bytes = [0u8, 1, 127, 128, 255];
        assert_eq!(from_hex(&to_hex(&bytes)).unwrap(), bytes);
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(""), Some(vec![]));
    }

    #[tokio::test]
    async fn a_command_reports_its_code_and_both_outputs() {
        let reply = run(request(
            7,
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            5000,
        ))
        .await;
        assert_eq!(reply.id, 7);
        assert_eq!(reply.code, Some(3));
        assert_eq!(reply.stdout, "out\n");
        assert_eq!(reply.stderr, "err\n");
        assert_eq!(reply.error, None);
    }

    #[tokio::test]
    async fn standard_input_reaches_the_command() {
        let mut r = request(1, &["cat"], 5000);
        r.stdin_hex = Some(to_hex(b"line one\nline two\n"));
        assert_eq!(run(r).await.stdout, "line one\nline two\n");
    }

    #[tokio::test]
    async fn a_command_past_its_limit_is_killed_and_said_so() {
        let reply = run(request(2, &["sleep", "30"], 100)).await;
        assert_eq!(reply.code, None);
        assert_eq!(reply.error.as_deref(), Some("timed out after 100 ms"));
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_not_a_code() {
        let reply = run(request(3, &["/nonexistent/program"], 1000)).await;
        assert!(reply
            .error
            .unwrap()
            .contains("cannot start /nonexistent/program"));
    }

    #[tokio::test]
    async fn requests_run_at_once_and_replies_carry_their_ids() {
        let (mut harness_end, agent_end) = tokio::io::duplex(1 << 16);
        let (agent_in, agent_out) = tokio::io::split(agent_end);
        let server = tokio::spawn(serve(agent_in, agent_out));
        // The first waits for the second's mark: it answers only if the two ran at once, and
        // then after the second.
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("mark").display().to_string();
        for r in [
            request(
                1,
                &[
                    "sh",
                    "-c",
                    "while [ ! -e \"$1\" ]; do sleep 0.01; done; echo slow",
                    "sh",
                    &mark,
                ],
                5000,
            ),
            request(
                2,
                &["sh", "-c", "touch \"$1\"; echo fast", "sh", &mark],
                5000,
            ),
        ] {
            let mut line = serde_json::to_string(&r).unwrap();
            line.push('\n');
            harness_end.write_all(line.as_bytes()).await.unwrap();
        }
        harness_end.write_all(b"garbage\n").await.unwrap();
        let (mut read, mut write) = tokio::io::split(harness_end);
        write.shutdown().await.unwrap();
        let mut text = String::new();
        read.read_to_string(&mut text).await.unwrap();
        server.await.unwrap().unwrap();
        let replies: Vec<AgentReply> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ids: Vec<u64> = replies.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), 3, "{text}");
        assert_eq!(
            ids[2], 1,
            "the slow command answered before the others: {text}"
        );
        let by_id = |id: u64| replies.iter().find(|r| r.id == id).unwrap();
        assert!(by_id(0)
            .error
            .as_ref()
            .unwrap()
            .starts_with("not a request"));
        assert_eq!(by_id(2).stdout, "fast\n");
        assert_eq!(by_id(1).stdout, "slow\n");
    }
}
