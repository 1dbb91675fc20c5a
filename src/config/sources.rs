//! Each source of the cascade read into a validated, path-resolved [`Layer`].
//!
//! A file is checked with [`crate::yaml`] before it is merged, so every problem is placed at
//! `path:line:column`; an environment variable or a flag is checked on its own, so its
//! problem names the variable or the flag. A [`Layer`] is a figment [`Provider`] whose name
//! is the provenance shown for the values it wins (`default`, the file path,
//! `env COCO_FOLDER__HOME`, `flag --home`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value as FigmentValue};
use figment::{Metadata, Profile, Provider};

use super::Problem;
use super::raw::{KEYS, RawConfig, RawOutline};
use crate::yaml::{Diagnostic, Document, Position, Value, did_you_mean, text};

/// One layer of the cascade, validated, with its paths resolved.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The provenance of the values this layer wins.
    pub name: String,
    /// The file it was read from, if any.
    pub file: Option<PathBuf>,
    pub raw: RawConfig,
    /// Where each written key (`section.key`) sits in the file.
    pub lines: HashMap<&'static str, Position>,
    /// The file's text, for the line a problem found after merging quotes.
    pub text: Option<String>,
}

impl Layer {
    pub fn new(name: impl Into<String>, raw: RawConfig) -> Layer {
        Layer {
            name: name.into(),
            file: None,
            raw,
            lines: HashMap::new(),
            text: None,
        }
    }

    /// A problem with `key`, which this layer wins, found once the layers were merged:
    /// placed at the key's line and column in a file, else naming the variable or the flag.
    pub fn problem_with(&self, key: &str, message: &str) -> Problem {
        if let (Some(file), Some(position)) = (&self.file, self.lines.get(key)) {
            let text = self.text.as_deref().unwrap_or_default();
            return Problem::file(Diagnostic::new(file, text, *position, message));
        }
        if let Some(var) = self.name.strip_prefix("env ") {
            return Problem::env(var, message, None);
        }
        Problem::Flag {
            flag: self.name.trim_start_matches("flag ").to_owned(),
            message: crate::redact::redact(message),
        }
    }

    /// Provenance of `key` when this layer wins it: the name, plus `:line` for a file.
    pub fn source_of(&self, key: &str) -> String {
        match self.lines.get(key) {
            Some(position) => format!("{}:{}", self.name, position.line),
            None => self.name.clone(),
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let metadata = Metadata::named(self.name.clone());
        match &self.file {
            Some(file) => metadata.source(figment::Source::File(file.clone())),
            None => metadata,
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict = FigmentValue::serialize(&self.raw)?
            .into_dict()
            .ok_or_else(|| figment::Error::from(format!("{}: not a mapping", self.name)))?;
        Ok(Map::from([(Profile::Default, dict)]))
    }
}

/// Expand a leading `~` to `home`; make a relative path relative to `base` (a file's folder,
/// or the working directory for a variable or a flag). With `home` and `base` absolute, the
/// result is absolute.
pub fn resolve_path(path: &Path, home: &Path, base: &Path) -> PathBuf {
    let expanded = match path.strip_prefix("~") {
        Ok(rest) => home.join(rest),
        Err(_) => path.to_path_buf(),
    };
    base.join(expanded)
}

fn resolve_paths(raw: &mut RawConfig, home: &Path, base: &Path) {
    let folder = &mut raw.folder;
    for path in [&mut folder.home, &mut folder.state, &mut folder.templates]
        .into_iter()
        .flatten()
    {
        if !path.as_os_str().is_empty() {
            *path = resolve_path(path, home, base);
        }
    }
}

/// What is wrong with the values of one layer (beyond their types), as `(key, message)`.
pub fn check(raw: &RawConfig) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if let Some(url) = &raw.default.mongo_url
        && !url.is_empty()
        && !url.starts_with("mongodb://")
        && !url.starts_with("mongodb+srv://")
    {
        problems.push((
            "DEFAULT.mongo_url",
            "expected a `mongodb://` or `mongodb+srv://` URL".to_owned(),
        ));
    }
    if let Some(database) = &raw.default.mongo_database {
        if database.is_empty() {
            problems.push(("DEFAULT.mongo_database", "must not be empty".to_owned()));
        } else if let Some(bad) = database.chars().find(|c| "/\\. \"$".contains(*c)) {
            problems.push((
                "DEFAULT.mongo_database",
                format!("a database name cannot contain `{bad}`"),
            ));
        }
    }
    let folder = &raw.folder;
    for (key, path) in [
        ("folder.home", &folder.home),
        ("folder.state", &folder.state),
        ("folder.templates", &folder.templates),
    ] {
        if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            problems.push((key, "must not be empty".to_owned()));
        }
    }
    if raw.worker.slots == Some(0) {
        problems.push(("worker.slots", "must be at least 1".to_owned()));
    }
    if raw.worker.max_lost == Some(0) {
        problems.push((
            "worker.max_lost",
            "must be at least 1 (the loss that ends the run counts)".to_owned(),
        ));
    }
    if raw.worker.max_output.is_some_and(|size| size.0 < 1024) {
        problems.push((
            "worker.max_output",
            "must be at least 1KiB (the tail of a run's output is kept)".to_owned(),
        ));
    }
    if let Some(problem) = raw
        .worker
        .zombie_after
        .and_then(|after| super::zombie_after_problem(after.0))
    {
        problems.push(("worker.zombie_after", problem));
    }
    if let Some(cpu) = raw.worker.max_cpu
        && !(cpu > 0.0 && cpu <= 100.0)
    {
        problems.push((
            "worker.max_cpu",
            "must be a percentage above 0 and at most 100".to_owned(),
        ));
    }
    problems.extend(super::daemon::check(&raw.daemon));
    if let Some(listen) = &raw.api.listen
        && let Err(why) = super::listen_address(listen)
    {
        problems.push(("api.listen", why));
    }
    if let Some(problem) = raw
        .fleet
        .host
        .as_deref()
        .and_then(crate::host::name_problem)
    {
        problems.push(("fleet.host", problem));
    }
    problems.extend(super::fleet_problems(
        raw.fleet.renew_every.map(|v| v.0),
        raw.fleet.lease.map(|v| v.0),
    ));
    problems
}

