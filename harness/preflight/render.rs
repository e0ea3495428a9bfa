//! A preflight for people (a table, then the ZooKeeper renumbering when one is needed) and for
//! pipelines (JSON).

use std::fmt::Write as _;

use super::checks::{IdReport, Outcome, Preflight};
use super::{exit_of, verdict_of};
use crate::base::table::columns;
use crate::static_ensemble::Reason;

fn label(report: &IdReport, host: &str) -> String {
    match report.labels.get(host) {
        Some(l) => format!("{l} ({host})"),
        None => host.to_string(),
    }
}

fn short(report: &IdReport, host: &str) -> String {
    report
        .labels
        .get(host)
        .cloned()
        .unwrap_or_else(|| host.to_string())
}

/// The table of checks, a verdict line, and what to do about the ZooKeeper ids.
pub fn render_table(p: &Preflight) -> String {
    let rows: Vec<Vec<String>> = p
        .checks
        .iter()
        .map(|c| {
            vec![
                c.service.clone(),
                c.check.clone(),
                c.outcome.word().to_string(),
                c.evidence.clone(),
            ]
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "preflight of {}{} (read-only)\n",
        p.cell
            .as_deref()
            .map(|c| format!("{c} from "))
            .unwrap_or_default(),
        p.inventory
    );
    out.push_str(&columns(&["SERVICE", "CHECK", "RESULT", "EVIDENCE"], &rows));
    let count = |o: Outcome| p.checks.iter().filter(|c| c.outcome == o).count();
    let exit = exit_of(p);
    let _ = writeln!(
        out,
        "\n{} checks: {} pass, {} warn, {} fail, {} unknown, {} unreachable, {} skipped — exit {}{}",
        p.checks.len(),
        count(Outcome::Pass),
        count(Outcome::Warn),
        count(Outcome::Fail),
        count(Outcome::Unknown),
        count(Outcome::Unreachable),
        count(Outcome::Skip),
        exit.code(),
        if exit == crate::exit::Exit::Warnings {
            " (warnings: --allow-warnings accepts them)"
        } else {
            ""
        }
    );
    for u in &p.unreachable {
        let _ = writeln!(out, "  cannot reach {u}");
    }
    if let Some(ids) = &p.zookeeper_ids {
        out.push('\n');
        out.push_str(&render_ids(ids));
    }
    out
}

fn render_ids(r: &IdReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ZooKeeper ids differ from what the upgrade will write:"
    );
    let _ = writeln!(out, "  running  {}", r.running);
    let _ = writeln!(
        out,
        "  upgrade  {}   (addresses sorted as strings, numbered from 1)",
        r.upgrade
    );
    for m in r.running.members() {
        let want = r.upgrade.id_of(&m.host).unwrap_or(0);
        let _ = writeln!(
            out,
            "    {:<28} id {}{}",
            label(r, &m.host),
            m.id,
            if want == m.id {
                "  (kept)".to_string()
            } else {
                format!(" -> {want}")
            }
        );
    }
    if r.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "  restarting in inventory order ({}), the upgrade would never hand out an id still held",
            r.restart_order.join(", ")
        );
    } else {
        let _ = writeln!(
            out,
            "  if the upgrade restarts the servers in inventory order ({}), two servers claim one id:",
            r.restart_order.join(", ")
        );
        for c in &r.conflicts {
            let _ = writeln!(
                out,
                "    restart {} of {}: {} (id {}) takes id {}, which {} still holds until restart {}",
                c.restart,
                c.of,
                short(r, &c.host),
                c.previous_id,
                c.id,
                short(r, &c.holder),
                c.holder_restart
            );
        }
    }
    let _ = writeln!(
        out,
        "  renumber before upgrading, one restart at a time, waiting for the ensemble to serve under one leader after each\n  (no two live servers ever hold one id, the leader keeps its quorum, and every election is held where each server that can win is known to all at its address;\n  planned from the leader now: after an election re-plan from the leader ZooKeeper chose):"
    );
    for (i, step) in r.plan.iter().enumerate() {
        let who = short(r, &step.host);
        let lead = if step.leader { " (leader)" } else { "" };
        let what = match step.reason {
            Reason::Renumber => format!("{who}{lead}: id {} -> {}", step.previous_id, step.id),
            Reason::Refresh => format!("{who}{lead}: id {}, reload the ensemble", step.id),
        };
        let _ = writeln!(
            out,
            "    {:>2}. {:<40} writes {}",
            i + 1,
            what,
            step.ensemble
        );
        if let Some(h) = &step.hazard {
            let _ = writeln!(out, "        hazard: {h}");
        }
    }
    out
}

/// The whole preflight as JSON, with its exit code.
pub fn render_json(p: &Preflight) -> String {
    let mut value = serde_json::to_value(p).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("exit".to_string(), exit_of(p).code().into());
        obj.insert("verdict".to_string(), verdict_of(p).into());
    }
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}
