//! `coco alive [--json]`: the workers and daemons working on the store, with their host,
//! coco version, the age of their lease against its length, the runs they run and the apps
//! they hold (core4: `coco --alive`). One whose lease expired is shown as `lost`, not
//! dropped: it was killed or cut off, and what it held is taken over.
//!
//! The runs a worker is running are read from the queue (runs `running` on it), not from
//! its record, which it refreshes only with its heartbeat: a run that just ended or just
//! started shows at once.

use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;

use super::list::human_duration;
use super::{GlobalArgs, JsonFlag, context, output};
use crate::store::MemberRecord;
pub use crate::views::members_as_they_run;

/// A member recorded without a lease (an older coco) is lost after this (the default
/// zombie interval).
const LOST_AFTER: TimeDelta = TimeDelta::seconds(60);

#[derive(Debug, Args)]
pub struct AliveArgs {
    #[command(flatten)]
    pub flags: JsonFlag,
}

pub async fn run(global: &GlobalArgs, args: &AliveArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store_to_read(&config).await?;
    let members = members_as_they_run(store.as_ref()).await?;
    if args.flags.json {
        output::json(&members);
    } else if members.is_empty() {
        output::text("No worker or daemon is running.");
    } else {
        let now = Utc::now();
        let rows: Vec<Vec<String>> = members.iter().map(|m| row(m, now)).collect();
        output::table(HEADER, &rows);
    }
    Ok(0)
}

/// `text`, or `-` for nothing.
fn or_dash(text: String) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

/// The columns of [`row`].
pub const HEADER: &[&str] = &[
    "NAME", "KIND", "HOST", "VERSION", "PID", "UP", "LEASE", "RUNNING", "APPS", "NOTE",
];

/// The lease `member` recorded (or, recorded without one, [`LOST_AFTER`]).
fn lease(member: &MemberRecord) -> TimeDelta {
    if member.lease_ms == 0 {
        return LOST_AFTER;
    }
    TimeDelta::milliseconds(i64::try_from(member.lease_ms).unwrap_or(i64::MAX))
}

/// Has `member`'s lease expired (it was killed, or cut off from the store) (pure)?
pub fn is_lost(member: &MemberRecord, now: DateTime<Utc>) -> bool {
    now - member.heartbeat > lease(member)
}

/// Is any worker (or daemon with a worker: slots to run in) alive to run what is enqueued
/// (pure)? A `daemon --no-worker` runs nothing.
pub fn any_worker_alive(members: &[MemberRecord], now: DateTime<Utc>) -> bool {
    members
        .iter()
        .any(|member| member.slots > 0 && !is_lost(member, now))
}

/// One table row (pure).
pub fn row(member: &MemberRecord, now: DateTime<Utc>) -> Vec<String> {
    let silent = now - member.heartbeat;
    let note = if is_lost(member, now) {
        format!(
            "lost (lease expired {} ago)",
            human_duration(silent - lease(member))
        )
    } else {
        member.holding.clone().unwrap_or_default()
    };
    vec![
        member.name.clone(),
        member.kind.to_string(),
        member.host.clone(),
        or_dash(member.version.clone()),
        member.pid.to_string(),
        human_duration(now - member.started),
        format!(
            "{} ago / {}",
            human_duration(silent),
            human_duration(lease(member))
        ),
        format!("{}/{}", member.running.len(), member.slots),
        or_dash(member.apps.join(",")),
        note,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::running_from_queue;

    #[test]
    fn rows_show_ages_load_and_lost_members() {
        let started = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let member = MemberRecord {
            name: "host-1".into(),
            kind: crate::store::MemberKind::Worker,
            host: "host".into(),
            pid: 42,
            started,
            heartbeat: started + TimeDelta::seconds(118),
            slots: 4,
            running: vec!["A".into()],
            holding: Some("projects paused: shop".into()),
            version: "0.9.0".into(),
            lease_ms: 10_000,
            apps: vec!["shop.web".into()],
        };
        let now = started + TimeDelta::seconds(120);
        assert_eq!(
            row(&member, now),
            [
                "host-1",
                "worker",
                "host",
                "0.9.0",
                "42",
                "2m",
                "2s ago / 10s",
                "1/4",
                "shop.web",
                "projects paused: shop"
            ]
        );
        // Lost once its lease is over, not dropped.
        let later = now + TimeDelta::seconds(13);
        assert_eq!(row(&member, later)[9], "lost (lease expired 5s ago)");
        let older = MemberRecord {
            lease_ms: 0,
            ..member.clone()
        };
        assert!(
            !is_lost(&older, later),
            "without a lease: the zombie interval"
        );
        assert!(any_worker_alive(std::slice::from_ref(&member), now));
        assert!(!any_worker_alive(std::slice::from_ref(&member), later));
        assert!(!any_worker_alive(&[], now));
        let no_worker = MemberRecord {
            slots: 0,
            ..member.clone()
        };
        assert!(!any_worker_alive(&[no_worker], now), "a daemon --no-worker");
    }

    #[test]
    fn running_runs_come_from_the_queue() {
        use crate::manifest::Job;
        use crate::queue::{NewRun, new_run};
        let started = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let member = |name: &str, running: &[&str]| MemberRecord {
            name: name.into(),
            kind: crate::store::MemberKind::Worker,
            host: "host".into(),
            pid: 42,
            started,
            heartbeat: started,
            slots: 2,
            running: running.iter().map(|id| id.to_string()).collect(),
            holding: None,
            version: String::new(),
            lease_ms: 0,
            apps: Vec::new(),
        };
        // w1's record still lists a run that ended; w2's not yet the one it claimed.
        let mut members = vec![member("w1", &["OLD"]), member("w2", &[])];
        let job = Job::with_command(&["true"]);
        let run = new_run(
            &job,
            NewRun::new("p.j", "p", serde_json::json!({}), started),
        )
        .claimed("w2", started);
        running_from_queue(&mut members, std::slice::from_ref(&run));
        assert!(members[0].running.is_empty());
        assert_eq!(members[1].running, vec![run.id]);
        assert_eq!(row(&members[1], started)[7], "1/2");
    }
}
