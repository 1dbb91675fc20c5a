//! The lines kept of a run's or an app's output ([`crate::process::TailBuffer`]): how each
//! is written, so `coco logs` reads job runs and apps alike.

use chrono::Utc;

/// One kept output line: `HH:MM:SS.mmm out text` (UTC).
pub fn line(at: chrono::DateTime<Utc>, tag: &str, text: &str) -> String {
    format!("{} {tag} {text}", at.format("%H:%M:%S%.3f"))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_line_is_its_utc_time_to_the_millisecond_its_tag_and_its_text() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 9, 5, 7).unwrap()
            + chrono::TimeDelta::milliseconds(42);
        assert_eq!(line(at, "err", "oops"), "09:05:07.042 err oops");
    }
}
