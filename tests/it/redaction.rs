//! Passwords never reach a screen: a MongoDB URL whose password holds characters the driver
//! accepts unencoded (a space) or that it refuses (`/`, `#`, `"`), in local.yaml, in
//! `COCO_DEFAULT__MONGO_URL` or on the command line, is shown with `***` by every command,
//! as text and as `--json`, on success and on failure, and in the debug log.

use crate::support::{Sandbox, stderr, stdout};

const SECRETS: &[&str] = &["se cretpw", "cretpw", "a/b#c", "b#c", "q\"uote", "uote"];

/// The commands of the issue, text and `--json`.
const COMMANDS: &[&[&str]] = &[
    &["config"],
    &["config", "--json"],
    &["status"],
    &["status", "--json"],
    &["list"],
    &["list", "--json"],
    &["plan"],
    &["plan", "--json"],
    &["enqueue", "greet.hello"],
    &["apply"],
    &["detail", "01JAAAAAAAAAAAAAAAAAAAAAAA"],
];

/// A sandbox logging everything (debug lines show the store location) on `url`, given in
/// local.yaml.
fn sandbox_with_url_in_local_yaml(url: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.project("greet", "jobs:\n  hello:\n    command: [echo, hi]\n");
    std::fs::write(
        sandbox.dir.path().join(".coco/local.yaml"),
        format!(
            "DEFAULT:\n  mongo_url: '{url}'\n  mongo_database: coco_redaction\nlogging:\n  \
             stderr: DEBUG\nfolder:\n  home: ~/home\n  state: ~/state\n"
        ),
    )
    .unwrap();
    sandbox
}

/// Run every command; none may show a secret, and `shown` (the redacted URL's start) must
/// appear where the URL is shown.
fn assert_redacted(sandbox: &Sandbox, env: &[(&str, &str)], shown: &str) {
    for args in COMMANDS {
        let output = sandbox.coco_env(args, env);
        let all = format!("{}{}", stdout(&output), stderr(&output));
        for secret in SECRETS {
            assert!(
                !all.contains(secret),
                "coco {args:?} shows {secret:?}:\n{all}"
            );
        }
        assert!(!all.contains("panicked"), "coco {args:?}:\n{all}");
        if args[0] == "config" {
            assert!(all.contains(shown), "coco {args:?}:\n{all}");
        }
    }
}

#[test]
fn passwords_with_spaces_slashes_and_hashes_are_hidden_everywhere() {
    // Nothing listens on port 9: every store command fails, naming the URL.
    for password in ["se cretpw", "a/b#c", "q\"uote"] {
        let url = format!("mongodb://u:{password}@127.0.0.1:9/?serverSelectionTimeoutMS=200");
        let sandbox = sandbox_with_url_in_local_yaml(&url);
        assert_redacted(&sandbox, &[], "mongodb://u:***@127.0.0.1:9/");
        let list = sandbox.coco(&["list"]);
        assert_eq!(list.status.code(), Some(1));
        assert!(
            stderr(&list).contains("mongodb://u:***@127.0.0.1:9/"),
            "{}",
            stderr(&list)
        );

        let sandbox = Sandbox::with_stderr_level("DEBUG");
        sandbox.project("greet", "jobs:\n  hello:\n    command: [echo, hi]\n");
        assert_redacted(
            &sandbox,
            &[("COCO_DEFAULT__MONGO_URL", &url)],
            "mongodb://u:***@127.0.0.1:9/",
        );
        let mut flag = sandbox;
        flag.store_args = vec!["--mongo-url".into(), url.clone()];
        assert_redacted(&flag, &[], "mongodb://u:***@127.0.0.1:9/");
    }
}

/// The same against the MongoDB test server, where the commands get further (a server
/// without authentication may accept or refuse the credentials; only what is shown matters).
#[test]
fn passwords_are_hidden_on_a_reachable_server() {
    let Some(sandbox) = Sandbox::on_mongodb("coco_redact") else {
        return;
    };
    let url = sandbox.store_args[1].replacen("mongodb://", "mongodb://u:se cretpw@", 1);
    let database = sandbox.store_args[3].clone();
    let mut sandbox = sandbox_with_url_in_local_yaml(&url);
    sandbox.store_args = vec!["--mongo-database".into(), database];
    assert_redacted(&sandbox, &[], "mongodb://u:***@");
}
