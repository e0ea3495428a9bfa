//! Where a run's time goes: with `SUCCESSION_TRACE=FILE` set, every `tracing` span the harness
//! opens (an engine call, a command on a node, a service start, a phase of the run) is written
//! to FILE when it closes, one JSON line each: its name, its fields, when it opened and how long
//! it was open, in milliseconds since the trace began. `succession trace FILE` sums them up by
//! name ([`breakdown`]). Without the variable no subscriber is installed and spans cost next to
//! nothing.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// The crate's own spans' target prefix.
const OWN_TARGET: &str = "succession";

/// The variable naming the file a run's spans are written to.
pub const TRACE_ENV: &str = "SUCCESSION_TRACE";

/// One closed span, as written to the trace file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanLine {
    /// The span's name (`engine.exec`).
    pub span: String,
    /// The enclosing span's name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// When it opened, in ms since the trace began.
    pub start_ms: f64,
    /// How long it was open, in ms.
    pub ms: f64,
    /// Its fields, as text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// Installs the span writer when `SUCCESSION_TRACE` names a file; says why not otherwise.
pub fn install_from_env() -> Result<bool, std::io::Error> {
    let Some(path) = std::env::var_os(TRACE_ENV) else {
        return Ok(false);
    };
    let file = File::options().create(true).append(true).open(&path)?;
    let layer = SpanTimes {
        out: Mutex::new(file),
        origin: Instant::now(),
    };
    // Another subscriber set first (a test's) wins; the trace is then simply not written.
    Ok(tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .is_ok())
}

/// The layer that times spans and writes each when it closes.
struct SpanTimes {
    out: Mutex<File>,
    origin: Instant,
}

/// What a span keeps while it is open.
struct Opened {
    at: Instant,
    fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl<S> Layer<S> for SpanTimes
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // The harness's own spans only: its libraries' (HTTP/2 frames, polls) are noise here.
        if !attrs.metadata().target().starts_with(OWN_TARGET) {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(Opened {
            at: Instant::now(),
            fields: fields.0,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(opened) = extensions.get_mut::<Opened>() {
            let mut fields = Fields(std::mem::take(&mut opened.fields));
            values.record(&mut fields);
            opened.fields = fields.0;
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let extensions = span.extensions();
        let Some(opened) = extensions.get::<Opened>() else {
            return;
        };
        let line = SpanLine {
            span: span.name().to_string(),
            parent: span.parent().map(|p| p.name().to_string()),
            start_ms: ms_between(self.origin, opened.at),
            ms: opened.at.elapsed().as_secs_f64() * 1000.0,
            fields: opened.fields.clone(),
        };
        if let (Ok(mut text), Ok(mut out)) = (serde_json::to_string(&line), self.out.lock()) {
            text.push('\n');
            // A trace that cannot be written is lost; the run it describes goes on.
            let _ = out.write_all(text.as_bytes());
        }
    }
}

fn ms_between(origin: Instant, at: Instant) -> f64 {
    at.saturating_duration_since(origin).as_secs_f64() * 1000.0
}

/// The spans of one name, summed.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanTotal {
    /// The span's name.
    pub span: String,
    /// How many closed.
    pub count: usize,
    /// Their summed time open, ms (spans open at once each count in full).
    pub total_ms: f64,
    /// The median time one was open, ms.
    pub median_ms: f64,
    /// The longest, ms.
    pub max_ms: f64,
}

/// Why a trace file could not be summed.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// It could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// A line is not a span.
    #[error("{path}:{line}: not a span line: {detail}")]
    Line {
        path: String,
        line: usize,
        detail: String,
    },
}

/// Reads a trace file's spans.
pub fn read(path: &Path) -> Result<Vec<SpanLine>, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|source| TraceError::Read {
        path: path.display().to_string(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| TraceError::Line {
                path: path.display().to_string(),
                line: i + 1,
                detail: e.to_string(),
            })
        })
        .collect()
}

