//! Reads through the border: the inventory names them, each must answer 2xx or 3xx.

use super::tests::{healthy_cell, inventory, CELL};
use super::*;

fn with_reads(reads: &str) -> String {
    CELL.replacen(
        "role = \"border\"\n",
        &format!("role = \"border\"\nborder_reads = [{reads}]\n"),
        1,
    )
}

#[test]
fn every_read_through_the_border_must_answer_and_a_failing_one_is_named() {
    let text = with_reads("\"http://10.213.7.10:80/health\", \"http://10.213.7.10:8080/ping\"");
    let inv = inventory(&text);
    let mut obs = healthy_cell(&inv);
    obs.border_reads
        .insert("http://10.213.7.10:80/health".into(), Ok(200));
    obs.border_reads
        .insert("http://10.213.7.10:8080/ping".into(), Ok(503));
    let p = evaluate(&inv, &obs);
    let row = p
        .checks
        .iter()
        .find(|c| c.service == "border")
        .expect("a border row");
    assert_eq!(
        (row.outcome, row.evidence.as_str()),
        (Outcome::Fail, "http://10.213.7.10:8080/ping answered 503")
    );
    obs.border_reads
        .insert("http://10.213.7.10:8080/ping".into(), Ok(200));
    let p = evaluate(&inv, &obs);
    assert!(p
        .checks
        .iter()
        .any(|c| c.service == "border" && c.outcome == Outcome::Pass));
    // No reads named, no row.
    let plain = inventory(CELL);
    assert!(evaluate(&plain, &healthy_cell(&plain))
        .checks
        .iter()
        .all(|c| c.service != "border"));
}

#[test]
fn a_border_read_that_is_no_url_is_located() {
    let text = with_reads("\"10.213.7.10:80/health\"");
    let e = Inventory::parse(&crate::source::SourceFile::from_text("cell.toml", &text))
        .expect_err("not a URL");
    assert!(
        e.to_string()
            .contains("`10.213.7.10:80/health` is not an http:// URL"),
        "{e}"
    );
    assert_eq!(e.line, 5, "the line of `border_reads`");
}
