//! `coco::process` with real processes: argv, cwd, env, PATH, output parsing, exits, timeouts,
//! process groups, the parent-death signal, the process guard and containment (subreaper,
//! cgroup). Every interval is short; no test takes seconds.

use std::future::pending;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coco::process::{
    Event, Exit, Leash, LineKind, LogLevel, Outcome, Signal, SpawnError, Spec, Stream, run_to_end,
    spawn,
};
use tempfile::TempDir;
use tokio::sync::mpsc;

fn sh(script: &str, cwd: &Path) -> Spec {
    Spec::new(["sh", "-c", script], cwd)
}

async fn run(spec: &Spec, timeout: Option<Duration>, grace: Duration) -> (Outcome, Vec<Event>) {
    let mut events = Vec::new();
    let outcome = run_to_end(spec, timeout, grace, pending(), |event| events.push(event))
        .await
        .expect("run");
    (outcome, events)
}

fn lines(events: &[Event], stream: Stream) -> Vec<String> {
    events
        .iter()
        .filter(|event| event.stream == stream)
        .filter_map(|event| match &event.kind {
            LineKind::Output(line) => Some(line.clone()),
            _ => None,
        })
        .collect()
}

/// The process is gone: no /proc entry, or a zombie nobody reaps (an orphan under a container
/// init that does not wait).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            matches!(state.and_then(|s| s.chars().next()), Some('Z' | 'X'))
        }
    }
}

async fn gone_within(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gone(pid)
}

async fn read_pid_file(path: &Path) -> u32 {
    for _ in 0..250 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no pid in {}", path.display());
}

const GRACE: Duration = Duration::from_secs(2);

