//! Packet delays on a provider: delays that add up on one node, each verified by the connect
//! time and verified gone after the heal; and a delay queue too small for its traffic, whose
//! drops are counted and reported.

use super::*;

/// The detail of the report's first step named `heal …`.
fn heal_detail(report: &serde_json::Value) -> Result<String, Failed> {
    report["steps"]
        .as_array()
        .ok_or("no steps")?
        .iter()
        .find(|s| s["name"].as_str().is_some_and(|n| n.contains("heal")))
        .and_then(|s| s["detail"].as_str())
        .map(str::to_string)
        .ok_or_else(|| fail("no heal step with a detail"))
}

pub(super) fn delays_stack_and_heal(on: On) -> TestResult {
    let ran = run_with_report_on(
        on,
        &root_dir().join("tests/fixtures/scenarios/delay-and-heal.toml"),
        "delay-and-heal",
    )?;
    if ran.out.status.code() != Some(0) {
        return Err(fail(format!(
            "the delays did not pass\n{}",
            output_text(&ran.out)
        )));
    }
    let steps = ran.report["steps"].as_array().ok_or("no steps")?;
    let detail = |i: usize| steps[i]["detail"].as_str().unwrap_or_default().to_string();
    // Both ways: each side's connect time to the other shows its own delay.
    let both = detail(0);
    if both
        .matches("delayed 100 ms (+0–20 ms) (connect time to")
        .count()
        != 2
    {
        return Err(fail(format!(
            "the delay both ways was not verified twice: {both}"
        )));
    }
    // The node-wide delay came on top of the link's: the verification measured it rising again.
    let wide = detail(1);
    if !wide.contains("delayed 50 ms (connect time to") {
        return Err(fail(format!(
            "the node-wide delay was not verified: {wide}"
        )));
    }
    let healed = heal_detail(&ran.report)?;
    if healed.matches("packets delayed, 0 dropped").count() != 3 {
        return Err(fail(format!(
            "three queues, none overflowing, should be healed: {healed}"
        )));
    }
    Ok(())
}

pub(super) fn a_full_delay_queue_drops_and_counts(on: On) -> TestResult {
    let ran = run_with_report_on(
        on,
        &root_dir().join("tests/fixtures/scenarios/delay-overflow.toml"),
        "delay-overflow",
    )?;
    if ran.out.status.code() != Some(0) {
        return Err(fail(format!(
            "the overflow run did not pass\n{}",
            output_text(&ran.out)
        )));
    }
    let healed = heal_detail(&ran.report)?;
    let dropped: u64 = healed
        .split(" dropped by the queue's cap of 2")
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| fail(format!("no count of dropped packets: {healed}")))?;
    if dropped == 0 || !healed.contains("(at most 2 held)") {
        return Err(fail(format!(
            "a queue of 2 held 500 ms under the ledger's writes must overflow: {healed}"
        )));
    }
    Ok(())
}

/// A delay on a node another fault cut off cannot be measured: the step says so and passes
/// (the rule and queue are in place), rather than failing a correct schedule.
pub(super) fn a_delay_on_a_cut_off_node_is_made_not_measured() -> TestResult {
    let ran = run_with_report(
        &root_dir().join("tests/fixtures/scenarios/isolated-then-delayed.toml"),
        "isolated-then-delayed",
    )?;
    if ran.out.status.code() != Some(0) {
        return Err(fail(format!(
            "the run did not pass\n{}",
            output_text(&ran.out)
        )));
    }
    let steps = ran.report["steps"].as_array().ok_or("no steps")?;
    let delayed = steps[1]["detail"].as_str().unwrap_or_default();
    if !delayed.contains("not measurable now: no peer answers it") {
        return Err(fail(format!(
            "the unmeasurable delay was not said: {delayed}"
        )));
    }
    Ok(())
}
