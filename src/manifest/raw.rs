//! The manifest exactly as written in `coco.yaml`: serde mirrors with `deny_unknown_fields`,
//! and the source of the JSON Schema (`docs/coco.schema.json`).
//!
//! Nothing here is checked beyond types; `validate.rs` resolves these into the domain types
//! of `mod.rs`. [`RawManifest`] is generic over its job, app and environment types so that
//! the parser can first read the outline with raw YAML values in those places and then each
//! entry on its own, reporting every bad entry rather than the first.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// One `coco.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "coco project manifest (coco.yaml)")]
pub struct RawManifest<J = RawJob, A = RawApp, E = RawEnvironment> {
    /// Project name, `[a-z][a-z0-9_-]*`. Default: the folder name.
    pub project: Option<String>,
    /// One line about the project.
    pub description: Option<String>,
    /// The project's version, e.g. `0.0.1`.
    pub version: Option<Scalar>,
    /// How every job and app of this project runs.
    pub environment: Option<E>,
    /// Jobs by name (`[a-z][a-z0-9_-]*`), at most 1000.
    #[serde(default)]
    #[schemars(extend("maxProperties" = 1000))]
    pub jobs: BTreeMap<String, J>,
    /// Long-running app servers by name (`[a-z][a-z0-9_-]*`), at most 100.
    #[serde(default)]
    #[schemars(extend("maxProperties" = 100))]
    pub apps: BTreeMap<String, A>,
}

/// The project environment shared by its jobs and apps.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEnvironment {
    /// Working directory, relative to the project folder. Default: `.`.
    pub workdir: Option<String>,
    /// Entries prepended to PATH, relative to the project folder unless absolute (e.g. `.venv/bin`).
    pub path: Option<Vec<String>>,
    /// Environment variables.
    pub env: Option<BTreeMap<String, Scalar>>,
}

/// One job.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    /// What to run: an argument list, or a string split like a shell would (never run through a shell).
    pub command: CommandLine,
    /// One line about the job.
    pub description: Option<String>,
    /// Cron schedule: 5 fields, 6 with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly. Absent: on demand only.
    pub schedule: Option<String>,
    /// IANA time zone of the schedule, e.g. `Europe/Berlin`. Default: `UTC`.
    pub timezone: Option<String>,
    /// How many times a run is tried in all, from 1 to 1000. Default: 1.
    pub attempts: Option<u32>,
    /// Wait before a failed run is tried again, e.g. `30s`; at most 10 years. Default: `0s` (at once: each retry starts a new process and spends an attempt).
    pub retry_delay: Option<HumanDuration>,
    /// Wait after a run asks to be run later (exit 75), e.g. `30s`; it doubles with each
    /// further deferral in a row, up to 5m (or this, if longer). At least `1s`. Default: `10s`.
    pub defer_delay: Option<HumanDuration>,
    /// How long a run may keep deferring (from its first deferral in a row): a deferral after
    /// that ends it as `error`, e.g. `1h`. `0s`: exit 75 is an error at once. Default: `1h`.
    pub defer_max: Option<HumanDuration>,
    /// A run taking longer is stopped (process group: SIGTERM, then SIGKILL); from 1s to 10 years. Default: none.
    pub timeout: Option<HumanDuration>,
    /// Higher runs first. Default: 0.
    pub priority: Option<i32>,
    /// At most this many runs of the job at once, across all workers. Default: 1.
    pub max_parallel: Option<u32>,
    /// What a fire does while a run is pending or running. Default: `forbid`.
    pub concurrency: Option<Concurrency>,
    /// What to do with fires missed while no scheduler ran. Default: `once`.
    pub catchup: Option<Catchup>,
    /// Default arguments of a run (`COCO_ARGS`, `{{args.NAME}}` in the command).
    pub args: Option<BTreeMap<String, serde_json::Value>>,
    /// Environment variables, over the project's.
    pub env: Option<BTreeMap<String, Scalar>>,
    /// Jobs to enqueue when a run completes (exit 0): `job` of this project or `project.job`.
    /// They get the completed run's id as `COCO_PARENT_RUN`.
    pub then: Option<Vec<String>>,
}

