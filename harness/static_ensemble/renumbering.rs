//! Renumbering a running ensemble to the upgrade's ids without ever letting two live servers
//! claim one id, one server down at a time.
//!
//! Two things are planned here. [`renumbering_moves`] orders the id changes: a server moves
//! straight to its target id once nobody holds it; when every remaining server waits for
//! another's id (a cycle), one is parked on a spare id first. [`Rollout`] turns those moves
//! into restarts of a live ZooKeeper 3.8 ensemble, which reads its static ensemble only at
//! start: every other server keeps the ensemble it started with. What was learnt from running
//! 3.8 (see the README):
//!
//! - a server restarted with a new id joins a leader whose ensemble is out of date, as long
//!   as no live server still holds that id: votes and acks are counted by id, and election
//!   connections go to the address the connecting server announces;
//! - the leader counts as voters only the ids of the ensemble *it* started with, so each
//!   server moved to an id outside it costs the leader a voter;
//! - an election among servers whose ensembles differ can deadlock (one side votes for an id
//!   the other does not know).
//!
//! So a leader is restarted only once every other server runs the current ensemble (the
//! stale ones are restarted first, with the same id: a *refresh*), followers are moved while
//! the leader keeps a voter to spare, and the rollout ends by refreshing every server whose
//! ensemble is not the target, the leader last.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde::Serialize;

use super::conflicts::same_hosts;
use super::search;
use super::{Ensemble, EnsembleError, MAX_ID};

/// One server's change of id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    /// The server.
    pub host: String,
    /// The id it gives up.
    pub from: u64,
    /// The id it takes.
    pub to: u64,
}

impl fmt::Display for Move {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.host, self.from, self.to)
    }
}

/// The id changes that take `current` to `target`, in an order where no server ever takes an
/// id another still holds.
pub fn renumbering_moves(
    current: &Ensemble,
    target: &Ensemble,
) -> Result<Vec<Move>, EnsembleError> {
    same_hosts(current, target)?;
    let goal = target.ids();
    let mut ids = current.ids();
    let mut moves = Vec::new();
    loop {
        let held: BTreeSet<u64> = ids.values().copied().collect();
        let pending: Vec<(String, u64, u64)> = ids
            .iter()
            .filter_map(|(h, id)| {
                let want = *goal.get(h)?;
                (want != *id).then(|| (h.clone(), *id, want))
            })
            .collect();
        let Some(first) = pending.first().cloned() else {
            break;
        };
        let step = match pending.iter().find(|(_, _, want)| !held.contains(want)) {
            Some((host, from, to)) => Move {
                host: host.clone(),
                from: *from,
                to: *to,
            },
            // Every remaining server waits for an id another holds: park one on a spare id.
            None => Move {
                host: first.0,
                from: first.1,
                to: spare_id(&held, &goal)?,
            },
        };
        ids.insert(step.host.clone(), step.to);
        moves.push(step);
    }
    Ok(moves)
}

/// An id nobody holds and the target does not use: above every id in sight, like an operator
/// would pick, or the lowest free one when that would pass the limit.
fn spare_id(held: &BTreeSet<u64>, goal: &BTreeMap<String, u64>) -> Result<u64, EnsembleError> {
    let used: BTreeSet<u64> = held.iter().chain(goal.values()).copied().collect();
    let above = used.iter().next_back().copied().unwrap_or(0) + 1;
    if above <= MAX_ID {
        return Ok(above);
    }
    (1..=MAX_ID)
        .find(|id| !used.contains(id))
        .ok_or(EnsembleError::NoSpareId)
}

/// How many restarts a step-by-step plan takes, when it converges with no hazard: a searched
/// plan must be shorter than that, and may be longer than a plan that is not safe.
fn safe_length(plan: &Result<Vec<Restart>, EnsembleError>) -> Option<usize> {
    plan.as_ref()
        .ok()
        .filter(|p| p.iter().all(|r| r.hazard.is_none()))
        .map(Vec::len)
}

