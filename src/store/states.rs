//! The typed states and outcomes the store keeps as text: an app's state, a member's kind,
//! a fire's outcome. Each is written as the same text it always was (serde's names and
//! [`std::fmt::Display`] agree, [`std::str::FromStr`] reads it back), so stores written
//! before they were typed still read.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A stored text that names none of a type's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {text:?}")]
pub struct UnknownText {
    /// What the text should have named (`app state`, `member kind`, `fire outcome`).
    pub what: &'static str,
    pub text: String,
}

impl UnknownText {
    fn new(what: &'static str, text: &str) -> Self {
        UnknownText {
            what,
            text: text.to_owned(),
        }
    }
}

/// What the daemon supervising an app says of it ([`super::AppStatus::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(description = "What the daemon supervising an app says of it.")]
pub enum AppState {
    /// Started, not yet found healthy (it has a health check).
    Starting,
    /// Started, and it has no health check.
    Running,
    Healthy,
    /// Its health checks fail.
    Unhealthy,
    /// Exited; waiting to be restarted.
    Backoff,
    /// Exited and not restarted (its restart policy says so).
    Exited,
    /// Stopped by its daemon.
    Stopped,
}

impl AppState {
    pub const ALL: [AppState; 7] = [
        AppState::Starting,
        AppState::Running,
        AppState::Healthy,
        AppState::Unhealthy,
        AppState::Backoff,
        AppState::Exited,
        AppState::Stopped,
    ];

    /// The name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Starting => "starting",
            AppState::Running => "running",
            AppState::Healthy => "healthy",
            AppState::Unhealthy => "unhealthy",
            AppState::Backoff => "backoff",
            AppState::Exited => "exited",
            AppState::Stopped => "stopped",
        }
    }
}

/// [`fmt::Display`] and [`FromStr`] for a type of names: its `as_str`, over its `ALL`.
macro_rules! stored_as_name {
    ($type:ty, $what:literal) => {
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $type {
            type Err = UnknownText;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                <$type>::ALL
                    .into_iter()
                    .find(|value| value.as_str() == text)
                    .ok_or_else(|| UnknownText::new($what, text))
            }
        }
    };
}

stored_as_name!(AppState, "app state");

/// What kind of coco process a member is ([`super::MemberRecord::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(description = "What kind of coco process a member is.")]
pub enum MemberKind {
    /// `coco worker`.
    Worker,
    /// `coco daemon` (whose worker runs runs too).
    Daemon,
}

impl MemberKind {
    pub const ALL: [MemberKind; 2] = [MemberKind::Worker, MemberKind::Daemon];

    /// The name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::Worker => "worker",
            MemberKind::Daemon => "daemon",
        }
    }
}

stored_as_name!(MemberKind, "member kind");

/// What became of a schedule fire, as its scheduler settles it ([`super::Fires::settle_fire`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireOutcome {
    /// `enqueued RUN`: its run was enqueued (or found enqueued already).
    Enqueued { run: String },
    /// `enqueued RUN, replacing ACTIVE`: enqueued after killing the job's active run
    /// (`concurrency: replace`).
    Replaced { run: String, replaced: String },
    /// `skipped: WHY`.
    Skipped(Skipped),
}

/// Why a fire enqueued nothing ([`FireOutcome::Skipped`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// `the job is no longer scheduled` (a fire taken over).
    NotScheduled,
    /// `missed (catchup: none)` (a fire taken over).
    Missed,
    /// `run RUN still active (concurrency: forbid)`.
    StillActive { run: String },
    /// `run OTHER took the place of KILLED` (`concurrency: replace` lost a race).
    TookThePlace { other: String, killed: String },
}

const ENQUEUED: &str = "enqueued ";
const REPLACING: &str = ", replacing ";
const SKIPPED: &str = "skipped: ";
const NOT_SCHEDULED: &str = "the job is no longer scheduled";
const MISSED: &str = "missed (catchup: none)";
const STILL_ACTIVE: &str = " still active (concurrency: forbid)";
const TOOK_THE_PLACE: &str = " took the place of ";

