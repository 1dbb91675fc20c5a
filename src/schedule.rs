//! Cron expressions as crontab users write them, and their next fire instants.
//!
//! Accepted: 5 fields (`min hour dom month dow`), 6 with seconds first, or a macro
//! (`@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly`, `@yearly`/`@annually`).
//! Day-of-week follows crontab (0 or 7 = Sunday, 1 = Monday), not the `cron` crate's 1 =
//! Sunday: numbers are rewritten to names before the crate sees them. Each field is checked
//! here first so that an error names the field and its allowed range. Pure: no clock.
//!
//! Daylight saving time, as Vixie cron does it, so that no fire is doubled or silently lost:
//! a schedule whose hour field is a wildcard (`*`, `*/2`: it fires through the day like an
//! interval) fires at every instant whose wall-clock time matches — both passes of a repeated
//! hour, nothing for the times a gap skips (they do not exist). A fixed-hour schedule
//! (`30 2 * * *`) fires once per wall-clock time: in a repeated hour only on the first pass,
//! and a time a gap skips fires at the end of the gap (03:00 for 02:30 when clocks jump from
//! 02:00 to 03:00).

use std::str::FromStr;

use chrono::offset::LocalResult;
use chrono::{DateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use crate::yaml::did_you_mean;

/// A parsed, valid schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    source: String,
    cron: cron::Schedule,
    /// The hour field is a wildcard (see the module docs on daylight saving time).
    every_hour: bool,
}

/// Candidates the `cron` crate yields that are looked at before giving up (a fixed-hour
/// schedule skips at most one per repeated hour).
const CANDIDATES: usize = 64;

const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 0 1 1 *"),
    ("@annually", "0 0 0 1 1 *"),
    ("@monthly", "0 0 0 1 * *"),
    ("@weekly", "0 0 0 * * SUN"),
    ("@daily", "0 0 0 * * *"),
    ("@midnight", "0 0 0 * * *"),
    ("@hourly", "0 0 * * * *"),
];

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

/// One field's name, numeric range and symbolic names (index = value - min).
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &MONTHS,
};
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &DAYS,
};

