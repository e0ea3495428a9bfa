//! ZooKeeper before an upgrade, from its four-letter words: every word preflight needs
//! allowed (what a refused one would show is unknown, never a pass), the leader's followers all
//! synced, every server's id its own, every server read-write, no digest mismatch, and a load
//! light enough to restart servers under.

use std::collections::BTreeMap;

use super::{list, row, Check, Outcome};
use crate::preflight::inventory::{Inventory, InventoryNode};
use crate::preflight::{Observations, ZookeeperSeen, ZookeeperWords};
use crate::probe::zookeeper::Mode;

/// The words preflight reads, each for what it shows.
pub(super) const WORDS: [(&str, &str); 4] = [
    ("srvr", "mode and zxid"),
    ("conf", "ensemble and ids"),
    ("mntr", "synced followers, digest mismatches and load"),
    ("isro", "read-write"),
];

/// What preflight saw of one ZooKeeper server that answered `srvr`.
struct Answered<'a> {
    node: &'a InventoryNode,
    state: &'a ZookeeperSeen,
    words: Option<&'a ZookeeperWords>,
}

impl Answered<'_> {
    fn refused(&self, word: &str) -> bool {
        self.words
            .is_some_and(|w| w.refused.iter().any(|r| r == word))
    }

    fn mntr(&self, key: &str) -> Option<&str> {
        self.words?.mntr.as_ref()?.get(key).map(String::as_str)
    }
}

fn answered<'a>(inv: &'a Inventory, obs: &'a Observations) -> Vec<Answered<'a>> {
    inv.zookeeper_nodes()
        .into_iter()
        .filter_map(|node| {
            let state = obs.zookeeper.get(&node.name)?.as_ref().ok()?;
            Some(Answered {
                node,
                state,
                words: obs.zookeeper_words.get(&node.name),
            })
        })
        .collect()
}

/// Those that refused `word`, by name.
fn refusing(servers: &[Answered<'_>], word: &str) -> Vec<String> {
    servers
        .iter()
        .filter(|s| s.refused(word))
        .map(|s| s.node.short().to_string())
        .collect()
}

fn not_allowed(word: &str, who: &[String]) -> String {
    format!(
        "`{word}` is not allowed on {} (add it to 4lw.commands.whitelist)",
        list(who)
    )
}

/// The row of a check judged from one word, in its order of precedence: what broke (fail or
/// warn), then what could not be read — the word refused, or not answered — then the pass.
struct Judged<'w> {
    name: &'static str,
    word: &'static str,
    broke: Option<(Outcome, String)>,
    refused: &'w [String],
    unanswered: Vec<String>,
    /// How the servers that did not answer are said ("… report no load figures").
    unanswered_says: &'static str,
    passed: String,
}

impl Judged<'_> {
    fn row(self) -> Check {
        if let Some((outcome, evidence)) = self.broke {
            row("zookeeper", self.name, outcome, evidence)
        } else if !self.refused.is_empty() {
            row(
                "zookeeper",
                self.name,
                Outcome::Unknown,
                not_allowed(self.word, self.refused),
            )
        } else if !self.unanswered.is_empty() {
            row(
                "zookeeper",
                self.name,
                Outcome::Unknown,
                format!("{} {}", list(&self.unanswered), self.unanswered_says),
            )
        } else {
            row("zookeeper", self.name, Outcome::Pass, self.passed)
        }
    }
}

pub(super) fn checks(inv: &Inventory, obs: &Observations) -> Vec<Check> {
    let servers = answered(inv, obs);
    if servers.is_empty() {
        return Vec::new();
    }
    vec![
        words_allowed(&servers),
        synced_followers(&servers, &inv.zookeeper_nodes()),
        ids_unique(&servers),
        read_write(&servers),
        no_digest_mismatches(&servers),
        load(&servers, inv),
    ]
}

