//! The operator's configuration: `local.yaml` (the core4 form), layered and resolved.
//!
//! The cascade, lowest first — figment merges the layers:
//!
//! 1. built-in defaults;
//! 2. the system file (`/etc/coco/local.yaml`);
//! 3. the user file: `--config FILE`, else the file named by `COCO_CONFIG`, else
//!    `~/.coco/local.yaml` (a missing file is skipped unless it was named explicitly);
//! 4. environment variables `COCO_<SECTION>__<KEY>` (`COCO_FOLDER__HOME`);
//! 5. command-line flags ([`Overrides`]).
//!
//! Every source is validated before it is merged ([`sources`]), so a file's problem is shown at
//! `path:line:column` and a variable's names the variable. `~` starts a path in the user's
//! home; a relative path in a file is relative to that file's folder, one in a variable or a
//! flag (`--config`, `COCO_CONFIG`, `--home`, `--state`) relative to the working directory.
//! Every path of a [`Config`] is absolute, resolved once here, so that no later comparison
//! (the daemon's watcher gets absolute paths from the kernel) depends on where coco runs.
//! Every effective value keeps its provenance ([`Setting`]). Passwords in URLs never leave
//! this module unredacted.
//!
//! [`load`] takes the environment and the file locations as parameters, so it reads nothing
//! but the files it is pointed at; [`load_from_process`] supplies the real ones.

pub mod daemon;
pub mod raw;
pub mod sources;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::Figment;

use crate::manifest::limits::{Bounds, duration_problem};
use crate::redact::redact;
use crate::store::StoreLocation;
use crate::yaml::Diagnostic;
pub use daemon::DaemonConfig;
use raw::{KEYS, LevelSetting, RawApi, RawConfig, RawDefault, RawFleet, RawFolder, RawLogging};
use sources::Layer;

/// The name of the configuration file.
pub const CONFIG_FILE: &str = "local.yaml";
/// The environment variable naming the user configuration file.
pub const CONFIG_ENV: &str = "COCO_CONFIG";

/// Where the configuration files are looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPaths {
    /// The system-wide file (`/etc/coco/local.yaml`).
    pub system: PathBuf,
    /// The user's home: `~` in paths, `~/.coco/local.yaml`, the default folders.
    pub user_home: PathBuf,
    /// The working directory: what relative paths in flags and variables are relative to.
    pub cwd: PathBuf,
}

impl ConfigPaths {
    /// The real locations: `/etc/coco/local.yaml`, the home of the running user and the
    /// working directory.
    pub fn from_env() -> ConfigPaths {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let user_home = std::env::home_dir().unwrap_or_else(|| PathBuf::from("/"));
        ConfigPaths {
            system: PathBuf::from("/etc/coco").join(CONFIG_FILE),
            // A relative HOME is relative to where coco runs, like any other path.
            user_home: cwd.join(user_home),
            cwd,
        }
    }

    /// `~/.coco/local.yaml`.
    pub fn user_file(&self) -> PathBuf {
        self.user_home.join(".coco").join(CONFIG_FILE)
    }
}

/// Command-line flags: the top of the cascade.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--config FILE`: the user file to read (wins over `COCO_CONFIG`); must exist.
    pub config_file: Option<PathBuf>,
    /// `--home`
    pub home: Option<PathBuf>,
    /// `--state`
    pub state: Option<PathBuf>,
    /// `--mongo-url`
    pub mongo_url: Option<String>,
    /// `--mongo-database`
    pub mongo_database: Option<String>,
}

