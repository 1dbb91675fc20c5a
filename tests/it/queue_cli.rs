//! The queue verbs of the `coco` binary end to end: enqueue, list, detail, run, and core4's
//! `--verb` spellings, against a temporary home and store.

use crate::support::{Sandbox, stderr, stdout};

const SHOP: &str = "\
jobs:
  export:
    command: [echo, '{{args.day}}']
    args:
      day: monday
      n: 1
    attempts: 3
    priority: 2
  import:
    command: [\"true\"]
";

#[test]
fn enqueue_list_and_detail() {
    let sandbox = Sandbox::new();
    sandbox.project("shop", SHOP);
    sandbox.apply();
    queue_verbs(&sandbox);
}

/// The same steps on whichever store the sandbox uses.
fn queue_verbs(sandbox: &Sandbox) {
    let empty = sandbox.coco(&["list"]);
    assert_eq!(empty.status.code(), Some(0), "{}", stderr(&empty));
    assert_eq!(stdout(&empty), "No runs.\n");

    let id = sandbox.enqueue(&["shop.export", "--arg", "n=3"]);

    let list = sandbox.coco(&["list"]);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    let text = stdout(&list);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID", "JOB", "STATE", "PROGRESS", "ATTEMPTS", "AGE", "RUNTIME", "WORKER"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row[..5],
        [id.as_str(), "shop.export", "pending", "-", "0/3"]
    );
    assert!(row[5].ends_with("ms") || row[5].ends_with('s'), "{text}");
    assert_eq!(row[6..], ["-", "-"]);

    let runs = sandbox.list_json(&[]);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["id"], id.as_str());
    assert_eq!(runs[0]["state"], "pending");
    assert_eq!(runs[0]["priority"], 2);
    assert_eq!(
        runs[0]["args"],
        serde_json::json!({"day": "monday", "n": 3})
    );
    assert_eq!(sandbox.list_json(&["running"]).len(), 0);
    assert_eq!(sandbox.list_json(&["pending"]).len(), 1);
    assert_eq!(sandbox.list_json(&["--project", "other"]).len(), 0);
    assert_eq!(sandbox.list_json(&["--project", "shop"]).len(), 1);
    let bad_state = sandbox.coco(&["list", "done"]);
    assert_eq!(bad_state.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&bad_state).contains("unknown state `done`"),
        "{}",
        stderr(&bad_state)
    );

    let short = sandbox.coco(&["worker", "--zombie-after", "5s"]);
    assert_eq!(short.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&short).contains("must be at least 10s"),
        "{}",
        stderr(&short)
    );
    let long = sandbox.coco(&["worker", "--zombie-after", "2days"]);
    assert_eq!(long.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&long).contains("must be at most 1day"),
        "{}",
        stderr(&long)
    );

    let detail = sandbox.coco(&["detail", &id]);
    assert_eq!(detail.status.code(), Some(0), "{}", stderr(&detail));
    let text = stdout(&detail);
    for expected in [
        format!("id:           {id}\n"),
        "job:          shop.export\n".to_owned(),
        "state:        pending\n".to_owned(),
        "args:         {\"day\":\"monday\",\"n\":3}\n".to_owned(),
        "attempt:      0/3\n".to_owned(),
        "history:\n".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected:?} in\n{text}");
    }
    assert!(text.trim_end().ends_with("pending"), "{text}");
    let json = sandbox.coco(&["detail", &id, "--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let json: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(json["run"]["id"], id.as_str());
    assert_eq!(json["run"]["history"][0]["state"], "pending");
    assert!(json["output"].is_null(), "no try, no output: {json}");

    let missing = sandbox.coco(&["detail", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no run with id"),
        "{}",
        stderr(&missing)
    );

    // The same job and arguments again: refused, naming the pending run. The arguments
    // are the same once the defaults are merged in, in any order.
    for args in [
        vec!["enqueue", "shop.export", "--arg", "n=3"],
        vec![
            "enqueue",
            "shop.export",
            "--arg",
            "day=monday",
            "--arg",
            "n=3",
        ],
    ] {
        let duplicate = sandbox.coco(&args);
        assert_eq!(duplicate.status.code(), Some(1), "{}", stdout(&duplicate));
        assert_eq!(stdout(&duplicate), "");
        let err = stderr(&duplicate);
        assert!(err.contains(&format!("run {id} (pending)")), "{err}");
    }
    // Other arguments are other work.
    let other = sandbox.enqueue(&["shop.export", "--arg", "n=\"3\"", "--priority", "-1"]);
    assert_ne!(other, id);
    let runs = sandbox.list_json(&["--limit", "1"]);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["id"], other.as_str(), "newest first");
    assert_eq!(runs[0]["args"]["n"], "3");
    assert_eq!(runs[0]["priority"], -1);
}

#[test]
fn unknown_jobs_are_refused_with_suggestions() {
    let sandbox = Sandbox::new();
    let nothing = sandbox.coco(&["enqueue", "shop.export"]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        stderr(&nothing).contains("no jobs are applied yet"),
        "{}",
        stderr(&nothing)
    );

    sandbox.project("shop", SHOP);
    sandbox.apply();
    let typo = sandbox.coco(&["enqueue", "shop.exprot"]);
    assert_eq!(typo.status.code(), Some(1));
    let err = stderr(&typo);
    assert!(err.contains("unknown job `shop.exprot`"), "{err}");
    assert!(err.contains("did you mean shop.export"), "{err}");
    assert_eq!(sandbox.list_json(&[]).len(), 0, "nothing enqueued");

    let no_project = sandbox.coco(&["enqueue", "export"]);
    assert_eq!(no_project.status.code(), Some(1));
    assert!(
        stderr(&no_project).contains("did you mean shop.export"),
        "{}",
        stderr(&no_project)
    );

    // Removed from the manifest: inactive, not enqueueable.
    sandbox.project("shop", "jobs:\n  import:\n    command: [\"true\"]\n");
    sandbox.apply();
    let removed = sandbox.coco(&["enqueue", "shop.export"]);
    assert_eq!(removed.status.code(), Some(1));
    assert!(
        stderr(&removed).contains("removed from its manifest"),
        "{}",
        stderr(&removed)
    );

    let bad_arg = sandbox.coco(&["enqueue", "shop.import", "--arg", "novalue"]);
    assert_eq!(bad_arg.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&bad_arg).contains("KEY=VALUE"),
        "{}",
        stderr(&bad_arg)
    );
}

