//! SSH to a run's instances with the system's OpenSSH client, through the border as a jump host
//! (the seed reaches its cell through a VPN on its border node): a key generated for the run,
//! a per-run config (options on the command line would not reach the jump hop), a per-run
//! known-hosts file (a replacement has a new host key at the same address, which is forgotten
//! when the node is replaced), and multiplexed connections, so the many short commands a
//! scenario runs reuse one connection per node. Tunnels to services ride the border's
//! connection.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::provider::node_shell::quoted;
use crate::provider::ExecOutput;

/// An SSH operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// A local tool (`ssh`, `ssh-keygen`) could not be run or failed.
    #[error("{tool} failed: {detail}")]
    Tool {
        /// Which.
        tool: &'static str,
        /// Why.
        detail: String,
    },
    /// The node did not answer in time.
    #[error("no answer from {address} over SSH within {} s: {detail}", .limit.as_secs())]
    Timeout {
        /// The node.
        address: Ipv4Addr,
        /// The bound.
        limit: Duration,
        /// The last thing ssh said.
        detail: String,
    },
}

fn tool(tool: &'static str) -> impl FnOnce(std::io::Error) -> SshError {
    move |e| SshError::Tool {
        tool,
        detail: e.to_string(),
    }
}

/// A run's SSH access to its instances.
pub struct Ssh {
    dir: PathBuf,
    user: String,
    jump: Option<Ipv4Addr>,
    nodes: Vec<Ipv4Addr>,
    tunnels: Mutex<BTreeMap<(Ipv4Addr, u16), SocketAddr>>,
}

