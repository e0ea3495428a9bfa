//! The timeline as one self-contained SVG: a lane per step, fault, elected service, target and
//! the ledger, on one time axis. Every mark carries a `<title>` (a tooltip in browsers) with
//! its exact figures; every lane a `data-lane` attribute, so tests and scripts can find them.

use std::fmt::Write as _;

use super::{human_ms, Figure, MarkerKind, Timeline};
use crate::ledger::WriteFate;
use crate::report::StepStatus;

const WIDTH: f64 = 1200.0;
const LABELS: f64 = 170.0;
const RIGHT: f64 = 20.0;
const HEADER: f64 = 48.0;
const AXIS: f64 = 22.0;

/// One colour per node that led something, in `Timeline::leader_nodes` order.
const NODE_COLOURS: &[&str] = &[
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
    "#7f7f7f", "#393b79",
];

/// The colour of the `i`th node in `Timeline::leader_nodes` order.
pub fn node_colour(i: usize) -> &'static str {
    NODE_COLOURS[i % NODE_COLOURS.len()]
}

/// Escapes text for XML content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// The time axis: ms to x.
struct Scale {
    duration_ms: u64,
}

impl Scale {
    fn x(&self, ms: u64) -> f64 {
        let plot = WIDTH - LABELS - RIGHT;
        LABELS + plot * (ms.min(self.duration_ms) as f64) / (self.duration_ms as f64)
    }

    /// A tick interval of 1, 2 or 5 × 10^k ms giving at most about 12 ticks.
    fn tick(&self) -> u64 {
        let mut step = 1u64;
        loop {
            for m in [1, 2, 5] {
                if self.duration_ms / (step * m) <= 12 {
                    return step * m;
                }
            }
            step *= 10;
        }
    }
}

/// Draws the timeline.
pub fn render_svg(t: &Timeline) -> String {
    let scale = Scale {
        duration_ms: t.duration_ms,
    };
    let mut body = String::new();
    let mut y = HEADER + AXIS;
    let lanes_top = y;
    y = steps_lane(&mut body, t, &scale, y);
    let faults_top = y;
    y = markers_lane(&mut body, t, &scale, y);
    let nodes = t.leader_nodes();
    for lane in &t.leaders {
        y = leader_lane(&mut body, lane, &nodes, &scale, y);
    }
    for lane in &t.targets {
        y = target_lane(&mut body, lane, &scale, y);
    }
    if let Some(writes) = &t.writes {
        y = writes_lane(&mut body, writes, &scale, y);
    }
    y = bars_lane(
        &mut body,
        &t.figures,
        ("measured", "figures", "figure", "#333"),
        &scale,
        y,
    );
    y = bars_lane(
        &mut body,
        &t.breaches,
        ("consistency breaches", "breaches", "breach", "#c33"),
        &scale,
        y,
    );
    let height = y + 10.0;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11" data-verdict="{}">
<defs><pattern id="none" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/><line x1="0" y1="0" x2="0" y2="6" stroke="#c33" stroke-width="2"/></pattern></defs>
<rect width="{WIDTH}" height="{height}" fill="#fff"/>
"##,
        escape(&t.verdict)
    );
    let verdict_colour = match t.verdict.as_str() {
        "PASS" => "#2a7d2a",
        "FAIL" => "#c33",
        _ => "#b8860b",
    };
    let _ = writeln!(
        svg,
        r##"<text x="10" y="20" font-size="16" font-weight="bold">{} <tspan fill="{verdict_colour}">{}</tspan></text>"##,
        escape(&t.scenario),
        escape(&t.verdict)
    );
    let _ = writeln!(
        svg,
        r##"<text x="10" y="38" fill="#555">{} · replay: {}</text>"##,
        escape(&t.provenance),
        escape(&t.replay)
    );
    axis(&mut svg, &scale, HEADER, height);
    // Faults cross every lane below them, so where they fell is seen against everything.
    for m in t.markers.iter().filter(|m| m.kind == MarkerKind::Fault) {
        let x = scale.x(m.at_ms);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{lanes_top}" x2="{x:.1}" y2="{:.1}" stroke="#c33" stroke-dasharray="4 3" opacity="0.6"/>"##,
            height - 10.0
        );
    }
    let _ = faults_top;
    svg.push_str(&body);
    svg.push_str("</svg>\n");
    svg
}

fn axis(svg: &mut String, scale: &Scale, top: f64, height: f64) {
    let tick = scale.tick();
    let mut ms = 0;
    while ms <= scale.duration_ms {
        let x = scale.x(ms);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#777">{}</text>"##,
            top + AXIS - 4.0,
            height - 10.0,
            top + AXIS - 8.0,
            human_ms(ms)
        );
        ms += tick;
    }
}

fn lane_label(svg: &mut String, y: f64, height: f64, label: &str, lane: &str) {
    let _ = writeln!(
        svg,
        r##"<g data-lane="{}"><rect x="0" y="{y:.1}" width="{WIDTH}" height="{height:.1}" fill="none" stroke="#f0f0f0"/><text x="8" y="{:.1}" font-weight="bold">{}</text></g>"##,
        escape(lane),
        y + height / 2.0 + 4.0,
        escape(label)
    );
}

