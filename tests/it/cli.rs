//! The `coco` binary end to end: real processes, a temporary home, config and store.

use std::path::Path;

use crate::support::{Sandbox, stderr, stdout};

const HELLO: &str = "jobs:\n  greet:\n    command: [echo, hi]\n    schedule: \"*/5 * * * *\"\n    timezone: Europe/Berlin\n";

#[test]
fn validate_prints_ok_lines_or_every_problem() {
    let sandbox = Sandbox::with_stderr_level("INFO");
    sandbox.project("hello", HELLO);
    let ok = sandbox.coco(&["validate"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(stdout(&ok).starts_with("ok "), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("(hello: 1 job, 0 apps)"));

    sandbox.project(
        "broken",
        "jobs:\n  a:\n    command: [x]\n    atempts: 2\n    schedule: \"* * * * 9\"\n",
    );
    let bad = sandbox.coco(&["validate"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(stdout(&bad), "", "only problems, on stderr");
    let err = stderr(&bad);
    let file = sandbox.home().join("broken/coco.yaml");
    assert!(
        err.contains(&format!(
            "{}:4:5: unknown key `atempts` (did you mean `attempts`?)",
            file.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}:5:15: day-of-week field `9`: 9 is out of range 0-7",
            file.display()
        )),
        "{err}"
    );
    assert!(err.contains("2 problems found"), "{err}");

    // A PATH narrows the check: the good project alone is fine.
    let one = sandbox.coco(&["validate", sandbox.home().join("hello").to_str().unwrap()]);
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    let file_only = sandbox.coco(&["validate", file.to_str().unwrap()]);
    assert_eq!(file_only.status.code(), Some(1));

    let json = sandbox.coco(&["validate", "--json"]);
    assert_eq!(json.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["projects"][0]["name"], "hello");
    assert_eq!(json["problems"][0]["line"], 4);
    assert_eq!(json["problems"][0]["column"], 5);
    assert_eq!(json["problems"][0]["suggestion"], "attempts");
    assert_eq!(
        json["problems"][1]["message"],
        "day-of-week field `9`: 9 is out of range 0-7"
    );
}

#[test]
fn plan_and_apply_are_idempotent_with_exit_codes() {
    let sandbox = Sandbox::with_stderr_level("INFO");
    sandbox.project("hello", HELLO);
    let plan = sandbox.coco(&["plan"]);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "changes pending: {}",
        stderr(&plan)
    );
    let text = stdout(&plan);
    assert!(text.contains("+ project hello"), "{text}");
    assert!(text.contains("    + job greet"), "{text}");
    assert!(text.contains("next: "), "{text}");
    assert!(
        text.contains("2 to create, 0 to update, 0 to deactivate."),
        "{text}"
    );

    let apply = sandbox.coco(&["apply"]);
    assert_eq!(apply.status.code(), Some(0), "{}", stderr(&apply));
    assert!(
        stdout(&apply).contains("Applied to the embedded store "),
        "{}",
        stdout(&apply)
    );
    assert!(
        sandbox.dir.path().join("state/coco.db").exists(),
        "embedded store under folder.state"
    );

    let again = sandbox.coco(&["plan"]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(
        stdout(&again),
        "No changes: the store matches the manifests.\n"
    );
    let apply_again = sandbox.coco(&["apply"]);
    assert_eq!(apply_again.status.code(), Some(0));
    assert_eq!(
        stdout(&apply_again),
        "No changes: the store matches the manifests.\n"
    );

    // An edit shows old → new; removing the job deactivates it.
    sandbox.project("hello", &HELLO.replace("*/5 * * * *", "0 3 * * *"));
    let edit = sandbox.coco(&["plan"]);
    assert_eq!(edit.status.code(), Some(2));
    assert!(
        stdout(&edit).contains("        schedule: \"*/5 * * * *\" → \"0 3 * * *\""),
        "{}",
        stdout(&edit)
    );
    sandbox.coco(&["apply"]);
    sandbox.project("hello", "jobs: {}\n");
    let removed = sandbox.coco(&["apply"]);
    assert!(
        stdout(&removed).contains("    - job greet (inactive; run history kept)"),
        "{}",
        stdout(&removed)
    );
}

#[test]
fn plan_json_is_machine_readable() {
    let sandbox = Sandbox::with_stderr_level("INFO");
    sandbox.project("hello", HELLO);
    let plan = sandbox.coco(&["plan", "--json"]);
    assert_eq!(plan.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(json["changes"], true);
    assert_eq!(json["create"], 2);
    assert_eq!(json["projects"][0]["name"], "hello");
    assert_eq!(
        json["projects"][0]["items"][0]["change"]["action"],
        "create"
    );
    assert_eq!(
        json["projects"][0]["items"][0]["next_fires"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn an_invalid_manifest_changes_nothing() {
    let sandbox = Sandbox::with_stderr_level("INFO");
    sandbox.project("hello", HELLO);
    assert_eq!(sandbox.coco(&["apply"]).status.code(), Some(0));
    sandbox.project("hello", &HELLO.replace("Europe/Berlin", "Europe/Berln"));
    sandbox.project("new", "jobs:\n  x:\n    command: [true]\n");
    for verb in ["plan", "apply"] {
        let output = sandbox.coco(&[verb]);
        assert_eq!(output.status.code(), Some(1), "{verb}");
        assert!(
            stderr(&output).contains("did you mean `Europe/Berlin`?"),
            "{}",
            stderr(&output)
        );
        assert!(stderr(&output).contains("nothing was changed"));
    }
    // Fix the typo: only the new project is left to create (the failed apply wrote nothing).
    sandbox.project("hello", HELLO);
    let plan = sandbox.coco(&["plan"]);
    assert!(stdout(&plan).contains("+ project new"), "{}", stdout(&plan));
    assert!(
        !stdout(&plan).contains("project hello"),
        "{}",
        stdout(&plan)
    );
}

#[test]
fn config_shows_sources_and_hides_passwords() {
    let sandbox = Sandbox::with_stderr_level("INFO");
    let output = sandbox.coco_env(
        &["config", "--json", "--home", "/srv/projects"],
        &[
            (
                "COCO_DEFAULT__MONGO_URL",
                "mongodb://core:654321@localhost:27017",
            ),
            ("COCO_LOGGING__STDERR", "DEBUG"),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(!text.contains("654321"), "{text}");
    let settings: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let find = |key: &str| settings.iter().find(|s| s["key"] == key).unwrap().clone();
    assert_eq!(
        find("DEFAULT.mongo_url")["value"],
        "mongodb://core:***@localhost:27017"
    );
    assert!(
        find("DEFAULT.mongo_url")["source"]
            .as_str()
            .unwrap()
            .contains("COCO_DEFAULT__MONGO_URL")
    );
    assert_eq!(find("folder.home")["value"], "/srv/projects");
    assert!(
        find("folder.home")["source"]
            .as_str()
            .unwrap()
            .contains("--home")
    );
    assert!(
        find("logging.stderr")["source"]
            .as_str()
            .unwrap()
            .contains("COCO_LOGGING__STDERR")
    );
    assert!(
        find("folder.state")["source"]
            .as_str()
            .unwrap()
            .contains("local.yaml")
    );
}

#[test]
fn a_bad_local_yaml_is_located() {
    let sandbox = Sandbox::with_stderr_level("INFO");
    std::fs::write(
        sandbox.dir.path().join(".coco/local.yaml"),
        "folder:\n  hom: /x\n",
    )
    .unwrap();
    let output = sandbox.coco(&["plan"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("local.yaml:2:3: unknown key `hom` (did you mean `home`?)"),
        "{err}"
    );
}

#[test]
fn help_teaches() {
    let sandbox = Sandbox::with_stderr_level("INFO");
    let help = stdout(&sandbox.coco(&["plan", "--help"]));
    assert!(
        help.contains("Exit status: 0 nothing to change, 2 changes, 1 invalid input"),
        "{help}"
    );
}

#[test]
fn plan_and_apply_on_mongodb() {
    let Ok(url) = std::env::var("COCO_TEST_MONGO_URL") else {
        assert_eq!(
            std::env::var("COCO_TEST_SKIP_MONGO").as_deref(),
            Ok("1"),
            "COCO_TEST_MONGO_URL is not set (tests/run.sh starts a server), nor COCO_TEST_SKIP_MONGO=1"
        );
        return;
    };
    let sandbox = Sandbox::with_stderr_level("INFO");
    sandbox.project("hello", HELLO);
    let database = format!("coco_cli_{}", ulid::Ulid::new().to_string().to_lowercase());
    let args = |verb: &'static str| {
        vec![
            verb,
            "--mongo-url",
            url.as_str(),
            "--mongo-database",
            database.as_str(),
        ]
    };
    assert_eq!(sandbox.coco(&args("plan")).status.code(), Some(2));
    let apply = sandbox.coco(&args("apply"));
    assert_eq!(apply.status.code(), Some(0), "{}", stderr(&apply));
    let again = sandbox.coco(&args("plan"));
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}{}",
        stdout(&again),
        stderr(&again)
    );
    assert!(
        !Path::new(&sandbox.dir.path().join("state/coco.db")).exists(),
        "no embedded store used"
    );
}
