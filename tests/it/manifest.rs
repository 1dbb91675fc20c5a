//! Manifests: every kind of bad input is reported at file:line:column, all of them at once.

use std::collections::BTreeMap;
use std::path::Path;

use coco::manifest::discover::{discover, load_projects, load_projects_keeping, project_dirs};
use coco::manifest::parse::load_project;
use coco::manifest::{Catchup, Concurrency, HealthCheck, RestartPolicy};

/// Write `text` as `<tmp>/<folder>/coco.yaml` and return the folder.
fn project(tmp: &Path, folder: &str, text: &str) -> std::path::PathBuf {
    let dir = tmp.join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("coco.yaml"), text).unwrap();
    dir
}

/// The headlines of the problems of a manifest, with the temp dir cut off.
fn problems(text: &str) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path(), "mypro", text);
    let errors = load_project(&dir).expect_err("manifest should be invalid");
    errors
        .iter()
        .map(|d| {
            d.headline()
                .replace(&format!("{}/", tmp.path().display()), "")
        })
        .collect()
}

fn assert_problem(text: &str, expected: &str) {
    let found = problems(text);
    assert!(
        found.iter().any(|p| p.starts_with(expected)),
        "expected a problem starting with\n  {expected}\nfound\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_issue_example_is_valid_and_resolved() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(
        tmp.path(),
        "mypro",
        r#"
project: mypro
description: My first project
version: 0.0.1
environment:
  workdir: .
  path: [.venv/bin]
  env: {PYTHONPATH: .}
jobs:
  hello:
    command: [python3, mypro/hello.py]
    schedule: "*/5 * * * *"
    timezone: Europe/Berlin
    attempts: 3
    retry_delay: 30s
    timeout: 10m
    priority: 0
    max_parallel: 1
    concurrency: forbid
    catchup: once
    args: {n: 3}
    env: {GREETING: hi}
  split:
    command: echo "two words" 'and more'
    retry_delay: 1h30m
apps:
  web:
    command: [python3, -m, http.server, "8080"]
    port: 8080
    health: {http: "/"}
    restart: always
    env: {PORT: "8080"}
"#,
    );
    let p = load_project(&dir).unwrap();
    assert_eq!(p.name, "mypro");
    assert_eq!(p.version.as_deref(), Some("0.0.1"));
    assert_eq!(p.environment.path, vec![".venv/bin"]);
    let hello = &p.jobs["hello"];
    assert_eq!(hello.command, vec!["python3", "mypro/hello.py"]);
    assert_eq!(hello.attempts, 3);
    assert_eq!(hello.retry_delay.0.as_secs(), 30);
    assert_eq!(hello.timeout.unwrap().0.as_secs(), 600);
    assert_eq!(hello.concurrency, Concurrency::Forbid);
    assert_eq!(hello.catchup, Catchup::Once);
    assert_eq!(hello.args["n"], serde_json::json!(3));
    assert_eq!(hello.timezone, "Europe/Berlin");
    let split = &p.jobs["split"];
    assert_eq!(split.command, vec!["echo", "two words", "and more"]);
    assert_eq!(split.retry_delay.0.as_secs(), 5400);
    assert_eq!(split.timezone, "UTC");
    assert_eq!(split.attempts, 1);
    let web = &p.apps["web"];
    assert_eq!(web.port, Some(8080));
    assert_eq!(web.restart, RestartPolicy::Always);
    assert_eq!(
        web.health.as_ref().unwrap().check,
        HealthCheck::Http("/".into())
    );
}

#[test]
fn project_name_defaults_to_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path(), "folder-name", "jobs: {}\n");
    assert_eq!(load_project(&dir).unwrap().name, "folder-name");
    let dir = project(tmp.path(), "Bad Folder", "description: x\n");
    let errors = load_project(&dir).unwrap_err();
    assert!(
        errors[0].message.contains("set `project:`"),
        "{}",
        errors[0]
    );
}

#[test]
fn syntax_error() {
    assert_problem(
        "jobs:\n  hello:\n    command: [echo, hi\n  other: 1\n",
        "mypro/coco.yaml:4:",
    );
}

#[test]
fn unknown_top_level_key_suggests() {
    assert_problem(
        "jobz:\n  hello:\n    command: [x]\n",
        "mypro/coco.yaml:1:1: unknown key `jobz` (did you mean `jobs`?)",
    );
}

