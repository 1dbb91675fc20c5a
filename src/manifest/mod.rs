//! Project manifests (`<home>/<project>/coco.yaml`): the desired state.
//!
//! `raw` mirrors the file; `parse` reads a file into a located [`crate::yaml::Document`] and
//! `validate` resolves it into the domain types below, collecting every error; `discover`
//! finds the projects of a home. No I/O here except reading the files in `parse`/`discover`.

pub mod discover;
mod id;
pub mod limits;
pub mod parse;
pub mod raw;
pub mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use id::JobId;
pub use raw::{Catchup, Concurrency, HumanDuration, RestartPolicy, StoreLoss};

use crate::schedule::Schedule;

/// The manifest file name inside a project folder.
pub const MANIFEST_FILE: &str = "coco.yaml";

/// A validated project: what must run, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub name: String,
    pub description: Option<String>,
    pub version: Option<String>,
    /// The project folder (absolute).
    pub dir: PathBuf,
    pub environment: Environment,
    pub jobs: BTreeMap<String, Job>,
    pub apps: BTreeMap<String, App>,
}

/// How the project's jobs and apps run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Environment {
    /// Working directory, relative to the project folder (or absolute).
    pub workdir: String,
    /// Entries prepended to PATH.
    pub path: Vec<String>,
    pub env: BTreeMap<String, String>,
}

/// A validated job definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub command: Vec<String>,
    pub description: Option<String>,
    /// A valid schedule expression (see [`Schedule`]); `None`: on demand only.
    pub schedule: Option<String>,
    /// A valid IANA time zone name.
    pub timezone: String,
    pub attempts: u32,
    pub retry_delay: HumanDuration,
    /// The wait after a first deferral (exit 75), doubled with each further one in a row.
    /// Left out of the stored form at its default (as is `defer_max`), so adding the
    /// fields kept the hashes of existing jobs.
    #[serde(
        default = "default_defer_delay",
        skip_serializing_if = "is_default_defer_delay"
    )]
    pub defer_delay: HumanDuration,
    /// How long a run may keep deferring before a deferral ends it as `error`.
    #[serde(
        default = "default_defer_max",
        skip_serializing_if = "is_default_defer_max"
    )]
    pub defer_max: HumanDuration,
    pub timeout: Option<HumanDuration>,
    pub priority: i32,
    pub max_parallel: u32,
    pub concurrency: Concurrency,
    pub catchup: Catchup,
    pub args: BTreeMap<String, serde_json::Value>,
    pub env: BTreeMap<String, String>,
    /// Jobs enqueued when a run completes, as given (`job` or `project.job`); see
    /// [`Job::followers`]. Left out of the stored form when empty, so adding the field kept
    /// the hashes of existing jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<String>,
}

impl Job {
    /// A job running `command` with every default a manifest gives (one attempt, no retry
    /// delay, no timeout, no schedule, priority 0, one run at a time).
    pub fn with_command<S: AsRef<str>>(command: &[S]) -> Job {
        Job {
            command: command.iter().map(|s| s.as_ref().to_string()).collect(),
            description: None,
            schedule: None,
            timezone: "UTC".into(),
            attempts: 1,
            retry_delay: HumanDuration(std::time::Duration::ZERO),
            defer_delay: default_defer_delay(),
            defer_max: default_defer_max(),
            timeout: None,
            priority: 0,
            max_parallel: 1,
            concurrency: Concurrency::default(),
            catchup: Catchup::default(),
            args: BTreeMap::new(),
            env: BTreeMap::new(),
            then: Vec::new(),
        }
    }

    /// The `project.job` ids of [`Job::then`], for a job of `project`.
    pub fn followers(&self, project: &str) -> Vec<String> {
        self.then
            .iter()
            .map(|name| {
                if name.contains('.') {
                    name.clone()
                } else {
                    JobId::new(project, name).into_string()
                }
            })
            .collect()
    }

    /// The parsed schedule, if the job has one.
    pub fn parsed_schedule(&self) -> Option<Schedule> {
        self.schedule
            .as_deref()
            .and_then(|s| Schedule::parse(s).ok())
    }

    /// The job's time zone.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::Tz::UTC)
    }
}

/// A job's `defer_delay` when its manifest gives none: the wait after a first deferral.
pub const DEFAULT_DEFER_DELAY: std::time::Duration = std::time::Duration::from_secs(10);
/// The shortest `defer_delay` a manifest may set (a job exiting 75 at once would otherwise
/// run as fast as the queue turns).
pub const MIN_DEFER_DELAY: std::time::Duration = std::time::Duration::from_secs(1);
/// A job's `defer_max` when its manifest gives none: how long its runs may keep deferring.
pub const DEFAULT_DEFER_MAX: std::time::Duration = std::time::Duration::from_secs(3600);

/// A job's `defer_delay` when its manifest gives none.
pub fn default_defer_delay() -> HumanDuration {
    HumanDuration(DEFAULT_DEFER_DELAY)
}

/// A job's `defer_max` when its manifest gives none.
pub fn default_defer_max() -> HumanDuration {
    HumanDuration(DEFAULT_DEFER_MAX)
}

fn is_default_defer_delay(delay: &HumanDuration) -> bool {
    *delay == default_defer_delay()
}

fn is_default_defer_max(max: &HumanDuration) -> bool {
    *max == default_defer_max()
}

/// A validated app (long-running server) definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    pub command: Vec<String>,
    pub description: Option<String>,
    pub port: Option<u16>,
    pub health: Option<Health>,
    pub restart: RestartPolicy,
    pub env: BTreeMap<String, String>,
    /// Hosts that may run it; empty: any.
    pub hosts: Vec<String>,
    /// What its owner does while the store is out of reach (`keep` is left out of the
    /// stored form, so adding the key changed no app's hash).
    #[serde(default, skip_serializing_if = "StoreLoss::is_keep")]
    pub on_store_loss: StoreLoss,
}

/// How an app's health is checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub check: HealthCheck,
    pub interval: HumanDuration,
    pub timeout: HumanDuration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheck {
    /// GET this path on 127.0.0.1:port, healthy on 2xx.
    Http(String),
    /// Connect to 127.0.0.1:port.
    Tcp,
}

/// Hex SHA-256 of a value's JSON form: stable, since every map here is ordered.
pub fn content_hash<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).expect("manifest types always serialize");
    hex::encode(Sha256::digest(&json))
}

/// Is `name` a valid project, job or app name (`[a-z][a-z0-9_-]*`)?
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}
