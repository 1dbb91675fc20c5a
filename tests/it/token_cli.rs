//! `coco token create | list | revoke` through the binary, on both stores: the secret is
//! printed once (stdout, alone) and kept nowhere — not in the store's files, not in a log
//! line, not in `list` — and bad input is refused with what was wrong.

use crate::support::{Sandbox, ok, stderr, stdout};

#[test]
fn tokens_on_the_embedded_store() {
    let sandbox = Sandbox::with_stderr_level("DEBUG");
    tokens(&sandbox);
    // Nothing under the sandbox (the store, its WAL, any log) holds a secret.
    let secret = ok(
        &sandbox,
        &["token", "create", "leak-check", "--role", "admin"],
        0,
    );
    let secret = secret.trim();
    let mut files = Vec::new();
    walk(sandbox.dir.path(), &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("state/coco.db")),
        "the store is among the files read: {files:?}"
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let hex = &secret["coco_".len()..];
        assert!(
            !bytes.windows(hex.len()).any(|w| w == hex.as_bytes()),
            "the secret is in {}",
            file.display()
        );
    }
}

#[test]
fn tokens_on_mongodb() {
    if let Some(sandbox) = Sandbox::on_mongodb("coco_tok") {
        tokens(&sandbox);
    }
}

fn walk(dir: &std::path::Path, into: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, into);
        } else {
            into.push(path);
        }
    }
}

fn is_secret(text: &str) -> bool {
    text.strip_prefix("coco_").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn tokens(sandbox: &Sandbox) {
    let empty = ok(sandbox, &["token", "list"], 0);
    assert!(empty.contains("No tokens"), "{empty}");
    assert_eq!(ok(sandbox, &["token", "list", "--json"], 0).trim(), "[]");

    // create: the secret alone on stdout, what it may do on stderr.
    let created = sandbox.coco(&[
        "token",
        "create",
        "ci",
        "--role",
        "operator",
        "--project",
        "shop",
        "--project",
        "billing",
        "--expires",
        "30d",
    ]);
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
    let ci = stdout(&created);
    let ci = ci.trim();
    assert!(is_secret(ci), "stdout is the secret alone: {ci:?}");
    let told = stderr(&created);
    assert!(told.contains("shown only this once"), "{told}");
    assert!(
        told.contains("operator, projects shop, billing, expires "),
        "{told}"
    );
    assert!(told.contains("no project `shop` is applied"), "{told}");
    assert!(
        !told.contains(ci),
        "the secret is not on stderr (nor in a log line)"
    );

    let json: serde_json::Value = serde_json::from_str(&ok(
        sandbox,
        &["token", "create", "grafana", "--role", "viewer", "--json"],
        0,
    ))
    .unwrap();
    let grafana = json["token"].as_str().unwrap().to_string();
    assert!(is_secret(&grafana) && grafana != ci, "{json:#}");
    assert_eq!(
        (
            json["name"].as_str(),
            json["role"].as_str(),
            &json["projects"],
            &json["expires"]
        ),
        (
            Some("grafana"),
            Some("viewer"),
            &serde_json::json!([]),
            &serde_json::Value::Null
        )
    );

    // list: names, roles, projects, expiry and last use; never a secret or its hash.
    let table = ok(sandbox, &["token", "list"], 0);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("LAST USED"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("ci ") && lines[1].contains("shop,billing"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("grafana ") && lines[2].contains(" all "),
        "{table}"
    );
    assert!(lines[2].contains("never"), "{table}");
    let listed = ok(sandbox, &["token", "list", "--json"], 0);
    let tokens: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(tokens.as_array().map(Vec::len), Some(2), "{listed}");
    assert_eq!(tokens[0]["name"], "ci");
    assert_eq!(tokens[0]["role"], "operator");
    assert_eq!(
        tokens[0]["projects"],
        serde_json::json!(["shop", "billing"])
    );
    assert_eq!(tokens[0]["expired"], false);
    assert!(tokens[0]["expires"].is_string() && tokens[0]["last_used"].is_null());
    for shown in [&table, &listed] {
        assert!(
            !shown.contains("coco_") && !shown.contains("hash"),
            "{shown}"
        );
        assert!(!shown.contains(&ci[5..20]) && !shown.contains(&grafana[5..20]));
    }

    // A name is taken once.
    let again = sandbox.coco(&["token", "create", "ci", "--role", "viewer"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("a token named `ci` exists already"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        stdout(&again),
        "",
        "no secret for a token that was not made"
    );

    // Hostile input: each refused with what is wrong, nothing made.
    let long_name = "n".repeat(65);
    for (after_create, says) in [
        (&["a b", "--role", "viewer"][..], "token name `a b`"),
        (&["-x", "--role", "viewer"][..], "unexpected argument"),
        (&[long_name.as_str(), "--role", "viewer"][..], "at most 64"),
        (&["ops", "--role", "root"][..], "unknown role `root`"),
        (&["ops"][..], "--role"),
        (
            &["ops", "--role", "admin", "--project", "shop"][..],
            "not limited to projects",
        ),
        (
            &["ops", "--role", "viewer", "--project", "../etc"][..],
            "--project `../etc`",
        ),
        (
            &["ops", "--role", "viewer", "--expires", "soon"][..],
            "--expires `soon`",
        ),
        (
            &["ops", "--role", "viewer", "--expires", "10s"][..],
            "at least 1m",
        ),
        (
            &["ops", "--role", "viewer", "--expires", "11y"][..],
            "at most 10 years",
        ),
    ] {
        let args = [&["token", "create"][..], after_create].concat();
        let args = args.as_slice();
        let refused = sandbox.coco(args);
        assert_ne!(refused.status.code(), Some(0), "{args:?}");
        assert!(
            stderr(&refused).contains(says),
            "{args:?}: {}",
            stderr(&refused)
        );
        assert!(!stdout(&refused).contains("coco_"), "{args:?}");
    }
    let names: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&ok(
        sandbox,
        &["token", "list", "--json"],
        0,
    ))
    .unwrap()
    .iter()
    .map(|t| t["name"].as_str().unwrap().to_string())
    .collect();
    assert_eq!(names, ["ci", "grafana"]);

    // revoke: gone from the list; a second revoke, or an unknown name, is an error.
    assert!(ok(sandbox, &["token", "revoke", "ci"], 0).contains("Revoked token `ci`"));
    let twice = sandbox.coco(&["token", "revoke", "ci"]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(
        stderr(&twice).contains("no token named `ci`"),
        "{}",
        stderr(&twice)
    );
    let left = ok(sandbox, &["token", "list"], 0);
    assert!(!left.contains("ci ") && left.contains("grafana"), "{left}");
    // Its name is free again, with a new secret.
    let new_ci = ok(sandbox, &["token", "create", "ci", "--role", "viewer"], 0);
    assert!(is_secret(new_ci.trim()) && new_ci.trim() != ci);
}