#[test]
fn unknown_job_key_suggests() {
    assert_problem(
        "jobs:\n  hello:\n    command: [x]\n    atempts: 3\n",
        "mypro/coco.yaml:4:5: unknown key `atempts` (did you mean `attempts`?)",
    );
}

#[test]
fn wrong_type() {
    assert_problem(
        "jobs:\n  hello:\n    command: [x]\n    attempts: many\n",
        "mypro/coco.yaml:4:15: `jobs.hello.attempts`: invalid type: string \"many\", expected a whole number from 0 to 4294967295",
    );
}

#[test]
fn missing_command() {
    assert_problem(
        "jobs:\n  hello:\n    schedule: '* * * * *'\n",
        "mypro/coco.yaml:2:3: `jobs.hello`: missing field `command`",
    );
}

#[test]
fn cron_field_out_of_range() {
    assert_problem(
        "jobs:\n  hello:\n    command: [x]\n    schedule: \"61 * * * *\"\n",
        "mypro/coco.yaml:4:15: minute field `61`: 61 is out of range 0-59",
    );
}

#[test]
fn cron_wrong_field_count_and_macro() {
    assert_problem(
        "jobs:\n  a:\n    command: [x]\n    schedule: \"* * *\"\n",
        "mypro/coco.yaml:4:15: a schedule has 5 fields",
    );
    assert_problem(
        "jobs:\n  a:\n    command: [x]\n    schedule: \"@dayly\"\n",
        "mypro/coco.yaml:4:15: unknown schedule macro `@dayly` (did you mean `@daily`?)",
    );
}

#[test]
fn unknown_time_zone_suggests() {
    assert_problem(
        "jobs:\n  a:\n    command: [x]\n    timezone: Europe/Berln\n",
        "mypro/coco.yaml:4:15: unknown time zone `Europe/Berln` (use an IANA name such as Europe/Berlin) (did you mean `Europe/Berlin`?)",
    );
}

#[test]
fn bad_duration() {
    assert_problem(
        "jobs:\n  a:\n    command: [x]\n    retry_delay: 30x\n",
        "mypro/coco.yaml:4:18: `jobs.a.retry_delay`: invalid duration `30x`",
    );
}

#[test]
fn bad_enum_value_suggests() {
    assert_problem(
        "jobs:\n  a:\n    command: [x]\n    concurrency: forbidd\n",
        "mypro/coco.yaml:4:18: `jobs.a.concurrency`: `forbidd` is not one of: allow, forbid, replace (did you mean `forbid`?)",
    );
    assert_problem(
        "apps:\n  w:\n    command: [x]\n    restart: sometimes\n",
        "mypro/coco.yaml:4:14: `apps.w.restart`: `sometimes` is not one of: always, on-failure, never",
    );
}

#[test]
fn bad_names() {
    assert_problem(
        "project: My Pro\n",
        "mypro/coco.yaml:1:10: project name `My Pro` is not valid",
    );
    assert_problem(
        "jobs:\n  Hello!:\n    command: [x]\n",
        "mypro/coco.yaml:2:3: job name `Hello!` is not valid",
    );
    assert_problem(
        "jobs:\n  a:\n    command: [x]\n    env: {\"BAD-NAME\": 1}\n",
        "mypro/coco.yaml:4:11: environment variable name `BAD-NAME` is not valid",
    );
}

#[test]
fn bad_commands() {
    assert_problem(
        "jobs:\n  a:\n    command: []\n",
        "mypro/coco.yaml:3:14: command is empty",
    );
    assert_problem(
        "jobs:\n  a:\n    command: \"echo 'open\"\n",
        "mypro/coco.yaml:3:14: command `echo 'open` has an unbalanced quote",
    );
    assert_problem(
        "jobs:\n  a:\n    command: {run: x}\n",
        "mypro/coco.yaml:3:14: `jobs.a.command`: expected a command: a list of arguments or a string, found a mapping",
    );
}

#[test]
fn bad_numbers() {
    assert_problem(
        "jobs:\n  a:\n    command: [x]\n    attempts: 0\n",
        "mypro/coco.yaml:4:15: attempts must be at least 1",
    );
    assert_problem(
        "jobs:\n  a:\n    command: [x]\n    max_parallel: 0\n",
        "mypro/coco.yaml:4:19: max_parallel must be at least 1",
    );
    assert_problem(
        "apps:\n  w:\n    command: [x]\n    port: 70000\n",
        "mypro/coco.yaml:4:11: `apps.w.port`: invalid value",
    );
}

