//! `local.yaml` and its cascade, through the public API, in temp dirs (never the real
//! `/etc` or `~`; the environment is passed in, never read).

use std::path::{Path, PathBuf};
use std::time::Duration;

use coco::config::{Config, ConfigError, ConfigPaths, Level, Overrides, Setting, load};
use coco::store::StoreLocation;
use tempfile::TempDir;

/// A fake machine: `<tmp>/etc/coco/local.yaml` and a home at `<tmp>/home`.
struct Machine {
    _dir: TempDir,
    root: PathBuf,
    paths: ConfigPaths,
}

impl Machine {
    fn new() -> Machine {
        let dir = TempDir::new().unwrap();
        let root = dir.path().to_path_buf();
        let paths = ConfigPaths {
            system: root.join("etc/coco/local.yaml"),
            user_home: root.join("home"),
            cwd: root.join("cwd"),
        };
        std::fs::create_dir_all(&paths.user_home).unwrap();
        Machine {
            _dir: dir,
            root,
            paths,
        }
    }

    /// Write `text` at `path` (relative to the temp root unless absolute) and return the path.
    fn write(&self, path: impl AsRef<Path>, text: &str) -> PathBuf {
        let path = self.root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn system(&self, text: &str) -> PathBuf {
        self.write(self.paths.system.clone(), text)
    }

    fn user(&self, text: &str) -> PathBuf {
        self.write(self.paths.user_home.join(".coco/local.yaml"), text)
    }

    fn home(&self) -> &Path {
        &self.paths.user_home
    }

    fn load(
        &self,
        env: &[(&str, &str)],
        overrides: &Overrides,
    ) -> Result<(Config, Vec<Setting>), ConfigError> {
        load(&self.paths, env.iter().copied(), overrides)
    }

    fn ok(&self, env: &[(&str, &str)], overrides: &Overrides) -> (Config, Vec<Setting>) {
        self.load(env, overrides).unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(&self, env: &[(&str, &str)], overrides: &Overrides) -> String {
        match self.load(env, overrides) {
            Ok((config, _)) => panic!("expected an error, got {config:?}"),
            Err(error) => error.to_string(),
        }
    }
}

/// `(value, source)` of `key`.
fn setting<'a>(settings: &'a [Setting], key: &str) -> (&'a str, &'a str) {
    let s = settings
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("no setting {key}"));
    (&s.value, &s.source)
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/local.yaml")
}

fn no_flags() -> Overrides {
    Overrides::default()
}

#[test]
fn the_core4_form_is_accepted_as_written() {
    let m = Machine::new();
    let file = fixture();
    let (config, settings) = m.ok(&[("COCO_CONFIG", file.to_str().unwrap())], &no_flags());
    assert_eq!(
        config.store,
        StoreLocation::Mongo {
            url: "mongodb://core:654321@localhost:27017".into(),
            database: "core4dev".into()
        }
    );
    assert_eq!(config.logging.mongodb, Some(Level::Info));
    assert_eq!(config.logging.stderr, Some(Level::Debug));
    assert_eq!(config.logging.stdout, None);
    assert_eq!(config.home, Path::new("/home/mra/PycharmProjects"));
    assert_eq!(config.state_dir, m.home().join(".coco"));
    assert_eq!(config.files, vec![file.clone()]);

    let at = |line: u32| format!("{}:{line}", file.display());
    assert_eq!(
        setting(&settings, "DEFAULT.mongo_url"),
        ("mongodb://core:***@localhost:27017", at(2).as_str())
    );
    assert_eq!(
        setting(&settings, "DEFAULT.mongo_database"),
        ("core4dev", at(3).as_str())
    );
    assert_eq!(
        setting(&settings, "logging.stderr"),
        ("DEBUG", at(6).as_str())
    );
    assert_eq!(setting(&settings, "logging.stdout"), ("~", at(7).as_str()));
    assert_eq!(
        setting(&settings, "folder.home"),
        ("/home/mra/PycharmProjects", at(9).as_str())
    );
    assert_eq!(setting(&settings, "folder.state").1, "default");
}

