//! A node's own interfaces and its neighbour table, as iproute2 prints them (`ip -o link`,
//! `ip -o -4 addr`, `ip neigh`). Pure parsers.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::probe::neighbour::{parse_ip_neigh, Neighbour};

/// What one node's network looks like from inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeNet {
    /// The MAC of the interface holding each of its IPv4 addresses.
    pub macs: BTreeMap<Ipv4Addr, String>,
    /// Its neighbour entries for IPv4 addresses.
    pub neighbours: BTreeMap<Ipv4Addr, Neighbour>,
}

/// Interface name → MAC, from `ip -o link show`.
pub fn parse_links(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        // `2: eth0@if12: <…> … link/ether 06:65:1f:74:8f:63 brd …`
        let mut fields = line.split_whitespace();
        let (Some(_index), Some(name)) = (fields.next(), fields.next()) else {
            continue;
        };
        let name = name.trim_end_matches(':');
        let name = name.split('@').next().unwrap_or(name);
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = words.iter().position(|w| *w == "link/ether") {
            if let Some(mac) = words.get(i + 1) {
                out.insert(name.to_string(), mac.to_lowercase());
            }
        }
    }
    out
}

/// Interface name of each IPv4 address, from `ip -o -4 addr show`.
pub fn parse_addrs(text: &str) -> BTreeMap<Ipv4Addr, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        // `2: eth0    inet 10.213.0.10/24 brd 10.213.0.255 scope global eth0\ …`
        let words: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(i)) = (words.get(1), words.iter().position(|w| *w == "inet")) else {
            continue;
        };
        let Some(cidr) = words.get(i + 1) else {
            continue;
        };
        if let Ok(addr) = cidr.split('/').next().unwrap_or(cidr).parse::<Ipv4Addr>() {
            out.insert(addr, name.trim_end_matches(':').to_string());
        }
    }
    out
}

/// Every IPv4 entry of `ip neigh show`.
pub fn parse_neighbours(text: &str) -> BTreeMap<Ipv4Addr, Neighbour> {
    text.lines()
        .filter_map(|line| {
            let addr: Ipv4Addr = line.split_whitespace().next()?.parse().ok()?;
            Some((addr, parse_ip_neigh(line)))
        })
        .collect()
}

/// Puts the three outputs together.
pub fn node_net(links: &str, addrs: &str, neigh: &str) -> NodeNet {
    let macs_by_if = parse_links(links);
    let macs = parse_addrs(addrs)
        .into_iter()
        .filter_map(|(addr, ifname)| macs_by_if.get(&ifname).map(|m| (addr, m.clone())))
        .collect();
    NodeNet {
        macs,
        neighbours: parse_neighbours(neigh),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iproute2_output_is_read() {
        let links = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n2: eth0@if12: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\\    link/ether 06:65:1F:74:8f:63 brd ff:ff:ff:ff:ff:ff link-netns succ-abc-hub\n";
        let addrs = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n2: eth0    inet 10.213.0.10/24 scope global eth0\\       valid_lft forever preferred_lft forever\n";
        let neigh = "10.213.0.11 dev eth0 lladdr 02:00:00:00:00:0b REACHABLE\n10.213.0.12 dev eth0  FAILED\nfe80::1 dev eth0 lladdr 02:00:00:00:00:01 STALE\n";
        let net = node_net(links, addrs, neigh);
        assert_eq!(
            net.macs
                .get(&Ipv4Addr::new(10, 213, 0, 10))
                .map(String::as_str),
            Some("06:65:1f:74:8f:63")
        );
        assert!(!net.macs.contains_key(&Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(net.neighbours.len(), 2);
        assert_eq!(
            net.neighbours[&Ipv4Addr::new(10, 213, 0, 11)].mac(),
            Some("02:00:00:00:00:0b")
        );
        assert!(net.neighbours[&Ipv4Addr::new(10, 213, 0, 12)].is_unresolved());
    }
}
