//! The mirror of `local.yaml` as written — the core4 form — before anything is resolved.
//!
//! Every key is optional and unknown keys are rejected (with a "did you mean" through
//! [`crate::yaml::Document::deserialize`]). One [`RawConfig`] is one layer of the cascade
//! (defaults, a file, one environment variable, one flag); figment merges the layers and the
//! merged `RawConfig` is resolved into a [`super::Config`]. serde_yaml stays behind this seam.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::Level;
use crate::manifest::HumanDuration;
use crate::yaml::Value;

/// The sections of `local.yaml` and their keys, as `section.key` (the names shown to users).
pub const KEYS: &[&str] = &[
    "DEFAULT.mongo_url",
    "DEFAULT.mongo_database",
    "logging.mongodb",
    "logging.stderr",
    "logging.stdout",
    "folder.home",
    "folder.state",
    "folder.templates",
    "worker.slots",
    "worker.max_cpu",
    "worker.min_free_ram",
    "worker.max_output",
    "worker.zombie_after",
    "worker.max_lost",
    "worker.containment",
    "daemon.control_every",
    "daemon.prune_every",
    "daemon.app_status_every",
    "daemon.app_stale_after",
    "daemon.app_grace",
    "daemon.app_output_every",
    "api.enabled",
    "api.listen",
    "api.open_metrics",
    "fleet.host",
    "fleet.renew_every",
    "fleet.lease",
];

/// The top level of a file: only used to reject unknown sections (each section is then read
/// on its own, so an error in one does not hide the errors in another).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read for its unknown-key check only
pub struct RawOutline {
    #[serde(rename = "DEFAULT", alias = "default")]
    pub default: Option<Value>,
    pub logging: Option<Value>,
    pub folder: Option<Value>,
    pub worker: Option<Value>,
    pub daemon: Option<Value>,
    pub api: Option<Value>,
    pub fleet: Option<Value>,
}

/// One layer of the configuration.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(rename = "DEFAULT", alias = "default", default)]
    pub default: RawDefault,
    #[serde(default)]
    pub logging: RawLogging,
    #[serde(default)]
    pub folder: RawFolder,
    #[serde(default)]
    pub worker: RawWorker,
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub fleet: RawFleet,
}

/// `DEFAULT`: where the state store is.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefault {
    /// `mongodb://…`; absent (or empty) means the embedded store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mongo_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mongo_database: Option<String>,
}

/// `logging`: a level per destination; `~` turns a destination off.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub mongodb: Option<LevelSetting>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub stderr: Option<LevelSetting>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub stdout: Option<LevelSetting>,
}

/// `folder`: where projects, state and templates live.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFolder {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<PathBuf>,
}

/// `worker`: capacity limits and the zombie interval of this host's workers.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorker {
    /// Jobs run at once on this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<u32>,
    /// Take no new job above this CPU use, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpu: Option<f64>,
    /// Take no new job below this much free memory, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_free_ram: Option<u64>,
    /// Output kept per run (its tail), e.g. `1MiB` (the default), `512KiB`, or bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output: Option<ByteSize>,
    /// A running run whose worker has not heartbeated for this long is taken back, e.g.
    /// `60s` (the default) or `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zombie_after: Option<HumanDuration>,
    /// A run lost with its worker this many times in a row ends as error (default 3, at
    /// least 1); before that it is tried again without spending an attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lost: Option<u32>,
    /// How each run's process tree is held: `auto` (the default: a cgroup per run where the
    /// host allows it, else a subreaper), `cgroup`, or `subreaper`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containment: Option<crate::process::contain::Mode>,
}

/// `daemon`: the daemon's timings and its app supervisor's (see [`super::daemon`]), each a
/// duration such as `1s` or `500ms`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    /// How often the halt switch is read (default `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_every: Option<HumanDuration>,
    /// How often old log records and fires are deleted (default `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_every: Option<HumanDuration>,
    /// How often each app's status is written (default `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_status_every: Option<HumanDuration>,
    /// An app whose owner is silent this long is taken over (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_stale_after: Option<HumanDuration>,
    /// After SIGTERM, how long an app has before SIGKILL (default `5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_grace: Option<HumanDuration>,
    /// How often an app's output tail is stored (default `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_output_every: Option<HumanDuration>,
}

/// `api`: the HTTP API a `coco daemon` serves.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// `false`: the daemon serves no HTTP at all (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `IP:PORT` to listen on (default `127.0.0.1:5001`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `true`: `GET /metrics` answers without a token (default `false`: a token of any role
    /// that sees every project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_metrics: Option<bool>,
}

/// `fleet`: this host among the daemons sharing one store.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    /// The name this host goes by (default: the machine's hostname).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// How often a daemon or worker renews its lease (its record, its runs' heartbeat):
    /// default `2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_every: Option<HumanDuration>,
    /// A host whose lease is this old is lost (`coco alive`) and its apps are taken over:
    /// default `10s` (`daemon.app_stale_after`, if set, wins for apps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<HumanDuration>,
}

