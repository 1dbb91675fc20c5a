//! Containment through the `coco` binary: a job's grandchild that double-forks, calls
//! `setsid`, clears its environment and ignores SIGTERM still ends with `coco kill`, with the
//! job's `timeout:`, when the job's leader exits, and when its worker is SIGKILLed — once
//! with a cgroup per run (`worker.containment: cgroup`) and once with the subreaper
//! (`worker.containment: subreaper`).

use std::time::{Duration, Instant};

use crate::support::{Sandbox, guard_of, pid_alive, stderr};

/// `escape.sh THEN`: starts the escaping grandchild (its pid in `grandchild.pid` once it
/// runs: `env -i` leaves it nothing to be found by), waits for it to be up, then waits
/// ignoring SIGTERM (`wait`) or exits (`exit`).
const ESCAPE: &str = r#"#!/bin/sh
( setsid env -i /bin/sh -c 'trap "" TERM; echo $$ > grandchild.pid.tmp; mv grandchild.pid.tmp grandchild.pid; while :; do sleep 1; done' & )
echo leader up
while [ ! -e grandchild.pid ]; do sleep 0.05; done
if [ "$1" = wait ]; then
    trap "" TERM
    while :; do sleep 1; done
fi
"#;

const MANIFEST: &str = "\
jobs:
  escape:
    command: [sh, escape.sh, '{{args.then}}']
    args: {then: wait}
    attempts: 1
  late:
    command: [sh, escape.sh, wait]
    timeout: 1s
    attempts: 1
";

/// How the worker holds its runs.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    Cgroup,
    Subreaper,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Cgroup => "cgroup",
            Path::Subreaper => "subreaper",
        }
    }
}

/// A sandbox whose workers use `path`; `None` (after saying why) when cgroups are not
/// usable here and `COCO_TEST_SKIP_CGROUP=1` allows skipping — else such a host fails the
/// cgroup tests, so a CI run never passes without testing them.
fn sandbox(path: Path) -> Option<Sandbox> {
    if path == Path::Cgroup
        && let Err(why) =
            coco::process::cgroup::WorkerGroup::create(&format!("probe-{}", ulid::Ulid::new()))
                .map(|group| std::fs::remove_dir(group.dir()))
    {
        let skip = std::env::var("COCO_TEST_SKIP_CGROUP").as_deref() == Ok("1");
        assert!(
            skip,
            "cgroups cannot contain runs on this host ({why}); run as root on a cgroup v2 host, \
             or set COCO_TEST_SKIP_CGROUP=1 to skip the cgroup tests"
        );
        eprintln!("SKIPPED: the cgroup containment test, since {why}");
        return None;
    }
    let sandbox = Sandbox::new();
    let config = sandbox.dir.path().join(".coco/local.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("worker:\n  containment: {}\n", path.name()));
    std::fs::write(&config, text).unwrap();
    sandbox.project("esc", MANIFEST);
    sandbox.file("esc/escape.sh", ESCAPE, false);
    sandbox.apply();
    Some(sandbox)
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The escaped grandchild's pid, once it runs; and a check that `path` holds it (in the
/// cgroup `<unit>-<n>`: `run-<id>`, `app-<project.app>`).
fn grandchild(sandbox: &Sandbox, path: Path, unit: &str) -> i32 {
    let file = sandbox.home().join("esc/grandchild.pid");
    wait_until("the grandchild started", Duration::from_secs(20), || {
        file.exists()
    });
    let pid: i32 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid));
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        !environ.windows(5).any(|w| w == b"COCO_"),
        "the grandchild's environment is clear"
    );
    match path {
        Path::Cgroup => {
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
            assert!(
                cgroup.contains("/coco-") && cgroup.contains(&format!("/{unit}-")),
                "in its run's cgroup: {cgroup}"
            );
        }
        Path::Subreaper => {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            let parent: i32 = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse().ok())
                .unwrap();
            let cmdline = std::fs::read(format!("/proc/{parent}/cmdline")).unwrap();
            assert!(
                cmdline.split(|&b| b == 0).any(|arg| arg == b"__contain"),
                "adopted by its run's subreaper, not by init: parent {parent} {:?}",
                String::from_utf8_lossy(&cmdline)
            );
        }
    }
    pid
}

/// Gone well before the 32 s it used to outlive a kill by (the grace is 5 s).
fn assert_ends(pid: i32, what: &str) {
    wait_until(
        &format!("the escaped grandchild {pid} outlived {what}"),
        Duration::from_secs(15),
        || !pid_alive(pid),
    );
}

