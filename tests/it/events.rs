//! `GET /api/v1/events` of a real `coco daemon` over TCP, on both stores: a run seen going
//! pending → running (with its progress) → complete, a resume with `Last-Event-ID` replaying
//! what was missed, a resync for an id the daemon does not know, another project's runs not
//! shown to a token limited to one, a limited token's `status` events as `null`, and at most
//! 16 streams per token; two daemons on one store answering alike, each showing what the
//! other was asked to do.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{Sandbox, free_port, ok};

/// One event of the stream.
#[derive(Debug, Clone)]
struct Event {
    id: String,
    name: String,
    data: String,
}

impl Event {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// An open event stream (HTTP/1.0, so the body is the stream itself).
struct Events {
    reader: BufReader<TcpStream>,
    status: u16,
}

impl Events {
    fn open(port: u16, secret: &str, last_event_id: Option<&str>) -> Events {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut request = format!(
            "GET /api/v1/events HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer \
             {secret}\r\nAccept: text/event-stream\r\n"
        );
        if let Some(id) = last_event_id {
            request += &format!("Last-Event-ID: {id}\r\n");
        }
        request += "\r\n";
        (&stream).write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
        }
        Events { reader, status }
    }

    /// The next event (comments skipped).
    fn next(&mut self) -> Event {
        let mut event = Event {
            id: String::new(),
            name: "message".into(),
            data: String::new(),
        };
        let mut any = false;
        loop {
            let mut line = String::new();
            let read = self.reader.read_line(&mut line).expect("an event in time");
            assert!(read > 0, "the stream ended");
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if any {
                    return event;
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            any = true;
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => event.id = value.into(),
                "event" => event.name = value.into(),
                "data" => event.data += value,
                _ => {}
            }
        }
    }

