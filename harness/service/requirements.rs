//! What each kind of service needs installed where it runs: the binaries and the Debian package
//! that brings each.

use std::path::{Path, PathBuf};

use super::{etcd, ingress, standins, zookeeper, ServiceKind};
use crate::spec::Topology;

/// One file a service needs, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The file.
    pub path: PathBuf,
    /// The Debian package that installs it, or how else to get it.
    pub source: &'static str,
}

/// The files a kind of service needs where it runs.
pub fn of(kind: ServiceKind, standin: &Path) -> Vec<Requirement> {
    let req = |path: &str, source| Requirement {
        path: PathBuf::from(path),
        source,
    };
    match kind {
        ServiceKind::Etcd => vec![req(etcd::BINARY, "Debian's etcd-server package")],
        ServiceKind::Zookeeper => [
            req(zookeeper::JAVA, "Debian's zookeeper package"),
            req(zookeeper::JAR, "Debian's zookeeper package"),
            req(zookeeper::LOG_JAR, "Debian's libslf4j-java package"),
        ]
        .into_iter()
        .chain(zookeeper::ADMIN_JARS.iter().map(|jar| {
            req(
                jar,
                "Debian's libjetty9-java and libservlet-api-java packages (zookeeper's dependencies)",
            )
        }))
        .collect(),
        ServiceKind::Ingress => vec![req(ingress::BINARY, "Debian's haproxy package")],
        ServiceKind::MesosMaster | ServiceKind::Marathon | ServiceKind::App => vec![Requirement {
            path: standin.to_path_buf(),
            source: "`cargo build`, or SUCCESSION_STANDIN",
        }],
    }
}

/// Checks that the stand-in every stand-in service of a topology runs is on this host and was
/// built from the same sources as this harness (providers that run the servers from an image
/// still run the stand-ins from this build).
pub fn check_stand_ins(topology: &Topology) -> Result<(), String> {
    let standin = standins::binary();
    let Some(kind) = topology
        .roles
        .iter()
        .flat_map(|r| r.services.iter())
        .find(|k| k.is_stand_in())
    else {
        return Ok(());
    };
    if !standin.exists() {
        return Err(format!(
            "failed to provision the {kind} stand-in: {} not found (build it with `cargo build`, or SUCCESSION_STANDIN)",
            standin.display()
        ));
    }
    standins::check_build(&standin)
        .map_err(|e| format!("failed to provision the {kind} stand-in: {e}"))
}

/// Checks that this host has what every service of a topology needs, and that the stand-in was
/// built from the same sources as this harness; says which service lacks what.
pub fn check_this_host(topology: &Topology) -> Result<(), String> {
    let standin = standins::binary();
    for role in &topology.roles {
        for kind in &role.services {
            for r in of(*kind, &standin) {
                if !r.path.exists() {
                    return Err(if kind.is_stand_in() {
                        format!(
                            "failed to provision the {kind} stand-in: {} not found (build it with {})",
                            r.path.display(),
                            r.source
                        )
                    } else {
                        format!(
                            "failed to provision {kind}: {} not found (install {}: ci/setup-host)",
                            r.path.display(),
                            r.source
                        )
                    });
                }
            }
            if kind.is_stand_in() {
                standins::check_build(&standin)
                    .map_err(|e| format!("failed to provision the {kind} stand-in: {e}"))?;
            }
        }
    }
    Ok(())
}
