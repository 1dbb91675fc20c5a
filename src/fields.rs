//! Values of log fields as people read them (never Rust's `Debug` form): a duration as
//! `340ms`, `1.5s` or `2m 5s`.

use std::time::Duration;

/// `d` rounded for a log line: milliseconds under a second, a tenth of a second under a
/// minute, whole seconds above (pure).
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", d.as_secs_f64()),
        _ => humantime::format_duration(Duration::from_secs(d.as_secs())).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration(Duration::from_micros(1_234)), "1ms");
        assert_eq!(duration(Duration::from_millis(340)), "340ms");
        assert_eq!(duration(Duration::from_millis(1_540)), "1.5s");
        assert_eq!(duration(Duration::from_millis(125_900)), "2m 5s");
    }
}