#[test]
fn no_configuration_means_defaults_and_the_embedded_store() {
    let m = Machine::new();
    let (config, settings) = m.ok(&[], &no_flags());
    assert_eq!(config.home, m.home().join("coco.home"));
    assert_eq!(config.state_dir, m.home().join(".coco"));
    assert_eq!(config.templates, None);
    assert_eq!(
        config.store,
        StoreLocation::Embedded {
            path: m.home().join(".coco/coco.db")
        }
    );
    assert_eq!(config.logging.mongodb, Some(Level::Info));
    assert_eq!(config.logging.stderr, Some(Level::Info));
    assert_eq!(config.logging.stdout, None);
    assert_eq!(config.worker, Default::default());
    assert!(config.files.is_empty());
    assert!(
        settings.iter().all(|s| s.source == "default"),
        "{settings:?}"
    );
    assert_eq!(setting(&settings, "DEFAULT.mongo_url").0, "~");
    assert_eq!(setting(&settings, "DEFAULT.mongo_database").0, "coco");

    // An empty file, and empty sections, are fine too.
    let file = m.user("");
    m.system("DEFAULT:\nlogging:\nfolder:\nworker:\ndaemon:\n");
    let (config, _) = m.ok(&[], &no_flags());
    assert_eq!(config.files, vec![m.paths.system.clone(), file]);
    assert_eq!(config.home, m.home().join("coco.home"));
}

#[test]
fn files_cascade_system_then_user_then_coco_config_then_flag() {
    let m = Machine::new();
    let system = m.system("folder:\n  home: /sys/home\n  state: /sys/state\nlogging:\n  stdout: INFO\nworker:\n  slots: 2\n");
    let user = m.user("folder:\n  home: /user/home\nlogging:\n  stdout: ~\n");
    let named = m.write("named.yaml", "folder:\n  home: /named/home\n");
    let flagged = m.write("flagged.yaml", "DEFAULT:\n  mongo_database: flagged\n");

    // system < user
    let (config, settings) = m.ok(&[], &no_flags());
    assert_eq!(config.files, vec![system.clone(), user.clone()]);
    assert_eq!(config.home, Path::new("/user/home"));
    assert_eq!(config.state_dir, Path::new("/sys/state"));
    assert_eq!(
        config.logging.stdout, None,
        "`~` in the user file turns off the system's INFO"
    );
    assert_eq!(config.worker.slots, Some(2));
    assert_eq!(
        config.store,
        StoreLocation::Embedded {
            path: PathBuf::from("/sys/state/coco.db")
        }
    );
    assert_eq!(
        setting(&settings, "folder.home").1,
        format!("{}:2", user.display())
    );
    assert_eq!(
        setting(&settings, "folder.state").1,
        format!("{}:3", system.display())
    );
    assert_eq!(
        setting(&settings, "logging.stdout").1,
        format!("{}:4", user.display())
    );

    // COCO_CONFIG replaces the user file.
    let env = [("COCO_CONFIG", named.to_str().unwrap())];
    let (config, settings) = m.ok(&env, &no_flags());
    assert_eq!(config.files, vec![system.clone(), named.clone()]);
    assert_eq!(config.home, Path::new("/named/home"));
    assert_eq!(config.logging.stdout, Some(Level::Info));
    assert_eq!(
        setting(&settings, "folder.home").1,
        format!("{}:2", named.display())
    );

    // --config wins over COCO_CONFIG.
    let flags = Overrides {
        config_file: Some(flagged.clone()),
        ..Overrides::default()
    };
    let (config, settings) = m.ok(&env, &flags);
    assert_eq!(config.files, vec![system.clone(), flagged.clone()]);
    assert_eq!(config.home, Path::new("/sys/home"));
    assert_eq!(
        setting(&settings, "folder.home").1,
        format!("{}:2", system.display())
    );
    assert_eq!(
        setting(&settings, "DEFAULT.mongo_database"),
        ("flagged", format!("{}:2", flagged.display()).as_str())
    );
}

