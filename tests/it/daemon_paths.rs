//! `coco daemon` the way the README starts it — relative `--config` and `--home` from the
//! working directory — and the files a user can throw at its watcher: saves applied and
//! typos reported, manifests caught empty in the middle of a save, manifests that cannot be
//! read, symbolic links to watched folders, and what its log says about each; and `coco
//! dashboard`'s link to the `api.listen` of a relative local.yaml.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{Background, Sandbox, stderr, stdout};

/// `examples/`-like: `conf/local.yaml` with paths relative to itself, a project `p1` with
/// a job `tick` every minute.
fn relative_layout(sandbox: &Sandbox) -> std::path::PathBuf {
    let conf = sandbox.dir.path().join("conf");
    std::fs::create_dir_all(conf.join("home/p1")).unwrap();
    std::fs::write(
        conf.join("local.yaml"),
        "logging:\n  stderr: INFO\nfolder:\n  home: home\n  state: ../conf-state\n",
    )
    .unwrap();
    std::fs::write(conf.join("home/p1/coco.yaml"), tick("* * * * *")).unwrap();
    conf.join("home")
}

fn tick(schedule: &str) -> String {
    format!("jobs:\n  tick:\n    command: [\"true\"]\n    schedule: \"{schedule}\"\n")
}

/// Wait (up to 20 s) until `check` holds for the daemon's log; the log.
fn wait_log(daemon: &Background, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = daemon.log();
        if check(&log) {
            return log;
        }
        assert!(Instant::now() < deadline, "{what}: not in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `coco status` (with `args` before the verb) once its problems satisfy `check`.
fn wait_status(sandbox: &Sandbox, args: &[&str], what: &str, check: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut all = args.to_vec();
    all.push("status");
    loop {
        let out = sandbox.coco(&all);
        assert_eq!(out.status.code(), Some(0), "coco status: {}", stderr(&out));
        if check(&stdout(&out)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: coco status says:\n{}",
            stdout(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A schedule change and a typo saved under a daemon started with `--config` relative to
/// its working directory (README: `cargo run -- --config examples/local.yaml daemon`).
#[test]
fn a_relative_config_applies_saves_and_reports_typos() {
    let sandbox = Sandbox::new();
    let home = relative_layout(&sandbox);
    let global = ["--config", "conf/local.yaml"];
    let daemon = sandbox.spawn(&[global[0], global[1], "daemon", "--no-worker"]);
    wait_log(&daemon, "the start-up pass", |log| {
        log.contains("applied: +project p1")
    });

    saves_apply_and_typos_show(&sandbox, &daemon, &home, &global);
}

/// README: `cargo run -- --config examples/local.yaml daemon`, then `… dashboard` in another
/// terminal: the link it prints (to the `api.listen` of the relative local.yaml) logs in and
/// opens the page.
#[test]
fn the_dashboard_link_from_a_relative_config() {
    let sandbox = Sandbox::new();
    relative_layout(&sandbox);
    let port = crate::support::free_port();
    let local = sandbox.dir.path().join("conf/local.yaml");
    let text = std::fs::read_to_string(&local).unwrap();
    std::fs::write(&local, format!("{text}api:\n  listen: 127.0.0.1:{port}\n")).unwrap();
    let from_local_yaml = [("COCO_API__LISTEN", "")];
    let daemon = sandbox.spawn_env(
        &["--config", "conf/local.yaml", "daemon", "--no-worker"],
        &from_local_yaml,
    );
    daemon.wait_for_log(&format!("daemon: API on http://127.0.0.1:{port}"));

    let printed = sandbox.coco_env(
        &["--config", "conf/local.yaml", "dashboard"],
        &from_local_yaml,
    );
    assert_eq!(printed.status.code(), Some(0), "{}", stderr(&printed));
    let link = stdout(&printed).trim().to_string();
    let origin = format!("http://127.0.0.1:{port}");
    let path = link
        .strip_prefix(&origin)
        .unwrap_or_else(|| panic!("not a link to {origin}: {link}"));
    let login = crate::api::http(port, "GET", path, &[]);
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = login.header("set-cookie").unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = crate::api::http(port, "GET", "/", &[("Cookie", &cookie)]);
    assert_eq!(page.status, 200);
    assert!(
        page.body.to_lowercase().starts_with("<!doctype html>"),
        "{}",
        page.body
    );
    let status = crate::api::http(port, "GET", "/api/v1/status", &[("Cookie", &cookie)]);
    assert_eq!(status.status, 200, "{}", status.body);
    assert!(status.json()["schedules"].to_string().contains("p1.tick"));
    drop(daemon);
}

/// The same with `--home DIR` relative to the working directory.
#[test]
fn a_relative_home_applies_saves_and_reports_typos() {
    let sandbox = Sandbox::with_stderr_level("INFO");
    let home = sandbox.dir.path().join("work");
    std::fs::create_dir_all(home.join("p1")).unwrap();
    std::fs::write(home.join("p1/coco.yaml"), tick("* * * * *")).unwrap();
    let global = ["--home", "work"];
    let daemon = sandbox.spawn(&[global[0], global[1], "daemon", "--no-worker"]);
    wait_log(&daemon, "the start-up pass", |log| {
        log.contains("applied: +project p1")
    });

    saves_apply_and_typos_show(&sandbox, &daemon, &home, &global);
}

fn saves_apply_and_typos_show(
    sandbox: &Sandbox,
    daemon: &Background,
    home: &Path,
    global: &[&str],
) {
    let file = home.join("p1/coco.yaml");
    std::fs::write(&file, tick("*/7 * * * *")).unwrap();
    // What changed, and how (as `coco plan` shows it) on a line of its own.
    let how = "~ job p1.tick: schedule: \"* * * * *\" → \"*/7 * * * *\"";
    wait_log(daemon, "the schedule change", |log| {
        log.contains("applied: ~job p1.tick") && log.lines().any(|line| line.contains(how))
    });
    let mut plan = global.to_vec();
    plan.push("plan");
    let out = sandbox.coco(&plan);
    assert_eq!(
        out.status.code(),
        Some(0),
        "nothing left to apply: {}{}",
        stdout(&out),
        stderr(&out)
    );

    // An environment value changed: the log says so, never what it is (it may be a token).
    std::fs::write(
        &file,
        format!(
            "{}    env: {{API_TOKEN: s3cret-token}}\n",
            tick("*/7 * * * *")
        ),
    )
    .unwrap();
    let log = wait_log(daemon, "the env change", |log| {
        log.contains("~ job p1.tick: env changed")
            || log.contains("~ job p1.tick: env.API_TOKEN changed")
    });
    assert!(!log.contains("s3cret-token"), "{log}");

    std::fs::write(
        &file,
        "jobs:\n  tick:\n    command: [\"true\"]\n    atempts: 3\n",
    )
    .unwrap();
    let log = wait_log(daemon, "the typo", |log| {
        log.contains("p1/coco.yaml:4:5: unknown key `atempts`") && log.contains("    atempts: 3\n")
    });
    // The record names its project first and ends with the snippet's caret line.
    let headline = log
        .lines()
        .find(|line| line.contains("unknown key `atempts`"))
        .unwrap();
    assert!(headline.contains("project=p1"), "{headline}");
    let caret = log
        .lines()
        .skip_while(|line| !line.contains("unknown key `atempts`"))
        .find(|line| line.trim_start().starts_with('|') && line.contains('^'))
        .unwrap_or_else(|| panic!("no caret line in:\n{log}"));
    assert_eq!(caret, "  |     ^", "nothing glued after the caret:\n{log}");
    wait_status(sandbox, global, "the typo", |status| {
        status.contains("unknown key `atempts`")
    });
    // coco status indents the snippet with the rest of the problem.
    let mut status = global.to_vec();
    status.push("status");
    let out = stdout(&sandbox.coco(&status));
    let headline = out
        .lines()
        .position(|line| line.contains("unknown key `atempts`"))
        .unwrap();
    let snippet: Vec<&str> = out.lines().skip(headline + 1).take(3).collect();
    assert_eq!(
        snippet,
        ["      |", "    4 |     atempts: 3", "      |     ^"],
        "{out}"
    );
}

/// A sandbox (embedded store, INFO on stderr) with projects `p1` (job `tick`) and `p2`
/// (job `other`), applied by a daemon already running.
fn running_two_projects() -> (Sandbox, Background) {
    let sandbox = Sandbox::with_stderr_level("INFO");
    sandbox.project("p1", &tick("* * * * *"));
    sandbox.project(
        "p2",
        "jobs:\n  other:\n    command: [\"true\"]\n    schedule: \"* * * * *\"\n",
    );
    let daemon = sandbox.spawn(&["daemon", "--no-worker"]);
    wait_log(&daemon, "the start-up pass", |log| {
        log.contains("+job p1.tick") && log.contains("+job p2.other")
    });
    (sandbox, daemon)
}

/// Is job `job` applied and active (`coco jobs` lists it)?
fn active(sandbox: &Sandbox, job: &str) -> bool {
    let out = sandbox.coco(&["jobs", "--json"]);
    assert_eq!(out.status.code(), Some(0), "coco jobs: {}", stderr(&out));
    let jobs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    jobs.iter().any(|line| line["job"] == job)
}

/// An editor that truncates, pauses and writes: the empty file in between is not applied.
/// A manifest left empty is a problem and the project keeps its state.
#[test]
fn an_empty_manifest_is_waited_for_then_a_problem() {
    let (sandbox, daemon) = running_two_projects();
    let file = sandbox.home().join("p1/coco.yaml");
    {
        use std::io::Write as _;
        let mut handle = std::fs::File::create(&file).unwrap(); // truncates
        std::thread::sleep(Duration::from_millis(50));
        handle.write_all(tick("*/5 * * * *").as_bytes()).unwrap();
    }
    let log = wait_log(&daemon, "the rewritten manifest", |log| {
        log.contains("applied: ~job p1.tick")
    });
    assert!(
        !log.contains("-job p1.tick"),
        "the empty file was applied:\n{log}"
    );
    assert!(!log.contains("-project p1"), "{log}");
    assert!(
        !log.contains("the manifest is empty"),
        "the daemon waited for the content:\n{log}"
    );

    std::fs::write(&file, "").unwrap();
    wait_log(&daemon, "the empty manifest", |log| {
        log.contains("p1/coco.yaml:1:1: the manifest is empty")
    });
    assert!(active(&sandbox, "p1.tick"), "the project kept its job");
    wait_status(&sandbox, &[], "the empty manifest", |status| {
        status.contains("the manifest is empty")
    });
    assert!(!daemon.log().contains("-job p1.tick"), "{}", daemon.log());
}

/// The CLI: an empty manifest is a located problem, not a project with nothing in it.
#[test]
fn validate_and_plan_report_an_empty_manifest() {
    let sandbox = Sandbox::new();
    sandbox.project("p1", "");
    for verb in ["validate", "plan", "apply"] {
        let out = sandbox.coco(&[verb]);
        assert_eq!(out.status.code(), Some(1), "{verb}: {}", stdout(&out));
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            text.contains("p1/coco.yaml:1:1: the manifest is empty"),
            "{verb}: {text}"
        );
    }
}

/// A `coco.yaml` replaced by a folder, then by a symbolic link to itself: each is a
/// problem, and the project keeps its last good state (its job stays active).
#[test]
fn an_unreadable_manifest_keeps_the_last_good_state() {
    let (sandbox, daemon) = running_two_projects();
    let file = sandbox.home().join("p2/coco.yaml");
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    wait_log(&daemon, "the folder", |log| {
        log.contains("p2/coco.yaml:1:1: cannot read: it is a folder")
    });
    assert!(active(&sandbox, "p2.other"), "{}", daemon.log());

    std::fs::remove_dir(&file).unwrap();
    std::os::unix::fs::symlink("coco.yaml", &file).unwrap();
    wait_log(&daemon, "the loop", |log| {
        log.contains("p2/coco.yaml:1:1: cannot read: Too many levels of symbolic links")
    });
    assert!(active(&sandbox, "p2.other"), "{}", daemon.log());
    wait_status(&sandbox, &[], "the loop", |status| {
        status.contains("Too many levels of symbolic links")
    });
    let log = daemon.log();
    assert!(
        !log.contains("-project p2") && !log.contains("-job p2"),
        "{log}"
    );

    // At start-up too: a second daemon's first pass keeps it.
    drop(daemon);
    let again = sandbox.spawn(&["daemon", "--no-worker"]);
    wait_log(&again, "the start-up pass", |log| {
        log.contains("cannot read: Too many levels")
    });
    assert!(active(&sandbox, "p2.other"), "{}", again.log());
}

/// inotify watches inodes: a symbolic link to the home, or to a project folder, removed
/// again, must not end the watch of the real folder.
#[test]
fn removing_a_symlink_to_a_watched_folder_keeps_the_watch() {
    let (sandbox, daemon) = running_two_projects();
    let home = sandbox.home();
    std::os::unix::fs::symlink(&home, home.join("homelink")).unwrap();
    std::os::unix::fs::symlink("p1", home.join("p1link")).unwrap();
    wait_log(&daemon, "the linked project", |log| {
        log.contains("+project p1link")
    });
    std::fs::remove_file(home.join("homelink")).unwrap();
    std::fs::remove_file(home.join("p1link")).unwrap();
    wait_log(&daemon, "the link removed", |log| {
        log.contains("-project p1link")
    });

    // The home is still watched: a new project is seen ...
    sandbox.project("p3", "jobs:\n  new:\n    command: [\"true\"]\n");
    wait_log(&daemon, "a project after the links", |log| {
        log.contains("+project p3")
    });
    // ... and so is the project folder a link pointed at.
    std::fs::write(home.join("p1/coco.yaml"), tick("*/3 * * * *")).unwrap();
    wait_log(&daemon, "a save after the links", |log| {
        log.contains("applied: ~job p1.tick")
    });
}

/// Deleting a project folder is normal: its project is deactivated, and the watcher's
/// bookkeeping (notify drops the watch of a deleted folder itself) logs no warning.
#[test]
fn deleting_a_project_folder_warns_of_nothing() {
    let (sandbox, daemon) = running_two_projects();
    std::fs::remove_dir_all(sandbox.home().join("p2")).unwrap();
    let log = wait_log(&daemon, "the deleted project", |log| {
        log.contains("-project p2")
    });
    // Give a late warning the time to show.
    std::thread::sleep(Duration::from_millis(300));
    let log = daemon.log() + &log;
    assert!(
        !log.contains("WARN") && !log.contains("WatchNotFound"),
        "{log}"
    );
    assert!(active(&sandbox, "p1.tick"));
}

/// A home that does not exist: the CLI and the daemon say so with a hint, `coco status`
/// shows it, and the daemon picks the home up once it is created.
#[test]
fn a_missing_home_is_reported_with_a_hint() {
    let sandbox = Sandbox::with_stderr_level("INFO");
    let global = ["--home", "nowhere"];
    let hint = "the home folder";
    for verb in ["plan", "validate"] {
        let out = sandbox.coco(&[global[0], global[1], verb]);
        assert_eq!(out.status.code(), Some(1), "{verb}: {}", stdout(&out));
        let text = stderr(&out);
        assert!(
            text.contains(&format!(
                "{hint} {}",
                sandbox.dir.path().join("nowhere").display()
            )) && text.contains("does not exist")
                && text.contains("folder.home")
                && text.contains("coco config"),
            "{verb}: {text}"
        );
    }

    let daemon = sandbox.spawn(&[global[0], global[1], "daemon", "--no-worker"]);
    wait_log(&daemon, "the missing home", |log| {
        log.contains("does not exist: create it")
    });
    wait_status(&sandbox, &global, "the missing home", |status| {
        status.contains("nowhere does not exist")
    });

    let home = sandbox.dir.path().join("nowhere");
    std::fs::create_dir_all(home.join("p1")).unwrap();
    std::fs::write(home.join("p1/coco.yaml"), tick("* * * * *")).unwrap();
    wait_log(&daemon, "the home created", |log| {
        log.contains("applied: +project p1")
    });
    wait_status(&sandbox, &global, "the home created", |status| {
        status.contains("Manifest problems\n  none")
    });
}

/// A named pipe in the place of `coco.yaml` (or of local.yaml) is read as what it holds now,
/// never waited on: `coco validate` answers at once with a located problem.
#[test]
fn a_named_pipe_as_manifest_does_not_hang_the_reader() {
    let sandbox = Sandbox::new();
    let dir = sandbox.home().join("piped");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = std::ffi::CString::new(dir.join("coco.yaml").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a path in the sandbox.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let mut validate = sandbox.spawn(&["validate", "home/piped"]);
    assert_eq!(validate.wait_exit(), Some(1), "{}", validate.log());
    assert!(
        validate.log().contains("home/piped/coco.yaml:1:1:"),
        "{}",
        validate.log()
    );
}
