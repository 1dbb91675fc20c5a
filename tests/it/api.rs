//! The HTTP API of a real `coco daemon`, over real TCP, on both stores: `/healthz`, the token
//! check in front of every `/api/` route (missing, malformed, unknown, revoked, expired),
//! `token/self`, errors as JSON, a token's last use recorded; `api.enabled: false`, a taken
//! port and a bad `api.listen` refused.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use chrono::{TimeDelta, Utc};

use coco::access::{self, Role};
use coco::store::{StoreLocation, TokenRecord};

use crate::support::{Background, Sandbox, free_port, ok, stderr};

/// One answer: status, headers (lowercase names), body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `METHOD path` on `port` with `headers`, HTTP/1.1, the connection closed after.
pub(crate) fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    http_with(port, method, path, headers, b"")
}

/// [`http`] with a body.
pub(crate) fn http_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += &format!("Content-Length: {}\r\n\r\n", body.len());
    stream.write_all(request.as_bytes()).unwrap();
    // A server may answer (413) and close before it has read all of a large body.
    let _ = stream.write_all(body);
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// `GET path` with `secret` is answered `status`, with an error that says `says`.
fn refused_with(port: u16, path: &str, secret: &str, status: u16, says: &str) {
    let refused = get(port, path, Some(secret));
    assert_eq!(refused.status, status, "{path}: {}", refused.body);
    let error = refused.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains(says), "{path}: {}", refused.body);
}

pub(crate) fn get(port: u16, path: &str, secret: Option<&str>) -> Answer {
    match secret {
        Some(secret) => http(
            port,
            "GET",
            path,
            &[("Authorization", &format!("Bearer {secret}"))],
        ),
        None => http(port, "GET", path, &[]),
    }
}

/// A daemon (no worker) serving the API on a free port.
pub(crate) fn daemon(sandbox: &Sandbox) -> (Background, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = sandbox.spawn(&["daemon", "--no-worker", "--api-listen", &listen]);
    daemon.wait_for_log(&format!("daemon: API on http://{listen}"));
    (daemon, port)
}

pub(crate) fn create(sandbox: &Sandbox, args: &[&str]) -> String {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    ok(sandbox, &all, 0).trim().to_string()
}

/// Write a token that expired a minute ago straight into the sandbox's store (the command
/// line refuses to make one); its secret.
pub(crate) fn expired_token(sandbox: &Sandbox) -> String {
    let location = match sandbox.store_args.as_slice() {
        [_, url, _, database] => StoreLocation::Mongo {
            url: url.clone(),
            database: database.clone(),
        },
        _ => StoreLocation::Embedded {
            path: sandbox.dir.path().join("state/coco.db"),
        },
    };
    let secret = access::new_secret().unwrap();
    let token = TokenRecord {
        name: "old".into(),
        role: Role::Admin,
        projects: Vec::new(),
        hash: access::secret_hash(&secret),
        created: Utc::now() - TimeDelta::days(2),
        expires: Some(Utc::now() - TimeDelta::minutes(1)),
        last_used: None,
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = coco::store::open(&location).await.expect("open the store");
        assert!(store.create_token(&token).await.expect("create"));
    });
    secret
}

#[test]
fn the_api_on_the_embedded_store() {
    api(&Sandbox::with_stderr_level("DEBUG"));
}

#[test]
fn the_api_on_mongodb() {
    if let Some(sandbox) = Sandbox::on_mongodb("coco_api") {
        api(&sandbox);
    }
}

fn api(sandbox: &Sandbox) {
    let viewer = create(sandbox, &["grafana", "--role", "viewer"]);
    let operator = create(
        sandbox,
        &["deploy", "--role", "operator", "--project", "shop"],
    );
    let admin = create(sandbox, &["root", "--role", "admin", "--expires", "1h"]);
    let expired = expired_token(sandbox);
    let (daemon, port) = daemon(sandbox);

    // No token needed, nothing told but that the store answers.
    let health = get(port, "/healthz", None);
    assert_eq!(
        (health.status, health.json()),
        (200, serde_json::json!({"status": "ok"}))
    );

    // Every way of not having a valid token: 401, a JSON error, the scheme to use.
    let zeros = format!("coco_{}", "0".repeat(64));
    for (secret, says) in [
        (None, "send a token"),
        (Some("coco_short"), "not a coco token"),
        (Some(viewer.to_uppercase().as_str()), "not a coco token"),
        (Some(zeros.as_str()), "unknown or revoked"),
        (Some(expired.as_str()), "expired"),
    ] {
        let refused = get(port, "/api/v1/token/self", secret);
        assert_eq!(refused.status, 401, "{secret:?}: {}", refused.body);
        assert_eq!(
            refused.header("www-authenticate"),
            Some("Bearer realm=\"coco\"")
        );
        assert!(
            refused.json()["error"].as_str().unwrap().contains(says),
            "{}",
            refused.body
        );
    }
    let basic = http(
        port,
        "GET",
        "/api/v1/token/self",
        &[("Authorization", "Basic dTpw")],
    );
    assert_eq!(basic.status, 401);

    // token/self: who the caller is and what it may do.
    let me = get(port, "/api/v1/token/self", Some(&viewer));
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(
        me.json(),
        serde_json::json!({"name": "grafana", "role": "viewer", "projects": [], "expires": null,
                           "may": {"read": true, "operate": false, "administer": false}})
    );
    let me = get(port, "/api/v1/token/self", Some(&operator)).json();
    assert_eq!(
        (me["projects"].clone(), me["may"]["operate"].clone()),
        (serde_json::json!(["shop"]), true.into())
    );
    assert_eq!(me["may"]["administer"], false);
    let me = get(port, "/api/v1/token/self", Some(&admin)).json();
    assert_eq!(me["may"]["administer"], true);
    assert!(me["expires"].is_string());

    // Its use is recorded; unused tokens stay "never".
    let tokens: Vec<serde_json::Value> =
        serde_json::from_str(&ok(sandbox, &["token", "list", "--json"], 0)).unwrap();
    let used = |name: &str| tokens.iter().find(|t| t["name"] == name).unwrap()["last_used"].clone();
    assert!(
        used("grafana").is_string() && used("deploy").is_string(),
        "{tokens:?}"
    );
    assert!(used("old").is_null());

    // Errors are JSON too.
    let missing = get(port, "/nope", None);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "no such route");
    let wrong_method = http(port, "POST", "/healthz", &[]);
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.json()["error"].is_string());

    // A revoked token is refused from the next request on.
    ok(sandbox, &["token", "revoke", "grafana"], 0);
    let revoked = get(port, "/api/v1/token/self", Some(&viewer));
    assert_eq!(revoked.status, 401);
    assert!(revoked.body.contains("unknown or revoked"));

    // No secret in anything the daemon said (its log is at DEBUG on the embedded store).
    let log = daemon.log();
    for secret in [&viewer, &operator, &admin, &expired] {
        assert!(
            !log.contains(secret.as_str()),
            "a secret in the daemon's log:\n{log}"
        );
    }
    drop(daemon);
}