/// A `local.yaml` larger than this is refused before it is parsed.
pub const MAX_CONFIG_BYTES: u64 = 64 << 10;

/// The bytes of the configuration file `file`: at most [`MAX_CONFIG_BYTES`] and one more (so
/// that [`parse_file`] can tell a file too large), never the whole of a huge file.
pub fn read_file(file: &Path) -> std::io::Result<Vec<u8>> {
    text::read_at_most(file, MAX_CONFIG_BYTES)
}

/// Read `bytes` (the contents of `file`, from [`read_file`]) into a layer, or every located
/// problem in it: a file too large, bytes that are not UTF-8, bad YAML, bad values.
pub fn parse_file(file: &Path, bytes: &[u8], home: &Path) -> Result<Layer, Vec<Diagnostic>> {
    if let Some(problem) = text::too_large(file, bytes.len(), MAX_CONFIG_BYTES, "local.yaml") {
        return Err(vec![problem]);
    }
    let decoded = text::decode(file, bytes.to_vec()).map_err(|d| vec![d])?;
    let doc = Document::parse(file, &decoded).map_err(|d| vec![d])?;
    let top = match &doc.value {
        Value::Null => {
            return Ok(file_layer(
                file,
                RawConfig::default(),
                HashMap::new(),
                &decoded,
            ));
        }
        Value::Mapping(_) => doc.value.clone(),
        _ => {
            return Err(vec![doc.at(
                &[],
                "expected a mapping of sections (DEFAULT, logging, folder, worker, daemon, api)",
            )]);
        }
    };
    let mut problems = Vec::new();
    if let Err(diagnostic) = doc.deserialize::<RawOutline>(&[], &top) {
        problems.push(diagnostic);
    }

    // Each section on its own, so one bad section does not hide the others.
    let written_default = if doc.get(&["default".to_owned()]).is_some() {
        "default"
    } else {
        "DEFAULT"
    };
    let mut raw = RawConfig::default();
    for (section, written) in [
        ("DEFAULT", written_default),
        ("logging", "logging"),
        ("folder", "folder"),
        ("worker", "worker"),
        ("daemon", "daemon"),
        ("api", "api"),
        ("fleet", "fleet"),
    ] {
        let path = vec![written.to_owned()];
        let value = match doc.get(&path) {
            None | Some(Value::Null) => continue,
            Some(value) => value.clone(),
        };
        let result = match section {
            "DEFAULT" => doc.deserialize(&path, &value).map(|v| raw.default = v),
            "logging" => doc.deserialize(&path, &value).map(|v| raw.logging = v),
            "folder" => doc.deserialize(&path, &value).map(|v| raw.folder = v),
            "worker" => doc.deserialize(&path, &value).map(|v| raw.worker = v),
            "daemon" => doc.deserialize(&path, &value).map(|v| raw.daemon = v),
            "api" => doc.deserialize(&path, &value).map(|v| raw.api = v),
            _ => doc.deserialize(&path, &value).map(|v| raw.fleet = v),
        };
        if let Err(diagnostic) = result {
            problems.push(diagnostic);
        }
    }

    let written = |key: &str| -> Vec<String> {
        let (section, name) = key.split_once('.').unwrap_or((key, ""));
        let section = if section == "DEFAULT" {
            written_default
        } else {
            section
        };
        vec![section.to_owned(), name.to_owned()]
    };
    for (key, message) in check(&raw) {
        problems.push(doc.at(&written(key), message));
    }
    if !problems.is_empty() {
        problems.sort_by_key(|diagnostic| diagnostic.position);
        return Err(problems);
    }

    resolve_paths(&mut raw, home, file.parent().unwrap_or(Path::new("/")));
    let lines = KEYS
        .iter()
        .filter_map(|key| {
            doc.positions
                .key(&written(key))
                .map(|position| (*key, position))
        })
        .collect();
    Ok(file_layer(file, raw, lines, &decoded))
}

