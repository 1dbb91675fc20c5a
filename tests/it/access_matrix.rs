//! The access matrix, role × route × project, against a real `coco daemon` over TCP on both
//! stores: every route the API serves (the same list `openapi.rs` holds the document to, and
//! `/metrics`) asked by every kind of caller — no token, a malformed, an unknown, an expired
//! and a revoked one; a viewer, an operator and an admin of everything; a viewer and an
//! operator of `shop`; a viewer and an operator of `billing` only. Each answer is held to
//! what this file expects, written out below by hand (not asked of `access::authorize`, so a
//! mistake there shows here). Besides the status, a refused change leaves the run as it
//! was, a listing shows a `billing` token nothing of `shop`, and a `billing` token's 404 for
//! one of shop's runs says the same as for a run that does not exist.

use std::collections::BTreeSet;

use crate::api::{Answer, create, daemon, expired_token, get, http_with, post};
use crate::openapi::{SERVED, stream_head};
use crate::support::{Sandbox, ok};

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    NoToken,
    Malformed,
    Unknown,
    Expired,
    Revoked,
    Viewer,
    Operator,
    Admin,
    ShopViewer,
    ShopOperator,
    BillingViewer,
    BillingOperator,
}

const EVERYONE: &[Who] = &[
    Who::NoToken,
    Who::Malformed,
    Who::Unknown,
    Who::Expired,
    Who::Revoked,
    Who::Viewer,
    Who::Operator,
    Who::Admin,
    Who::ShopViewer,
    Who::ShopOperator,
    Who::BillingViewer,
    Who::BillingOperator,
];

impl Who {
    /// Whether its token is one the server accepts at all.
    fn valid(self) -> bool {
        !matches!(
            self,
            Who::NoToken | Who::Malformed | Who::Unknown | Who::Expired | Who::Revoked
        )
    }
    fn operates(self) -> bool {
        matches!(
            self,
            Who::Operator | Who::Admin | Who::ShopOperator | Who::BillingOperator
        )
    }
    /// Whether it sees project `shop`.
    fn sees_shop(self) -> bool {
        !matches!(self, Who::BillingViewer | Who::BillingOperator)
    }
    /// Whether it is limited to projects.
    fn limited(self) -> bool {
        matches!(
            self,
            Who::ShopViewer | Who::ShopOperator | Who::BillingViewer | Who::BillingOperator
        )
    }
}

/// What a route touches, which decides who may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// A read of the whole home, filtered to what the token sees.
    List,
    /// A read of one of shop's runs.
    ShopRead,
    /// A change in shop.
    ShopChange,
    /// A change to the whole home (pause and resume without a project).
    HomeChange,
    /// `/metrics`: every project's series at once.
    Metrics,
}

/// The status `who` must get from a route of `reach` that answers `success` when allowed.
fn expected(who: Who, reach: Reach, success: u16) -> u16 {
    if !who.valid() {
        return 401;
    }
    match reach {
        Reach::List => success,
        Reach::ShopRead if who.sees_shop() => success,
        Reach::ShopRead => 404,
        Reach::ShopChange if !who.sees_shop() => 404,
        Reach::ShopChange if who.operates() => success,
        Reach::ShopChange => 403,
        Reach::HomeChange if who.operates() && !who.limited() => success,
        Reach::HomeChange => 403,
        Reach::Metrics if who.limited() => 403,
        Reach::Metrics => success,
    }
}

struct Secrets(Vec<(Who, String)>);

impl Secrets {
    fn of(&self, who: Who) -> &str {
        &self.0.iter().find(|(w, _)| *w == who).unwrap().1
    }
}

/// Every kind of caller's secret ("" for none).
fn secrets(sandbox: &Sandbox) -> Secrets {
    let token = |args: &[&str]| create(sandbox, args);
    let revoked = token(&["gone", "--role", "admin"]);
    ok(sandbox, &["token", "revoke", "gone"], 0);
    Secrets(vec![
        (Who::NoToken, String::new()),
        (Who::Malformed, "not-a-token".into()),
        (Who::Unknown, format!("coco_{}", "0f".repeat(32))),
        (Who::Expired, expired_token(sandbox)),
        (Who::Revoked, revoked),
        (Who::Viewer, token(&["v", "--role", "viewer"])),
        (Who::Operator, token(&["o", "--role", "operator"])),
        (Who::Admin, token(&["a", "--role", "admin"])),
        (
            Who::ShopViewer,
            token(&["shop-v", "--role", "viewer", "--project", "shop"]),
        ),
        (
            Who::ShopOperator,
            token(&["shop-o", "--role", "operator", "--project", "shop"]),
        ),
        (
            Who::BillingViewer,
            token(&["billing-v", "--role", "viewer", "--project", "billing"]),
        ),
        (
            Who::BillingOperator,
            token(&["billing-o", "--role", "operator", "--project", "billing"]),
        ),
    ])
}