/// Every word preflight reads is allowed on every server.
fn words_allowed(servers: &[Answered<'_>]) -> Check {
    const NAME: &str = "four-letter words allowed";
    let refused: Vec<String> = WORDS
        .iter()
        .filter_map(|(word, shows)| {
            let who = refusing(servers, word);
            (!who.is_empty())
                .then(|| format!("{}, so its {shows} cannot be read", not_allowed(word, &who)))
        })
        .collect();
    if refused.is_empty() {
        let words: Vec<&str> = WORDS.iter().map(|(w, _)| *w).collect();
        row(
            "zookeeper",
            NAME,
            Outcome::Pass,
            format!("{} answered on {} servers", words.join(", "), servers.len()),
        )
    } else {
        row("zookeeper", NAME, Outcome::Unknown, refused.join("; "))
    }
}

/// The leader's synced followers are the ensemble's servers less itself; warns naming those
/// not following.
fn synced_followers(servers: &[Answered<'_>], ensemble: &[&InventoryNode]) -> Check {
    const NAME: &str = "every follower synced with the leader";
    let leaders: Vec<&Answered<'_>> = servers
        .iter()
        .filter(|s| s.state.mode == Mode::Leader)
        .collect();
    let [leader] = leaders.as_slice() else {
        return row(
            "zookeeper",
            NAME,
            Outcome::Unknown,
            format!("{} servers say they lead", leaders.len()),
        );
    };
    if leader.refused("mntr") {
        return row(
            "zookeeper",
            NAME,
            Outcome::Unknown,
            not_allowed("mntr", &[leader.node.short().to_string()]),
        );
    }
    let Some(synced) = leader.state.synced_followers else {
        return row(
            "zookeeper",
            NAME,
            Outcome::Unknown,
            format!(
                "{} does not report zk_synced_followers",
                leader.node.short()
            ),
        );
    };
    let expected = ensemble.len().saturating_sub(1);
    let following: Vec<&str> = servers
        .iter()
        .filter(|s| s.state.mode == Mode::Follower)
        .map(|s| s.node.short())
        .collect();
    let evidence = format!(
        "{} reports {synced} synced followers of {expected}",
        leader.node.short()
    );
    if synced >= expected {
        row("zookeeper", NAME, Outcome::Pass, evidence)
    } else {
        let not_following: Vec<String> = ensemble
            .iter()
            .filter(|n| n.name != leader.node.name && !following.contains(&n.short()))
            .map(|n| {
                if servers.iter().any(|s| s.node.name == n.name) {
                    n.short().to_string()
                } else {
                    format!("{} (no answer)", n.short())
                }
            })
            .collect();
        row(
            "zookeeper",
            NAME,
            Outcome::Warn,
            format!("{evidence}; not following: {}", list(&not_following)),
        )
    }
}

/// Every server's own id (`conf` serverId) is its alone.
fn ids_unique(servers: &[Answered<'_>]) -> Check {
    const NAME: &str = "every server id unique";
    let mut ids: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    let mut unread = Vec::new();
    for s in servers {
        match s.state.conf.as_ref().and_then(|c| c.server_id) {
            Some(id) => ids.entry(id).or_default().push(s.node.short()),
            None => unread.push(s.node.short().to_string()),
        }
    }
    let shared: Vec<String> = ids
        .iter()
        .filter(|(_, who)| who.len() > 1)
        .map(|(id, who)| format!("id {id} on {}", who.join(", ")))
        .collect();
    if !shared.is_empty() {
        row("zookeeper", NAME, Outcome::Fail, list(&shared))
    } else if !unread.is_empty() {
        row(
            "zookeeper",
            NAME,
            Outcome::Unknown,
            format!("the id of {} cannot be read (no `conf`)", list(&unread)),
        )
    } else {
        let shown: Vec<String> = ids
            .iter()
            .map(|(id, who)| format!("{id}:{}", who.join("")))
            .collect();
        row("zookeeper", NAME, Outcome::Pass, shown.join(", "))
    }
}

/// `isro` answers `rw` everywhere: a read-only server serves no writes.
fn read_write(servers: &[Answered<'_>]) -> Check {
    const NAME: &str = "every server read-write";
    let refused = refusing(servers, "isro");
    let read_only: Vec<String> = servers
        .iter()
        .filter(|s| {
            s.words
                .and_then(|w| w.isro.as_deref())
                .is_some_and(|a| a != "rw")
        })
        .map(|s| {
            format!(
                "{} answers {}",
                s.node.short(),
                s.words.and_then(|w| w.isro.as_deref()).unwrap_or("?")
            )
        })
        .collect();
    let silent: Vec<String> = servers
        .iter()
        .filter(|s| !s.refused("isro") && s.words.and_then(|w| w.isro.as_ref()).is_none())
        .map(|s| s.node.short().to_string())
        .collect();
    Judged {
        name: NAME,
        word: "isro",
        broke: (!read_only.is_empty()).then(|| (Outcome::Fail, list(&read_only))),
        refused: &refused,
        unanswered: silent,
        unanswered_says: "gave no `isro` answer",
        passed: format!("{} servers answer rw", servers.len()),
    }
    .row()
}

/// `zk_digest_mismatches_count` is 0 everywhere: no server found its data tree's digest
/// differing from the leader's.
fn no_digest_mismatches(servers: &[Answered<'_>]) -> Check {
    const NAME: &str = "no digest mismatches";
    let refused = refusing(servers, "mntr");
    let mut unreported = Vec::new();
    let mut mismatched = Vec::new();
    for s in servers.iter().filter(|s| !s.refused("mntr")) {
        match s.mntr("zk_digest_mismatches_count").map(str::parse::<u64>) {
            Some(Ok(0)) => {}
            Some(Ok(n)) => mismatched.push(format!("{} counts {n}", s.node.short())),
            _ => unreported.push(s.node.short().to_string()),
        }
    }
    Judged {
        name: NAME,
        word: "mntr",
        broke: (!mismatched.is_empty()).then(|| (Outcome::Fail, list(&mismatched))),
        refused: &refused,
        unanswered: unreported,
        unanswered_says: "report no zk_digest_mismatches_count (digest checks off?)",
        passed: format!("0 on each of {} servers", servers.len()),
    }
    .row()
}

/// Outstanding requests and average latency below the inventory's limits.
fn load(servers: &[Answered<'_>], inv: &Inventory) -> Check {
    const NAME: &str = "load below the limits";
    let limits = inv.limits;
    let refused = refusing(servers, "mntr");
    let mut heavy = Vec::new();
    let mut seen = Vec::new();
    let mut unreported = Vec::new();
    for s in servers.iter().filter(|s| !s.refused("mntr")) {
        let figure = |key| s.mntr(key).and_then(|v| v.parse::<f64>().ok());
        let (Some(outstanding), Some(latency)) =
            (figure("zk_outstanding_requests"), figure("zk_avg_latency"))
        else {
            unreported.push(s.node.short().to_string());
            continue;
        };
        let said = format!(
            "{} {outstanding:.0} outstanding, {latency:.1} ms average",
            s.node.short()
        );
        if outstanding > limits.zookeeper_outstanding_requests as f64
            || latency > limits.zookeeper_avg_latency_ms as f64
        {
            heavy.push(said.clone());
        }
        seen.push(said);
    }
    let broke = (!heavy.is_empty()).then(|| {
        (
            Outcome::Warn,
            format!(
                "{} (limits: {} outstanding, {} ms)",
                list(&heavy),
                limits.zookeeper_outstanding_requests,
                limits.zookeeper_avg_latency_ms
            ),
        )
    });
    Judged {
        name: NAME,
        word: "mntr",
        broke,
        refused: &refused,
        unanswered: unreported,
        unanswered_says: "report no load figures",
        passed: list(&seen),
    }
    .row()
}