    /// Events until `until` says stop (at most 20 s); all of them, the last one included.
    fn until(&mut self, until: impl Fn(&Event) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "not in time: {seen:#?}");
            let event = self.next();
            let done = until(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

fn run_state(event: &Event, id: &str) -> Option<String> {
    (event.name == "run" && event.json()["id"] == id)
        .then(|| event.json()["state"].as_str().unwrap().to_string())
}

#[test]
fn events_on_the_embedded_store() {
    events(&Sandbox::new());
}

#[test]
fn events_on_mongodb() {
    let Some(sandbox) = Sandbox::on_mongodb("events") else {
        return;
    };
    events(&sandbox);
}

fn events(sandbox: &Sandbox) {
    sandbox.project(
        "shop",
        "jobs:\n  steps:\n    command: [sh, -c, 'sleep 0.5; for p in 0.25 0.5 0.75; do echo \
         \"::progress:: $p step\"; sleep 0.7; done']\n",
    );
    sandbox.project("billing", "jobs:\n  quiet:\n    command: ['true']\n");
    sandbox.apply();
    let viewer = ok(sandbox, &["token", "create", "w", "--role", "viewer"], 0)
        .trim()
        .to_string();
    let billing = ok(
        sandbox,
        &[
            "token",
            "create",
            "b",
            "--role",
            "viewer",
            "--project",
            "billing",
        ],
        0,
    )
    .trim()
    .to_string();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = sandbox.spawn(&["daemon", "--api-listen", &listen]);
    daemon.wait_for_log(&format!("daemon: API on http://{listen}"));

    let mut stream = Events::open(port, &viewer, None);
    assert_eq!(stream.status, 200);
    let mut limited = Events::open(port, &billing, None);
    assert_eq!(limited.status, 200);
    // Paused, so that the run waits as pending long enough to be seen so (a worker takes a
    // new run within milliseconds, faster than a poll).
    ok(sandbox, &["pause", "shop"], 0);
    let id = sandbox.enqueue(&["shop.steps"]);
    let mut seen = stream.until(|event| run_state(event, &id).is_some());
    ok(sandbox, &["resume", "shop"], 0);
    seen.extend(stream.until(|event| run_state(event, &id).as_deref() == Some("complete")));
    let states: Vec<String> = seen.iter().filter_map(|e| run_state(e, &id)).collect();
    assert_eq!(
        states.first().map(String::as_str),
        Some("pending"),
        "{states:?}"
    );
    assert!(states.iter().any(|s| s == "running"), "{states:?}");
    let progress: Vec<f64> = seen
        .iter()
        .filter(|e| run_state(e, &id).as_deref() == Some("running"))
        .filter_map(|e| e.json()["progress"].as_f64())
        .collect();
    assert!(
        progress.windows(2).any(|w| w[0] < w[1]),
        "the progress moves while it runs: {progress:?}"
    );
    assert!(
        seen.iter()
            .any(|e| e.name == "status" && e.json()["queue"].is_array()),
        "the status follows: {seen:#?}"
    );

    // The billing token's stream shows billing's run, never shop's; its status is `null`.
    let quiet = sandbox.enqueue(&["billing.quiet"]);
    let theirs = limited.until(|event| run_state(event, &quiet).as_deref() == Some("complete"));
    assert!(
        theirs
            .iter()
            .all(|e| e.name != "run" || e.json()["project"] == "billing"),
        "{theirs:#?}"
    );
    assert!(
        theirs
            .iter()
            .filter(|e| e.name == "status")
            .all(|e| e.data == "null"),
        "{theirs:#?}"
    );
    drop(limited);

    // Resume from the first event: everything after it again, in order, without a resync.
    let first = &seen[0];
    let mut resumed = Events::open(port, &viewer, Some(&first.id));
    let again = resumed.until(|event| run_state(event, &id).as_deref() == Some("complete"));
    assert_ne!(again[0].name, "resync", "{again:#?}");
    let ids: Vec<&str> = again.iter().map(|e| e.id.as_str()).collect();
    let expected: Vec<&str> = seen[1..]
        .iter()
        .map(|e| e.id.as_str())
        .take(ids.len())
        .collect();
    assert_eq!(ids, expected);
    drop(resumed);

    // An id this daemon never made: a resync first.
    let mut unknown = Events::open(port, &viewer, Some("00000000-5"));
    assert_eq!(unknown.next().name, "resync");
    drop(unknown);

    // Sixteen streams per token; a place comes back when one closes.
    drop(stream);
    std::thread::sleep(Duration::from_millis(200));
    let mut open: Vec<Events> = (0..16).map(|_| Events::open(port, &viewer, None)).collect();
    assert!(open.iter().all(|s| s.status == 200));
    assert_eq!(Events::open(port, &viewer, None).status, 429);
    assert_eq!(Events::open(port, &billing, None).status, 200, "per token");
    open.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Events::open(port, &viewer, None).status != 200 {
        assert!(Instant::now() < deadline, "the place did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(open);
    drop(daemon);
}

#[test]
fn two_daemons_on_the_embedded_store() {
    two_daemons(&Sandbox::new());
}

#[test]
fn two_daemons_on_mongodb() {
    if let Some(sandbox) = Sandbox::on_mongodb("coco_events_two") {
        two_daemons(&sandbox);
    }
}

/// Two daemons on one store, each serving the API: what one is asked to do, the other
/// shows (its event stream included, built from the store), and both answer alike.
fn two_daemons(sandbox: &Sandbox) {
    sandbox.project(
        "shop",
        "jobs:\n  slow:\n    command: [sleep, '{{args.secs}}']\n    args: {secs: 30}\n",
    );
    sandbox.apply();
    let admin = crate::api::create(sandbox, &["boss", "--role", "admin"]);
    let (first, first_port) = crate::api::daemon(sandbox);
    let (second, second_port) = crate::api::daemon(sandbox);
    let mut on_second = Events::open(second_port, &admin, None);
    assert_eq!(on_second.status, 200);

    let made = crate::api::post(
        first_port,
        "/api/v1/jobs/shop.slow/enqueue",
        &admin,
        r#"{"args": {"secs": 31}}"#,
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let id = made.json()["id"].as_str().unwrap().to_string();
    on_second.until(|e| run_state(e, &id).as_deref() == Some("pending"));

    let get = |port, path: &str| crate::api::get(port, path, Some(&admin)).json();
    for path in [
        "/api/v1/runs".to_string(),
        format!("/api/v1/runs/{id}"),
        "/api/v1/jobs".to_string(),
    ] {
        assert_eq!(get(first_port, &path), get(second_port, &path), "{path}");
    }
    // Each lists both daemons once both have written their heartbeat.
    let daemons = |port| {
        let mut names: Vec<String> = get(port, "/api/v1/members")
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "daemon")
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while daemons(first_port).len() < 2 {
        assert!(Instant::now() < deadline, "{:?}", daemons(first_port));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(daemons(first_port), daemons(second_port));

    // A kill through the second shows on the first, and in the second's stream.
    let killed = crate::api::post(second_port, &format!("/api/v1/runs/{id}/kill"), &admin, "");
    assert_eq!(killed.status, 200, "{}", killed.body);
    assert_eq!(
        get(first_port, &format!("/api/v1/runs/{id}"))["run"]["state"],
        "killed"
    );
    on_second.until(|e| run_state(e, &id).as_deref() == Some("killed"));
    drop(first);
    drop(second);
}
