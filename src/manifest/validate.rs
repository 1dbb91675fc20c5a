//! Resolve raw manifest entries into validated domain types, collecting every problem
//! (with its position) rather than stopping at the first.
//!
//! Pure: works on a parsed [`Document`]; reads no files and no clock.

use std::collections::BTreeMap;
use std::time::Duration;

use super::limits::{self, Bounds};
use super::raw::{CommandLine, RawApp, RawEnvironment, RawHealth, RawJob, Scalar};
use super::{App, Environment, Health, HealthCheck, HumanDuration, Job, is_valid_name};
use crate::schedule::Schedule;
use crate::yaml::{Diagnostic, Document, did_you_mean};

/// Problems found so far; resolution goes on after each.
pub type Problems = Vec<Diagnostic>;

fn at(base: &[String], tail: &[&str]) -> Vec<String> {
    base.iter()
        .cloned()
        .chain(tail.iter().map(|s| (*s).to_owned()))
        .collect()
}

/// Check a job, app or project name at the key `path`.
pub fn check_name(
    doc: &Document,
    path: &[String],
    kind: &str,
    name: &str,
    problems: &mut Problems,
) {
    if !is_valid_name(name) {
        problems.push(doc.at_key(
            path,
            format!("{kind} name `{name}` is not valid: use lower-case letters, digits, `_` and `-`, starting with a letter"),
        ));
    }
}

/// Resolve the project environment.
pub fn environment(
    doc: &Document,
    raw: Option<RawEnvironment>,
    problems: &mut Problems,
) -> Environment {
    let raw = raw.unwrap_or_default();
    let base = vec!["environment".to_owned()];
    let path = raw.path.unwrap_or_default();
    for (index, entry) in path.iter().enumerate() {
        let at_entry = at(&base, &["path", &index.to_string()]);
        if entry.trim().is_empty() {
            problems.push(doc.at(&at_entry, "empty PATH entry"));
        }
        no_nul(doc, &at_entry, "a PATH entry", entry, problems);
    }
    if let Some(workdir) = &raw.workdir {
        no_nul(
            doc,
            &at(&base, &["workdir"]),
            "the working directory",
            workdir,
            problems,
        );
    }
    Environment {
        workdir: raw.workdir.unwrap_or_else(|| ".".to_owned()),
        path,
        env: env_map(doc, &at(&base, &["env"]), raw.env, problems),
    }
}

/// Resolve the job at `jobs.<name>`.
pub fn job(doc: &Document, name: &str, raw: RawJob, problems: &mut Problems) -> Job {
    let base = vec!["jobs".to_owned(), name.to_owned()];
    let command = command(doc, &base, raw.command, problems);
    let timezone = raw.timezone.unwrap_or_else(|| "UTC".to_owned());
    if timezone.parse::<chrono_tz::Tz>().is_err() {
        let suggestion = did_you_mean(&timezone, chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()));
        problems.push(
            doc.at(
                &at(&base, &["timezone"]),
                format!("unknown time zone `{timezone}` (use an IANA name such as Europe/Berlin)"),
            )
            .with_suggestion(suggestion),
        );
    }
    if let Some(schedule) = &raw.schedule
        && let Err(message) = Schedule::parse(schedule)
    {
        problems.push(doc.at(&at(&base, &["schedule"]), message));
    }
    let attempts = raw.attempts.unwrap_or(1);
    if attempts == 0 {
        problems.push(doc.at(
            &at(&base, &["attempts"]),
            "attempts must be at least 1 (the first try counts)",
        ));
    } else if attempts > limits::MAX_ATTEMPTS {
        problems.push(doc.at(
            &at(&base, &["attempts"]),
            format!("attempts must be at most {}", limits::MAX_ATTEMPTS),
        ));
    }
    let max_parallel = raw.max_parallel.unwrap_or(1);
    if max_parallel == 0 {
        problems.push(doc.at(
            &at(&base, &["max_parallel"]),
            "max_parallel must be at least 1",
        ));
    }
    duration(
        doc,
        &base,
        "retry_delay",
        raw.retry_delay,
        limits::RETRY_DELAY,
        problems,
    );
    duration(
        doc,
        &base,
        "timeout",
        raw.timeout,
        limits::JOB_TIMEOUT,
        problems,
    );
    duration(
        doc,
        &base,
        "defer_delay",
        raw.defer_delay,
        limits::DEFER_DELAY,
        problems,
    );
    duration(
        doc,
        &base,
        "defer_max",
        raw.defer_max,
        limits::DEFER_MAX,
        problems,
    );
    let args = raw.args.unwrap_or_default();
    for (key, value) in &args {
        if key.is_empty() {
            problems.push(doc.at(&at(&base, &["args"]), "an argument name may not be empty"));
        }
        // Arguments reach the process: in `COCO_ARGS` and through `{{args.NAME}}`.
        let path = at(&base, &["args", key]);
        no_nul(doc, &path, "an argument name", key, problems);
        json_no_nul(doc, &path, value, problems);
    }
    Job {
        command,
        description: raw.description,
        schedule: raw.schedule.map(|s| s.trim().to_owned()),
        timezone,
        attempts,
        retry_delay: raw.retry_delay.unwrap_or(HumanDuration(Duration::ZERO)),
        defer_delay: raw.defer_delay.unwrap_or_else(super::default_defer_delay),
        defer_max: raw.defer_max.unwrap_or_else(super::default_defer_max),
        timeout: raw.timeout,
        priority: raw.priority.unwrap_or(0),
        max_parallel,
        concurrency: raw.concurrency.unwrap_or_default(),
        catchup: raw.catchup.unwrap_or_default(),
        args,
        env: env_map(doc, &at(&base, &["env"]), raw.env, problems),
        then: raw.then.unwrap_or_default(),
    }
}