/// The spans summed by name, the largest total first; and the trace's span from its first
/// opening to its last closing, ms.
pub fn breakdown(spans: &[SpanLine]) -> (Vec<SpanTotal>, f64) {
    let mut by_name: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for s in spans {
        by_name.entry(&s.span).or_default().push(s.ms);
    }
    let mut totals: Vec<SpanTotal> = by_name
        .into_iter()
        .map(|(name, mut times)| {
            times.sort_by(f64::total_cmp);
            SpanTotal {
                span: name.to_string(),
                count: times.len(),
                total_ms: times.iter().sum(),
                median_ms: times[times.len() / 2],
                max_ms: times.last().copied().unwrap_or(0.0),
            }
        })
        .collect();
    totals.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms).then(a.span.cmp(&b.span)));
    let first = spans
        .iter()
        .map(|s| s.start_ms)
        .fold(f64::INFINITY, f64::min);
    let last = spans
        .iter()
        .map(|s| s.start_ms + s.ms)
        .fold(f64::NEG_INFINITY, f64::max);
    let wall = if spans.is_empty() { 0.0 } else { last - first };
    (totals, wall)
}

/// The breakdown as a table people read.
pub fn render(totals: &[SpanTotal], wall_ms: f64) -> String {
    let rows: Vec<Vec<String>> = totals
        .iter()
        .map(|t| {
            vec![
                t.span.clone(),
                t.count.to_string(),
                format!("{:.0}", t.total_ms),
                format!("{:.1}", t.median_ms),
                format!("{:.1}", t.max_ms),
            ]
        })
        .collect();
    let mut out = format!(
        "spans over {:.0} ms, summed by name (nested spans each count in full):\n",
        wall_ms
    );
    out.push_str(&super::table::columns(
        &["span", "count", "total ms", "median ms", "max ms"],
        &rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(span: &str, start_ms: f64, ms: f64) -> SpanLine {
        SpanLine {
            span: span.into(),
            parent: None,
            start_ms,
            ms,
            fields: BTreeMap::new(),
        }
    }

    #[test]
    fn spans_are_summed_by_name_largest_first() {
        let spans = [
            line("engine.exec", 0.0, 10.0),
            line("engine.exec", 20.0, 30.0),
            line("engine.exec", 60.0, 20.0),
            line("provision", 0.0, 45.0),
        ];
        let (totals, wall) = breakdown(&spans);
        assert_eq!(wall, 80.0);
        assert_eq!(totals[0].span, "engine.exec");
        assert_eq!(totals[0].count, 3);
        assert_eq!(totals[0].total_ms, 60.0);
        assert_eq!(totals[0].median_ms, 20.0);
        assert_eq!(totals[0].max_ms, 30.0);
        assert_eq!(totals[1].span, "provision");
        let text = render(&totals, wall);
        assert!(text.contains("engine.exec  3      60"), "{text}");
    }

    #[test]
    fn an_empty_trace_sums_to_nothing() {
        assert_eq!(breakdown(&[]), (vec![], 0.0));
    }

    #[test]
    fn a_line_that_is_not_a_span_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.jsonl");
        std::fs::write(
            &path,
            "{\"span\":\"a\",\"start_ms\":0,\"ms\":1}\nnot json\n",
        )
        .unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("trace.jsonl:2: not a span line"), "{e}");
    }

    #[test]
    fn closed_spans_are_written_with_their_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.jsonl");
        let layer = SpanTimes {
            out: Mutex::new(File::create(&path).unwrap()),
            origin: Instant::now(),
        };
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("provision", nodes = 3);
            let _in = outer.enter();
            let inner = tracing::info_span!("engine.exec", action = "read a process");
            drop(inner);
        });
        let spans = read(&path).unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].span, "engine.exec");
        assert_eq!(spans[0].parent.as_deref(), Some("provision"));
        assert_eq!(spans[0].fields["action"], "read a process");
        assert_eq!(spans[1].span, "provision");
        assert_eq!(spans[1].fields["nodes"], "3");
    }
}
