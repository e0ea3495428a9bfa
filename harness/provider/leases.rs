//! Subnets leased to runs: each run, whatever its provider, takes a /24 of 10.213.0.0/16 that no
//! other run and no host route holds.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::netns;
use crate::provider::record::{io, run_dir, state_root, StateError};

fn leases_dir() -> PathBuf {
    state_root().join("leases")
}

/// Leases a /24 for a run: the fixed one, or the first free one of 10.213.0.0/16.
pub fn lease_subnet(run_id: &str, fixed: Option<Ipv4Addr>) -> Result<Ipv4Addr, StateError> {
    let dir = leases_dir();
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let routes = netns::ip(&["-4", "route", "show", "table", "all"]).unwrap_or_default();
    let candidates: Vec<Ipv4Addr> = match fixed {
        Some(s) => vec![s],
        None => (0..=255u8).map(|n| Ipv4Addr::new(10, 213, n, 0)).collect(),
    };
    for subnet in candidates {
        if route_overlaps(&routes, subnet) {
            continue;
        }
        let lease = dir.join(subnet.to_string());
        match OpenOptions::new().write(true).create_new(true).open(&lease) {
            Ok(mut f) => {
                f.write_all(run_id.as_bytes())
                    .map_err(io("write", &lease))?;
                return Ok(subnet);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io("create", &lease)(e)),
        }
    }
    Err(match fixed {
        Some(s) => StateError::SubnetTaken(s),
        None => StateError::NoSubnet,
    })
}

/// Whether any host route covers addresses of `subnet`/24 (routes of other runs included).
fn route_overlaps(routes: &str, subnet: Ipv4Addr) -> bool {
    let ours = u32::from(subnet);
    routes.lines().any(|line| {
        let Some(dest) = line.split_whitespace().next() else {
            return false;
        };
        let (addr, len) = match dest.split_once('/') {
            Some((a, l)) => (a, l.parse::<u32>().unwrap_or(32)),
            None => (dest, 32),
        };
        let Ok(addr) = addr.parse::<Ipv4Addr>() else {
            return false;
        };
        if len == 0 {
            return false;
        }
        let shorter = len.min(24);
        let mask = u32::MAX << (32 - shorter);
        (u32::from(addr) & mask) == (ours & mask)
    })
}

/// Releases a run's subnet lease.
pub fn release_subnet(run_id: &str, subnet: Ipv4Addr) {
    let lease = leases_dir().join(subnet.to_string());
    if std::fs::read_to_string(&lease)
        .map(|s| s == run_id)
        .unwrap_or(false)
    {
        let _ = std::fs::remove_file(lease);
    }
}

/// Leases whose run no longer has a directory (left by a harness killed mid-teardown).
pub fn orphan_leases() -> Vec<(PathBuf, String)> {
    std::fs::read_dir(leases_dir())
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let owner = std::fs::read_to_string(e.path()).ok()?;
                    (!run_dir(&owner).path.exists()).then(|| (e.path(), owner))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_that_cover_a_subnet_are_seen() {
        let routes = "default via 192.0.2.1 dev eth0\n10.213.4.0/24 dev succ123456 proto kernel\n10.0.0.0/8 via 1.2.3.4\n";
        assert!(route_overlaps(routes, Ipv4Addr::new(10, 213, 4, 0)));
        // 10.0.0.0/8 covers every 10.x subnet.
        assert!(route_overlaps(routes, Ipv4Addr::new(10, 213, 5, 0)));
        let routes = "default via 192.0.2.1 dev eth0\n172.17.0.0/16 dev docker0\n";
        assert!(!route_overlaps(routes, Ipv4Addr::new(10, 213, 5, 0)));
    }
}
