//! What environment a job and an app get, through the `coco` binary: the base set of the
//! daemon's own (`PATH`, `HOME`, `LANG`, `TZ`, …) plus what their project declares plus the
//! run's `COCO_…` variables — never the daemon's configuration variables (a MongoDB URL with
//! its password) nor anything else it was started with.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::Sandbox;

const MANIFEST: &str = "\
environment:
  env: {DECLARED_BY_PROJECT: project-value}
jobs:
  show:
    command: [sh, -c, 'env > job.env.tmp && mv job.env.tmp job.env']
    env: {DECLARED_BY_JOB: job-value}
apps:
  printer:
    command: [sh, -c, 'env > app.env.tmp && mv app.env.tmp app.env; exec sleep 600']
";

/// The run's (or app's) own variables: the only `COCO_…` a job or app may see.
const RUN_VARIABLES: &[&str] = &[
    "COCO_RUN_ID",
    "COCO_JOB",
    "COCO_PROJECT",
    "COCO_ARGS",
    "COCO_ATTEMPT",
    "COCO_PARENT_RUN",
    "COCO_GUARD",
    "COCO_APP",
];

/// `KEY=value` lines of an `env` dump (a value may hold newlines: only whole keys count).
fn read_env(sandbox: &Sandbox, file: &str) -> (String, BTreeMap<String, String>) {
    let path = sandbox.home().join("envs").join(file);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{file} was never written");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let vars = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    (text, vars)
}

fn check(what: &str, text: &str, vars: &BTreeMap<String, String>, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what} sees {secret:?}:\n{text}");
    }
    for key in vars.keys().filter(|key| key.starts_with("COCO_")) {
        assert!(
            RUN_VARIABLES.contains(&key.as_str()),
            "{what} sees coco's {key}:\n{text}"
        );
    }
    assert!(!vars.contains_key("SOME_API_TOKEN"), "{what}:\n{text}");
    assert_eq!(
        vars.get("DECLARED_BY_PROJECT").map(String::as_str),
        Some("project-value")
    );
    assert_eq!(
        vars.get("LANG").map(String::as_str),
        Some("C.UTF-8"),
        "{what}"
    );
    assert_eq!(
        vars.get("TZ").map(String::as_str),
        Some("Europe/Berlin"),
        "{what}"
    );
    assert_eq!(vars.get("LC_TIME").map(String::as_str), Some("C"), "{what}");
    assert!(
        vars.contains_key("PATH") && vars.contains_key("HOME"),
        "{what}:\n{text}"
    );
}

/// A daemon started with secrets in its environment: `extra` (coco configuration variables
/// that mean something to it) and a token it has nothing to do with.
fn daemon_keeps_its_environment_to_itself(sandbox: &Sandbox, extra: &[(&str, &str)]) {
    sandbox.project("envs", MANIFEST);
    let mut env: Vec<(&str, &str)> = vec![
        ("SOME_API_TOKEN", "tok-5ec4e7-not-for-jobs"),
        (
            "COCO_FOLDER__TEMPLATES",
            "/nowhere/templates-5ec4e7-not-for-jobs",
        ),
        ("LANG", "C.UTF-8"),
        ("TZ", "Europe/Berlin"),
        ("LC_TIME", "C"),
    ];
    env.extend_from_slice(extra);
    let secrets: Vec<&str> = env
        .iter()
        .filter(|(key, _)| *key == "SOME_API_TOKEN" || key.starts_with("COCO_"))
        .map(|(_, value)| *value)
        .collect();
    let daemon = sandbox.spawn_env(&["daemon", "--slots", "1"], &env);
    daemon.wait_for_log("daemon: home");
    let (text, vars) = read_env(sandbox, "app.env");
    check("the app", &text, &vars, &secrets);

    let enqueue = sandbox.coco_env(&["enqueue", "envs.show"], &env);
    assert_eq!(
        enqueue.status.code(),
        Some(0),
        "{}",
        crate::support::stderr(&enqueue)
    );
    let (text, vars) = read_env(sandbox, "job.env");
    check("the job", &text, &vars, &secrets);
    assert_eq!(
        vars.get("DECLARED_BY_JOB").map(String::as_str),
        Some("job-value")
    );
    assert_eq!(vars.get("COCO_JOB").map(String::as_str), Some("envs.show"));
}

#[test]
fn jobs_and_apps_get_the_base_set_and_what_is_declared_on_the_embedded_store() {
    daemon_keeps_its_environment_to_itself(&Sandbox::new(), &[]);
}

/// The MongoDB URL (as an operator sets it: a `COCO_DEFAULT__MONGO_URL` variable, password
/// and all) reaches the daemon, which uses it, and no job or app.
#[test]
fn jobs_and_apps_never_see_the_mongodb_url_of_their_daemon() {
    let Ok(url) = std::env::var("COCO_TEST_MONGO_URL") else {
        assert_eq!(
            std::env::var("COCO_TEST_SKIP_MONGO").as_deref(),
            Ok("1"),
            "COCO_TEST_MONGO_URL is not set (tests/run.sh starts a server), nor COCO_TEST_SKIP_MONGO=1"
        );
        return;
    };
    let sandbox = Sandbox::new();
    let database = format!("coco_env_{}", ulid::Ulid::new().to_string().to_lowercase());
    daemon_keeps_its_environment_to_itself(
        &sandbox,
        &[
            ("COCO_DEFAULT__MONGO_URL", &url),
            ("COCO_DEFAULT__MONGO_DATABASE", &database),
        ],
    );
}
