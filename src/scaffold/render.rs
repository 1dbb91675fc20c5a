//! Rendering a template into the files of a new project (pure: no I/O).
//!
//! File contents (when UTF-8) and file paths are handlebars templates over [`Vars`], in
//! strict mode (an unknown variable is an error, not an empty string) and without HTML
//! escaping. `{{yaml x}}` writes `x` as a quoted YAML string. A rendered path must stay
//! inside the project: no absolute paths, no `..`, no empty or `.` components — a template
//! named `{{name}}/../../escape` is refused, never written.

use std::path::PathBuf;

use handlebars::{Handlebars, handlebars_helper};
use serde::Serialize;

use super::template::Template;

/// The variables every template sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vars {
    pub name: String,
    pub description: String,
    pub version: String,
    pub author: String,
    pub year: String,
    /// The home folder the project is created in.
    pub home: String,
}

/// One file to write, its path relative to the project folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub path: PathBuf,
    pub contents: Vec<u8>,
    pub executable: bool,
}

/// Why a template cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("template {template}, file {file}: {message}")]
    Syntax {
        template: String,
        file: String,
        message: String,
    },
    #[error(
        "template {template}: file name {file:?} renders to {rendered:?}, which is not a path inside the project (no absolute paths, `..` or empty parts)"
    )]
    Escapes {
        template: String,
        file: String,
        rendered: String,
    },
    #[error("template {template}: files {first:?} and {second:?} render to the same path")]
    Clash {
        template: String,
        first: String,
        second: String,
    },
}

handlebars_helper!(yaml: |text: str| serde_json::to_string(text).unwrap_or_default());

/// Render every file of `template` with `vars`.
pub fn render(template: &Template, vars: &Vars) -> Result<Vec<Planned>, RenderError> {
    let mut handlebars = Handlebars::new();
    handlebars.set_strict_mode(true);
    handlebars.register_escape_fn(handlebars::no_escape);
    handlebars.register_helper("yaml", Box::new(yaml));
    let text = |file: &str, source: &str| {
        handlebars
            .render_template(source, vars)
            .map_err(|e| RenderError::Syntax {
                template: template.name.clone(),
                file: file.to_owned(),
                message: e.to_string(),
            })
    };
    let mut planned: Vec<(String, Planned)> = Vec::new();
    for file in &template.files {
        let rendered = text(&file.path, &file.path)?;
        let path = inside(&rendered).ok_or_else(|| RenderError::Escapes {
            template: template.name.clone(),
            file: file.path.clone(),
            rendered: rendered.clone(),
        })?;
        let contents = match std::str::from_utf8(&file.contents) {
            Ok(source) => text(&file.path, source)?.into_bytes(),
            Err(_) => file.contents.clone(),
        };
        if let Some((first, _)) = planned.iter().find(|(_, p)| p.path == path) {
            return Err(RenderError::Clash {
                template: template.name.clone(),
                first: first.clone(),
                second: file.path.clone(),
            });
        }
        planned.push((
            file.path.clone(),
            Planned {
                path,
                contents,
                executable: file.executable,
            },
        ));
    }
    Ok(planned.into_iter().map(|(_, p)| p).collect())
}

/// `rendered` as a relative path of normal components only, if it is one.
pub fn inside(rendered: &str) -> Option<PathBuf> {
    if rendered.contains('\0') || rendered.contains('\\') {
        return None;
    }
    // An absolute path starts with an empty part, `a//b` has one, `` is one.
    let mut clean = PathBuf::new();
    for part in rendered.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return None;
        }
        clean.push(part);
    }
    Some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaffold::template::{Origin, TemplateFile};

    fn vars() -> Vars {
        Vars {
            name: "mypro".into(),
            description: "My \"first\" project".into(),
            version: "0.0.0".into(),
            author: "Ada".into(),
            year: "2026".into(),
            home: "/h".into(),
        }
    }

    fn template(files: &[(&str, &str)]) -> Template {
        Template {
            name: "t".into(),
            origin: Origin::Embedded,
            files: files
                .iter()
                .map(|(path, text)| TemplateFile {
                    path: (*path).into(),
                    contents: text.as_bytes().to_vec(),
                    executable: false,
                })
                .collect(),
        }
    }

    #[test]
    fn names_and_contents_are_rendered() {
        let planned = render(
            &template(&[
                (
                    "{{name}}/__init__.py",
                    "# {{name}} {{version}} by {{author}}",
                ),
                (
                    "coco.yaml",
                    "description: {{yaml description}}\ncommand: [\\{{args.n}}]",
                ),
            ]),
            &vars(),
        )
        .unwrap();
        assert_eq!(planned[0].path, PathBuf::from("mypro/__init__.py"));
        assert_eq!(planned[0].contents, b"# mypro 0.0.0 by Ada");
        assert_eq!(
            String::from_utf8(planned[1].contents.clone()).unwrap(),
            "description: \"My \\\"first\\\" project\"\ncommand: [{{args.n}}]"
        );
    }

    #[test]
    fn paths_that_leave_the_project_are_refused() {
        for hostile in [
            "{{name}}/../../escape",
            "../x",
            "/etc/passwd",
            "a//b",
            "./a",
            "a/./b",
            "",
        ] {
            let error = render(&template(&[(hostile, "x")]), &vars()).unwrap_err();
            assert!(
                matches!(error, RenderError::Escapes { .. }),
                "{hostile}: {error}"
            );
        }
        let vars = Vars {
            name: "..".into(),
            ..vars()
        };
        assert!(render(&template(&[("{{name}}/x", "")]), &vars).is_err());
    }

    #[test]
    fn an_unknown_variable_is_an_error_naming_the_file() {
        let error = render(&template(&[("README.md", "{{nmae}}")]), &vars()).unwrap_err();
        assert!(error.to_string().contains("README.md"), "{error}");
    }

    #[test]
    fn binary_files_are_copied_as_they_are() {
        let mut t = template(&[("logo.png", "")]);
        t.files[0].contents = vec![0xff, 0xfe, b'{', b'{'];
        let planned = render(&t, &vars()).unwrap();
        assert_eq!(planned[0].contents, vec![0xff, 0xfe, b'{', b'{']);
    }
}