/// A log level, as core4 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Debug,
        Level::Info,
        Level::Warning,
        Level::Error,
        Level::Critical,
    ];

    /// `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }

    /// Python's number for the level, as log records keep it (CRITICAL is stored as ERROR:
    /// tracing has no higher level).
    pub fn levelno(self) -> u8 {
        match self {
            Level::Debug => 10,
            Level::Info => 20,
            Level::Warning => 30,
            Level::Error | Level::Critical => 40,
        }
    }

    /// The nearest `tracing` level (`CRITICAL` is `ERROR`).
    pub fn to_tracing(self) -> tracing::Level {
        match self {
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warning => tracing::Level::WARN,
            Level::Error | Level::Critical => tracing::Level::ERROR,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Level {
    type Err = String;

    /// A core4 level name in any case (`WARN` too).
    fn from_str(text: &str) -> Result<Level, String> {
        let text = text.trim();
        Level::ALL
            .into_iter()
            .find(|level| level.name().eq_ignore_ascii_case(text))
            .or_else(|| text.eq_ignore_ascii_case("warn").then_some(Level::Warning))
            .ok_or_else(|| {
                format!("unknown level `{text}` (expected DEBUG, INFO, WARNING, ERROR or CRITICAL)")
            })
    }
}

/// Where log records go, and from which level; `None` is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logging {
    /// Records kept in the state store.
    pub mongodb: Option<Level>,
    pub stderr: Option<Level>,
    pub stdout: Option<Level>,
}

/// The `worker` section: capacity limits of this host's workers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WorkerConfig {
    /// Jobs run at once on this host.
    pub slots: Option<u32>,
    /// Take no new job above this CPU use, in percent.
    pub max_cpu: Option<f64>,
    /// Take no new job below this much free memory, in MiB.
    pub min_free_ram: Option<u64>,
    /// Bytes of output kept per run (its tail); `None`: 1 MiB.
    pub max_output: Option<u64>,
    /// A running run whose worker is silent this long is taken back; `None`: 60 s.
    pub zombie_after: Option<std::time::Duration>,
    /// A run lost with its worker this many times in a row ends as error; `None`: 3.
    pub max_lost: Option<u32>,
    /// How each run's process tree is held (`worker.containment`).
    pub containment: crate::process::contain::Mode,
}

/// `fleet`: this host's lease among the daemons and workers sharing one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetConfig {
    /// How often a daemon or worker renews its lease: its record (`coco alive`) and its runs'
    /// heartbeat.
    pub renew_every: Duration,
    /// A member whose lease is this old is lost; the default of `daemon.app_stale_after`.
    pub lease: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            renew_every: Duration::from_secs(2),
            lease: Duration::from_secs(10),
        }
    }
}

/// The bounds of `fleet.renew_every`.
pub const RENEW_EVERY: Bounds = Bounds {
    min: Duration::from_millis(100),
    max: Duration::from_secs(60),
    why: "every host writes the store this often",
};

/// The bounds of `fleet.lease`.
pub const LEASE: Bounds = Bounds {
    min: Duration::from_secs(1),
    max: Duration::from_secs(3600),
    why: "a shorter one loses hosts that are alive",
};

/// What is wrong with the `fleet` timings of one layer (pure): each out of its bounds, and
/// a lease shorter than three renewals (one late renewal would lose a live host).
pub fn fleet_problems(
    renew_every: Option<Duration>,
    lease: Option<Duration>,
) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if let Some(problem) = renew_every.and_then(|v| duration_problem(v, RENEW_EVERY)) {
        problems.push(("fleet.renew_every", problem));
    }
    if let Some(problem) = lease.and_then(|v| duration_problem(v, LEASE)) {
        problems.push(("fleet.lease", problem));
    }
    let renew = renew_every.unwrap_or(FleetConfig::default().renew_every);
    if let Some(lease) = lease
        && problems.is_empty()
        && lease < renew * 3
    {
        problems.push((
            "fleet.lease",
            format!(
                "must be at least three renewals ({}): one late renewal would lose a live host",
                humantime::format_duration(renew * 3)
            ),
        ));
    }
    problems
}

/// The shortest `zombie_after` local.yaml and `coco worker` accept: three of the worker's
/// default heartbeats, so a live worker's runs are never taken back for one late heartbeat.
pub const MIN_ZOMBIE_AFTER: Duration = Duration::from_secs(10);
/// The longest zombie interval: a day.
pub const MAX_ZOMBIE_AFTER: Duration = Duration::from_secs(86_400);

/// What is wrong with `after` as a zombie interval, if anything (pure).
pub fn zombie_after_problem(after: Duration) -> Option<String> {
    if after < MIN_ZOMBIE_AFTER {
        Some(format!(
            "must be at least {} (three heartbeats: a shorter one takes back runs whose worker \
             is alive)",
            humantime::format_duration(MIN_ZOMBIE_AFTER)
        ))
    } else if after > MAX_ZOMBIE_AFTER {
        Some(format!(
            "must be at most {} (the runs of a lost worker wait this long to be retried)",
            humantime::format_duration(MAX_ZOMBIE_AFTER)
        ))
    } else {
        None
    }
}