#[test]
fn a_daemon_with_the_api_turned_off_serves_nothing_and_a_taken_port_stops_it() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.dir.path().join(".coco/local.yaml"),
        "logging:\n  stderr: WARNING\nfolder:\n  home: ~/home\n  state: ~/state\napi:\n  enabled: false\n",
    )
    .unwrap();
    let daemon = sandbox.spawn(&["daemon", "--no-worker"]);
    daemon.wait_for_log("daemon: home");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!daemon.log().contains("API on"), "{}", daemon.log());
    drop(daemon);

    // A port in use: the daemon says so and stops, before it starts anything.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let refused = sandbox.coco(&[
        "daemon",
        "--no-worker",
        "--api-listen",
        &format!("127.0.0.1:{port}"),
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains(&format!("the API cannot listen on 127.0.0.1:{port}")));
    assert!(!String::from_utf8_lossy(&refused.stdout).contains("daemon: home"));

    // A flag that is not IP:PORT is refused by the command line.
    let bad = sandbox.coco(&["daemon", "--api-listen", "localhost:5001"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("expected IP:PORT"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn a_bad_api_listen_is_a_located_error() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.dir.path().join(".coco/local.yaml"),
        "folder:\n  home: ~/home\napi:\n  listen: localhost:5001\n",
    )
    .unwrap();
    // (The sandbox's own COCO_API__LISTEN, a good one, is a layer above the file: each
    // layer is checked on its own.)
    let config = sandbox.coco(&["config"]);
    let said = stderr(&config);
    assert_ne!(config.status.code(), Some(0), "{said}");
    assert!(said.contains("local.yaml:4:11"), "{said}");
    assert!(said.contains("expected IP:PORT"), "{said}");
    // From the environment, named as such.
    let from_env = sandbox.coco_env(&["config"], &[("COCO_API__LISTEN", "5001")]);
    assert!(
        stderr(&from_env).contains("COCO_API__LISTEN"),
        "{}",
        stderr(&from_env)
    );
}

#[test]
fn runs_on_the_embedded_store() {
    runs(&Sandbox::new());
}

#[test]
fn runs_on_mongodb() {
    if let Some(sandbox) = Sandbox::on_mongodb("coco_api_runs") {
        runs(&sandbox);
    }
}

/// `GET runs/{id}` is `coco detail ID --json`, by whole id or prefix; `…/output` the kept
/// tail; another project's run is answered as a missing one.
fn runs(sandbox: &Sandbox) {
    sandbox.project(
        "shop",
        "jobs:\n  hello:\n    command: [sh, -c, 'echo hello from {{args.who}}']\n    args: {who: nobody}\n",
    );
    sandbox.project("billing", "jobs:\n  quiet:\n    command: ['true']\n");
    sandbox.apply();
    let viewer = create(sandbox, &["all-seeing", "--role", "viewer"]);
    let elsewhere = create(
        sandbox,
        &["billing-ops", "--role", "operator", "--project", "billing"],
    );
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = sandbox.spawn(&["daemon", "--slots", "1", "--api-listen", &listen]);
    daemon.wait_for_log(&format!("daemon: API on http://{listen}"));
    let id = ok(
        sandbox,
        &["enqueue", "shop.hello", "--arg", "who=api", "--wait"],
        0,
    );
    let id = id.lines().next().unwrap_or_default().trim().to_string();
    assert_eq!(id.len(), 26, "{id:?}");

    let cli: serde_json::Value =
        serde_json::from_str(&ok(sandbox, &["detail", &id, "--json"], 0)).unwrap();
    for typed in [id.clone(), id[..10].to_lowercase()] {
        let answer = get(port, &format!("/api/v1/runs/{typed}"), Some(&viewer));
        assert_eq!(answer.status, 200, "{typed}: {}", answer.body);
        assert_eq!(answer.json(), cli, "the API and `coco detail --json` agree");
    }
    assert_eq!(cli["run"]["state"], "complete", "{cli:#}");
    let output = get(port, &format!("/api/v1/runs/{id}/output"), Some(&viewer));
    assert_eq!(output.status, 200);
    assert_eq!(
        output.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(output.body.contains("hello from api"), "{}", output.body);

    // A token of another project: the run does not exist for it, word for word.
    let unknown = "01JD6W3B6Z8J8Q0M3TTV4M9N7C";
    let hidden = get(port, &format!("/api/v1/runs/{id}"), Some(&elsewhere));
    let missing = get(port, &format!("/api/v1/runs/{unknown}"), Some(&elsewhere));
    assert_eq!((hidden.status, missing.status), (404, 404));
    assert_eq!(
        hidden.json()["error"].as_str().unwrap().replace(&id, "ID"),
        missing.json()["error"]
            .as_str()
            .unwrap()
            .replace(unknown, "ID")
    );
    let hidden_output = get(port, &format!("/api/v1/runs/{id}/output"), Some(&elsewhere));
    assert_eq!(hidden_output.status, 404);
    assert!(!hidden_output.body.contains("hello"));

    for (typed, says) in [("01j!", "not a run id"), ("01j", "too short")] {
        let refused = get(port, &format!("/api/v1/runs/{typed}"), Some(&viewer));
        assert_eq!(refused.status, 400, "{typed}: {}", refused.body);
        assert!(
            refused.json()["error"].as_str().unwrap().contains(says),
            "{}",
            refused.body
        );
    }
    assert_eq!(get(port, &format!("/api/v1/runs/{id}"), None).status, 401);

    // log: the run's records as `coco log --run ID --json` has them (the daemon ships them
    // in batches: asked again until both agree); none for another project's token.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let records = loop {
        let api = get(
            port,
            &format!("/api/v1/log?run={id}&limit=100"),
            Some(&viewer),
        );
        assert_eq!(api.status, 200, "{}", api.body);
        let cli: serde_json::Value = serde_json::from_str(&ok(
            sandbox,
            &["log", "--run", &id, "-n", "100", "--json"],
            0,
        ))
        .unwrap();
        let api = api.json();
        if api == cli && api.as_array().is_some_and(|r| !r.is_empty()) {
            break api;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "api {api:#}\ncli {cli:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        records
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["run"] == id.as_str())
    );
    for path in [
        format!("/api/v1/log?run={id}"),
        "/api/v1/log?project=shop".to_string(),
        "/api/v1/log?job=shop.hello".to_string(),
    ] {
        let none = get(port, &path, Some(&elsewhere));
        assert_eq!(
            (none.status, none.json()),
            (200, serde_json::json!([])),
            "{path}"
        );
    }
    let theirs = get(port, "/api/v1/log?limit=1000", Some(&elsewhere)).json();
    assert!(
        theirs
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["project"] == "billing"),
        "{theirs:#}"
    );
    let warnings = get(port, "/api/v1/log?level=warning&since=1h", Some(&viewer));
    assert_eq!(warnings.status, 200, "{}", warnings.body);
    assert!(
        warnings
            .json()
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["levelno"].as_u64() >= Some(30))
    );
    for (path, says) in [
        ("/api/v1/log?level=LOUD", "level"),
        ("/api/v1/log?since=yesterday", "since"),
        ("/api/v1/log?limit=0", "limit"),
        ("/api/v1/log?run=01j!", "run"),
        ("/api/v1/log?host=x", "unknown field `host`"),
    ] {
        refused_with(port, path, &viewer, 400, says);
    }
    drop(daemon);
}

