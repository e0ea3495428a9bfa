//! Neighbour (ARP) entries as `ip neigh` prints them.

use serde::Serialize;

/// One node's entry for another node's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum Neighbour {
    /// No entry at all.
    Absent,
    /// Resolution under way or failed: `arp -a` shows `<incomplete>`.
    Unresolved {
        /// The kernel's state word (INCOMPLETE, FAILED).
        nud: String,
    },
    /// A MAC is known.
    Resolved {
        /// The MAC.
        mac: String,
        /// The kernel's state word (REACHABLE, STALE, DELAY, PROBE, PERMANENT).
        nud: String,
    },
}

impl Neighbour {
    /// Whether the entry holds no usable MAC.
    pub fn is_unresolved(&self) -> bool {
        !matches!(self, Neighbour::Resolved { .. })
    }

    /// The MAC, when resolved.
    pub fn mac(&self) -> Option<&str> {
        match self {
            Neighbour::Resolved { mac, .. } => Some(mac),
            _ => None,
        }
    }
}

impl std::fmt::Display for Neighbour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Neighbour::Absent => f.write_str("absent"),
            Neighbour::Unresolved { nud } => write!(f, "<incomplete> ({nud})"),
            Neighbour::Resolved { mac, nud } => write!(f, "{mac} ({nud})"),
        }
    }
}

/// Parses `ip neigh show to ADDR dev eth0` (one line, or none).
pub fn parse_ip_neigh(output: &str) -> Neighbour {
    let Some(line) = output.lines().find(|l| !l.trim().is_empty()) else {
        return Neighbour::Absent;
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let nud = words.last().copied().unwrap_or("").to_string();
    match words.iter().position(|w| *w == "lladdr") {
        Some(i) if i + 1 < words.len() && nud != "FAILED" && nud != "INCOMPLETE" => {
            Neighbour::Resolved {
                mac: words[i + 1].to_string(),
                nud,
            }
        }
        _ => Neighbour::Unresolved { nud },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_classified_like_arp_shows_them() {
        assert_eq!(parse_ip_neigh(""), Neighbour::Absent);
        assert_eq!(
            parse_ip_neigh("10.0.0.12 lladdr 06:65:1f:74:8f:63 REACHABLE\n"),
            Neighbour::Resolved {
                mac: "06:65:1f:74:8f:63".into(),
                nud: "REACHABLE".into()
            }
        );
        assert!(parse_ip_neigh("10.0.0.12  INCOMPLETE\n").is_unresolved());
        assert!(parse_ip_neigh("10.0.0.12  FAILED\n").is_unresolved());
        assert_eq!(
            parse_ip_neigh("10.0.0.12 lladdr 06:65:1f:74:8f:63 STALE\n").mac(),
            Some("06:65:1f:74:8f:63")
        );
    }
}
