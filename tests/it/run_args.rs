//! Run arguments reach the job exactly as given, through the `coco` binary: `--arg` values
//! and the manifest's `args:` defaults, rendered into the command (`{{args.x}}`) and in
//! `$COCO_ARGS`, under `coco run` and through the queue (enqueue → store → worker) on both
//! stores.

use crate::support::{Sandbox, stderr, stdout};

/// `show` prints its first argument between `<>` and then `$COCO_ARGS`.
const ECHO: &str = r#"
jobs:
  show:
    command: [sh, -c, 'printf "<%s>\n" "$1"; printf "%s\n" "$COCO_ARGS"', sh, '{{args.x}}']
  defaults:
    command: [sh, -c, 'printf "<%s>\n" "$@"', sh, '{{args.big}}', '{{args.o}}', '{{args.n}}', '{{args.l}}', '{{args.s}}']
    args:
      big: 9007199254740993
      o: {a: 1, b: [x, 2]}
      n: null
      l: [1, two]
      s: '007'
"#;

/// `--arg x=VALUE` → what the command shows and the `x` member of `$COCO_ARGS`.
const CASES: &[(&str, &str, &str)] = &[
    (
        "12345678901234567890123",
        "<12345678901234567890123>",
        r#""x":12345678901234567890123"#,
    ),
    ("1e2", "<1e2>", r#""x":"1e2""#),
    ("2.50", "<2.50>", r#""x":2.50"#),
    (r#"{"a":1}"#, r#"<{"a":1}>"#, r#""x":{"a":1}"#),
    (
        r#"{"a": [1, 2.0]}"#,
        r#"<{"a":[1,2.0]}>"#,
        r#""x":{"a":[1,2.0]}"#,
    ),
    ("null", "<null>", r#""x":null"#),
    ("true", "<true>", r#""x":true"#),
    ("-0", "<-0>", r#""x":-0"#),
    ("007", "<007>", r#""x":"007""#),
    ("a b", "<a b>", r#""x":"a b""#),
];

const DEFAULTS: &str =
    "<9007199254740993>\n<{\"a\":1,\"b\":[\"x\",2]}>\n<null>\n<[1,\"two\"]>\n<007>\n";

fn check(case: &(&str, &str, &str), output: &str) {
    let (given, shown, in_args) = case;
    let mut lines = output.lines();
    assert_eq!(lines.next(), Some(*shown), "--arg x={given}:\n{output}");
    let coco_args = lines.next().unwrap_or_default();
    assert!(
        coco_args.contains(in_args),
        "--arg x={given}: COCO_ARGS is {coco_args}"
    );
}

#[test]
fn arguments_reach_coco_run_exactly() {
    let sandbox = Sandbox::new();
    sandbox.project("echo", ECHO);
    for case in CASES {
        let arg = format!("x={}", case.0);
        let output = sandbox.coco(&["run", "echo.show", "--arg", &arg]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        check(case, &stdout(&output));
    }
    let output = sandbox.coco(&["run", "echo.defaults"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), DEFAULTS);
}

/// Enqueue every case, let a worker run them, read each run's output.
fn through_the_queue(sandbox: &Sandbox) {
    sandbox.project("echo", ECHO);
    sandbox.apply();
    let ids: Vec<String> = CASES
        .iter()
        .map(|case| sandbox.enqueue(&["echo.show", "--arg", &format!("x={}", case.0)]))
        .collect();
    let defaults = sandbox.enqueue(&["echo.defaults"]);
    let _worker = sandbox.spawn(&["worker"]);
    for (case, id) in CASES.iter().zip(&ids) {
        sandbox.wait_for_state(id, "complete");
        check(case, &job_output(sandbox, id));
    }
    sandbox.wait_for_state(&defaults, "complete");
    assert_eq!(job_output(sandbox, &defaults), DEFAULTS);
}

/// The stdout lines `coco logs ID` kept, without their `HH:MM:SS.mmm out ` prefix.
fn job_output(sandbox: &Sandbox, id: &str) -> String {
    let logs = sandbox.coco(&["logs", id]);
    assert_eq!(logs.status.code(), Some(0), "{}", stderr(&logs));
    stdout(&logs)
        .lines()
        .map(|line| match line.split_once(" out ") {
            Some((_, text)) => format!("{text}\n"),
            None => panic!("not an output line: {line}"),
        })
        .collect()
}

#[test]
fn arguments_reach_a_queued_run_exactly() {
    through_the_queue(&Sandbox::new());
}

#[test]
fn arguments_reach_a_queued_run_exactly_on_mongodb() {
    let Some(sandbox) = Sandbox::on_mongodb("coco_args") else {
        return;
    };
    through_the_queue(&sandbox);
}