impl fmt::Display for FireOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FireOutcome::Enqueued { run } => write!(f, "{ENQUEUED}{run}"),
            FireOutcome::Replaced { run, replaced } => {
                write!(f, "{ENQUEUED}{run}{REPLACING}{replaced}")
            }
            FireOutcome::Skipped(why) => write!(f, "{SKIPPED}{why}"),
        }
    }
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skipped::NotScheduled => f.write_str(NOT_SCHEDULED),
            Skipped::Missed => f.write_str(MISSED),
            Skipped::StillActive { run } => write!(f, "run {run}{STILL_ACTIVE}"),
            Skipped::TookThePlace { other, killed } => {
                write!(f, "run {other}{TOOK_THE_PLACE}{killed}")
            }
        }
    }
}

impl FromStr for FireOutcome {
    type Err = UnknownText;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownText::new("fire outcome", text);
        if let Some(enqueued) = text.strip_prefix(ENQUEUED) {
            return Ok(match enqueued.split_once(REPLACING) {
                Some((run, replaced)) => FireOutcome::Replaced {
                    run: run.to_owned(),
                    replaced: replaced.to_owned(),
                },
                None => FireOutcome::Enqueued {
                    run: enqueued.to_owned(),
                },
            });
        }
        let why = text.strip_prefix(SKIPPED).ok_or_else(unknown)?;
        let skipped = match why {
            NOT_SCHEDULED => Skipped::NotScheduled,
            MISSED => Skipped::Missed,
            _ => {
                let run = why.strip_prefix("run ").ok_or_else(unknown)?;
                if let Some(run) = run.strip_suffix(STILL_ACTIVE) {
                    Skipped::StillActive {
                        run: run.to_owned(),
                    }
                } else {
                    let (other, killed) = run.split_once(TOOK_THE_PLACE).ok_or_else(unknown)?;
                    Skipped::TookThePlace {
                        other: other.to_owned(),
                        killed: killed.to_owned(),
                    }
                }
            }
        };
        Ok(FireOutcome::Skipped(skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_states_round_trip_as_their_old_text() {
        let old = [
            "starting",
            "running",
            "healthy",
            "unhealthy",
            "backoff",
            "exited",
            "stopped",
        ];
        for (state, text) in AppState::ALL.into_iter().zip(old) {
            assert_eq!(state.to_string(), text);
            assert_eq!(text.parse::<AppState>(), Ok(state));
            assert_eq!(serde_json::to_value(state).unwrap(), text);
            assert_eq!(
                serde_json::from_value::<AppState>(text.into()).unwrap(),
                state
            );
        }
        assert_eq!(
            "sleeping".parse::<AppState>().unwrap_err().to_string(),
            "unknown app state \"sleeping\""
        );
    }

    #[test]
    fn member_kinds_round_trip_as_their_old_text() {
        for (kind, text) in [
            (MemberKind::Worker, "worker"),
            (MemberKind::Daemon, "daemon"),
        ] {
            assert_eq!(kind.to_string(), text);
            assert_eq!(text.parse::<MemberKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), text);
            assert_eq!(
                serde_json::from_value::<MemberKind>(text.into()).unwrap(),
                kind
            );
        }
        assert!("Worker".parse::<MemberKind>().is_err());
    }

    #[test]
    fn fire_outcomes_round_trip_as_their_old_text() {
        let run = "01JD0000000000000000000000";
        let other = "01JD0000000000000000000001";
        let old = [
            (
                format!("enqueued {run}"),
                FireOutcome::Enqueued { run: run.into() },
            ),
            (
                format!("enqueued {run}, replacing {other}"),
                FireOutcome::Replaced {
                    run: run.into(),
                    replaced: other.into(),
                },
            ),
            (
                "skipped: the job is no longer scheduled".into(),
                FireOutcome::Skipped(Skipped::NotScheduled),
            ),
            (
                "skipped: missed (catchup: none)".into(),
                FireOutcome::Skipped(Skipped::Missed),
            ),
            (
                format!("skipped: run {other} still active (concurrency: forbid)"),
                FireOutcome::Skipped(Skipped::StillActive { run: other.into() }),
            ),
            (
                format!("skipped: run {other} took the place of {run}"),
                FireOutcome::Skipped(Skipped::TookThePlace {
                    other: other.into(),
                    killed: run.into(),
                }),
            ),
        ];
        for (text, outcome) in old {
            assert_eq!(outcome.to_string(), text);
            assert_eq!(text.parse::<FireOutcome>(), Ok(outcome), "{text}");
        }
        for bad in ["", "enqueue R", "skipped: because", "skipped: run R"] {
            assert!(bad.parse::<FireOutcome>().is_err(), "{bad}");
        }
    }
}