fn file_layer(
    file: &Path,
    raw: RawConfig,
    lines: HashMap<&'static str, Position>,
    text: &str,
) -> Layer {
    Layer {
        name: file.display().to_string(),
        file: Some(file.to_path_buf()),
        raw,
        lines,
        text: Some(text.to_owned()),
    }
}

/// Whether `var` is meant as a configuration key: `COCO_<SECTION>__<KEY>`. Other `COCO_`
/// variables (`COCO_CONFIG`, `COCO_TEST_MONGO_URL`) are not.
pub fn is_config_var(var: &str) -> bool {
    var.strip_prefix("COCO_")
        .is_some_and(|rest| rest.contains("__"))
}

/// Read the configuration variable `var` (see [`is_config_var`]) into a layer; a relative
/// path in it is relative to `cwd`.
pub fn parse_env(var: &str, value: &str, home: &Path, cwd: &Path) -> Result<Layer, Problem> {
    let rest = var.strip_prefix("COCO_").unwrap_or(var);
    let key = rest
        .split_once("__")
        .filter(|(_, name)| !name.contains("__"))
        .map(|(section, name)| {
            let section = section.to_lowercase();
            let section = if section == "default" {
                "DEFAULT".to_owned()
            } else {
                section
            };
            format!("{section}.{}", name.to_lowercase())
        })
        .and_then(|key| KEYS.iter().find(|known| **known == key).copied());
    let Some(key) = key else {
        let candidates: Vec<String> = KEYS
            .iter()
            .map(|key| env_name(key)["COCO_".len()..].to_owned())
            .collect();
        let suggestion = did_you_mean(&rest.to_uppercase(), candidates.iter().map(String::as_str))
            .map(|name| format!("COCO_{name}"));
        let message = match suggestion {
            Some(_) => "not a configuration key".to_owned(),
            None => format!(
                "not a configuration key (expected COCO_<SECTION>__<KEY>, one of: {})",
                env_names()
            ),
        };
        return Err(Problem::env(var, message, suggestion));
    };

    let (section, name) = key.split_once('.').unwrap_or((key, ""));
    let layer_of = |scalar: Value| -> Result<RawConfig, String> {
        let mut inner = serde_yaml::Mapping::new();
        inner.insert(Value::from(name), scalar);
        let mut outer = serde_yaml::Mapping::new();
        outer.insert(Value::from(section), Value::Mapping(inner));
        serde_yaml::from_value(Value::Mapping(outer)).map_err(|e| e.to_string())
    };
    // Text first (a database may be called `123`), then as a YAML scalar (`4`, `~`).
    let raw =
        layer_of(Value::from(value)).or_else(|first| match serde_yaml::from_str::<Value>(value) {
            Ok(scalar @ (Value::Bool(_) | Value::Number(_) | Value::Null))
                if !value.trim().is_empty() =>
            {
                layer_of(scalar)
            }
            _ => Err(first),
        });
    let mut raw = raw.map_err(|message| Problem::env(var, message, None))?;
    if let Some((_, message)) = check(&raw).into_iter().next() {
        return Err(Problem::env(var, message, None));
    }
    resolve_paths(&mut raw, home, cwd);
    Ok(Layer::new(format!("env {var}"), raw))
}

