//! `succession preflight --rehearse DIR` on seed 004's ensemble: the replica it writes rehearses
//! the upgrade as it will run — which fails on two servers claiming one id — and the same upgrade
//! after the safe renumbering preflight prints, which passes.

use super::*;

pub(super) fn rehearsal_of_seed_004() -> TestResult {
    let dir = report_dir("rehearsal-004");
    let _ = std::fs::remove_dir_all(&dir);
    with_cluster("topologies/zookeeper-five.toml", |run_id| {
        let inventory = write_inventory(run_id)?;
        let out = succession()
            .arg("preflight")
            .arg("--inventory")
            .arg(&inventory)
            .arg("--rehearse")
            .arg(&dir)
            .output()?;
        let _ = std::fs::remove_file(&inventory);
        // The real cell's ids conflict with the upgrade's: preflight fails, and says how to
        // rehearse.
        if out.status.code() != Some(1) || !output_text(&out).contains("rehearsal written") {
            return Err(fail(format!(
                "preflight must fail on the ids and write the rehearsal\n{}",
                output_text(&out)
            )));
        }
        Ok(())
    })?;
    let topology = std::fs::read_to_string(dir.join("topology.toml"))?;
    if !topology.contains("hosts = [8, 9, 10, 11, 12]") || !topology.contains("quorum-3 = 5") {
        return Err(fail(format!(
            "the replica must keep hosts and ids\n{topology}"
        )));
    }
    let Ran { out, report, .. } = run_with_report(&dir.join("upgrade.toml"), "rehearsed-upgrade")?;
    let failed = report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["status"] == "failed")
        .and_then(|s| s["detail"].as_str())
        .unwrap_or_default()
        .to_string();
    if out.status.code() != Some(1) || !failed.contains("two servers claim id") {
        return Err(fail(format!(
            "the rehearsed upgrade must fail on the id conflict\n{}",
            output_text(&out)
        )));
    }
    let Ran { out, .. } =
        run_with_report(&dir.join("safe-upgrade.toml"), "rehearsed-safe-upgrade")?;
    if out.status.code() != Some(0) {
        return Err(fail(format!(
            "the rehearsed upgrade after the safe renumbering must pass\n{}",
            output_text(&out)
        )));
    }
    Ok(())
}
