//! The store's log (`logging.mongodb`, `coco log`) with a real daemon on both stores: a job's
//! `::log::` line and the daemon's own records carry project, job, run and host; a manifest
//! typo is an ERROR record about its project; `coco log` filters by run, project and level,
//! and `--follow` prints new records as they come, each once.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Sandbox, stderr};

fn both(test: fn(&Sandbox)) {
    test(&Sandbox::new());
    if let Some(sandbox) = Sandbox::on_mongodb("coco_log") {
        test(&sandbox);
    }
}

/// `coco log ARGS --json`, parsed.
fn log_json(sandbox: &Sandbox, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["log", "--json"];
    all.extend_from_slice(args);
    let output = sandbox.coco(&all);
    assert_eq!(
        output.status.code(),
        Some(0),
        "coco log: {}",
        stderr(&output)
    );
    serde_json::from_slice(&output.stdout).expect("coco log --json prints JSON")
}

/// Wait (up to 20 s) until `coco log ARGS` has a record whose message contains `text`.
fn wait_for_record(sandbox: &Sandbox, args: &[&str], text: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let records = log_json(sandbox, args);
        if let Some(record) = records
            .iter()
            .find(|r| r["message"].as_str().is_some_and(|m| m.contains(text)))
        {
            return record.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no record with {text:?} for {args:?}: {records:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const NOISY: &str = r#"
jobs:
  noisy:
    command: [sh, -c, "echo '::log:: WARNING disk almost full'; echo plain output"]
"#;

#[test]
fn daemon_and_job_records_reach_the_store_and_coco_log() {
    both(records_reach_the_store);
}

fn records_reach_the_store(sandbox: &Sandbox) {
    sandbox.project("work", NOISY);
    let daemon = sandbox.spawn(&["daemon", "--slots", "1", "--name", "d1"]);
    daemon.wait_for_log("daemon: home");
    let follower = sandbox.spawn(&["log", "--follow", "--level", "WARNING"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sandbox.coco(&["enqueue", "work.noisy"]).status.code() != Some(0) {
        assert!(
            Instant::now() < deadline,
            "never applied:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = sandbox.list_json(&["--job", "work.noisy"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sandbox.wait_for_state(&id, "complete");

    // The job's own line, at its level, about its run.
    let record = wait_for_record(sandbox, &["--run", &id], "disk almost full");
    assert_eq!(record["level"], "WARNING", "{record:#}");
    assert_eq!(record["levelno"], 30, "{record:#}");
    assert_eq!(record["job"], "work.noisy", "{record:#}");
    assert_eq!(record["project"], "work", "{record:#}");
    assert_eq!(record["source"], "d1", "{record:#}");
    assert!(
        record["host"].as_str().is_some_and(|h| !h.is_empty()),
        "{record:#}"
    );
    // The worker's records inside the run carry the run too (from the run's span).
    let finished = wait_for_record(sandbox, &["--run", &id], "finished");
    assert_eq!(finished["level"], "INFO", "{finished:#}");
    assert!(
        log_json(sandbox, &["--run", &id])
            .iter()
            .all(|r| r["message"] != "plain output"),
        "output is not a log record"
    );

    // A typo: an ERROR record about its project, with the position.
    std::fs::write(
        sandbox.home().join("work/coco.yaml"),
        "jobs:\n  noisy:\n    command: [\"true\"\n",
    )
    .unwrap();
    let typo = wait_for_record(
        sandbox,
        &["--project", "work", "--level", "ERROR"],
        "coco.yaml:",
    );
    assert_eq!(typo["level"], "ERROR", "{typo:#}");
    assert!(
        log_json(sandbox, &["--project", "work", "--level", "ERROR"])
            .iter()
            .all(|r| r["levelno"].as_u64() >= Some(40)),
        "--level filters"
    );
    assert!(
        log_json(sandbox, &["--project", "elsewhere"]).is_empty(),
        "--project filters"
    );

    // The text form and the follower: WARNING and up, each record once.
    let text = crate::support::stdout(&sandbox.coco(&["log", "--run", &id]));
    assert!(
        text.contains(&format!("[work.noisy {id}]")) && text.contains("WARNING"),
        "{text}"
    );
    follower.wait_for_log("coco.yaml:");
    let followed = follower.log();
    assert_eq!(
        followed.matches("disk almost full").count(),
        1,
        "printed once:\n{followed}"
    );
    assert!(
        !followed.contains(" INFO "),
        "below WARNING is not followed:\n{followed}"
    );
    drop(follower);
    drop(daemon);
}
