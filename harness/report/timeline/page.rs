//! The timeline as one self-contained HTML page: no network, no CDN; the SVG inline, a header
//! with the verdict and the replay line, a legend, and a few lines of script that count what
//! was drawn (a page whose script failed says so in its `data-script-error`).

use std::fmt::Write as _;

use super::svg::{escape, render_svg};
use super::Timeline;

const STYLE: &str = "body{font-family:sans-serif;margin:16px;color:#222}\
h1{font-size:20px;margin:0 0 4px}.verdict-PASS{color:#2a7d2a}.verdict-FAIL{color:#c33}\
.verdict-UNKNOWN{color:#b8860b}code{background:#f4f4f4;padding:2px 4px}\
.legend span{display:inline-block;margin-right:14px}.swatch{display:inline-block;width:12px;\
height:12px;margin-right:4px;vertical-align:middle}.error{color:#c33;font-weight:bold}";

/// What the page's script does: counts lanes and marks, and records any script error.
const SCRIPT: &str = "window.addEventListener('error',function(e){document.body.dataset.scriptError=String(e.message);});\
document.addEventListener('DOMContentLoaded',function(){var s=document.querySelector('svg');\
document.body.dataset.lanes=String(s.querySelectorAll('[data-lane]').length);\
document.body.dataset.marks=String(s.querySelectorAll('[data-step],[data-leader],[data-ok],[data-write],[data-marker]').length);\
document.body.dataset.rendered='yes';});";

/// Renders the page.
pub fn render_page(t: &Timeline) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} — {}</title><style>{STYLE}</style><script>{SCRIPT}</script></head>\n<body>\n",
        escape(&t.scenario),
        escape(&t.verdict)
    );
    let _ = writeln!(
        page,
        "<h1>{} <span class=\"verdict-{}\">{}</span></h1>",
        escape(&t.scenario),
        escape(&t.verdict),
        escape(&t.verdict)
    );
    let _ = writeln!(page, "<p>{}</p>", escape(&t.provenance));
    let _ = writeln!(page, "<p>replay: <code>{}</code></p>", escape(&t.replay));
    if let Some(e) = &t.error {
        let _ = writeln!(page, "<p class=\"error\">{}</p>", escape(e));
    }
    if let Some(failed) = t
        .steps
        .iter()
        .find(|s| s.status == crate::report::StepStatus::Failed)
    {
        let _ = writeln!(
            page,
            "<p class=\"error\">step {} failed: {} — {}</p>",
            failed.index,
            escape(&failed.name),
            escape(&failed.detail)
        );
    }
    page.push_str("<p class=\"legend\">");
    for (i, node) in t.leader_nodes().iter().enumerate() {
        let _ = write!(
            page,
            "<span><i class=\"swatch\" style=\"background:{}\"></i>{} leads</span>",
            super::svg::node_colour(i),
            escape(node)
        );
    }
    page.push_str("<span><i class=\"swatch\" style=\"background:#fff;border:2px solid #c33\"></i>no majority-backed leader</span>");
    page.push_str("<span><i class=\"swatch\" style=\"background:#eee\"></i>leader taken down, not yet probed again</span>");
    page.push_str(
        "<span><i class=\"swatch\" style=\"background:#c33\"></i>fault / failed request</span>",
    );
    page.push_str(
        "<span><i class=\"swatch\" style=\"background:#2a7d2a\"></i>ok request / kept write</span>",
    );
    page.push_str(
        "<span><i class=\"swatch\" style=\"background:#e69500\"></i>indeterminate write</span>",
    );
    page.push_str(
        "<span><i class=\"swatch\" style=\"background:#ff0000\"></i>lost write</span></p>\n",
    );
    page.push_str(&render_svg(t));
    page.push_str("<p>Hover over any mark for its exact figures.</p>\n</body></html>\n");
    page
}