#[tokio::test]
async fn argv_is_passed_verbatim_not_through_a_shell() {
    let dir = TempDir::new().unwrap();
    let tricky = ["$HOME; echo x", "*", "a \"quoted\" 'word'", "", "`id`"];
    let mut argv = vec!["sh", "-c", r#"printf '%s\n' "$#" "$@""#, "sh"];
    argv.extend(tricky);
    let (outcome, events) = run(&Spec::new(argv, dir.path()), None, GRACE).await;
    assert!(outcome.exit.success(), "{outcome:?}");
    let mut expected = vec![tricky.len().to_string()];
    expected.extend(tricky.map(String::from));
    assert_eq!(lines(&events, Stream::Stdout), expected);
}

#[tokio::test]
async fn cwd_env_and_path_prepend_are_applied() {
    let dir = TempDir::new().unwrap();
    let bin = dir.path().join("bin");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let script = bin.join("hello-coco");
    std::fs::write(
        &script,
        concat!(
            "#!/bin/sh\n",
            "printf '%s\\n' \"$(pwd -P)\" \"$COCO_TEST_GREETING\" \"${PATH%%:*}\" \"${PATH#*:}\"\n",
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let spec = Spec::new(["hello-coco"], &work)
        .env("COCO_TEST_GREETING", "hi there; $x")
        .path_prepend(&bin);
    let (outcome, events) = run(&spec, None, GRACE).await;
    assert!(outcome.exit.success(), "{outcome:?}");
    let inherited = std::env::var("PATH").unwrap();
    assert_eq!(
        lines(&events, Stream::Stdout),
        [
            work.canonicalize().unwrap().display().to_string(),
            "hi there; $x".to_string(),
            bin.display().to_string(),
            inherited,
        ]
    );

    // A program with a slash is relative to the child's cwd, not coco's.
    let spec = Spec::new(["./bin/hello-coco"], dir.path());
    let (outcome, events) = run(&spec, None, GRACE).await;
    assert!(outcome.exit.success(), "{outcome:?}");
    assert_eq!(
        lines(&events, Stream::Stdout)[0],
        dir.path().canonicalize().unwrap().display().to_string()
    );
}

#[tokio::test]
async fn spawn_errors_name_the_program_and_the_directory() {
    let dir = TempDir::new().unwrap();
    let error = spawn(&Spec::new(["coco-no-such-program"], dir.path())).unwrap_err();
    assert!(
        matches!(error, SpawnError::NotFoundOnPath { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("coco-no-such-program"), "{message}");
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );

    let missing = dir.path().join("nowhere");
    let error = spawn(&Spec::new(["sh"], &missing)).unwrap_err();
    assert!(matches!(error, SpawnError::CwdMissing { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("`sh`"), "{message}");
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );

    let error = spawn(&Spec::new(["./missing.sh"], dir.path())).unwrap_err();
    assert!(matches!(error, SpawnError::NotFound { .. }), "{error:?}");
    assert!(error.to_string().contains("missing.sh"), "{error}");

    std::fs::write(dir.path().join("plain.txt"), "").unwrap();
    let error = spawn(&Spec::new(["./plain.txt"], dir.path())).unwrap_err();
    assert!(
        matches!(error, SpawnError::NotExecutable { .. }),
        "{error:?}"
    );

    let error = spawn(&Spec::new(Vec::<String>::new(), dir.path())).unwrap_err();
    assert!(
        matches!(error, SpawnError::EmptyCommand { .. }),
        "{error:?}"
    );
    let error = spawn(&Spec::new(["sh"], "relative/dir")).unwrap_err();
    assert!(
        matches!(error, SpawnError::CwdNotAbsolute { .. }),
        "{error:?}"
    );
    let error = spawn(&Spec::new(["sh"], dir.path()).env("A=B", "x")).unwrap_err();
    assert!(matches!(error, SpawnError::InvalidEnv { .. }), "{error:?}");
}

#[tokio::test]
async fn progress_and_log_lines_are_parsed_and_not_output() {
    let dir = TempDir::new().unwrap();
    let script = "echo before; echo '::progress:: 0.5 half way'; echo '::log:: WARN careful' >&2; \
                  echo '::progress:: abc'; echo '::progress:: 7'; echo after";
    let (outcome, events) = run(&sh(script, dir.path()), None, GRACE).await;
    assert!(outcome.exit.success(), "{outcome:?}");
    assert_eq!(
        lines(&events, Stream::Stdout),
        ["before", "::progress:: abc", "after"]
    );
    assert!(lines(&events, Stream::Stderr).is_empty());
    let reports: Vec<&LineKind> = events
        .iter()
        .map(|event| &event.kind)
        .filter(|kind| !matches!(kind, LineKind::Output(_)))
        .collect();
    assert!(reports.contains(&&LineKind::Progress {
        fraction: 0.5,
        message: Some("half way".into())
    }));
    assert!(reports.contains(&&LineKind::Progress {
        fraction: 1.0,
        message: None
    }));
    assert!(reports.contains(&&LineKind::Log {
        level: LogLevel::Warn,
        message: "careful".into()
    }));
    assert_eq!(reports.len(), 3);
}

#[tokio::test]
async fn stdout_and_stderr_are_both_captured_in_order() {
    let dir = TempDir::new().unwrap();
    let script = "i=1; while [ $i -le 200 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; \
                  printf 'no newline'";
    let (outcome, events) = run(&sh(script, dir.path()), None, GRACE).await;
    assert!(
        outcome.exit.success() && outcome.output_complete,
        "{outcome:?}"
    );
    let mut out: Vec<String> = (1..=200).map(|i| format!("out{i}")).collect();
    out.push("no newline".into());
    let err: Vec<String> = (1..=200).map(|i| format!("err{i}")).collect();
    assert_eq!(lines(&events, Stream::Stdout), out);
    assert_eq!(lines(&events, Stream::Stderr), err);
    for stream in [Stream::Stdout, Stream::Stderr] {
        let times: Vec<_> = events
            .iter()
            .filter(|e| e.stream == stream)
            .map(|e| e.at)
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "{stream} timestamps"
        );
    }
}

#[tokio::test]
async fn long_lines_are_cut_and_invalid_utf8_replaced() {
    let dir = TempDir::new().unwrap();
    let script = "head -c 100000 /dev/zero | tr '\\0' x; printf '\\nafter\\n\\377\\376abc\\n'";
    let (outcome, events) = run(&sh(script, dir.path()), None, GRACE).await;
    assert!(outcome.exit.success(), "{outcome:?}");
    let out = lines(&events, Stream::Stdout);
    assert_eq!(
        out.len(),
        3,
        "{:?}",
        out.iter().map(String::len).collect::<Vec<_>>()
    );
    assert_eq!(
        out[0],
        format!(
            "{}{}",
            "x".repeat(coco::process::output::MAX_LINE_BYTES),
            coco::process::output::CUT_MARKER
        )
    );
    assert_eq!(out[1], "after");
    assert_eq!(out[2], "\u{fffd}\u{fffd}abc");
}

#[tokio::test]
async fn exit_code_and_signal_are_reported() {
    let dir = TempDir::new().unwrap();
    let (outcome, _) = run(&sh("exit 3", dir.path()), None, GRACE).await;
    assert_eq!(
        outcome.exit,
        Exit {
            code: Some(3),
            signal: None
        }
    );
    assert!(!outcome.exit.success() && !outcome.timed_out && !outcome.forced);

    let (outcome, _) = run(&sh("kill -KILL $$", dir.path()), None, GRACE).await;
    assert_eq!(
        outcome.exit,
        Exit {
            code: None,
            signal: Some(9)
        }
    );
    assert_eq!(outcome.exit.to_string(), "killed by SIGKILL");
}

#[tokio::test]
async fn timeout_terminates_the_whole_group_including_a_grandchild() {
    let dir = TempDir::new().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let script = "sleep 30 & echo $! > grandchild.pid.tmp; mv grandchild.pid.tmp grandchild.pid; \
                  echo started; wait";
    let started = Instant::now();
    let (outcome, events) = run(
        &sh(script, dir.path()),
        Some(Duration::from_millis(500)),
        GRACE,
    )
    .await;
    assert!(outcome.timed_out && !outcome.cancelled, "{outcome:?}");
    assert!(!outcome.forced, "SIGTERM was enough: {outcome:?}");
    assert_eq!(outcome.exit.signal, Some(libc::SIGTERM), "{outcome:?}");
    assert_eq!(lines(&events, Stream::Stdout), ["started"]);
    let grandchild = read_pid_file(&pid_file).await;
    assert!(gone_within(grandchild, Duration::from_millis(500)).await);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn strays_left_after_a_normal_exit_are_terminated() {
    let dir = TempDir::new().unwrap();
    // The stray keeps stdout open: the run must still end, and take the stray with it.
    let script = "sleep 30 & echo $! > stray.pid.tmp; mv stray.pid.tmp stray.pid; echo bye";
    let started = Instant::now();
    let (outcome, events) = run(&sh(script, dir.path()), None, GRACE).await;
    assert!(outcome.exit.success() && !outcome.timed_out, "{outcome:?}");
    assert!(outcome.output_complete, "{outcome:?}");
    assert_eq!(lines(&events, Stream::Stdout), ["bye"]);
    let stray = read_pid_file(&dir.path().join("stray.pid")).await;
    assert!(gone_within(stray, Duration::from_millis(500)).await);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_child_ignoring_sigterm_is_killed_after_the_grace() {
    let dir = TempDir::new().unwrap();
    let mut child = spawn(&sh(
        "trap '' TERM; echo ready; while :; do sleep 0.05; done",
        dir.path(),
    ))
    .unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let mut capture = child.capture(tx);
    let first = rx.recv().await.expect("a line");
    assert_eq!(first.kind, LineKind::Output("ready".into()));

    let grace = Duration::from_millis(300);
    let started = Instant::now();
    let termination = child.terminate_group(grace).await.unwrap();
    let took = started.elapsed();
    assert!(termination.forced, "{termination:?}");
    assert_eq!(termination.exit.signal, Some(libc::SIGKILL));
    assert!(took >= grace && took < Duration::from_secs(2), "{took:?}");
    assert!(!child.group_alive().unwrap());
    capture.finished().await;
}

#[tokio::test]
async fn a_cooperative_child_ends_on_sigterm_without_waiting_for_the_grace() {
    let dir = TempDir::new().unwrap();
    let mut child = spawn(&Spec::new(["sleep", "30"], dir.path())).unwrap();
    assert!(child.signal_group(Signal::Cont).unwrap());
    assert_eq!(child.try_wait().unwrap(), None);
    let started = Instant::now();
    let termination = child.terminate_group(Duration::from_secs(5)).await.unwrap();
    assert!(!termination.forced, "{termination:?}");
    assert_eq!(termination.exit.signal, Some(libc::SIGTERM));
    assert!(started.elapsed() < Duration::from_secs(1));
    // The group is gone: signalling it is a no-op, not an error.
    assert!(!child.signal_group(Signal::Term).unwrap());
}

#[tokio::test]
async fn cancel_terminates_the_run() {
    let dir = TempDir::new().unwrap();
    let spec = Spec::new(["sleep", "30"], dir.path());
    let outcome = run_to_end(
        &spec,
        Some(Duration::from_secs(20)),
        GRACE,
        tokio::time::sleep(Duration::from_millis(200)),
        |_| {},
    )
    .await
    .unwrap();
    assert!(outcome.cancelled && !outcome.timed_out, "{outcome:?}");
    assert_eq!(outcome.exit.signal, Some(libc::SIGTERM));
}

#[tokio::test]
async fn dropping_a_running_child_kills_its_group() {
    let dir = TempDir::new().unwrap();
    let child = spawn(&Spec::new(["sleep", "30"], dir.path())).unwrap();
    let pid = child.pid();
    drop(child);
    assert!(gone_within(pid, Duration::from_secs(1)).await);
}

/// Set for the copy of this test binary that plays a worker in the death-signal test.
const DEATH_HELPER_PID_FILE: &str = "COCO_TEST_PROCESS_DEATH_HELPER_PID_FILE";

/// Not a test of its own: when run by `parent_death_kills_the_job`, spawns a job, writes its
/// pid and waits to be killed.
#[tokio::test]
async fn death_helper() {
    let Some(pid_file) = std::env::var_os(DEATH_HELPER_PID_FILE).map(PathBuf::from) else {
        return;
    };
    let dir = pid_file.parent().unwrap();
    let job = spawn(&Spec::new(["sleep", "30"], dir)).unwrap();
    let tmp = pid_file.with_extension("tmp");
    std::fs::write(&tmp, job.pid().to_string()).unwrap();
    std::fs::rename(&tmp, &pid_file).unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn parent_death_kills_the_job() {
    let dir = TempDir::new().unwrap();
    let pid_file = dir.path().join("job.pid");
    let this_binary = std::env::current_exe().unwrap();
    let spec = Spec::new(
        [
            this_binary.to_str().unwrap(),
            "--exact",
            "process::death_helper",
            "--test-threads=1",
        ],
        dir.path(),
    )
    .env(DEATH_HELPER_PID_FILE, pid_file.to_str().unwrap());
    let mut worker = spawn(&spec).unwrap();
    let job = read_pid_file(&pid_file).await;
    assert!(!gone(job), "the job runs while its worker lives");
    // The job has a process group of its own, so this reaches the worker only.
    assert!(worker.signal_group(Signal::Kill).unwrap());
    assert_eq!(worker.wait().await.unwrap().signal, Some(libc::SIGKILL));
    assert!(
        gone_within(job, Duration::from_secs(2)).await,
        "job {job} outlived its worker"
    );
}

/// `coco __guard M`, the process guard `coco worker` starts beside itself.
#[allow(clippy::disallowed_methods)] // runs the coco binary under test
fn guard_process(marker: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_coco"))
        .args(["__guard", marker])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// A child spawned under a guard carries `COCO_GUARD=<marker>`. The guard waits for end of
/// file on its stdin (its worker gone), then kills every process carrying its marker — what
/// they started included — and nothing else.
#[tokio::test]
async fn the_guard_ends_its_marked_processes_once_its_worker_is_gone() {
    let dir = TempDir::new().unwrap();
    let marker = format!("test-{}", ulid::Ulid::new());
    let mut marked = sh(
        "echo $COCO_GUARD > seen; sleep 30 & echo $! > inner; wait",
        dir.path(),
    );
    marked.leash = Leash::Guard(marker.clone());
    let child = spawn(&marked).unwrap();
    let inner = read_pid_file(&dir.path().join("inner")).await;
    let seen = std::fs::read_to_string(dir.path().join("seen")).unwrap();
    assert_eq!(seen.trim(), marker);
    let mut bystander = Spec::new(["sleep", "30"], dir.path());
    bystander.leash = Leash::Guard(format!("{marker}-other"));
    let bystander = spawn(&bystander).unwrap();

    let mut guard = guard_process(&marker);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !gone(child.pid()) && !gone(inner),
        "the guard does nothing while its stdin is open"
    );
    drop(guard.stdin.take());
    let status = tokio::task::spawn_blocking(move || guard.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(gone_within(child.pid(), GRACE).await, "the marked child");
    assert!(gone_within(inner, GRACE).await, "what it started");
    assert!(!gone(bystander.pid()), "another guard's process lives");
}

/// A grandchild that leaves the group and the session, clears its environment and ignores
/// SIGTERM: `pid file` once it runs; the leader waits ignoring SIGTERM too.
const ESCAPE: &str = r#"( setsid env -i /bin/sh -c 'trap "" TERM; echo $$ > gc.tmp; mv gc.tmp gc; while :; do sleep 1; done' & )
while [ ! -e gc ]; do sleep 0.02; done
trap "" TERM
echo up
while :; do sleep 1; done"#;

/// `ESCAPE` under `containment`, timed out: the tree is SIGKILLed after the grace, the
/// escaped grandchild included.
async fn timeout_reaches_an_escaped_grandchild(containment: coco::process::Containment) {
    let dir = TempDir::new().unwrap();
    let mut spec = sh(ESCAPE, dir.path());
    spec.contain = Some(containment.unit("test"));
    let (outcome, events) = run(
        &spec,
        Some(Duration::from_millis(300)),
        Duration::from_millis(300),
    )
    .await;
    assert!(outcome.timed_out && outcome.forced, "{outcome:?}");
    assert_eq!(outcome.exit.to_string(), "killed by SIGKILL");
    assert_eq!(lines(&events, Stream::Stdout), ["up"]);
    let grandchild = read_pid_file(&dir.path().join("gc")).await;
    assert!(
        gone_within(grandchild, Duration::from_secs(2)).await,
        "the escaped grandchild outlived its run"
    );
}

#[tokio::test]
async fn a_subreaper_holds_a_grandchild_that_left_group_session_and_environment() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_coco"));
    timeout_reaches_an_escaped_grandchild(coco::process::Containment::Subreaper(
        std::sync::Arc::new(exe),
    ))
    .await;
}

#[tokio::test]
async fn a_cgroup_holds_a_grandchild_that_left_group_session_and_environment() {
    let marker = format!("process-test-{}", ulid::Ulid::new());
    let group = match coco::process::cgroup::WorkerGroup::create(&marker) {
        Ok(group) => std::sync::Arc::new(group),
        Err(why) => {
            assert_eq!(
                std::env::var("COCO_TEST_SKIP_CGROUP").as_deref(),
                Ok("1"),
                "cgroups cannot contain runs on this host ({why}); set COCO_TEST_SKIP_CGROUP=1 \
                 to skip the cgroup tests"
            );
            eprintln!("SKIPPED: the cgroup containment test, since {why}");
            return;
        }
    };
    timeout_reaches_an_escaped_grandchild(coco::process::Containment::Cgroup(group.clone())).await;
    let units: Vec<_> = std::fs::read_dir(group.dir())
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .collect();
    assert!(units.is_empty(), "the run's cgroup is removed: {units:?}");
    std::fs::remove_dir(group.dir()).unwrap();
}
