//! The `daemon` section: the daemon's own timings and the app supervisor's, resolved with
//! their defaults, and the least value each may take (a value below it is a located problem
//! like any other of [`super::sources::check`]).

use std::time::Duration;

use super::raw::RawDaemon;

/// The timings of `coco daemon` (`daemon.*` in local.yaml); [`Default`] is what a daemon
/// runs with when the section says nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonConfig {
    /// How often the daemon reads `coco halt` from the store (and, without a worker,
    /// records itself for `coco alive`): `daemon.control_every`.
    pub control_every: Duration,
    /// How often old log records and settled fires are deleted: `daemon.prune_every`.
    pub prune_every: Duration,
    /// How often an app's status (its owner's heartbeat) is written: `daemon.app_status_every`.
    pub app_status_every: Duration,
    /// An app whose owner has not written its status this long is taken over by another
    /// daemon: `daemon.app_stale_after`.
    pub app_stale_after: Duration,
    /// After SIGTERM, how long an app's process group has before SIGKILL: `daemon.app_grace`.
    pub app_grace: Duration,
    /// An app's output tail is stored at most this often: `daemon.app_output_every`.
    pub app_output_every: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            control_every: Duration::from_secs(1),
            prune_every: Duration::from_secs(3600),
            app_status_every: Duration::from_secs(1),
            app_stale_after: Duration::from_secs(10),
            app_grace: Duration::from_secs(5),
            app_output_every: Duration::from_secs(1),
        }
    }
}

/// Each `daemon` key with the least value it may take and why.
pub const MINIMUMS: [(&str, Duration, &str); 6] = [
    (
        "daemon.control_every",
        Duration::from_millis(100),
        "the store is read this often",
    ),
    (
        "daemon.prune_every",
        Duration::from_secs(60),
        "pruning reads the whole log",
    ),
    (
        "daemon.app_status_every",
        Duration::from_millis(100),
        "each app's status is written this often",
    ),
    (
        "daemon.app_stale_after",
        Duration::from_secs(1),
        "a shorter one takes over apps whose daemon is alive",
    ),
    (
        "daemon.app_grace",
        Duration::from_millis(100),
        "an app is given this long to stop",
    ),
    (
        "daemon.app_output_every",
        Duration::from_millis(100),
        "each app's output is written this often",
    ),
];

