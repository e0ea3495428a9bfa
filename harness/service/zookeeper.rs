//! ZooKeeper from Debian's zookeeper package: zoo.cfg, myid and the JVM command line.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::base::ports;
use crate::spec::topology::ServiceSettings;

/// The JVM Debian's package runs ZooKeeper with.
pub const JAVA: &str = "/usr/bin/java";
/// The server jar (its manifest names the libraries it needs).
pub const JAR: &str = "/usr/share/java/zookeeper.jar";
/// A logging backend, so the server's own log (election times included) reaches its log file.
pub const LOG_JAR: &str = "/usr/share/java/slf4j-simple.jar";
/// What the admin server needs besides the server jar (Debian's libjetty9-java and
/// libservlet-api-java, which the zookeeper package already depends on): followers say whom
/// they follow only through it.
pub const ADMIN_JARS: &[&str] = &[
    "/usr/share/java/jetty9-server.jar",
    "/usr/share/java/jetty9-servlet.jar",
    "/usr/share/java/jetty9-http.jar",
    "/usr/share/java/jetty9-util.jar",
    "/usr/share/java/jetty9-util-ajax.jar",
    "/usr/share/java/jetty9-io.jar",
    "/usr/share/java/jetty9-security.jar",
    "/usr/share/java/servlet-api.jar",
];
/// The four-letter words the probes use (ZooKeeper 3.5+ whitelists none by default).
pub const FOUR_LETTER_WORDS: &str = "srvr,conf,mntr,stat,ruok,isro";

/// One server of the ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Its id (`myid`).
    pub id: u64,
    /// Its address.
    pub address: Ipv4Addr,
}

/// What one server is configured with: its id (`myid`) and the static ensemble its zoo.cfg
/// lists. ZooKeeper reads both only when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Its id.
    pub id: u64,
    /// Every server of the ensemble, in the order zoo.cfg lists them.
    pub ensemble: Vec<Server>,
}

/// zoo.cfg for one server of a static ensemble.
pub fn config(
    me: &Server,
    ensemble: &[Server],
    data_dir: &Path,
    settings: &ServiceSettings,
) -> String {
    let mut cfg = String::new();
    let _ = writeln!(cfg, "tickTime={}", settings.zookeeper_tick_time.as_millis());
    let _ = writeln!(cfg, "initLimit={}", settings.zookeeper_init_limit);
    let _ = writeln!(cfg, "syncLimit={}", settings.zookeeper_sync_limit);
    if let Some(n) = settings.zookeeper_snap_count {
        let _ = writeln!(cfg, "snapCount={n}");
    }
    if !settings.zookeeper_force_sync {
        let _ = writeln!(cfg, "forceSync=no");
    }
    // ZooKeeper sets a key it does not know as the system property `zookeeper.KEY`.
    if settings.zookeeper_snapshot_trust_empty {
        let _ = writeln!(cfg, "snapshot.trust.empty=true");
    }
    let _ = writeln!(cfg, "dataDir={}", data_dir.display());
    let _ = writeln!(cfg, "clientPort={}", ports::ZOOKEEPER_CLIENT);
    let _ = writeln!(cfg, "clientPortAddress={}", me.address);
    let _ = writeln!(cfg, "4lw.commands.whitelist={FOUR_LETTER_WORDS}");
    // The admin server is the one place a follower says whom it follows; on the node's own
    // address, like the client port.
    let _ = writeln!(cfg, "admin.enableServer=true");
    let _ = writeln!(cfg, "admin.serverAddress={}", me.address);
    let _ = writeln!(cfg, "admin.serverPort={}", ports::ZOOKEEPER_ADMIN);
    let _ = writeln!(cfg, "standaloneEnabled=false");
    let _ = writeln!(cfg, "reconfigEnabled=false");
    for s in ensemble {
        let _ = writeln!(
            cfg,
            "server.{}={}:{}:{}",
            s.id,
            s.address,
            ports::ZOOKEEPER_QUORUM,
            ports::ZOOKEEPER_ELECTION
        );
    }
    cfg
}

/// The JVM command line for a server whose config is at `config_path`.
pub fn command(config_path: &Path) -> Vec<String> {
    vec![
        JAVA.to_string(),
        "-Xms32m".to_string(),
        "-Xmx192m".to_string(),
        "-XX:+UseSerialGC".to_string(),
        "-XX:TieredStopAtLevel=1".to_string(),
        "-Dorg.slf4j.simpleLogger.showDateTime=true".to_string(),
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ".to_string(),
        "-cp".to_string(),
        std::iter::once("/etc/zookeeper/conf")
            .chain([JAR, LOG_JAR])
            .chain(ADMIN_JARS.iter().copied())
            .collect::<Vec<_>>()
            .join(":"),
        "org.apache.zookeeper.server.quorum.QuorumPeerMain".to_string(),
        config_path.display().to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_the_static_ensemble_and_enables_the_probes_words() {
        let ensemble = vec![
            Server {
                id: 1,
                address: Ipv4Addr::new(10, 0, 0, 10),
            },
            Server {
                id: 2,
                address: Ipv4Addr::new(10, 0, 0, 11),
            },
        ];
        let cfg = config(
            &ensemble[1],
            &ensemble,
            Path::new("/data"),
            &ServiceSettings::default(),
        );
        assert!(cfg.contains("server.1=10.0.0.10:2888:3888\nserver.2=10.0.0.11:2888:3888\n"));
        assert!(cfg.contains("clientPortAddress=10.0.0.11\n"));
        assert!(cfg.contains("4lw.commands.whitelist=srvr,conf,mntr,stat,ruok,isro"));
        assert!(cfg.contains("tickTime=500\n"));
        assert!(cfg.contains(
            "admin.enableServer=true\nadmin.serverAddress=10.0.0.11\nadmin.serverPort=8081\n"
        ));
        assert!(!cfg.contains("snapCount"));
        let tuned = ServiceSettings {
            zookeeper_snap_count: Some(20),
            ..ServiceSettings::default()
        };
        let cfg = config(&ensemble[1], &ensemble, Path::new("/data"), &tuned);
        assert!(cfg.contains("syncLimit=5\nsnapCount=20\n"), "{cfg}");
        assert!(
            !cfg.contains("forceSync"),
            "ZooKeeper's own default stands: {cfg}"
        );
        let unsynced = ServiceSettings {
            zookeeper_force_sync: false,
            ..ServiceSettings::default()
        };
        let cfg = config(&ensemble[1], &ensemble, Path::new("/data"), &unsynced);
        assert!(cfg.contains("forceSync=no\n"), "{cfg}");
        assert!(!cfg.contains("snapshot.trust.empty"), "{cfg}");
        let trusting = ServiceSettings {
            zookeeper_snapshot_trust_empty: true,
            ..ServiceSettings::default()
        };
        let cfg = config(&ensemble[1], &ensemble, Path::new("/data"), &trusting);
        assert!(cfg.contains("snapshot.trust.empty=true\n"), "{cfg}");
    }
}
