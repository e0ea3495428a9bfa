//! The shortest renumbering the rules of the renumbering module allow, found by an A*
//! search over every server's id and the ensemble it started with.
//!
//! The step-by-step rule in `Rollout::next` refreshes every out-of-date server before any
//! leader restart, which is safe but long (15 restarts on a five-server ensemble whose ids
//! form a 4-cycle). Two freedoms make plans shorter, both within what ZooKeeper 3.8 does:
//!
//! - a follower that takes its target id may start with the *target* ensemble at once, as
//!   long as that ensemble names the current leader at its address (a joining server finds
//!   the leader by the address its own configuration gives the leader's id, and is counted by
//!   the id it connects with), so it never needs a refresh later;
//! - an election needs agreement only on the servers that can win it. Votes from and for an
//!   id outside a server's ensemble are ignored, so a server every other server's ensemble
//!   leaves out cannot win and cannot split the vote; it follows the winner like a late
//!   joiner. A server that some ensembles know and others do not *can* split the vote, and
//!   is refused. Every server that can win (known to all) must be at the address every
//!   ensemble gives it, and every ensemble must count a quorum of the servers that are up.
//!
//! A leader restart is judged against every server that can win, not only the one with the
//! highest id, because ZooKeeper prefers the most up-to-date server first. The search is
//! bounded (states and length); when it finds nothing shorter, the step-by-step rule plans.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use super::Ensemble;

/// A configuration as the search keeps it: id → server index, sorted by id.
type View = Vec<(u64, usize)>;

/// The largest ensemble searched (a debug build searches seven servers in under a second;
/// larger ones are planned step by step).
pub(super) const MAX_SERVERS: usize = 7;

/// How many states the search may visit before it gives up (a seven-server 7-cycle needs
/// fewer; a search that gives up costs about a second in a debug build).
const STATE_BUDGET: usize = 40_000;

/// One restart of a searched plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Planned {
    /// The server.
    pub host: String,
    /// The id it starts with.
    pub id: u64,
    /// The ensemble written into its configuration.
    pub ensemble: Ensemble,
    /// Whether it leads when it is restarted.
    pub leads: bool,
}

/// The problem: servers by index, their ids, the ensembles they started with, the target.
struct Problem {
    hosts: Vec<String>,
    target_ids: Vec<u64>,
    target_view: View,
    spare: u64,
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct State {
    ids: Vec<u64>,
    views: Vec<u32>,
    leader: usize,
}

/// Interned views, so states stay small and hash fast.
#[derive(Default)]
struct Views {
    all: Vec<View>,
    index: HashMap<View, u32>,
}

impl Views {
    fn intern(&mut self, view: View) -> u32 {
        if let Some(i) = self.index.get(&view) {
            return *i;
        }
        let i = u32::try_from(self.all.len()).unwrap_or(u32::MAX);
        self.index.insert(view.clone(), i);
        self.all.push(view);
        i
    }

