//! `GET /metrics` of a real `coco daemon`, over real TCP, on both stores: a run through the
//! daemon's worker counted by project, job and outcome, its duration and wait; the gauges
//! read from the store (runs by state as `coco list` counts them, workers, apps up,
//! manifest problems); app restarts; request durations by route pattern; the build's
//! version; no run id in any label and no secret anywhere; who may scrape (401 without a
//! valid token, 403 for a token limited to projects, 200 without one under
//! `api.open_metrics: true`); a wrong-typed `api.open_metrics` a located error.

use std::time::{Duration, Instant};

use crate::api::{Answer, create, get};
use crate::support::{Sandbox, free_port, ok, stderr};

/// One sample of an exposition: name, labels as written, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The samples of a Prometheus text exposition (format 0.0.4), checked line by line: every
/// line a `# HELP`, a `# TYPE` (each family once) or a sample `name{k="v",…} value` of a
/// family described before it.
fn parse(text: &str) -> Vec<Sample> {
    let mut families: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (kind, name) = (words.next().unwrap(), words.next().unwrap());
            match kind {
                "HELP" => {}
                "TYPE" => {
                    assert!(!families.iter().any(|f| f == name), "{name} twice:\n{text}");
                    let kind = words.next().unwrap();
                    assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                    families.push(name.to_string());
                }
                _ => panic!("not a HELP or TYPE line: {line:?}"),
            }
            continue;
        }
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let name = &line[..name_end];
        assert!(
            !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()),
            "{line:?}"
        );
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices();
            loop {
                let (start, first) = chars.next().unwrap_or_else(|| panic!("{line:?}"));
                if first == '}' {
                    rest = &inner[start + 1..];
                    break;
                }
                let eq = inner[start..]
                    .find("=\"")
                    .unwrap_or_else(|| panic!("{line:?}"));
                let key = inner[start..start + eq].trim_start_matches(',').to_string();
                assert!(
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "label {key:?} in {line:?}"
                );
                for _ in 0..eq + 1 {
                    chars.next();
                }
                let mut value = String::new();
                loop {
                    match chars.next().unwrap_or_else(|| panic!("{line:?}")).1 {
                        '"' => break,
                        '\\' => match chars.next().unwrap().1 {
                            'n' => value.push('\n'),
                            other => value.push(other),
                        },
                        other => value.push(other),
                    }
                }
                labels.push((key, value));
            }
        }
        let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("value of {line:?}")),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| families.iter().any(|f| f == base))
            .unwrap_or(name);
        assert!(
            families.iter().any(|f| f == family),
            "{name} has no TYPE before it:\n{text}"
        );
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

/// The value of the sample `name` with exactly `labels`, if there is one.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(k2, v2)| k2 == k && v2 == v))
        })
        .map(|s| s.value)
}

/// `GET /metrics` with `secret`: a 200 in the text format, and its samples.
fn scrape(port: u16, secret: Option<&str>) -> (Answer, Vec<Sample>) {
    let answer = get(port, "/metrics", secret);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let samples = parse(&answer.body);
    (answer, samples)
}