#[test]
fn environment_beats_files_and_flags_beat_environment() {
    let m = Machine::new();
    m.user(
        "folder:\n  home: /file/home\n  state: /file/state\nDEFAULT:\n  mongo_database: filedb\n",
    );
    let env = [
        ("COCO_FOLDER__HOME", "/env/home"),
        ("COCO_DEFAULT__MONGO_URL", "mongodb://env:secret@db:27017"),
        ("COCO_DEFAULT__MONGO_DATABASE", "envdb"),
        ("COCO_LOGGING__STDERR", "warning"),
        ("COCO_LOGGING__MONGODB", "~"),
        ("COCO_WORKER__SLOTS", "8"),
        ("COCO_WORKER__MAX_CPU", "75.5"),
        ("COCO_WORKER__MIN_FREE_RAM", "512"),
    ];
    let (config, settings) = m.ok(&env, &no_flags());
    assert_eq!(config.home, Path::new("/env/home"));
    assert_eq!(config.state_dir, Path::new("/file/state"));
    assert_eq!(
        config.store,
        StoreLocation::Mongo {
            url: "mongodb://env:secret@db:27017".into(),
            database: "envdb".into()
        }
    );
    assert_eq!(config.logging.stderr, Some(Level::Warning));
    assert_eq!(config.logging.mongodb, None);
    assert_eq!(config.worker.slots, Some(8));
    assert_eq!(config.worker.max_cpu, Some(75.5));
    assert_eq!(config.worker.min_free_ram, Some(512));
    assert_eq!(
        setting(&settings, "folder.home"),
        ("/env/home", "env COCO_FOLDER__HOME")
    );
    assert_eq!(
        setting(&settings, "DEFAULT.mongo_url"),
        ("mongodb://env:***@db:27017", "env COCO_DEFAULT__MONGO_URL")
    );
    assert_eq!(
        setting(&settings, "worker.slots"),
        ("8", "env COCO_WORKER__SLOTS")
    );

    let flags = Overrides {
        home: Some("/flag/home".into()),
        state: Some("~/flag-state".into()),
        mongo_url: Some(String::new()),
        mongo_database: Some("flagdb".into()),
        ..Overrides::default()
    };
    let (config, settings) = m.ok(&env, &flags);
    assert_eq!(config.home, Path::new("/flag/home"));
    assert_eq!(config.state_dir, m.home().join("flag-state"));
    assert_eq!(
        config.store,
        StoreLocation::Embedded {
            path: m.home().join("flag-state/coco.db")
        },
        "an empty --mongo-url switches back to the embedded store"
    );
    assert_eq!(
        setting(&settings, "folder.home"),
        ("/flag/home", "flag --home")
    );
    assert_eq!(setting(&settings, "folder.state").1, "flag --state");
    assert_eq!(
        setting(&settings, "DEFAULT.mongo_url"),
        ("~", "flag --mongo-url")
    );
    assert_eq!(
        setting(&settings, "DEFAULT.mongo_database"),
        ("flagdb", "flag --mongo-database")
    );
}

#[test]
fn other_coco_variables_are_not_configuration() {
    let m = Machine::new();
    let env = [
        ("COCO_TEST_MONGO_URL", "mongodb://x"),
        ("COCO_SOMETHING", "1"),
        ("COCO_CONFIG", ""),
        ("HOME", "/elsewhere"),
        ("FOLDER__HOME", "/x"),
    ];
    let (config, _) = m.ok(&env, &no_flags());
    assert_eq!(config.home, m.home().join("coco.home"));
}

#[test]
fn unknown_keys_are_located_with_a_suggestion() {
    let m = Machine::new();
    let file = m.user("folder:\n  hom: /x\n");
    let error = m.error(&[], &no_flags());
    assert!(
        error.starts_with(&format!(
            "{}:2:3: unknown key `hom` (did you mean `home`?)",
            file.display()
        )),
        "{error}"
    );
    assert!(error.contains("2 |   hom: /x"), "shows the line: {error}");

    m.user("folders:\n  home: /x\n");
    let error = m.error(&[], &no_flags());
    assert!(
        error.starts_with(&format!(
            "{}:1:1: unknown key `folders` (did you mean `folder`?)",
            file.display()
        )),
        "{error}"
    );
}

