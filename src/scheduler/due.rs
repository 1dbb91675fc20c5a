//! What one scheduler pass does for one job (pure): which instants to fire, how many missed
//! ones to skip, and when to look again.
//!
//! The job's stored `next_fire` is the first instant not handled yet. Every schedule instant
//! from there up to `now` is due. The latest of them is *on time* if it is at most
//! [`MISSED_AFTER`] old (the usual case: the scheduler wakes at the instant); all others are
//! *missed* (the daemon was down, or the clock jumped forward). `catchup` decides:
//!
//! - `none`: fire the on-time instant only; skip every missed one.
//! - `once` (default): fire one run — the latest instant — for everything due.
//! - `all`: fire each due instant, at most [`CATCHUP_LIMIT`] (the latest ones).
//!
//! A clock jumping backwards needs nothing here: instants already handled are behind
//! `next_fire`, and the unique fire key refuses them anyway.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::manifest::Catchup;
use crate::schedule::Schedule;

/// A due instant older than this is missed rather than late.
pub const MISSED_AFTER: TimeDelta = TimeDelta::seconds(10);

/// `catchup: all` fires at most this many instants in one pass (the latest ones).
pub const CATCHUP_LIMIT: usize = 100;

/// Due instants counted one by one at most; beyond, the count jumps to the last hour before
/// `now` (a per-second schedule after a week of downtime would otherwise take seconds).
const SCAN_LIMIT: usize = 100_000;

/// The outcome of [`due`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Due {
    /// Instants to fire, oldest first.
    pub fire: Vec<DateTime<Utc>>,
    /// Due instants not fired (missed, per `catchup`); a lower bound past [`SCAN_LIMIT`].
    pub skipped: usize,
    /// `catchup: all` had more missed instants than [`CATCHUP_LIMIT`].
    pub capped: bool,
    /// The first instant after `now`, the new `next_fire` (`None`: it never fires again).
    pub next: Option<DateTime<Utc>>,
}

