//! Workers against both store backends, with real processes and short intervals: outcomes,
//! environment, retries, deferral, timeouts, max_parallel, shutdown, wake-up, and two workers
//! sharing one store running every run exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use coco::manifest::{Environment, HumanDuration, Job, Project};
use coco::process::{self, Spec};
use coco::queue::run::{Cancel, RunRecord};
use coco::queue::state::RunState;
use coco::queue::{self, NewRun, new_run};
use coco::store::{Cancelled, Enqueued, JobRecord, Paused, ProjectRecord, RunFilter, Store};
use coco::worker::load::Limits;
use coco::worker::run::RunSettings;
use coco::worker::{Summary, Worker, WorkerSettings};
use serde_json::json;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::pid_alive;

/// A project folder (`<tmp>/proj`) with jobs applied to the store.
struct Setup {
    dir: TempDir,
    store: Arc<dyn Store>,
}

fn job(command: &[&str]) -> Job {
    Job {
        max_parallel: 10,
        ..Job::with_command(command)
    }
}

/// `sh -c SCRIPT`.
fn sh(script: &str) -> Job {
    job(&["sh", "-c", script])
}

impl Setup {
    /// Apply project `proj` (workdir `work`, `bin` on PATH, env MODE=test) with `jobs`.
    async fn new(store: Arc<dyn Store>, jobs: &[(&str, Job)]) -> Setup {
        let dir = TempDir::new().unwrap();
        let root = dir.path().join("proj");
        std::fs::create_dir_all(root.join("work")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        let project = Project {
            name: "proj".into(),
            description: None,
            version: None,
            dir: root.clone(),
            environment: Environment {
                workdir: "work".into(),
                path: vec!["bin".into()],
                env: BTreeMap::from([("MODE".into(), "test".into())]),
            },
            jobs: jobs
                .iter()
                .map(|(n, j)| (n.to_string(), j.clone()))
                .collect(),
            apps: BTreeMap::new(),
        };
        let now = Utc::now();
        store
            .put_project(&ProjectRecord {
                name: "proj".into(),
                hash: "h".into(),
                manifest: serde_json::to_value(&project).unwrap(),
                source: root.join("coco.yaml").display().to_string(),
                active: true,
                applied_at: now,
            })
            .await
            .unwrap();
        for (name, job) in jobs {
            store
                .put_job(&JobRecord {
                    id: format!("proj.{name}"),
                    project: "proj".into(),
                    name: name.to_string(),
                    definition: serde_json::to_value(job).unwrap(),
                    hash: "h".into(),
                    active: true,
                    next_fire: None,
                    last_fire: None,
                    updated_at: now,
                })
                .await
                .unwrap();
        }
        Setup { dir, store }
    }

    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("proj")
    }

    /// Enqueue a run of `proj.NAME` with `args`; returns its id.
    async fn enqueue(&self, name: &str, args: serde_json::Value) -> String {
        self.enqueue_with(name, args, false).await
    }

    /// Enqueue a forced run (claimed even while paused or the host is busy).
    async fn enqueue_forced(&self, name: &str, args: serde_json::Value) -> String {
        self.enqueue_with(name, args, true).await
    }

    async fn enqueue_with(&self, name: &str, args: serde_json::Value, force: bool) -> String {
        let job_id = format!("proj.{name}");
        let record = self.store.get_job(&job_id).await.unwrap().unwrap();
        let job = record.job().unwrap();
        let new = NewRun {
            force,
            ..NewRun::new(&job_id, "proj", args, Utc::now())
        };
        match self.store.enqueue(&new_run(&job, new)).await.unwrap() {
            Enqueued::Queued(id) => id,
            other => panic!("not queued: {other:?}"),
        }
    }