    fn get(&self, i: u32) -> &View {
        &self.all[i as usize]
    }
}

fn host_of(view: &View, id: u64) -> Option<usize> {
    view.binary_search_by_key(&id, |(i, _)| *i)
        .ok()
        .map(|at| view[at].1)
}

fn quorum(view: &View) -> usize {
    view.len() / 2 + 1
}

/// Servers up (all but `down`) whose id `view` knows.
fn counted(view: &View, ids: &[u64], down: Option<usize>) -> usize {
    ids.iter()
        .enumerate()
        .filter(|(s, id)| Some(*s) != down && host_of(view, **id).is_some())
        .count()
}

/// Servers other than `me` (and `down`) that `view` gives the right address for their id.
/// A server hears another for sure only then: an election connection goes to the address
/// the dialling server's configuration gives, and a wrong one reaches another server, whose
/// answers are then taken for the wrong id or lost.
fn heard(view: &View, ids: &[u64], me: usize, down: Option<usize>) -> usize {
    ids.iter()
        .enumerate()
        .filter(|(s, id)| *s != me && Some(*s) != down && host_of(view, **id) == Some(*s))
        .count()
}

/// The servers that can win an election held while `down` restarts, highest id first, or
/// None when the vote can split or a winner could not gather everyone.
pub(super) fn electable(ids: &[u64], views: &[&View], down: usize) -> Option<Vec<usize>> {
    let up: Vec<usize> = (0..ids.len()).filter(|s| *s != down).collect();
    let mut candidates = Vec::new();
    for &c in &up {
        let knowers = up
            .iter()
            .filter(|s| **s != c && host_of(views[**s], ids[c]).is_some())
            .count();
        if knowers == up.len() - 1 && up.len() > 1 {
            candidates.push(c);
        } else if knowers != 0 {
            return None;
        }
    }
    for &s in &up {
        let own = usize::from(host_of(views[s], ids[s]).is_some());
        if heard(views[s], ids, s, Some(down)) + own < quorum(views[s]) {
            return None;
        }
        if candidates
            .iter()
            .any(|&c| host_of(views[s], ids[c]) != Some(c))
        {
            return None;
        }
    }
    candidates.sort_by_key(|c| std::cmp::Reverse(ids[*c]));
    (!candidates.is_empty()).then_some(candidates)
}

impl Problem {
    fn truth_view(&self, ids: &[u64]) -> View {
        let mut v: View = ids.iter().enumerate().map(|(s, id)| (*id, s)).collect();
        v.sort_unstable();
        v
    }

    /// The leader after restarting `h` as `id` with `view`, or None when that is unsafe.
    fn allowed(
        &self,
        state: &State,
        views: &Views,
        h: usize,
        id: u64,
        view: &View,
    ) -> Option<usize> {
        if host_of(view, id) != Some(h) {
            return None;
        }
        let mut ids = state.ids.clone();
        ids[h] = id;
        let leader = state.leader;
        if h != leader {
            let lv = views.get(state.views[leader]);
            let q = quorum(lv);
            if counted(lv, &state.ids, Some(h)) < q || counted(lv, &ids, None) < q {
                return None;
            }
            // It joins on the word of a quorum of servers it hears for sure.
            let joins = heard(view, &ids, h, None) >= quorum(view);
            return (joins && host_of(view, ids[leader]) == Some(leader)).then_some(leader);
        }
        let vs: Vec<&View> = state.views.iter().map(|v| views.get(*v)).collect();
        let candidates = electable(&state.ids, &vs, h)?;
        if heard(view, &ids, h, None) < quorum(view) {
            return None;
        }
        // Whoever wins must keep a voter to spare once the restarted server is back: ZooKeeper
        // may elect any of them, and a leader with a bare quorum can restart no follower it
        // counts, so the rollout could go on from it only by another election.
        for &c in &candidates {
            let cv = vs[c];
            if host_of(view, ids[c]) != Some(c) || counted(cv, &ids, None) <= quorum(cv) {
                return None;
            }
        }
        candidates.first().copied()
    }

