//! Where `coco init` templates come from: the ones embedded in the binary (`templates/` of
//! the source tree, see `build.rs`) and the operator's own in `folder.templates` (one
//! sub-folder per template; a folder named like an embedded template replaces it).

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

/// The templates of folder `dir` (each sub-folder one), by name.
pub fn from_folder(dir: &Path) -> Result<Vec<Template>, TemplateError> {
    let read = |path: &Path| {
        std::fs::read_dir(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let mut templates = Vec::new();
    for entry in read(dir)? {
        let entry = entry.map_err(|source| TemplateError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        collect(&path, &path, &mut files)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        templates.push(Template {
            name: entry.file_name().to_string_lossy().into_owned(),
            origin: Origin::Folder(path),
            files,
        });
    }
    templates.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(templates)
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

/// Every template: the embedded ones, replaced or joined by those of `user_dir`.
pub fn all(user_dir: Option<&Path>) -> Result<Vec<Template>, TemplateError> {
    let mut by_name: BTreeMap<String, Template> = embedded()
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    if let Some(dir) = user_dir.filter(|dir| dir.is_dir()) {
        for template in from_folder(dir)? {
            by_name.insert(template.name.clone(), template);
        }
    }
    Ok(by_name.into_values().collect())
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
}