/// The written values of `raw` as `(key, value)`, in the order of [`MINIMUMS`].
fn written(raw: &RawDaemon) -> [(&'static str, Option<Duration>); 6] {
    let value = |v: Option<crate::manifest::HumanDuration>| v.map(|v| v.0);
    [
        ("daemon.control_every", value(raw.control_every)),
        ("daemon.prune_every", value(raw.prune_every)),
        ("daemon.app_status_every", value(raw.app_status_every)),
        ("daemon.app_stale_after", value(raw.app_stale_after)),
        ("daemon.app_grace", value(raw.app_grace)),
        ("daemon.app_output_every", value(raw.app_output_every)),
    ]
}

/// What is wrong with the `daemon` values of one layer, as `(key, message)`: each below its
/// minimum.
pub fn check(raw: &RawDaemon) -> Vec<(&'static str, String)> {
    written(raw)
        .into_iter()
        .zip(MINIMUMS)
        .filter_map(|((key, value), (_, least, why))| {
            let value = value?;
            (value < least).then(|| {
                (
                    key,
                    format!(
                        "must be at least {} ({why})",
                        humantime::format_duration(least)
                    ),
                )
            })
        })
        .collect()
}

/// An app is taken over only once this many of its status writes in a row were missed:
/// `daemon.app_stale_after` must be at least this many `daemon.app_status_every`.
pub const STATUS_WRITES_MISSED: u32 = 3;

/// The two keys the merged section must keep apart ([`check_merged`]).
pub const STATUS_KEYS: [&str; 2] = ["daemon.app_stale_after", "daemon.app_status_every"];

/// What is wrong between the keys of the merged section (pure): with
/// `daemon.app_stale_after` under [`STATUS_WRITES_MISSED`] × `daemon.app_status_every`,
/// a daemon would take over apps whose owner is alive and writing. The problem as told of
/// each key of [`STATUS_KEYS`], in that order: the caller places it at the one written last.
pub fn check_merged(daemon: &DaemonConfig) -> Option<[String; 2]> {
    let (stale, every) = (daemon.app_stale_after, daemon.app_status_every);
    let least = every.saturating_mul(STATUS_WRITES_MISSED);
    if stale >= least {
        return None;
    }
    let show = |d: Duration| humantime::format_duration(d).to_string();
    Some([
        format!(
            "must be at least {STATUS_WRITES_MISSED} × daemon.app_status_every ({}): with a \
             status written every {}, a shorter one takes over apps whose daemon is alive",
            show(least),
            show(every)
        ),
        format!(
            "must be at most daemon.app_stale_after / {STATUS_WRITES_MISSED} ({}): an app \
             whose status is older than {} is taken over, so it is written at least \
             {STATUS_WRITES_MISSED} times in that time",
            // To the millisecond down: 10s / 3 is shown as 3s 333ms.
            show(Duration::from_millis(
                u64::try_from((stale / STATUS_WRITES_MISSED).as_millis()).unwrap_or(u64::MAX)
            )),
            show(stale)
        ),
    ])
}

/// The merged `daemon` section with the defaults for what it does not say.
pub fn resolve(raw: &RawDaemon) -> DaemonConfig {
    let defaults = DaemonConfig::default();
    let or =
        |value: Option<crate::manifest::HumanDuration>, default| value.map_or(default, |v| v.0);
    DaemonConfig {
        control_every: or(raw.control_every, defaults.control_every),
        prune_every: or(raw.prune_every, defaults.prune_every),
        app_status_every: or(raw.app_status_every, defaults.app_status_every),
        app_stale_after: or(raw.app_stale_after, defaults.app_stale_after),
        app_grace: or(raw.app_grace, defaults.app_grace),
        app_output_every: or(raw.app_output_every, defaults.app_output_every),
    }
}

/// Every `daemon` key with its written value as text (`None`: unset).
pub fn values(raw: &RawDaemon) -> [(&'static str, Option<String>); 6] {
    written(raw).map(|(key, value)| {
        (
            key,
            value.map(|v| humantime::format_duration(v).to_string()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::HumanDuration;

    #[test]
    fn the_defaults_stay_above_their_minimums() {
        let defaults = DaemonConfig::default();
        let raw = RawDaemon {
            control_every: Some(HumanDuration(defaults.control_every)),
            prune_every: Some(HumanDuration(defaults.prune_every)),
            app_status_every: Some(HumanDuration(defaults.app_status_every)),
            app_stale_after: Some(HumanDuration(defaults.app_stale_after)),
            app_grace: Some(HumanDuration(defaults.app_grace)),
            app_output_every: Some(HumanDuration(defaults.app_output_every)),
        };
        assert_eq!(check(&raw), []);
        assert_eq!(resolve(&raw), defaults);
        assert_eq!(resolve(&RawDaemon::default()), defaults);
    }

    #[test]
    fn a_value_below_its_minimum_names_the_minimum() {
        let raw = RawDaemon {
            app_stale_after: Some(HumanDuration(Duration::from_millis(500))),
            prune_every: Some(HumanDuration(Duration::from_secs(60))),
            control_every: Some(HumanDuration(Duration::from_millis(10))),
            ..RawDaemon::default()
        };
        let problems = check(&raw);
        assert_eq!(
            problems,
            [
                (
                    "daemon.control_every",
                    "must be at least 100ms (the store is read this often)".to_owned()
                ),
                (
                    "daemon.app_stale_after",
                    "must be at least 1s (a shorter one takes over apps whose daemon is alive)"
                        .to_owned()
                ),
            ]
        );
    }

    #[test]
    fn apps_are_taken_over_only_after_three_missed_status_writes() {
        let defaults = DaemonConfig::default();
        assert_eq!(check_merged(&defaults), None);
        let with = |stale: u64, every: u64| DaemonConfig {
            app_stale_after: Duration::from_secs(stale),
            app_status_every: Duration::from_secs(every),
            ..defaults
        };
        assert_eq!(check_merged(&with(3, 1)), None, "exactly three is enough");
        let [stale, every] = check_merged(&with(5, 2)).expect("5s is under 3 × 2s");
        assert!(
            stale.starts_with("must be at least 3 × daemon.app_status_every (6s)"),
            "{stale}"
        );
        assert!(
            every.starts_with("must be at most daemon.app_stale_after / 3 (1s 666ms"),
            "{every}"
        );
    }

    #[test]
    fn written_values_win_over_the_defaults() {
        let raw = RawDaemon {
            app_grace: Some(HumanDuration(Duration::from_secs(30))),
            ..RawDaemon::default()
        };
        let resolved = resolve(&raw);
        assert_eq!(resolved.app_grace, Duration::from_secs(30));
        assert_eq!(resolved.app_status_every, Duration::from_secs(1));
        assert_eq!(
            values(&raw)[4],
            ("daemon.app_grace", Some("30s".to_owned()))
        );
        assert_eq!(values(&raw)[0], ("daemon.control_every", None));
    }
}