    fn done(&self, state: &State, target: u32) -> bool {
        state.ids == self.target_ids && state.views.iter().all(|v| *v == target)
    }
}

/// The shortest plan of fewer than `shorter_than` restarts from servers with ids `truth`,
/// each started with `views[host]`, to `target`, while `leader` leads; None when there is
/// none within the search's bounds.
pub(super) fn shortest(
    truth: &Ensemble,
    views: &BTreeMap<String, Ensemble>,
    target: &Ensemble,
    leader: &str,
    spare: u64,
    shorter_than: usize,
) -> Option<Vec<Planned>> {
    let hosts: Vec<String> = truth.hosts().into_iter().map(str::to_string).collect();
    let index: BTreeMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let to_view = |e: &Ensemble| -> Option<View> {
        let mut v = e
            .members()
            .iter()
            .map(|m| index.get(m.host.as_str()).map(|s| (m.id, *s)))
            .collect::<Option<View>>()?;
        v.sort_unstable();
        Some(v)
    };
    let problem = Problem {
        target_ids: hosts
            .iter()
            .map(|h| target.id_of(h))
            .collect::<Option<_>>()?,
        target_view: to_view(target)?,
        hosts: hosts.clone(),
        spare,
    };
    let mut interned = Views::default();
    let target_index = interned.intern(problem.target_view.clone());
    let start = State {
        ids: hosts
            .iter()
            .map(|h| truth.id_of(h))
            .collect::<Option<_>>()?,
        views: hosts
            .iter()
            .map(|h| Some(interned.intern(to_view(views.get(h)?)?)))
            .collect::<Option<_>>()?,
        leader: *index.get(leader)?,
    };
    if problem.done(&start, target_index) {
        return Some(Vec::new());
    }
    // A* on restarts: every server not yet on its target id with the target ensemble needs
    // at least one more restart, so that count never overestimates what is left.
    let remaining = |st: &State| {
        (0..problem.hosts.len())
            .filter(|s| st.ids[*s] != problem.target_ids[*s] || st.views[*s] != target_index)
            .count()
    };
    // Each state remembers the one it came from and the restart that led to it.
    let mut came_from: HashMap<State, (State, usize, u64, u32)> = HashMap::new();
    let mut depth: HashMap<State, usize> = HashMap::from([(start.clone(), 0)]);
    let mut queue = BinaryHeap::from([Reverse((
        remaining(&start),
        Reverse(0usize),
        0usize,
        start.clone(),
    ))]);
    let mut order = 0usize;
    while let Some(Reverse((_, Reverse(d), _, state))) = queue.pop() {
        if depth.get(&state).is_some_and(|best| *best < d) {
            continue;
        }
        if problem.done(&state, target_index) {
            return unwind(&problem, &interned, &came_from, state, &start);
        }
        if depth.len() > STATE_BUDGET {
            return None;
        }
        for h in 0..problem.hosts.len() {
            let mut id_choices = vec![state.ids[h], problem.target_ids[h], problem.spare];
            id_choices.dedup();
            for id in id_choices {
                if state
                    .ids
                    .iter()
                    .enumerate()
                    .any(|(s, i)| s != h && *i == id)
                {
                    continue;
                }
                let mut ids = state.ids.clone();
                ids[h] = id;
                for view in [problem.truth_view(&ids), problem.target_view.clone()] {
                    let Some(next_leader) = problem.allowed(&state, &interned, h, id, &view) else {
                        continue;
                    };
                    let v = interned.intern(view);
                    if id == state.ids[h] && v == state.views[h] && h != state.leader {
                        continue;
                    }
                    let mut views = state.views.clone();
                    views[h] = v;
                    let next = State {
                        ids: ids.clone(),
                        views,
                        leader: next_leader,
                    };
                    let f = d + 1 + remaining(&next);
                    if f >= shorter_than || depth.get(&next).is_some_and(|best| *best <= d + 1) {
                        continue;
                    }
                    depth.insert(next.clone(), d + 1);
                    came_from.insert(next.clone(), (state.clone(), h, id, v));
                    order += 1;
                    // Among equal estimates the deeper state first: it is nearer an end.
                    queue.push(Reverse((f, Reverse(d + 1), order, next)));
                }
            }
        }
    }
    None
}

fn unwind(
    problem: &Problem,
    views: &Views,
    came_from: &HashMap<State, (State, usize, u64, u32)>,
    mut at: State,
    start: &State,
) -> Option<Vec<Planned>> {
    let mut plan = Vec::new();
    while at != *start {
        let (prev, h, id, v) = came_from.get(&at)?;
        let members = views
            .get(*v)
            .iter()
            .map(|(i, s)| (*i, problem.hosts[*s].clone()));
        plan.push(Planned {
            host: problem.hosts[*h].clone(),
            id: *id,
            // Every view the search makes has distinct ids on distinct servers.
            ensemble: Ensemble::new(members).ok()?,
            leads: prev.leader == *h,
        });
        at = prev.clone();
    }
    plan.reverse();
    Some(plan)
}