/// One app server.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    /// What to run: an argument list, or a string split like a shell would.
    pub command: CommandLine,
    /// One line about the app.
    pub description: Option<String>,
    /// The TCP port it listens on (127.0.0.1), used by health checks.
    pub port: Option<u16>,
    /// How to tell it is healthy.
    pub health: Option<RawHealth>,
    /// When to restart it after it exits. Default: `always`.
    pub restart: Option<RestartPolicy>,
    /// Environment variables, over the project's.
    pub env: Option<BTreeMap<String, Scalar>>,
    /// Hosts that may run it. Default: any (the daemon that claims it).
    pub hosts: Option<Vec<String>>,
    /// What its owner does while it cannot reach the store to renew its hold: `keep` it
    /// serving (default: a store outage never stops it), or `stop` it before the hold can
    /// have expired, so that two copies never run at once even in a partition.
    pub on_store_loss: Option<StoreLoss>,
}

/// A health check: exactly one of `http` or `tcp`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// GET this path on 127.0.0.1:port; healthy on 2xx.
    pub http: Option<String>,
    /// `true`: healthy when 127.0.0.1:port accepts a connection.
    pub tcp: Option<bool>,
    /// Time between checks, from 100ms to 1 day. Default: `10s`.
    pub interval: Option<HumanDuration>,
    /// Time one check may take, from 100ms to 1 day. Default: `2s`.
    pub timeout: Option<HumanDuration>,
}

/// When a fire is due while a run of the same job is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Concurrency {
    /// Enqueue anyway.
    Allow,
    /// Skip the fire (and record the skip).
    #[default]
    Forbid,
    /// Kill the active run and enqueue.
    Replace,
}

/// Fires missed while nothing was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Catchup {
    /// Skip them.
    None,
    /// Enqueue one run for all of them.
    #[default]
    Once,
    /// Enqueue each (bounded).
    All,
}

/// When an app is restarted after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

/// What an app's owner does while it cannot renew its hold on the app in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StoreLoss {
    /// Keep serving (availability): another host may start a second copy once the hold
    /// expires.
    #[default]
    Keep,
    /// Stop the process before the hold can have expired (a singleton): no two copies.
    Stop,
}

impl StoreLoss {
    pub fn is_keep(&self) -> bool {
        *self == StoreLoss::Keep
    }
}

/// A command: a list of arguments, or one string split into arguments like a shell would
/// (quotes respected), but never run through a shell.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum CommandLine {
    Text(String),
    Args(Vec<Scalar>),
}

impl<'de> Deserialize<'de> for CommandLine {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Ok(CommandLine::Text(text)),
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|item| Scalar::from_json(item).map_err(D::Error::custom))
                .collect::<Result<_, _>>()
                .map(CommandLine::Args),
            other => Err(D::Error::custom(format!(
                "expected a command: a list of arguments or a string, found {}",
                json_kind(&other)
            ))),
        }
    }
}

/// A scalar written as a string, number or boolean, kept as text (`PORT: 8080` is `"8080"`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct Scalar(#[schemars(with = "ScalarSchema")] pub String);

/// Schema stand-in for [`Scalar`]: a string, number or boolean.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ScalarSchema {
    String(String),
    Number(f64),
    Bool(bool),
}

impl Scalar {
    fn from_json(value: serde_json::Value) -> Result<Scalar, String> {
        match value {
            serde_json::Value::String(s) => Ok(Scalar(s)),
            serde_json::Value::Number(n) => Ok(Scalar(n.to_string())),
            serde_json::Value::Bool(b) => Ok(Scalar(b.to_string())),
            other => Err(format!(
                "expected a string, number or boolean, found {}",
                json_kind(&other)
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Scalar::from_json(serde_json::Value::deserialize(deserializer)?)
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A duration written as `30s`, `5m`, `1h30m` (or a number of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub struct HumanDuration(#[schemars(with = "String")] pub std::time::Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_duration(deserializer)
    }
}

/// Read a [`HumanDuration`] from a string (`30s`) or a number of seconds.
fn deserialize_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<HumanDuration, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => parse_duration(&text)
            .map(HumanDuration)
            .map_err(D::Error::custom),
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(|secs| HumanDuration(std::time::Duration::from_secs(secs)))
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "invalid duration `{n}`: expected whole seconds or e.g. 30s, 5m, 1h30m"
                ))
            }),
        other => Err(D::Error::custom(format!(
            "expected a duration such as 30s, 5m or 1h30m, found {}",
            json_kind(&other)
        ))),
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

/// Parse `30s`, `5m`, `1h30m`, `250ms`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration `{text}`: {e} (write e.g. 30s, 5m, 1h30m)"))
}

/// Format a duration as `1h 30m` (humantime's form, which [`parse_duration`] reads back).
pub fn format_duration(duration: std::time::Duration) -> String {
    humantime::format_duration(duration).to_string()
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "nothing (null)",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}