/// The `api` section, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiConfig {
    /// Where a daemon serves HTTP; `None` with `api.enabled: false`.
    pub listen: Option<std::net::SocketAddr>,
    /// `api.open_metrics`: `GET /metrics` answers without a token.
    pub open_metrics: bool,
}

/// Where a daemon serves HTTP unless `api.listen` says otherwise.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:5001";

/// `text` as the address `api.listen` (or `--api-listen`) names: `IP:PORT`, an IPv6 address in
/// brackets (`[::1]:5001`); no host names, which would make the daemon's address depend on
/// name resolution at start-up.
pub fn listen_address(text: &str) -> Result<std::net::SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "expected IP:PORT, such as {DEFAULT_API_LISTEN}, 0.0.0.0:5001 or [::1]:5001 (got \
             `{}`)",
            text.chars().take(100).collect::<String>()
        )
    })
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `folder.home`: one folder per project.
    pub home: PathBuf,
    /// `folder.state`: the embedded store and other local state.
    pub state_dir: PathBuf,
    /// `folder.templates`: extra templates for `coco init`.
    pub templates: Option<PathBuf>,
    /// `DEFAULT.mongo_url` and `mongo_database`, else the embedded store in `state_dir`.
    pub store: StoreLocation,
    pub logging: Logging,
    pub worker: WorkerConfig,
    /// `daemon`: the daemon's and its app supervisor's timings.
    pub daemon: DaemonConfig,
    /// `api`: the HTTP API a daemon serves.
    pub api: ApiConfig,
    /// `fleet.host`: the name this host goes by, if not its hostname.
    pub host: Option<String>,
    /// `fleet.renew_every` and `fleet.lease`: this host's lease.
    pub fleet: FleetConfig,
    /// The files read, lowest precedence first.
    pub files: Vec<PathBuf>,
    /// The files whose change re-reads the configuration: the system file and the user file
    /// (`--config`, `COCO_CONFIG` or `~/.coco/local.yaml`), whether they exist or not.
    pub source_files: Vec<PathBuf>,
}

/// One effective value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// `section.key`, as in the file: `folder.home`, `DEFAULT.mongo_url`.
    pub key: String,
    /// The value as text, passwords redacted; `~` when unset or off.
    pub value: String,
    /// `default`, a file (`/etc/coco/local.yaml:3`), `env COCO_FOLDER__HOME` or `flag --home`.
    pub source: String,
}

/// One problem found in one source.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// In a file, at a line and column.
    File(Diagnostic),
    /// In an environment variable.
    Env {
        var: String,
        message: String,
        suggestion: Option<String>,
    },
    /// In a command-line flag.
    Flag { flag: String, message: String },
}

impl Problem {
    fn file(mut diagnostic: Diagnostic) -> Problem {
        diagnostic.message = redact(&diagnostic.message);
        diagnostic.source_line = diagnostic.source_line.map(|line| redact(&line));
        Problem::File(diagnostic)
    }

    fn env(var: &str, message: impl AsRef<str>, suggestion: Option<String>) -> Problem {
        Problem::Env {
            var: var.to_owned(),
            message: redact(message.as_ref()),
            suggestion,
        }
    }

