//! `coco daemon` the way the README starts it — relative `--config` and `--home` from the
//! working directory — and the files a user can throw at its watcher: saves applied and
//! typos reported, manifests caught empty in the middle of a save, manifests that cannot be
//! read, symbolic links to watched folders, and what its log says about each.

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
    wait_log(daemon, "the schedule change", |log| {
        log.contains("applied: ~job p1.tick")
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

    std::fs::write(
        &file,
        "jobs:\n  tick:\n    command: [\"true\"]\n    atempts: 3\n",
    )
    .unwrap();
    wait_log(daemon, "the typo", |log| {
        log.contains("p1/coco.yaml:4:5: unknown key `atempts`")
    });
    wait_status(sandbox, global, "the typo", |status| {
        status.contains("unknown key `atempts`")
    });
}
