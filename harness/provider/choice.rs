//! Which provider a command uses: `--provider`, else the topology's `[provider] kind`, else
//! local; and reopening a kept run with the provider that made it.

use super::containers::{ContainerHosts, Containers};
use super::local::{Local, LocalHosts};
use super::record::{RunDir, RunRecord};
use super::{ClusterError, GcReport, Provider};
use crate::spec::Topology;

/// A provider named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// Network namespaces on this host (needs root).
    Local,
    /// Docker containers, one per node, from the node image.
    Containers,
}

impl ProviderKind {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "local" => Some(Self::Local),
            "containers" => Some(Self::Containers),
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
}

/// `--provider` wins, then the topology's `[provider] kind`, then local; `--image` wins over
/// the topology's `[provider] image`, then the recipe's own image.
pub fn choose(flag: Option<ProviderKind>, image: Option<String>, topology: &Topology) -> Chosen {
    let kind = flag
        .or_else(|| {
            topology
                .settings
                .provider_kind
                .as_deref()
                .and_then(ProviderKind::from_name)
        })
        .unwrap_or(ProviderKind::Local);
    match kind {
        ProviderKind::Local => Chosen::Local(Local),
        ProviderKind::Containers => Chosen::Containers(
            match image.or_else(|| topology.settings.provider_image.clone()) {
                Some(image) => Containers { image },
                None => Containers::default(),
            },
        ),
    }
}

/// A kept run's hosts, on whichever provider made it.
pub enum KeptHosts {
    /// Made by the local provider.
    Local(LocalHosts),
    /// Made by the containers provider.
    Containers(ContainerHosts),
}

/// Reopens a kept run with the provider its record names.
pub fn reopen(dir: RunDir, record: RunRecord) -> Result<KeptHosts, ClusterError> {
    match ProviderKind::from_name(&record.provider) {
        Some(ProviderKind::Local) => Local.reopen(dir, record).map(KeptHosts::Local),
        Some(ProviderKind::Containers) => Containers::default()
            .reopen(dir, record)
            .map(KeptHosts::Containers),
        None => Err(ClusterError::Environment(format!(
            "run {} was made by the {} provider, which this build cannot reopen",
            record.id, record.provider
        ))),
    }
}

/// `succession gc` on one provider, or on every one (a provider that is not reachable here,
/// Docker without a daemon, has nothing of ours to remove unless a record says so).
pub fn gc(only: Option<ProviderKind>, all: bool) -> Vec<(&'static str, GcReport)> {
    let mut out = Vec::new();
    if only.is_none_or(|k| k == ProviderKind::Local) {
        out.push((Local.name(), Local.gc(all)));
    }
    if only.is_none_or(|k| k == ProviderKind::Containers) {
        let containers = Containers::default();
        out.push((containers.name(), containers.gc(all)));
    }
    out
}
