//! One step's table, read key by key in the scenario's context. Every key a step's parse
//! function asks for is remembered, whether the table holds it or not: the step registry
//! checks those against the keys the step's row declares, and which keys a table may hold is
//! the row's to say, not the reading's.

use std::ops::Range;
use std::time::Duration;

use super::args::{NodeRef, Target, DEFAULT_WITHIN};
use super::context::Validator;
use super::reader::{Located, TableReader};
use super::ServiceKind;
use crate::source::InputError;

/// Reads one step's keys, resolving nodes, roles and services through the scenario's context,
/// and remembers which keys it was asked for.
pub struct StepReader<'r, 's> {
    cx: &'r mut Validator<'s>,
    table: TableReader<'s, 's>,
    word: Located<String>,
    within: Duration,
    asked: Vec<&'static str>,
}

impl<'r, 's> StepReader<'r, 's> {
    /// A reader over the table of the step `word` names; an expectation's `within` is read at
    /// once, because every expectation is polled to a deadline.
    pub fn new(
        cx: &'r mut Validator<'s>,
        table: TableReader<'s, 's>,
        word: Located<String>,
        expectation: bool,
    ) -> Result<Self, InputError> {
        let mut reader = Self {
            cx,
            table,
            word,
            within: Duration::ZERO,
            asked: Vec::new(),
        };
        if expectation {
            reader.within = reader
                .opt_duration("within")?
                .map(|d| d.value)
                .unwrap_or(DEFAULT_WITHIN);
        }
        Ok(reader)
    }

    /// What earlier steps established, for a step that depends on it.
    pub fn context(&self) -> &Validator<'s> {
        self.cx
    }

    /// What earlier steps established, for a step that adds to it.
    pub fn context_mut(&mut self) -> &mut Validator<'s> {
        self.cx
    }

    /// The step's name as written (`action = "…"` or `expect = "…"`), with its span.
    pub fn word(&self) -> &Located<String> {
        &self.word
    }

    /// An expectation's deadline (`within`, 30 s unless given); zero for an action.
    pub fn within(&self) -> Duration {
        self.within
    }

    /// Every key asked for so far, in the order first asked.
    pub fn asked(&self) -> &[&'static str] {
        &self.asked
    }

    /// Fails on any key of the table that is not one of `accepted`.
    pub fn finish(self, accepted: &[&str]) -> Result<(), InputError> {
        self.table.finish_declared(accepted)
    }

    /// An error at `span` of the scenario file.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> InputError {
        self.cx.source.error(span, message)
    }

    /// The span of the whole table.
    pub fn span(&self) -> Range<usize> {
        self.table.span()
    }

    /// What this table is, for messages ("step 3").
    pub fn what(&self) -> &str {
        self.table.what()
    }

    /// Where a key's value is written, if it is, for pointing at it (not a read).
    pub fn value_span(&self, key: &str) -> Option<Range<usize>> {
        self.table.value_span(key)
    }

    /// An error saying a required key is missing.
    pub fn missing(&self, key: &str, expected: &str) -> InputError {
        self.table.missing(key, expected)
    }

    fn ask(&mut self, key: &'static str) {
        if !self.asked.contains(&key) {
            self.asked.push(key);
        }
    }

    /// A required string.
    pub fn str(&mut self, key: &'static str) -> Result<Located<String>, InputError> {
        self.ask(key);
        self.table.str(key)
    }

    /// An optional string.
    pub fn opt_str(&mut self, key: &'static str) -> Result<Option<Located<String>>, InputError> {
        self.ask(key);
        self.table.opt_str(key)
    }

    /// An optional duration ("30s", "1500ms", "2m").
    pub fn opt_duration(
        &mut self,
        key: &'static str,
    ) -> Result<Option<Located<Duration>>, InputError> {
        self.ask(key);
        self.table.opt_duration(key)
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self, key: &'static str) -> Result<Option<Located<bool>>, InputError> {
        self.ask(key);
        self.table.opt_bool(key)
    }

    /// An optional non-negative integer.
    pub fn opt_u64(&mut self, key: &'static str) -> Result<Option<Located<u64>>, InputError> {
        self.ask(key);
        self.table.opt_u64(key)
    }

    /// An optional number.
    pub fn opt_f64(&mut self, key: &'static str) -> Result<Option<Located<f64>>, InputError> {
        self.ask(key);
        self.table.opt_f64(key)
    }

    /// An optional list of strings (one string is a list of one).
    pub fn opt_str_list(
        &mut self,
        key: &'static str,
    ) -> Result<Option<Located<Vec<Located<String>>>>, InputError> {
        self.ask(key);
        self.table.opt_str_list(key)
    }

    /// `service`: one the topology runs.
    pub fn service(&mut self) -> Result<ServiceKind, InputError> {
        let s = self.str("service")?;
        self.cx.service(&s)
    }

    /// `service`, if given: one the topology runs.
    pub fn opt_service(&mut self) -> Result<Option<ServiceKind>, InputError> {
        match self.opt_str("service")? {
            Some(s) => self.cx.service(&s).map(Some),
            None => Ok(None),
        }
    }

    /// `service`: one the topology runs that elects a leader.
    pub fn leader_service(&mut self) -> Result<ServiceKind, InputError> {
        let s = self.str("service")?;
        self.cx.leader_service(&s)
    }

    /// A name to bind, if given; later steps may use it as `$name`.
    pub fn binding(&mut self, key: &'static str) -> Result<Option<String>, InputError> {
        match self.opt_str(key)? {
            Some(b) => self.cx.binding(key, &b).map(Some),
            None => Ok(None),
        }
    }

    /// A node or `$binding`.
    pub fn node(&mut self, key: &'static str) -> Result<NodeRef, InputError> {
        let v = self.str(key)?;
        self.cx.node_ref(&v)
    }

    /// A node or `$binding` that runs `service`.
    pub fn node_running(
        &mut self,
        key: &'static str,
        service: ServiceKind,
    ) -> Result<NodeRef, InputError> {
        let v = self.str(key)?;
        self.cx.node_running(&v, service)
    }

    /// A node or `$binding` that runs `service`, if given.
    pub fn opt_node_running(
        &mut self,
        key: &'static str,
        service: ServiceKind,
    ) -> Result<Option<NodeRef>, InputError> {
        match self.opt_str(key)? {
            Some(v) => self.cx.node_running(&v, service).map(Some),
            None => Ok(None),
        }
    }

    /// A list of nodes or `$binding`s (none if not given).
    pub fn node_list(&mut self, key: &'static str) -> Result<Vec<NodeRef>, InputError> {
        let list = self.opt_str_list(key)?.map(|l| l.value).unwrap_or_default();
        list.iter().map(|v| self.cx.node_ref(v)).collect()
    }

    /// A node, `$binding` or role.
    pub fn target(&mut self, key: &'static str) -> Result<Target, InputError> {
        let v = self.str(key)?;
        self.cx.target(&v)
    }

    /// A name for a snapshot or a dump.
    pub fn label(&mut self, key: &'static str) -> Result<Located<String>, InputError> {
        let l = self.str(key)?;
        self.cx.label(key, l)
    }
}
