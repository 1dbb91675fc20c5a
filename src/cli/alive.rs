//! `coco alive [--json]`: the workers and daemons working on the store, with the age of
//! their latest heartbeat (core4: `coco --alive`). One silent for longer than a zombie
//! interval is marked `lost?`: it was probably killed, and its runs will be taken back.

use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;

use super::list::human_duration;
use super::{GlobalArgs, JsonFlag, context, output};
use crate::store::MemberRecord;

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
    let members = store.list_members().await?;
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

/// Is any worker or daemon alive to run what is enqueued (pure)?
pub fn anyone_alive(members: &[MemberRecord], now: DateTime<Utc>) -> bool {
    members.iter().any(|member| !is_lost(member, now))
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
        member.kind.clone(),
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

    #[test]
    fn rows_show_ages_load_and_lost_members() {
        let started = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let member = MemberRecord {
            name: "host-1".into(),
            kind: "worker".into(),
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
        assert!(anyone_alive(std::slice::from_ref(&member), now));
        assert!(!anyone_alive(std::slice::from_ref(&member), later));
        assert!(!anyone_alive(&[], now));
    }
}