/// Scrape until `done` says the samples show what is awaited (20 s at most).
fn scrape_until(
    port: u16,
    secret: &str,
    done: impl Fn(&[Sample]) -> bool,
) -> (Answer, Vec<Sample>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (answer, samples) = scrape(port, Some(secret));
        if done(&samples) {
            return (answer, samples);
        }
        assert!(Instant::now() < deadline, "never came:\n{}", answer.body);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_on_the_embedded_store() {
    metrics(&Sandbox::new());
}

#[test]
fn metrics_on_mongodb() {
    if let Some(sandbox) = Sandbox::on_mongodb("coco_metrics") {
        metrics(&sandbox);
    }
}

fn metrics(sandbox: &Sandbox) {
    sandbox.project(
        "shop",
        "jobs:\n  hello:\n    command: [sh, -c, 'echo hello']\napps:\n  web:\n    command: [sleep, '600']\n  crash:\n    command: [sh, -c, 'exit 1']\n",
    );
    sandbox.apply();
    // A broken manifest the daemon reports (and keeps running beside).
    sandbox.project("broken", "jobs: [\n");
    let viewer = create(sandbox, &["grafana", "--role", "viewer"]);
    let scoped = create(
        sandbox,
        &["shop-only", "--role", "viewer", "--project", "shop"],
    );
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = sandbox.spawn(&["daemon", "--slots", "2", "--api-listen", &listen]);
    daemon.wait_for_log(&format!("daemon: API on http://{listen}"));
    let id = ok(sandbox, &["enqueue", "shop.hello", "--wait"], 0);
    let id = id.lines().next().unwrap_or_default().trim().to_string();
    assert_eq!(id.len(), 26, "{id:?}");
    // A route with an id in its path, and one that matches no route.
    assert_eq!(
        get(port, &format!("/api/v1/runs/{id}"), Some(&viewer)).status,
        200
    );
    assert_eq!(
        get(port, &format!("/no/such/{id}"), Some(&viewer)).status,
        404
    );

    let (answer, samples) = scrape_until(port, &viewer, |samples| {
        value(samples, "coco_app_up", &[("app", "shop.web")]) == Some(1.0)
            && value(samples, "coco_app_restarts_total", &[("app", "shop.crash")])
                .is_some_and(|n| n >= 1.0)
            && value(samples, "coco_manifest_problems", &[]).is_some_and(|n| n >= 1.0)
    });
    let text = &answer.body;
    let at_least = |name: &str, labels: &[(&str, &str)], least: f64| {
        let found = value(&samples, name, labels);
        assert!(
            found.is_some_and(|v| v >= least),
            "{name}{labels:?}: {found:?}\n{text}"
        );
    };

    // What the worker counted of the run.
    at_least(
        "coco_runs_total",
        &[
            ("project", "shop"),
            ("job", "hello"),
            ("outcome", "complete"),
        ],
        1.0,
    );
    at_least("coco_run_duration_seconds_count", &[], 1.0);
    at_least("coco_run_duration_seconds_bucket", &[("le", "+Inf")], 1.0);
    at_least("coco_run_queue_wait_seconds_count", &[], 1.0);
    at_least("coco_reconcile_duration_seconds_count", &[], 1.0);
    // Requests by route pattern: the id is not in the route, the unmatched path not at all.
    at_least(
        "coco_http_request_duration_seconds_count",
        &[("route", "/api/v1/runs/{id}"), ("status", "200")],
        1.0,
    );
    at_least(
        "coco_http_request_duration_seconds_count",
        &[("route", "unmatched"), ("status", "404")],
        1.0,
    );
    assert!(!text.contains("/no/such"), "{text}");

    // Read from the store at scrape time.
    let complete = sandbox.list_json(&["--state", "complete"]).len() as f64;
    assert_eq!(complete, 1.0);
    assert_eq!(
        value(&samples, "coco_runs", &[("state", "complete")]),
        Some(complete),
        "{text}"
    );
    assert_eq!(
        value(&samples, "coco_runs", &[("state", "pending")]),
        Some(0.0)
    );
    at_least("coco_workers", &[], 1.0);
    assert_eq!(
        value(&samples, "coco_worker_slots", &[]),
        Some(2.0),
        "{text}"
    );
    assert!(value(&samples, "coco_worker_slots_busy", &[]).is_some());
    assert!(value(&samples, "coco_app_up", &[("app", "shop.crash")]).is_some());
    assert_eq!(
        value(
            &samples,
            "coco_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );

    // No run id as a label value (nor anywhere in the text), no secret.
    for sample in &samples {
        for (key, label) in &sample.labels {
            assert!(
                !label.contains(&id) && !label.contains(&id.to_lowercase()),
                "{}{{{key}={label:?}}}",
                sample.name
            );
        }
    }
    assert!(!text.contains(&id), "{text}");
    assert!(!text.contains(&viewer) && !text.contains(&scoped));

    // Who may scrape.
    let missing = get(port, "/metrics", None);
    assert_eq!(missing.status, 401, "{}", missing.body);
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"coco\"")
    );
    let zeros = format!("coco_{}", "0".repeat(64));
    assert_eq!(get(port, "/metrics", Some(&zeros)).status, 401);
    let limited = get(port, "/metrics", Some(&scoped));
    assert_eq!(limited.status, 403, "{}", limited.body);
    assert!(
        limited.json()["error"]
            .as_str()
            .unwrap()
            .contains("not limited to projects"),
        "{}",
        limited.body
    );
    drop(daemon);
}

#[test]
fn open_metrics_needs_no_token() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.dir.path().join(".coco/local.yaml"),
        "logging:\n  stderr: WARNING\nfolder:\n  home: ~/home\n  state: ~/state\napi:\n  open_metrics: true\n",
    )
    .unwrap();
    let shown = ok(&sandbox, &["config"], 0);
    let line = shown
        .lines()
        .find(|line| line.contains("api.open_metrics"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        line.contains("true") && line.contains("local.yaml"),
        "{line}"
    );
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = sandbox.spawn(&["daemon", "--no-worker", "--api-listen", &listen]);
    daemon.wait_for_log(&format!("daemon: API on http://{listen}"));
    let (_, samples) = scrape(port, None);
    assert!(value(&samples, "coco_runs", &[("state", "complete")]).is_some());
    // `/api/` still needs a token.
    assert_eq!(get(port, "/api/v1/token/self", None).status, 401);
    drop(daemon);

    // Off by default.
    let sandbox = Sandbox::new();
    let shown = ok(&sandbox, &["config"], 0);
    assert!(
        shown
            .lines()
            .any(|line| line.contains("api.open_metrics") && line.contains("false")),
        "{shown}"
    );
}

