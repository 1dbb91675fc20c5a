//! What `coco enqueue` (and `coco run`) warn about on stderr, through the binary: an
//! `--arg` the job's command never renders, and a run that no worker or daemon is alive to
//! run (with `--wait` it still waits, and finishes once a worker starts).

use std::time::{Duration, Instant};

use crate::support::{Sandbox, stderr, stdout};

const GREET: &str = "\
jobs:
  hello:
    command: [echo, 'hello {{args.name}}']
    args: {name: world}
  env_only:
    command: [sh, -c, 'echo \"$COCO_ARGS\"']
";

const NO_WORKER: &str = "no worker is alive: start `coco worker` or `coco daemon`";

#[test]
fn an_argument_the_command_never_renders_is_warned_about() {
    let sandbox = Sandbox::new();
    sandbox.project("greet", GREET);
    sandbox.apply();

    let enqueue = sandbox.coco(&["enqueue", "greet.hello", "--arg", "nosuch=1"]);
    assert_eq!(enqueue.status.code(), Some(0), "{}", stderr(&enqueue));
    assert!(
        stderr(&enqueue).contains(
            "coco: warning: argument `nosuch` not used by the command of greet.hello \
             (it renders `{{args.name}}`); it is still in COCO_ARGS"
        ),
        "{}",
        stderr(&enqueue)
    );
    assert_eq!(stdout(&enqueue).trim().len(), 26, "the run is enqueued");

    let used = sandbox.coco(&["enqueue", "greet.hello", "--arg", "name=ada"]);
    assert!(!stderr(&used).contains("not used"), "{}", stderr(&used));
    // A command that renders no argument may read them all from COCO_ARGS.
    let env_only = sandbox.coco(&["enqueue", "greet.env_only", "--arg", "nosuch=1"]);
    assert_eq!(env_only.status.code(), Some(0));
    assert!(
        !stderr(&env_only).contains("not used"),
        "{}",
        stderr(&env_only)
    );

    let run = sandbox.coco(&["run", "greet.hello", "--arg", "nosuch=1"]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("argument `nosuch` not used"),
        "{run:?}"
    );
    assert_eq!(stdout(&run), "hello world\n");
}

#[test]
fn enqueue_says_when_no_worker_is_alive() {
    let sandbox = Sandbox::new();
    sandbox.project("greet", GREET);
    sandbox.apply();

    let alone = sandbox.coco(&["enqueue", "greet.hello", "--arg", "name=a"]);
    assert_eq!(alone.status.code(), Some(0), "{}", stderr(&alone));
    assert!(stderr(&alone).contains(NO_WORKER), "{}", stderr(&alone));

    // A daemon without a worker runs nothing: still no worker alive.
    {
        let _daemon = sandbox.spawn(&["daemon", "--no-worker", "--no-scheduler", "--no-apps"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while stdout(&sandbox.coco(&["alive", "--json"])).trim() == "[]" {
            assert!(Instant::now() < deadline, "the daemon never showed up");
            std::thread::sleep(Duration::from_millis(50));
        }
        let idle = sandbox.coco(&["enqueue", "greet.hello", "--arg", "name=d"]);
        assert_eq!(idle.status.code(), Some(0), "{}", stderr(&idle));
        assert!(stderr(&idle).contains(NO_WORKER), "{}", stderr(&idle));
    }

    // --wait: the warning comes at once, and it keeps waiting until a worker runs the run.
    let mut waiting = sandbox.spawn(&["enqueue", "greet.hello", "--arg", "name=b", "--wait"]);
    waiting.wait_for_log(NO_WORKER);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        waiting.child.try_wait().unwrap().is_none(),
        "still waiting: {}",
        waiting.log()
    );
    let _worker = sandbox.spawn(&["worker", "--name", "w1"]);
    assert_eq!(waiting.wait_exit(), Some(0), "{}", waiting.log());

    // With a worker alive: no warning.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stdout(&sandbox.coco(&["alive", "--json"])).trim() == "[]" {
        assert!(Instant::now() < deadline, "the worker never showed up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let served = sandbox.coco(&["enqueue", "greet.hello", "--arg", "name=c"]);
    assert_eq!(served.status.code(), Some(0), "{}", stderr(&served));
    assert!(
        !stderr(&served).contains("no worker"),
        "{}",
        stderr(&served)
    );
}
