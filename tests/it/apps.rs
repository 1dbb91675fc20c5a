//! App servers under a real `coco daemon`, on both stores: served and health-checked,
//! restarted after a crash (with backoff when it crash-loops), restarted when its
//! definition changes, stopped when removed, run by one daemon of two, taken back after the
//! daemon is SIGKILLed and restarted, and its output kept for `coco logs APP`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Background, Sandbox, free_port, pid_alive, stderr, stdout};

fn both(test: fn(&Sandbox)) {
    test(&Sandbox::new());
    if let Some(sandbox) = Sandbox::on_mongodb("coco_apps") {
        test(&sandbox);
    }
}

/// A project whose app `web` serves the project folder with Python's http.server.
fn web(port: u16, extra_env: &str) -> String {
    format!(
        "apps:\n  web:\n    command: [python3, -m, http.server, '{port}', --bind, 127.0.0.1]\n    port: {port}\n    health: {{http: /}}\n    env: {{MODE: '{extra_env}', PYTHONUNBUFFERED: '1'}}\n"
    )
}

fn apps(sandbox: &Sandbox) -> Vec<Value> {
    let output = sandbox.coco(&["apps", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Wait (up to 20 s) until app `id`'s status satisfies `ok`; returns it.
fn wait_status(sandbox: &Sandbox, id: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = apps(sandbox);
        let status = listed
            .iter()
            .find(|line| line["app"] == id)
            .map(|line| line["status"].clone())
            .unwrap_or(Value::Null);
        if ok(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {listed:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn healthy(status: &Value) -> bool {
    status["state"] == "healthy"
}

fn pid(status: &Value) -> i32 {
    status["pid"].as_i64().unwrap() as i32
}

/// GET / on the port answers 200.
fn serves(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200")
}

fn daemon(sandbox: &Sandbox) -> Background {
    sandbox.spawn(&["daemon", "--no-worker", "--no-scheduler"])
}

#[test]
fn an_app_is_served_restarted_and_stopped() {
    both(|sandbox| {
        let port = free_port();
        sandbox.project("site", &web(port, "one"));
        let daemon = daemon(sandbox);
        let first = wait_status(sandbox, "site.web", "healthy at start", healthy);
        assert!(serves(port));
        assert_eq!(first["restarts"], 0);
        assert_eq!(first["health"], "GET /: 200");

        // A crash: started again.
        // SAFETY: kill(2) on the app's pid, read from its status just now.
        unsafe { libc::kill(pid(&first), libc::SIGKILL) };
        let second = wait_status(sandbox, "site.web", "restarted after a crash", |s| {
            healthy(s) && s["pid"] != first["pid"]
        });
        assert_eq!(second["restarts"], 1);

        // A changed definition: replaced.
        std::fs::write(sandbox.home().join("site/coco.yaml"), web(port, "two")).unwrap();
        let third = wait_status(sandbox, "site.web", "restarted after an edit", |s| {
            healthy(s) && s["pid"] != second["pid"]
        });
        assert!(!pid_alive(pid(&second)), "the old process is gone");
        let environ = std::fs::read(format!("/proc/{}/environ", pid(&third))).unwrap();
        assert!(
            environ.split(|&b| b == 0).any(|entry| entry == b"MODE=two"),
            "the new process has the new environment"
        );

        // Its output is kept (stored as it comes, a moment after the app answers).
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut logs = String::new();
        while !logs.contains("out Serving HTTP on 127.0.0.1") {
            assert!(Instant::now() < deadline, "{logs}");
            std::thread::sleep(Duration::from_millis(20));
            logs = stdout(&sandbox.coco(&["logs", "site.web"]));
        }
        assert!(
            logs.contains("log WARNING exited: killed by SIGKILL"),
            "{logs}"
        );

        // Removed from the manifest: stopped.
        std::fs::write(sandbox.home().join("site/coco.yaml"), "jobs: {}\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while pid_alive(pid(&third)) {
            assert!(Instant::now() < deadline, "the removed app still runs");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(apps(sandbox).is_empty());
        drop(daemon);
    });
}

#[test]
fn a_crash_looping_app_backs_off_and_never_is_not_restarted() {
    both(|sandbox| {
        sandbox.project(
            "loop",
            "apps:\n  crash:\n    command: [sh, -c, 'exit 1']\n  once:\n    command: [sh, -c, 'exit 0']\n    restart: never\n",
        );
        let daemon = daemon(sandbox);
        wait_status(sandbox, "loop.crash", "restarting", |s| {
            s["restarts"].as_u64().is_some_and(|n| n >= 2)
        });
        let once = wait_status(sandbox, "loop.once", "exited", |s| s["state"] == "exited");
        std::thread::sleep(Duration::from_millis(1500));
        let crash = wait_status(sandbox, "loop.crash", "listed", |s| !s.is_null());
        // 100 ms, 200, 400, 800, 1.6 s …: a handful in two seconds, not hundreds.
        let restarts = crash["restarts"].as_u64().unwrap();
        assert!(restarts <= 8, "backoff holds restarts back: {crash:#}");
        assert_eq!(once["restarts"], 0, "restart: never");
        drop(daemon);
    });
}

#[test]
fn one_of_two_daemons_runs_an_app_and_the_other_takes_over() {
    both(|sandbox| {
        let port = free_port();
        sandbox.project("site", &web(port, "one"));
        let mut first = daemon(sandbox);
        let status = wait_status(sandbox, "site.web", "healthy", healthy);
        let second = daemon(sandbox);
        second.wait_for_log("daemon: home");
        std::thread::sleep(Duration::from_millis(2500));
        let still = wait_status(sandbox, "site.web", "listed", healthy);
        assert_eq!(still["owner"], status["owner"], "one daemon runs it");
        assert_eq!(still["pid"], status["pid"]);

        // The holder stops (and releases the app): the other one starts it.
        // SAFETY: kill(2) on the daemon we spawned, not yet reaped.
        unsafe { libc::kill(first.child.id() as i32, libc::SIGTERM) };
        assert_eq!(first.wait_exit(), Some(0));
        let taken = wait_status(sandbox, "site.web", "taken over", |s| {
            healthy(s) && s["owner"] != status["owner"]
        });
        assert!(serves(port));
        assert_ne!(taken["pid"], status["pid"]);
        drop(second);
    });
}

#[test]
fn a_sigkilled_daemon_takes_its_apps_back_when_restarted() {
    both(|sandbox| {
        let port = free_port();
        sandbox.project("site", &web(port, "one"));
        let mut doomed = daemon(sandbox);
        let before = wait_status(sandbox, "site.web", "healthy", healthy);
        doomed.child.kill().unwrap();
        doomed.child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while pid_alive(pid(&before)) {
            assert!(Instant::now() < deadline, "the app outlived its daemon");
            std::thread::sleep(Duration::from_millis(20));
        }
        let again = daemon(sandbox);
        // Within the stale interval (10 s): the old holder's process is gone on this host.
        let after = wait_status(sandbox, "site.web", "taken back", |s| {
            healthy(s) && s["owner"] != before["owner"]
        });
        assert!(serves(port));
        assert_ne!(after["pid"], before["pid"]);
        drop(again);
    });
}