#[test]
fn a_wrong_typed_open_metrics_is_a_located_error() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.dir.path().join(".coco/local.yaml"),
        "folder:\n  home: ~/home\napi:\n  open_metrics: sometimes\n",
    )
    .unwrap();
    let config = sandbox.coco(&["config"]);
    let said = stderr(&config);
    assert_ne!(config.status.code(), Some(0), "{said}");
    assert!(said.contains("local.yaml:4:17"), "{said}");
    assert!(said.contains("expected a boolean"), "{said}");
    let daemon = sandbox.coco(&["daemon", "--no-worker"]);
    assert_ne!(daemon.status.code(), Some(0));
    assert!(
        stderr(&daemon).contains("local.yaml:4:17"),
        "{}",
        stderr(&daemon)
    );
    // From the environment, named as such.
    std::fs::write(
        sandbox.dir.path().join(".coco/local.yaml"),
        "folder:\n  home: ~/home\n",
    )
    .unwrap();
    let from_env = sandbox.coco_env(&["config"], &[("COCO_API__OPEN_METRICS", "maybe")]);
    assert_ne!(from_env.status.code(), Some(0));
    assert!(
        stderr(&from_env).contains("COCO_API__OPEN_METRICS"),
        "{}",
        stderr(&from_env)
    );
}

/// A schedule's fires are measured: how late each fired after its due instant.
#[test]
fn fires_are_measured_for_their_lateness() {
    let sandbox = Sandbox::new();
    sandbox.project(
        "clock",
        "jobs:\n  tick:\n    command: ['true']\n    schedule: '* * * * * *'\n",
    );
    sandbox.apply();
    let viewer = create(&sandbox, &["prometheus", "--role", "viewer"]);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = sandbox.spawn(&["daemon", "--no-worker", "--api-listen", &listen]);
    daemon.wait_for_log(&format!("daemon: API on http://{listen}"));
    let (answer, samples) = scrape_until(port, &viewer, |samples| {
        value(samples, "coco_schedule_lateness_seconds_count", &[]).is_some_and(|n| n >= 2.0)
    });
    let fires = value(&samples, "coco_schedule_lateness_seconds_count", &[]).unwrap();
    // (Without a worker the first run waits, and the next instants are skipped for it: each
    // is a fire, measured, that enqueues nothing.)
    assert_eq!(sandbox.list_json(&["--project", "clock"]).len(), 1);
    let sum = value(&samples, "coco_schedule_lateness_seconds_sum", &[]).unwrap();
    assert!(sum >= 0.0, "a fire before its instant: {}", answer.body);
    assert_eq!(
        value(
            &samples,
            "coco_schedule_lateness_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(fires)
    );
    drop(daemon);
}