#[test]
fn bad_health_checks() {
    assert_problem(
        "apps:\n  w:\n    command: [x]\n    health: {http: /}\n",
        "mypro/coco.yaml:4:13: a health check needs the app's `port`",
    );
    assert_problem(
        "apps:\n  w:\n    command: [x]\n    port: 80\n    health: {http: /, tcp: true}\n",
        "mypro/coco.yaml:5:13: a health check is either `http` or `tcp`, not both",
    );
    assert_problem(
        "apps:\n  w:\n    command: [x]\n    port: 80\n    health: {http: status}\n",
        "mypro/coco.yaml:5:20: health http path `status` must start with `/`",
    );
}

#[test]
fn every_problem_in_a_file_is_reported() {
    let found = problems(
        "jobz: 1\njobs:\n  a:\n    command: [x]\n    atempts: 3\n  b:\n    command: [x]\n    schedule: \"* 25 * * *\"\n    timezone: Mars/Base\napps:\n  w:\n    command: []\n",
    );
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(found[0].starts_with("mypro/coco.yaml:1:1: unknown key `jobz`"));
    assert!(found[1].starts_with("mypro/coco.yaml:5:5: unknown key `atempts`"));
    assert!(found[2].starts_with("mypro/coco.yaml:8:15: hour field"));
    assert!(found[3].starts_with("mypro/coco.yaml:9:15: unknown time zone `Mars/Base`"));
    assert!(found[4].starts_with("mypro/coco.yaml:12:14: command is empty"));
}

#[test]
fn every_file_is_checked_and_duplicates_are_caught() {
    let tmp = tempfile::tempdir().unwrap();
    project(tmp.path(), "a", "project: same\n");
    project(tmp.path(), "b", "project: same\n");
    project(
        tmp.path(),
        "c",
        "jobs:\n  x:\n    command: [x]\n    attempts: -1\n",
    );
    project(tmp.path(), "d", "jobs:\n  ok:\n    command: [true]\n");
    std::fs::create_dir_all(tmp.path().join("not-a-project")).unwrap();
    let discovery = discover(tmp.path()).unwrap();
    assert_eq!(
        discovery.projects.keys().collect::<Vec<_>>(),
        vec!["d", "same"]
    );
    let problems: Vec<String> = discovery.problems().map(|d| d.headline()).collect();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].ends_with(&format!(
        "b/coco.yaml:1:10: project name `same` is already used by {}",
        tmp.path().join("a/coco.yaml").display()
    )));
    assert!(
        problems[1].contains("c/coco.yaml:4:15: `jobs.x.attempts`: invalid value: integer `-1`")
    );
    // Loading a list of folders checks them the same way.
    let again = load_projects(&[tmp.path().join("d")]);
    assert!(again.is_valid());
    // The folder holding the applied project keeps its name, though it comes later.
    let dirs = project_dirs(tmp.path()).unwrap();
    let holders = BTreeMap::from([("same".to_string(), tmp.path().join("b"))]);
    let kept = load_projects_keeping(&dirs, &holders);
    assert_eq!(kept.projects["same"].dir, tmp.path().join("b"));
    let problems: Vec<String> = kept.problems().map(|d| d.headline()).collect();
    assert!(
        problems[0].ends_with(&format!(
            "a/coco.yaml:1:10: project name `same` is already used by {}",
            tmp.path().join("b/coco.yaml").display()
        )),
        "{problems:#?}"
    );
}

#[test]
fn the_caret_points_at_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(
        tmp.path(),
        "mypro",
        "jobs:\n  a:\n    command: [x]\n    schedule: \"61 * * * *\"\n",
    );
    let shown = load_project(&dir).unwrap_err()[0].to_string();
    assert!(
        shown.ends_with("4 |     schedule: \"61 * * * *\"\n  |               ^"),
        "{shown}"
    );
}

#[test]
fn examples_are_valid() {
    let home = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/home");
    let discovery = discover(&home).unwrap();
    assert!(discovery.is_valid(), "{:#?}", discovery.invalid);
    assert!(discovery.projects.len() >= 2);
    assert!(discovery.projects.values().any(|p| !p.apps.is_empty()));
    assert!(
        discovery
            .projects
            .values()
            .flat_map(|p| p.jobs.values())
            .any(|j| j.schedule.is_some())
    );
}