#[test]
fn unknown_variables_are_errors_with_a_suggestion() {
    let m = Machine::new();
    let error = m.error(&[("COCO_FOLDER__HOM", "/x")], &no_flags());
    assert!(
        error.starts_with("environment variable COCO_FOLDER__HOM: ")
            && error.ends_with("(did you mean `COCO_FOLDER__HOME`?)"),
        "{error}"
    );
    let error = m.error(&[("COCO_DEFAULT__MONGOURL", "mongodb://h")], &no_flags());
    assert!(
        error.ends_with("(did you mean `COCO_DEFAULT__MONGO_URL`?)"),
        "{error}"
    );
}

#[test]
fn wrong_types_name_the_key_the_file_and_the_position() {
    let m = Machine::new();
    let file = m.user("folder: {home: [1]}\n");
    let error = m.error(&[], &no_flags());
    assert!(
        error.starts_with(&format!("{}:1:", file.display())),
        "{error}"
    );
    assert!(
        error.contains("`folder.home`: invalid type: sequence"),
        "{error}"
    );

    m.user("logging:\n  stderr: LOUD\n");
    let error = m.error(&[], &no_flags());
    assert!(
        error.starts_with(&format!(
            "{}:2:11: `logging.stderr`: invalid value: string \"LOUD\"",
            file.display()
        )),
        "{error}"
    );

    m.user("worker:\n  slots: 0\n  max_cpu: 150\n");
    let error = m.error(&[], &no_flags());
    assert!(error.contains(":2:10: must be at least 1"), "{error}");
    assert!(error.contains(":3:12: must be a percentage"), "{error}");

    m.user("worker:\n  max_output: 3 parsecs\n");
    let error = m.error(&[], &no_flags());
    assert!(
        error.contains(":2:15: `worker.max_output`: unknown size unit `parsecs`"),
        "{error}"
    );
    m.user("worker:\n  max_output: 100\n");
    let error = m.error(&[], &no_flags());
    assert!(error.contains(":2:15: must be at least 1KiB"), "{error}");

    m.user("worker:\n  zombie_after: soon\n");
    let error = m.error(&[], &no_flags());
    assert!(error.contains(":2:17: `worker.zombie_after`:"), "{error}");
    m.user("worker:\n  zombie_after: 5s\n");
    let error = m.error(&[], &no_flags());
    assert!(
        error.contains(":2:17: must be at least 10s (three heartbeats"),
        "{error}"
    );
    m.user("worker:\n  zombie_after: 2days\n");
    let error = m.error(&[], &no_flags());
    assert!(error.contains(":2:17: must be at most 1day"), "{error}");
}

#[test]
fn zombie_interval_reads_from_files_and_variables_and_reaches_the_worker() {
    let m = Machine::new();
    let (config, _) = m.ok(&[], &no_flags());
    assert_eq!(config.worker.zombie_after, None);
    let defaults = coco::cli::context::worker_settings(&config, None);
    assert_eq!(
        (defaults.zombie_after, defaults.zombie_every),
        (Duration::from_secs(60), Duration::from_secs(30))
    );
    m.user("worker:\n  zombie_after: 2m\n");
    let (config, settings) = m.ok(&[], &no_flags());
    assert_eq!(config.worker.zombie_after, Some(Duration::from_secs(120)));
    assert_eq!(setting(&settings, "worker.zombie_after").0, "2m");
    let worker = coco::cli::context::worker_settings(&config, None);
    assert_eq!(
        (worker.zombie_after, worker.zombie_every),
        (Duration::from_secs(120), Duration::from_secs(30))
    );
    let (config, _) = m.ok(&[("COCO_WORKER__ZOMBIE_AFTER", "20s")], &no_flags());
    let worker = coco::cli::context::worker_settings(&config, None);
    assert_eq!(
        (worker.zombie_after, worker.zombie_every),
        (Duration::from_secs(20), Duration::from_secs(10)),
        "looked for every half of it"
    );
}

#[test]
fn output_cap_reads_with_a_unit_from_files_and_variables() {
    let m = Machine::new();
    m.user("worker:\n  max_output: 256KiB\n");
    let (config, settings) = m.ok(&[], &no_flags());
    assert_eq!(config.worker.max_output, Some(256 * 1024));
    assert_eq!(setting(&settings, "worker.max_output").0, "256KiB");
    let (config, _) = m.ok(&[("COCO_WORKER__MAX_OUTPUT", "2MiB")], &no_flags());
    assert_eq!(config.worker.max_output, Some(2 << 20));
}