/// Why a server restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// It takes a new id.
    Renumber,
    /// Same id; it reloads the current ensemble (its own is out of date).
    Refresh,
}

/// One restart of the rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restart {
    /// The server.
    pub host: String,
    /// Its id before.
    pub previous_id: u64,
    /// Its id after.
    pub id: u64,
    /// The ensemble written into its configuration.
    pub ensemble: Ensemble,
    /// Why it restarts.
    pub reason: Reason,
    /// Whether it leads when it is restarted.
    pub leader: bool,
    /// What may go wrong if it is done now (only for ensembles too small to spare a server).
    pub hazard: Option<String>,
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = if self.leader {
            format!("{} (leader)", self.host)
        } else {
            self.host.clone()
        };
        match self.reason {
            Reason::Renumber => write!(
                f,
                "restart {who} as id {} (was {})",
                self.id, self.previous_id
            )?,
            Reason::Refresh => write!(
                f,
                "restart {who} as id {} to load the current ensemble",
                self.id
            )?,
        }
        if let Some(h) = &self.hazard {
            write!(f, " — hazard: {h}")?;
        }
        Ok(())
    }
}

/// A renumbering in progress: each server's id and the ensemble it started with, and the id
/// changes still to make. Ask [`Rollout::next`] what to restart, restart it, wait until the
/// ensemble is healthy, then [`Rollout::apply`] it.
#[derive(Debug, Clone)]
pub struct Rollout {
    target: Ensemble,
    truth: Ensemble,
    views: BTreeMap<String, Ensemble>,
    moves: VecDeque<Move>,
}

impl Rollout {
    /// A rollout from servers running `running`, each started with the ensemble in `views`.
    pub fn new(
        running: &Ensemble,
        views: BTreeMap<String, Ensemble>,
        target: &Ensemble,
    ) -> Result<Self, EnsembleError> {
        let moves = renumbering_moves(running, target)?;
        let hosts: BTreeSet<&str> = running.hosts().into_iter().collect();
        let viewed: BTreeSet<&str> = views.keys().map(String::as_str).collect();
        if hosts != viewed {
            return Err(EnsembleError::DifferentHosts {
                detail: "the started ensembles do not name every running server".to_string(),
            });
        }
        Ok(Self {
            target: target.clone(),
            truth: running.clone(),
            views,
            moves: moves.into(),
        })
    }

    /// A rollout from servers that all started with the ensemble they run.
    pub fn uniform(running: &Ensemble, target: &Ensemble) -> Result<Self, EnsembleError> {
        let views = running
            .hosts()
            .into_iter()
            .map(|h| (h.to_string(), running.clone()))
            .collect();
        Self::new(running, views, target)
    }

    /// Every server's id now.
    pub fn truth(&self) -> &Ensemble {
        &self.truth
    }

    /// The id changes still to make.
    pub fn pending_moves(&self) -> Vec<Move> {
        self.moves.iter().cloned().collect()
    }

    /// The ensemble a server started with.
    pub fn view(&self, host: &str) -> Option<&Ensemble> {
        self.views.get(host)
    }

    /// Whether every server runs its target id with the target ensemble.
    pub fn is_done(&self) -> bool {
        self.moves.is_empty()
            && self.truth == self.target
            && self.views.values().all(|v| *v == self.target)
    }

    fn stale(&self, host: &str) -> bool {
        self.views.get(host) != Some(&self.truth)
    }

    /// What to restart next, given the server that leads now (None when unknown: then any
    /// server may lead, and every restart is treated as a leader's): the first restart of the
    /// shortest plan the search finds, or else of the step-by-step rule's.
    pub fn next(&self, leader: Option<&str>) -> Option<Restart> {
        let searched = leader.and_then(|l| {
            let bound = safe_length(&self.preview_step_by_step(Some(l)));
            self.searched(l, bound)
        });
        match searched {
            Some(plan) => plan.into_iter().next(),
            None => self.next_step_by_step(leader),
        }
    }

