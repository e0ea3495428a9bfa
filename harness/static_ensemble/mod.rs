//! ZooKeeper static ensembles as Exhibitor writes them (`5:10.10.0.104,4:10.10.0.122,…`), the
//! ensemble an upgrade regenerates from the master list, and the conflicts between the two.
//! Pure: strings in, data out.
//!
//! The trap this exists for: an upgrade sorts the master list *as strings* (`'.'` included)
//! and numbers it from 1, so `10.10.0.9` sorts after `10.10.0.10`, and a server that still
//! holds the id the upgrade hands to another host makes two servers claim one id.

mod conflicts;
pub mod renumbering;
mod search;
#[cfg(test)]
mod simulate;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

pub use conflicts::{upgrade_conflicts, Conflict};
pub use renumbering::{renumbering_moves, Move, Reason, Restart, Rollout};

/// The highest server id ZooKeeper's administrator's guide allows in `myid`.
pub const MAX_ID: u64 = 255;

/// A static ensemble string could not be read, or a set of servers is no valid ensemble.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnsembleError {
    /// Nothing to read.
    #[error("the ensemble is empty")]
    Empty,
    /// An entry is not `ID:HOST`.
    #[error("entry {index} `{entry}` is not ID:HOST (e.g. `3:10.10.0.169`)")]
    Malformed {
        /// 1-based position in the list.
        index: usize,
        /// The entry as written.
        entry: String,
    },
    /// The id part is not a number.
    #[error("entry {index} `{entry}`: `{id}` is not a server id")]
    BadId {
        /// 1-based position in the list.
        index: usize,
        /// The entry as written.
        entry: String,
        /// The id part.
        id: String,
    },
    /// Id 0 is not a ZooKeeper server id.
    #[error("entry {index} `{entry}`: server id 0 is not allowed (ids start at 1)")]
    ZeroId {
        /// 1-based position in the list.
        index: usize,
        /// The entry as written.
        entry: String,
    },
    /// The id is above what `myid` allows.
    #[error("entry {index} `{entry}`: server id {id} is out of range (1 to {MAX_ID})")]
    IdOutOfRange {
        /// 1-based position in the list.
        index: usize,
        /// The entry as written.
        entry: String,
        /// The id.
        id: u64,
    },
    /// The host part is no host name or address.
    #[error("entry {index} `{entry}`: `{host}` is not a host name or address")]
    BadHost {
        /// 1-based position in the list.
        index: usize,
        /// The entry as written.
        entry: String,
        /// The host part.
        host: String,
    },
    /// Two hosts share an id.
    #[error("server id {id} is given to both {first} and {second}")]
    DuplicateId {
        /// The id.
        id: u64,
        /// The host that has it first.
        first: String,
        /// The other host.
        second: String,
    },
    /// A host is listed twice.
    #[error("host {host} is listed twice (as {first} and {second})")]
    DuplicateHost {
        /// The host.
        host: String,
        /// Its first id.
        first: u64,
        /// Its second id.
        second: u64,
    },
    /// Two ensembles that must hold the same servers do not.
    #[error("the ensembles hold different servers: {detail}")]
    DifferentHosts {
        /// What is missing and what is extra.
        detail: String,
    },
    /// A restart order does not name every server exactly once.
    #[error("the restart order must name every server once: {detail}")]
    BadOrder {
        /// What is wrong with it.
        detail: String,
    },
    /// No id is left to park a server on while a cycle of ids is broken.
    #[error(
        "no free server id is left to park a server on (every id from 1 to {MAX_ID} is taken)"
    )]
    NoSpareId,
}

/// One server of a static ensemble.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Member {
    /// Its server id (`myid`).
    pub id: u64,
    /// Its host (address or name), as the master list spells it.
    pub host: String,
}

/// A static ensemble: distinct ids on distinct hosts, kept in lexicographic order of host
/// (the order Exhibitor's static list is written in). Serialized as that list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensemble {
    members: Vec<Member>,
}

impl Serialize for Ensemble {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Ensemble {
    /// Validates a set of (id, host) pairs.
    pub fn new(members: impl IntoIterator<Item = (u64, String)>) -> Result<Self, EnsembleError> {
        let members: Vec<(u64, String)> = members.into_iter().collect();
        if members.is_empty() {
            return Err(EnsembleError::Empty);
        }
        let mut by_id: BTreeMap<u64, &str> = BTreeMap::new();
        let mut by_host: BTreeMap<&str, u64> = BTreeMap::new();
        for (index, (id, host)) in members.iter().enumerate() {
            let entry = format!("{id}:{host}");
            check_id(index + 1, &entry, *id)?;
            if !valid_host(host) {
                return Err(EnsembleError::BadHost {
                    index: index + 1,
                    entry,
                    host: host.clone(),
                });
            }
            if let Some(first) = by_host.insert(host, *id) {
                return Err(EnsembleError::DuplicateHost {
                    host: host.clone(),
                    first,
                    second: *id,
                });
            }
            if let Some(first) = by_id.insert(*id, host) {
                return Err(EnsembleError::DuplicateId {
                    id: *id,
                    first: first.to_string(),
                    second: host.clone(),
                });
            }
        }
        let mut members: Vec<Member> = members
            .into_iter()
            .map(|(id, host)| Member { id, host })
            .collect();
        members.sort_by(|a, b| a.host.cmp(&b.host));
        Ok(Self { members })
    }

