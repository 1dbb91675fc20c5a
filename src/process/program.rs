//! Where the program of a spec is, found the way `execvp` would but on the child's `PATH`
//! and relative to its working directory: a name with a slash from the working directory, a
//! bare name as the first executable file of a `PATH` entry.
//!
//! A busy worker starts the same program hundreds of times a second, and walking `PATH`
//! costs a `stat` per entry before the one that has it (ten for `true` on this project's CI
//! machine). So what a walk found is remembered per (name, `PATH`, working directory) for
//! [`REMEMBER_FOR`], like a shell's command hash but never longer: the remembered file is
//! checked again on every use (a removed or no longer executable one is looked up anew), and a
//! program put on an earlier `PATH` entry is found within that time. What is not found is
//! never remembered.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::SpawnError;

/// How long a program found on `PATH` is taken from memory instead of walking it again.
pub(crate) const REMEMBER_FOR: Duration = Duration::from_secs(1);

/// Lookups remembered at most; all are forgotten when it is reached.
const REMEMBER_AT_MOST: usize = 256;

/// What the walks of this process found.
static FOUND: Mutex<Option<Found>> = Mutex::new(None);

/// Find `program` for a child running in `cwd` with `path` as its `PATH`.
pub(crate) fn resolve(program: &str, cwd: &Path, path: &OsStr) -> Result<PathBuf, SpawnError> {
    if program.contains('/') {
        let resolved = cwd.join(program);
        return match std::fs::metadata(&resolved) {
            Err(_) => Err(SpawnError::NotFound {
                program: program.to_string(),
                cwd: cwd.to_path_buf(),
                resolved,
            }),
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Ok(resolved),
            Ok(_) => Err(SpawnError::NotExecutable {
                program: program.to_string(),
                cwd: cwd.to_path_buf(),
                resolved,
            }),
        };
    }
    let key = Key::new(program, cwd, path);
    let remembered = lock()
        .get_or_insert_with(Found::default)
        .get(&key, Instant::now());
    if let Some(file) = remembered.filter(|file| is_executable_file(file)) {
        return Ok(file);
    }
    match walk(program, cwd, path) {
        Some(file) => {
            lock()
                .get_or_insert_with(Found::default)
                .put(key, file.clone(), Instant::now());
            Ok(file)
        }
        None => Err(SpawnError::NotFoundOnPath {
            program: program.to_string(),
            cwd: cwd.to_path_buf(),
            path: path.to_string_lossy().into_owned(),
        }),
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<Found>> {
    FOUND.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The first executable file named `program` in an entry of `path` (relative entries from
/// `cwd`).
fn walk(program: &str, cwd: &Path, path: &OsStr) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    std::env::split_paths(path)
        .map(|dir| cwd.join(dir).join(program))
        .find(|candidate| is_executable_file(candidate))
}

pub(crate) fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// One lookup: the program's name, the `PATH` and the working directory it was made with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    program: String,
    path: OsString,
    cwd: PathBuf,
}

impl Key {
    fn new(program: &str, cwd: &Path, path: &OsStr) -> Key {
        Key {
            program: program.to_string(),
            path: path.to_os_string(),
            cwd: cwd.to_path_buf(),
        }
    }
}

/// Remembered walks, each with the instant it was made (pure: the caller gives the time).
#[derive(Debug, Default)]
struct Found {
    files: HashMap<Key, (PathBuf, Instant)>,
}

impl Found {
    /// The file found for `key`, if found less than [`REMEMBER_FOR`] before `now`.
    fn get(&self, key: &Key, now: Instant) -> Option<PathBuf> {
        self.files
            .get(key)
            .filter(|(_, at)| now.saturating_duration_since(*at) < REMEMBER_FOR)
            .map(|(file, _)| file.clone())
    }

    fn put(&mut self, key: Key, file: PathBuf, now: Instant) {
        if self.files.len() >= REMEMBER_AT_MOST && !self.files.contains_key(&key) {
            self.files.clear();
        }
        self.files.insert(key, (file, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(program: &str) -> Key {
        Key::new(program, Path::new("/work"), OsStr::new("/usr/bin:/bin"))
    }

    #[test]
    fn a_found_program_is_remembered_for_a_second_only() {
        let t0 = Instant::now();
        let mut found = Found::default();
        found.put(key("true"), PathBuf::from("/usr/bin/true"), t0);
        assert_eq!(
            found.get(&key("true"), t0 + Duration::from_millis(999)),
            Some(PathBuf::from("/usr/bin/true"))
        );
        assert_eq!(found.get(&key("true"), t0 + REMEMBER_FOR), None);
        assert_eq!(found.get(&key("false"), t0), None);
    }

    #[test]
    fn another_path_or_working_directory_is_another_lookup() {
        let t0 = Instant::now();
        let mut found = Found::default();
        found.put(key("tool"), PathBuf::from("/usr/bin/tool"), t0);
        let other_path = Key::new("tool", Path::new("/work"), OsStr::new("/venv/bin:/usr/bin"));
        let other_cwd = Key::new("tool", Path::new("/elsewhere"), OsStr::new("/usr/bin:/bin"));
        assert_eq!(found.get(&other_path, t0), None);
        assert_eq!(found.get(&other_cwd, t0), None);
    }

    #[test]
    fn the_memory_is_bounded() {
        let t0 = Instant::now();
        let mut found = Found::default();
        for i in 0..REMEMBER_AT_MOST + 10 {
            found.put(key(&format!("p{i}")), PathBuf::from("/usr/bin/x"), t0);
        }
        assert!(found.files.len() <= REMEMBER_AT_MOST);
    }

    #[test]
    fn a_remembered_file_that_went_away_is_looked_up_again() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("first"), dir.path().join("second"));
        std::fs::create_dir_all(&first).unwrap();
        std::fs::create_dir_all(&second).unwrap();
        let write_tool = |dir: &Path| {
            let file = dir.join("coco-program-test-tool");
            std::fs::write(&file, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
            file
        };
        let in_second = write_tool(&second);
        let path = std::env::join_paths([&first, &second]).unwrap();
        let found = resolve("coco-program-test-tool", dir.path(), &path).unwrap();
        assert_eq!(found, in_second);
        std::fs::remove_file(&in_second).unwrap();
        let in_first = write_tool(&first);
        let found = resolve("coco-program-test-tool", dir.path(), &path).unwrap();
        assert_eq!(found, in_first, "the removed file is not used from memory");
    }
}