/// Check the `then:` chains of a project's `jobs`: every entry is `job` (of this project, and
/// it exists) or `project.job` (checked when it runs: other projects are not known here), and
/// no chain within the project leads back to where it started (that would never end).
pub fn chains(doc: &Document, jobs: &BTreeMap<String, Job>, problems: &mut Problems) {
    for (name, job) in jobs {
        for (index, target) in job.then.iter().enumerate() {
            let path = vec![
                "jobs".to_owned(),
                name.clone(),
                "then".to_owned(),
                index.to_string(),
            ];
            let parts: Vec<&str> = target.split('.').collect();
            match parts.as_slice() {
                [job_name] if !jobs.contains_key(*job_name) => problems.push(
                    doc.at(&path, format!("`then`: this project has no job `{target}`"))
                        .with_suggestion(did_you_mean(target, jobs.keys().map(String::as_str))),
                ),
                [_] => {}
                [project, job_name] if is_valid_name(project) && is_valid_name(job_name) => {}
                _ => problems.push(doc.at(
                    &path,
                    format!("`then`: `{target}` is not a job name: use `job` or `project.job`"),
                )),
            }
        }
    }
    for start in jobs.keys() {
        if let Some(cycle) = chain_cycle(jobs, start) {
            let path = vec!["jobs".to_owned(), start.clone(), "then".to_owned()];
            problems.push(doc.at(
                &path,
                format!(
                    "`then` chains run in a circle ({}): it would never end",
                    cycle.join(" → ")
                ),
            ));
            // One report per circle is enough.
            return;
        }
    }
}