#[test]
fn bad_environment_values_name_the_variable() {
    let m = Machine::new();
    let error = m.error(&[("COCO_LOGGING__STDERR", "LOUD")], &no_flags());
    assert!(
        error.starts_with("environment variable COCO_LOGGING__STDERR: invalid value"),
        "{error}"
    );
    let error = m.error(&[("COCO_WORKER__SLOTS", "many")], &no_flags());
    assert!(
        error.starts_with("environment variable COCO_WORKER__SLOTS: invalid type"),
        "{error}"
    );
}

#[test]
fn every_problem_of_every_source_is_reported() {
    let m = Machine::new();
    let system = m.system("logging:\n  stderr: LOUD\nworker:\n  slot: 1\n");
    let user = m.user("folder:\n  hom: /x\n");
    let error = m.error(&[("COCO_WORKER__SLOTS", "x")], &no_flags());
    let headlines: Vec<&str> = error
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.contains(" | "))
        .collect();
    assert_eq!(headlines.len(), 4, "{error}");
    assert!(
        headlines[0].starts_with(&format!("{}:2:", system.display())),
        "{error}"
    );
    assert!(
        headlines[1].starts_with(&format!("{}:4:3: unknown key `slot`", system.display())),
        "{error}"
    );
    assert!(
        headlines[2].starts_with(&format!("{}:2:3: unknown key `hom`", user.display())),
        "{error}"
    );
    assert!(
        headlines[3].starts_with("environment variable COCO_WORKER__SLOTS"),
        "{error}"
    );
}

#[test]
fn tilde_is_the_home_and_relative_paths_follow_their_file() {
    let m = Machine::new();
    let file = m.write(
        "conf/local.yaml",
        "folder:\n  home: ~/projects\n  state: state\n  templates: ~\n",
    );
    let flags = Overrides {
        config_file: Some(file.clone()),
        ..Overrides::default()
    };
    let (config, _) = m.ok(&[], &flags);
    assert_eq!(config.home, m.home().join("projects"));
    assert_eq!(config.state_dir, m.root.join("conf/state"));
    assert_eq!(
        config.templates, None,
        "`~` alone as a value is YAML's null"
    );

    m.user("folder:\n  templates: '~'\n");
    let (config, _) = m.ok(&[("COCO_FOLDER__HOME", "~/env")], &no_flags());
    assert_eq!(config.home, m.home().join("env"));
    assert_eq!(config.templates.as_deref(), Some(m.home()));
}

/// Relative paths of flags and variables are relative to the working directory, so every
/// path of the configuration is absolute (the daemon compares them with the kernel's).
#[test]
fn relative_flags_and_variables_follow_the_working_directory() {
    let m = Machine::new();
    m.write("cwd/conf/local.yaml", "folder:\n  home: projects\n");
    let flags = Overrides {
        config_file: Some("conf/local.yaml".into()),
        state: Some("st".into()),
        ..Overrides::default()
    };
    let (config, _) = m.ok(&[], &flags);
    assert_eq!(config.home, m.root.join("cwd/conf/projects"));
    assert_eq!(config.state_dir, m.root.join("cwd/st"));
    assert_eq!(config.files, vec![m.root.join("cwd/conf/local.yaml")]);
    assert!(
        config
            .source_files
            .contains(&m.root.join("cwd/conf/local.yaml")),
        "{:?}",
        config.source_files
    );

    let home = Overrides {
        home: Some("work".into()),
        ..Overrides::default()
    };
    let (config, _) = m.ok(&[("COCO_CONFIG", "conf/local.yaml")], &home);
    assert_eq!(config.home, m.root.join("cwd/work"));
    assert_eq!(config.files, vec![m.root.join("cwd/conf/local.yaml")]);
    let (config, _) = m.ok(&[("COCO_FOLDER__STATE", "var")], &no_flags());
    assert_eq!(config.state_dir, m.root.join("cwd/var"));
    assert!(config.home.is_absolute() && config.state_dir.is_absolute());
}