#[test]
fn args_are_typed_as_json_where_they_parse() {
    let sandbox = Sandbox::new();
    sandbox.project("shop", SHOP);
    sandbox.apply();
    sandbox.enqueue(&[
        "shop.import",
        "--arg",
        "n=3",
        "--arg",
        "flag=true",
        "--arg",
        "list=[1,2]",
        "--arg",
        r#"obj={"a":1}"#,
        "--arg",
        "name=world",
        "--arg",
        "text=a b=c",
    ]);
    let runs = sandbox.list_json(&[]);
    assert_eq!(
        runs[0]["args"],
        serde_json::json!({
            "n": 3, "flag": true, "list": [1, 2], "obj": {"a": 1},
            "name": "world", "text": "a b=c"
        })
    );
}

#[test]
fn core4_spellings_work() {
    let sandbox = Sandbox::new();
    sandbox.project("shop", SHOP);
    sandbox.apply();
    let enqueue = sandbox.coco(&["--enqueue", "shop.import"]);
    assert_eq!(enqueue.status.code(), Some(0), "{}", stderr(&enqueue));
    let id = stdout(&enqueue).trim().to_owned();
    let detail = sandbox.coco(&["--detail", &id]);
    assert_eq!(detail.status.code(), Some(0), "{}", stderr(&detail));
    assert!(stdout(&detail).contains("job:          shop.import"));
    let listing = sandbox.coco(&["--listing"]);
    assert_eq!(listing.status.code(), Some(0), "{}", stderr(&listing));
    assert!(stdout(&listing).contains(&id), "{}", stdout(&listing));
}

const RUNNER: &str = "\
environment:
  workdir: work
  path: [bin]
  env:
    MODE: project
    SHARED: project