fn killed_by_coco_kill(path: Path) {
    let Some(sandbox) = sandbox(path) else {
        return;
    };
    let _worker = sandbox.spawn(&["worker", "--slots", "2"]);
    let id = sandbox.enqueue(&["esc.escape"]);
    let pid = grandchild(&sandbox, path, &format!("run-{id}"));
    let kill = sandbox.coco(&["kill", &id]);
    assert_eq!(kill.status.code(), Some(0), "{}", stderr(&kill));
    assert_ends(pid, "coco kill");
    sandbox.wait_for_state(&id, "killed");
}

fn ended_by_the_timeout(path: Path) {
    let Some(sandbox) = sandbox(path) else {
        return;
    };
    let _worker = sandbox.spawn(&["worker", "--slots", "2"]);
    let id = sandbox.enqueue(&["esc.late"]);
    let pid = grandchild(&sandbox, path, &format!("run-{id}"));
    assert_ends(pid, "the timeout");
    let run = sandbox.wait_for_state(&id, "error");
    assert_eq!(run["reason"], "timeout", "{run:#}");
}

fn ended_with_its_leader(path: Path) {
    let Some(sandbox) = sandbox(path) else {
        return;
    };
    let _worker = sandbox.spawn(&["worker", "--slots", "2"]);
    let id = sandbox.enqueue(&["esc.escape", "--arg", "then=exit"]);
    let pid = grandchild(&sandbox, path, &format!("run-{id}"));
    assert_ends(pid, "its job's leader");
    sandbox.wait_for_state(&id, "complete");
}

fn ended_with_a_sigkilled_worker(path: Path) {
    let Some(sandbox) = sandbox(path) else {
        return;
    };
    let mut worker = sandbox.spawn(&["worker", "--slots", "2"]);
    let id = sandbox.enqueue(&["esc.escape"]);
    let pid = grandchild(&sandbox, path, &format!("run-{id}"));
    worker.child.kill().unwrap();
    worker.child.wait().unwrap();
    assert_ends(pid, "its SIGKILLed worker");
}

/// Worker and guard both SIGKILLed: the run's cgroup outlives them, and the worker that takes
/// the run back as a zombie kills it before it claims anything.
#[test]
fn cgroup_a_run_taken_back_has_its_cgroup_killed() {
    let Some(sandbox) = sandbox(Path::Cgroup) else {
        return;
    };
    let mut doomed = sandbox.spawn(&["worker", "--slots", "2", "--name", "doomed"]);
    let id = sandbox.enqueue(&["esc.escape"]);
    let pid = grandchild(&sandbox, Path::Cgroup, &format!("run-{id}"));
    let guard = guard_of(doomed.child.id()).expect("the worker has a guard");
    // SAFETY: kill(2) on the guard process found just now (it is restarted after 1 s only).
    assert_eq!(unsafe { libc::kill(guard, libc::SIGKILL) }, 0);
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(pid_alive(pid), "nothing but the take-back ends it now");
    let _rescuer = sandbox.spawn(&["worker", "--slots", "2", "--zombie-after", "10s"]);
    wait_until(
        &format!("the escaped grandchild {pid} outlived the take-back of its run"),
        Duration::from_secs(45),
        || !pid_alive(pid),
    );
    // Taken back without spending an attempt, it is pending again and soon the rescuer's.
    wait_until("the run is taken back", Duration::from_secs(20), || {
        let run = sandbox.run_json(&id);
        run["state"] != "running" || run["worker"] != "doomed"
    });
    let base = coco::process::cgroup::own_base().unwrap();
    let prefix = format!("coco-{}-", doomed.child.id());
    let left: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(
        left.is_empty(),
        "the lost worker's cgroup folder is removed: {left:?}"
    );
}

/// An app's process tree is held the same way: stopping the app (here: the daemon stops)
/// ends its escaped grandchild.
fn app_tree_ends_with_the_app(path: Path) {
    let Some(sandbox) = sandbox(path) else {
        return;
    };
    let mut text = MANIFEST.to_string();
    text.push_str("apps:\n  web:\n    command: [sh, escape.sh, wait]\n    restart: never\n");
    sandbox.project("esc", &text);
    let daemon = sandbox.spawn(&["daemon", "--no-worker", "--no-scheduler"]);
    let pid = grandchild(&sandbox, path, "app-esc.web");
    drop(daemon);
    assert_ends(pid, "its app's daemon");
}

#[test]
fn cgroup_an_apps_escaped_grandchild_ends_with_the_app() {
    app_tree_ends_with_the_app(Path::Cgroup);
}

#[test]
fn subreaper_an_apps_escaped_grandchild_ends_with_the_app() {
    app_tree_ends_with_the_app(Path::Subreaper);
}

#[test]
fn cgroup_coco_kill_ends_an_escaped_grandchild() {
    killed_by_coco_kill(Path::Cgroup);
}

#[test]
fn cgroup_timeout_ends_an_escaped_grandchild() {
    ended_by_the_timeout(Path::Cgroup);
}

