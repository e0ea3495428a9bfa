//! Tables people read: the per-node service status (like `katostat`), node lists.

use crate::supervisor::ServiceStatus;

/// Renders rows as aligned columns under a header.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

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
