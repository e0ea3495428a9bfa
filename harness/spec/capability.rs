//! What a scenario may need of its provider beyond running commands on nodes, and the refusal
//! when the provider lacks it. Steps declare what they need in their rows; providers declare
//! what they have; a scenario is refused (by `lint` and before `run` creates anything) with the
//! file, line and column of the first step that asks for more.

use crate::source::InputError;

/// Something a provider can or cannot do to its hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// A replaced node comes back at the address it had (the replacement procedures rely on
    /// it: the members list the old address).
    StableAddress,
    /// Nodes' neighbour (ARP) tables can be read and purged.
    NeighbourTables,
    /// Packet filters on nodes: isolating a node, partitions, dropped traffic.
    PacketFilters,
    /// A service's processes can be paused and resumed (they keep their sockets open).
    Pause,
    /// A fresh cluster in seconds: `explore` brings one up per schedule it tries.
    CheapClusters,
    /// A FUSE filesystem under a service's data (the faulty disk: slow fsync, power loss).
    FaultyDisk,
}

/// Every capability: what a provider with hosts on this machine has.
pub const EVERY: &[Capability] = &[
    Capability::StableAddress,
    Capability::NeighbourTables,
    Capability::PacketFilters,
    Capability::Pause,
    Capability::CheapClusters,
    Capability::FaultyDisk,
];

impl Capability {
    /// Its name in text (`packet-filters`).
    pub fn name(self) -> &'static str {
        match self {
            Capability::StableAddress => "stable-address",
            Capability::NeighbourTables => "neighbour-tables",
            Capability::PacketFilters => "packet-filters",
            Capability::Pause => "pause",
            Capability::CheapClusters => "cheap-clusters",
            Capability::FaultyDisk => "faulty-disk",
        }
    }

    /// What it is, as the refusal and `succession steps` say it.
    pub fn describe(self) -> &'static str {
        match self {
            Capability::StableAddress => "a replaced node at its old address",
            Capability::NeighbourTables => "reading and purging neighbour tables",
            Capability::PacketFilters => "packet filters on nodes",
            Capability::Pause => "pausing processes",
            Capability::CheapClusters => "a fresh cluster per run in seconds",
            Capability::FaultyDisk => "a faulty disk (FUSE) under a service's data",
        }
    }
}

/// A step that needs a capability, and where the scenario file asks for it.
#[derive(Debug, Clone)]
pub struct Need {
    /// What it needs.
    pub capability: Capability,
    /// The step's name (`action = "…"` or `expect = "…"`).
    pub step: &'static str,
    /// Where: the step's `action` or `expect` value (its message is replaced by the refusal's).
    pub at: InputError,
}

/// The first need the provider does not meet, as an error at the step that has it.
pub fn refuse_unmet(needs: &[Need], provider: &str, has: &[Capability]) -> Result<(), InputError> {
    let Some(need) = needs.iter().find(|n| !has.contains(&n.capability)) else {
        return Ok(());
    };
    let mut error = need.at.clone();
    error.message = format!(
        "`{}` needs {} ({}), which the {provider} provider does not offer",
        need.step,
        need.capability.describe(),
        need.capability.name(),
    );
    error.help = Some(format!("the {provider} provider offers: {}", offered(has)));
    Err(error)
}

/// The capabilities a provider has, listed for a refusal's help.
fn offered(has: &[Capability]) -> String {
    if has.is_empty() {
        return "nothing beyond running commands".to_string();
    }
    has.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    fn need(source: &SourceFile, capability: Capability, step: &'static str) -> Need {
        let start = source.text.find(step).expect("the step is in the text");
        Need {
            capability,
            step,
            at: source.error(start..start + step.len(), ""),
        }
    }

    fn source() -> SourceFile {
        SourceFile::from_text(
            "scenario.toml",
            "[[step]]\naction = \"replace-node\"\n\n[[step]]\naction = \"partition\"\n",
        )
    }

    #[test]
    fn a_provider_with_every_need_runs_the_scenario() {
        let s = source();
        let needs = [
            need(&s, Capability::StableAddress, "replace-node"),
            need(&s, Capability::PacketFilters, "partition"),
        ];
        let all = [
            Capability::StableAddress,
            Capability::PacketFilters,
            Capability::Pause,
        ];
        assert!(refuse_unmet(&needs, "local", &all).is_ok());
        assert!(refuse_unmet(&[], "pods", &[]).is_ok());
    }

    #[test]
    fn the_first_unmet_need_is_refused_at_its_step() {
        let s = source();
        let needs = [
            need(&s, Capability::StableAddress, "replace-node"),
            need(&s, Capability::PacketFilters, "partition"),
        ];
        let e = refuse_unmet(&needs, "pods", &[Capability::StableAddress])
            .expect_err("pods have no packet filters");
        assert_eq!((e.line, e.column), (5, 11));
        insta::assert_snapshot!(e.to_string());
        let e = refuse_unmet(&needs, "pods", &[]).expect_err("nothing offered");
        assert_eq!((e.line, e.column), (2, 11));
        assert_eq!(
            e.help.as_deref(),
            Some("the pods provider offers: nothing beyond running commands")
        );
    }

    #[test]
    fn every_capability_has_a_name_and_a_description() {
        for &c in EVERY {
            assert!(!c.describe().is_empty());
            assert!(!c.name().contains(char::is_uppercase), "{c:?}");
        }
    }
}
