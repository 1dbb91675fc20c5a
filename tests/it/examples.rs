//! The README's first command, on a copy of `examples/home` (the app moved to a free port):
//! the daemon serves the shop's web app, schedules `hello.greet` within the minute and runs
//! the example jobs in their environment.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::support::{Sandbox, free_port, stderr, stdout};

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The status line of `GET /` on 127.0.0.1:`port`, if it answers.
fn get(port: u16) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.lines().next().map(str::to_owned)
}

#[test]
fn the_example_home_runs_under_the_daemon() {
    let sandbox = Sandbox::new();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/home");
    copy_tree(&examples, &sandbox.home());
    let port = free_port();
    let shop = sandbox.home().join("shop/coco.yaml");
    let text = std::fs::read_to_string(&shop).unwrap();
    assert!(text.contains("8080"), "the example serves on 8080");
    std::fs::write(&shop, text.replace("8080", &port.to_string())).unwrap();

    let daemon = sandbox.spawn(&["daemon", "--slots", "2"]);
    let started = Instant::now();
    // The app answers.
    let deadline = started + Duration::from_secs(20);
    let answer = loop {
        if let Some(line) = get(port) {
            break line;
        }
        assert!(Instant::now() < deadline, "no app:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(answer.contains(" 200 "), "{answer}");

    // hello.greet fires within the minute.
    let jobs = sandbox.coco(&["jobs", "--json"]);
    assert_eq!(jobs.status.code(), Some(0), "{}", stderr(&jobs));
    let jobs: Vec<Value> = serde_json::from_slice(&jobs.stdout).unwrap();
    let greet = jobs
        .iter()
        .find(|job| job["job"] == "hello.greet")
        .expect("hello.greet applied");
    let next: DateTime<Utc> = greet["next_fire"].as_str().unwrap().parse().unwrap();
    let wait = next - Utc::now();
    assert!(
        wait <= chrono::TimeDelta::seconds(60),
        "fires within a minute: {greet:#}"
    );

    // An example job runs on the daemon's worker, in its environment.
    let id = sandbox.enqueue(&["hello.shout"]);
    sandbox.wait_for_state(&id, "complete");
    let output = stdout(&sandbox.coco(&["logs", &id]));
    assert!(output.contains("HELLO, WORLD (1/1)"), "{output}");
    drop(daemon);
}
