//! Cron expressions as crontab users write them, and their next fire instants.
//!
//! Accepted: 5 fields (`min hour dom month dow`), 6 with seconds first, or a macro
//! (`@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly`, `@yearly`/`@annually`).
//! Day-of-week follows crontab (0 or 7 = Sunday, 1 = Monday), not the `cron` crate's 1 =
//! Sunday: numbers are rewritten to names before the crate sees them. Each field is checked
//! here first so that an error names the field and its allowed range. Pure: no clock.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::yaml::did_you_mean;

/// A parsed, valid schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    source: String,
    cron: cron::Schedule,
}

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
        Ok(Schedule {
            source: text.to_owned(),
            cron,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first `count` fire instants strictly after `after`, in `tz`.
    pub fn next_fires(&self, tz: Tz, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Tz>> {
        self.cron
            .after(&tz.from_utc_datetime(&after.naive_utc()))
            .take(count)
            .collect()
    }

    /// The first fire instant strictly after `after`, in UTC.
    pub fn next_fire(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_fires(tz, after, 1)
            .first()
            .map(|t| t.with_timezone(&Utc))
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
