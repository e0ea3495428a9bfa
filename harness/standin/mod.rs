//! Stand-ins for servers that cannot be installed on a build machine (Mesos master, Marathon),
//! and the demo application. They elect through the real ZooKeeper ensemble with the real
//! projects' znode layout and answer the same HTTP endpoints, so the probes work unchanged
//! against a real cluster. They are stand-ins, and say so in their replies and in `status`.

pub mod app;
pub mod election;
pub mod http;
pub mod marathon;
pub mod mesos;

/// Writes a line to the stand-in's log (its standard error), stamped with the wall-clock time
/// so elections can be read against the harness's timeline.
pub fn log(line: impl std::fmt::Display) {
    eprintln!(
        "{} {line}",
        humantime::format_rfc3339_millis(std::time::SystemTime::now())
    );
}

/// What every stand-in is started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The host name it announces (`--hostname` of the real servers).
    pub hostname: String,
    /// The address it listens on.
    pub ip: std::net::Ipv4Addr,
    /// ZooKeeper connect string (`host:port,host:port`).
    pub zk: String,
}

/// Where the demo application's instances register (stand-in bookkeeping, not a real layout).
pub const AGENTS_DIR: &str = "/succession/agents";

/// Serves until SIGTERM or SIGINT, then stops the election (which leaves it cleanly) and
/// returns once it has, or after a bound.
pub async fn serve_until_stopped(
    serve: impl std::future::Future<Output = std::io::Result<()>>,
    stop: tokio::sync::watch::Sender<bool>,
    election: tokio::task::JoinHandle<()>,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        r = serve => r,
        _ = term.recv() => leave(stop, election).await,
        _ = int.recv() => leave(stop, election).await,
    }
}

async fn leave(
    stop: tokio::sync::watch::Sender<bool>,
    election: tokio::task::JoinHandle<()>,
) -> std::io::Result<()> {
    let _ = stop.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), election).await;
    Ok(())
}

/// ZooKeeper session timeout of the stand-ins.
pub const SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// A random lowercase hex id (uuid-shaped) for candidate names and master ids.
pub fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = seed.to_le_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The registered application instances: `(hostname, registration JSON)`.
pub async fn agents(client: &zookeeper_client::Client) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let Ok(children) = client.list_children(AGENTS_DIR).await else {
        return out;
    };
    for child in children {
        if let Ok((data, _)) = client.get_data(&format!("{AGENTS_DIR}/{child}")).await {
            let value = serde_json::from_slice(&data).unwrap_or(serde_json::Value::Null);
            out.push((child, value));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
