//! The per-node service status table (like `katostat`).

use super::ServiceStatus;
use crate::base::table::columns;

/// The status table: one row per service per node.
pub fn status_table(rows: &[ServiceStatus]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.node.clone(),
                if r.service.is_stand_in() {
                    format!("{} (stand-in)", r.service)
                } else {
                    r.service.to_string()
                },
                r.active.to_string(),
                r.sub.to_string(),
                r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                r.since.clone(),
            ]
        })
        .collect();
    columns(&["NODE", "SERVICE", "ACTIVE", "SUB", "PID", "SINCE"], &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServiceKind;

    #[test]
    fn status_table_lines_up() {
        let row = |node: &str, service, active, sub, pid| ServiceStatus {
            node: node.to_string(),
            service,
            active,
            sub,
            pid,
            since: "2026-11-21T12:00:00.000Z".to_string(),
        };
        let rows = vec![
            row(
                "quorum-1.cell-1.dc-1.demo.lan",
                ServiceKind::Zookeeper,
                "active",
                "running",
                Some(4242),
            ),
            row(
                "quorum-1.cell-1.dc-1.demo.lan",
                ServiceKind::Etcd,
                "active",
                "running",
                Some(4243),
            ),
            row(
                "quorum-3.cell-1.dc-1.demo.lan",
                ServiceKind::Etcd,
                "failed",
                "exited",
                None,
            ),
            row(
                "master-1.cell-1.dc-1.demo.lan",
                ServiceKind::MesosMaster,
                "active",
                "running",
                Some(5150),
            ),
            row(
                "border-1.cell-1.dc-1.demo.lan",
                ServiceKind::Ingress,
                "active",
                "running",
                Some(5151),
            ),
        ];
        insta::assert_snapshot!(status_table(&rows));
    }
}