impl Ssh {
    /// Sets up a run's SSH directory: a new key unless one is there, and the config.
    pub fn create(
        dir: &Path,
        user: &str,
        jump: Option<Ipv4Addr>,
        nodes: Vec<Ipv4Addr>,
        comment: &str,
    ) -> Result<Self, SshError> {
        std::fs::create_dir_all(dir).map_err(tool("mkdir"))?;
        let key = dir.join("key");
        if !key.exists() {
            let out = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(&key)
                .output()
                .map_err(tool("ssh-keygen"))?;
            if !out.status.success() {
                return Err(SshError::Tool {
                    tool: "ssh-keygen",
                    detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
        }
        let ssh = Self {
            dir: dir.to_path_buf(),
            user: user.to_string(),
            jump,
            nodes,
            tunnels: Mutex::new(BTreeMap::new()),
        };
        std::fs::write(ssh.config_path(), ssh.config()).map_err(tool("write the ssh config"))?;
        Ok(ssh)
    }

    /// The public key, one `authorized_keys` line.
    pub fn public_key(&self) -> Result<String, SshError> {
        std::fs::read_to_string(self.dir.join("key.pub"))
            .map(|k| k.trim().to_string())
            .map_err(tool("read the public key"))
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// The per-run config: the border directly, every other node through it.
    pub fn config(&self) -> String {
        let mut out = String::from("# Written by succession for one run.\n");
        for node in &self.nodes {
            out.push_str(&format!("Host {node}\n"));
            if let Some(jump) = self.jump.filter(|j| j != node) {
                out.push_str(&format!("  ProxyJump {jump}\n"));
            }
        }
        out.push_str(&format!(
            "Host *\n  User {}\n  IdentityFile {}\n  IdentitiesOnly yes\n  BatchMode yes\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile {}\n  ControlMaster auto\n  ControlPath {}/c-%C\n  ControlPersist 10m\n  ServerAliveInterval 5\n  ServerAliveCountMax 3\n  ConnectTimeout 5\n  LogLevel ERROR\n",
            self.user,
            self.dir.join("key").display(),
            self.dir.join("known_hosts").display(),
            self.dir.display()
        ));
        out
    }

    /// The command prefix that runs a command on a node from outside the harness.
    pub fn prefix(&self, address: Ipv4Addr) -> Vec<String> {
        vec![
            "ssh".to_string(),
            "-F".to_string(),
            self.config_path().display().to_string(),
            address.to_string(),
            "--".to_string(),
        ]
    }

    /// Runs a command on a node (its standard input fed from `stdin`), bounded by `limit`.
    pub async fn exec(
        &self,
        address: Ipv4Addr,
        argv: &[String],
        stdin: Option<&[u8]>,
        limit: Duration,
    ) -> Result<ExecOutput, SshError> {
        let mut child = tokio::process::Command::new("ssh")
            .arg("-F")
            .arg(self.config_path())
            .arg(address.to_string())
            .arg("--")
            .arg(quoted(argv))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(tool("ssh"))?;
        if let (Some(bytes), Some(mut input)) = (stdin, child.stdin.take()) {
            input.write_all(bytes).await.map_err(tool("ssh"))?;
            // Closing it is the remote command's end of input.
            drop(input);
        }
        let out = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .map_err(|_| SshError::Timeout {
                address,
                limit,
                detail: String::new(),
            })?
            .map_err(tool("ssh"))?;
        Ok(ExecOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// The command that starts a long-lived program on a node over its multiplexed connection
    /// with standard input and output attached (the node agent); run it where its pipes will
    /// be read ([`transport`]).
    pub fn attach_command(&self, address: Ipv4Addr, argv: &[String]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("ssh");
        command
            .arg("-F")
            .arg(self.config_path())
            .arg(address.to_string())
            .arg("--")
            .arg(quoted(argv))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Waits until a node answers over SSH and `ready` exists there (its user data finished).
    pub async fn wait_ready(
        &self,
        address: Ipv4Addr,
        ready: &str,
        limit: Duration,
    ) -> Result<(), SshError> {
        let deadline = tokio::time::Instant::now() + limit;
        let argv = vec!["test".to_string(), "-e".to_string(), ready.to_string()];
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            match self
                .exec(address, &argv, None, Duration::from_secs(15))
                .await
            {
                Ok(out) if out.code == Some(0) => return Ok(()),
                Ok(out) => last = format!("exit {:?}: {}", out.code, out.stderr.trim()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(SshError::Timeout {
            address,
            limit,
            detail: last,
        })
    }

    /// Forgets a node's host key and closes its connection (its replacement has a new key).
    pub fn forget(&self, address: Ipv4Addr) {
        let _ = std::process::Command::new("ssh")
            .arg("-F")
            .arg(self.config_path())
            .args(["-O", "exit"])
            .arg(address.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::process::Command::new("ssh-keygen")
            .arg("-f")
            .arg(self.dir.join("known_hosts"))
            .arg("-R")
            .arg(address.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// A local address that reaches `port` on a node through the border's connection (made
    /// once, then reused).
    pub fn tunnel(&self, address: Ipv4Addr, port: u16) -> Result<SocketAddr, SshError> {
        let mut tunnels = self.tunnels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(local) = tunnels.get(&(address, port)) {
            return Ok(*local);
        }
        let via = self.jump.unwrap_or(address);
        // The border's master connection must exist before a forward can be added to it.
        let _ = std::process::Command::new("ssh")
            .arg("-F")
            .arg(self.config_path())
            .arg(via.to_string())
            .arg("true")
            .stdin(Stdio::null())
            .output();
        // OpenSSH refuses port 0 for `-O forward`: take a free port, then hand it over.
        let local = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(tool("bind a local port"))?;
        let out = std::process::Command::new("ssh")
            .arg("-F")
            .arg(self.config_path())
            .args(["-O", "forward", "-L"])
            .arg(format!("127.0.0.1:{}:{address}:{port}", local.port()))
            .arg(via.to_string())
            .output()
            .map_err(tool("ssh -O forward"))?;
        if !out.status.success() {
            return Err(SshError::Tool {
                tool: "ssh -O forward",
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        tunnels.insert((address, port), local);
        Ok(local)
    }

    /// Closes every connection of the run.
    pub fn close(&self) {
        for node in &self.nodes {
            let _ = std::process::Command::new("ssh")
                .arg("-F")
                .arg(self.config_path())
                .args(["-O", "exit"])
                .arg(node.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Starts an attached command and hands over its pipes as the node agent's transport; the
/// ssh process lives as long as its output is read, and is killed when that is dropped.
pub fn transport(
    mut command: tokio::process::Command,
) -> Result<crate::provider::agent::Transport, SshError> {
    use tokio::io::AsyncReadExt;
    let mut child = command.spawn().map_err(tool("ssh"))?;
    let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(SshError::Tool {
            tool: "ssh",
            detail: "its pipes were not given".into(),
        });
    };
    let chunks = futures::stream::unfold((output, child), |(mut output, child)| async move {
        let mut buffer = vec![0u8; 64 * 1024];
        match output.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(bytes::Bytes::from(buffer)), (output, child)))
            }
            Err(e) => Some((Err(e), (output, child))),
        }
    });
    Ok(crate::provider::agent::Transport {
        input: Box::pin(input),
        output: Box::pin(chunks),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_attached_command_is_a_transport_both_ways_and_ends_with_its_input() {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let mut command = tokio::process::Command::new("cat");
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut t = transport(command).unwrap();
        t.input.write_all(b"one line\n").await.unwrap();
        t.input.flush().await.unwrap();
        drop(t.input);
        let mut seen = Vec::new();
        while let Some(chunk) = t.output.next().await {
            seen.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(seen, b"one line\n");
    }

    #[test]
    fn every_node_but_the_border_goes_through_it() {
        let dir = std::env::temp_dir().join(format!("succession-ssh-test-{}", std::process::id()));
        let border = Ipv4Addr::new(10, 213, 9, 10);
        let quorum = Ipv4Addr::new(10, 213, 9, 11);
        let ssh = Ssh {
            dir: dir.clone(),
            user: "admin".into(),
            jump: Some(border),
            nodes: vec![border, quorum],
            tunnels: Mutex::new(BTreeMap::new()),
        };
        let config = ssh.config();
        assert!(config.contains("Host 10.213.9.10\nHost 10.213.9.11\n  ProxyJump 10.213.9.10\n"));
        assert!(config.contains(&format!("UserKnownHostsFile {}/known_hosts", dir.display())));
        assert!(config.contains("ControlMaster auto"));
        assert_eq!(ssh.prefix(quorum)[3], "10.213.9.11");
    }
}
