//! etcd's store before an upgrade: no alarm raised, the database within its quota and not in
//! need of a defragmentation, every member of one cluster at one version with its raft log
//! applied, the same keys on every member (`hashkv` at one revision), no removed member still
//! answering, and a version above the floor and clear of known bugs that matter on the way.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::etcd::{member_label, Seen};
use super::{list, row, Check, Outcome};

/// Share of the quota above which the database size warns.
const QUOTA_WARN: f64 = 0.8;
/// Free pages above which (when also more than the pages in use) a defragmentation is due.
const FREE_WARN_BYTES: i64 = 1 << 30;
/// Raft entries a member may have left to apply, against the highest index any member has,
/// before the members are said not to have converged.
const RAFT_LAG_BOUND: u64 = 1000;

fn mb(bytes: i64) -> String {
    if bytes < 1_000_000 {
        format!("{} kB", bytes / 1000)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

/// Nothing answers as an etcd member that the member list no longer has: a member removed
/// while its process kept running (cut off when it was removed) comes back on its old data
/// and disturbs the cluster — a known upgrade failure.
pub(super) fn no_removed_member_answers(seen: &Seen<'_>) -> Check {
    const NAME: &str = "no removed member still answers";
    // The list most members give: the one the cluster agreed on.
    let mut lists: BTreeMap<BTreeSet<u64>, usize> = BTreeMap::new();
    for (_, s) in &seen.reached {
        *lists
            .entry(s.members.iter().map(|m| m.id).collect())
            .or_default() += 1;
    }
    let Some((listed, _)) = lists.into_iter().max_by_key(|(_, n)| *n) else {
        return row("etcd", NAME, Outcome::Unreachable, seen.cant_reach());
    };
    let removed: Vec<String> = seen
        .reached
        .iter()
        .filter(|(_, s)| !listed.contains(&s.status.member_id))
        .map(|(n, s)| {
            format!(
                "{} answers at {} as member {:x}, which the member list no longer has",
                n.short(),
                n.etcd.as_deref().unwrap_or("?"),
                s.status.member_id
            )
        })
        .collect();
    if removed.is_empty() {
        row(
            "etcd",
            NAME,
            Outcome::Pass,
            format!(
                "every answering member is one of the {} listed",
                listed.len()
            ),
        )
    } else {
        row("etcd", NAME, Outcome::Fail, list(&removed))
    }
}

/// Every member reports the same cluster id and version, and has applied its raft log to
/// within a bound of the highest index any member has.
pub(super) fn status_agrees(seen: &Seen<'_>) -> Check {
    const NAME: &str = "endpoint status agrees";
    if seen.reached.is_empty() {
        return row("etcd", NAME, Outcome::Unreachable, seen.cant_reach());
    }
    let by = |f: &dyn Fn(&crate::probe::etcd::StatusDetail) -> String| {
        let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (n, s) in &seen.reached {
            groups
                .entry(f(&s.status.detail))
                .or_default()
                .push(n.short());
        }
        groups
    };
    let clusters = by(&|d| format!("{:x}", d.cluster_id));
    let versions = by(&|d| d.version.clone());
    let shown = |what: &str, groups: &BTreeMap<String, Vec<&str>>| {
        let parts: Vec<String> = groups
            .iter()
            .map(|(v, who)| format!("{what} {v} on {}", who.join(", ")))
            .collect();
        list(&parts)
    };
    if clusters.len() > 1 {
        return row("etcd", NAME, Outcome::Fail, shown("cluster", &clusters));
    }
    if versions.len() > 1 {
        return row(
            "etcd",
            NAME,
            Outcome::Fail,
            format!(
                "{} (an earlier upgrade is unfinished)",
                shown("version", &versions)
            ),
        );
    }
    let highest = seen
        .reached
        .iter()
        .map(|(_, s)| s.status.detail.raft_index)
        .max()
        .unwrap_or(0);
    let behind: Vec<String> = seen
        .reached
        .iter()
        .filter(|(_, s)| {
            highest.saturating_sub(s.status.detail.raft_applied_index) > RAFT_LAG_BOUND
        })
        .map(|(n, s)| {
            format!(
                "{} applied {} of {highest}",
                n.short(),
                s.status.detail.raft_applied_index
            )
        })
        .collect();
    let indexes: Vec<String> = seen
        .reached
        .iter()
        .map(|(n, s)| {
            format!(
                "{} {}/{}",
                n.short(),
                s.status.detail.raft_applied_index,
                s.status.detail.raft_index
            )
        })
        .collect();
    let evidence = format!(
        "cluster {}, version {}; applied/raft index {}",
        clusters.keys().next().map_or("?", String::as_str),
        versions.keys().next().map_or("?", String::as_str),
        list(&indexes)
    );
    if behind.is_empty() {
        row("etcd", NAME, Outcome::Pass, evidence)
    } else {
        row(
            "etcd",
            NAME,
            Outcome::Warn,
            format!(
                "{} (more than {RAFT_LAG_BOUND} entries behind); {evidence}",
                list(&behind)
            ),
        )
    }
}

/// `hashkv` is the same on every member at one revision: the members hold the same keys.
pub(super) fn hashes_agree(seen: &Seen<'_>) -> Check {
    const NAME: &str = "key-value hashes agree";
    if seen.reached.is_empty() {
        return row("etcd", NAME, Outcome::Unreachable, seen.cant_reach());
    }
    let mut failed = Vec::new();
    let mut groups: BTreeMap<(u32, i64), Vec<&str>> = BTreeMap::new();
    let mut revision = None;
    let mut revisions = BTreeSet::new();
    for (n, s) in &seen.reached {
        match &s.hash {
            Some(Ok(h)) => {
                revision = Some(h.revision);
                revisions.insert(h.revision);
                groups
                    .entry((h.hash, h.compact_revision.max(0)))
                    .or_default()
                    .push(n.short());
            }
            Some(Err(e)) => failed.push(format!("{}: {e}", n.short())),
            None => failed.push(format!("{}: not asked", n.short())),
        }
    }
    let at = revision.map_or(String::new(), |r| format!(" at revision {r}"));
    let shown: Vec<String> = groups
        .iter()
        .map(|((hash, compact), who)| {
            // etcd answers -1 (3.4) or 0 for a store never compacted.
            let compacted = if *compact > 0 {
                format!("compacted to {compact}")
            } else {
                "never compacted".to_string()
            };
            format!("{hash:#010x} ({compacted}) on {}", who.join(", "))
        })
        .collect();
    let compactions: BTreeSet<i64> = groups.keys().map(|(_, c)| *c).collect();
    if !failed.is_empty() {
        row(
            "etcd",
            NAME,
            Outcome::Unknown,
            format!("could not hash {}{at}", list(&failed)),
        )
    } else if revisions.len() > 1 {
        let at: Vec<String> = revisions.iter().map(i64::to_string).collect();
        row(
            "etcd",
            NAME,
            Outcome::Unknown,
            format!(
                "the members could only be hashed at different revisions ({}): {}",
                at.join(", "),
                list(&shown)
            ),
        )
    } else if compactions.len() > 1 {
        // Hashes begin at each member's own compaction: apart, they cannot be compared.
        row(
            "etcd",
            NAME,
            Outcome::Unknown,
            format!(
                "members compacted to different revisions{at}: {}",
                list(&shown)
            ),
        )
    } else if groups.len() > 1 {
        row(
            "etcd",
            NAME,
            Outcome::Fail,
            format!("the members hold different keys{at}: {}", list(&shown)),
        )
    } else {
        row("etcd", NAME, Outcome::Pass, format!("{}{at}", list(&shown)))
    }
}

/// The alarm list is empty (NOSPACE: the database reached its quota and etcd takes no more
/// writes; CORRUPT: a member's data differs from the others').
pub(super) fn no_alarms(seen: &Seen<'_>) -> Check {
    const NAME: &str = "no alarms";
    if seen.reached.is_empty() {
        return row("etcd", NAME, Outcome::Unreachable, seen.cant_reach());
    }
    // Read from each member's status (`alarm list` would propose a raft entry).
    let raised: BTreeSet<String> = seen
        .reached
        .iter()
        .flat_map(|(_, s)| {
            s.status.detail.alarms().into_iter().map(|a| {
                let who = s
                    .members
                    .iter()
                    .find(|m| m.id == a.member_id)
                    .map(|m| member_label(seen.inv, m))
                    .unwrap_or_else(|| format!("member {:x}", a.member_id));
                format!("{} on {who}", a.alarm)
            })
        })
        .collect();
    if raised.is_empty() {
        row(
            "etcd",
            NAME,
            Outcome::Pass,
            format!("none raised, as {} members list them", seen.reached.len()),
        )
    } else {
        let raised: Vec<String> = raised.into_iter().collect();
        row("etcd", NAME, Outcome::Fail, list(&raised))
    }
}

/// The database against its quota (warn at 80 %), and its free pages against the pages in
/// use (warn when more, and over 1 GB: a defragmentation is due first).
pub(super) fn database_size(seen: &Seen<'_>) -> Check {
    const NAME: &str = "database size within the quota";
    if seen.reached.is_empty() {
        return row("etcd", NAME, Outcome::Unreachable, seen.cant_reach());
    }
    let mut warnings = Vec::new();
    let mut unknown = Vec::new();
    let mut sizes = Vec::new();
    for (n, s) in &seen.reached {
        let d = &s.status.detail;
        let free = d.db_size - d.db_size_in_use;
        if free > d.db_size_in_use && free > FREE_WARN_BYTES {
            warnings.push(format!(
                "{}: {} free of {} (defragment it first)",
                n.short(),
                mb(free),
                mb(d.db_size)
            ));
        }
        match &s.quota_bytes {
            Ok(quota) => {
                let share = d.db_size as f64 / (*quota).max(1) as f64;
                let said = format!(
                    "{} {} of {} ({:.0} %)",
                    n.short(),
                    mb(d.db_size),
                    mb(*quota as i64),
                    share * 100.0
                );
                if share >= QUOTA_WARN {
                    warnings.push(format!("{said}, at or above {:.0} %", QUOTA_WARN * 100.0));
                }
                sizes.push(said);
            }
            Err(e) => unknown.push(format!("{}: quota not known ({e})", n.short())),
        }
    }
    if !warnings.is_empty() {
        row("etcd", NAME, Outcome::Warn, list(&warnings))
    } else if !unknown.is_empty() {
        row("etcd", NAME, Outcome::Unknown, list(&unknown))
    } else {
        row("etcd", NAME, Outcome::Pass, list(&sizes))
    }
}

/// The versions preflight accepts, and the known bugs of running versions (the repository's
/// `preflight/data/etcd-versions.toml`).
#[derive(Debug, Deserialize)]
pub(super) struct VersionRules {
    floor: semver::Version,
    floor_reference: String,
    #[serde(default)]
    bug: Vec<KnownBug>,
}

#[derive(Debug, Deserialize)]
struct KnownBug {
    affects: semver::VersionReq,
    issue: String,
    summary: String,
}

const VERSION_RULES: &str = include_str!("../data/etcd-versions.toml");

pub(super) fn version_rules() -> Result<VersionRules, toml::de::Error> {
    toml::from_str(VERSION_RULES)
}

/// The running version against the floor (below it: fail), and against the known bugs that
/// matter on an upgrade path (in one: warn, naming the upstream issue).
pub(super) fn version_gate(seen: &Seen<'_>) -> Check {
    const NAME: &str = "version above the floor, no known bug";
    let rules = match version_rules() {
        Ok(r) => r,
        Err(e) => {
            return row(
                "etcd",
                NAME,
                Outcome::Unknown,
                format!("the version rules do not parse: {e}"),
            )
        }
    };
    if seen.reached.is_empty() {
        return row("etcd", NAME, Outcome::Unreachable, seen.cant_reach());
    }
    let versions: BTreeSet<&str> = seen
        .reached
        .iter()
        .map(|(_, s)| s.status.detail.version.as_str())
        .collect();
    let mut failed = Vec::new();
    let mut warned = Vec::new();
    for v in &versions {
        let Ok(parsed) = semver::Version::parse(v) else {
            failed.push(format!("version {v:?} cannot be read"));
            continue;
        };
        if parsed < rules.floor {
            failed.push(format!(
                "{v} is below the floor {} ({})",
                rules.floor, rules.floor_reference
            ));
        }
        for bug in rules.bug.iter().filter(|b| b.affects.matches(&parsed)) {
            warned.push(format!("{v}: {} ({})", bug.summary, bug.issue));
        }
    }
    let running = versions.into_iter().collect::<Vec<_>>().join(", ");
    if !failed.is_empty() {
        row("etcd", NAME, Outcome::Fail, list(&failed))
    } else if !warned.is_empty() {
        row("etcd", NAME, Outcome::Warn, list(&warned))
    } else {
        row(
            "etcd",
            NAME,
            Outcome::Pass,
            format!(
                "{running}, at or above {} with no known bug listed",
                rules.floor
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_rules_parse_and_debians_version_warns_of_the_watch_bug() {
        let rules = version_rules().expect("preflight/data/etcd-versions.toml parses");
        let debian = semver::Version::parse("3.4.23").expect("a version");
        assert!(debian >= rules.floor);
        let bugs: Vec<&str> = rules
            .bug
            .iter()
            .filter(|b| b.affects.matches(&debian))
            .map(|b| b.issue.as_str())
            .collect();
        assert_eq!(bugs, ["https://github.com/etcd-io/etcd/issues/15271"]);
        let fixed = semver::Version::parse("3.4.25").expect("a version");
        assert!(rules.bug.iter().all(|b| !b.affects.matches(&fixed)));
        assert!(semver::Version::parse("3.3.27").expect("a version") < rules.floor);
    }
}
