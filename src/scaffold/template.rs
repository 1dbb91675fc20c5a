//! Where `coco init` templates come from: the ones embedded in the binary (`templates/` of
//! the source tree, see `build.rs`) and the operator's own in `folder.templates` (one
//! sub-folder per template; a folder named like an embedded template replaces it). A user
//! template that cannot be read (a symbolic link in it, an unreadable file) is [`Broken`]:
//! reported with its path and skipped, never a reason for the others to fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

/// One file of a template: its path (`/`-separated, itself a template) and contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFile {
    pub path: String,
    pub contents: Vec<u8>,
    pub executable: bool,
}

/// Where a template was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Embedded,
    Folder(PathBuf),
}

/// A named template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub origin: Origin,
    pub files: Vec<TemplateFile>,
}

/// A template folder that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template folder {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template file {} is not a regular file or folder (symbolic links are not followed)", path.display())]
    NotAFile { path: PathBuf },
    #[error("template file name {} is not UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
}

/// The templates compiled into coco, by name.
pub fn embedded() -> Vec<Template> {
    let mut templates: BTreeMap<&str, Vec<TemplateFile>> = BTreeMap::new();
    for (path, contents, executable) in embedded::EMBEDDED {
        let (name, rest) = path.split_once('/').unwrap_or((path, ""));
        templates.entry(name).or_default().push(TemplateFile {
            path: rest.to_owned(),
            contents: contents.to_vec(),
            executable: *executable,
        });
    }
    templates
        .into_iter()
        .map(|(name, files)| Template {
            name: name.to_owned(),
            origin: Origin::Embedded,
            files,
        })
        .collect()
}

/// A template of `folder.templates` that cannot be used, and why: reported and skipped,
/// so one bad template never hides the others.
#[derive(Debug)]
pub struct Broken {
    pub name: String,
    /// The template's folder.
    pub folder: PathBuf,
    pub error: TemplateError,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "template {} ({}) is broken and skipped: {}",
            self.name,
            self.folder.display(),
            self.error
        )
    }
}

/// The templates there are: the usable ones by name, and the broken ones.
#[derive(Debug, Default)]
pub struct Catalog {
    pub templates: Vec<Template>,
    pub broken: Vec<Broken>,
}

impl Catalog {
    /// The usable template `name`.
    pub fn get(&self, name: &str) -> Option<&Template> {
        self.templates.iter().find(|t| t.name == name)
    }
}

/// The templates of folder `dir` (each sub-folder one), by name; a sub-folder that cannot be
/// read (a symbolic link inside, an unreadable file) is [`Broken`]. Only `dir` itself
/// failing to be read is an error.
pub fn from_folder(dir: &Path) -> Result<Catalog, TemplateError> {
    let read_failed = |source| TemplateError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut catalog = Catalog::default();
    for entry in std::fs::read_dir(dir).map_err(read_failed)? {
        let entry = entry.map_err(read_failed)?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut files = Vec::new();
        match collect(&path, &path, &mut files) {
            Ok(()) => {
                files.sort_by(|a, b| a.path.cmp(&b.path));
                catalog.templates.push(Template {
                    name,
                    origin: Origin::Folder(path),
                    files,
                });
            }
            Err(error) => catalog.broken.push(Broken {
                name,
                folder: path,
                error,
            }),
        }
    }
    catalog.templates.sort_by(|a, b| a.name.cmp(&b.name));
    catalog.broken.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(catalog)
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<TemplateFile>) -> Result<(), TemplateError> {
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| TemplateError::Read { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(failed(dir))? {
        let entry = entry.map_err(failed(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(failed(&path))?;
        if kind.is_dir() {
            collect(root, &path, files)?;
        } else if kind.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_str()
                .ok_or_else(|| TemplateError::NotUtf8 { path: path.clone() })?
                .to_owned();
            let metadata = entry.metadata().map_err(failed(&path))?;
            files.push(TemplateFile {
                path: relative,
                contents: std::fs::read(&path).map_err(failed(&path))?,
                executable: metadata.permissions().mode() & 0o111 != 0,
            });
        } else {
            return Err(TemplateError::NotAFile { path });
        }
    }
    Ok(())
}

/// Every template: the embedded ones, replaced or joined by those of `user_dir`. A broken
/// user template named like an embedded one still replaces it (it is listed as broken, and
/// using it is refused), so a mistake never silently falls back to the embedded template.
pub fn all(user_dir: Option<&Path>) -> Result<Catalog, TemplateError> {
    let mut by_name: BTreeMap<String, Template> = embedded()
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let mut broken = Vec::new();
    if let Some(dir) = user_dir.filter(|dir| dir.is_dir()) {
        let user = from_folder(dir)?;
        for template in user.templates {
            by_name.insert(template.name.clone(), template);
        }
        for bad in &user.broken {
            by_name.remove(&bad.name);
        }
        broken = user.broken;
    }
    Ok(Catalog {
        templates: by_name.into_values().collect(),
        broken,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_and_shell_are_embedded() {
        let templates = embedded();
        let names: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
        assert!(
            names.contains(&"python") && names.contains(&"shell"),
            "{names:?}"
        );
        let python = templates.iter().find(|t| t.name == "python").unwrap();
        let paths: Vec<&str> = python.files.iter().map(|f| f.path.as_str()).collect();
        for expected in [
            "coco.yaml",
            "README.md",
            "enter_env",
            "requirements.txt",
            "{{name}}/__init__.py",
            "{{name}}/hello.py",
            "tests/test_hello.py",
            ".gitignore",
        ] {
            assert!(paths.contains(&expected), "{expected} in {paths:?}");
        }
        assert!(
            python
                .files
                .iter()
                .any(|f| f.path == "enter_env" && f.executable)
        );
    }

    #[test]
    fn a_broken_user_template_is_set_apart_and_shadows_its_embedded_namesake() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["python", "mine"] {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("coco.yaml"), "").unwrap();
        }
        std::os::unix::fs::symlink("nowhere", dir.path().join("python/link")).unwrap();
        let catalog = all(Some(dir.path())).unwrap();
        let names: Vec<&str> = catalog.templates.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["mine", "shell"]);
        assert_eq!(catalog.broken.len(), 1);
        assert_eq!(catalog.broken[0].name, "python");
        assert!(matches!(
            &catalog.broken[0].error,
            TemplateError::NotAFile { path } if path.ends_with("python/link")
        ));
    }
}