    /// The first line of the problem: `path:line:column: message` or
    /// `environment variable X: message` (for logs and `--json`).
    pub fn headline(&self) -> String {
        match self {
            Problem::File(diagnostic) => diagnostic.headline(),
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::File(diagnostic) => write!(f, "{diagnostic}"),
            Problem::Env {
                var,
                message,
                suggestion,
            } => {
                write!(f, "environment variable {var}: {message}")?;
                match suggestion {
                    Some(suggestion) => write!(f, " (did you mean `{suggestion}`?)"),
                    None => Ok(()),
                }
            }
            Problem::Flag { flag, message } => write!(f, "flag {flag}: {message}"),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named by `--config` or `COCO_CONFIG` does not exist.
    #[error("config file {} (named by {via}) does not exist", path.display())]
    Missing { path: PathBuf, via: String },
    /// The cause is in the message (not also a `source`, which `{:#}` would show again).
    #[error("cannot read config file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Everything wrong in every source, one problem after the other.
    #[error("{}", .0.iter().map(Problem::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    /// The validated layers did not merge (a bug, not a user error).
    #[error("cannot merge the configuration: {}", redact(.0))]
    Merge(String),
}

/// Load the configuration from the files at `paths`, the environment `env` (only its
/// `COCO_<SECTION>__<KEY>` and `COCO_CONFIG` variables are read) and the flags.
///
/// Returns the configuration and every effective value with its provenance, in the order of
/// [`raw::KEYS`]. Takes `env` as a parameter so that callers (and tests) decide what it is.
pub fn load<I, K, V>(
    paths: &ConfigPaths,
    env: I,
    overrides: &Overrides,
) -> Result<(Config, Vec<Setting>), ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let home = paths.user_home.as_path();
    let cwd = paths.cwd.as_path();
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        .collect();
    env.sort();

    let mut layers = vec![defaults(home)];
    let mut problems = Vec::new();
    let mut files = Vec::new();

    // Files: the system one, then the user one (the first of --config, COCO_CONFIG, ~/.coco).
    let named_by_env = env
        .iter()
        .rfind(|(k, v)| k == CONFIG_ENV && !v.is_empty())
        .map(|(_, v)| (sources::resolve_path(Path::new(v), home, cwd), CONFIG_ENV));
    let named_by_flag = overrides
        .config_file
        .as_ref()
        .map(|file| (sources::resolve_path(file, home, cwd), "--config"));
    let user = named_by_flag
        .map(|(path, via)| (path, Some(via)))
        .or(named_by_env.map(|(path, via)| (path, Some(via))))
        .unwrap_or_else(|| (paths.user_file(), None));
    let candidates = [(paths.system.clone(), None), user];
    let config_sources = candidates.iter().map(|(path, _)| path.clone()).collect();
    for (path, via) in candidates {
        let text = match sources::read_file(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => match via {
                Some(via) => {
                    return Err(ConfigError::Missing {
                        path,
                        via: via.to_owned(),
                    });
                }
                None => continue,
            },
            Err(error) => return Err(ConfigError::Read { path, error }),
        };
        match sources::parse_file(&path, &text, home) {
            Ok(layer) => layers.push(layer),
            Err(diagnostics) => problems.extend(diagnostics.into_iter().map(Problem::file)),
        }
        files.push(path);
    }

    // Environment variables, then flags.
    for (var, value) in env.iter().filter(|(var, _)| sources::is_config_var(var)) {
        match sources::parse_env(var, value, home, cwd) {
            Ok(layer) => layers.push(layer),
            Err(problem) => problems.push(problem),
        }
    }
    for flag in flags(overrides, home, cwd) {
        let problem = sources::check(&flag.raw).into_iter().next();
        match problem {
            Some((_, message)) => problems.push(Problem::Flag {
                flag: flag.name.trim_start_matches("flag ").to_owned(),
                message: redact(&message),
            }),
            None => layers.push(flag),
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }

    let figment = layers
        .iter()
        .fold(Figment::new(), |figment, layer| figment.merge(layer));
    let merged: RawConfig = figment
        .extract()
        .map_err(|error| ConfigError::Merge(error.to_string()))?;
    let winner = |key: &str| {
        figment
            .find_metadata(key)
            .and_then(|metadata| layers.iter().rposition(|layer| layer.name == metadata.name))
    };
    // Placed at the key written last (the defaults keep the rule, so one is written).
    let between = daemon::check_merged(&daemon::resolve(&merged.daemon)).and_then(|told| {
        daemon::STATUS_KEYS
            .into_iter()
            .zip(told)
            .filter_map(|(key, message)| Some((winner(key)?, key, message)))
            .max_by_key(|(at, _, _)| *at)
            .map(|(at, key, message)| layers[at].problem_with(key, &message))
    });
    if let Some(problem) = between {
        return Err(ConfigError::Invalid(vec![problem]));
    }
    let settings = values(&merged)
        .into_iter()
        .map(|(key, value)| {
            let source = figment
                .find_metadata(key)
                .and_then(|metadata| layers.iter().rfind(|layer| layer.name == metadata.name))
                .map_or_else(|| "default".to_owned(), |layer| layer.source_of(key));
            Setting {
                key: key.to_owned(),
                value: value.map_or_else(|| "~".to_owned(), |v| redact(&v)),
                source,
            }
        })
        .collect();
    Ok((resolve(merged, files, config_sources), settings))
}

/// [`load`] with the real environment, `/etc/coco` and the real home.
pub fn load_from_process(overrides: &Overrides) -> Result<(Config, Vec<Setting>), ConfigError> {
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    load(&ConfigPaths::from_env(), env, overrides)
}

/// The built-in defaults: a complete layer.
fn defaults(home: &Path) -> Layer {
    Layer::new(
        "default",
        RawConfig {
            default: RawDefault {
                mongo_url: None,
                mongo_database: Some("coco".to_owned()),
            },
            logging: RawLogging {
                mongodb: Some(LevelSetting(Some(Level::Info))),
                stderr: Some(LevelSetting(Some(Level::Info))),
                stdout: Some(LevelSetting(None)),
            },
            folder: RawFolder {
                home: Some(home.join("coco.home")),
                state: Some(home.join(".coco")),
                templates: None,
            },
            worker: Default::default(),
            daemon: Default::default(),
            api: RawApi {
                enabled: Some(true),
                listen: Some(DEFAULT_API_LISTEN.to_owned()),
                open_metrics: Some(false),
            },
            fleet: RawFleet::default(),
        },
    )
}

/// One layer per flag given, named `flag --<name>`; relative paths are relative to `cwd`.
fn flags(overrides: &Overrides, home: &Path, cwd: &Path) -> Vec<Layer> {
    let mut layers = Vec::new();
    let mut add = |name: &str, set: &dyn Fn(&mut RawConfig)| {
        let mut raw = RawConfig::default();
        set(&mut raw);
        layers.push(Layer::new(format!("flag --{name}"), raw));
    };
    if let Some(path) = &overrides.home {
        add("home", &|raw| {
            raw.folder.home = Some(sources::resolve_path(path, home, cwd))
        });
    }
    if let Some(path) = &overrides.state {
        add("state", &|raw| {
            raw.folder.state = Some(sources::resolve_path(path, home, cwd))
        });
    }
    if let Some(url) = &overrides.mongo_url {
        add("mongo-url", &|raw| {
            raw.default.mongo_url = Some(url.clone())
        });
    }
    if let Some(database) = &overrides.mongo_database {
        add("mongo-database", &|raw| {
            raw.default.mongo_database = Some(database.clone())
        });
    }
    layers
}

/// Every key of [`KEYS`] with its value in `raw` as text (`None`: unset or off).
fn values(raw: &RawConfig) -> Vec<(&'static str, Option<String>)> {
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let level = |l: &Option<LevelSetting>| l.and_then(|l| l.0).map(|l| l.name().to_owned());
    let url = raw.default.mongo_url.clone().filter(|url| !url.is_empty());
    let mut all = vec![
        ("DEFAULT.mongo_url", url),
        ("DEFAULT.mongo_database", raw.default.mongo_database.clone()),
        ("logging.mongodb", level(&raw.logging.mongodb)),
        ("logging.stderr", level(&raw.logging.stderr)),
        ("logging.stdout", level(&raw.logging.stdout)),
        ("folder.home", path(&raw.folder.home)),
        ("folder.state", path(&raw.folder.state)),
        ("folder.templates", path(&raw.folder.templates)),
        ("worker.slots", raw.worker.slots.map(|v| v.to_string())),
        ("worker.max_cpu", raw.worker.max_cpu.map(|v| v.to_string())),
        (
            "worker.min_free_ram",
            raw.worker.min_free_ram.map(|v| v.to_string()),
        ),
        (
            "worker.max_output",
            raw.worker.max_output.map(|v| v.to_string()),
        ),
        (
            "worker.zombie_after",
            raw.worker
                .zombie_after
                .map(|v| humantime::format_duration(v.0).to_string()),
        ),
        (
            "worker.max_lost",
            raw.worker.max_lost.map(|v| v.to_string()),
        ),
        (
            "worker.containment",
            raw.worker.containment.map(|mode| mode.name().to_owned()),
        ),
    ];
    all.extend(daemon::values(&raw.daemon));
    all.extend([
        ("api.enabled", raw.api.enabled.map(|v| v.to_string())),
        ("api.listen", raw.api.listen.clone()),
        (
            "api.open_metrics",
            raw.api.open_metrics.map(|v| v.to_string()),
        ),
        ("fleet.host", raw.fleet.host.clone()),
        (
            "fleet.renew_every",
            raw.fleet
                .renew_every
                .map(|v| humantime::format_duration(v.0).to_string()),
        ),
        (
            "fleet.lease",
            raw.fleet
                .lease
                .map(|v| humantime::format_duration(v.0).to_string()),
        ),
    ]);
    debug_assert!(all.iter().map(|(key, _)| *key).eq(KEYS.iter().copied()));
    all
}

/// The merged layers as a [`Config`] (the defaults layer guarantees every required value).
fn resolve(raw: RawConfig, files: Vec<PathBuf>, source_files: Vec<PathBuf>) -> Config {
    let state_dir = raw.folder.state.unwrap_or_default();
    let store = match raw.default.mongo_url.filter(|url| !url.is_empty()) {
        Some(url) => StoreLocation::Mongo {
            url,
            database: raw.default.mongo_database.unwrap_or_default(),
        },
        None => StoreLocation::Embedded {
            path: state_dir.join("coco.db"),
        },
    };
    let level = |l: Option<LevelSetting>| l.and_then(|l| l.0);
    let defaults = FleetConfig::default();
    let fleet = FleetConfig {
        renew_every: raw.fleet.renew_every.map_or(defaults.renew_every, |v| v.0),
        lease: raw.fleet.lease.map_or(defaults.lease, |v| v.0),
    };
    Config {
        home: raw.folder.home.unwrap_or_default(),
        state_dir,
        templates: raw.folder.templates,
        store,
        logging: Logging {
            mongodb: level(raw.logging.mongodb),
            stderr: level(raw.logging.stderr),
            stdout: level(raw.logging.stdout),
        },
        worker: WorkerConfig {
            slots: raw.worker.slots,
            max_cpu: raw.worker.max_cpu,
            min_free_ram: raw.worker.min_free_ram,
            max_output: raw.worker.max_output.map(|size| size.0),
            zombie_after: raw.worker.zombie_after.map(|after| after.0),
            max_lost: raw.worker.max_lost,
            containment: raw.worker.containment.unwrap_or_default(),
        },
        daemon: DaemonConfig {
            // The fleet's lease is the apps' hold unless `daemon.app_stale_after` says.
            app_stale_after: raw
                .daemon
                .app_stale_after
                .map_or(fleet.lease, |after| after.0),
            ..daemon::resolve(&raw.daemon)
        },
        api: ApiConfig {
            // Checked in every layer ([`sources::check`]): the merged value parses.
            listen: match raw.api.enabled {
                Some(false) => None,
                _ => raw
                    .api
                    .listen
                    .as_deref()
                    .and_then(|text| listen_address(text).ok()),
            },
            open_metrics: raw.api.open_metrics.unwrap_or(false),
        },
        host: raw.fleet.host,
        fleet,
        files,
        source_files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_read_in_any_case_and_show_as_core4_names() {
        assert_eq!("warning".parse::<Level>(), Ok(Level::Warning));
        assert_eq!("Warn".parse::<Level>(), Ok(Level::Warning));
        assert_eq!("CRITICAL".parse::<Level>(), Ok(Level::Critical));
        assert!("LOUD".parse::<Level>().is_err());
        assert_eq!(Level::Debug.to_string(), "DEBUG");
    }

    #[test]
    fn values_list_every_key() {
        let keys: Vec<_> = values(&RawConfig::default())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, KEYS);
    }

    #[test]
    fn problems_hide_passwords() {
        let problem = Problem::env("COCO_DEFAULT__MONGO_URL", "bad: mongodb://u:secret@h", None);
        assert_eq!(
            problem.to_string(),
            "environment variable COCO_DEFAULT__MONGO_URL: bad: mongodb://u:***@h"
        );
    }
}
