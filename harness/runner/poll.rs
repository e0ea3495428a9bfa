//! Waiting without sleeping for a state: expectations poll their probes to a deadline and say
//! when the state first held, to within one poll; everything seen is timestamped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::report::{Event, Fold, TimelineEntry, TimelineKind};

/// How often expectations poll their probes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How often a wait for a leader polls: an election is measured to within one poll, so this
/// is kept to tens of milliseconds.
pub const ELECTION_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Timestamps everything that happens, relative to the first step, as events: each goes into
/// the run's fold at once and waits in `pending` for the reporter.
pub struct Recorder {
    /// When the first step started.
    pub origin: Instant,
    last_views: BTreeMap<String, String>,
    /// What the events so far add up to.
    pub(crate) fold: Fold,
    /// Events not yet shown to the reporter.
    pub(crate) pending: Vec<Event>,
}

impl Recorder {
    /// A recorder whose time starts now.
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            last_views: BTreeMap::new(),
            fold: Fold::default(),
            pending: Vec::new(),
        }
    }

    /// ms since the first step started.
    pub fn elapsed_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Adds an event.
    pub fn emit(&mut self, event: Event) {
        self.fold.apply(&event);
        self.pending.push(event);
    }

    fn entry(&mut self, kind: TimelineKind, subject: Option<&str>, what: String) {
        let entry = TimelineEntry {
            at_ms: self.elapsed_ms(),
            wall: crate::base::time::now_rfc3339(),
            kind,
            subject: subject.map(str::to_string),
            what,
        };
        self.emit(Event::Timeline(entry));
    }

    /// Adds an action of the harness to the timeline.
    pub fn record(&mut self, what: String) {
        self.entry(TimelineKind::Action, None, what);
    }

    /// Marks where a step or a phase begins on the timeline.
    pub fn mark(&mut self, kind: TimelineKind, what: String) {
        self.entry(kind, None, what);
    }

    /// Records a measurement from `since` to when `held` held, with how closely that is known,
    /// and returns it.
    pub fn measure<T>(&mut self, name: &str, since: Instant, held: &Held<T>) -> Measurement {
        let measurement = Measurement::of(since, held);
        self.emit(Event::Measured {
            name: name.to_string(),
            ms: measurement.ms,
            resolution_ms: measurement.resolution_ms,
        });
        measurement
    }

    /// Records an observation of a subject when it differs from the previous one.
    pub fn observe(&mut self, subject: &str, observation: &str) {
        if self.last_views.get(subject).map(String::as_str) != Some(observation) {
            self.last_views
                .insert(subject.to_string(), observation.to_string());
            self.entry(
                TimelineKind::Observation,
                Some(subject),
                format!("{subject}: {observation}"),
            );
        }
    }
}

/// What one poll of an expectation saw: the outcome, and an observation for the timeline.
pub struct Poll<T, E> {
    /// Held (with a value) or not (with why not: what was seen instead).
    pub outcome: Result<T, E>,
    /// The subject and what it showed, recorded when it changes.
    pub observation: Option<(String, String)>,
}

impl<T, E: std::fmt::Display> Poll<T, E> {
    /// One attempt of an action retried to a deadline: the timeline shows its last error, or
    /// "done".
    pub fn attempt(subject: &str, outcome: Result<T, E>) -> Self {
        let seen = match &outcome {
            Ok(_) => "done".to_string(),
            Err(e) => e.to_string(),
        };
        Self {
            outcome,
            observation: Some((subject.to_string(), seen)),
        }
    }
}

/// A state that did not hold by its deadline, and what the last poll saw instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not within {}: {last}", crate::base::time::human_ms(.within.as_millis() as u64))]
pub struct NotWithin {
    /// How long it was waited for.
    pub within: Duration,
    /// What the last poll saw.
    pub last: String,
}

impl From<NotWithin> for String {
    fn from(e: NotWithin) -> Self {
        e.to_string()
    }
}

impl From<NotWithin> for super::StepError {
    fn from(e: NotWithin) -> Self {
        super::StepError::Failed(e.to_string())
    }
}

/// When an expectation first held, and how closely that is known.
#[derive(Debug, Clone, Copy)]
pub struct Held<T> {
    /// What the holding poll found.
    pub value: T,
    /// When the poll that first saw it hold ended.
    pub at: Instant,
    /// When the last poll that did not see it hold began (or the wait began): the state began
    /// somewhere between this and `at` — unless `first_look`.
    pub not_before: Instant,
    /// The very first poll saw it hold: it may have held since before the wait began (a state
    /// reached while an earlier step was still waiting for something else), so the wait says
    /// nothing about when it began.
    pub first_look: bool,
}

/// How long after a moment a state held, and how closely that is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// From the moment to the poll that first saw the state, ms.
    pub ms: u64,
    /// The width of the span in which the state began, ms: one poll, or the whole of `ms` when
    /// the state already held at the first look.
    pub resolution_ms: u64,
    /// The state already held at the wait's first look: `ms` is only an upper bound.
    pub first_look: bool,
}