    /// The searched plan from here while `leader` leads, when it is shorter than the
    /// step-by-step rule's `step_by_step` restarts (None: that rule has no safe plan from
    /// here, and a plan of up to a few restarts per server is searched for).
    fn searched(&self, leader: &str, step_by_step: Option<usize>) -> Option<Vec<Restart>> {
        if self.truth.len() > search::MAX_SERVERS {
            return None;
        }
        let bound = step_by_step.unwrap_or(4 * self.truth.len() + 4);
        let held: BTreeSet<u64> = self.truth.ids().values().copied().collect();
        let spare = spare_id(&held, &self.target.ids()).ok()?;
        let plan = search::shortest(&self.truth, &self.views, &self.target, leader, spare, bound)?;
        let mut ids = self.truth.ids();
        let restarts = plan
            .into_iter()
            .map(|p| {
                let previous_id = ids.insert(p.host.clone(), p.id).unwrap_or(p.id);
                Restart {
                    reason: if previous_id == p.id {
                        Reason::Refresh
                    } else {
                        Reason::Renumber
                    },
                    host: p.host,
                    previous_id,
                    id: p.id,
                    ensemble: p.ensemble,
                    leader: p.leads,
                    hazard: None,
                }
            })
            .collect();
        Some(restarts)
    }

    /// What the step-by-step rule restarts next: every out-of-date server is refreshed before
    /// a leader restarts, and ids move in [`renumbering_moves`]'s order.
    fn next_step_by_step(&self, leader: Option<&str>) -> Option<Restart> {
        let hosts = self.truth.hosts();
        let stale_followers: Vec<&str> = hosts
            .iter()
            .copied()
            .filter(|h| Some(*h) != leader && self.stale(h))
            .collect();
        let Some(step) = self.moves.front() else {
            // Done moving: everyone loads the target, the leader last.
            if let Some(h) = stale_followers.first() {
                return Some(self.refresh(h, leader));
            }
            return leader
                .filter(|l| self.stale(l))
                .map(|l| self.refresh(l, leader));
        };
        match leader {
            Some(l) if l != step.host => {
                if self.keeps_margin(l, step) {
                    return Some(self.renumber(step, leader));
                }
                // The leader would run short of voters: give it the current ensemble first.
                if let Some(h) = stale_followers.first() {
                    return Some(self.refresh(h, leader));
                }
                if self.stale(l) {
                    return Some(self.refresh(l, leader));
                }
                Some(self.renumber(step, leader))
            }
            // The mover leads (or may): everyone else loads the current ensemble first, so the
            // election its restart causes is held among servers that agree on who is who.
            _ => match stale_followers.first() {
                Some(h) => Some(self.refresh(h, leader)),
                None => Some(self.renumber(step, leader)),
            },
        }
    }

    /// Records a restart as done.
    pub fn apply(&mut self, restart: &Restart) -> Result<(), EnsembleError> {
        let truth =
            self.truth
                .with_id(&restart.host, restart.id)
                .map_err(|_| EnsembleError::BadOrder {
                    detail: format!(
                        "{} cannot take id {}: another server holds it",
                        restart.host, restart.id
                    ),
                })?;
        if restart.reason == Reason::Renumber {
            match self.moves.front() {
                Some(m) if m.host == restart.host && m.to == restart.id => {
                    self.moves.pop_front();
                }
                // A searched plan moves in its own order: what is left is planned afresh.
                _ => self.moves = renumbering_moves(&truth, &self.target)?.into(),
            }
        }
        self.truth = truth;
        self.views
            .insert(restart.host.clone(), restart.ensemble.clone());
        Ok(())
    }