jobs:
  show:
    command:
      - sh
      - -c
      - |
        echo \"cwd=$(pwd)\"
        echo \"mode=$MODE shared=$SHARED\"
        echo \"job=$COCO_JOB project=$COCO_PROJECT attempt=$COCO_ATTEMPT\"
        echo \"args=$COCO_ARGS\"
        echo \"run_id=${#COCO_RUN_ID}\"
        echo \"::progress:: 0.42 half way\"
        echo \"oops\" >&2
        echo
        echo \"day={{args.day}}\"
        tool
        exit {{args.code}}
    env:
      SHARED: job
    args:
      day: monday
      code: 3
  py:
    command: [python3, job.py]
  killed:
    command: [sh, -c, 'kill -TERM $$']
  slow:
    command: [sleep, '30']
    timeout: 1s
  missing:
    command: [echo, '{{args.nope}}']
";

const JOB_PY: &str = "\
import json, os, sys
args = json.loads(os.environ['COCO_ARGS'])
print('::progress:: 0.5', flush=True)
print('python sees', args['n'], 'in', os.path.basename(os.getcwd()), flush=True)
sys.exit(args['n'])
";

#[test]
fn run_executes_in_the_foreground_with_env_args_and_cwd() {
    let sandbox = Sandbox::new();
    sandbox.project("runner", RUNNER);
    sandbox.file("runner/work/job.py", JOB_PY, false);
    sandbox.file("runner/bin/tool", "#!/bin/sh\necho tool on PATH\n", true);
    // Not applied: `run` reads the manifest on disk.

    let output = sandbox.coco(&["run", "runner.show", "--arg", "code=7"]);
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    let work = sandbox.home().join("runner/work");
    let work = work.canonicalize().unwrap();
    assert_eq!(
        stdout(&output),
        format!(
            "cwd={}\nmode=project shared=job\njob=runner.show project=runner attempt=1\n\
             args={{\"code\":7,\"day\":\"monday\"}}\nrun_id=26\n[42%] half way\n\nday=monday\n\
             tool on PATH\n",
            work.display()
        )
    );
    assert_eq!(stderr(&output), "oops\n");

    let default = sandbox.coco(&["run", "runner.show", "--arg", "day=friday"]);
    assert_eq!(default.status.code(), Some(3), "the default code");
    assert!(stdout(&default).contains("day=friday\n"));

    let python = sandbox.coco(&["run", "runner.py", "--arg", "n=4"]);
    assert_eq!(python.status.code(), Some(4), "{}", stderr(&python));
    assert_eq!(stdout(&python), "[50%]\npython sees 4 in work\n");

    let killed = sandbox.coco(&["run", "runner.killed"]);
    assert_eq!(killed.status.code(), Some(128 + 15), "{}", stderr(&killed));

    let slow = sandbox.coco(&["run", "runner.slow"]);
    assert_eq!(slow.status.code(), Some(124), "{}", stderr(&slow));
    assert!(
        stderr(&slow).contains("timed out after 1s"),
        "{}",
        stderr(&slow)
    );

    let missing = sandbox.coco(&["run", "runner.missing"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("command element 1 `{{args.nope}}`"),
        "{}",
        stderr(&missing)
    );

    let typo = sandbox.coco(&["run", "runner.shwo"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        stderr(&typo).contains("did you mean runner.show"),
        "{}",
        stderr(&typo)
    );
    let no_project = sandbox.coco(&["run", "runer.show"]);
    assert_eq!(no_project.status.code(), Some(1));
    assert!(
        stderr(&no_project).contains("did you mean runner"),
        "{}",
        stderr(&no_project)
    );
    assert_eq!(
        sandbox.list_json(&[]).len(),
        0,
        "run does not use the queue"
    );
}

#[test]
fn queue_verbs_on_mongodb() {
    let Some(sandbox) = Sandbox::on_mongodb("coco_qcli") else {
        return;
    };
    sandbox.project("shop", SHOP);
    sandbox.apply();
    queue_verbs(&sandbox);
    assert!(
        !sandbox.dir.path().join("state/coco.db").exists(),
        "no embedded store used"
    );
}