#[test]
fn schema_file_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/coco.schema.json");
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        written,
        coco::cli::schema::manifest_schema(),
        "docs/coco.schema.json is stale: run `cargo run -- schema > docs/coco.schema.json`"
    );
}

#[test]
fn bad_then_chains() {
    assert_problem(
        "jobs:\n  a:\n    command: [x]\n    then: [bee]\n  b:\n    command: [x]\n  bees:\n    command: [x]\n",
        "mypro/coco.yaml:4:12: `then`: this project has no job `bee` (did you mean `bees`?)",
    );
    assert_problem(
        "jobs:\n  a:\n    command: [x]\n    then:\n      - b\n      - Other.Job.x\n  b:\n    command: [x]\n",
        "mypro/coco.yaml:6:9: `then`: `Other.Job.x` is not a job name: use `job` or `project.job`",
    );
    assert_problem(
        "jobs:\n  a:\n    command: [x]\n    then: [b]\n  b:\n    command: [x]\n    then: [a]\n",
        "mypro/coco.yaml:4:11: `then` chains run in a circle (a → b → a): it would never end",
    );
    assert_problem(
        "jobs:\n  a:\n    command: [x]\n    then: [a]\n",
        "mypro/coco.yaml:4:11: `then` chains run in a circle (a → a)",
    );
}

#[test]
fn then_chains_resolve_to_job_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(
        tmp.path(),
        "mypro",
        "jobs:\n  a:\n    command: [x]\n    then: [b, other.c]\n  b:\n    command: [x]\n",
    );
    let project = load_project(&dir).expect("valid");
    assert_eq!(project.jobs["a"].followers("mypro"), ["mypro.b", "other.c"]);
    assert!(project.jobs["b"].then.is_empty());
}

// Hostile input through the binary: `coco validate home/<folder>` (a relative path) in a
// sandbox, each problem at the file, line and column where it is, in words a user knows.

mod hostile {
    use std::time::{Duration, Instant};

    use crate::support::{Sandbox, stderr, stdout};

