//! `coco log [--project P] [--job J] [--run ID] [--app A] [--level L] [--since D] [-n N]
//! [--follow] [--json]`: the log records daemons, workers and schedulers keep in the store
//! (at `logging.mongodb` and above), oldest first, one line each:
//! `2026-11-26 12:00:00.123 WARNING  vm-1-4242 shop.export 01J… message` (UTC).
//!
//! `--follow` keeps printing new records until Ctrl-C. Records from several processes reach
//! the store a moment apart (each batches its records for up to a fifth of a second), so
//! [`Follower`] reads again from a little before the newest record it printed and prints only
//! ids it has not seen: a late record from another host is printed, never one twice.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;

use super::{GlobalArgs, context, output};
use crate::config::Level;
use crate::store::Journal;
use crate::store::{LogFilter, LogRecord};

/// How often `--follow` looks for new records.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);
/// How far back `--follow` reads again for records that arrived late.
const LATE_BY: TimeDelta = TimeDelta::seconds(10);

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only records about this project.
    #[arg(long, value_name = "PROJECT")]
    pub project: Option<String>,
    /// Only records about this job (`project.job`).
    #[arg(long, value_name = "JOB")]
    pub job: Option<String>,
    /// Only records about this run (its id, or a unique prefix of at least 4 characters).
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Only records about this app (`project.app`).
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
    /// Only records at or above this level: DEBUG, INFO, WARNING, ERROR.
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    pub level: Option<Level>,
    /// Only records of the last DURATION (`10m`, `2h`, `1day`).
    #[arg(long, value_name = "DURATION", value_parser = crate::manifest::raw::parse_duration)]
    pub since: Option<Duration>,
    /// At most this many records (the newest) before following.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 50)]
    pub lines: usize,
    /// Keep printing new records until Ctrl-C.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Print JSON (one array; with --follow, one record per line) instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_level(text: &str) -> Result<Level, String> {
    text.parse()
}

pub async fn run(global: &GlobalArgs, args: &LogArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    // Following waits for records of processes to come, so it opens the store as they do
    // (creating it if missing); a one-off read opens it read-only.
    let store = if args.follow {
        context::open_store(&config).await?
    } else {
        context::open_store_to_read(&config).await?
    };
    let run = match &args.run {
        Some(typed) => match context::find_run_id(store.as_ref(), typed).await? {
            Some(id) => Some(id),
            None => return Ok(1),
        },
        None => None,
    };
    let filter = LogFilter {
        project: args.project.clone(),
        job: args.job.clone(),
        run,
        app: args.app.clone(),
        min_levelno: args.level.map(Level::levelno),
        since: args.since.and_then(|d| {
            TimeDelta::from_std(d)
                .ok()
                .and_then(|d| Utc::now().checked_sub_signed(d))
        }),
        limit: Some(args.lines),
    };
    let records = store.list_log(&filter).await?;
    if !args.follow {
        if args.json {
            output::json(&records);
        } else if records.is_empty() {
            output::text_stderr(&empty_note(&config.logging.mongodb));
        } else {
            print(&records, false);
        }
        return Ok(0);
    }
    print(&records, args.json);
    let mut follower = Follower::default();
    follower.seen(&records);
    follow(store.as_ref(), filter, follower, args.json).await
}

async fn follow(
    store: &dyn Journal,
    mut filter: LogFilter,
    mut follower: Follower,
    json: bool,
) -> anyhow::Result<i32> {
    filter.limit = None;
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        filter.since = follower.read_from().or(filter.since);
        let records = store.list_log(&filter).await?;
        let new = follower.seen(&records);
        print(&new, json);
    }
}

fn print(records: &[LogRecord], json_lines: bool) {
    if records.is_empty() {
        return;
    }
    let lines: Vec<String> = records
        .iter()
        .map(|record| {
            if json_lines {
                serde_json::to_string(record).unwrap_or_default()
            } else {
                line(record)
            }
        })
        .collect();
    output::text(&lines.join("\n"));
}

