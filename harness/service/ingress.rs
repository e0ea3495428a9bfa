//! The border's ingress: haproxy (Debian's package) in front of the workers' app, and of the
//! masters' web endpoints, with active health checks.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

/// The haproxy binary.
pub const BINARY: &str = "/usr/sbin/haproxy";

/// One backend: what the border publishes on `port`, and the servers behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Name (`app`, `mesos`, `marathon`).
    pub name: String,
    /// Port at the border.
    pub port: u16,
    /// Port on the servers.
    pub server_port: u16,
    /// Health check path.
    pub check: String,
    /// `(name, address)` of each server.
    pub servers: Vec<(String, Ipv4Addr)>,
}

/// haproxy.cfg: one frontend per backend, bound on the border's address only.
pub fn config(border: Ipv4Addr, backends: &[Backend]) -> String {
    let mut cfg = String::new();
    cfg.push_str("global\n  maxconn 4096\n\n");
    // Short connect timeouts with redispatch: a request that meets a dead server is retried
    // on another at once, so only a total loss of a tier shows as unavailability. `retry-on`
    // also retries a request whose server died after accepting it (a worker terminated with
    // the request in flight answers nothing), as a border in front of replicas is set up to;
    // haproxy's default retries connection failures only, and such a request came back 502.
    // A server that vanished without a reset is given up on after a second (the servers
    // behind it answer in milliseconds), inside the monitor's two-second request timeout.
    cfg.push_str(
        "defaults\n  mode http\n  timeout connect 300ms\n  timeout client 10s\n  timeout server 1s\n  retries 3\n  option redispatch 1\n  retry-on conn-failure empty-response response-timeout\n\n",
    );
    for b in backends {
        let _ = writeln!(
            cfg,
            "frontend {}\n  bind {border}:{}\n  default_backend {}\n",
            b.name, b.port, b.name
        );
        let _ = writeln!(
            cfg,
            "backend {}\n  balance roundrobin\n  option httpchk GET {}\n  http-check expect rstatus ^[23]\n  default-server inter 500ms fall 2 rise 2",
            b.name, b.check
        );
        for (name, addr) in &b.servers {
            let _ = writeln!(cfg, "  server {name} {addr}:{} check", b.server_port);
        }
        cfg.push('\n');
    }
    cfg
}

/// The command line (foreground, so the harness supervises it).
pub fn command(config_path: &Path) -> Vec<String> {
    vec![
        BINARY.to_string(),
        "-f".to_string(),
        config_path.display().to_string(),
        "-db".to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_gets_a_frontend_and_checked_servers() {
        let cfg = config(
            Ipv4Addr::new(10, 0, 0, 10),
            &[Backend {
                name: "app".into(),
                port: 80,
                server_port: 8000,
                check: "/health".into(),
                servers: vec![("worker-1".into(), Ipv4Addr::new(10, 0, 0, 17))],
            }],
        );
        assert!(cfg.contains("frontend app\n  bind 10.0.0.10:80\n"));
        assert!(cfg.contains("option httpchk GET /health"));
        assert!(cfg.contains("  server worker-1 10.0.0.17:8000 check\n"));
    }
}
