//! `coco alive [--json]`: the workers and daemons working on the store, with the age of
//! their latest heartbeat (core4: `coco --alive`). One silent for longer than a zombie
//! interval is marked `lost?`: it was probably killed, and its runs will be taken back.
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

/// Silent for longer than this (the default zombie interval): probably gone.
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

/// The columns of [`row`].
pub const HEADER: &[&str] = &[
    "NAME",
    "KIND",
    "HOST",
    "PID",
    "UP",
    "HEARTBEAT",
    "RUNNING",
    "NOTE",
];

/// Has `member` been silent for so long that it is probably gone (pure)?
pub fn is_lost(member: &MemberRecord, now: DateTime<Utc>) -> bool {
    now - member.heartbeat > LOST_AFTER
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
        "lost? (no heartbeat)".to_string()
    } else {
        member.holding.clone().unwrap_or_default()
    };
    vec![
        member.name.clone(),
        member.kind.to_string(),
        member.host.clone(),
        member.pid.to_string(),
        human_duration(now - member.started),
        format!("{} ago", human_duration(silent)),
        format!("{}/{}", member.running.len(), member.slots),
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
        };
        let now = started + TimeDelta::seconds(120);
        assert_eq!(
            row(&member, now),
            [
                "host-1",
                "worker",
                "host",
                "42",
                "2m",
                "2s ago",
                "1/4",
                "projects paused: shop"
            ]
        );
        let later = now + TimeDelta::minutes(5);
        assert_eq!(row(&member, later)[7], "lost? (no heartbeat)");
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
        assert_eq!(row(&members[1], started)[6], "1/2");
    }
}