fn steps_lane(svg: &mut String, t: &Timeline, scale: &Scale, y: f64) -> f64 {
    let h = 34.0;
    lane_label(svg, y, h, "steps", "steps");
    for s in &t.steps {
        let (x0, x1) = (scale.x(s.from_ms), scale.x(s.to_ms));
        let w = (x1 - x0).max(2.0);
        let fill = match s.status {
            StepStatus::Passed => "#8fc98f",
            StepStatus::Failed => "#e06666",
            StepStatus::Skipped => "#ddd",
            _ => "#f0b35a",
        };
        let _ = writeln!(
            svg,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{w:.1}" height="22" fill="{fill}" stroke="#fff" data-step="{}" data-status="{:?}"><title>step {}: {} ({:?}, {} from {}){}</title></rect>"##,
            y + 6.0,
            s.index,
            s.status,
            s.index,
            escape(&s.name),
            s.status,
            human_ms(s.to_ms - s.from_ms),
            human_ms(s.from_ms),
            if s.detail.is_empty() {
                String::new()
            } else {
                format!(" — {}", escape(&s.detail))
            }
        );
        if w > 16.0 {
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                x0 + w / 2.0,
                y + 21.0,
                s.index
            );
        }
        if s.status == StepStatus::Failed {
            let _ = writeln!(
                svg,
                r##"<text x="{x0:.1}" y="{:.1}" fill="#c33" font-weight="bold" data-failed-step="{}">✗ step {} failed here: {}</text>"##,
                y + 44.0,
                s.index,
                s.index,
                escape(&clip(&s.name, 60))
            );
        }
    }
    let failed = t.steps.iter().any(|s| s.status == StepStatus::Failed);
    y + h + if failed { 16.0 } else { 0.0 }
}

fn markers_lane(svg: &mut String, t: &Timeline, scale: &Scale, y: f64) -> f64 {
    if t.markers.is_empty() {
        return y;
    }
    let rows = 4usize;
    let h = 16.0 * rows as f64 + 8.0;
    lane_label(svg, y, h, "faults & actions", "actions");
    for (i, m) in t.markers.iter().enumerate() {
        let x = scale.x(m.at_ms);
        let row = i % rows;
        let ty = y + 14.0 + 16.0 * row as f64;
        let (colour, weight) = match m.kind {
            MarkerKind::Fault => ("#c33", "bold"),
            MarkerKind::Action => ("#456", "normal"),
        };
        // Near the right edge a label reads leftwards from its mark, so it stays on the page.
        let (tx, anchor) = if x > WIDTH - 260.0 {
            (x - 5.0, "end")
        } else {
            (x + 5.0, "start")
        };
        let _ = writeln!(
            svg,
            r##"<g data-marker="{:?}"><circle cx="{x:.1}" cy="{:.1}" r="3" fill="{colour}"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="{anchor}" fill="{colour}" font-weight="{weight}">{}<title>{} at {}</title></text></g>"##,
            m.kind,
            ty - 4.0,
            escape(&clip(&m.label, 42)),
            escape(&m.label),
            human_ms(m.at_ms)
        );
    }
    y + h
}

fn leader_lane(
    svg: &mut String,
    lane: &super::LeaderLane,
    nodes: &[String],
    scale: &Scale,
    y: f64,
) -> f64 {
    let h = 26.0;
    lane_label(
        svg,
        y,
        h,
        &format!("{} leader", lane.service),
        &format!("leader:{}", lane.service),
    );
    for s in &lane.segments {
        let (x0, x1) = (scale.x(s.from_ms), scale.x(s.to_ms));
        let w = (x1 - x0).max(1.0);
        match &s.leader {
            super::Leadership::Led(node) => {
                let colour = node_colour(nodes.iter().position(|n| n == node).unwrap_or(0));
                let _ = writeln!(
                    svg,
                    r##"<rect x="{x0:.1}" y="{:.1}" width="{w:.1}" height="18" fill="{colour}" data-leader="{}"><title>{} led by {} from {} to {}</title></rect>"##,
                    y + 4.0,
                    escape(node),
                    escape(&lane.service),
                    escape(node),
                    human_ms(s.from_ms),
                    human_ms(s.to_ms)
                );
                if w > 60.0 {
                    let _ = writeln!(
                        svg,
                        r##"<text x="{:.1}" y="{:.1}" fill="#fff">{}</text>"##,
                        x0 + 4.0,
                        y + 17.0,
                        escape(node)
                    );
                }
            }
            super::Leadership::None => {
                let _ = writeln!(
                    svg,
                    r##"<rect x="{x0:.1}" y="{:.1}" width="{w:.1}" height="18" fill="url(#none)" data-leader="none"><title>{}: no majority-backed leader from {} to {}</title></rect>"##,
                    y + 4.0,
                    escape(&lane.service),
                    human_ms(s.from_ms),
                    human_ms(s.to_ms)
                );
            }
            super::Leadership::Unobserved => {
                let _ = writeln!(
                    svg,
                    r##"<rect x="{x0:.1}" y="{:.1}" width="{w:.1}" height="18" fill="#eee" data-leader="unobserved"><title>{}: leader taken down at {}; not probed again until {}</title></rect>"##,
                    y + 4.0,
                    escape(&lane.service),
                    human_ms(s.from_ms),
                    human_ms(s.to_ms)
                );
            }
        }
    }
    y + h
}