/// A same-project `then:` path from `start` back to `start`, if there is one.
fn chain_cycle(jobs: &BTreeMap<String, Job>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![start.to_owned()]];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last()?;
        for next in jobs
            .get(last)
            .map(|j| j.then.as_slice())
            .unwrap_or_default()
        {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if jobs.contains_key(next) && seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

/// Resolve the app at `apps.<name>`.
pub fn app(doc: &Document, name: &str, raw: RawApp, problems: &mut Problems) -> App {
    let base = vec!["apps".to_owned(), name.to_owned()];
    let command = command(doc, &base, raw.command, problems);
    if raw.port == Some(0) {
        problems.push(doc.at(&at(&base, &["port"]), "port must be from 1 to 65535"));
    }
    let health = raw
        .health
        .and_then(|h| health(doc, &base, raw.port, h, problems));
    App {
        command,
        description: raw.description,
        port: raw.port,
        health,
        restart: raw.restart.unwrap_or_default(),
        env: env_map(doc, &at(&base, &["env"]), raw.env, problems),
        hosts: raw.hosts.unwrap_or_default(),
        on_store_loss: raw.on_store_loss.unwrap_or_default(),
    }
}

fn health(
    doc: &Document,
    base: &[String],
    port: Option<u16>,
    raw: RawHealth,
    problems: &mut Problems,
) -> Option<Health> {
    let path = at(base, &["health"]);
    if port.is_none() {
        problems.push(doc.at(&path, "a health check needs the app's `port`"));
    }
    let check = match (raw.http, raw.tcp) {
        (Some(http), None | Some(false)) => {
            if !http.starts_with('/') {
                problems.push(doc.at(
                    &at(&path, &["http"]),
                    format!("health http path `{http}` must start with `/`"),
                ));
            } else if http.chars().any(|c| c.is_control() || c == ' ') {
                problems.push(doc.at(
                    &at(&path, &["http"]),
                    format!(
                        "health http path `{}` may not contain spaces or control characters (encode them, e.g. %20)",
                        http.escape_debug()
                    ),
                ));
            }
            HealthCheck::Http(http)
        }
        (None, Some(true)) => HealthCheck::Tcp,
        (Some(_), Some(true)) => {
            problems.push(doc.at(&path, "a health check is either `http` or `tcp`, not both"));
            return None;
        }
        (None, _) => {
            problems.push(doc.at(&path, "a health check needs `http: /path` or `tcp: true`"));
            return None;
        }
    };
    duration(
        doc,
        &path,
        "interval",
        raw.interval,
        limits::HEALTH_INTERVAL,
        problems,
    );
    duration(
        doc,
        &path,
        "timeout",
        raw.timeout,
        limits::HEALTH_TIMEOUT,
        problems,
    );
    Some(Health {
        check,
        interval: raw
            .interval
            .unwrap_or(HumanDuration(Duration::from_secs(10))),
        timeout: raw.timeout.unwrap_or(HumanDuration(Duration::from_secs(2))),
    })
}

/// A command as an argument list: a string is split like a shell would, never run by one.
fn command(
    doc: &Document,
    base: &[String],
    raw: CommandLine,
    problems: &mut Problems,
) -> Vec<String> {
    let path = at(base, &["command"]);
    let args = match raw {
        CommandLine::Args(args) => args.into_iter().map(|Scalar(s)| s).collect(),
        CommandLine::Text(text) => match shell_words::split(&text) {
            Ok(args) => args,
            Err(_) => {
                problems.push(doc.at(&path, format!("command `{text}` has an unbalanced quote")));
                return Vec::new();
            }
        },
    };
    if args.first().is_none_or(|program| program.trim().is_empty()) {
        problems.push(doc.at(&path, "command is empty: name the program to run"));
    }
    for (index, arg) in args.iter().enumerate() {
        // A string command is one value: its position is the whole command's.
        let at_arg = if doc
            .positions
            .value(&at(&path, &[&index.to_string()]))
            .is_some()
        {
            at(&path, &[&index.to_string()])
        } else {
            path.clone()
        };
        no_nul(doc, &at_arg, "a command argument", arg, problems);
    }
    args
}

/// Check the duration at `base.key`, if written, against `bounds`.
fn duration(
    doc: &Document,
    base: &[String],
    key: &str,
    value: Option<HumanDuration>,
    bounds: Bounds,
    problems: &mut Problems,
) {
    if let Some(HumanDuration(value)) = value
        && let Some(problem) = limits::duration_problem(value, bounds)
    {
        problems.push(doc.at(&at(base, &[key]), format!("`{key}` {problem}")));
    }
}

/// A NUL character cannot be passed to a process (arguments and environment are C strings):
/// refuse it here rather than fail every run.
fn no_nul(doc: &Document, path: &[String], what: &str, text: &str, problems: &mut Problems) {
    if text.contains('\0') {
        problems.push(doc.at(
            path,
            format!("{what} may not contain a NUL character (`\\0`): a process cannot receive it"),
        ));
    }
}

/// [`no_nul`] for every string inside a JSON value (an argument's default).
fn json_no_nul(
    doc: &Document,
    path: &[String],
    value: &serde_json::Value,
    problems: &mut Problems,
) {
    match value {
        serde_json::Value::String(text) => no_nul(doc, path, "an argument", text, problems),
        serde_json::Value::Array(items) => items
            .iter()
            .for_each(|item| json_no_nul(doc, path, item, problems)),
        serde_json::Value::Object(map) => map.iter().for_each(|(key, item)| {
            no_nul(doc, path, "an argument", key, problems);
            json_no_nul(doc, path, item, problems);
        }),
        _ => {}
    }
}

fn env_map(
    doc: &Document,
    path: &[String],
    raw: Option<BTreeMap<String, Scalar>>,
    problems: &mut Problems,
) -> BTreeMap<String, String> {
    let raw = raw.unwrap_or_default();
    for key in raw.keys() {
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            problems.push(doc.at_key(
                &at(path, &[key]),
                format!(
                    "environment variable name `{}` is not valid: use letters, digits and `_`",
                    key.escape_debug()
                ),
            ));
        }
    }
    for (key, Scalar(value)) in &raw {
        no_nul(
            doc,
            &at(path, &[key]),
            "an environment variable's value",
            value,
            problems,
        );
    }
    raw.into_iter().map(|(k, Scalar(v))| (k, v)).collect()
}