/// Why nothing is shown (pure).
fn empty_note(level: &Option<Level>) -> String {
    match level {
        Some(level) => format!(
            "(no log records match; daemons, workers and schedulers keep records at {level} and above)"
        ),
        None => "(no log records: logging.mongodb is off in local.yaml)".into(),
    }
}

/// One record as a line (pure).
pub fn line(record: &LogRecord) -> String {
    let mut about = Vec::new();
    if let Some(what) = record.job.as_ref().or(record.app.as_ref()) {
        about.push(what.clone());
    } else if let Some(project) = &record.project {
        about.push(project.clone());
    }
    if let Some(run) = &record.run {
        about.push(run.clone());
    }
    let about = if about.is_empty() {
        String::new()
    } else {
        format!(" [{}]", about.join(" "))
    };
    format!(
        "{} {:<7} {}{about} {}",
        record.at.format("%Y-%m-%d %H:%M:%S%.3f"),
        record.level,
        record.source,
        record.message
    )
}

/// Which records `--follow` has printed, and from when to read again.
#[derive(Debug, Default)]
pub struct Follower {
    /// Ids printed whose time is within [`LATE_BY`] of the newest.
    printed: HashSet<String>,
    newest: Option<DateTime<Utc>>,
}

impl Follower {
    /// The records of `records` not printed before, in order; remembers them.
    pub fn seen(&mut self, records: &[LogRecord]) -> Vec<LogRecord> {
        let new: Vec<LogRecord> = records
            .iter()
            .filter(|record| !self.printed.contains(&record.id))
            .cloned()
            .collect();
        for record in &new {
            self.printed.insert(record.id.clone());
            self.newest = self.newest.max(Some(record.at));
        }
        if let Some(from) = self.read_from() {
            // Forget what the next read cannot return again (ids are ULIDs: time first).
            let keep_from =
                ulid::Ulid::from_parts(u64::try_from(from.timestamp_millis()).unwrap_or(0), 0)
                    .to_string();
            self.printed.retain(|id| *id >= keep_from);
        }
        new
    }

    /// Read again from here: [`LATE_BY`] before the newest record printed.
    pub fn read_from(&self) -> Option<DateTime<Utc>> {
        self.newest.map(|newest| newest - LATE_BY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, ms: i64) -> LogRecord {
        LogRecord {
            id: id.into(),
            at: DateTime::from_timestamp_millis(ms).unwrap(),
            level: "INFO".into(),
            levelno: 20,
            message: format!("m{id}"),
            host: "h".into(),
            source: "vm-1".into(),
            project: Some("shop".into()),
            job: Some("shop.export".into()),
            run: Some("R1".into()),
            app: None,
        }
    }

    #[test]
    fn a_line_says_when_what_who_and_about_what() {
        assert_eq!(
            line(&record("a", 1_800_000_000_123)),
            "2027-01-15 08:00:00.123 INFO    vm-1 [shop.export R1] ma"
        );
    }

    #[test]
    fn follow_prints_late_records_once() {
        let now = 1_800_000_000_000;
        let id = |ms: i64| ulid::Ulid::from_parts(ms as u64, 1).to_string();
        let mut follower = Follower::default();
        let first = vec![record(&id(now), now), record(&id(now + 5), now + 5)];
        assert_eq!(follower.seen(&first).len(), 2);
        // The next read returns the same records and one that arrived late from another
        // host, stamped before the newest printed.
        let late = record(&id(now + 2), now + 2);
        let again = vec![first[0].clone(), late.clone(), first[1].clone()];
        assert_eq!(follower.seen(&again), vec![late]);
        assert_eq!(
            follower.read_from(),
            DateTime::from_timestamp_millis(now + 5).map(|t| t - LATE_BY)
        );
    }

    #[test]
    fn levels_are_pythons_numbers() {
        assert_eq!(Level::Warning.levelno(), 30);
        assert_eq!(Level::Critical.levelno(), 40);
    }
}