impl Schedule {
    /// Parse a schedule, or say what is wrong with it.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let six_fields = if text.starts_with('@') {
            let lower = text.to_ascii_lowercase();
            match MACROS.iter().find(|(name, _)| *name == lower) {
                Some((_, expansion)) => (*expansion).to_owned(),
                None => {
                    let hint = did_you_mean(&lower, MACROS.iter().map(|(name, _)| *name))
                        .map(|m| format!(" (did you mean `{m}`?)"))
                        .unwrap_or_default();
                    return Err(format!(
                        "unknown schedule macro `{text}`{hint}; known: @hourly, @daily, @weekly, @monthly, @yearly"
                    ));
                }
            }
        } else {
            let fields: Vec<&str> = text.split_whitespace().collect();
            let layout: &[Field] = match fields.len() {
                5 => &[MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK],
                6 => &[SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK],
                n => {
                    return Err(format!(
                        "a schedule has 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or is a macro such as @daily; `{text}` has {n}"
                    ));
                }
            };
            let mut rewritten = Vec::with_capacity(6);
            if fields.len() == 5 {
                rewritten.push("0".to_owned());
            }
            for (field, spec) in layout.iter().zip(&fields) {
                check_field(field, spec)?;
                rewritten.push(if field.name == DAY_OF_WEEK.name {
                    day_of_week_names(spec)
                } else {
                    (*spec).to_owned()
                });
            }
            rewritten.join(" ")
        };
        let cron = cron::Schedule::from_str(&six_fields)
            .map_err(|e| format!("invalid schedule `{text}`: {e}"))?;
        if let Some(why) = never_fires(&cron) {
            return Err(format!("schedule `{text}` never fires: {why}"));
        }
        let every_hour = six_fields
            .split_whitespace()
            .nth(2)
            .is_some_and(|hour| hour.starts_with('*'));
        Ok(Schedule {
            source: text.to_owned(),
            cron,
            every_hour,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first `count` fire instants strictly after `after`, in `tz`.
    pub fn next_fires(&self, tz: Tz, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Tz>> {
        let mut fires = Vec::with_capacity(count);
        let mut from = after;
        while fires.len() < count {
            let Some(next) = self.next_fire(tz, from) else {
                break;
            };
            fires.push(next.with_timezone(&tz));
            from = next;
        }
        fires
    }

    /// The first fire instant strictly after `after`, in UTC (daylight saving time as the
    /// module docs say).
    pub fn next_fire(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local_after = tz.from_utc_datetime(&after.naive_utc());
        for candidate in self.cron.after(&local_after).take(CANDIDATES) {
            let instant = candidate.with_timezone(&Utc);
            // Around a repeated hour the crate may offer the first pass of a time already
            // passed in the second.
            if instant <= after {
                continue;
            }
            if let Some(moved) = self.fire_in_transition(tz, after, instant) {
                return Some(moved);
            }
            if !self.every_hour && second_pass(tz, &candidate) {
                continue;
            }
            return Some(instant);
        }
        None
    }

    /// A fire the `cron` crate's wall-clock walk misses between `after` and `before`
    /// (exclusive): for a fixed-hour schedule, the end of a gap that skipped a time it
    /// matches; for an every-hour schedule, a match in the second pass of a repeated hour.
    fn fire_in_transition(
        &self,
        tz: Tz,
        after: DateTime<Utc>,
        before: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        for (at, old, new) in transitions(tz, after, before) {
            let shift = TimeDelta::seconds(i64::from(new - old).abs());
            // The wall-clock times of the change, [wall, wall + shift): a gap that does not
            // exist (clocks forward), or an hour lived a second time from `at` on (back).
            let wall = (at + TimeDelta::seconds(i64::from(new.min(old)))).naive_utc();
            let probe = Utc.from_utc_datetime(&(wall - TimeDelta::seconds(1)));
            let Some(first) = self.cron.after(&probe).next().map(|t| t.naive_utc()) else {
                continue;
            };
            if first >= wall + shift {
                continue;
            }
            let fire = if new > old {
                // A gap: only fixed-hour schedules move the skipped time to its end.
                if self.every_hour {
                    continue;
                }
                at
            } else {
                // A repeat: only every-hour schedules fire in the second pass.
                if !self.every_hour {
                    continue;
                }
                Utc.from_utc_datetime(&(first - TimeDelta::seconds(i64::from(new))))
            };
            if fire > after && fire < before {
                return Some(fire);
            }
        }
        None
    }
}

/// Why a schedule matches no date at all, if it does not: every day of the month it names is
/// past the end of every month it names (`0 0 31 2 *`: February has no day 31). The day of
/// the week cannot make it so: a date falls on each weekday in some year.
fn never_fires(cron: &cron::Schedule) -> Option<String> {
    use cron::TimeUnitSpec;
    let months: Vec<u32> = cron.months().iter().collect();
    let days: Vec<u32> = cron.days_of_month().iter().collect();
    // February counts its 29th: leap years come.
    let length = |month: u32| match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if months
        .iter()
        .any(|month| days.iter().any(|day| *day <= length(*month)))
    {
        return None;
    }
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let names: Vec<&str> = months
        .iter()
        .filter_map(|m| NAMES.get(*m as usize - 1).copied())
        .collect();
    let days: Vec<String> = days.iter().map(u32::to_string).collect();
    let (verb, days) = (
        if names.len() == 1 { "has" } else { "have" },
        if days.len() <= 3 {
            format!("day {}", either(&days, "or"))
        } else {
            format!("day {} or later", days[0])
        },
    );
    Some(format!("{} {verb} no {days}", either(&names, "and")))
}

/// `a`, `a and b`, `a, b and c`.
fn either<S: AsRef<str>>(items: &[S], word: &str) -> String {
    match items {
        [] => String::new(),
        [only] => only.as_ref().to_owned(),
        [rest @ .., last] => format!(
            "{} {word} {}",
            rest.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

/// The UTC offset changes of `tz` in `(after, before]`: (instant, old offset, new offset), in
/// seconds east of UTC. Offsets change a few times a year: look a day at a time, then bisect
/// to the second.
fn transitions(
    tz: Tz,
    after: DateTime<Utc>,
    before: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, i32, i32)> {
    let offset = |secs: i64| {
        DateTime::from_timestamp(secs, 0).map_or(0, |t| {
            tz.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc()
        })
    };
    let (first, last) = (after.timestamp(), before.timestamp());
    let mut found = Vec::new();
    let mut day_start = first;
    while day_start < last {
        let day_end = (day_start + 86_400).min(last);
        let (old, new) = (offset(day_start), offset(day_end));
        if old != new {
            let (mut low, mut high) = (day_start, day_end);
            while high - low > 1 {
                let middle = low + (high - low) / 2;
                if offset(middle) == old {
                    low = middle;
                } else {
                    high = middle;
                }
            }
            if let Some(at) = DateTime::from_timestamp(high, 0) {
                found.push((at, old, new));
            }
        }
        day_start = day_end;
    }
    found
}

/// Is `candidate` the second instant of a wall-clock time that happens twice?
fn second_pass(tz: Tz, candidate: &DateTime<Tz>) -> bool {
    match tz.from_local_datetime(&candidate.naive_local()) {
        LocalResult::Ambiguous(first, _) => *candidate != first,
        _ => false,
    }
}

/// Check one field: a `,` list of `*`, `?`, `value`, `a-b`, each optionally `/step`.
fn check_field(field: &Field, spec: &str) -> Result<(), String> {
    for item in spec.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(n) if n >= 1 && n <= field.max.max(1) => {}
                _ => {
                    return Err(format!(
                        "{} field `{spec}`: step `{step}` must be a whole number from 1 to {}",
                        field.name,
                        field.max.max(1)
                    ));
                }
            }
        }
        if range == "*"
            || (range == "?" && (field.name == "day-of-month" || field.name == "day-of-week"))
        {
            continue;
        }
        let (low, high) = match range.split_once('-') {
            Some((low, high)) => (low, Some(high)),
            None => (range, None),
        };
        let low = field_value(field, spec, low)?;
        if let Some(high) = high {
            let high = field_value(field, spec, high)?;
            if high < low {
                return Err(format!(
                    "{} field `{spec}`: range `{range}` runs backwards",
                    field.name
                ));
            }
        }
    }
    Ok(())
}

fn field_value(field: &Field, spec: &str, token: &str) -> Result<u32, String> {
    if let Ok(n) = token.parse::<u32>() {
        if n < field.min || n > field.max {
            return Err(format!(
                "{} field `{spec}`: {n} is out of range {}-{}",
                field.name, field.min, field.max
            ));
        }
        return Ok(n);
    }
    let upper = token.to_ascii_uppercase();
    match field.names.iter().position(|name| *name == upper) {
        Some(index) => Ok(field.min + index as u32),
        None if field.names.is_empty() => Err(format!(
            "{} field `{spec}`: `{token}` is not a number from {} to {}",
            field.name, field.min, field.max
        )),
        None => Err(format!(
            "{} field `{spec}`: `{token}` is neither a number from {} to {} nor one of {}",
            field.name,
            field.min,
            field.max,
            field.names[..field.names.len().min(12)].join(",")
        )),
    }
}

/// Rewrite crontab day-of-week numbers (0/7 = Sunday) into names the `cron` crate reads the
/// same way. A range ending in 7 (`5-7`: Friday to Sunday) becomes `FRI-SAT,SUN`.
fn day_of_week_names(spec: &str) -> String {
    let name = |token: &str| -> String {
        match token.parse::<usize>() {
            Ok(n) if n < DAYS.len() => DAYS[n].to_owned(),
            _ => token.to_ascii_uppercase(),
        }
    };
    spec.split(',')
        .map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            let with_step = |r: String| match step {
                Some(step) => format!("{r}/{step}"),
                None => r,
            };
            match range.split_once('-') {
                Some((low, "7")) if step.is_none() && low != "0" && low != "7" => {
                    format!("{}-SAT,SUN", name(low))
                }
                Some((low, high)) => with_step(format!("{}-{}", name(low), name(high))),
                None if range == "*" || range == "?" => with_step(range.to_owned()),
                None => with_step(name(range)),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn dates_that_do_not_exist_never_fire() {
        let why = |text: &str| Schedule::parse(text).unwrap_err();
        assert_eq!(
            why("0 0 31 2 *"),
            "schedule `0 0 31 2 *` never fires: February has no day 31"
        );
        assert_eq!(
            why("0 0 30,31 feb *"),
            "schedule `0 0 30,31 feb *` never fires: February has no day 30 or 31"
        );
        assert_eq!(
            why("0 0 31 4,6,9,11 MON"),
            "schedule `0 0 31 4,6,9,11 MON` never fires: April, June, September and November have no day 31"
        );
        for fires in [
            "0 0 29 2 *",
            "0 0 31 1-2 *",
            "0 0 30,31 2,4 *",
            "0 0 31 * *",
        ] {
            assert!(Schedule::parse(fires).is_ok(), "{fires}");
        }
        let leap = Schedule::parse("0 0 29 2 *").unwrap();
        assert_eq!(
            leap.next_fire(Tz::UTC, at("2026-03-01T00:00:00Z")),
            Some(at("2028-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn five_fields_fire_on_whole_minutes() {
        let s = Schedule::parse("*/5 * * * *").unwrap();
        let next: Vec<String> = s
            .next_fires(Tz::UTC, at("2026-01-01T10:02:30Z"), 3)
            .iter()
            .map(|t| t.to_rfc3339())
            .collect();
        assert_eq!(
            next,
            [
                "2026-01-01T10:05:00+00:00",
                "2026-01-01T10:10:00+00:00",
                "2026-01-01T10:15:00+00:00"
            ]
        );
    }

    #[test]
    fn six_fields_have_seconds_first() {
        let s = Schedule::parse("*/10 * * * * *").unwrap();
        assert_eq!(
            s.next_fire(Tz::UTC, at("2026-01-01T10:00:01Z")),
            Some(at("2026-01-01T10:00:10Z"))
        );
    }

    #[test]
    fn day_of_week_counts_like_crontab() {
        // 2026-01-05 is a Monday.
        let monday = Schedule::parse("0 9 * * 1").unwrap();
        let fire = monday
            .next_fire(Tz::UTC, at("2026-01-01T00:00:00Z"))
            .unwrap();
        assert_eq!(fire, at("2026-01-05T09:00:00Z"));
        assert_eq!(fire.weekday(), chrono::Weekday::Mon);
        for sunday in ["0 9 * * 0", "0 9 * * 7", "0 9 * * SUN"] {
            let fire = Schedule::parse(sunday)
                .unwrap()
                .next_fire(Tz::UTC, at("2026-01-01T00:00:00Z"))
                .unwrap();
            assert_eq!(fire.weekday(), chrono::Weekday::Sun, "{sunday}");
        }
        let weekend = Schedule::parse("0 9 * * 6-7").unwrap();
        let fires = weekend.next_fires(Tz::UTC, at("2026-01-01T00:00:00Z"), 2);
        assert_eq!(fires[0].weekday(), chrono::Weekday::Sat);
        assert_eq!(fires[1].weekday(), chrono::Weekday::Sun);
        let weekdays = Schedule::parse("0 9 * * 1-5").unwrap();
        let fires = weekdays.next_fires(Tz::UTC, at("2026-01-03T00:00:00Z"), 5);
        assert!(fires.iter().all(|f| f.weekday().number_from_monday() <= 5));
    }

    #[test]
    fn macros_expand() {
        let daily = Schedule::parse("@daily").unwrap();
        assert_eq!(
            daily.next_fire(Tz::UTC, at("2026-01-01T10:00:00Z")),
            Some(at("2026-01-02T00:00:00Z"))
        );
        let hourly = Schedule::parse("@HOURLY").unwrap();
        assert_eq!(
            hourly.next_fire(Tz::UTC, at("2026-01-01T10:00:00Z")),
            Some(at("2026-01-01T11:00:00Z"))
        );
    }

    #[test]
    fn time_zone_applies() {
        let s = Schedule::parse("0 3 * * *").unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 03:00 in Berlin in January is 02:00 UTC.
        assert_eq!(
            s.next_fire(berlin, at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-01T02:00:00Z"))
        );
    }

    fn berlin() -> Tz {
        "Europe/Berlin".parse().unwrap()
    }

    fn fires(schedule: &str, tz: Tz, after: &str, count: usize) -> Vec<DateTime<Utc>> {
        Schedule::parse(schedule)
            .unwrap()
            .next_fires(tz, at(after), count)
            .iter()
            .map(|t| t.with_timezone(&Utc))
            .collect()
    }

    // Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    #[test]
    fn a_fixed_time_skipped_by_the_spring_gap_fires_at_its_end() {
        assert_eq!(
            fires("30 2 * * *", berlin(), "2026-03-28T12:00:00Z", 2),
            [at("2026-03-29T01:00:00Z"), at("2026-03-30T00:30:00Z")]
        );
        // Two skipped times still fire once.
        assert_eq!(
            fires("0,30 2 * * *", berlin(), "2026-03-28T12:00:00Z", 2),
            [at("2026-03-29T01:00:00Z"), at("2026-03-30T00:00:00Z")]
        );
        // A time outside the gap is not moved.
        assert_eq!(
            fires("30 3 * * *", berlin(), "2026-03-28T12:00:00Z", 1),
            [at("2026-03-29T01:30:00Z")]
        );
    }

    #[test]
    fn an_interval_schedule_has_nothing_in_the_spring_gap() {
        assert_eq!(
            fires("*/30 * * * *", berlin(), "2026-03-29T00:10:00Z", 3),
            [
                at("2026-03-29T00:30:00Z"), // 01:30 CET
                at("2026-03-29T01:00:00Z"), // 03:00 CEST
                at("2026-03-29T01:30:00Z"),
            ]
        );
    }

    // Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:xx happens twice.
    #[test]
    fn a_fixed_time_in_the_repeated_autumn_hour_fires_once() {
        assert_eq!(
            fires("30 2 * * *", berlin(), "2026-10-24T12:00:00Z", 2),
            [at("2026-10-25T00:30:00Z"), at("2026-10-26T01:30:00Z")]
        );
        // Asked from inside the second pass, the first pass is not offered again.
        assert_eq!(
            fires("30 2 * * *", berlin(), "2026-10-25T01:10:00Z", 1),
            [at("2026-10-26T01:30:00Z")]
        );
    }

    #[test]
    fn an_interval_schedule_fires_in_both_passes_of_the_autumn_hour() {
        assert_eq!(
            fires("*/30 * * * *", berlin(), "2026-10-25T00:10:00Z", 4),
            [
                at("2026-10-25T00:30:00Z"), // 02:30 CEST
                at("2026-10-25T01:00:00Z"), // 02:00 CET
                at("2026-10-25T01:30:00Z"), // 02:30 CET
                at("2026-10-25T02:00:00Z"), // 03:00 CET
            ]
        );
    }

    #[test]
    fn a_daily_job_fires_once_a_day_through_a_year_of_clock_changes() {
        let year = fires("30 2 * * *", berlin(), "2025-12-31T23:59:59Z", 365);
        let days: std::collections::BTreeSet<_> = year
            .iter()
            .map(|t| t.with_timezone(&berlin()).date_naive())
            .collect();
        assert_eq!(days.len(), 365, "one fire on each day of 2026");
        assert!(days.iter().all(|d| d.year() == 2026));
    }

    #[test]
    fn errors_name_the_field_and_range() {
        let cases = [
            ("61 * * * *", "minute field `61`: 61 is out of range 0-59"),
            ("* 24 * * *", "hour field `24`: 24 is out of range 0-23"),
            (
                "* * 0 * *",
                "day-of-month field `0`: 0 is out of range 1-31",
            ),
            ("* * * 13 *", "month field `13`: 13 is out of range 1-12"),
            ("* * * * 8", "day-of-week field `8`: 8 is out of range 0-7"),
            ("*/0 * * * *", "minute field `*/0`: step `0`"),
            ("* * * * * * *", "has 7"),
            ("* * *", "has 3"),
            ("5-1 * * * *", "runs backwards"),
            ("@dayly", "did you mean `@daily`?"),
            ("x * * * *", "`x` is not a number"),
            ("* * * FOO *", "`FOO` is neither"),
        ];
        for (text, expected) in cases {
            let error = Schedule::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
