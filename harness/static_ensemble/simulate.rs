//! An independent check of renumbering plans (tests only): it replays a plan restart by
//! restart on a model of every server's id and configuration, and counts voters and quorums
//! itself. It shares no code with the planner, so a rule the planner gets wrong is not
//! repeated here. What ZooKeeper 3.8 does that it models:
//!
//! - a leader counts as voters the servers up whose id its own configuration lists, and needs
//!   more than half of that list;
//! - a restarted follower finds the leader at the address its configuration gives the
//!   leader's id, and joins only on the word of a quorum of servers it hears for sure: those
//!   its configuration lists at their own address (a wrong address reaches another server);
//! - in an election a server ignores votes from, and for, ids its configuration does not
//!   list; a server listed by some configurations and not others can split the vote, one
//!   listed by none is ignored and follows the winner.

use std::collections::BTreeMap;

use super::{Ensemble, Restart};

/// Every server's id and configuration, and who leads.
pub(super) struct Simulation {
    ids: BTreeMap<String, u64>,
    configs: BTreeMap<String, BTreeMap<u64, String>>,
    leader: String,
}

fn listing(e: &Ensemble) -> BTreeMap<u64, String> {
    e.members().iter().map(|m| (m.id, m.host.clone())).collect()
}

/// Servers other than `me` and `down` whose id `config` lists at their own address: the ones
/// it is sure to hear (a wrong address reaches another server).
fn sure_of(
    config: &BTreeMap<u64, String>,
    ids: &BTreeMap<String, u64>,
    me: &str,
    down: Option<&str>,
) -> usize {
    ids.iter()
        .filter(|(h, _)| h.as_str() != me && Some(h.as_str()) != down)
        .filter(|(h, id)| config.get(id) == Some(*h))
        .count()
}

fn majority(config: &BTreeMap<u64, String>) -> usize {
    config.len() / 2 + 1
}

impl Simulation {
    /// Servers running `running`, each configured with it, `leader` leading.
    pub(super) fn start(running: &Ensemble, leader: &str) -> Self {
        let ids: BTreeMap<String, u64> = running
            .members()
            .iter()
            .map(|m| (m.host.clone(), m.id))
            .collect();
        let configs = ids.keys().map(|h| (h.clone(), listing(running))).collect();
        Self {
            ids,
            configs,
            leader: leader.to_string(),
        }
    }

    /// Voters `counter`'s configuration sees among the servers up, ids as given.
    fn voters(&self, counter: &str, ids: &BTreeMap<String, u64>, down: Option<&str>) -> usize {
        let config = &self.configs[counter];
        ids.iter()
            .filter(|(h, _)| Some(h.as_str()) != down)
            .filter(|(_, id)| config.contains_key(id))
            .count()
    }

    /// One restart, applied whatever it costs (a plan for too few servers may carry a
    /// hazard); an error says what would go wrong.
    pub(super) fn restart(&mut self, r: &Restart) -> Result<(), String> {
        let verdict = self.judge(r);
        let config = listing(&r.ensemble);
        if r.host == self.leader {
            let mut others: Vec<(&String, &u64)> =
                self.ids.iter().filter(|(h, _)| **h != r.host).collect();
            others.sort_by_key(|(_, id)| std::cmp::Reverse(**id));
            self.leader = match &verdict {
                Ok(Some(winner)) => winner.clone(),
                _ => others.first().map_or(r.host.clone(), |(h, _)| (*h).clone()),
            };
        }
        self.ids.insert(r.host.clone(), r.id);
        self.configs.insert(r.host.clone(), config);
        verdict.map(|_| ())
    }

