//! Which provider a command uses: `--provider`, else the topology's `[provider] kind`, else
//! local; and reopening a kept run with the provider that made it.

use super::containers::{ContainerHosts, Containers};
use super::local::{Local, LocalHosts};
use super::record::{RunDir, RunRecord};
use super::{ClusterError, Ec2Strays, GcReport, Provider};
use crate::spec::Topology;

/// A provider named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// Network namespaces on this host (needs root).
    Local,
    /// Docker containers, one per node, from the node image.
    Containers,
    /// EC2 instances (builds with the `ec2` feature).
    Ec2,
}

impl ProviderKind {
    /// Its name in records and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Containers => "containers",
            Self::Ec2 => "ec2",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "local" => Some(Self::Local),
            "containers" => Some(Self::Containers),
            "ec2" => Some(Self::Ec2),
            _ => None,
        }
    }
}

/// The provider a command runs on, ready to use.
#[derive(Debug, Clone)]
pub enum Chosen {
    /// The local provider.
    Local(Local),
    /// The containers provider with its image.
    Containers(Containers),
    /// The EC2 provider.
    #[cfg(feature = "ec2")]
    Ec2(super::ec2::Ec2Provider),
}

/// A provider this build cannot use.
#[derive(Debug, thiserror::Error)]
#[error("this build has no {0} provider: build with `cargo build --features {0}`")]
pub struct NotBuilt(pub &'static str);

/// `--provider` wins, then the topology's `[provider] kind`, then local; `--image` wins over
/// the topology's `[provider] image`, then the recipe's own image.
pub fn choose(
    flag: Option<ProviderKind>,
    image: Option<String>,
    topology: &Topology,
) -> Result<Chosen, NotBuilt> {
    let kind = flag
        .or_else(|| {
            topology
                .settings
                .provider_kind
                .as_deref()
                .and_then(ProviderKind::from_name)
        })
        .unwrap_or(ProviderKind::Local);
    Ok(match kind {
        ProviderKind::Local => Chosen::Local(Local),
        ProviderKind::Containers => Chosen::Containers(
            match image.or_else(|| topology.settings.provider_image.clone()) {
                Some(image) => Containers { image },
                None => Containers::default(),
            },
        ),
        #[cfg(feature = "ec2")]
        ProviderKind::Ec2 => Chosen::Ec2(super::ec2::Ec2Provider),
        #[cfg(not(feature = "ec2"))]
        ProviderKind::Ec2 => return Err(NotBuilt("ec2")),
    })
}

/// A kept run's hosts, on whichever provider made it (one lives per command, so the variants'
/// sizes do not matter).
#[allow(clippy::large_enum_variant)]
pub enum KeptHosts {
    /// Made by the local provider.
    Local(LocalHosts),
    /// Made by the containers provider.
    Containers(ContainerHosts),
    /// Made by the EC2 provider.
    #[cfg(feature = "ec2")]
    Ec2(super::ec2::Ec2Hosts),
}

/// Reopens a kept run with the provider its record names.
pub fn reopen(dir: RunDir, record: RunRecord) -> Result<KeptHosts, ClusterError> {
    match ProviderKind::from_name(&record.provider) {
        Some(ProviderKind::Local) => Local.reopen(dir, record).map(KeptHosts::Local),
        Some(ProviderKind::Containers) => Containers::default()
            .reopen(dir, record)
            .map(KeptHosts::Containers),
        #[cfg(feature = "ec2")]
        Some(ProviderKind::Ec2) => super::ec2::Ec2Provider
            .reopen(dir, record)
            .map(KeptHosts::Ec2),
        #[cfg(not(feature = "ec2"))]
        Some(ProviderKind::Ec2) => Err(ClusterError::Environment(format!(
            "run {}: {}",
            record.id,
            NotBuilt("ec2")
        ))),
        None => Err(ClusterError::Environment(format!(
            "run {} was made by the {} provider, which this build cannot reopen",
            record.id, record.provider
        ))),
    }
}

/// `succession gc` on one provider, or on every one (a provider that is not reachable here,
/// Docker without a daemon, has nothing of ours to remove unless a record says so).
pub fn gc(
    only: Option<ProviderKind>,
    all: bool,
    ec2_strays: &Ec2Strays,
) -> Vec<(&'static str, GcReport)> {
    let mut out = Vec::new();
    if only.is_none_or(|k| k == ProviderKind::Local) {
        out.push((Local.name(), Local.gc(all)));
    }
    if only.is_none_or(|k| k == ProviderKind::Containers) {
        let containers = Containers::default();
        out.push((containers.name(), containers.gc(all)));
    }
    #[cfg(feature = "ec2")]
    if only.is_none_or(|k| k == ProviderKind::Ec2) {
        out.push(("ec2", super::ec2::collect_garbage(all, ec2_strays)));
    }
    // Without the EC2 provider there is nothing of EC2's to look for.
    #[cfg(not(feature = "ec2"))]
    let _ = ec2_strays;
    out
}