fn call(port: u16, method: &str, path: &str, secret: &str, body: &str) -> Answer {
    match method {
        "get" if path.ends_with("/events") => stream_head(port, path, secret),
        "get" if secret.is_empty() => get(port, path, None),
        "get" => get(port, path, Some(secret)),
        _ if secret.is_empty() => http_with(
            port,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        ),
        _ => post(port, path, secret, body),
    }
}

#[test]
fn the_access_matrix_on_the_embedded_store() {
    access_matrix(&Sandbox::new());
}

#[test]
fn the_access_matrix_on_mongodb() {
    if let Some(sandbox) = Sandbox::on_mongodb("coco_matrix") {
        access_matrix(&sandbox);
    }
}

fn access_matrix(sandbox: &Sandbox) {
    sandbox.project(
        "shop",
        "jobs:\n  slow:\n    command: [sleep, '{{args.secs}}']\n    args: {secs: 30}\n\
         apps:\n  web:\n    command: [sleep, '600']\n",
    );
    sandbox.project("billing", "jobs:\n  quiet:\n    command: ['true']\n");
    sandbox.apply();
    let secrets = secrets(sandbox);
    let admin = secrets.of(Who::Admin).to_string();
    let (daemon, port) = daemon(sandbox);
    let mut next_secs = 100;
    // A new pending run of shop.slow (no worker runs it), enqueued by the admin: its id.
    let mut pending_run = || {
        next_secs += 1;
        let body = format!(r#"{{"args": {{"secs": {next_secs}}}}}"#);
        let made = post(port, "/api/v1/jobs/shop.slow/enqueue", &admin, &body);
        assert_eq!(made.status, 201, "{}", made.body);
        made.json()["id"].as_str().unwrap().to_string()
    };
    let kept = pending_run();
    let state_of = |id: &str| get(port, &format!("/api/v1/runs/{id}"), Some(&admin)).json();

    let reads: &[(&str, Reach)] = &[
        ("/api/v1/token/self", Reach::List),
        ("/api/v1/status", Reach::List),
        ("/api/v1/projects", Reach::List),
        ("/api/v1/plan", Reach::List),
        ("/api/v1/jobs", Reach::List),
        ("/api/v1/apps", Reach::List),
        ("/api/v1/members", Reach::List),
        ("/api/v1/log", Reach::List),
        ("/api/v1/runs", Reach::List),
        ("/api/v1/events", Reach::List),
        ("/api/v1/openapi.json", Reach::List),
        ("/api/v1/runs/{id}", Reach::ShopRead),
        ("/api/v1/runs/{id}/output", Reach::ShopRead),
        ("/metrics", Reach::Metrics),
    ];
    let mut asked: BTreeSet<(String, String)> = BTreeSet::new();
    let mut cells = 0;
    // No GET changes anything: the runs and the switches are the same after them all.
    let snapshot = || {
        (
            get(port, "/api/v1/runs?limit=1000", Some(&admin)).json(),
            get(port, "/api/v1/status", Some(&admin)).json()["mode"].clone(),
        )
    };
    let before_reads = snapshot();
    for (pattern, reach) in reads {
        asked.insert(("get".into(), pattern.to_string()));
        let path = pattern.replace("{id}", &kept);
        for &who in EVERYONE {
            let answer = call(port, "get", &path, secrets.of(who), "");
            let want = expected(who, *reach, 200);
            assert_eq!(answer.status, want, "{who:?} GET {path}: {}", answer.body);
            cells += 1;
            let lists_runs_or_jobs = ["/api/v1/runs", "/api/v1/jobs", "/api/v1/apps"];
            if want == 200 && !who.sees_shop() && lists_runs_or_jobs.contains(&path.as_str()) {
                assert!(
                    !answer.body.contains("shop"),
                    "{who:?} GET {path} shows shop: {}",
                    answer.body
                );
            }
            if want == 200 && who.sees_shop() && lists_runs_or_jobs.contains(&path.as_str()) {
                assert!(answer.body.contains("shop"), "{who:?} GET {path}");
            }
        }
    }

    assert_eq!(snapshot(), before_reads, "a GET changed the store");

    // A billing token's 404 for shop's run says what it says for a run that is not there.
    let absent = "0123456789abcdef0123456789abcdef";
    for who in [Who::BillingViewer, Who::BillingOperator] {
        for suffix in ["", "/output"] {
            let hidden = get(
                port,
                &format!("/api/v1/runs/{kept}{suffix}"),
                Some(secrets.of(who)),
            );
            let missing = get(
                port,
                &format!("/api/v1/runs/{absent}{suffix}"),
                Some(secrets.of(who)),
            );
            assert_eq!(hidden.status, missing.status);
            assert_eq!(
                hidden.body.replace(&kept, "ID"),
                missing.body.replace(absent, "ID")
            );
        }
    }

    // Changes to a run: each cell on a run of its own, so one caller's success does not
    // decide the next one's answer; a refused change leaves the run as it was.
    let run_changes: &[(&str, u16)] = &[
        ("/api/v1/runs/{id}/kill", 200),
        ("/api/v1/runs/{id}/remove", 200),
        ("/api/v1/runs/{id}/restart", 201),
    ];
    for (pattern, success) in run_changes {
        asked.insert(("post".into(), pattern.to_string()));
        for &who in EVERYONE {
            let id = pending_run();
            if pattern.ends_with("/restart") {
                // Only a finished run restarts: kill it first.
                let killed = post(port, &format!("/api/v1/runs/{id}/kill"), &admin, "");
                assert_eq!(killed.status, 200, "{}", killed.body);
            }
            let before = state_of(&id)["run"]["state"].clone();
            let path = pattern.replace("{id}", &id);
            let answer = call(port, "post", &path, secrets.of(who), "");
            let want = expected(who, Reach::ShopChange, *success);
            assert_eq!(answer.status, want, "{who:?} POST {path}: {}", answer.body);
            cells += 1;
            if want != *success {
                assert_eq!(
                    state_of(&id)["run"]["state"],
                    before,
                    "{who:?} POST {path} changed the run"
                );
            }
        }
    }

    // Enqueue: an allowed caller makes a new run (a distinct argument each), a refused one
    // none.
    asked.insert(("post".into(), "/api/v1/jobs/{job}/enqueue".into()));
    for &who in EVERYONE {
        let total = || {
            get(port, "/api/v1/runs?limit=500", Some(&admin)).json()["runs"]
                .as_array()
                .unwrap()
                .len()
        };
        let runs_before = total();
        let secs = 1000 + cells;
        let answer = call(
            port,
            "post",
            "/api/v1/jobs/shop.slow/enqueue",
            secrets.of(who),
            &format!(r#"{{"args": {{"secs": {secs}}}}}"#),
        );
        let want = expected(who, Reach::ShopChange, 201);
        assert_eq!(answer.status, want, "{who:?} enqueue: {}", answer.body);
        cells += 1;
        assert_eq!(total(), runs_before + usize::from(want == 201), "{who:?}");
    }

    // An app restart: asked for, or refused with nothing asked.
    asked.insert(("post".into(), "/api/v1/apps/{app}/restart".into()));
    for &who in EVERYONE {
        let answer = call(
            port,
            "post",
            "/api/v1/apps/shop.web/restart",
            secrets.of(who),
            "",
        );
        let want = expected(who, Reach::ShopChange, 202);
        assert_eq!(answer.status, want, "{who:?} app restart: {}", answer.body);
        cells += 1;
    }

    // Pause and resume, of shop and of the whole home; each success undone by the admin.
    for verb in ["pause", "resume"] {
        asked.insert(("post".into(), format!("/api/v1/{verb}")));
        let undo = if verb == "pause" { "resume" } else { "pause" };
        for (body, reach) in [
            (r#"{"project": "shop"}"#, Reach::ShopChange),
            ("{}", Reach::HomeChange),
        ] {
            for &who in EVERYONE {
                if verb == "resume" {
                    let paused = post(port, "/api/v1/pause", &admin, body);
                    assert_eq!(paused.status, 200, "{}", paused.body);
                }
                let switches = || get(port, "/api/v1/status", Some(&admin)).json()["mode"].clone();
                let before = switches();
                let path = format!("/api/v1/{verb}");
                let answer = call(port, "post", &path, secrets.of(who), body);
                let want = expected(who, reach, 200);
                assert_eq!(
                    answer.status, want,
                    "{who:?} {verb} {body}: {}",
                    answer.body
                );
                cells += 1;
                if want == 200 {
                    assert_ne!(switches(), before, "{who:?} {verb} {body} changed nothing");
                    if verb == "pause" {
                        let undone = post(port, &format!("/api/v1/{undo}"), &admin, body);
                        assert_eq!(undone.status, 200, "{}", undone.body);
                    }
                } else {
                    assert_eq!(switches(), before, "{who:?} {verb} {body} changed the mode");
                    if verb == "resume" {
                        let undone = post(port, "/api/v1/resume", &admin, body);
                        assert_eq!(undone.status, 200, "{}", undone.body);
                    }
                }
            }
        }
    }

    // Every route the API serves has its row here.
    let served: BTreeSet<(String, String)> = SERVED
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    let missing: Vec<_> = served.difference(&asked).collect();
    assert!(missing.is_empty(), "routes without a row: {missing:?}");
    assert!(cells > 250, "{cells} cells");
    drop(daemon);
}