    /// The whole rollout as it would go if `leader` leads now and, whenever the leader is
    /// restarted, the server with the highest id wins the election (what ZooKeeper does when
    /// every server is equally up to date).
    pub fn preview(&self, leader: Option<&str>) -> Result<Vec<Restart>, EnsembleError> {
        let step_by_step = self.preview_step_by_step(leader);
        let bound = safe_length(&step_by_step);
        match leader.and_then(|l| self.searched(l, bound)) {
            Some(plan) => Ok(plan),
            None => step_by_step,
        }
    }

    /// [`Rollout::preview`] by the step-by-step rule alone (what every plan is measured
    /// against: a searched plan is used only when it is shorter).
    pub fn preview_step_by_step(
        &self,
        leader: Option<&str>,
    ) -> Result<Vec<Restart>, EnsembleError> {
        let mut sim = self.clone();
        let mut leader = leader.map(str::to_string);
        let mut out = Vec::new();
        // A plan that does not converge comes back to a state it was in: stop there rather
        // than loop.
        let mut seen = BTreeSet::new();
        while let Some(r) = sim.next_step_by_step(leader.as_deref()) {
            if !seen.insert(sim.state_key(leader.as_deref())) {
                return Err(EnsembleError::BadOrder {
                    detail: "the rollout does not converge".to_string(),
                });
            }
            sim.apply(&r)?;
            if leader.as_deref().is_none_or(|l| l == r.host) {
                leader = sim
                    .truth
                    .members()
                    .iter()
                    .filter(|m| m.host != r.host)
                    .max_by_key(|m| m.id)
                    .map(|m| m.host.clone())
                    .or(Some(r.host.clone()));
            }
            out.push(r);
        }
        Ok(out)
    }

    /// Everything [`Rollout::next`] decides on, as one comparable value.
    fn state_key(&self, leader: Option<&str>) -> String {
        let views: Vec<String> = self
            .views
            .iter()
            .map(|(host, view)| format!("{host}={view}"))
            .collect();
        format!(
            "{}|{}|{}|{leader:?}",
            self.truth,
            views.join(";"),
            self.moves.len()
        )
    }

    /// Voters the leader counts: servers whose id is in the ensemble it started with.
    fn voters(&self, leader: &str, ids: &BTreeMap<String, u64>) -> (usize, usize) {
        let Some(view) = self.views.get(leader) else {
            return (0, 1);
        };
        let known: BTreeSet<u64> = view.members().iter().map(|m| m.id).collect();
        let count = ids.values().filter(|id| known.contains(id)).count();
        (count, view.len() / 2 + 1)
    }

    /// Whether the leader keeps a quorum while the mover is down and one voter to spare after.
    /// Only the second needs computing: the voters after the move are at most those while the
    /// mover is down plus the mover itself, so one to spare after means a quorum during.
    fn keeps_margin(&self, leader: &str, step: &Move) -> bool {
        let mut ids = self.truth.ids();
        ids.insert(step.host.clone(), step.to);
        let (after, quorum) = self.voters(leader, &ids);
        after > quorum
    }

    fn renumber(&self, step: &Move, leader: Option<&str>) -> Restart {
        let ensemble = self
            .truth
            .with_id(&step.host, step.to)
            .unwrap_or_else(|_| self.truth.clone());
        self.restart(
            &step.host,
            step.from,
            step.to,
            ensemble,
            Reason::Renumber,
            leader,
        )
    }

    fn refresh(&self, host: &str, leader: Option<&str>) -> Restart {
        let id = self.truth.id_of(host).unwrap_or(0);
        self.restart(host, id, id, self.truth.clone(), Reason::Refresh, leader)
    }

    fn restart(
        &self,
        host: &str,
        previous_id: u64,
        id: u64,
        ensemble: Ensemble,
        reason: Reason,
        leader: Option<&str>,
    ) -> Restart {
        let leads = leader.is_none_or(|l| l == host);
        let hazard = if leads {
            self.election_hazard(host)
        } else {
            leader.and_then(|l| self.quorum_hazard(l, host, previous_id, id))
        };
        Restart {
            host: host.to_string(),
            previous_id,
            id,
            ensemble,
            reason,
            leader: leader == Some(host),
            hazard,
        }
    }

