//! Command lines of the stand-in servers (`succession-standin`) and the ZooKeeper connect
//! string they elect through.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::ServiceKind;

/// An id of the sources this build came from; the stand-in binary must carry the same one.
pub const BUILD_ID: &str = env!("SUCCESSION_BUILD_ID");

/// Checks that the stand-in binary was built from the same sources as this harness.
pub fn check_build(bin: &std::path::Path) -> Result<(), String> {
    let out = std::process::Command::new(bin)
        .arg("build-id")
        .output()
        .map_err(|e| format!("failed to run {} build-id: {e}", bin.display()))?;
    let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && theirs == BUILD_ID {
        Ok(())
    } else {
        Err(format!(
            "{} was built from other sources than this harness (build {} here, {} there); rebuild both with `cargo build --bins`",
            bin.display(),
            BUILD_ID,
            if theirs.is_empty() { "none".to_string() } else { theirs }
        ))
    }
}

/// Where the stand-in binary is: `SUCCESSION_STANDIN`, or beside the running executable.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SUCCESSION_STANDIN") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("succession-standin")))
        .unwrap_or_else(|| PathBuf::from("succession-standin"))
}

/// `host:2181,host:2181,…` of the ensemble.
pub fn zk_connect(servers: &[Ipv4Addr]) -> String {
    servers
        .iter()
        .map(|a| format!("{a}:{}", crate::base::ports::ZOOKEEPER_CLIENT))
        .collect::<Vec<_>>()
        .join(",")
}

/// The command line of a stand-in, run from `binary` (where the node sees it).
pub fn command(
    binary: &std::path::Path,
    kind: ServiceKind,
    hostname: &str,
    address: Ipv4Addr,
    zk: &str,
) -> Option<Vec<String>> {
    let sub = match kind {
        ServiceKind::MesosMaster => "mesos-master",
        ServiceKind::Marathon => "marathon",
        ServiceKind::App => "app",
        _ => return None,
    };
    Some(vec![
        binary.display().to_string(),
        sub.to_string(),
        "--hostname".to_string(),
        hostname.to_string(),
        "--ip".to_string(),
        address.to_string(),
        "--zk".to_string(),
        zk.to_string(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connect_string_lists_every_server() {
        let zk = zk_connect(&[Ipv4Addr::new(10, 0, 0, 4), Ipv4Addr::new(10, 0, 0, 5)]);
        assert_eq!(zk, "10.0.0.4:2181,10.0.0.5:2181");
        let cmd = command(
            std::path::Path::new("/opt/succession-standin"),
            ServiceKind::Marathon,
            "master-1.c",
            Ipv4Addr::new(10, 0, 0, 2),
            &zk,
        )
        .unwrap();
        assert_eq!(cmd[0], "/opt/succession-standin");
        assert_eq!(&cmd[1..4], ["marathon", "--hostname", "master-1.c"]);
        assert!(command(
            std::path::Path::new("x"),
            ServiceKind::Etcd,
            "x",
            Ipv4Addr::LOCALHOST,
            &zk
        )
        .is_none());
    }
}
