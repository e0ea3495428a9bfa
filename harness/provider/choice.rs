//! Which provider a command uses: `--provider`, else the topology's `[provider] kind`, else
//! local; reopening a kept run with the provider that made it; gc over every provider. The
//! providers are listed once, in `providers!` below: every listing of them (the command line's
//! values, the chosen provider, a kept run's hosts, reopening, gc, and the `on_provider!` and
//! `on_kept!` dispatch the binary uses) is generated from that list.

use super::record::{RunDir, RunRecord};
use super::{ClusterError, GcReport, Provider, StraySearch};
use crate::spec::capability::Capability;
use crate::spec::Topology;

/// A provider this build cannot use.
#[derive(Debug, thiserror::Error)]
#[error("this build has no {0} provider: build with `cargo build --features {0}`")]
pub struct NotBuilt(pub &'static str);

/// Generates the listings from one line per provider: its variant, its name in records and on
/// the command line, its `Provider` and hosts types, and the cargo feature it needs, if any.
/// `$d` is a literal `$`, so the dispatch macros it defines can have metavariables of their
/// own.
macro_rules! providers {
    ($d:tt $(
        $(#[doc = $doc:literal])*
        $variant:ident = $name:literal, $provider:ty, $hosts:ty $(, feature = $feature:literal)?;
    )*) => {
        /// A provider named on the command line.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
        pub enum ProviderKind {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl ProviderKind {
            /// Its name in records and on the command line.
            pub fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $name, )*
                }
            }

            /// The provider of a name in records and topologies.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $name => Some(Self::$variant), )*
                    _ => None,
                }
            }

            /// What it can do to its hosts; none when this build leaves it out.
            pub fn capabilities(self) -> Option<&'static [Capability]> {
                match self {
                    $(
                        $(#[cfg(feature = $feature)])?
                        Self::$variant => Some(<$provider as Provider>::capabilities()),
                        $(
                            #[cfg(not(feature = $feature))]
                            Self::$variant => None,
                        )?
                    )*
                }
            }

            /// The provider, configured for a command (the image where it takes one); an error
            /// when this build leaves it out.
            fn configured(self, image: Option<String>) -> Result<Chosen, NotBuilt> {
                match self {
                    $(
                        $(#[cfg(feature = $feature)])?
                        Self::$variant => Ok(Chosen::$variant(
                            <$provider as Provider>::configured(image),
                        )),
                        $(
                            #[cfg(not(feature = $feature))]
                            Self::$variant => Err(NotBuilt($feature)),
                        )?
                    )*
                }
            }
        }

        /// The provider a command runs on, ready to use.
        #[derive(Debug, Clone)]
        pub enum Chosen {
            $( $(#[cfg(feature = $feature)])? $(#[doc = $doc])* $variant($provider), )*
        }

        impl Chosen {
            /// Which provider it is.
            pub fn kind(&self) -> ProviderKind {
                match self {
                    $( $(#[cfg(feature = $feature)])? Self::$variant(_) => ProviderKind::$variant, )*
                }
            }

            /// What it can do to its hosts (a chosen provider is always in this build).
            pub fn capabilities(&self) -> &'static [Capability] {
                self.kind().capabilities().unwrap_or_default()
            }
        }

        /// A kept run's hosts, on whichever provider made it (one lives per command, so the
        /// variants' sizes do not matter).
        #[allow(clippy::large_enum_variant)]
        pub enum KeptHosts {
            $( $(#[cfg(feature = $feature)])? $(#[doc = $doc])* $variant($hosts), )*
        }

        /// Reopens a kept run with the provider its record names.
        pub fn reopen(dir: RunDir, record: RunRecord) -> Result<KeptHosts, ClusterError> {
            let Some(kind) = ProviderKind::from_name(&record.provider) else {
                return Err(ClusterError::Environment(format!(
                    "run {} was made by the {} provider, which this build cannot reopen",
                    record.id, record.provider
                )));
            };
            match kind.configured(None) {
                $(
                    $(#[cfg(feature = $feature)])?
                    Ok(Chosen::$variant(provider)) => {
                        provider.reopen(dir, record).map(KeptHosts::$variant)
                    }
                )*
                Err(e) => Err(ClusterError::Environment(format!("run {}: {e}", record.id))),
            }
        }

        /// `succession gc` on one provider, or on every one this build has (a provider that
        /// is not reachable here, Docker without a daemon, has nothing of ours to remove unless
        /// a record says so).
        pub fn gc(
            only: Option<ProviderKind>,
            all: bool,
            strays: &StraySearch,
        ) -> Vec<(&'static str, GcReport)> {
            let mut out = Vec::new();
            for kind in <ProviderKind as clap::ValueEnum>::value_variants() {
                if only.is_some_and(|k| k != *kind) {
                    continue;
                }
                match kind.configured(None) {
                    $(
                        $(#[cfg(feature = $feature)])?
                        Ok(Chosen::$variant(provider)) => {
                            out.push((kind.name(), provider.gc(all, strays)))
                        }
                    )*
                    // Not in this build: nothing of it to look for.
                    Err(_) => {}
                }
            }
            out
        }

        /// Runs a generic body with the chosen provider, whichever it is.
        #[macro_export]
        macro_rules! on_provider {
            ($d chosen:expr, $d provider:ident => $d body:expr) => {
                match $d chosen {
                    $(
                        $(#[cfg(feature = $feature)])?
                        $crate::provider::choice::Chosen::$variant($d provider) => $d body,
                    )*
                }
            };
        }

        /// Runs a generic body on a kept run's hosts, whichever provider made them.
        #[macro_export]
        macro_rules! on_kept {
            ($d kept:expr, $d hosts:ident => $d body:expr) => {
                match $d kept {
                    $(
                        $(#[cfg(feature = $feature)])?
                        $crate::provider::choice::KeptHosts::$variant($d hosts) => $d body,
                    )*
                }
            };
        }
    };
}

providers! {$
    /// Network namespaces on this host (needs root).
    Local = "local", super::local::Local, super::local::LocalHosts;
    /// Docker containers, one per node, from the node image.
    Containers = "containers", super::containers::Containers, super::containers::ContainerHosts;
    /// EC2 instances (builds with the `ec2` feature).
    Ec2 = "ec2", super::ec2::Ec2Provider, super::ec2::Ec2Hosts, feature = "ec2";
}

/// `--provider` wins, then the topology's `[provider] kind`, then local; `--image` wins over
/// the topology's `[provider] image`, then the recipe's own image.
pub fn choose(
    flag: Option<ProviderKind>,
    image: Option<String>,
    topology: &Topology,
) -> Result<Chosen, NotBuilt> {
    kind_for(flag, topology).configured(image.or_else(|| topology.settings.provider_image.clone()))
}

/// Which provider a command on a topology uses: `--provider`, else the topology's `[provider]
/// kind`, else local.
pub fn kind_for(flag: Option<ProviderKind>, topology: &Topology) -> ProviderKind {
    flag.or_else(|| {
        topology
            .settings
            .provider_kind
            .as_deref()
            .and_then(ProviderKind::from_name)
    })
    .unwrap_or(ProviderKind::Local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topology_reader_knows_every_provider_of_the_list() {
        // `spec` sits below `provider`, so it keeps its own list of names for `[provider]
        // kind`: this is what keeps the two the same.
        let listed: Vec<&str> = <ProviderKind as clap::ValueEnum>::value_variants()
            .iter()
            .map(|k| k.name())
            .collect();
        assert_eq!(listed, crate::spec::topology::PROVIDER_KINDS);
    }

    #[test]
    fn a_name_goes_back_to_its_provider() {
        for kind in <ProviderKind as clap::ValueEnum>::value_variants() {
            assert_eq!(ProviderKind::from_name(kind.name()), Some(*kind));
        }
        assert_eq!(ProviderKind::from_name("pods"), None);
    }
}