/// `DEFAULT.mongo_url` → `COCO_DEFAULT__MONGO_URL`.
pub fn env_name(key: &str) -> String {
    format!("COCO_{}", key.replacen('.', "__", 1).to_uppercase())
}

fn env_names() -> String {
    KEYS.iter()
        .map(|key| env_name(key))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "/home/u";
    const CWD: &str = "/work";

    #[test]
    fn tilde_and_relative_paths_are_resolved() {
        let home = Path::new(HOME);
        let base = Path::new("/etc/coco");
        assert_eq!(
            resolve_path(Path::new("~"), home, base),
            Path::new("/home/u")
        );
        assert_eq!(
            resolve_path(Path::new("~/x"), home, base),
            Path::new("/home/u/x")
        );
        assert_eq!(
            resolve_path(Path::new("x/y"), home, base),
            Path::new("/etc/coco/x/y")
        );
        assert_eq!(
            resolve_path(Path::new("/abs"), home, base),
            Path::new("/abs")
        );
        assert_eq!(
            resolve_path(Path::new("~other"), home, base),
            Path::new("/etc/coco/~other")
        );
    }

    #[test]
    fn config_variables_have_a_double_underscore() {
        assert!(is_config_var("COCO_FOLDER__HOME"));
        assert!(!is_config_var("COCO_CONFIG"));
        assert!(!is_config_var("COCO_TEST_MONGO_URL"));
        assert!(!is_config_var("HOME"));
    }

    #[test]
    fn env_values_are_typed_by_their_key() {
        let home = Path::new(HOME);
        let slots = parse_env("COCO_WORKER__SLOTS", "4", home, Path::new(CWD)).unwrap();
        assert_eq!(slots.raw.worker.slots, Some(4));
        let database =
            parse_env("COCO_DEFAULT__MONGO_DATABASE", "123", home, Path::new(CWD)).unwrap();
        assert_eq!(database.raw.default.mongo_database.as_deref(), Some("123"));
        let off = parse_env("COCO_LOGGING__STDOUT", "~", home, Path::new(CWD)).unwrap();
        assert_eq!(
            off.raw.logging.stdout,
            Some(super::super::raw::LevelSetting(None))
        );
        let folder = parse_env("COCO_FOLDER__HOME", "~/p", home, Path::new(CWD)).unwrap();
        assert_eq!(
            folder.raw.folder.home.as_deref(),
            Some(Path::new("/home/u/p"))
        );
        let relative = parse_env("COCO_FOLDER__HOME", "p", home, Path::new(CWD)).unwrap();
        assert_eq!(
            relative.raw.folder.home.as_deref(),
            Some(Path::new("/work/p"))
        );
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let error = parse_env(
            "COCO_WORKER__SLOTS",
            "many",
            Path::new(HOME),
            Path::new(CWD),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("environment variable COCO_WORKER__SLOTS: invalid type"),
            "{error}"
        );
        let error =
            parse_env("COCO_FOLDR__HOME", "x", Path::new(HOME), Path::new(CWD)).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("(did you mean `COCO_FOLDER__HOME`?)"),
            "{error}"
        );
    }

    #[test]
    fn values_are_checked_beyond_their_type() {
        let raw: RawConfig =
            serde_yaml::from_str("DEFAULT: {mongo_url: 'http://x', mongo_database: a.b}\nworker: {slots: 0, max_cpu: 120}")
                .unwrap();
        let keys: Vec<_> = check(&raw).into_iter().map(|(key, _)| key).collect();
        assert_eq!(
            keys,
            [
                "DEFAULT.mongo_url",
                "DEFAULT.mongo_database",
                "worker.slots",
                "worker.max_cpu"
            ]
        );
    }
}