#[test]
fn an_explicitly_named_file_must_exist() {
    let m = Machine::new();
    let missing = m.root.join("nope.yaml");
    let flags = Overrides {
        config_file: Some(missing.clone()),
        ..Overrides::default()
    };
    let error = m.load(&[], &flags).unwrap_err();
    assert!(
        matches!(&error, ConfigError::Missing { path, via } if *path == missing && via == "--config")
    );
    assert!(error.to_string().contains("nope.yaml"), "{error}");

    let error = m
        .load(&[("COCO_CONFIG", missing.to_str().unwrap())], &no_flags())
        .unwrap_err();
    assert!(
        matches!(&error, ConfigError::Missing { via, .. } if via == "COCO_CONFIG"),
        "{error}"
    );
}

#[test]
fn passwords_are_never_shown() {
    let m = Machine::new();
    let flags = Overrides {
        mongo_url: Some("mongodb://admin:hunter2@db:27017".into()),
        ..Overrides::default()
    };
    let (config, settings) = m.ok(&[], &flags);
    assert!(matches!(&config.store, StoreLocation::Mongo { url, .. } if url.contains("hunter2")));
    assert_eq!(
        setting(&settings, "DEFAULT.mongo_url").0,
        "mongodb://admin:***@db:27017"
    );
    assert!(settings.iter().all(|s| !s.value.contains("hunter2")));

    m.user("DEFAULT:\n  mongo_url: http://admin:hunter2@db\n");
    let error = m.error(&[], &no_flags());
    assert!(error.contains("expected a `mongodb://`"), "{error}");
    assert!(error.contains("http://admin:***@db"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");

    m.user("");
    let error = m.error(
        &[("COCO_DEFAULT__MONGO_URL", "http://admin:hunter2@db")],
        &no_flags(),
    );
    assert!(!error.contains("hunter2"), "{error}");
    let bad_flag = Overrides {
        mongo_url: Some("http://admin:hunter2@db".into()),
        ..Overrides::default()
    };
    let error = m.error(&[], &bad_flag);
    assert!(error.starts_with("flag --mongo-url: "), "{error}");
}

// Hostile local.yaml files through the binary: `coco --config FILE config` with a relative
// FILE in a sandbox; every problem once, at its line and column.

mod hostile {
    use crate::support::{Sandbox, stderr, stdout};

    /// Write `bytes` as `<sandbox>/<name>` and run `coco --config <name> config`.
    fn config_with(sandbox: &Sandbox, name: &str, bytes: &[u8]) -> std::process::Output {
        std::fs::write(sandbox.dir.path().join(name), bytes).unwrap();
        sandbox.coco(&["--config", name, "config"])
    }

    /// `coco --config <name> config` fails, saying `message` once at `name:at`.
    fn assert_refused(sandbox: &Sandbox, name: &str, bytes: &[u8], at: &str, message: &str) {
        let output = config_with(sandbox, name, bytes);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{name}: {err}");
        let expected = format!("{name}:{at}: {message}");
        assert!(err.contains(&expected), "expected\n  {expected}\nin\n{err}");
        assert_eq!(err.matches(message).count(), 1, "said once: {err}");
        for internal in ["Raw", "Value::", "struct "] {
            assert!(!err.contains(internal), "{internal:?} leaks: {err}");
        }
    }

    #[test]
    fn bytes_keys_and_sizes_are_located() {
        let sandbox = Sandbox::new();
        assert_refused(
            &sandbox,
            "latin1.yaml",
            b"folder:\n  home: /srv/caf\xe9\n",
            "2:17",
            "the file is not UTF-8 text: byte 0xE9 does not belong here",
        );
        assert_refused(
            &sandbox,
            "twice.yaml",
            b"folder:\n  home: /a\n  home: /b\n",
            "3:3",
            "duplicate key `home` in `folder` (first written at line 2)",
        );
        assert_refused(
            &sandbox,
            "control.yaml",
            b"logging:\n  stderr: IN\x08FO\n",
            "2:13",
            "control character U+0008 is not allowed in YAML",
        );
        assert_refused(
            &sandbox,
            "shape.yaml",
            b"worker: [1]\n",
            "1:9",
            "`worker`: invalid type: sequence, expected a mapping",
        );
        assert_refused(
            &sandbox,
            "forever.yaml",
            b"worker:\n  zombie_after: 1000000000000000h\n",
            "2:17",
            "must be at most 1day",
        );
        let mut big = b"folder:\n  home: /srv\n".to_vec();
        big.resize((64 << 10) + 1, b'#');
        assert_refused(
            &sandbox,
            "big.yaml",
            &big,
            "1:1",
            "the file is larger than 64 KiB: local.yaml may have at most 65536 bytes",
        );

        // A byte order mark is allowed, as YAML says.
        let output = config_with(
            &sandbox,
            "bom.yaml",
            b"\xef\xbb\xbffolder:\n  home: /srv/projects\n",
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert!(
            stdout(&output).contains("/srv/projects"),
            "{}",
            stdout(&output)
        );
    }

    #[test]
    fn a_file_that_cannot_be_read_is_said_once() {
        let sandbox = Sandbox::new();
        let output = sandbox.coco(&["--config", "home", "config"]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{err}");
        // Named as the absolute path it was resolved to (relative to the working directory).
        let named = format!(
            "cannot read config file {}: Is a directory",
            sandbox.dir.path().join("home").display()
        );
        assert!(err.contains(&named), "{err}");
        assert_eq!(err.matches("Is a directory").count(), 1, "said once: {err}");
    }

    #[test]
    fn an_endless_file_is_refused_without_reading_it_whole() {
        let sandbox = Sandbox::new();
        let mut coco = sandbox.spawn(&["--config", "/dev/zero", "config"]);
        assert_eq!(coco.wait_exit(), Some(1), "{}", coco.log());
        assert!(
            coco.log()
                .contains("/dev/zero:1:1: the file is larger than 64 KiB"),
            "{}",
            coco.log()
        );
    }
}

#[test]
fn daemon_timings_default_to_todays_values_and_are_bounded_below() {
    let m = Machine::new();
    let (config, settings) = m.ok(&[], &no_flags());
    assert_eq!(config.daemon, coco::config::DaemonConfig::default());
    assert_eq!(config.daemon.app_stale_after, Duration::from_secs(10));
    assert_eq!(config.daemon.control_every, Duration::from_secs(1));
    assert_eq!(setting(&settings, "daemon.app_grace").0, "~");

    m.user("daemon:\n  app_grace: 30s\n  prune_every: 10m\n");
    let (config, settings) = m.ok(&[], &no_flags());
    assert_eq!(config.daemon.app_grace, Duration::from_secs(30));
    assert_eq!(config.daemon.prune_every, Duration::from_secs(600));
    assert_eq!(config.daemon.app_status_every, Duration::from_secs(1));
    assert_eq!(setting(&settings, "daemon.app_grace").0, "30s");

    m.user("daemon:\n  app_stale_after: 500ms\n");
    let error = m.error(&[], &no_flags());
    assert!(error.contains(":2:20: must be at least 1s"), "{error}");
    m.user("daemon:\n  app_graze: 1s\n");
    let error = m.error(&[], &no_flags());
    assert!(error.contains("app_grace"), "did you mean: {error}");

    m.user("");
    let error = m.error(&[("COCO_DAEMON__CONTROL_EVERY", "10ms")], &no_flags());
    assert!(
        error.contains("environment variable COCO_DAEMON__CONTROL_EVERY: must be at least 100ms"),
        "{error}"
    );
    let (config, _) = m.ok(&[("COCO_DAEMON__APP_STATUS_EVERY", "250ms")], &no_flags());
    assert_eq!(config.daemon.app_status_every, Duration::from_millis(250));
}

/// The `daemon` timings as a person meets them: written in `~/.coco/local.yaml` of a fresh
/// home, shown by `coco config` with their file, and one below its minimum refused with its
/// line and column before anything runs (`coco daemon` does not start).
#[test]
fn daemon_timings_through_the_binary() {
    use crate::support::{Sandbox, stderr, stdout};
    let sandbox = Sandbox::new();
    let local = sandbox.dir.path().join(".coco/local.yaml");
    let base = std::fs::read_to_string(&local).unwrap();

    std::fs::write(&local, format!("{base}daemon:\n  app_grace: 30s\n")).unwrap();
    let shown = sandbox.coco(&["config"]);
    assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
    let line = stdout(&shown)
        .lines()
        .find(|line| line.contains("daemon.app_grace"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        line.contains("30s") && line.contains("local.yaml"),
        "{}",
        stdout(&shown)
    );

    std::fs::write(&local, format!("{base}daemon:\n  app_stale_after: 500ms\n")).unwrap();
    let at = format!(
        "local.yaml:{}:20: must be at least 1s",
        base.lines().count() + 2
    );
    let refused = sandbox.coco(&["config"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(stderr(&refused).contains(&at), "{}", stderr(&refused));
    let daemon = sandbox.coco(&["daemon"]);
    assert_eq!(daemon.status.code(), Some(1), "{}", stdout(&daemon));
    assert!(stderr(&daemon).contains(&at), "{}", stderr(&daemon));
}

/// `daemon.app_stale_after` under 3 × `daemon.app_status_every` (the two merged from any
/// sources) would take over apps whose daemon is alive: refused at the key written last,
/// by `coco config` and `coco daemon` alike, in a fresh home, nothing started.
#[test]
fn app_take_over_sooner_than_three_status_writes_is_refused_through_the_binary() {
    use crate::support::{Sandbox, stderr, stdout};
    let sandbox = Sandbox::new();
    let local = sandbox.dir.path().join(".coco/local.yaml");
    let base = std::fs::read_to_string(&local).unwrap();
    let line = base.lines().count() + 2;

    // Only the status interval written: the default take-over (10s) is too soon for it.
    std::fs::write(&local, format!("{base}daemon:\n  app_status_every: 5s\n")).unwrap();
    let at = format!("local.yaml:{line}:3: must be at most daemon.app_stale_after / 3 (3s 333ms):");
    for verb in ["config", "daemon"] {
        let refused = sandbox.coco(&[verb]);
        assert_eq!(
            refused.status.code(),
            Some(1),
            "{verb}: {}",
            stdout(&refused)
        );
        assert!(
            stderr(&refused).contains(&at),
            "{verb}: {}",
            stderr(&refused)
        );
    }

    // The file keeps the rule; a variable breaks it and is named (it was written last).
    std::fs::write(&local, format!("{base}daemon:\n  app_status_every: 2s\n")).unwrap();
    let shown = sandbox.coco(&["config"]);
    assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
    let refused = sandbox.coco_env(&["config"], &[("COCO_DAEMON__APP_STALE_AFTER", "5s")]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains(
            "environment variable COCO_DAEMON__APP_STALE_AFTER: must be at least 3 × \
             daemon.app_status_every (6s)"
        ),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn the_api_listens_on_loopback_5001_unless_told_otherwise() {
    let m = Machine::new();
    let (config, settings) = m.ok(&[], &no_flags());
    assert_eq!(config.api.listen, Some("127.0.0.1:5001".parse().unwrap()));
    assert_eq!(
        setting(&settings, "api.listen"),
        ("127.0.0.1:5001", "default")
    );
    assert_eq!(setting(&settings, "api.enabled"), ("true", "default"));

    m.user("api:\n  listen: '[::1]:6000'\n");
    let (config, _) = m.ok(&[], &no_flags());
    assert_eq!(config.api.listen, Some("[::1]:6000".parse().unwrap()));
    let (config, settings) = m.ok(&[("COCO_API__LISTEN", "0.0.0.0:7000")], &no_flags());
    assert_eq!(config.api.listen, Some("0.0.0.0:7000".parse().unwrap()));
    assert_eq!(setting(&settings, "api.listen").1, "env COCO_API__LISTEN");

    // Turned off: no address, whatever listen says.
    m.user("api:\n  enabled: false\n  listen: 127.0.0.1:6000\n");
    let (config, _) = m.ok(&[], &no_flags());
    assert_eq!(config.api.listen, None);

    for (bad, says) in [
        ("api:\n  listen: localhost:5001\n", "local.yaml:2:11"),
        ("api:\n  listen: 127.0.0.1\n", "expected IP:PORT"),
        ("api:\n  listen: 127.0.0.1:99999\n", "expected IP:PORT"),
        ("api:\n  enabled: sometimes\n", "local.yaml:2:12"),
        ("api:\n  port: 5001\n", "port"),
    ] {
        m.user(bad);
        let error = m.error(&[], &no_flags());
        assert!(error.contains(says), "{bad:?}: {error}");
    }
}
