//! Strict, span-keeping access to a parsed TOML document.
//!
//! serde's derive loses spans inside tagged enums, so files are read through this small reader:
//! every value keeps its byte span, every unknown key is an error naming the accepted ones.

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::source::{InputError, SourceFile};

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Its byte span in the source file.
    pub span: Range<usize>,
}

impl<T> Located<T> {
    /// Pairs a value with a span.
    pub fn new(value: T, span: Range<usize>) -> Self {
        Self { value, span }
    }
}

/// Parses a whole TOML file, turning syntax errors into located input errors.
pub fn parse_document<'i>(source: &'i SourceFile) -> Result<Spanned<DeTable<'i>>, InputError> {
    DeTable::parse(&source.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().trim_end_matches('.').to_string();
        source.error(span, format!("invalid TOML: {}", lowercase_first(&message)))
    })
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

/// Reads the keys of one table, remembering which were used so unknown keys can be reported.
pub struct TableReader<'a, 'i> {
    source: &'a SourceFile,
    table: &'a DeTable<'i>,
    span: Range<usize>,
    what: String,
    used: BTreeSet<String>,
}

impl<'a, 'i> TableReader<'a, 'i> {
    /// A reader over `table`; `what` names it in messages ("the topology", "step 3").
    pub fn new(
        source: &'a SourceFile,
        table: &'a DeTable<'i>,
        span: Range<usize>,
        what: impl Into<String>,
    ) -> Self {
        Self {
            source,
            table,
            span,
            what: what.into(),
            used: BTreeSet::new(),
        }
    }

    /// Renames the table in messages.
    pub fn named(mut self, what: impl Into<String>) -> Self {
        self.what = what.into();
        self
    }

    /// The underlying table.
    pub fn table(&self) -> &'a DeTable<'i> {
        self.table
    }

