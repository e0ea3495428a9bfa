//! The cell's configuration as the harness keeps it on disk, the etcd keys it becomes, and
//! seed 001's rule for choosing the masters of a recreated cluster.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::service::ServiceKind;

/// Where the cell's configuration keys live in etcd.
pub const CONFIG_PREFIX: &str = "/succession/config/";

/// One node as the configuration on disk describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigNode {
    /// Full name.
    pub fqdn: String,
    /// Short name.
    pub short: String,
    /// Role.
    pub role: String,
    /// Address (kept by a replacement).
    pub address: Ipv4Addr,
    /// Services, in start order.
    pub services: Vec<ServiceKind>,
}

/// The cell's configuration: every node, as written in the run's record on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellConfig {
    /// The cell's name.
    pub cell: String,
    /// Every node, in topology order.
    pub nodes: Vec<ConfigNode>,
}

impl CellConfig {
    /// The configuration a run's record holds.
    pub fn of(record: &crate::provider::RunRecord) -> Self {
        let mut nodes: Vec<(&String, &crate::provider::NodeRecord)> = record.nodes.iter().collect();
        nodes.sort_by_key(|(_, n)| n.ordinal);
        Self {
            cell: record.cell.clone(),
            nodes: nodes
                .into_iter()
                .map(|(fqdn, n)| ConfigNode {
                    fqdn: fqdn.clone(),
                    short: n.short.clone(),
                    role: n.role.clone(),
                    address: n.address,
                    services: n.services.clone(),
                })
                .collect(),
        }
    }

    /// The prefix of this cell's keys.
    pub fn prefix(&self) -> String {
        format!("{CONFIG_PREFIX}{}/", self.cell)
    }

    /// The keys and values the configuration becomes in etcd: one key per node, one per role
    /// listing its nodes, and `etcd_cluster` listing the etcd nodes' addresses (as in
    /// Clearwater's `local_config`).
    pub fn keys(&self) -> BTreeMap<String, String> {
        let prefix = self.prefix();
        let mut keys = BTreeMap::new();
        let mut roles: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for n in &self.nodes {
            let value = serde_json::json!({
                "fqdn": n.fqdn,
                "role": n.role,
                "address": n.address.to_string(),
                "services": n.services.iter().map(|s| s.name()).collect::<Vec<_>>(),
            });
            keys.insert(format!("{prefix}nodes/{}", n.short), value.to_string());
            roles.entry(&n.role).or_default().push(&n.short);
        }
        for (role, nodes) in roles {
            keys.insert(format!("{prefix}roles/{role}"), nodes.join(","));
        }
        let etcd: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.services.contains(&ServiceKind::Etcd))
            .map(|n| n.address.to_string())
            .collect();
        keys.insert(format!("{prefix}etcd_cluster"), etcd.join(","));
        keys
    }

    /// The configured node with this full name.
    pub fn node(&self, fqdn: &str) -> Option<&ConfigNode> {
        self.nodes.iter().find(|n| n.fqdn == fqdn)
    }
}

/// Which branch of seed 001's rule chose the masters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterChoice {
    /// Three or more working nodes of the quorum role: those.
    Working,
    /// Fewer than three: every node of the site.
    AllNodes,
    /// The scenario named them.
    Named,
}

/// Seed 001: "If you have 3 or more working Vellum nodes in the site, you should use those. If
/// not, you should use all the nodes in the site."
pub fn choose_masters(working: &[String], all: &[String]) -> (Vec<String>, MasterChoice) {
    if working.len() >= 3 {
        (working.to_vec(), MasterChoice::Working)
    } else {
        (all.to_vec(), MasterChoice::AllNodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(short: &str, role: &str, last: u8, services: &[ServiceKind]) -> ConfigNode {
        ConfigNode {
            fqdn: format!("{short}.cell-1.dc-1.demo.lan"),
            short: short.into(),
            role: role.into(),
            address: Ipv4Addr::new(10, 0, 0, last),
            services: services.to_vec(),
        }
    }

    #[test]
    fn the_configuration_becomes_one_key_per_node_and_role_and_the_etcd_cluster() {
        let config = CellConfig {
            cell: "cell-1".into(),
            nodes: vec![
                node("border-1", "border", 10, &[]),
                node(
                    "quorum-1",
                    "quorum",
                    11,
                    &[ServiceKind::Zookeeper, ServiceKind::Etcd],
                ),
                node("quorum-2", "quorum", 12, &[ServiceKind::Etcd]),
            ],
        };
        let keys = config.keys();
        let listed: Vec<String> = keys.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        assert_eq!(
            listed,
            vec![
                "/succession/config/cell-1/etcd_cluster = 10.0.0.11,10.0.0.12",
                "/succession/config/cell-1/nodes/border-1 = {\"address\":\"10.0.0.10\",\"fqdn\":\"border-1.cell-1.dc-1.demo.lan\",\"role\":\"border\",\"services\":[]}",
                "/succession/config/cell-1/nodes/quorum-1 = {\"address\":\"10.0.0.11\",\"fqdn\":\"quorum-1.cell-1.dc-1.demo.lan\",\"role\":\"quorum\",\"services\":[\"zookeeper\",\"etcd\"]}",
                "/succession/config/cell-1/nodes/quorum-2 = {\"address\":\"10.0.0.12\",\"fqdn\":\"quorum-2.cell-1.dc-1.demo.lan\",\"role\":\"quorum\",\"services\":[\"etcd\"]}",
                "/succession/config/cell-1/roles/border = border-1",
                "/succession/config/cell-1/roles/quorum = quorum-1,quorum-2",
            ]
        );
        assert!(keys.keys().all(|k| k.starts_with(&config.prefix())));
    }

    #[test]
    fn three_working_nodes_become_the_masters_and_fewer_mean_every_node() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = names(&["q1", "q2", "q3", "q4", "m1"]);
        assert_eq!(
            choose_masters(&names(&["q1", "q2", "q4"]), &all),
            (names(&["q1", "q2", "q4"]), MasterChoice::Working)
        );
        assert_eq!(
            choose_masters(&names(&["q3"]), &all),
            (all.clone(), MasterChoice::AllNodes)
        );
        assert_eq!(choose_masters(&[], &all), (all, MasterChoice::AllNodes));
    }
}