/// A size in bytes, written as a number of bytes or with a unit: `512KiB`, `1MiB`, `1GiB`
/// (`KB`/`MB`/`GB` are read as the same powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parse `1048576`, `1MiB`, `512 KiB`, `2mb`.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a size (e.g. 1MiB, 512KiB, 65536)"))?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` (use B, KiB, MiB or GiB)"
                ));
            }
        };
        number
            .checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.0;
        match bytes {
            0 => write!(f, "0"),
            b if b % (1 << 30) == 0 => write!(f, "{}GiB", b >> 30),
            b if b % (1 << 20) == 0 => write!(f, "{}MiB", b >> 20),
            b if b % (1 << 10) == 0 => write!(f, "{}KiB", b >> 10),
            b => write!(f, "{b}"),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size such as 1MiB, 512KiB or a number of bytes")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A written level: a name, or `~` (or `off`) for "this destination is off".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelSetting(pub Option<Level>);

impl LevelSetting {
    /// Parse a level name (any case), or `~`, `off`, `none`, `null` or nothing for off.
    pub fn parse(text: &str) -> Option<LevelSetting> {
        let text = text.trim();
        if ["", "~", "off", "none", "null"]
            .iter()
            .any(|off| text.eq_ignore_ascii_case(off))
        {
            return Some(LevelSetting(None));
        }
        text.parse().ok().map(|level| LevelSetting(Some(level)))
    }
}

impl Serialize for LevelSetting {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.map_or("off", Level::name))
    }
}

impl<'de> Deserialize<'de> for LevelSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LevelVisitor;

        impl<'de> Visitor<'de> for LevelVisitor {
            type Value = LevelSetting;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a level (DEBUG, INFO, WARNING, ERROR, CRITICAL) or ~ for off")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<LevelSetting, E> {
                LevelSetting::parse(text)
                    .ok_or_else(|| E::invalid_value(Unexpected::Str(text), &self))
            }

            fn visit_unit<E: de::Error>(self) -> Result<LevelSetting, E> {
                Ok(LevelSetting(None))
            }

            fn visit_none<E: de::Error>(self) -> Result<LevelSetting, E> {
                Ok(LevelSetting(None))
            }

            fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<LevelSetting, D::Error> {
                inner.deserialize_any(self)
            }
        }

        deserializer.deserialize_any(LevelVisitor)
    }
}

/// A key that is written is `Some`, even when its value is `~` (which means "off", not
/// "not set": `stdout: ~` must override a lower layer's `stdout: INFO`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Result<RawConfig, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_written_tilde_turns_a_level_off_and_an_absent_key_stays_unset() {
        let config = raw("logging:\n  stdout: ~\n  stderr: debug\n").unwrap();
        assert_eq!(config.logging.stdout, Some(LevelSetting(None)));
        assert_eq!(
            config.logging.stderr,
            Some(LevelSetting(Some(Level::Debug)))
        );
        assert_eq!(config.logging.mongodb, None);
    }

    #[test]
    fn bad_levels_name_the_choices() {
        let error = raw("logging:\n  stderr: LOUD\n").unwrap_err();
        assert!(error.contains("expected a level (DEBUG, INFO"), "{error}");
    }

    #[test]
    fn every_listed_key_is_accepted() {
        for key in KEYS {
            let (section, name) = key.split_once('.').unwrap();
            let value = match name {
                "slots" | "max_cpu" | "min_free_ram" | "max_output" | "max_lost" => "1",
                "zombie_after" => "90s",
                "renew_every" | "lease" => "3s",
                _ if section == "daemon" => "1h",
                "containment" => "subreaper",
                "enabled" | "open_metrics" => "true",
                "listen" => "127.0.0.1:5001",
                _ => "INFO",
            };
            let text = format!("{section}:\n  {name}: {value}\n");
            assert!(raw(&text).is_ok(), "{key}: {:?}", raw(&text));
        }
    }

    #[test]
    fn sizes_read_with_or_without_a_unit() {
        assert_eq!(ByteSize::parse("65536"), Ok(ByteSize(65536)));
        assert_eq!(ByteSize::parse("1MiB"), Ok(ByteSize(1 << 20)));
        assert_eq!(ByteSize::parse("512 kb"), Ok(ByteSize(512 << 10)));
        assert_eq!(ByteSize::parse("2G"), Ok(ByteSize(2 << 30)));
        assert!(
            ByteSize::parse("1TB")
                .unwrap_err()
                .contains("unknown size unit `tb`")
        );
        assert!(ByteSize::parse("lots").unwrap_err().contains("not a size"));
        assert_eq!(ByteSize(1 << 20).to_string(), "1MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000");
        let read = raw("worker:\n  max_output: 256KiB\n").unwrap();
        assert_eq!(read.worker.max_output, Some(ByteSize(256 << 10)));
        let read = raw("worker:\n  max_output: 4096\n").unwrap();
        assert_eq!(read.worker.max_output, Some(ByteSize(4096)));
        assert!(raw("worker:\n  max_output: 3 parsecs\n").is_err());
    }

    #[test]
    fn unlisted_keys_are_rejected() {
        assert!(raw("folder:\n  hom: x\n").is_err());
        assert!(raw("folders:\n  home: x\n").is_err());
    }
}