    /// Write `bytes` as `home/<folder>/coco.yaml` of the sandbox.
    fn manifest(sandbox: &Sandbox, folder: &str, bytes: &[u8]) {
        let dir = sandbox.home().join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("coco.yaml"), bytes).unwrap();
    }

    /// `coco validate home/<folder>`: it fails, and what it says (stderr).
    fn refused(sandbox: &Sandbox, folder: &str) -> String {
        let path = format!("home/{folder}");
        let output = sandbox.coco(&["validate", &path]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{path}: {err}");
        for internal in ["Raw", "Value::", "struct ", "u32", "u16"] {
            assert!(!err.contains(internal), "{internal:?} leaks: {err}");
        }
        err
    }

    /// The manifest in `home/<folder>` is refused with a problem starting `at: message`.
    fn assert_refused(sandbox: &Sandbox, folder: &str, bytes: &[u8], at: &str, message: &str) {
        manifest(sandbox, folder, bytes);
        let err = refused(sandbox, folder);
        let expected = format!("home/{folder}/coco.yaml:{at}: {message}");
        assert!(err.contains(&expected), "expected\n  {expected}\nin\n{err}");
    }

    #[test]
    fn characters_keys_and_documents_are_located_where_they_are() {
        let sandbox = Sandbox::new();
        assert_refused(
            &sandbox,
            "control",
            b"project: control\njobs:\n  a:\n    command: [x\x01]\n",
            "4:16",
            "control character U+0001 is not allowed in YAML",
        );
        assert_refused(
            &sandbox,
            "duplicate",
            b"jobs:\n  a:\n    command: [x]\n  a:\n    command: [y]\n",
            "4:3",
            "duplicate key `a` in `jobs` (first written at line 2)",
        );
        assert_refused(
            &sandbox,
            "top-duplicate",
            b"project: one\ndescription: x\nproject: two\n",
            "3:1",
            "duplicate key `project` (first written at line 1)",
        );
        assert_refused(
            &sandbox,
            "latin1",
            b"jobs:\n  a:\n    command: [caf\xe9]\n",
            "3:18",
            "the file is not UTF-8 text: byte 0xE9",
        );
        assert_refused(
            &sandbox,
            "separator",
            "jobs:\n  a:\n    command: [x]\n    description: \"a\u{2028}b\"\n    attempts: 0\n"
                .as_bytes(),
            "4:20",
            "line separator U+2028 is not allowed",
        );
        assert_refused(
            &sandbox,
            "nel",
            "jobs:\n  a:\n    command: [x]\n    description: a\u{85}b\n".as_bytes(),
            "4:19",
            "next line (NEL) U+0085 is not allowed",
        );
        assert_refused(
            &sandbox,
            "documents",
            b"project: documents\n---\nproject: other\n",
            "2:1",
            "a second YAML document starts here",
        );
        assert_refused(
            &sandbox,
            "tagged",
            b"jobs:\n  a:\n    command: !shell [x]\n",
            "3:14",
            "`jobs.a.command`: YAML tags such as `!shell` are not supported",
        );
        assert_refused(
            &sandbox,
            "shapes",
            b"environment: [1]\n",
            "1:14",
            "`environment`: invalid type: sequence, expected a mapping",
        );
        assert_refused(
            &sandbox,
            "choice",
            b"jobs:\n  a:\n    command: [x]\n    concurrency: [forbid]\n    attempts: many\n",
            "4:18",
            "`jobs.a.concurrency`: invalid type: sequence, expected one word naming a choice",
        );
        let err = refused(&sandbox, "choice");
        assert!(
            err.contains("5:15: `jobs.a.attempts`: invalid type: string \"many\", expected a whole number from 0 to 4294967295"),
            "{err}"
        );
        assert_refused(
            &sandbox,
            "wide",
            b"jobs:\n  a:\n    command: [x]\n    priority: -99999999999999999999\n",
            "4:15",
            "`jobs.a.priority`: the number `-99999999999999999999` is too large",
        );
        assert_refused(
            &sandbox,
            "nested-command",
            b"jobs:\n  a:\n    command: [[x]]\n",
            "3:14",
            "`jobs.a.command`: expected a string, number or boolean, found a list",
        );
        let err = refused(&sandbox, "nested-command");
        assert!(
            err.contains("1 problem found") && !err.contains("missing field"),
            "the bad command is not also missing: {err}"
        );
        assert_refused(
            &sandbox,
            "list",
            b"[1, 2]\n",
            "1:1",
            "invalid type: sequence, expected a mapping",
        );

        // Nesting that would take libyaml minutes (its time grows with the square of the
        // depth) is refused first; the long line is shown cut around the caret.
        let deep = format!("jobs: {}\n", "[".repeat(500_000));
        let started = Instant::now();
        assert_refused(
            &sandbox,
            "deep",
            deep.as_bytes(),
            "1:262",
            "nested more than 128 levels deep",
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(refused(&sandbox, "deep").len() < 1000);
        let deep = format!(
            "jobs:\n  a:\n    command: {}x{}\n",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_refused(
            &sandbox,
            "deep-flow",
            deep.as_bytes(),
            "3:139",
            "nested more than 128 levels deep",
        );

        // A byte order mark is allowed, as YAML says, and the columns after it are right.
        manifest(
            &sandbox,
            "bom",
            b"\xef\xbb\xbfjobs:\n  a:\n    command: [x]\n",
        );
        let ok = sandbox.coco(&["validate", "home/bom"]);
        assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
        assert!(
            stdout(&ok).contains("(bom: 1 job, 0 apps)"),
            "{}",
            stdout(&ok)
        );
        assert_refused(
            &sandbox,
            "bom-bad",
            b"\xef\xbb\xbfproject: Bad\n",
            "1:10",
            "project name `Bad` is not valid",
        );
    }

    #[test]
    fn manifests_over_the_limits_are_refused_before_they_are_read() {
        let sandbox = Sandbox::new();
        // Valid YAML (comments), one byte over 1 MiB.
        let mut big = b"project: big\n".to_vec();
        big.resize(1 << 20, b'#');
        big.extend_from_slice(b"\n");
        let started = Instant::now();
        assert_refused(
            &sandbox,
            "big",
            &big,
            "1:1",
            "the file is larger than 1 MiB: a manifest may have at most 1048576 bytes",
        );
        assert!(started.elapsed() < Duration::from_secs(20));

        let mut jobs = String::from("project: jobs\njobs:\n");
        for n in 0..1001 {
            jobs.push_str(&format!("  j{n}: {{command: [x], attempts: 0}}\n"));
        }
        assert_refused(
            &sandbox,
            "jobs",
            jobs.as_bytes(),
            "2:1",
            "a project may have at most 1000 jobs; this one has 1001",
        );
        let err = refused(&sandbox, "jobs");
        assert!(
            !err.contains("attempts must be"),
            "the jobs were not read: {err}"
        );

        let mut apps = String::from("apps:\n");
        for n in 0..101 {
            apps.push_str(&format!("  a{n}: {{command: [x]}}\n"));
        }
        assert_refused(
            &sandbox,
            "apps",
            apps.as_bytes(),
            "1:1",
            "a project may have at most 100 apps; this one has 101",
        );

        // At the limits, all is well.
        let mut jobs = String::from("jobs:\n");
        for n in 0..1000 {
            jobs.push_str(&format!("  j{n}: {{command: [x]}}\n"));
        }
        manifest(&sandbox, "thousand", jobs.as_bytes());
        let ok = sandbox.coco(&["validate", "home/thousand"]);
        assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    }

    #[test]
    fn every_duration_has_a_located_minimum_and_maximum() {
        let sandbox = Sandbox::new();
        let app = |health: &str| {
            format!("apps:\n  web:\n    command: [x]\n    port: 8080\n    health: {health}\n")
        };
        assert_refused(
            &sandbox,
            "interval",
            app("{http: /, interval: 0s}").as_bytes(),
            "5:33",
            "`interval` must be at least 100ms",
        );
        assert_refused(
            &sandbox,
            "check-timeout",
            app("{tcp: true, timeout: 1ms}").as_bytes(),
            "5:34",
            "`timeout` must be at least 100ms",
        );
        assert_refused(
            &sandbox,
            "slow-interval",
            app("{tcp: true, interval: 2days}").as_bytes(),
            "5:35",
            "`interval` must be at most 1day",
        );
        let job = |line: &str| format!("jobs:\n  a:\n    command: [x]\n    {line}\n");
        assert_refused(
            &sandbox,
            "timeout",
            job("timeout: 10ms").as_bytes(),
            "4:14",
            "`timeout` must be at least 1s (leave it out for none)",
        );
        assert_refused(
            &sandbox,
            "zero-timeout",
            job("timeout: 0s").as_bytes(),
            "4:14",
            "`timeout` must be at least 1s",
        );
        assert_refused(
            &sandbox,
            "attempts",
            job("attempts: 1001").as_bytes(),
            "4:15",
            "attempts must be at most 1000",
        );
        assert_refused(
            &sandbox,
            "forever",
            job("retry_delay: 1000000000000000h").as_bytes(),
            "4:18",
            "`retry_delay` must be at most 10years",
        );
        assert_refused(
            &sandbox,
            "long-defer",
            job("defer_max: 11years").as_bytes(),
            "4:16",
            "`defer_max` must be at most 10years",
        );
        assert_refused(
            &sandbox,
            "long-timeout",
            job("timeout: 11years").as_bytes(),
            "4:14",
            "`timeout` must be at most 10years",
        );
        // At the bounds, all is well; `retry_delay: 0s` retries at once (documented).
        manifest(
            &sandbox,
            "bounds",
            b"jobs:\n  a:\n    command: [x]\n    timeout: 1s\n    retry_delay: 0s\n\
              apps:\n  web:\n    command: [x]\n    port: 8080\n    \
              health: {http: /, interval: 100ms, timeout: 1day}\n",
        );
        let ok = sandbox.coco(&["validate", "home/bounds"]);
        assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    }

    #[test]
    fn a_daemon_reports_a_health_interval_of_0s_at_its_place() {
        let sandbox = Sandbox::new();
        sandbox.project("web", "jobs:\n  a:\n    command: [\"true\"]\n");
        let daemon = sandbox.spawn(&["daemon", "--no-worker", "--no-scheduler", "--no-apps"]);
        daemon.wait_for_log("daemon: home");
        // Saved while it runs: refused at the value, in the daemon's log.
        sandbox.project(
            "web",
            "apps:\n  server:\n    command: [sleep, \"30\"]\n    port: 8080\n    health: {tcp: true, interval: 0s}\n",
        );
        daemon.wait_for_log("web/coco.yaml:5:");
        let log = daemon.log();
        assert!(
            log.contains("web/coco.yaml:5:35: `interval` must be at least 100ms"),
            "{log}"
        );
    }

    #[test]
    fn values_no_process_can_receive_and_schedules_that_never_fire_are_refused() {
        let sandbox = Sandbox::new();
        assert_refused(
            &sandbox,
            "nul-command",
            b"jobs:\n  a:\n    command: [echo, \"a\\0b\"]\n",
            "3:21",
            "a command argument may not contain a NUL character",
        );
        assert_refused(
            &sandbox,
            "nul-string",
            b"jobs:\n  a:\n    command: \"echo 'a\\0b'\"\n",
            "3:14",
            "a command argument may not contain a NUL character",
        );
        assert_refused(
            &sandbox,
            "nul-env",
            b"jobs:\n  a:\n    command: [x]\n    env: {A: \"b\\0\"}\n",
            "4:14",
            "an environment variable's value may not contain a NUL character",
        );
        assert_refused(
            &sandbox,
            "nul-env-name",
            b"apps:\n  w:\n    command: [x]\n    env: {\"A\\0\": b}\n",
            "4:11",
            "environment variable name `A\\0` is not valid",
        );
        assert_refused(
            &sandbox,
            "nul-workdir",
            b"environment:\n  workdir: \"src\\0\"\njobs: {}\n",
            "2:12",
            "the working directory may not contain a NUL character",
        );
        assert_refused(
            &sandbox,
            "nul-path",
            b"environment:\n  path: [bin, \"x\\0\"]\n",
            "2:15",
            "a PATH entry may not contain a NUL character",
        );
        assert_refused(
            &sandbox,
            "nul-project-env",
            b"environment:\n  env: {A: \"\\0\"}\n",
            "2:12",
            "an environment variable's value may not contain a NUL character",
        );
        assert_refused(
            &sandbox,
            "nul-arg",
            b"jobs:\n  a:\n    command: [echo, \"{{args.n}}\"]\n    args: {n: \"a\\0\"}\n",
            "4:15",
            "an argument may not contain a NUL character",
        );
        assert_refused(
            &sandbox,
            "february",
            b"jobs:\n  a:\n    command: [x]\n    schedule: \"0 0 31 2 *\"\n",
            "4:15",
            "schedule `0 0 31 2 *` never fires: February has no day 31",
        );
        assert_refused(
            &sandbox,
            "short-months",
            b"jobs:\n  a:\n    command: [x]\n    schedule: \"0 0 31 apr,jun *\"\n",
            "4:15",
            "schedule `0 0 31 apr,jun *` never fires: April and June have no day 31",
        );
        manifest(
            &sandbox,
            "leap",
            b"jobs:\n  a:\n    command: [x]\n    schedule: \"0 0 29 2 *\"\n",
        );
        let ok = sandbox.coco(&["validate", "home/leap"]);
        assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    }
}

#[test]
fn defer_fields_resolve_with_defaults_and_leave_existing_hashes_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(
        tmp.path(),
        "mypro",
        "jobs:\n  a:\n    command: [x]\n  b:\n    command: [x]\n    defer_delay: 30s\n    defer_max: 2h\n",
    );
    let project = load_project(&dir).expect("valid");
    let (a, b) = (&project.jobs["a"], &project.jobs["b"]);
    assert_eq!(
        (a.defer_delay.0.as_secs(), a.defer_max.0.as_secs()),
        (10, 3600)
    );
    assert_eq!(
        (b.defer_delay.0.as_secs(), b.defer_max.0.as_secs()),
        (30, 7200)
    );
    // At their defaults the fields stay out of the stored form: a job applied before they
    // existed keeps its hash (nothing to change in `coco plan`).
    let stored = serde_json::to_value(a).unwrap();
    assert!(stored.get("defer_delay").is_none() && stored.get("defer_max").is_none());
    let back: coco::manifest::Job = serde_json::from_value(stored).unwrap();
    assert_eq!(&back, a);
    let stored = serde_json::to_value(b).unwrap();
    assert_eq!(
        (&stored["defer_delay"], &stored["defer_max"]),
        (&"30s".into(), &"2h".into())
    );
}