    /// What goes wrong with `r` now, if anything, and who wins when it restarts the leader.
    fn judge(&self, r: &Restart) -> Result<Option<String>, String> {
        if let Some((other, _)) = self
            .ids
            .iter()
            .find(|(h, id)| **h != r.host && **id == r.id)
        {
            return Err(format!(
                "{} takes id {} while {other} holds it",
                r.host, r.id
            ));
        }
        let config = listing(&r.ensemble);
        if config.get(&r.id) != Some(&r.host) {
            return Err(format!(
                "{} starts as {} with a configuration that lists it otherwise",
                r.host, r.id
            ));
        }
        if r.leader != (r.host == self.leader) {
            return Err(format!(
                "{} is said to lead or not wrongly ({} leads)",
                r.host, self.leader
            ));
        }
        let mut after = self.ids.clone();
        after.insert(r.host.clone(), r.id);
        if r.host == self.leader {
            return self.elect(&r.host, &after, &config).map(Some);
        }
        let need = majority(&self.configs[&self.leader]);
        let during = self.voters(&self.leader, &self.ids, Some(&r.host));
        let then = self.voters(&self.leader, &after, None);
        if during < need || then < need {
            return Err(format!(
                "the leader {} counts {during} voters while {} restarts and {then} after, of {need} needed",
                self.leader, r.host
            ));
        }
        if sure_of(&config, &after, &r.host, None) < majority(&config) {
            return Err(format!(
                "{} hears too few servers at the addresses it is given to join",
                r.host
            ));
        }
        let leader_id = self.ids[&self.leader];
        if config.get(&leader_id) != Some(&self.leader) {
            return Err(format!(
                "{} cannot find the leader {} as id {leader_id}",
                r.host, self.leader
            ));
        }
        Ok(None)
    }

    /// The election held while `down` restarts, judged against every server that could win;
    /// the one with the highest id is taken to win.
    fn elect(
        &self,
        down: &str,
        after: &BTreeMap<String, u64>,
        returning: &BTreeMap<u64, String>,
    ) -> Result<String, String> {
        let up: Vec<&String> = self.ids.keys().filter(|h| *h != down).collect();
        let mut winners: Vec<(&String, u64)> = Vec::new();
        for c in &up {
            let id = self.ids[*c];
            let listed_by = up
                .iter()
                .filter(|s| *s != c && self.configs[**s].contains_key(&id))
                .count();
            if listed_by + 1 == up.len() {
                winners.push((c, id));
            } else if listed_by > 0 {
                return Err(format!(
                    "{c} (id {id}) is listed by some configurations only: the vote can split"
                ));
            }
        }
        for s in &up {
            let config = &self.configs[*s];
            let need = majority(config);
            let own = usize::from(config.contains_key(&self.ids[*s]));
            let seen = sure_of(config, &self.ids, s, Some(down)) + own;
            if seen < need {
                return Err(format!(
                    "{s} sees {seen} voters of {need} while {down} restarts"
                ));
            }
            for (w, id) in &winners {
                if self.configs[*s].get(id) != Some(*w) {
                    return Err(format!("{s} would not find {w} as id {id}"));
                }
            }
        }
        if sure_of(returning, after, down, None) < majority(returning) {
            return Err(format!(
                "{down} hears too few servers at the addresses it is given to rejoin"
            ));
        }
        for (w, id) in &winners {
            if returning.get(id) != Some(*w) {
                return Err(format!(
                    "{down} would not find {w} as id {id} when it returns"
                ));
            }
            let need = majority(&self.configs[*w]);
            if self.voters(w, after, None) < need {
                return Err(format!(
                    "{w} would lead without a quorum once {down} returns"
                ));
            }
        }
        winners
            .iter()
            .max_by_key(|(_, id)| *id)
            .map(|(w, _)| (*w).clone())
            .ok_or_else(|| format!("no server can win the election while {down} restarts"))
    }

    /// Whether every server runs `target`'s id with `target` as its configuration.
    pub(super) fn reached(&self, target: &Ensemble) -> bool {
        let want = listing(target);
        self.configs.values().all(|c| *c == want)
            && self.ids.iter().all(|(h, id)| want.get(id) == Some(h))
    }
}