    /// The pid a job wrote (with its newline) into `work/FILE`, waiting up to 10 s for it.
    async fn pid_written(&self, file: &str) -> i32 {
        let path = self.root().join("work").join(file);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(&path)
                && text.ends_with('\n')
            {
                return text.trim().parse().unwrap();
            }
            assert!(tokio::time::Instant::now() < deadline, "no pid in {path:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn run(&self, id: &str) -> RunRecord {
        self.store.get_run(id).await.unwrap().unwrap()
    }

    /// The kept output lines of run `id` as stored: `HH:MM:SS.mmm out|err|log TEXT`.
    async fn raw_output(&self, id: &str) -> String {
        self.store.get_output(id).await.unwrap().unwrap_or_default()
    }

    /// The kept output of run `id`, its lines without time and stream.
    async fn output(&self, id: &str) -> String {
        self.raw_output(id)
            .await
            .lines()
            .map(|line| {
                let (time, rest) = line.split_once(' ').unwrap_or(("", line));
                assert!(is_time_of_day(time), "{time:?} in {line:?}");
                let (_stream, text) = rest.split_once(' ').unwrap_or((rest, ""));
                format!("{text}\n")
            })
            .collect()
    }

    /// Wait until every run in `ids` is in one of `states` (panics after 20 s).
    async fn wait_for(&self, ids: &[String], states: &[RunState]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut all = true;
            for id in ids {
                if !states.contains(&self.run(id).await.state) {
                    all = false;
                    break;
                }
            }
            if all {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let mut seen = Vec::new();
                for id in ids {
                    seen.push(self.run(id).await.state);
                }
                panic!("runs did not reach {states:?}: {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Wait up to 20 s for process `pid` to be gone.
async fn wait_gone(pid: i32, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while pid_alive(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {pid} is still alive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `HH:MM:SS.mmm`.
fn is_time_of_day(text: &str) -> bool {
    chrono::NaiveTime::parse_from_str(text, "%H:%M:%S%.3f").is_ok() && text.len() == 12
}

/// Fast settings for tests.
fn settings(slots: usize) -> WorkerSettings {
    WorkerSettings {
        slots,
        heartbeat_every: Duration::from_millis(200),
        zombie_every: Duration::from_secs(1),
        zombie_after: Duration::from_secs(30),
        max_lost: 3,
        poll_min: Duration::from_millis(5),
        poll_max: Duration::from_millis(100),
        control_every: Duration::from_millis(100),
        limits: Limits::default(),
        shutdown_grace: Duration::from_millis(200),
        wake_dir: None,
        run: RunSettings {
            grace: Duration::from_millis(200),
            report_every: Duration::from_millis(50),
            output_every: Duration::from_millis(100),
            tail_bytes: 64 * 1024,
            guard: None,
            fence: None,
        },
        kind: coco::store::MemberKind::Worker,
        lease: Duration::from_secs(10),
    }
}

/// `settings` with every poll and timer an hour long: within a test, the worker then looks
/// at the queue again only when a run of its own ends (or it is woken).
fn without_ticks(settings: WorkerSettings) -> WorkerSettings {
    let hour = Duration::from_secs(3600);
    WorkerSettings {
        poll_min: hour,
        poll_max: hour,
        heartbeat_every: hour,
        zombie_every: hour,
        control_every: hour,
        ..settings
    }
}

/// A worker running in a task until [`Running::stop`].
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Summary>,
}

impl Running {
    fn start(name: &str, store: &Arc<dyn Store>, settings: WorkerSettings) -> Running {
        let (stop, stopped) = oneshot::channel::<()>();
        let worker = Worker::new(name, Arc::clone(store), settings);
        let task = tokio::spawn(worker.run(async {
            let _ = stopped.await;
        }));
        Running { stop, task }
    }

    async fn stop(self) -> Summary {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the worker stops in time")
            .expect("the worker task does not panic")
    }
}

const DONE: &[RunState] = &[RunState::Complete, RunState::Error, RunState::Killed];

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub async fn exit_0_completes_with_its_output_kept(store: Arc<dyn Store>) {
    let setup = Setup::new(
        store,
        &[(
            "ok",
            sh("echo hello; echo '::progress:: 0.5 half way'; echo '::log:: WARN careful'; echo oops >&2"),
        )],
    )
    .await;
    let id = setup.enqueue("ok", json!({})).await;
    let worker = Running::start("w1", &setup.store, settings(2));
    setup.wait_for(std::slice::from_ref(&id), DONE).await;
    let summary = worker.stop().await;
    assert_eq!((summary.claimed, summary.finished), (1, 1));
    let run = setup.run(&id).await;
    assert_eq!(run.state, RunState::Complete);
    assert_eq!((run.attempt, run.exit_code), (1, Some(0)));
    assert_eq!(run.worker.as_deref(), Some("w1"));
    assert!(run.pid.is_some_and(|pid| pid > 1));
    assert_eq!(run.progress, Some(0.5));
    assert_eq!(run.progress_message.as_deref(), Some("half way"));
    let output = setup.raw_output(&id).await;
    let tagged: Vec<&str> = output.lines().map(|l| &l[13..]).collect();
    for line in ["out hello", "log WARN careful", "err oops"] {
        assert!(tagged.contains(&line), "{line:?} in {output:?}");
    }
    assert!(!output.contains("::progress::"), "{output}");
    assert_eq!(setup.output(&id).await.lines().count(), 3, "{output}");
}

pub async fn env_cwd_path_and_args_reach_the_process(store: Arc<dyn Store>) {
    let mut show = job(&["show", "{{args.n}}", "{{args.who}} & <co>", "{{attempt}}"]);
    show.env = BTreeMap::from([("JOBVAR".into(), "j".into())]);
    show.args = BTreeMap::from([("who".into(), json!("default"))]);
    let setup = Setup::new(store, &[("show", show)]).await;
    executable(
        &setup.root().join("bin/show"),
        "#!/bin/sh\nfor a in \"$@\"; do echo \"arg=$a\"; done\necho \"pwd=$(pwd)\"\n\
         echo \"mode=$MODE jobvar=$JOBVAR job=$COCO_JOB project=$COCO_PROJECT attempt=$COCO_ATTEMPT\"\n\
         echo \"run=$COCO_RUN_ID\"\necho \"args=$COCO_ARGS\"\necho \"path=$PATH\"\n",
    );
    let id = setup.enqueue("show", json!({"n": 42})).await;
    let worker = Running::start("w1", &setup.store, settings(1));
    setup.wait_for(std::slice::from_ref(&id), DONE).await;
    worker.stop().await;
    let run = setup.run(&id).await;
    let output = setup.output(&id).await;
    assert_eq!(run.state, RunState::Complete, "{output}");
    let lines: Vec<&str> = output.lines().collect();
    let root = setup.root();
    assert_eq!(
        &lines[..4],
        [
            "arg=42",
            "arg=default & <co>",
            "arg=1",
            &format!("pwd={}", root.join("work").display()),
        ]
    );
    assert_eq!(
        lines[4],
        "mode=test jobvar=j job=proj.show project=proj attempt=1"
    );
    assert_eq!(lines[5], format!("run={id}"));
    let args: serde_json::Value =
        serde_json::from_str(lines[6].strip_prefix("args=").unwrap()).unwrap();
    assert_eq!(args, json!({"n": 42, "who": "default"}));
    assert!(
        lines[7].starts_with(&format!("path={}:", root.join("bin").display())),
        "{}",
        lines[7]
    );
}

pub async fn a_failure_is_retried_then_ends_in_error(store: Arc<dyn Store>) {
    let mut fail = sh("echo try $COCO_ATTEMPT; exit 1");
    fail.attempts = 2;
    let setup = Setup::new(store, &[("fail", fail)]).await;
    let id = setup.enqueue("fail", json!({})).await;
    let worker = Running::start("w1", &setup.store, settings(1));
    setup.wait_for(std::slice::from_ref(&id), DONE).await;
    let summary = worker.stop().await;
    assert_eq!(summary.claimed, 2);
    let run = setup.run(&id).await;
    assert_eq!(run.state, RunState::Error);
    assert_eq!((run.attempt, run.exit_code), (2, Some(1)));
    assert_eq!(run.reason_text().as_deref(), Some("exit"));
    let states: Vec<RunState> = run.history.iter().map(|c| c.state).collect();
    assert_eq!(
        states,
        [
            RunState::Pending,
            RunState::Running,
            RunState::Failed,
            RunState::Running,
            RunState::Error
        ]
    );
    assert_eq!(
        setup.output(&id).await,
        "try 2\n",
        "the latest try's output"
    );
}

pub async fn exit_75_defers_without_spending_an_attempt(store: Arc<dyn Store>) {
    let mut later = sh("exit 75");
    later.defer_delay = HumanDuration(Duration::from_secs(3600));
    let setup = Setup::new(store, &[("later", later)]).await;
    let id = setup.enqueue("later", json!({})).await;
    let worker = Running::start("w1", &setup.store, settings(1));
    setup
        .wait_for(std::slice::from_ref(&id), &[RunState::Deferred])
        .await;
    worker.stop().await;
    let run = setup.run(&id).await;
    assert_eq!((run.attempt, run.exit_code), (0, Some(75)));
    assert!(run.not_before > Utc::now() + chrono::TimeDelta::minutes(59));
}

pub async fn a_timeout_kills_the_process_group(store: Arc<dyn Store>) {
    let mut slow = sh("sleep 30 & echo $! > child.pid; echo started; wait");
    slow.timeout = Some(HumanDuration(Duration::from_millis(300)));
    let setup = Setup::new(store, &[("slow", slow)]).await;
    let id = setup.enqueue("slow", json!({})).await;
    let worker = Running::start("w1", &setup.store, settings(1));
    setup.wait_for(std::slice::from_ref(&id), DONE).await;
    worker.stop().await;
    let run = setup.run(&id).await;
    assert_eq!(run.state, RunState::Error);
    assert_eq!(run.reason_text().as_deref(), Some("timeout"));
    assert_eq!(setup.output(&id).await, "started\n");
    let pid = setup.pid_written("child.pid").await;
    assert!(!pid_alive(pid), "the group's background sleep is gone");
}

pub async fn max_parallel_is_honoured(store: Arc<dyn Store>) {
    let mut one = sh("echo start >> ../log; sleep 0.2; echo end >> ../log");
    one.max_parallel = 1;
    let setup = Setup::new(store, &[("one", one)]).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(setup.enqueue("one", json!({ "n": n })).await);
    }
    let worker = Running::start("w1", &setup.store, settings(2));
    setup.wait_for(&ids, DONE).await;
    worker.stop().await;
    let log = std::fs::read_to_string(setup.root().join("log")).unwrap();
    assert_eq!(log, "start\nend\n".repeat(3), "never two at once");
}

pub async fn two_workers_run_each_run_exactly_once(store: Arc<dyn Store>) {
    let mut append = sh("echo $COCO_RUN_ID >> ../ran");
    append.max_parallel = 20;
    let setup = Setup::new(store, &[("append", append)]).await;
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(setup.enqueue("append", json!({ "n": n })).await);
    }
    let a = Running::start("wa", &setup.store, settings(3));
    let b = Running::start("wb", &setup.store, settings(3));
    setup.wait_for(&ids, DONE).await;
    let (a, b) = (a.stop().await, b.stop().await);
    assert_eq!(a.claimed + b.claimed, 20, "{a:?} {b:?}");
    let ran = std::fs::read_to_string(setup.root().join("ran")).unwrap();
    let lines: Vec<&str> = ran.lines().collect();
    assert_eq!(lines.len(), 20, "{ran}");
    let ran: BTreeSet<&str> = lines.into_iter().collect();
    let expected: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(ran, expected);
    for id in &ids {
        assert_eq!(setup.run(id).await.state, RunState::Complete);
    }
}

/// No fixed polling tick: with 2 slots, short runs go through at process-spawn speed.
pub async fn short_runs_are_not_held_back_by_polling(store: Arc<dyn Store>) {
    let mut quick = job(&["true"]);
    quick.max_parallel = 2;
    let setup = Setup::new(store, &[("quick", quick)]).await;
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(setup.enqueue("quick", json!({ "n": n })).await);
    }
    // Nothing but a freed slot can make this worker claim again: no poll, tick or wake-up
    // comes within the test's patience (an hour each). Had it waited for one, the runs
    // beyond the first two would never start and `wait_for` would give up.
    let worker = Running::start("w1", &setup.store, without_ticks(settings(2)));
    setup.wait_for(&ids, DONE).await;
    let summary = worker.stop().await;
    assert_eq!((summary.claimed, summary.finished), (40, 40));
}

pub async fn shutdown_hands_running_runs_back(store: Arc<dyn Store>) {
    let long = sh("echo $$ > pid; sleep 30");
    let setup = Setup::new(store, &[("long", long)]).await;
    let id = setup.enqueue("long", json!({})).await;
    let worker = Running::start("w1", &setup.store, settings(1));
    setup
        .wait_for(std::slice::from_ref(&id), &[RunState::Running])
        .await;
    let pid = setup.pid_written("pid").await;
    // The pid is reported while it runs (within a report interval).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while setup.run(&id).await.pid != Some(pid as u32) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pid is reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let summary = worker.stop().await;
    assert_eq!(summary.handed_back, 1, "{summary:?}");
    let run = setup.run(&id).await;
    assert_eq!(run.state, RunState::Pending, "runs again");
    assert_eq!(run.attempt, 0, "the attempt is not spent");
    assert_eq!(run.reason_text().as_deref(), Some("shutdown"));
    assert!(!pid_alive(pid));
}

pub async fn a_run_taken_back_is_stopped_and_not_finished(store: Arc<dyn Store>) {
    let mut long = sh("echo $$ > pid; sleep 30");
    long.attempts = 3;
    let setup = Setup::new(store, &[("long", long)]).await;
    let id = setup.enqueue("long", json!({})).await;
    let worker = Running::start("w1", &setup.store, settings(1));
    let pid = setup.pid_written("pid").await;
    // Another reaper, an hour from now, finds the run a zombie.
    let taken = setup
        .store
        .take_back_zombies(
            Utc::now() + chrono::TimeDelta::hours(1),
            Duration::from_secs(1),
            3,
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    // The next heartbeat (200 ms) tells the worker; its process group is terminated.
    wait_gone(pid, "the process was stopped").await;
    let summary = worker.stop().await;
    assert_eq!(
        (summary.finished, summary.handed_back),
        (0, 1),
        "{summary:?}"
    );
    let run = setup.run(&id).await;
    assert_eq!(
        run.state,
        RunState::Pending,
        "tried again (an hour from now)"
    );
    assert_eq!(
        (run.attempt, run.lost, run.reason_text().as_deref()),
        (0, 1, Some("zombie")),
        "a lost worker spends no attempt"
    );
}

/// What a try started lives on after its worker was lost (the death signal reaches only the
/// job's own process, and a guard may be gone too): the worker that takes the run back kills
/// every process carrying the run's `COCO_RUN_ID` before the retry starts.
pub async fn a_take_back_sweeps_what_the_lost_try_started(store: Arc<dyn Store>) {
    let setup = Setup::new(store, &[("job", job(&["true"]))]).await;
    let id = setup.enqueue("job", json!({})).await;
    // The lost worker's try: claimed by `ghost`, which never heartbeats again; its process
    // started a grandchild, then died alone.
    let run = setup
        .store
        .claim_run("ghost", Utc::now(), &Paused::default())
        .await
        .unwrap()
        .expect("the run is claimed");
    let lost_try = Spec::new(
        ["sh", "-c", "sleep 30 & echo $! > inner; wait"],
        setup.root().join("work"),
    )
    .env("COCO_RUN_ID", &run.id);
    let mut leader = process::spawn(&lost_try).unwrap();
    let inner = setup.pid_written("inner").await;
    // SAFETY: kill(2) on the leader we spawned, which has not been reaped.
    assert_eq!(unsafe { libc::kill(leader.pid() as i32, libc::SIGKILL) }, 0);
    leader.wait().await.unwrap();
    assert!(pid_alive(inner), "the grandchild outlives its leader");

    let rescuer = Running::start(
        "rescuer",
        &setup.store,
        WorkerSettings {
            zombie_after: Duration::from_millis(300),
            zombie_every: Duration::from_millis(100),
            ..settings(1)
        },
    );
    wait_gone(inner, "the take-back swept the lost try's grandchild").await;
    setup.wait_for(std::slice::from_ref(&id), DONE).await;
    rescuer.stop().await;
    let run = setup.run(&id).await;
    assert_eq!((run.state, run.attempt), (RunState::Complete, 1), "{run:?}");
    assert_eq!(run.worker.as_deref(), Some("rescuer"));
}

pub async fn a_template_error_fails_the_run_with_its_cause(store: Arc<dyn Store>) {
    let setup = Setup::new(store, &[("bad", job(&["echo", "{{args.missing}}"]))]).await;
    let id = setup.enqueue("bad", json!({})).await;
    let worker = Running::start("w1", &setup.store, settings(1));
    setup.wait_for(std::slice::from_ref(&id), DONE).await;
    worker.stop().await;
    let run = setup.run(&id).await;
    assert_eq!(run.state, RunState::Error);
    assert_eq!(run.reason_text().as_deref(), Some("setup"));
    let note = run.history.last().unwrap().note.clone().unwrap_or_default();
    assert!(note.contains("{{args.missing}}"), "{note}");
}

pub async fn an_enqueue_wakes_an_idle_worker(store: Arc<dyn Store>) {
    let setup = Setup::new(store, &[("ok", sh("true"))]).await;
    let state_dir = setup.dir.path().join("state");
    // Only the wake-up can make it look again: no poll or tick comes within the test's
    // patience (an hour each); without it `wait_for` gives up.
    let no_ticks = WorkerSettings {
        wake_dir: Some(coco::wake::dir(&state_dir)),
        ..without_ticks(settings(1))
    };
    let worker = Running::start("w1", &setup.store, no_ticks);
    // Let it find the queue empty and go to sleep.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = setup.enqueue("ok", json!({})).await;
    assert_eq!(queue::wake(&state_dir), 1);
    setup.wait_for(std::slice::from_ref(&id), DONE).await;
    worker.stop().await;
    assert_eq!(setup.run(&id).await.state, RunState::Complete);
}

/// One `#[tokio::test]` per case per backend.
pub async fn a_busy_host_starts_only_forced_runs(store: Arc<dyn Store>) {
    let setup = Setup::new(store, &[("ok", sh("true"))]).await;
    let normal = setup.enqueue("ok", json!({"n": 1})).await;
    let forced = setup.enqueue_forced("ok", json!({"n": 2})).await;
    let mut busy = settings(2);
    busy.limits = Limits {
        max_cpu: None,
        min_free_ram_mib: Some(u64::MAX / 2),
    };
    let worker = Running::start("w1", &setup.store, busy);
    setup.wait_for(std::slice::from_ref(&forced), DONE).await;
    // The older normal run would have been claimed first, had the limit not held it back.
    assert_eq!(setup.run(&normal).await.state, RunState::Pending);
    let members = setup.store.list_members().await.unwrap();
    let holding = members[0].holding.clone().unwrap_or_default();
    assert!(holding.contains("worker.min_free_ram"), "{holding}");
    let summary = worker.stop().await;
    assert_eq!(summary.claimed, 1);
}

pub async fn pauses_hold_back_unforced_runs_until_resumed(store: Arc<dyn Store>) {
    let setup = Setup::new(store, &[("ok", sh("true"))]).await;
    setup.store.set_paused(Some("proj"), true).await.unwrap();
    let held = setup.enqueue("ok", json!({"n": 1})).await;
    let forced = setup.enqueue_forced("ok", json!({"n": 2})).await;
    let worker = Running::start("w1", &setup.store, settings(2));
    setup.wait_for(std::slice::from_ref(&forced), DONE).await;
    assert_eq!(setup.run(&held).await.state, RunState::Pending, "paused");
    // Resumed: claimed once the worker reads the switches again (control_every).
    setup.store.set_paused(Some("proj"), false).await.unwrap();
    setup.wait_for(std::slice::from_ref(&held), DONE).await;
    worker.stop().await;
}

pub async fn a_halt_stops_workers_started_before_it(store: Arc<dyn Store>) {
    let setup = Setup::new(store, &[("ok", sh("true"))]).await;
    let old = Running::start("old", &setup.store, settings(1));
    let id = setup.enqueue("ok", json!({})).await;
    setup.wait_for(std::slice::from_ref(&id), DONE).await;
    assert_eq!(setup.store.list_members().await.unwrap().len(), 1, "listed");
    setup.store.halt(Utc::now()).await.unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(20), old.task)
        .await
        .expect("the worker stops by itself")
        .unwrap();
    assert!(summary.halted, "{summary:?}");
    assert!(
        setup.store.list_members().await.unwrap().is_empty(),
        "forgotten"
    );
    let young = Running::start("young", &setup.store, settings(1));
    let id = setup.enqueue("ok", json!({"n": 2})).await;
    setup.wait_for(std::slice::from_ref(&id), DONE).await;
    let summary = young.stop().await;
    assert!(!summary.halted, "started after the halt");
    assert_eq!(summary.finished, 1);
}

pub async fn a_kill_ends_the_process_group_at_the_next_heartbeat(store: Arc<dyn Store>) {
    let setup = Setup::new(store, &[("long", sh("echo $$ > pid; sleep 30"))]).await;
    let id = setup.enqueue("long", json!({})).await;
    let worker = Running::start("w1", &setup.store, settings(1));
    setup
        .wait_for(std::slice::from_ref(&id), &[RunState::Running])
        .await;
    let pid = setup.pid_written("pid").await;
    match setup
        .store
        .cancel_run(&id, Cancel::Kill, Utc::now())
        .await
        .unwrap()
    {
        Cancelled::Done(run) => assert_eq!(run.state, RunState::Killed),
        other => panic!("{other:?}"),
    }
    wait_gone(pid, "the killed run's process").await;
    let summary = worker.stop().await;
    assert_eq!(
        (summary.finished, summary.handed_back),
        (0, 1),
        "{summary:?}"
    );
    let run = setup.run(&id).await;
    assert_eq!(
        run.state,
        RunState::Killed,
        "the worker did not overwrite the kill"
    );
}

pub async fn then_enqueues_followers_with_their_parent(store: Arc<dyn Store>) {
    let mut first = sh("echo first");
    first.then = vec!["second".into(), "proj.third".into(), "ghost".into()];
    let setup = Setup::new(
        store,
        &[
            ("first", first),
            ("second", sh("echo $COCO_PARENT_RUN > parent.txt")),
            ("third", sh("true")),
        ],
    )
    .await;
    let id = setup.enqueue("first", json!({})).await;
    let worker = Running::start("w1", &setup.store, settings(2));
    setup.wait_for(std::slice::from_ref(&id), DONE).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let followers = loop {
        let runs = setup.store.list_runs(&RunFilter::default()).await.unwrap();
        let followers: Vec<RunRecord> = runs.into_iter().filter(|r| r.id != id).collect();
        if followers.len() == 2 && followers.iter().all(|r| r.state == RunState::Complete) {
            break followers;
        }
        assert!(tokio::time::Instant::now() < deadline, "{followers:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    worker.stop().await;
    let mut jobs: Vec<&str> = followers.iter().map(|r| r.job.as_str()).collect();
    jobs.sort();
    assert_eq!(
        jobs,
        ["proj.second", "proj.third"],
        "the unknown job is skipped"
    );
    assert!(
        followers
            .iter()
            .all(|r| r.parent.as_deref() == Some(id.as_str()))
    );
    let written = std::fs::read_to_string(setup.root().join("work/parent.txt")).unwrap();
    assert_eq!(written.trim(), id);
}

pub async fn output_beyond_the_cap_keeps_its_tail(store: Arc<dyn Store>) {
    let setup = Setup::new(
        store,
        &[(
            "chatty",
            sh("i=0; while [ $i -lt 1000 ]; do echo \"line $i\"; i=$((i+1)); done"),
        )],
    )
    .await;
    let id = setup.enqueue("chatty", json!({})).await;
    let mut capped = settings(1);
    capped.run.tail_bytes = 4096;
    let worker = Running::start("w1", &setup.store, capped);
    setup.wait_for(std::slice::from_ref(&id), DONE).await;
    worker.stop().await;
    let output = setup.raw_output(&id).await;
    let mut lines = output.lines();
    let header = lines.next().unwrap();
    let kept: Vec<&str> = lines.collect();
    let dropped: usize = header
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(" earlier lines not kept]"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a header saying what was dropped: {header:?}"));
    assert_eq!(dropped + kept.len(), 1000, "every line kept or counted");
    assert!(
        kept.last().unwrap().ends_with(" out line 999"),
        "the newest lines"
    );
    assert!(
        output.len() - header.len() - 1 <= 4096,
        "{} bytes",
        output.len()
    );
}

macro_rules! worker_tests {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let fixture = crate::store::embedded_store().await;
                    super::$case(std::sync::Arc::new(fixture.store.clone())).await;
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(fixture) = crate::store::mongo_store().await {
                        super::$case(std::sync::Arc::new(fixture.store.clone())).await;
                    }
                }
            )*
        }
    };
}

worker_tests!(
    exit_0_completes_with_its_output_kept,
    env_cwd_path_and_args_reach_the_process,
    a_failure_is_retried_then_ends_in_error,
    exit_75_defers_without_spending_an_attempt,
    a_timeout_kills_the_process_group,
    max_parallel_is_honoured,
    two_workers_run_each_run_exactly_once,
    short_runs_are_not_held_back_by_polling,
    shutdown_hands_running_runs_back,
    a_run_taken_back_is_stopped_and_not_finished,
    a_take_back_sweeps_what_the_lost_try_started,
    a_template_error_fails_the_run_with_its_cause,
    an_enqueue_wakes_an_idle_worker,
    a_busy_host_starts_only_forced_runs,
    pauses_hold_back_unforced_runs_until_resumed,
    a_halt_stops_workers_started_before_it,
    a_kill_ends_the_process_group_at_the_next_heartbeat,
    then_enqueues_followers_with_their_parent,
    output_beyond_the_cap_keeps_its_tail,
);
