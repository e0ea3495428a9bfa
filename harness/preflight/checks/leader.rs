//! The leader row of each service: the same rule as a scenario's `expect = "leader"` with
//! `agreement = "all"` — a node that claims leadership, backed by a majority of the configured
//! membership and named by every member — judged on what preflight observed.

use super::{list, row, Check, Outcome};
use crate::probe::leader::{backed_leader, Agreement, Failed, LeaderViews, Membership};

/// What the node `leader` (a short name) answered, among those reached.
pub(super) fn answer_of<'a, T>(
    reached: &[(&crate::preflight::inventory::InventoryNode, &'a T)],
    leader: &str,
) -> Result<&'a T, String> {
    reached
        .iter()
        .find(|(n, _)| n.short() == leader)
        .map(|(_, s)| *s)
        .ok_or_else(|| format!("{leader} was not reached"))
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
    membership_of: impl Fn(&str) -> Result<Membership, String>,
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
