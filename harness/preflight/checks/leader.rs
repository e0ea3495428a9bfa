//! The leader row of each service: the same rule as a scenario's `expect = "leader"` with
//! `agreement = "all"` — a node that claims leadership, backed by a majority of the configured
//! membership and named by every member — judged on what preflight observed.

use super::{list, row, Check, Outcome};
use crate::probe::leader::{
    backed_leader, Agreement, Failed, LeaderViews, Membership, MembershipUnread,
};

/// What the node `leader` (a short name) answered, among those reached.
pub(super) fn answer_of<'a, T>(
    reached: &[(&crate::preflight::inventory::InventoryNode, &'a T)],
    leader: &str,
) -> Result<&'a T, MembershipUnread> {
    reached
        .iter()
        .find(|(n, _)| n.short() == leader)
        .map(|(_, s)| *s)
        .ok_or_else(|| MembershipUnread::NotReached {
            leader: leader.to_string(),
        })
}

/// The row for `service`'s leader. `views` has a view for every node of the inventory that
/// runs it (an unreachable one as such); `membership_of(leader)` reads the membership from what
/// the leader itself reported. Before an upgrade every member must name the leader; when some
/// could not be reached, what those reached show is judged by the majority rule and the row
/// says what could not be checked.
pub(super) fn row_for(
    service: &str,
    check: &str,
    views: &LeaderViews,
    unreachable: &[String],
    membership_of: impl Fn(&str) -> Result<Membership, MembershipUnread>,
) -> Check {
    match backed_leader(views, Agreement::All, &membership_of) {
        Ok(b) => return row(service, check, Outcome::Pass, b.describe()),
        Err(e) if unreachable.is_empty() => {
            return row(service, check, Outcome::Fail, e.to_string())
        }
        Err(_) => {}
    }
    let cant_reach = format!("cannot reach {}", list(unreachable));
    match backed_leader(views, Agreement::Majority, &membership_of) {
        Ok(b) => row(
            service,
            check,
            Outcome::Unreachable,
            format!("{} among those reached; {cant_reach}", b.describe()),
        ),
        // What the reached members say already disproves a leader.
        Err(e)
            if matches!(
                e.failed,
                Failed::TwoLeaders
                    | Failed::Disagree
                    | Failed::LeaderDoesNotClaim
                    | Failed::LeaderNotAVoter
            ) =>
        {
            row(service, check, Outcome::Fail, e.to_string())
        }
        Err(e) => row(
            service,
            check,
            Outcome::Unreachable,
            format!("{}; {cant_reach}", e.reason),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::leader::MemberView;

    fn trio() -> Result<Membership, MembershipUnread> {
        Ok(Membership {
            voters: ["a", "b", "c"].iter().map(|s| s.to_string()).collect(),
            source: "the trio".into(),
            synced_followers: None,
        })
    }

    fn views(list: &[(&str, MemberView)]) -> LeaderViews {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    fn silent() -> MemberView {
        MemberView::Unreachable {
            why: "no answer".into(),
        }
    }

    fn outcome_of(views: &LeaderViews, unreachable: &[&str]) -> Check {
        let unreachable: Vec<String> = unreachable.iter().map(|s| s.to_string()).collect();
        row_for("etcd", "one leader", views, &unreachable, |_| trio())
    }

    #[test]
    fn every_member_naming_the_leader_passes() {
        let v = views(&[
            ("a", MemberView::leader_at("a", 2)),
            ("b", MemberView::leader_at("a", 2)),
            ("c", MemberView::leader_at("a", 2)),
        ]);
        assert_eq!(outcome_of(&v, &[]).outcome, Outcome::Pass);
    }

    #[test]
    fn a_majority_among_those_reached_is_not_a_pass_while_a_member_cannot_be_reached() {
        let v = views(&[
            ("a", MemberView::leader_at("a", 2)),
            ("b", MemberView::leader_at("a", 2)),
            ("c", silent()),
        ]);
        let row = outcome_of(&v, &["c"]);
        assert_eq!(row.outcome, Outcome::Unreachable, "{}", row.evidence);
        assert!(
            row.evidence
                .ends_with("among those reached; cannot reach c"),
            "{}",
            row.evidence
        );
        // Everyone reached, one not naming the leader: that is a failure, not a gap.
        let v = views(&[
            ("a", MemberView::leader_at("a", 2)),
            ("b", MemberView::leader_at("a", 2)),
            ("c", MemberView::NoLeader { why: "none".into() }),
        ]);
        assert_eq!(outcome_of(&v, &[]).outcome, Outcome::Fail);
    }

    #[test]
    fn two_leaders_among_those_reached_fail_even_with_a_member_unreached() {
        let v = views(&[
            ("a", MemberView::leader_at("a", 2)),
            ("b", MemberView::leader_at("b", 2)),
            ("c", silent()),
        ]);
        let row = outcome_of(&v, &["c"]);
        assert_eq!(row.outcome, Outcome::Fail, "{}", row.evidence);
    }

    #[test]
    fn too_few_backers_among_those_reached_is_unknown_while_a_member_cannot_be_reached() {
        // The unreached member might back the leader: neither a pass nor a failure.
        let v = views(&[
            ("a", MemberView::leader_at("a", 2)),
            ("b", MemberView::NoLeader { why: "none".into() }),
            ("c", silent()),
        ]);
        let row = outcome_of(&v, &["c"]);
        assert_eq!(row.outcome, Outcome::Unreachable, "{}", row.evidence);
        assert!(
            row.evidence.ends_with("; cannot reach c"),
            "{}",
            row.evidence
        );
    }
}
