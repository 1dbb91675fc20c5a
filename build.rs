//! Embeds `templates/` (the `coco init` templates) in the binary: writes
//! `$OUT_DIR/templates.rs` with one `(path, contents, executable)` entry per file of each
//! template folder, `path` relative to `templates/` with `/` separators.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    println!("cargo:rerun-if-changed=templates");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&root).expect("templates/ exists") {
        let entry = entry.expect("readable templates/");
        // Top-level files (the README) are about templates, not in one.
        if entry.file_type().expect("file type").is_dir() {
            collect(&entry.path(), &mut files);
        }
    }
    files.sort();
    let mut code =
        String::from("/// The embedded templates' files: (path, contents, executable).\n");
    code.push_str("pub static EMBEDDED: &[(&str, &[u8], bool)] = &[\n");
    for path in &files {
        let relative = path
            .strip_prefix(&root)
            .expect("under templates/")
            .to_str()
            .expect("UTF-8 template paths");
        let executable = std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o111
            != 0;
        writeln!(
            code,
            "    ({relative:?}, include_bytes!({:?}), {executable}),",
            path.display().to_string()
        )
        .expect("write to a String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("templates.rs");
    std::fs::write(out, code).expect("write templates.rs");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable template folder") {
        let entry = entry.expect("readable entry");
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            collect(&entry.path(), files);
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
}