    /// What stops the others from electing a leader while `host` restarts.
    fn election_hazard(&self, host: &str) -> Option<String> {
        let others: Vec<&str> = self
            .truth
            .hosts()
            .into_iter()
            .filter(|h| *h != host)
            .collect();
        let quorum = self.truth.len() / 2 + 1;
        if others.len() < quorum {
            return Some(format!(
                "while {host} restarts the other {} cannot elect a leader ({quorum} needed)",
                others.len()
            ));
        }
        let stale: Vec<&str> = others.into_iter().filter(|h| self.stale(h)).collect();
        (!stale.is_empty()).then(|| {
            format!(
                "an election now would be held among servers with out-of-date ensembles ({})",
                stale.join(", ")
            )
        })
    }

    /// What costs the leader its quorum while `host` restarts or after it took `id`.
    fn quorum_hazard(&self, leader: &str, host: &str, previous_id: u64, id: u64) -> Option<String> {
        let mut ids = self.truth.ids();
        let (now, quorum) = self.voters(leader, &ids);
        let known = self
            .views
            .get(leader)
            .is_some_and(|v| v.host_of(previous_id).is_some());
        let during = now - usize::from(known);
        if during < quorum {
            return Some(format!(
                "while {host} restarts, the leader {leader} counts {during} of the {quorum} voters it needs"
            ));
        }
        ids.insert(host.to_string(), id);
        let (after, _) = self.voters(leader, &ids);
        (after < quorum).then(|| {
            format!("with {host} as id {id}, the leader {leader} counts {after} of the {quorum} voters it needs")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ensemble(pairs: &[(u64, &str)]) -> Ensemble {
        Ensemble::new(pairs.iter().map(|(id, host)| (*id, host.to_string()))).unwrap()
    }

    #[test]
    fn a_spare_id_is_above_every_id_in_sight_or_else_the_lowest_free_one() {
        let goal = BTreeMap::from([("a".to_string(), 3), ("b".to_string(), 1)]);
        assert_eq!(spare_id(&BTreeSet::from([1, 2, 5]), &goal).unwrap(), 6);
        assert_eq!(spare_id(&BTreeSet::from([1, 2, MAX_ID]), &goal).unwrap(), 4);
        let full: BTreeSet<u64> = (1..=MAX_ID).collect();
        assert!(matches!(
            spare_id(&full, &goal),
            Err(EnsembleError::NoSpareId)
        ));
    }

    #[test]
    fn a_rollout_is_done_only_with_no_move_left_and_every_server_on_the_target() {
        let running = ensemble(&[(1, "a"), (2, "b"), (3, "c")]);
        let target = ensemble(&[(2, "a"), (3, "b"), (1, "c")]);
        let rollout = Rollout::uniform(&running, &target).unwrap();
        let moves = renumbering_moves(&running, &target).unwrap();
        assert_eq!(moves.len(), 4, "a cycle of three parks one server");
        assert_eq!(rollout.pending_moves(), moves);
        assert!(!rollout.is_done());

        // Every id in place, but one server still runs the old ensemble: not done.
        let mut views: BTreeMap<String, Ensemble> = ["a", "b", "c"]
            .iter()
            .map(|h| (h.to_string(), target.clone()))
            .collect();
        views.insert("b".to_string(), running.clone());
        let stale = Rollout::new(&target, views.clone(), &target).unwrap();
        assert!(stale.pending_moves().is_empty());
        assert!(!stale.is_done());
        let restarts = stale.preview(Some("a")).unwrap();
        assert_eq!(restarts.len(), 1);
        assert_eq!(
            (restarts[0].host.as_str(), restarts[0].reason),
            ("b", Reason::Refresh)
        );

        views.insert("b".to_string(), target.clone());
        assert!(Rollout::new(&target, views, &target).unwrap().is_done());
        assert!(Rollout::uniform(&target, &target).unwrap().is_done());
    }
}