    /// Parses `ID:HOST,ID:HOST,…` (surrounding quotes and blanks around entries are ignored,
    /// as in `EXHIBITOR_STATICENSEMBLE="…"`).
    pub fn parse(text: &str) -> Result<Self, EnsembleError> {
        let text = text.trim();
        let text = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text)
            .trim();
        if text.is_empty() {
            return Err(EnsembleError::Empty);
        }
        let mut pairs = Vec::new();
        for (i, raw) in text.split(',').enumerate() {
            let index = i + 1;
            let entry = raw.trim();
            let Some((id, host)) = entry.split_once(':') else {
                return Err(EnsembleError::Malformed {
                    index,
                    entry: entry.to_string(),
                });
            };
            let (id, host) = (id.trim(), host.trim());
            if id.is_empty() || host.is_empty() {
                return Err(EnsembleError::Malformed {
                    index,
                    entry: entry.to_string(),
                });
            }
            if !id.chars().all(|c| c.is_ascii_digit()) {
                return Err(EnsembleError::BadId {
                    index,
                    entry: entry.to_string(),
                    id: id.to_string(),
                });
            }
            let id: u64 = match id.parse() {
                Ok(n) => n,
                // All digits, so only too large to parse.
                Err(_) => {
                    return Err(EnsembleError::IdOutOfRange {
                        index,
                        entry: entry.to_string(),
                        id: u64::MAX,
                    })
                }
            };
            check_id(index, entry, id)?;
            if !valid_host(host) {
                return Err(EnsembleError::BadHost {
                    index,
                    entry: entry.to_string(),
                    host: host.to_string(),
                });
            }
            pairs.push((id, host.to_string()));
        }
        Self::new(pairs)
    }

    /// The servers, in lexicographic order of host.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// How many servers.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether it holds no server (never true of a validated ensemble).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The id a host has.
    pub fn id_of(&self, host: &str) -> Option<u64> {
        self.members.iter().find(|m| m.host == host).map(|m| m.id)
    }

    /// The host that has an id.
    pub fn host_of(&self, id: u64) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.host.as_str())
    }

    /// The hosts, in lexicographic order.
    pub fn hosts(&self) -> Vec<&str> {
        self.members.iter().map(|m| m.host.as_str()).collect()
    }

    /// Host → id.
    pub fn ids(&self) -> BTreeMap<String, u64> {
        self.members
            .iter()
            .map(|m| (m.host.clone(), m.id))
            .collect()
    }

    /// The same servers with one host's id changed; errors if another host holds `id`.
    pub fn with_id(&self, host: &str, id: u64) -> Result<Self, EnsembleError> {
        Self::new(self.members.iter().map(|m| {
            if m.host == host {
                (id, m.host.clone())
            } else {
                (m.id, m.host.clone())
            }
        }))
    }
}

impl fmt::Display for Ensemble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{}", m.id, m.host)?;
        }
        Ok(())
    }
}

fn check_id(index: usize, entry: &str, id: u64) -> Result<(), EnsembleError> {
    match id {
        0 => Err(EnsembleError::ZeroId {
            index,
            entry: entry.to_string(),
        }),
        n if n > MAX_ID => Err(EnsembleError::IdOutOfRange {
            index,
            entry: entry.to_string(),
            id: n,
        }),
        _ => Ok(()),
    }
}

/// A host name or dotted address: letters, digits, '-' and '.', not starting or ending with '.'.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !host.starts_with('.')
        && !host.ends_with('.')
        && !host.contains("..")
}

/// Hosts sorted the way the upgrade sorts the master list: as strings, byte by byte, `'.'`
/// included (Python's `list.sort()` on `str`), not as 4-byte addresses.
pub fn lexicographic<S: AsRef<str>>(hosts: &[S]) -> Vec<String> {
    let mut out: Vec<String> = hosts.iter().map(|h| h.as_ref().to_string()).collect();
    out.sort();
    out
}

/// The ensemble an upgrade writes from a master list: sorted lexicographically, numbered
/// from 1 (`calculate_exhibitor_static_ensemble` in DC/OS's gen/calc.py).
pub fn upgrade_target<S: AsRef<str>>(master_list: &[S]) -> Result<Ensemble, EnsembleError> {
    Ensemble::new(
        lexicographic(master_list)
            .into_iter()
            .enumerate()
            .map(|(i, host)| (i as u64 + 1, host)),
    )
}

#[cfg(test)]
mod tests;
