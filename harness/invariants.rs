//! Invariants judged on a run's recorded history, as pure functions: at most one leader per
//! etcd term and per ZooKeeper epoch. (The others — a majority-backed leader after every heal,
//! the ledger, availability — are expectations, the ledger's check and availability checks.)

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::ServiceKind;

/// One observation that a node led at a term: any etcd member's raft state naming the leader
/// of its current term, or a ZooKeeper server in leader mode at the epoch of its zxid (a
/// leader sets its zxid to the new epoch before it serves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderClaim {
    /// When it was seen, ms after the first step.
    pub at_ms: u64,
    /// The service.
    pub service: ServiceKind,
    /// The node named as leader.
    pub leader: String,
    /// The term (etcd) or epoch (ZooKeeper).
    pub term: u64,
    /// The member whose answer this was.
    pub seen_by: String,
}

/// Two or more leaders at one term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermConflict {
    /// The term.
    pub term: u64,
    /// Each leader, with the first claim that named it.
    pub leaders: Vec<LeaderClaim>,
}

/// Every term of `service` at which more than one node was named leader.
pub fn term_conflicts(service: ServiceKind, claims: &[LeaderClaim]) -> Vec<TermConflict> {
    let mut by_term: BTreeMap<u64, BTreeMap<&str, &LeaderClaim>> = BTreeMap::new();
    for c in claims.iter().filter(|c| c.service == service) {
        let leaders = by_term.entry(c.term).or_default();
        let first = leaders.entry(c.leader.as_str()).or_insert(c);
        if c.at_ms < first.at_ms {
            *first = c;
        }
    }
    by_term
        .into_iter()
        .filter(|(_, leaders)| leaders.len() > 1)
        .map(|(term, leaders)| TermConflict {
            term,
            leaders: leaders.into_values().cloned().collect(),
        })
        .collect()
}

/// Whether one round of the leader watch is evidence: only when a majority of the members
/// asked answered it or refused the connection (nothing listens: it leads nothing), so rounds
/// in which a majority is silent — a server that publishes no raft state, members a fault
/// paused or cut off — never add up to a pass.
pub fn round_counts(answered: usize, asked: usize) -> bool {
    answered > asked / 2
}

/// The evidence a term check needs: at least this many rounds of observation, with no gap
/// between two longer than `max_gap_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchEvidence {
    /// Rounds the check needs.
    pub min_rounds: usize,
    /// The longest tolerated stretch without a round, ms.
    pub max_gap_ms: u64,
}

/// The verdict of "at most one leader per term": Ok with a summary, or Err saying which term
/// had which leaders — or that the rounds were too few or too far apart to tell.
pub fn one_leader_per_term(
    service: ServiceKind,
    claims: &[LeaderClaim],
    rounds_ms: &[u64],
    run_ms: u64,
    evidence: WatchEvidence,
) -> Result<String, String> {
    let short = crate::base::names::short;
    let conflicts = term_conflicts(service, claims);
    if let Some(c) = conflicts.first() {
        let who: Vec<String> = c
            .leaders
            .iter()
            .map(|l| {
                format!(
                    "{} (said by {} at {} ms)",
                    short(&l.leader),
                    short(&l.seen_by),
                    l.at_ms
                )
            })
            .collect();
        return Err(format!(
            "{} leaders at {service} {} {}: {}",
            c.leaders.len(),
            term_word(service),
            c.term,
            who.join(", ")
        ));
    }
    let mut last = 0;
    let mut gap = 0;
    for &t in rounds_ms {
        gap = gap.max(t.saturating_sub(last));
        last = last.max(t);
    }
    gap = gap.max(run_ms.saturating_sub(last));
    let terms: std::collections::BTreeSet<u64> = claims
        .iter()
        .filter(|c| c.service == service)
        .map(|c| c.term)
        .collect();
    let summary = format!(
        "{} {}s seen, one leader each, over {} rounds of observation (longest gap {gap} ms)",
        terms.len(),
        term_word(service),
        rounds_ms.len()
    );
    if rounds_ms.len() < evidence.min_rounds || gap > evidence.max_gap_ms {
        return Err(format!(
            "too little evidence: {summary}; at least {} rounds and no gap over {} ms needed",
            evidence.min_rounds, evidence.max_gap_ms
        ));
    }
    Ok(summary)
}