impl Measurement {
    /// `held` measured from `since`: when the first look already saw it, it may have begun at
    /// any time after `since`, so that is all a measurement can claim.
    pub fn of<T>(since: Instant, held: &Held<T>) -> Self {
        let ms = held.at.saturating_duration_since(since).as_millis() as u64;
        let resolution_ms = if held.first_look {
            ms
        } else {
            held.resolution_ms().min(ms)
        };
        Self {
            ms,
            resolution_ms,
            first_look: held.first_look,
        }
    }
}

impl std::fmt::Display for Measurement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first_look {
            write!(
                f,
                "at most {} ms (it already held when the step first looked)",
                self.ms
            )
        } else {
            write!(f, "{} ms (to within {} ms)", self.ms, self.resolution_ms)
        }
    }
}

impl<T> Held<T> {
    /// How closely the moment is known: the width of `[not_before, at]`, in ms.
    pub fn resolution_ms(&self) -> u64 {
        self.at
            .saturating_duration_since(self.not_before)
            .as_millis() as u64
    }
}

/// Polls `check` until it holds or `within` has passed; returns the value and the instant it
/// was first seen to hold. The error says what was seen last.
pub async fn poll_until<T, E, F, Fut>(
    within: Duration,
    recorder: &mut Recorder,
    check: F,
) -> Result<(T, Instant), NotWithin>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Poll<T, E>>,
{
    poll_until_held(within, POLL_INTERVAL, recorder, check)
        .await
        .map(|h| (h.value, h.at))
}

/// Polls `check` every `interval` until it holds or `within` has passed, and says when it first
/// held to within one poll.
pub async fn poll_until_held<T, E, F, Fut>(
    within: Duration,
    interval: Duration,
    recorder: &mut Recorder,
    mut check: F,
) -> Result<Held<T>, NotWithin>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Poll<T, E>>,
{
    let begun = Instant::now();
    let end = begun + within;
    let mut not_before = begun;
    let mut first_look = true;
    let within_text = crate::base::time::human_ms(within.as_millis() as u64);
    let progress =
        crate::base::progress::Progress::spinner(format!("waiting (up to {within_text})"));
    loop {
        let poll_began = Instant::now();
        let poll = check().await;
        let now = Instant::now();
        if let Some((subject, seen)) = &poll.observation {
            recorder.observe(subject, seen);
            progress.message(format!(
                "waiting for {subject}: {} of {within_text}",
                crate::base::time::human_ms(now.duration_since(begun).as_millis() as u64)
            ));
        }
        match poll.outcome {
            Ok(value) => {
                return Ok(Held {
                    value,
                    at: now,
                    not_before,
                    first_look,
                })
            }
            Err(last) if now >= end => {
                return Err(NotWithin {
                    within,
                    last: last.to_string(),
                })
            }
            Err(_) => {
                not_before = poll_began;
                first_look = false;
                tokio::time::sleep(interval).await
            }
        }
    }
}

/// How often each kind of wait polls, for the report.
pub fn poll_intervals() -> BTreeMap<String, u64> {
    [
        (
            "election".to_string(),
            ELECTION_POLL_INTERVAL.as_millis() as u64,
        ),
        ("expectation".to_string(), POLL_INTERVAL.as_millis() as u64),
    ]
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(since: Instant, not_before_ms: u64, at_ms: u64, first_look: bool) -> Held<()> {
        Held {
            value: (),
            at: since + Duration::from_millis(at_ms),
            not_before: since + Duration::from_millis(not_before_ms),
            first_look,
        }
    }

    #[test]
    fn a_state_seen_to_begin_is_measured_to_within_one_poll() {
        let since = Instant::now();
        let m = Measurement::of(since, &held(since, 1200, 1230, false));
        assert_eq!((m.ms, m.resolution_ms, m.first_look), (1230, 30, false));
        assert_eq!(m.to_string(), "1230 ms (to within 30 ms)");
    }

    #[test]
    fn a_state_that_held_at_the_first_look_is_only_an_upper_bound() {
        // An election over while an earlier step still waited: the wait began at 2900 ms and
        // its first poll saw the leader, which may have been there since the disruption.
        let since = Instant::now();
        let m = Measurement::of(since, &held(since, 2900, 2944, true));
        assert_eq!((m.ms, m.resolution_ms, m.first_look), (2944, 2944, true));
        assert_eq!(
            m.to_string(),
            "at most 2944 ms (it already held when the step first looked)"
        );
    }

    #[tokio::test]
    async fn the_wait_says_whether_its_first_poll_held() {
        let mut rec = Recorder::new();
        let at_once = poll_until_held(Duration::from_secs(1), POLL_INTERVAL, &mut rec, || async {
            Poll::<(), String> {
                outcome: Ok(()),
                observation: None,
            }
        })
        .await
        .expect("held");
        assert!(at_once.first_look);
        let mut polls = 0;
        let later = poll_until_held(
            Duration::from_secs(5),
            Duration::from_millis(1),
            &mut rec,
            || {
                polls += 1;
                let outcome = if polls < 3 {
                    Err("not yet".to_string())
                } else {
                    Ok(())
                };
                async move {
                    Poll {
                        outcome,
                        observation: None,
                    }
                }
            },
        )
        .await
        .expect("held");
        assert!(!later.first_look);
        assert!(later.not_before <= later.at);
    }
}