/// `POST path` with a JSON `body` and `secret`.
pub(crate) fn post(port: u16, path: &str, secret: &str, body: &str) -> Answer {
    let bearer = format!("Bearer {secret}");
    http_with(
        port,
        "POST",
        path,
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// The secrets of an operator of `shop`, one of `billing`, and a viewer of everything.
struct Tokens {
    operator: String,
    elsewhere: String,
    viewer: String,
}

/// Projects `shop` (job `slow`: `sleep {{args.secs}}`) and `billing` applied, and [`Tokens`].
fn shop_and_billing(sandbox: &Sandbox) -> Tokens {
    sandbox.project(
        "shop",
        "jobs:\n  slow:\n    command: [sleep, '{{args.secs}}']\n    args: {secs: 30}\n",
    );
    sandbox.project("billing", "jobs:\n  quiet:\n    command: ['true']\n");
    sandbox.apply();
    let operator = create(
        sandbox,
        &["shop-ops", "--role", "operator", "--project", "shop"],
    );
    let elsewhere = create(
        sandbox,
        &["billing-ops", "--role", "operator", "--project", "billing"],
    );
    let viewer = create(sandbox, &["watcher", "--role", "viewer"]);
    Tokens {
        operator,
        elsewhere,
        viewer,
    }
}

#[test]
fn enqueue_on_the_embedded_store() {
    enqueue(&Sandbox::new());
}

#[test]
fn enqueue_on_mongodb() {
    if let Some(sandbox) = Sandbox::on_mongodb("coco_api_enq") {
        enqueue(&sandbox);
    }
}

/// `POST jobs/{job}/enqueue`: 201 with the run for an operator of its project, 409 naming the
/// blocking run, 403 for a viewer, 404 for a job of another project as for none; bad bodies
/// are 400s that say what is wrong, a large one a 413.
fn enqueue(sandbox: &Sandbox) {
    let Tokens {
        operator,
        elsewhere,
        viewer,
    } = shop_and_billing(sandbox);
    let (daemon, port) = daemon(sandbox);
    let path = "/api/v1/jobs/shop.slow/enqueue";

    let created = post(
        port,
        path,
        &operator,
        r#"{"args": {"secs": 31}, "priority": 5}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let run = created.json();
    let id = run["id"].as_str().unwrap().to_string();
    assert_eq!(
        (run["job"].as_str(), run["state"].as_str()),
        (Some("shop.slow"), Some("pending"))
    );
    assert_eq!(
        (run["args"]["secs"].as_i64(), run["priority"].as_i64()),
        (Some(31), Some(5))
    );
    let cli: serde_json::Value =
        serde_json::from_str(&ok(sandbox, &["detail", &id, "--json"], 0)).unwrap();
    assert_eq!(cli["run"]["args"], run["args"]);

    // The same arguments again while it waits: 409, naming it.
    let duplicate = post(port, path, &operator, r#"{"args": {"secs": 31}}"#);
    assert_eq!(duplicate.status, 409, "{}", duplicate.body);
    assert_eq!(duplicate.json()["run"], id.as_str());

    let forbidden = post(port, path, &viewer, "{}");
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    assert!(
        forbidden.json()["error"]
            .as_str()
            .unwrap()
            .contains("viewer")
    );
    let hidden = post(port, path, &elsewhere, "{}");
    let missing = post(port, "/api/v1/jobs/shop.nope/enqueue", &elsewhere, "{}");
    assert_eq!((hidden.status, missing.status), (404, 404));
    assert_eq!(
        hidden.json()["error"]
            .as_str()
            .unwrap()
            .replace("shop.slow", "JOB"),
        missing.json()["error"]
            .as_str()
            .unwrap()
            .replace("shop.nope", "JOB")
    );

    for (body, says) in [
        (r#"{"argz": {}}"#, "unknown field `argz`"),
        (r#"{"force": "yes"}"#, "invalid type"),
        (r#"{"args": [1, 2]}"#, "invalid type"),
        ("not json", "expected"),
        ("", "EOF"),
    ] {
        let refused = post(port, path, &operator, body);
        assert_eq!(refused.status, 400, "{body:?}: {}", refused.body);
        assert!(
            refused.json()["error"].as_str().unwrap().contains(says),
            "{body:?}: {}",
            refused.body
        );
    }
    let no_type = http_with(
        port,
        "POST",
        path,
        &[("Authorization", &format!("Bearer {operator}"))],
        b"{}",
    );
    assert_eq!(no_type.status, 400, "{}", no_type.body);
    let large = format!(r#"{{"args": {{"blob": "{}"}}}}"#, "x".repeat(2 << 20));
    let too_large = post(port, path, &operator, &large);
    assert_eq!(
        too_large.status,
        413,
        "{}",
        &too_large.body[..too_large.body.len().min(200)]
    );
    assert_eq!(
        http(port, "POST", path, &[("Content-Type", "application/json")]).status,
        401
    );
    // Nothing the refused calls asked for was enqueued.
    let runs = sandbox.list_json(&["--job", "shop.slow"]);
    assert_eq!(runs.len(), 1, "{runs:?}");
    ok(sandbox, &["kill", &id], 0);
    drop(daemon);
}

#[test]
fn operating_on_the_embedded_store() {
    operating(&Sandbox::new());
}

#[test]
fn operating_on_mongodb() {
    if let Some(sandbox) = Sandbox::on_mongodb("coco_api_op") {
        operating(&sandbox);
    }
}

/// kill, remove, restart, pause and resume over HTTP: each for an operator of the project,
/// a 403 for a viewer, a 404 for another project's token; what the CLI then sees agrees.
fn operating(sandbox: &Sandbox) {
    let Tokens {
        operator,
        elsewhere,
        viewer,
    } = shop_and_billing(sandbox);
    let admin = create(sandbox, &["root", "--role", "admin"]);
    let (daemon, port) = daemon(sandbox);
    let enqueue = |secs: u32| {
        let answer = post(
            port,
            "/api/v1/jobs/shop.slow/enqueue",
            &operator,
            &format!(r#"{{"args": {{"secs": {secs}}}}}"#),
        );
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.json()["id"].as_str().unwrap().to_string()
    };
    let state = |id: &str| -> String {
        let detail: serde_json::Value =
            serde_json::from_str(&ok(sandbox, &["detail", id, "--json"], 0)).unwrap();
        detail["run"]["state"].as_str().unwrap().to_string()
    };

    // kill
    let first = enqueue(40);
    let kill = format!("/api/v1/runs/{first}/kill");
    assert_eq!(post(port, &kill, &viewer, "").status, 403);
    assert_eq!(post(port, &kill, &elsewhere, "").status, 404);
    let killed = post(port, &kill, &operator, "");
    assert_eq!(killed.status, 200, "{}", killed.body);
    assert_eq!(killed.json()["state"], "killed");
    assert_eq!(state(&first), "killed");
    let again = post(port, &kill, &operator, "");
    assert_eq!(again.status, 409);
    assert!(
        again.json()["error"]
            .as_str()
            .unwrap()
            .contains("killed already"),
        "{}",
        again.body
    );

    // remove, by a prefix
    let second = enqueue(41);
    let removed = post(
        port,
        &format!("/api/v1/runs/{}/remove", &second[..12]),
        &operator,
        "",
    );
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(state(&second), "removed");

    // restart: a new run linked to the old; a second restart meets the first's run waiting
    let restart = format!("/api/v1/runs/{first}/restart");
    assert_eq!(post(port, &restart, &viewer, "").status, 403);
    let restarted = post(port, &restart, &operator, "");
    assert_eq!(restarted.status, 201, "{}", restarted.body);
    let new = restarted.json();
    assert_eq!(new["restart_of"], first.as_str(), "{new:#}");
    assert_eq!(new["args"]["secs"], 40);
    let twice = post(port, &restart, &operator, "");
    assert_eq!(twice.status, 409, "{}", twice.body);
    assert_eq!(twice.json()["run"], new["id"]);
    let pending = post(
        port,
        &format!("/api/v1/runs/{}/restart", new["id"].as_str().unwrap()),
        &operator,
        "",
    );
    assert_eq!(pending.status, 409);
    assert!(
        pending.json()["error"]
            .as_str()
            .unwrap()
            .contains("nothing to restart")
    );

    // pause and resume
    let mode = || -> serde_json::Value {
        serde_json::from_str(&ok(sandbox, &["mode", "--json"], 0)).unwrap()
    };
    let all = post(port, "/api/v1/pause", &operator, "");
    assert_eq!(all.status, 403, "{}", all.body);
    assert!(
        all.json()["error"]
            .as_str()
            .unwrap()
            .contains(r#"{"project": "shop"}"#)
    );
    let shop = post(port, "/api/v1/pause", &operator, r#"{"project": "shop"}"#);
    assert_eq!(shop.status, 200, "{}", shop.body);
    assert_eq!(shop.json()["paused_projects"], serde_json::json!(["shop"]));
    assert_eq!(mode()["paused_projects"], serde_json::json!(["shop"]));
    assert_eq!(
        post(
            port,
            "/api/v1/pause",
            &operator,
            r#"{"project": "billing"}"#
        )
        .status,
        404
    );
    assert_eq!(
        post(port, "/api/v1/pause", &viewer, r#"{"project": "shop"}"#).status,
        403
    );
    let bad = post(port, "/api/v1/pause", &admin, r#"{"projects": ["shop"]}"#);
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `projects`")
    );
    // A body over the limit is refused in JSON too (it is read as bytes here).
    let large = format!(r#"{{"project": "{}"}}"#, "x".repeat(2 << 20));
    let too_large = post(port, "/api/v1/pause", &admin, &large);
    assert_eq!(too_large.status, 413);
    assert!(too_large.json()["error"].as_str().unwrap().contains("KiB"));
    let everything = post(port, "/api/v1/pause", &admin, "");
    assert_eq!(
        (everything.status, everything.json()["paused"].clone()),
        (200, true.into())
    );
    assert_eq!(mode()["paused"], true);
    let resumed = post(port, "/api/v1/resume", &admin, "");
    assert_eq!(resumed.json()["paused"], false);
    let resumed = post(port, "/api/v1/resume", &operator, r#"{"project": "shop"}"#);
    assert_eq!(resumed.json()["paused_projects"], serde_json::json!([]));
    assert_eq!(mode()["paused"], false);

    ok(sandbox, &["kill", new["id"].as_str().unwrap()], 0);
    drop(daemon);
}

#[test]
fn listing_runs_on_the_embedded_store() {
    listing_runs(&Sandbox::new());
}

#[test]
fn listing_runs_on_mongodb() {
    if let Some(sandbox) = Sandbox::on_mongodb("coco_api_list") {
        listing_runs(&sandbox);
    }
}

/// `GET runs`: newest first, a page at a time by `next`, as `coco list --json` orders them;
/// a token limited to a project sees only its runs, another project's listing is empty.
fn listing_runs(sandbox: &Sandbox) {
    let Tokens {
        operator,
        elsewhere: _,
        viewer,
    } = shop_and_billing(sandbox);
    let (daemon, port) = daemon(sandbox);
    for secs in [31, 32, 33] {
        sandbox.enqueue(&["shop.slow", "--arg", &format!("secs={secs}")]);
    }
    sandbox.enqueue(&["billing.quiet"]);
    let ids = |runs: &serde_json::Value| -> Vec<String> {
        runs.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let cli: serde_json::Value =
        serde_json::from_str(&ok(sandbox, &["list", "--json"], 0)).unwrap();
    let all = ids(&cli);
    assert_eq!(all.len(), 4);

    // Two pages of two, then nothing more.
    let first = get(port, "/api/v1/runs?limit=2", Some(&viewer));
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json();
    assert_eq!(ids(&first["runs"]), all[..2]);
    let next = first["next"].as_str().unwrap().to_string();
    let second = get(
        port,
        &format!("/api/v1/runs?limit=2&before={next}"),
        Some(&viewer),
    )
    .json();
    assert_eq!(ids(&second["runs"]), all[2..]);
    let third = get(
        port,
        &format!(
            "/api/v1/runs?limit=2&before={}",
            second["next"].as_str().unwrap()
        ),
        Some(&viewer),
    )
    .json();
    assert_eq!(
        (ids(&third["runs"]).len(), third["next"].clone()),
        (0, serde_json::Value::Null)
    );
    // The same records as the CLI's, field for field.
    let shop = get(port, "/api/v1/runs?job=shop.slow", Some(&viewer)).json();
    let cli_shop: serde_json::Value =
        serde_json::from_str(&ok(sandbox, &["list", "--job", "shop.slow", "--json"], 0)).unwrap();
    assert_eq!(shop["runs"], cli_shop);
    assert_eq!(shop["next"], serde_json::Value::Null);
    let pending = get(
        port,
        "/api/v1/runs?state=pending&project=billing",
        Some(&viewer),
    )
    .json();
    assert_eq!(ids(&pending["runs"]).len(), 1);

    // Limited to shop: only shop's runs; billing's listing is empty, as for no project.
    let mine = get(port, "/api/v1/runs", Some(&operator)).json();
    assert_eq!(ids(&mine["runs"]), ids(&cli_shop));
    for path in [
        "/api/v1/runs?project=billing",
        "/api/v1/runs?job=billing.quiet",
        "/api/v1/runs?project=nope",
    ] {
        let none = get(port, path, Some(&operator));
        assert_eq!(
            (none.status, ids(&none.json()["runs"]).len()),
            (200, 0),
            "{path}"
        );
    }

    // jobs and apps: what `coco jobs --json` and `coco apps --json` print, limited alike.
    let cli_jobs: serde_json::Value =
        serde_json::from_str(&ok(sandbox, &["jobs", "--json"], 0)).unwrap();
    assert_eq!(cli_jobs.as_array().map(Vec::len), Some(2), "{cli_jobs:#}");
    assert_eq!(get(port, "/api/v1/jobs", Some(&viewer)).json(), cli_jobs);
    let shop_jobs: serde_json::Value =
        serde_json::from_str(&ok(sandbox, &["jobs", "--project", "shop", "--json"], 0)).unwrap();
    assert_eq!(get(port, "/api/v1/jobs", Some(&operator)).json(), shop_jobs);
    assert_eq!(
        get(port, "/api/v1/jobs?project=shop", Some(&viewer)).json(),
        shop_jobs
    );
    assert_eq!(
        get(port, "/api/v1/jobs?project=billing", Some(&operator)).json(),
        serde_json::json!([])
    );
    let cli_apps: serde_json::Value =
        serde_json::from_str(&ok(sandbox, &["apps", "--json"], 0)).unwrap();
    assert_eq!(get(port, "/api/v1/apps", Some(&viewer)).json(), cli_apps);
    assert_eq!(get(port, "/api/v1/jobs?team=x", Some(&viewer)).status, 400);

    for (path, says) in [
        ("/api/v1/runs?limit=0", "limit"),
        ("/api/v1/runs?limit=5000", "limit"),
        ("/api/v1/runs?limit=many", "limit"),
        ("/api/v1/runs?state=nope", "state: unknown `nope`"),
        ("/api/v1/runs?colour=red", "unknown field `colour`"),
        (
            "/api/v1/runs?before=01JD6W3B6Z8J8Q0M3TTV4M9N7C",
            "before: no run",
        ),
    ] {
        refused_with(port, path, &viewer, 400, says);
    }
    drop(daemon);
}

#[test]
fn members_on_the_embedded_store() {
    members(&Sandbox::new());
}

#[test]
fn members_on_mongodb() {
    if let Some(sandbox) = Sandbox::on_mongodb("coco_api_mem") {
        members(&sandbox);
    }
}

/// `GET members`: `coco alive --json`'s members, each with the runs it runs now, of which a
/// token limited to another project sees none.
fn members(sandbox: &Sandbox) {
    let Tokens {
        operator,
        elsewhere,
        viewer,
    } = shop_and_billing(sandbox);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = sandbox.spawn(&[
        "daemon",
        "--slots",
        "2",
        "--name",
        "d1",
        "--api-listen",
        &listen,
    ]);
    daemon.wait_for_log(&format!("daemon: API on http://{listen}"));
    let id = sandbox.enqueue(&["shop.slow"]);
    sandbox.wait_for_state(&id, "running");

    let cli: serde_json::Value =
        serde_json::from_str(&ok(sandbox, &["alive", "--json"], 0)).unwrap();
    let names = |members: &serde_json::Value| -> Vec<(String, String)> {
        members
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().into(),
                    m["kind"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let seen = get(port, "/api/v1/members", Some(&viewer));
    assert_eq!(seen.status, 200, "{}", seen.body);
    let seen = seen.json();
    assert_eq!(names(&seen), names(&cli));
    assert_eq!(names(&seen), [("d1".to_string(), "daemon".to_string())]);
    assert_eq!(seen[0]["running"], serde_json::json!([id]));
    assert_eq!(seen[0]["slots"], 2);
    assert_eq!(
        get(port, "/api/v1/members", Some(&operator)).json()[0]["running"],
        serde_json::json!([id])
    );
    let other = get(port, "/api/v1/members", Some(&elsewhere)).json();
    assert_eq!(names(&other), names(&cli), "members are no project's");
    assert_eq!(other[0]["running"], serde_json::json!([]), "{other:#}");
    assert_eq!(get(port, "/api/v1/members", None).status, 401);
    ok(sandbox, &["kill", &id], 0);
    drop(daemon);
}

#[test]
fn the_home_on_the_embedded_store() {
    home_views(&Sandbox::new());
}

#[test]
fn the_home_on_mongodb() {
    let Some(sandbox) = Sandbox::on_mongodb("api_home") else {
        return;
    };
    home_views(&sandbox);
}

/// The value without the members' volatile parts (heartbeats move between two reads).
fn steady(mut status: serde_json::Value) -> serde_json::Value {
    for member in status["members"].as_array_mut().into_iter().flatten() {
        member.as_object_mut().unwrap().remove("heartbeat");
    }
    status
}

/// `GET status`, `projects` and `plan`: what `coco status --json`, `coco projects --json` and
/// `coco plan --json` print, and for a token limited to a project only that project's part.
fn home_views(sandbox: &Sandbox) {
    sandbox.project(
        "shop",
        "jobs:\n  nightly:\n    command: ['true']\n    schedule: '0 3 * * *'\n",
    );
    sandbox.project(
        "billing",
        "jobs:\n  invoice:\n    command: ['true']\n    schedule: '0 4 * * *'\n",
    );
    sandbox.apply();
    let operator = create(
        sandbox,
        &["shop-ops", "--role", "operator", "--project", "shop"],
    );
    let viewer = create(sandbox, &["watcher", "--role", "viewer"]);
    let (daemon, port) = daemon(sandbox);
    sandbox.enqueue(&["shop.nightly"]);
    sandbox.enqueue(&["billing.invoice"]);
    ok(sandbox, &["pause", "billing"], 0);

    let status = get(port, "/api/v1/status", Some(&viewer));
    assert_eq!(status.status, 200, "{}", status.body);
    let cli: serde_json::Value =
        serde_json::from_str(&ok(sandbox, &["status", "--json"], 0)).unwrap();
    assert_eq!(steady(status.json()), steady(cli.clone()));
    assert_eq!(
        cli["queue"][0],
        serde_json::json!(["pending", 2]),
        "{cli:#}"
    );

    let mine = get(port, "/api/v1/status", Some(&operator)).json();
    let jobs: Vec<&str> = mine["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["shop.nightly"], "{mine:#}");
    assert_eq!(
        mine["queue"][0],
        serde_json::json!(["pending", 1]),
        "{mine:#}"
    );
    assert!(
        !mine["mode"].as_str().unwrap().contains("billing"),
        "another project's pause is not shown: {mine:#}"
    );

    let projects = get(port, "/api/v1/projects", Some(&viewer));
    assert_eq!(projects.status, 200, "{}", projects.body);
    let cli: serde_json::Value =
        serde_json::from_str(&ok(sandbox, &["projects", "--json"], 0)).unwrap();
    assert_eq!(projects.json(), cli);
    let names: Vec<serde_json::Value> = get(port, "/api/v1/projects", Some(&operator))
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["name"].clone())
        .collect();
    assert_eq!(names, [serde_json::json!("shop")]);

    let plan = get(port, "/api/v1/plan", Some(&viewer));
    assert_eq!(plan.status, 200, "{}", plan.body);
    let cli: serde_json::Value =
        serde_json::from_str(&ok(sandbox, &["plan", "--json"], 0)).unwrap();
    assert_eq!(plan.json(), cli);
    assert_eq!(cli["changes"], false, "{cli:#}");
    assert_eq!(cli["invalid"], serde_json::json!([]), "{cli:#}");

    // A broken manifest: its problem, located, for whoever sees its project.
    sandbox.project("billing", "jobs:\n  invoice:\n    command: ['true'\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let problems = loop {
        let status = get(port, "/api/v1/status", Some(&viewer)).json();
        if status["problems"].as_array().is_some_and(|p| !p.is_empty()) {
            break status["problems"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no problem: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = problems[0]["problems"][0].as_str().unwrap();
    assert!(text.contains("billing/coco.yaml:4:"), "{text}");
    let plan = get(port, "/api/v1/plan", Some(&viewer)).json();
    assert!(
        plan["invalid"][0]
            .as_str()
            .unwrap()
            .contains("billing/coco.yaml:4:"),
        "{plan:#}"
    );
    let mine = get(port, "/api/v1/status", Some(&operator)).json();
    assert_eq!(mine["problems"], serde_json::json!([]), "{mine:#}");
    let plan = get(port, "/api/v1/plan", Some(&operator)).json();
    assert_eq!(plan["invalid"], serde_json::json!([]), "{plan:#}");
    for path in ["/api/v1/status", "/api/v1/projects", "/api/v1/plan"] {
        assert_eq!(get(port, path, None).status, 401, "{path}");
    }
    drop(daemon);
}

#[test]
fn the_dashboard_login_on_the_embedded_store() {
    dashboard_login(&Sandbox::new());
}

#[test]
fn the_dashboard_login_on_mongodb() {
    let Some(sandbox) = Sandbox::on_mongodb("api_login") else {
        return;
    };
    dashboard_login(&sandbox);
}

/// The code of a link `coco dashboard ARGS` prints for the daemon on `port`.
fn login_link(sandbox: &Sandbox, port: u16, args: &[&str]) -> String {
    let listen = format!("127.0.0.1:{port}");
    let mut all = vec!["dashboard", "--api-listen", &listen];
    all.extend_from_slice(args);
    let link = ok(sandbox, &all, 0);
    let prefix = format!("http://{listen}/login?code=");
    let code = link
        .trim()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("not a link: {link}"));
    assert!(access::looks_like_secret(code), "{code}");
    code.to_string()
}

/// Read a request's head from `peer` (so that closing it after the answer is a clean close,
/// not a reset that could reach the client before the answer).
fn read_request(peer: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && peer.read(&mut byte).is_ok_and(|n| n == 1) {
        head.push(byte[0]);
    }
}

/// The session cookie a login answer sets (its `name=value` part), and the whole header.
fn session_of(answer: &Answer) -> (String, String) {
    let set = answer
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no cookie: {:?}", answer.headers))
        .to_string();
    (set.split(';').next().unwrap().to_string(), set)
}

/// `coco dashboard`'s one-time link: the page, the session cookie (HttpOnly, SameSite=Strict),
/// single use, a named token's role and projects, CSRF checks on changes, logout, and the
/// session ending with its token.
fn dashboard_login(sandbox: &Sandbox) {
    let Tokens { .. } = shop_and_billing(sandbox);
    let (daemon, port) = daemon(sandbox);

    let page = get(port, "/", None);
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let policy = page.header("content-security-policy").unwrap();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(get(port, "/page/../Cargo.toml", None).status, 404);
    assert_eq!(get(port, "/page/nothing.js", None).status, 404);

    // The operator's own admin.
    let code = login_link(sandbox, port, &[]);
    let login = get(port, &format!("/login?code={code}"), None);
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(login.header("location"), Some("/"));
    let (cookie, set) = session_of(&login);
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let with_cookie = |path: &str| http(port, "GET", path, &[("Cookie", &cookie)]);
    let me = with_cookie("/api/v1/token/self");
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["role"], "admin");
    assert_eq!(me.json()["may"]["administer"], true);
    // Once only.
    let again = get(port, &format!("/login?code={code}"), None);
    assert_eq!(again.status, 401);
    assert!(again.header("set-cookie").is_none());
    assert!(again.body.contains("coco dashboard"), "{}", again.body);
    // A login code is no bearer token, a session no bearer token either.
    let unused = login_link(sandbox, port, &[]);
    refused_with(port, "/api/v1/token/self", &unused, 401, "login link");
    let session_secret = cookie.split_once('=').unwrap().1.to_string();
    refused_with(port, "/api/v1/token/self", &session_secret, 401, "unknown");
    assert_eq!(get(port, "/login?code=coco_nonsense", None).status, 401);
    assert_eq!(get(port, "/login", None).status, 401);

    // A change with the cookie comes from the page, or is refused.
    let pause = |headers: &[(&str, &str)]| {
        let mut all = vec![
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/json"),
        ];
        all.extend_from_slice(headers);
        http_with(
            port,
            "POST",
            "/api/v1/pause",
            &all,
            b"{\"project\": \"shop\"}",
        )
    };
    let host = format!("127.0.0.1:{port}");
    let origin = format!("http://{host}");
    assert_eq!(pause(&[]).status, 403, "no sign of the page");
    assert_eq!(pause(&[("Sec-Fetch-Site", "cross-site")]).status, 403);
    assert_eq!(pause(&[("Origin", "http://evil.example")]).status, 403);
    let done = pause(&[("Sec-Fetch-Site", "same-origin")]);
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(pause(&[("Origin", &origin)]).status, 200);

    // A named token's role and projects; its revocation ends the session.
    create(
        sandbox,
        &["shop-viewer", "--role", "viewer", "--project", "shop"],
    );
    let code = login_link(sandbox, port, &["--token", "shop-viewer"]);
    let (viewer_cookie, _) = session_of(&get(port, &format!("/login?code={code}"), None));
    let me = http(
        port,
        "GET",
        "/api/v1/token/self",
        &[("Cookie", &viewer_cookie)],
    )
    .json();
    assert_eq!(me["role"], "viewer", "{me:#}");
    assert_eq!(me["projects"], serde_json::json!(["shop"]), "{me:#}");
    assert_eq!(me["may"]["operate"], false, "{me:#}");
    let listed = ok(sandbox, &["token", "list"], 0);
    assert!(listed.contains("session:"), "sessions are listed: {listed}");
    assert!(!listed.contains("login:"), "links are not: {listed}");
    let revoked = ok(sandbox, &["token", "revoke", "shop-viewer"], 0);
    assert!(revoked.contains("its dashboard session"), "{revoked}");
    let after = http(
        port,
        "GET",
        "/api/v1/token/self",
        &[("Cookie", &viewer_cookie)],
    );
    assert_eq!(after.status, 401);
    let listen = format!("127.0.0.1:{port}");
    let failed = sandbox.coco(&[
        "dashboard",
        "--token",
        "shop-viewer",
        "--api-listen",
        &listen,
    ]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        stderr(&failed).contains("no token named `shop-viewer`"),
        "{}",
        stderr(&failed)
    );

    // Logout ends the admin's session.
    let out = http(
        port,
        "POST",
        "/logout",
        &[("Cookie", &cookie), ("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(with_cookie("/api/v1/token/self").status, 401);
    drop(daemon);

    // No link without a daemon to open it: nothing listening, or something that is not coco.
    let failed = sandbox.coco(&["dashboard", "--api-listen", &listen]);
    assert_eq!(failed.status.code(), Some(1));
    let said = stderr(&failed);
    assert!(
        said.contains(&format!("no coco daemon answers at http://{listen}"))
            && said.contains("start `coco daemon`"),
        "{said}"
    );
    assert!(!crate::support::stdout(&failed).contains("code="));
    let other = std::net::TcpListener::bind(&listen).unwrap();
    let silent = std::thread::spawn(move || {
        let (mut peer, _) = other.accept().unwrap();
        read_request(&mut peer);
        let _ = peer.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
    });
    let failed = sandbox.coco(&["dashboard", "--api-listen", &listen]);
    silent.join().unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        stderr(&failed).contains("what answers is not coco's API"),
        "{}",
        stderr(&failed)
    );
    // Another HTTP server (an app on the port, say).
    let other = std::net::TcpListener::bind(&listen).unwrap();
    let web = std::thread::spawn(move || {
        let (mut peer, _) = other.accept().unwrap();
        read_request(&mut peer);
        let _ = peer.write_all(b"HTTP/1.0 404 Not Found\r\n\r\n");
    });
    let failed = sandbox.coco(&["dashboard", "--api-listen", &listen]);
    web.join().unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        stderr(&failed).contains("is not coco's API (GET /healthz answered 404)"),
        "{}",
        stderr(&failed)
    );
}

#[test]
fn an_app_restart_on_the_embedded_store() {
    app_restart(&Sandbox::new());
}

#[test]
fn an_app_restart_on_mongodb() {
    let Some(sandbox) = Sandbox::on_mongodb("api_app_restart") else {
        return;
    };
    app_restart(&sandbox);
}

/// The status of app `id` once `until` holds (at most 20 s).
fn app_status_when(
    port: u16,
    secret: &str,
    id: &str,
    until: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let apps = get(port, "/api/v1/apps", Some(secret)).json();
        let status = apps
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["app"] == id)
            .map(|line| line["status"].clone())
            .unwrap_or_default();
        if until(&status) {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "{apps:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `POST apps/{id}/restart` (and `coco restart PROJECT.APP`): the daemon replaces the app's
/// process; only an operator of its project may ask, and another project's app is missing.
fn app_restart(sandbox: &Sandbox) {
    let Tokens {
        operator,
        elsewhere,
        viewer,
    } = shop_and_billing(sandbox);
    sandbox.project(
        "shop",
        "jobs:\n  slow:\n    command: [sleep, '30']\napps:\n  web:\n    command: [sleep, '600']\n",
    );
    sandbox.apply();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = sandbox.spawn(&["daemon", "--no-worker", "--api-listen", &listen]);
    daemon.wait_for_log(&format!("daemon: API on http://{listen}"));
    let first = app_status_when(port, &viewer, "shop.web", |s| s["pid"].is_u64());
    let pid = first["pid"].as_u64().unwrap();

    let refused = post(port, "/api/v1/apps/shop.web/restart", &viewer, "");
    assert_eq!(refused.status, 403, "{}", refused.body);
    let hidden = post(port, "/api/v1/apps/shop.web/restart", &elsewhere, "");
    assert_eq!(hidden.status, 404, "{}", hidden.body);
    let unknown = post(port, "/api/v1/apps/shop.nothing/restart", &operator, "");
    assert_eq!(
        hidden.body.replace("shop.web", "X"),
        unknown.body.replace("shop.nothing", "X")
    );
    assert_eq!(
        post(port, "/api/v1/apps/shop.web/restart", "", "").status,
        401
    );

    let asked = post(port, "/api/v1/apps/shop.web/restart", &operator, "");
    assert_eq!(asked.status, 202, "{}", asked.body);
    assert_eq!(asked.json()["app"], "shop.web");
    assert_eq!(asked.json()["supervised"], true);
    let second = app_status_when(port, &viewer, "shop.web", |s| {
        s["pid"].as_u64().is_some_and(|p| p != pid)
    });
    assert_eq!(second["restarts"], 1, "{second:#}");
    assert!(
        !crate::support::pid_alive(pid as i32),
        "the old process ended"
    );

    // The same from the command line.
    let said = ok(sandbox, &["restart", "shop.web"], 0);
    assert!(said.contains("restart of shop.web asked for"), "{said}");
    let third = app_status_when(port, &viewer, "shop.web", |s| s["restarts"] == 2);
    assert_ne!(third["pid"], second["pid"]);
    let failed = sandbox.coco(&["restart", "shop.nothing"]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(stderr(&failed).contains("no applied app `shop.nothing`"));
    drop(daemon);
}