/// What the service calls a term.
pub fn term_word(service: ServiceKind) -> &'static str {
    match service {
        ServiceKind::Zookeeper => "epoch",
        _ => "term",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_counts_only_when_a_majority_answered() {
        assert!(!round_counts(0, 3));
        assert!(!round_counts(1, 3));
        assert!(round_counts(2, 3));
        assert!(round_counts(3, 3));
        assert!(!round_counts(2, 4));
        assert!(round_counts(3, 4));
        assert!(!round_counts(2, 5));
        assert!(round_counts(3, 5));
        assert!(round_counts(1, 1));
        assert!(!round_counts(0, 0));
    }

    fn claim(at_ms: u64, leader: &str, term: u64) -> LeaderClaim {
        LeaderClaim {
            at_ms,
            service: ServiceKind::Etcd,
            leader: leader.to_string(),
            term,
            seen_by: "quorum-1".to_string(),
        }
    }

    const EVIDENCE: WatchEvidence = WatchEvidence {
        min_rounds: 3,
        max_gap_ms: 500,
    };

    #[test]
    fn one_leader_per_term_passes_a_clean_succession() {
        let claims = [claim(0, "a", 2), claim(200, "a", 2), claim(400, "b", 3)];
        let verdict =
            one_leader_per_term(ServiceKind::Etcd, &claims, &[0, 200, 400], 500, EVIDENCE);
        assert_eq!(
            verdict.unwrap(),
            "2 terms seen, one leader each, over 3 rounds of observation (longest gap 200 ms)"
        );
    }

    #[test]
    fn two_leaders_in_one_term_fail_naming_both() {
        let claims = [claim(0, "a", 2), claim(300, "b", 2), claim(200, "b", 2)];
        let err = one_leader_per_term(ServiceKind::Etcd, &claims, &[0, 200, 300], 400, EVIDENCE)
            .unwrap_err();
        assert_eq!(
            err,
            "2 leaders at etcd term 2: a (said by quorum-1 at 0 ms), b (said by quorum-1 at 200 ms)"
        );
    }

    #[test]
    fn a_conflict_names_each_leader_by_its_first_claim_in_the_order_seen() {
        // Two members said b leads term 2 at the same millisecond: the first answer recorded
        // is the one the message cites.
        let mut second = claim(200, "b", 2);
        second.seen_by = "quorum-3".to_string();
        let claims = [claim(0, "a", 2), claim(200, "b", 2), second];
        let err = one_leader_per_term(ServiceKind::Etcd, &claims, &[0, 200, 300], 400, EVIDENCE)
            .unwrap_err();
        assert!(err.ends_with("b (said by quorum-1 at 200 ms)"), "{err}");
    }

    #[test]
    fn zookeeper_terms_are_epochs() {
        let mut a = claim(0, "a", 2);
        a.service = ServiceKind::Zookeeper;
        let verdict =
            one_leader_per_term(ServiceKind::Zookeeper, &[a], &[0, 200, 400], 500, EVIDENCE);
        assert_eq!(
            verdict.unwrap(),
            "1 epochs seen, one leader each, over 3 rounds of observation (longest gap 200 ms)"
        );
        assert_eq!(term_word(ServiceKind::Etcd), "term");
    }

    #[test]
    fn a_gap_of_exactly_the_bound_is_enough_evidence() {
        let claims = [claim(0, "a", 2)];
        let at_bound =
            one_leader_per_term(ServiceKind::Etcd, &claims, &[0, 500, 1000], 1000, EVIDENCE);
        assert!(at_bound.is_ok(), "{at_bound:?}");
        let over = one_leader_per_term(ServiceKind::Etcd, &claims, &[0, 501, 1000], 1000, EVIDENCE);
        assert!(over.is_err());
    }

    #[test]
    fn other_services_claims_do_not_count() {
        let mut zk = claim(0, "b", 2);
        zk.service = ServiceKind::Zookeeper;
        assert!(term_conflicts(ServiceKind::Etcd, &[claim(0, "a", 2), zk]).is_empty());
    }

    #[test]
    fn too_few_or_too_sparse_rounds_are_not_a_pass() {
        let claims = [claim(0, "a", 2)];
        let few = one_leader_per_term(ServiceKind::Etcd, &claims, &[0, 100], 200, EVIDENCE);
        assert!(few.unwrap_err().starts_with("too little evidence"));
        let sparse = one_leader_per_term(ServiceKind::Etcd, &claims, &[0, 100, 900], 950, EVIDENCE);
        assert!(sparse.unwrap_err().contains("longest gap 800 ms"));
    }

    proptest::proptest! {
        #[test]
        fn a_conflict_is_found_exactly_when_a_term_has_two_leaders(
            raw in proptest::collection::vec((0u64..1000, 0usize..3, 1u64..4), 0..30)
        ) {
            let names = ["a", "b", "c"];
            let claims: Vec<LeaderClaim> =
                raw.iter().map(|(t, l, term)| claim(*t, names[*l], *term)).collect();
            let conflicts = term_conflicts(ServiceKind::Etcd, &claims);
            for term in 1..4 {
                let leaders: std::collections::BTreeSet<&str> = claims
                    .iter()
                    .filter(|c| c.term == term)
                    .map(|c| c.leader.as_str())
                    .collect();
                let found = conflicts.iter().find(|c| c.term == term);
                proptest::prop_assert_eq!(found.is_some(), leaders.len() > 1);
                if let Some(c) = found {
                    proptest::prop_assert_eq!(c.leaders.len(), leaders.len());
                }
            }
        }
    }
}