fn target_lane(svg: &mut String, lane: &super::TargetLane, scale: &Scale, y: f64) -> f64 {
    let h = 54.0;
    let failed = lane.requests.iter().filter(|r| !r.ok).count();
    lane_label(
        svg,
        y,
        h,
        &format!(
            "{} ({}/{} ok)",
            lane.target,
            lane.requests.len() - failed,
            lane.requests.len()
        ),
        &format!("target:{}", lane.target),
    );
    let max = lane
        .requests
        .iter()
        .map(|r| r.latency_ms)
        .max()
        .unwrap_or(0)
        .max(1);
    let base = y + h - 6.0;
    let _ = writeln!(
        svg,
        r##"<text x="8" y="{:.1}" fill="#999">latency, max {}</text>"##,
        y + h - 8.0,
        human_ms(max)
    );
    for r in &lane.requests {
        let x = scale.x(r.at_ms);
        // Square root: a few slow requests do not flatten every other one.
        let tall = 4.0 + 38.0 * ((r.latency_ms as f64) / (max as f64)).sqrt();
        let colour = if r.ok { "#2a7d2a" } else { "#c33" };
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{base:.1}" x2="{x:.1}" y2="{:.1}" stroke="{colour}" stroke-width="{}" data-ok="{}"><title>{} at {}: {} in {}</title></line>"##,
            base - tall,
            if r.ok { 1 } else { 2 },
            r.ok,
            escape(&lane.target),
            human_ms(r.at_ms),
            escape(&r.outcome),
            human_ms(r.latency_ms)
        );
    }
    y + h
}

fn writes_lane(svg: &mut String, writes: &[super::Write], scale: &Scale, y: f64) -> f64 {
    let h = 30.0;
    let lost = writes
        .iter()
        .filter(|w| matches!(w.fate, WriteFate::Lost | WriteFate::LostTolerated))
        .count();
    lane_label(svg, y, h, &format!("ledger writes ({lost} lost)"), "ledger");
    for w in writes {
        let x = scale.x(w.at_ms);
        let (colour, top, word) = match w.fate {
            WriteFate::Kept => ("#2a7d2a", 12.0, "acknowledged, kept"),
            WriteFate::Failed => ("#999", 12.0, "failed"),
            WriteFate::Indeterminate => ("#e69500", 8.0, "indeterminate"),
            WriteFate::LostTolerated => ("#8b0000", 4.0, "lost (tolerated)"),
            WriteFate::Lost => ("#ff0000", 2.0, "lost"),
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{colour}" stroke-width="1.5" data-write="{:?}"><title>write {} at {}: {word}</title></line>"##,
            y + top,
            y + h - 4.0,
            w.fate,
            w.seq,
            human_ms(w.at_ms)
        );
    }
    y + h
}

/// A lane of labelled spans: the measured figures, or the consistency checkers' breaches (the
/// operations involved, where they happened); `(label, lane, each mark's attribute, colour)`.
fn bars_lane(
    svg: &mut String,
    bars: &[Figure],
    (label, lane, mark, colour): (&str, &str, &str, &str),
    scale: &Scale,
    y: f64,
) -> f64 {
    if bars.is_empty() {
        return y;
    }
    let h = 18.0 * bars.len() as f64 + 6.0;
    lane_label(svg, y, h, label, lane);
    for (i, f) in bars.iter().enumerate() {
        let (x0, x1) = (scale.x(f.from_ms), scale.x(f.to_ms));
        let fy = y + 12.0 + 18.0 * i as f64;
        let _ = writeln!(
            svg,
            r##"<g data-{mark}="{}"><line x1="{x0:.1}" y1="{fy:.1}" x2="{x1:.1}" y2="{fy:.1}" stroke="{colour}"/><line x1="{x0:.1}" y1="{:.1}" x2="{x0:.1}" y2="{:.1}" stroke="{colour}"/><line x1="{x1:.1}" y1="{:.1}" x2="{x1:.1}" y2="{:.1}" stroke="{colour}"/><text x="{:.1}" y="{:.1}" text-anchor="{}">{}</text></g>"##,
            escape(&f.label),
            fy - 4.0,
            fy + 4.0,
            fy - 4.0,
            fy + 4.0,
            if x1 > WIDTH - 200.0 {
                x0 - 4.0
            } else {
                x1 + 4.0
            },
            fy + 4.0,
            if x1 > WIDTH - 200.0 { "end" } else { "start" },
            escape(&f.label)
        );
    }
    y + h
}