    /// The file being read.
    pub fn source(&self) -> &'a SourceFile {
        self.source
    }

    /// The span of the whole table.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// What this table is, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Whether the key is present (and marks it used).
    pub fn has(&mut self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn get(&mut self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        let value = self.table.get(key)?;
        self.used.insert(key.to_string());
        Some(value)
    }

    /// The span of a key's value, if present.
    pub fn value_span(&self, key: &str) -> Option<Range<usize>> {
        self.table.get(key).map(|v| v.span())
    }

    fn type_error(&self, key: &str, value: &Spanned<DeValue<'_>>, expected: &str) -> InputError {
        self.source.error(
            value.span(),
            format!(
                "`{key}` in {} must be {expected}, not {}",
                self.what,
                type_name(value.get_ref())
            ),
        )
    }

    /// An error saying a required key is missing.
    pub fn missing(&self, key: &str, expected: &str) -> InputError {
        self.source.error(
            self.span.start..self.span.start,
            format!("{} is missing `{key}` ({expected})", self.what),
        )
    }

    /// An optional string.
    pub fn opt_str(&mut self, key: &str) -> Result<Option<Located<String>>, InputError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::String(s) => Ok(Some(Located::new(s.to_string(), v.span()))),
                _ => Err(self.type_error(key, v, "a string")),
            },
        }
    }

    /// A required string.
    pub fn str(&mut self, key: &str) -> Result<Located<String>, InputError> {
        self.opt_str(key)?
            .ok_or_else(|| self.missing(key, "a string"))
    }

    /// An optional non-negative integer.
    pub fn opt_u64(&mut self, key: &str) -> Result<Option<Located<u64>>, InputError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Integer(i) => {
                    let parsed = u64::from_str_radix(i.as_str(), i.radix()).ok();
                    match parsed {
                        Some(n) => Ok(Some(Located::new(n, v.span()))),
                        None => Err(self.source.error(
                            v.span(),
                            format!("`{key}` in {} must be a non-negative integer", self.what),
                        )),
                    }
                }
                _ => Err(self.type_error(key, v, "a non-negative integer")),
            },
        }
    }

    /// An optional number (an integer or a float).
    pub fn opt_f64(&mut self, key: &str) -> Result<Option<Located<f64>>, InputError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                let text = match v.get_ref() {
                    DeValue::Float(f) => f.as_str(),
                    DeValue::Integer(i) => i.as_str(),
                    _ => return Err(self.type_error(key, v, "a number")),
                };
                match text.replace('_', "").parse::<f64>() {
                    Ok(n) => Ok(Some(Located::new(n, v.span()))),
                    Err(_) => Err(self.type_error(key, v, "a number")),
                }
            }
        }
    }

    /// An optional list of non-negative integers.
    pub fn opt_u64_list(
        &mut self,
        key: &str,
    ) -> Result<Option<Located<Vec<Located<u64>>>>, InputError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items.iter() {
                        let parsed = match item.get_ref() {
                            DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix()).ok(),
                            _ => None,
                        };
                        match parsed {
                            Some(n) => out.push(Located::new(n, item.span())),
                            None => {
                                return Err(self.type_error(
                                    key,
                                    item,
                                    "a list of non-negative integers",
                                ))
                            }
                        }
                    }
                    Ok(Some(Located::new(out, v.span())))
                }
                _ => Err(self.type_error(key, v, "a list of non-negative integers")),
            },
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self, key: &str) -> Result<Option<Located<bool>>, InputError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Boolean(b) => Ok(Some(Located::new(*b, v.span()))),
                _ => Err(self.type_error(key, v, "true or false")),
            },
        }
    }

    /// An optional duration written as a string such as "30s", "1500ms" or "2m".
    pub fn opt_duration(&mut self, key: &str) -> Result<Option<Located<Duration>>, InputError> {
        let Some(text) = self.opt_str(key)? else {
            return Ok(None);
        };
        match humantime::parse_duration(text.value.trim()) {
            Ok(d) if !d.is_zero() => Ok(Some(Located::new(d, text.span))),
            Ok(_) => Err(self.source.error(
                text.span,
                format!("`{key}` in {} must be longer than zero", self.what),
            )),
            Err(e) => Err(self
                .source
                .error(
                    text.span,
                    format!("`{key}` in {} is not a duration: {e}", self.what),
                )
                .with_help("write a duration such as \"500ms\", \"30s\" or \"2m\"")),
        }
    }

    /// An optional list of strings (a single string is accepted as a list of one).
    pub fn opt_str_list(
        &mut self,
        key: &str,
    ) -> Result<Option<Located<Vec<Located<String>>>>, InputError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::String(s) => Ok(Some(Located::new(
                    vec![Located::new(s.to_string(), v.span())],
                    v.span(),
                ))),
                DeValue::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items.iter() {
                        match item.get_ref() {
                            DeValue::String(s) => {
                                out.push(Located::new(s.to_string(), item.span()))
                            }
                            _ => return Err(self.type_error(key, item, "a list of strings")),
                        }
                    }
                    Ok(Some(Located::new(out, v.span())))
                }
                _ => Err(self.type_error(key, v, "a list of strings")),
            },
        }
    }

    /// An optional sub-table.
    pub fn opt_table(&mut self, key: &str) -> Result<Option<TableReader<'a, 'i>>, InputError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Table(t) => Ok(Some(TableReader::new(
                    self.source,
                    t,
                    v.span(),
                    format!("`{key}`"),
                ))),
                _ => Err(self.type_error(key, v, "a table")),
            },
        }
    }

    /// An optional array of tables (`[[key]]`), each with `what_each(index)` as its name.
    pub fn opt_tables(
        &mut self,
        key: &str,
        what_each: impl Fn(usize) -> String,
    ) -> Result<Vec<TableReader<'a, 'i>>, InputError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(v) => match v.get_ref() {
                DeValue::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| match item.get_ref() {
                        DeValue::Table(t) => {
                            Ok(TableReader::new(self.source, t, item.span(), what_each(i)))
                        }
                        _ => Err(self.type_error(key, item, "an array of tables")),
                    })
                    .collect(),
                _ => Err(self.type_error(key, v, "an array of tables (`[[key]]`)")),
            },
        }
    }

    /// The keys of this table with their spans, in file order (for maps keyed by name).
    pub fn entries(&mut self) -> Vec<(Located<String>, Range<usize>)> {
        let mut out = Vec::new();
        for (k, v) in self.table.iter() {
            self.used.insert(k.get_ref().to_string());
            out.push((Located::new(k.get_ref().to_string(), k.span()), v.span()));
        }
        out
    }

    /// A sub-table by key, for use with `entries`.
    pub fn table_at(&mut self, key: &str) -> Result<TableReader<'a, 'i>, InputError> {
        self.opt_table(key)?
            .ok_or_else(|| self.missing(key, "a table"))
    }

    /// Fails on any key that was never asked for, listing the accepted ones.
    pub fn finish(self, accepted: &[&str]) -> Result<(), InputError> {
        self.refuse_keys(accepted, |name| self.used.contains(name))
    }

    /// Fails on any key that is not one of `accepted`, whether it was read or not: for tables
    /// whose keys are declared ahead (a step's row) rather than found by reading.
    pub fn finish_declared(self, accepted: &[&str]) -> Result<(), InputError> {
        self.refuse_keys(accepted, |name| accepted.contains(&name))
    }

    fn refuse_keys(
        &self,
        accepted: &[&str],
        known: impl Fn(&str) -> bool,
    ) -> Result<(), InputError> {
        for (k, _) in self.table.iter() {
            let name = k.get_ref();
            if !known(name.as_ref()) {
                let mut err = self
                    .source
                    .error(k.span(), format!("unknown key `{name}` in {}", self.what));
                if let Some(close) = closest(name, accepted) {
                    err = err.with_help(format!(
                        "did you mean `{close}`? accepted keys: {}",
                        accepted.join(", ")
                    ));
                } else if !accepted.is_empty() {
                    err = err.with_help(format!("accepted keys: {}", accepted.join(", ")));
                }
                return Err(err);
            }
        }
        Ok(())
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The accepted word closest to a misspelt one, if any is close enough to suggest.
pub fn closest<'s>(word: &str, candidates: &[&'s str]) -> Option<&'s str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_suggests_near_misses_only() {
        assert_eq!(closest("servics", &["services", "count"]), Some("services"));
        assert_eq!(closest("zzzzzz", &["services", "count"]), None);
    }
}
