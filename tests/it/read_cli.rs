//! The read commands of the `coco` binary as an operator uses them: `logs` (by run id, by
//! job, `--json`), run id prefixes everywhere an id is taken, `list failed`, `jobs` and
//! `alive` after a run, the job's records in `coco log`, readable daemon log lines, the help
//! and colours.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Sandbox, ok, stderr, stdout};

const WORK: &str = "\
jobs:
  hi:
    command: [sh, -c, 'echo one; echo two >&2']
  idle:
    command: [\"true\"]
  echo:
    command: [echo, '{{args.n}}']
    args: {n: 0}
  broken:
    command: [sh, -c, 'exit 3']
    attempts: 1
  nap:
    command: [sleep, '3.5']
";

/// Run coco, assert it fails with exit 1; its stderr.
fn refused(sandbox: &Sandbox, args: &[&str]) -> String {
    let output = sandbox.coco(args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "coco {args:?}\nstdout: {}\nstderr: {}",
        stdout(&output),
        stderr(&output)
    );
    stderr(&output)
}

/// A sandbox with the WORK project applied and a one-slot worker `w1` running.
fn with_worker() -> (Sandbox, crate::support::Background) {
    let sandbox = Sandbox::new();
    sandbox.project("work", WORK);
    sandbox.apply();
    let worker = sandbox.spawn(&["worker", "--slots", "2", "--name", "w1"]);
    worker.wait_for_log("worker w1: 2 slots");
    (sandbox, worker)
}

#[test]
fn logs_takes_json_and_a_job_name() {
    let (sandbox, _worker) = with_worker();
    let id = ok(&sandbox, &["enqueue", "work.hi", "--wait"], 0);
    let id = id.trim();

    // A job's name shows its latest run's output.
    let text = ok(&sandbox, &["logs", "work.hi"], 0);
    let mut tagged: Vec<&str> = text.lines().map(|l| &l[13..]).collect();
    tagged.sort();
    assert_eq!(tagged, ["err two", "out one"], "{text}");

    // --json: the run and its lines as objects, by id and by job.
    for target in [id, "work.hi"] {
        let json: Value = serde_json::from_str(&ok(&sandbox, &["logs", target, "--json"], 0))
            .expect("coco logs --json prints JSON");
        assert_eq!(json["run"], id, "{json:#}");
        assert_eq!(json["job"], "work.hi", "{json:#}");
        assert_eq!(json["state"], "complete", "{json:#}");
        assert_eq!(json["dropped"], 0, "{json:#}");
        let mut lines: Vec<(String, String)> = json["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| {
                assert!(
                    line["time"].as_str().is_some_and(|t| t.len() == 12),
                    "{line}"
                );
                (
                    line["stream"].as_str().unwrap().to_owned(),
                    line["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        lines.sort();
        assert_eq!(
            lines,
            [("err".into(), "two".into()), ("out".into(), "one".into())]
        );
    }

    // --follow --json on a finished run: its lines, then how it ended, one object a line.
    let followed = ok(&sandbox, &["logs", "work.hi", "--follow", "--json"], 0);
    let objects: Vec<Value> = followed
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(objects.len(), 3, "{followed}");
    let end = objects.last().unwrap();
    assert_eq!(
        (
            end["run"].as_str(),
            end["state"].as_str(),
            end["exit_code"].as_i64()
        ),
        (Some(id), Some("complete"), Some(0)),
        "{followed}"
    );

    // A job without runs, and a name that is neither a job nor an app.
    let err = refused(&sandbox, &["logs", "work.idle"]);
    assert!(err.contains("job work.idle has no runs yet"), "{err}");
    let err = refused(&sandbox, &["logs", "work.nope", "--json"]);
    assert!(err.contains("no app or job `work.nope`"), "{err}");
}

/// The length of the common prefix of `a` and `b`.
fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

#[test]
fn a_unique_prefix_of_a_run_id_is_taken_everywhere() {
    prefixes_are_taken(&Sandbox::new());
}

#[test]
fn a_unique_prefix_of_a_run_id_is_taken_on_mongodb() {
    if let Some(sandbox) = Sandbox::on_mongodb("coco_prefix") {
        prefixes_are_taken(&sandbox);
    }
}

fn prefixes_are_taken(sandbox: &Sandbox) {
    sandbox.project("work", WORK);
    sandbox.apply();
    let first = sandbox.enqueue(&["work.echo", "--arg", "n=1"]);
    let second = sandbox.enqueue(&["work.echo", "--arg", "n=2"]);
    // ULIDs start with their time: two made a moment apart share a prefix of at least 4
    // characters (the fourth changes every 12 days).
    let shared = common_prefix(&first, &second);
    assert!((4..26).contains(&shared), "{first} {second}");
    let ambiguous = &first[..shared];
    let short_first = first[..=shared].to_lowercase();
    let short_second = &second[..=shared];

    // detail and logs: any case, a unique prefix.
    let detail = ok(sandbox, &["detail", &short_first], 0);
    assert!(
        detail.contains(&format!("id:           {first}\n")),
        "{detail}"
    );
    let json: Value =
        serde_json::from_str(&ok(sandbox, &["logs", short_second, "--json"], 0)).unwrap();
    assert_eq!(json["run"], second.as_str());

    // An ambiguous prefix names the candidates; too short, unknown or malformed: refused.
    for verb in ["detail", "logs", "kill", "restart", "remove"] {
        let err = refused(sandbox, &[verb, ambiguous]);
        assert!(
            err.contains(&format!("run id `{ambiguous}` is ambiguous"))
                && err.contains(&first)
                && err.contains(&second),
            "{verb}: {err}"
        );
        let err = refused(sandbox, &[verb, &first[..3]]);
        assert!(err.contains("is too short"), "{verb}: {err}");
        let err = refused(sandbox, &[verb, "7ZZZZZ"]);
        assert!(err.contains("no run with id `7ZZZZZ`"), "{verb}: {err}");
        let err = refused(sandbox, &[verb, "01%"]);
        assert!(err.contains("is not a run id"), "{verb}: {err}");
    }

    // kill, remove and restart act on the run a prefix names.
    let killed = ok(sandbox, &["kill", &short_first], 0);
    assert!(
        killed.contains(&format!(
            "killed run {first} of work.echo before it started"
        )),
        "{killed}"
    );
    let removed = ok(sandbox, &["remove", short_second], 0);
    assert!(
        removed.contains(&format!("removed run {second} of work.echo")),
        "{removed}"
    );
    let restarted = ok(sandbox, &["restart", &short_first], 0);
    let new = sandbox.run_json(restarted.trim());
    assert_eq!(new["restart_of"], first.as_str(), "{new:#}");
    // The whole id, in lower case, still works.
    let detail = ok(sandbox, &["detail", &second.to_lowercase()], 0);
    assert!(detail.contains("state:        removed\n"), "{detail}");
}

#[test]
fn list_failed_shows_runs_out_of_attempts() {
    let (sandbox, _worker) = with_worker();
    assert_eq!(
        ok(&sandbox, &["list", "failed"], 0),
        "No runs in state failed or error.\n"
    );
    let id = ok(&sandbox, &["enqueue", "work.broken", "--wait"], 3);
    let id = id.trim();
    assert_eq!(sandbox.run_json(id)["state"], "error");
    let done = ok(&sandbox, &["enqueue", "work.hi", "--wait"], 0);

    // `failed` takes in `error` (no attempts left), in the table and in JSON.
    let text = ok(&sandbox, &["list", "failed"], 0);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(rows[0][..3], [id, "work.broken", "error"], "{text}");
    let listed: Vec<String> = sandbox
        .list_json(&["failed"])
        .iter()
        .map(|run| run["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, [id]);
    assert_eq!(sandbox.list_json(&["error"]).len(), 1);
    assert!(!text.contains(done.trim()), "{text}");
    let help = ok(&sandbox, &["list", "--help"], 0);
    assert!(help.contains("failed (every failed run"), "{help}");
}

/// `coco log ARGS --json`, parsed.
fn log_json(sandbox: &Sandbox, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["log", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(sandbox, &all, 0)).expect("coco log --json prints JSON")
}

#[test]
fn the_end_of_a_run_is_among_its_jobs_records() {
    let (sandbox, _worker) = with_worker();
    let id = ok(&sandbox, &["enqueue", "work.hi", "--wait"], 0);
    let id = id.trim();
    // Records reach the store in batches a moment apart.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let records = log_json(&sandbox, &["--job", "work.hi"]);
        let messages: Vec<&str> = records
            .iter()
            .filter(|r| r["run"] == id)
            .filter_map(|r| r["message"].as_str())
            .collect();
        if messages.iter().any(|m| m.starts_with("finished")) {
            assert!(
                messages.iter().any(|m| m.starts_with("claimed")),
                "{messages:?}"
            );
            let finished = records
                .iter()
                .find(|r| r["message"].as_str().unwrap().starts_with("finished"))
                .unwrap();
            assert_eq!(finished["project"], "work", "{finished:#}");
            // `--run` takes a prefix of the id, in any case, too.
            let by_run = log_json(&sandbox, &["--run", &id[..12].to_lowercase()]);
            assert!(
                by_run.iter().any(|r| r["message"] == finished["message"]),
                "{by_run:#?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no `finished` record for --job work.hi: {records:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait (up to 20 s) until `coco enqueue ARGS` works (the daemon applied the job); the id.
fn enqueue_when_applied(sandbox: &Sandbox, job: &str, daemon: &crate::support::Background) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while sandbox.coco(&["enqueue", job]).status.code() != Some(0) {
        assert!(
            Instant::now() < deadline,
            "never applied:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn daemon_log_lines_show_no_rust_debug_values() {
    let sandbox = Sandbox::with_stderr_level("INFO");
    sandbox.project("work", WORK);
    let mut daemon = sandbox.spawn(&["daemon", "--slots", "1", "--name", "d1"]);
    daemon.wait_for_log("daemon: home");
    enqueue_when_applied(&sandbox, "work.hi", &daemon);
    let id = sandbox.list_json(&["--job", "work.hi"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sandbox.wait_for_state(&id, "complete");
    daemon.wait_for_log("finished");
    // SAFETY: kill(2) with the pid of a child we spawned and have not reaped.
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) };
    assert_eq!(daemon.wait_exit(), Some(0), "{}", daemon.log());
    let log = daemon.log();
    assert!(
        log.contains("worker stopped: 1 claimed, 1 finished, 0 handed back"),
        "{log}"
    );
    assert!(log.contains("scheduler stopped: 0 enqueued"), "{log}");
    for line in log.lines() {
        assert!(
            !line.contains(" { ") && !line.contains("Some(") && !line.contains("\\\""),
            "a Debug value in: {line}"
        );
    }
    // The records in the store read the same.
    let records = log_json(&sandbox, &["--level", "INFO", "-n", "500"]);
    assert!(!records.is_empty());
    for record in records {
        let message = record["message"].as_str().unwrap();
        assert!(
            !message.contains(" { ") && !message.contains("Some("),
            "a Debug value in: {message}"
        );
    }
}

/// A duration as `coco` prints it (`250ms`, `1.5s`, `3s`, `2m`) in seconds.
fn seconds(text: &str) -> f64 {
    if let Some(ms) = text.strip_suffix("ms") {
        ms.parse::<f64>().unwrap() / 1000.0
    } else if let Some(s) = text.strip_suffix('s') {
        s.parse().unwrap()
    } else {
        f64::INFINITY
    }
}

#[test]
fn jobs_and_alive_show_a_run_as_it_is_now() {
    let (sandbox, _worker) = with_worker();
    let id = sandbox.enqueue(&["work.nap"]);
    sandbox.wait_for_state(&id, "running");
    // Running: counted at once, not at the worker's next heartbeat.
    let alive: Value = serde_json::from_str(&ok(&sandbox, &["alive", "--json"], 0)).unwrap();
    assert_eq!(alive[0]["running"], serde_json::json!([id]), "{alive:#}");
    sandbox.wait_for_state(&id, "complete");

    // Complete: no longer counted, and its age is that of its end (it ran for 3.5 s).
    let alive: Value = serde_json::from_str(&ok(&sandbox, &["alive", "--json"], 0)).unwrap();
    assert_eq!(alive[0]["running"], serde_json::json!([]), "{alive:#}");
    let status: Value = serde_json::from_str(&ok(&sandbox, &["status", "--json"], 0)).unwrap();
    assert_eq!(
        status["members"][0]["running"],
        serde_json::json!([]),
        "{status:#}"
    );
    let text = ok(&sandbox, &["alive"], 0);
    let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[0], "w1", "{text}");
    assert!(row.contains(&"0/2"), "{text}");
    let jobs = ok(&sandbox, &["jobs"], 0);
    let line = jobs
        .lines()
        .find(|line| line.starts_with("work.nap"))
        .unwrap_or_else(|| panic!("{jobs}"));
    let age = line
        .split_once("complete (")
        .and_then(|(_, rest)| rest.strip_suffix(" ago)"))
        .unwrap_or_else(|| panic!("{jobs}"));
    assert!(
        seconds(age) < 3.0,
        "the age of its end, not of its creation: {line}"
    );
    let json: Value = serde_json::from_str(&ok(&sandbox, &["jobs", "--json"], 0)).unwrap();
    let nap = json
        .as_array()
        .unwrap()
        .iter()
        .find(|job| job["job"] == "work.nap")
        .unwrap();
    assert_eq!(
        nap["last_changed"],
        sandbox.run_json(&id)["finished"],
        "{nap:#}"
    );
}

#[test]
fn help_puts_global_options_apart_and_shows_examples() {
    let sandbox = Sandbox::new();
    for verb in ["enqueue", "list", "daemon", "init", "build", "release"] {
        for flag in ["-h", "--help"] {
            let help = ok(&sandbox, &[verb, flag], 0);
            let (own, global) = help.split_once("\nGlobal options:\n").unwrap_or_else(|| {
                panic!("coco {verb} {flag}: no Global options heading:\n{help}")
            });
            assert!(!own.contains("--mongo-url"), "{verb}: {help}");
            assert!(global.contains("--mongo-url"), "{verb}: {help}");
            let examples = help
                .split_once("\nExamples")
                .map(|(_, examples)| examples)
                .unwrap_or_else(|| panic!("coco {verb} {flag}: no examples:\n{help}"));
            assert!(
                examples.contains(&format!("  coco {verb}")),
                "{verb}: {examples}"
            );
        }
    }
    let list = ok(&sandbox, &["list", "--help"], 0);
    let (own, _) = list.split_once("\nGlobal options:\n").unwrap();
    assert!(
        own.contains("--json"),
        "the verb's own options first: {list}"
    );
    let release = ok(&sandbox, &["release", "--help"], 0);
    assert!(
        release.contains("Run on master after the release branch"),
        "{release}"
    );
    let top = ok(&sandbox, &["--help"], 0);
    assert!(top.contains("\nGlobal options:\n"), "{top}");
}

/// Run `coco ARGS` under a pseudo-terminal (`script`) in the sandbox, with `env`; what the
/// terminal showed. `None` where `script` is not installed.
#[allow(clippy::disallowed_methods)] // runs the coco binary under test, through script(1)
fn on_a_terminal(sandbox: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Option<String> {
    let line = std::iter::once(env!("CARGO_BIN_EXE_coco"))
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut command = std::process::Command::new("script");
    command
        .args(["-qec", &line, "/dev/null"])
        .env("HOME", sandbox.dir.path())
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .current_dir(sandbox.dir.path());
    for (key, _) in std::env::vars() {
        if key.starts_with("COCO_") {
            command.env_remove(key);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    // util-linux's script: `-e` returns coco's status (elsewhere the flags differ: skip).
    let output = command.output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn states_and_errors_are_coloured_on_a_terminal_only() {
    let (sandbox, _worker) = with_worker();
    ok(&sandbox, &["enqueue", "work.hi", "--wait"], 0);
    let green = "\x1b[32mcomplete\x1b[0m";
    let plain_env = [("NO_COLOR", ""), ("CLICOLOR_FORCE", "")];

    // Piped (as every test runs coco): no escape codes, in tables or errors.
    for args in [&["list"][..], &["jobs"], &["alive"]] {
        let output = sandbox.coco_env(args, &plain_env);
        assert!(!stdout(&output).contains('\x1b'), "{args:?}: {output:?}");
    }
    let unknown = sandbox.coco_env(&["detail", "7ZZZZZ"], &plain_env);
    assert!(
        stderr(&unknown).starts_with("coco: error: no run"),
        "{unknown:?}"
    );

    // Forced, as a pager would ask: states and the error label coloured, the columns kept.
    let forced = [("CLICOLOR_FORCE", "1")];
    let list = stdout(&sandbox.coco_env(&["list"], &forced));
    assert!(list.contains(green), "{list:?}");
    let stripped = list.replace("\x1b[32m", "").replace("\x1b[0m", "");
    let (header, row) = (
        stripped.lines().next().unwrap(),
        stripped.lines().nth(1).unwrap(),
    );
    assert_eq!(
        header.find("STATE"),
        row.find("complete"),
        "the columns are where they are without colours:\n{stripped}"
    );
    let jobs = stdout(&sandbox.coco_env(&["jobs"], &forced));
    assert!(jobs.contains(&format!("{green} (")), "{jobs:?}");
    let unknown = stderr(&sandbox.coco_env(&["detail", "7ZZZZZ"], &forced));
    assert!(
        unknown.starts_with("coco: \x1b[1;31merror:\x1b[0m no run"),
        "{unknown:?}"
    );
    // NO_COLOR wins over everything.
    let both = sandbox.coco_env(&["list"], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(!stdout(&both).contains('\x1b'), "{both:?}");

    // On a real (pseudo-)terminal: coloured; with NO_COLOR: not.
    if let Some(shown) = on_a_terminal(&sandbox, &["list"], &[]) {
        assert!(shown.contains(green), "{shown:?}");
        let shown = on_a_terminal(&sandbox, &["list"], &[("NO_COLOR", "1")]).unwrap();
        assert!(
            shown.contains("complete") && !shown.contains('\x1b'),
            "{shown:?}"
        );
    }
}