#[test]
fn cgroup_an_escaped_grandchild_ends_with_its_leader() {
    ended_with_its_leader(Path::Cgroup);
}

#[test]
fn cgroup_a_sigkilled_worker_takes_an_escaped_grandchild_along() {
    ended_with_a_sigkilled_worker(Path::Cgroup);
}

#[test]
fn subreaper_coco_kill_ends_an_escaped_grandchild() {
    killed_by_coco_kill(Path::Subreaper);
}

#[test]
fn subreaper_timeout_ends_an_escaped_grandchild() {
    ended_by_the_timeout(Path::Subreaper);
}

#[test]
fn subreaper_an_escaped_grandchild_ends_with_its_leader() {
    ended_with_its_leader(Path::Subreaper);
}

#[test]
fn subreaper_a_sigkilled_worker_takes_an_escaped_grandchild_along() {
    ended_with_a_sigkilled_worker(Path::Subreaper);
}

/// Under the subreaper, a run's processes still carry the guard's marker: should the
/// subreaper itself be killed, what the job started goes with the worker all the same.
#[test]
fn subreaper_killed_its_jobs_children_still_end_with_the_worker() {
    let Some(sandbox) = sandbox(Path::Subreaper) else {
        return;
    };
    let mut text = MANIFEST.to_string();
    text.push_str(
        "  plain:\n    command: [sh, -c, 'sleep 300 & echo $! > plain.pid; wait']\n    attempts: 1\n",
    );
    sandbox.project("esc", &text);
    sandbox.apply();
    let mut worker = sandbox.spawn(&["worker", "--slots", "2"]);
    sandbox.enqueue(&["esc.plain"]);
    let file = sandbox.home().join("esc/plain.pid");
    wait_until("the job's child started", Duration::from_secs(20), || {
        std::fs::read_to_string(&file).is_ok_and(|text| text.ends_with('\n'))
    });
    let child: i32 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The subreaper: the job shell's parent, the child's grandparent.
    let parent_of = |pid: i32| -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse().ok())
            .unwrap()
    };
    let subreaper = parent_of(parent_of(child));
    let cmdline = std::fs::read(format!("/proc/{subreaper}/cmdline")).unwrap();
    assert!(
        cmdline.split(|&b| b == 0).any(|arg| arg == b"__contain"),
        "the job runs under its subreaper"
    );
    // SAFETY: kill(2) on the subreaper found just now.
    assert_eq!(unsafe { libc::kill(subreaper, libc::SIGKILL) }, 0);
    worker.child.kill().unwrap();
    worker.child.wait().unwrap();
    assert_ends(child, "its SIGKILLed subreaper and worker");
}

/// The worker folders of the worker `pid` on this host.
fn worker_folders(pid: u32) -> Vec<std::path::PathBuf> {
    let base = coco::process::cgroup::own_base().unwrap();
    let prefix = format!("coco-{pid}-");
    std::fs::read_dir(&base)
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| entry.path())
        .collect()
}

/// The label (`user.coco.unit`) of a unit's folder: the unit it holds, empty while idle.
fn unit_label(dir: &std::path::Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    let mut buf = [0u8; 256];
    // SAFETY: getxattr(2) of C strings into `buf` of `buf.len()` bytes.
    let len = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"user.coco.unit".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let len = usize::try_from(len).ok()?;
    Some(String::from_utf8_lossy(&buf[..len]).into_owned())
}

/// Runs one after another reuse one cgroup folder (labelled with the unit it holds), and a
/// worker stopped as usual leaves no folder behind.
#[test]
fn cgroup_runs_reuse_a_folder_and_a_stopped_worker_leaves_none() {
    let Some(sandbox) = sandbox(Path::Cgroup) else {
        return;
    };
    sandbox.project("quick", "jobs:\n  ok:\n    command: ['true']\n");
    sandbox.apply();
    let worker = sandbox.spawn(&["worker", "--slots", "1"]);
    let pid = worker.child.id();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = sandbox.enqueue(&["quick.ok"]);
        sandbox.wait_for_state(&id, "complete");
        ids.push(id);
    }
    let folders = worker_folders(pid);
    assert_eq!(folders.len(), 1, "{folders:?}");
    let units: Vec<_> = std::fs::read_dir(&folders[0])
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.path())
        .collect();
    if unit_label(&folders[0]).is_none() && units.is_empty() {
        eprintln!("SKIPPED: the reuse check, since this host labels no cgroup");
    } else {
        assert_eq!(units.len(), 1, "one folder for three runs: {units:?}");
        let name = units[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!("run-{}-", ids[0])), "{name}");
        assert_eq!(unit_label(&units[0]).as_deref(), Some(""), "idle");
    }
    drop(worker);
    wait_until(
        "the stopped worker's cgroup folder is removed",
        Duration::from_secs(15),
        || worker_folders(pid).is_empty(),
    );
}