/// What is due of `schedule` (in `tz`) from `from` (the first instant not handled yet) up to
/// `now`, under `catchup`.
pub fn due(
    schedule: &Schedule,
    tz: Tz,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    catchup: Catchup,
) -> Due {
    let next = schedule.next_fire(tz, now);
    let mut latest: VecDeque<DateTime<Utc>> = VecDeque::with_capacity(CATCHUP_LIMIT + 1);
    let mut count = 0usize;
    let mut cursor = from - TimeDelta::milliseconds(1);
    while let Some(instant) = schedule.next_fire(tz, cursor) {
        if instant > now {
            break;
        }
        count += 1;
        if latest.len() == CATCHUP_LIMIT {
            latest.pop_front();
        }
        latest.push_back(instant);
        cursor = instant;
        if count == SCAN_LIMIT {
            cursor = cursor.max(now - TimeDelta::hours(1));
        }
    }
    let Some(&last) = latest.back() else {
        return Due {
            next,
            ..Due::default()
        };
    };
    let on_time = now - last <= MISSED_AFTER;
    let fire: Vec<DateTime<Utc>> = match catchup {
        Catchup::None if on_time => vec![last],
        Catchup::None => Vec::new(),
        Catchup::Once => vec![last],
        Catchup::All => latest.into_iter().collect(),
    };
    Due {
        skipped: count - fire.len(),
        capped: catchup == Catchup::All && count > CATCHUP_LIMIT,
        fire,
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn minutely() -> Schedule {
        Schedule::parse("* * * * *").unwrap()
    }

    #[test]
    fn nothing_is_due_before_the_next_instant() {
        let due = due(
            &minutely(),
            Tz::UTC,
            at("2026-01-01T10:01:00Z"),
            at("2026-01-01T10:00:59.999Z"),
            Catchup::Once,
        );
        assert_eq!(
            due,
            Due {
                next: Some(at("2026-01-01T10:01:00Z")),
                ..Due::default()
            }
        );
    }

    #[test]
    fn an_instant_reached_fires_once_whatever_the_policy() {
        for catchup in [Catchup::None, Catchup::Once, Catchup::All] {
            let due = due(
                &minutely(),
                Tz::UTC,
                at("2026-01-01T10:01:00Z"),
                at("2026-01-01T10:01:00.003Z"),
                catchup,
            );
            assert_eq!(due.fire, [at("2026-01-01T10:01:00Z")], "{catchup:?}");
            assert_eq!((due.skipped, due.capped), (0, false));
            assert_eq!(due.next, Some(at("2026-01-01T10:02:00Z")));
        }
    }

    #[test]
    fn an_instant_exactly_now_is_due_and_next_is_after_it() {
        let due = due(
            &minutely(),
            Tz::UTC,
            at("2026-01-01T10:01:00Z"),
            at("2026-01-01T10:01:00Z"),
            Catchup::None,
        );
        assert_eq!(due.fire, [at("2026-01-01T10:01:00Z")]);
        assert_eq!(due.next, Some(at("2026-01-01T10:02:00Z")));
    }

    /// Down from 10:00:30 to 10:05:30: 10:01 … 10:05 were missed.
    fn after_downtime(catchup: Catchup) -> Due {
        due(
            &minutely(),
            Tz::UTC,
            at("2026-01-01T10:01:00Z"),
            at("2026-01-01T10:05:30Z"),
            catchup,
        )
    }

    #[test]
    fn catchup_none_skips_every_missed_instant() {
        let due = after_downtime(Catchup::None);
        assert!(due.fire.is_empty());
        assert_eq!(due.skipped, 5);
        assert_eq!(due.next, Some(at("2026-01-01T10:06:00Z")));
    }

    #[test]
    fn catchup_once_fires_the_latest_missed_instant_only() {
        let due = after_downtime(Catchup::Once);
        assert_eq!(due.fire, [at("2026-01-01T10:05:00Z")]);
        assert_eq!(due.skipped, 4);
    }

    #[test]
    fn catchup_all_fires_each_missed_instant_in_order() {
        let due = after_downtime(Catchup::All);
        assert_eq!(
            due.fire,
            [
                at("2026-01-01T10:01:00Z"),
                at("2026-01-01T10:02:00Z"),
                at("2026-01-01T10:03:00Z"),
                at("2026-01-01T10:04:00Z"),
                at("2026-01-01T10:05:00Z"),
            ]
        );
        assert_eq!((due.skipped, due.capped), (0, false));
    }

    #[test]
    fn catchup_all_is_bounded_to_the_latest_instants() {
        let due = due(
            &minutely(),
            Tz::UTC,
            at("2026-01-01T00:00:00Z"),
            at("2026-01-02T00:00:30Z"),
            Catchup::All,
        );
        assert_eq!(due.fire.len(), CATCHUP_LIMIT);
        assert_eq!(due.fire.last(), Some(&at("2026-01-02T00:00:00Z")));
        assert!(due.fire.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(due.skipped, 24 * 60 + 1 - CATCHUP_LIMIT);
        assert!(due.capped);
    }

    #[test]
    fn catchup_none_still_fires_an_instant_a_little_late() {
        // The scheduler was busy for 3 s: 10:01 is late, not missed.
        let due = due(
            &minutely(),
            Tz::UTC,
            at("2026-01-01T10:01:00Z"),
            at("2026-01-01T10:01:03Z"),
            Catchup::None,
        );
        assert_eq!(due.fire, [at("2026-01-01T10:01:00Z")]);
    }

    #[test]
    fn a_long_downtime_of_a_per_second_schedule_is_bounded_work() {
        let every_second = Schedule::parse("* * * * * *").unwrap();
        let due = due(
            &every_second,
            Tz::UTC,
            at("2026-01-01T00:00:00Z"),
            at("2026-01-08T00:00:00Z"),
            Catchup::Once,
        );
        assert_eq!(due.fire, [at("2026-01-08T00:00:00Z")]);
        assert!(due.skipped >= SCAN_LIMIT);
        assert_eq!(due.next, Some(at("2026-01-08T00:00:01Z")));
    }
}
