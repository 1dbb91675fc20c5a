//! `coco init`: new projects from handlebars templates.
//!
//! - [`template`]: the templates embedded in coco and those of `folder.templates`.
//! - [`render`] (pure): a template and the variables → files to write, paths checked.
//! - [`write`]: the files into the project folder, never outside it, never over a file.
//! - [`crate::git::init_flow`]: the git-flow repository with its bare `.repos` origin.
//! - [`init`]: the whole command — checks, render, write, environment, git, local.yaml.

pub mod init;
pub mod render;
pub mod template;
pub mod write;

/// Is `name` a valid project name (`[a-z][a-z0-9_-]*`)? The reason if not (pure).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.contains('/') || name.contains('\\') || name.contains("..") {
        return Err(format!(
            "project name `{name}` is a path: give a plain name such as `mypro` (use --home to choose the folder it is created in)"
        ));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "project name `{name}` is not valid: it must start with a lowercase letter, followed by lowercase letters, digits, `_` or `-`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names() {
        for good in ["mypro", "a", "my-pro_2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "../x", "/tmp/x", "a/b", "", "MyPro", "2pro", "-x", "my pro", "é",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name("a/b").unwrap_err().contains("is a path"));
    }
}
