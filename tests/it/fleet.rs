//! The fleet on real test hosts (issue 14): three network namespaces joined by veth pairs to
//! a bridge this test makes (a private subnet on that bridge only, no route beyond it), one
//! FerretDB listening on the bridge, and in each namespace a `coco daemon --host hN` against
//! it. Scenarios assert from the store and from the processes (and, for the outage, its two
//! log lines): 0 (a stalled worker), 1 (SIGKILL the app's owner), 2 (a cut link), 3 (the store
//! stopped for 15 s under load) and 4 (a rolling restart).
//!
//! Needs root and iproute2 (`ip netns`): CI has both. Elsewhere the tests fail saying so,
//! unless `COCO_TEST_SKIP_NETNS=1` asks to skip them (a CI run never passes by testing
//! nothing).

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::support::{Background, Sandbox, app_status, ok, stdout};

/// Subnets handed out in this process (several tests may run at once).
static NEXT_NET: AtomicU32 = AtomicU32::new(0);

#[allow(clippy::disallowed_methods)] // the test sets up its network with iproute2
fn ip(args: &[&str]) {
    let done = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        done.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&done.stderr)
    );
}

/// Whether this host can make network namespaces; `None` when the tests are to be skipped.
fn netns_possible() -> Option<()> {
    let root = unsafe { libc::geteuid() } == 0;
    let has_ip = Path::new("/usr/sbin/ip").exists() || Path::new("/sbin/ip").exists();
    if root && has_ip {
        return Some(());
    }
    assert_eq!(
        std::env::var("COCO_TEST_SKIP_NETNS").as_deref(),
        Ok("1"),
        "the fleet tests need root and iproute2 (ip netns): run them as root (CI does), or \
         set COCO_TEST_SKIP_NETNS=1 to skip them (root: {root}, ip: {has_ip})"
    );
    eprintln!("skipped: the fleet tests need root and iproute2");
    None
}

/// A bridge with `hosts` network namespaces on it, removed when dropped.
struct TestNet {
    bridge: String,
    /// Each host's namespace and the bridge's end of its veth pair.
    hosts: Vec<(String, String)>,
    prefix: String,
}

impl TestNet {
    fn new(hosts: usize) -> Option<TestNet> {
        netns_possible()?;
        let n = NEXT_NET.fetch_add(1, Ordering::SeqCst);
        let tag = (std::process::id() % 1000) * 10 + n % 10;
        let prefix = format!("10.{}.{}", 200 + (tag / 250) % 50, tag % 250);
        let bridge = format!("cb{tag}");
        let mut net = TestNet {
            bridge: bridge.clone(),
            hosts: Vec::new(),
            prefix: prefix.clone(),
        };
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("{prefix}.1/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 1..=hosts {
            let ns = format!("coco-{tag}-h{i}");
            let outside = format!("cv{tag}h{i}");
            let inside = format!("ci{tag}h{i}");
            ip(&["netns", "add", &ns]);
            net.hosts.push((ns.clone(), outside.clone()));
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ]);
            ip(&["link", "set", &inside, "netns", &ns]);
            ip(&["link", "set", &outside, "master", &bridge]);
            ip(&["link", "set", &outside, "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{prefix}.{}/24", 10 + i),
                "dev",
                &inside,
            ]);
            ip(&["-n", &ns, "link", "set", &inside, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        Some(net)
    }

    /// The store's address on the bridge.
    fn store_ip(&self) -> String {
        format!("{}.1", self.prefix)
    }

    fn ns(&self, host: usize) -> &str {
        &self.hosts[host - 1].0
    }

    /// Host N's link to the bridge (the veth end outside its namespace).
    fn link(&self, host: usize) -> &str {
        &self.hosts[host - 1].1
    }
}

impl Drop for TestNet {
    #[allow(clippy::disallowed_methods)] // cleaning up what the test made
    fn drop(&mut self) {
        for (ns, outside) in &self.hosts {
            let _ = Command::new("ip").args(["link", "del", outside]).output();
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

/// A FerretDB (the tests' MongoDB-wire server) listening on `ip`, stopped when dropped;
/// [`Store::stop`] and [`Store::start_again`] make an outage (same address, same data).
struct Store {
    child: Option<Child>,
    url: String,
    bin: PathBuf,
    data: tempfile::TempDir,
}

impl Store {
    #[allow(clippy::disallowed_methods)] // the test server
    fn start(ip: &str) -> Store {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let built = Command::new(here.join("tests/ferretdb/build.sh"))
            .output()
            .expect("tests/ferretdb/build.sh");
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let bin = PathBuf::from(String::from_utf8(built.stdout).unwrap().trim());
        let data = tempfile::tempdir().unwrap();
        let (child, url) = Store::spawn(&bin, data.path(), &format!("{ip}:0"));
        Store {
            child: Some(child),
            url,
            bin,
            data,
        }
    }

    #[allow(clippy::disallowed_methods)] // the test server
    fn spawn(bin: &Path, data: &Path, address: &str) -> (Child, String) {
        let mut child = Command::new(bin)
            .arg("-data")
            .arg(data.join("data"))
            .arg(address)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("the test server said nothing").unwrap();
            if let Some(url) = line.strip_prefix("ready ") {
                break url.to_string();
            }
        };
        (child, url)
    }

    /// Kill the server (an outage).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server again, on the same address with the same data.
    fn start_again(&mut self) {
        let address = self
            .url
            .trim_start_matches("mongodb://")
            .trim_end_matches('/')
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        let (child, url) = loop {
            let (mut child, url) = Store::spawn(&self.bin, self.data.path(), &address);
            if url == self.url {
                break (child, url);
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "the address {address} is taken");
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(url, self.url);
        self.child = Some(child);
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fleet: the net, the store, a sandbox whose commands use the store.
struct Fleet {
    net: TestNet,
    store: Store,
    sandbox: Sandbox,
}

impl Fleet {
    fn new(hosts: usize) -> Option<Fleet> {
        let net = TestNet::new(hosts)?;
        let store = Store::start(&net.store_ip());
        let mut sandbox = Sandbox::new();
        sandbox.store_args = vec![
            "--mongo-url".into(),
            store.url.clone(),
            "--mongo-database".into(),
            "fleet".into(),
        ];
        // Each host keeps its own state (wake sockets, guard markers).
        for i in 1..=hosts {
            std::fs::create_dir_all(sandbox.dir.path().join(format!("state-h{i}"))).unwrap();
        }
        Some(Fleet {
            net,
            store,
            sandbox,
        })
    }

    /// Set `worker.zombie_after` in the home's `local.yaml`.
    fn zombie_after(&self, after: &str) {
        let local = self.sandbox.dir.path().join(".coco/local.yaml");
        let text = std::fs::read_to_string(&local).unwrap();
        std::fs::write(&local, format!("{text}worker:\n  zombie_after: {after}\n")).unwrap();
    }

    /// `coco daemon --host hN` in host N's namespace.
    fn daemon(&self, host: usize, extra: &[&str]) -> Background {
        let name = format!("h{host}");
        let state = self.sandbox.dir.path().join(format!("state-{name}"));
        let mut args = vec![
            "--state",
            state.to_str().unwrap(),
            "daemon",
            "--host",
            &name,
        ];
        args.extend_from_slice(extra);
        self.sandbox.spawn_in(self.net.ns(host), &args)
    }
}

/// The shell script of a job that says where it runs (its output: `on NS`) and appends
/// `start ID NS TIME PID` and, after sleeping `secs`, `end ID NS TIME` to `log` (see
/// [`intervals`]); for a command `[sh, -c, 'SCRIPT']`.
fn logged_work(log: &Path, secs: u32) -> String {
    format!(
        "ns=$(ip netns identify $$); echo on $ns; \
         echo start $COCO_RUN_ID $ns $(date +%s.%N) $$ >> {log}; sleep {secs}; \
         echo end $COCO_RUN_ID $ns $(date +%s.%N) >> {log}",
        log = log.display()
    )
}

/// One execution of a run: its host's namespace, its shell's pid, when it started and (if it
/// said so) ended, in seconds since the epoch.
#[derive(Debug, Clone)]
struct Try {
    ns: String,
    pid: i32,
    start: f64,
    end: Option<f64>,
}

/// The lines `start RUN NS SECONDS PID` and `end RUN NS SECONDS` the job wrote, by run.
fn intervals(log: &Path) -> BTreeMap<String, Vec<Try>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut runs: BTreeMap<String, Vec<Try>> = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["start", run, ns, at, pid] => runs.entry(run.to_string()).or_default().push(Try {
                ns: ns.to_string(),
                pid: pid.parse().unwrap(),
                start: at.parse().unwrap(),
                end: None,
            }),
            ["end", run, ns, at] => {
                if let Some(open) = runs
                    .entry(run.to_string())
                    .or_default()
                    .iter_mut()
                    .rev()
                    .find(|t| t.ns == ns && t.end.is_none())
                {
                    open.end = Some(at.parse().unwrap());
                }
            }
            _ => {}
        }
    }
    runs
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Whether process `pid` is gone.
fn gone(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) != 0 }
}

/// Send `signal` to process `pid`.
fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a child of this test.
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
}

/// The run of `job` (there is one), as `coco list --json` shows it.
fn the_run(sandbox: &Sandbox, job: &str) -> serde_json::Value {
    let runs = sandbox.list_json(&["--job", job]);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    runs[0].clone()
}

/// What a stale worker must not change of a run: all but the live reports.
fn settled_fields(run: &serde_json::Value) -> serde_json::Value {
    let mut run = run.clone();
    for live in ["heartbeat", "progress", "progress_message", "pid"] {
        run.as_object_mut().unwrap().remove(live);
    }
    run
}

/// Scenario 0: stall one host's daemon (SIGSTOP) past the zombie interval while it runs a
/// job. Its process guard, told each renewal's deadline, ends the job before any other
/// host may take the run back; the retry runs on the other host (without spending an
/// attempt) and never beside the stalled try; after SIGCONT the stalled worker writes
/// nothing over the new state (run record and output).
#[test]
fn a_stalled_worker_is_fenced_before_its_run_is_retried() {
    let Some(fleet) = Fleet::new(2) else { return };
    let sandbox = &fleet.sandbox;
    let log = sandbox.dir.path().join("runs.log");
    fleet.zombie_after("15s");
    sandbox.project(
        "shop",
        &format!(
            "jobs:\n  work:\n    command: [sh, -c, '{work}']\n    attempts: 1\n",
            work = logged_work(&log, 20)
        ),
    );
    sandbox.apply();
    let mut h1 = fleet.daemon(1, &["--slots", "1"]);
    ok(sandbox, &["enqueue", "shop.work"], 0);
    let ns1 = fleet.net.ns(1).to_string();
    let ns2 = fleet.net.ns(2).to_string();
    let tries_on = |ns: &str| -> Vec<Try> {
        intervals(&log)
            .into_values()
            .flatten()
            .filter(|t| t.ns == ns)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while tries_on(&ns1).is_empty() {
        assert!(Instant::now() < deadline, "h1 runs nothing: {}", h1.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let stalled = tries_on(&ns1)[0].clone();
    let h2 = fleet.daemon(2, &["--slots", "1"]);

    signal(h1.child.id(), libc::SIGSTOP);
    let stopped_at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gone(stalled.pid) {
        assert!(
            Instant::now() < deadline,
            "the stalled host's job lives on: {stalled:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let fenced_at = epoch_now();
    let fenced_after = stopped_at.elapsed();
    let deadline = Instant::now() + Duration::from_secs(40);
    while tries_on(&ns2).is_empty() {
        assert!(Instant::now() < deadline, "no retry on h2: {}", h2.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let retry = tries_on(&ns2)[0].clone();
    let retried_after = stopped_at.elapsed();
    assert!(
        fenced_at < retry.start,
        "the stalled try ended at {fenced_at}, after the retry started: {retry:?}"
    );
    // The retry's output is stored (it says where it runs) before the stalled host wakes.
    let retry_output = format!("on {ns2}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let run_id = the_run(sandbox, "shop.work")["id"]
        .as_str()
        .unwrap()
        .to_string();
    while !stdout(&sandbox.coco(&["logs", &run_id])).contains(&retry_output) {
        assert!(Instant::now() < deadline, "the retry's output is not kept");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = the_run(sandbox, "shop.work");
    assert_eq!(before["state"], "running");
    assert_eq!(
        before["attempt"], 1,
        "a lost worker spends no attempt: {before:#}"
    );
    // The fence, not the rescuer's sweep of the zombie's processes (this machine's test hosts
    // share one pid space; real ones do not): the stalled try was gone before the store
    // says the run was taken back.
    let taken_back = before["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|change| {
            change["note"]
                .as_str()
                .is_some_and(|n| n.contains("lost with worker"))
        })
        .unwrap_or_else(|| panic!("not taken back as a zombie: {before:#}"));
    let taken_back_at = chrono::DateTime::parse_from_rfc3339(taken_back["at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis() as f64
        / 1000.0;
    assert!(
        fenced_at < taken_back_at,
        "the stalled try ended at {fenced_at}, after the take-back at {taken_back_at}"
    );

    signal(h1.child.id(), libc::SIGCONT);
    // Two heartbeats and an output interval of the woken worker.
    std::thread::sleep(Duration::from_secs(7));
    let after = the_run(sandbox, "shop.work");
    assert_eq!(
        settled_fields(&after),
        settled_fields(&before),
        "the woken worker wrote over the retry's state"
    );
    let output = stdout(&sandbox.coco(&["logs", &run_id]));
    assert!(
        output.contains(&retry_output) && !output.contains(&format!("on {ns1}")),
        "the woken worker wrote over the retry's output: {output}"
    );
    assert!(
        tries_on(&ns1).len() == 1 && !gone(h1.child.id() as i32),
        "the woken host neither ran the job again nor exited"
    );

    // The retry completes, once; the two tries never overlapped.
    let deadline = Instant::now() + Duration::from_secs(40);
    while the_run(sandbox, "shop.work")["state"] != "complete" {
        assert!(
            Instant::now() < deadline,
            "{:#}",
            the_run(sandbox, "shop.work")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let tries = intervals(&log);
    let tries = tries.values().next().unwrap();
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert!(
        tries[0].end.is_none() && tries[1].end.is_some(),
        "{tries:?}"
    );
    eprintln!(
        "scenario 0: SIGSTOP at 0 s; the stalled try ended at {fenced_after:?}, taken back \
         {:.1} s later, the retry started on h2 at {retried_after:?} (zombie_after 15 s)",
        taken_back_at - fenced_at
    );
    let _ = h1.child.kill();
    drop(h2);
}

/// Scenario 1: SIGKILL one host's daemon. Its app is healthy on another host within the
/// lease and a start; its running runs are retried elsewhere and complete; no run executes
/// on two hosts at once.
#[test]
fn a_killed_host_hands_over_its_app_and_runs() {
    let Some(fleet) = Fleet::new(3) else { return };
    let sandbox = &fleet.sandbox;
    let log = sandbox.dir.path().join("runs.log");
    fleet.zombie_after("10s");
    sandbox.project(
        "shop",
        &format!(
            "jobs:\n  work:\n    command: [sh, -c, '{work}', '{{{{args.i}}}}']\n    \
             args: {{i: 0}}\n    attempts: 1\n    max_parallel: 6\n\
             apps:\n  web:\n    command: [python3, -m, http.server, '8080', --bind, 0.0.0.0]\n    \
             port: 8080\n    health: {{http: /}}\n",
            work = logged_work(&log, 6)
        ),
    );
    sandbox.apply();
    // h1 alone first: it takes the app and two runs (its two slots); then h2 and h3 join
    // and take the other runs.
    let mut daemons: Vec<Option<Background>> = vec![Some(fleet.daemon(1, &["--slots", "2"]))];
    let first = app_status(sandbox, "shop.web", |s| s["healthy"] == true);
    let owner = first["host"].as_str().unwrap().to_string();
    assert_eq!(owner, "h1");
    let owner_index = 1;
    for i in 1..=6 {
        ok(
            sandbox,
            &["enqueue", "shop.work", "--arg", &format!("i={i}")],
            0,
        );
    }
    let ns = fleet.net.ns(owner_index).to_string();
    let running_on = |ns: &str| {
        intervals(&log)
            .values()
            .filter(|tries| tries.iter().any(|t| t.ns == ns && t.end.is_none()))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while running_on(&ns) < 2 {
        assert!(
            Instant::now() < deadline,
            "h1 runs nothing: {:?}",
            intervals(&log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    daemons.push(Some(fleet.daemon(2, &["--slots", "2"])));
    daemons.push(Some(fleet.daemon(3, &["--slots", "2"])));
    let deadline = Instant::now() + Duration::from_secs(30);
    while running_on(fleet.net.ns(2)) + running_on(fleet.net.ns(3)) < 2 {
        assert!(
            Instant::now() < deadline,
            "h2, h3 run nothing: {:?}",
            intervals(&log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(running_on(&ns), 2, "{:?}", intervals(&log));

    // SIGKILL the owner's daemon; its jobs are ended by its process guard. When the last of
    // them is gone is when their tries ended.
    let killed_at = Instant::now();
    let mut victim = daemons[owner_index - 1].take().unwrap();
    let _ = victim.child.kill();
    let _ = victim.child.wait();
    let orphans: Vec<i32> = intervals(&log)
        .values()
        .flatten()
        .filter(|t| t.ns == ns && t.end.is_none())
        .map(|t| t.pid)
        .collect();
    assert_eq!(orphans.len(), 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !orphans.iter().all(|&pid| gone(pid)) {
        assert!(
            Instant::now() < deadline,
            "the killed host's jobs live on: {orphans:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let orphans_ended = epoch_now();
    eprintln!(
        "the killed host's jobs ended {:?} after the kill",
        killed_at.elapsed()
    );

    let moved = app_status(sandbox, "shop.web", |s| {
        s["healthy"] == true && s["host"].as_str().is_some_and(|h| h != owner)
    });
    let failover = killed_at.elapsed();
    assert_ne!(moved["host"], owner);
    // `coco alive` keeps the killed host, shown lost once its lease expired; the new owner
    // shows the app it holds, and every member its coco version.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let table = ok(sandbox, &["alive"], 0);
        let killed = table
            .lines()
            .find(|line| line.split_whitespace().nth(2) == Some("h1"));
        if killed.is_some_and(|line| line.contains("lost (lease expired")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed host is not shown lost:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let members: Vec<serde_json::Value> =
        serde_json::from_str(&ok(sandbox, &["alive", "--json"], 0)).unwrap();
    let holder = members
        .iter()
        .find(|m| m["host"] == moved["host"])
        .expect("the new owner is listed");
    assert_eq!(
        holder["apps"],
        serde_json::json!(["shop.web"]),
        "{members:#?}"
    );
    assert!(
        members
            .iter()
            .all(|m| m["version"] == env!("CARGO_PKG_VERSION") && m["lease_ms"] == 10_000),
        "{members:#?}"
    );

    // Every run completes, the killed host's included (retried elsewhere).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let done = sandbox
            .list_json(&["--state", "complete", "--job", "shop.work"])
            .len();
        if done == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of 6 complete: {:#?}",
            sandbox.list_json(&["--job", "shop.work"])
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // No run on two hosts at once: each run's tries never overlap (a try the kill cut short
    // lasted until its process was seen gone).
    for (run, tries) in intervals(&log) {
        let end = |t: &Try| t.end.unwrap_or(orphans_ended);
        for (i, a) in tries.iter().enumerate() {
            for b in &tries[i + 1..] {
                assert!(
                    end(a) <= b.start || end(b) <= a.start,
                    "run {run} ran twice at once: {a:?} and {b:?}"
                );
            }
        }
        assert_eq!(
            tries.iter().filter(|t| t.end.is_some()).count(),
            1,
            "run {run} completed once: {tries:?}"
        );
    }
    eprintln!(
        "failover of shop.web from {owner} to {}: {failover:?}",
        moved["host"]
    );
    drop(daemons);
}

/// One copy of an app: its host's namespace, its pid, when it started (epoch seconds).
#[derive(Debug, Clone)]
struct Copy {
    ns: String,
    pid: i32,
    start: f64,
}

/// The lines `APP NS SECONDS PID` the apps wrote as they started, by app.
fn copies(log: &Path) -> BTreeMap<String, Vec<Copy>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut apps: BTreeMap<String, Vec<Copy>> = BTreeMap::new();
    for line in text.lines() {
        if let [app, ns, at, pid] = line.split_whitespace().collect::<Vec<_>>()[..] {
            apps.entry(app.to_string()).or_default().push(Copy {
                ns: ns.to_string(),
                pid: pid.parse().unwrap(),
                start: at.parse().unwrap(),
            });
        }
    }
    apps
}

/// Scenario 2: cut one host's link for 20 s (link down). Its `on_store_loss: stop` app
/// (a singleton) stops before its hold can expire and runs elsewhere, never two at once; its
/// `keep` app keeps serving; its run ends before the run is taken back; when the link
/// returns the host rejoins without restarting what moved and without doubling anything.
#[test]
fn a_cut_link_fences_the_singleton_and_the_runs_and_keeps_the_rest() {
    let Some(fleet) = Fleet::new(3) else { return };
    let sandbox = &fleet.sandbox;
    let runs_log = sandbox.dir.path().join("runs.log");
    let apps_log = sandbox.dir.path().join("apps.log");
    fleet.zombie_after("15s");
    let app = |name: &str, port: u16, on_loss: &str| {
        format!(
            "  {name}:\n    command: [sh, -c, 'echo {name} $(ip netns identify $$) $(date +%s.%N) \
             $$ >> {log}; exec python3 -m http.server {port} --bind 127.0.0.1']\n    \
             port: {port}\n    health: {{http: /, interval: 1s}}\n    on_store_loss: {on_loss}\n",
            log = apps_log.display()
        )
    };
    sandbox.project(
        "shop",
        &format!(
            "jobs:\n  work:\n    command: [sh, -c, '{work}']\n    attempts: 1\n\
             apps:\n{single}{avail}",
            work = logged_work(&runs_log, 15),
            single = app("single", 8080, "stop"),
            avail = app("avail", 8081, "keep"),
        ),
    );
    sandbox.apply();
    let h1 = fleet.daemon(1, &["--slots", "1"]);
    for name in ["shop.single", "shop.avail"] {
        app_status(sandbox, name, |s| s["healthy"] == true && s["host"] == "h1");
    }
    ok(sandbox, &["enqueue", "shop.work"], 0);
    let ns1 = fleet.net.ns(1).to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while intervals(&runs_log).is_empty() {
        assert!(Instant::now() < deadline, "h1 runs nothing: {}", h1.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let others: Vec<Background> = (2..=3)
        .map(|i| fleet.daemon(i, &["--slots", "1"]))
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let first = copies(&apps_log);
    let (single1, avail1) = (first["single"][0].clone(), first["avail"][0].clone());
    let job1 = intervals(&runs_log).into_values().flatten().next().unwrap();
    assert_eq!(
        (single1.ns.as_str(), avail1.ns.as_str()),
        (ns1.as_str(), ns1.as_str())
    );

    // Cut h1 off for 20 s, watching its processes.
    ip(&["link", "set", fleet.net.link(1), "down"]);
    let cut_at = Instant::now();
    let (mut single_gone, mut job_gone) = (None, None);
    while cut_at.elapsed() < Duration::from_secs(20) {
        if single_gone.is_none() && gone(single1.pid) {
            single_gone = Some((cut_at.elapsed(), epoch_now()));
        }
        if job_gone.is_none() && gone(job1.pid) {
            job_gone = Some((cut_at.elapsed(), epoch_now()));
        }
        assert!(
            !gone(avail1.pid),
            "the keep app stopped serving on the cut host"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (single_after, single_gone_at) = single_gone.expect("the singleton ran on in the cut");
    let (job_after, job_gone_at) = job_gone.expect("the cut host's job ran on");
    // The hold was last renewed at most a status interval (1 s) before the cut, so it cannot
    // expire before 9 s after it; the run's heartbeat (every 3 s) not before 12 s.
    assert!(single_after < Duration::from_secs(9), "{single_after:?}");
    assert!(job_after < Duration::from_secs(12), "{job_after:?}");
    // Meanwhile the singleton runs elsewhere, started only after h1's copy was gone.
    let during = copies(&apps_log);
    let moved: Vec<&Copy> = during["single"].iter().filter(|c| c.ns != ns1).collect();
    assert_eq!(moved.len(), 1, "{during:#?}");
    assert!(
        single_gone_at < moved[0].start,
        "two singletons at once: h1's gone at {single_gone_at}, {:?}",
        moved[0]
    );
    let moved_single = moved[0].clone();
    let moved_avail: Vec<Copy> = during["avail"]
        .iter()
        .filter(|c| c.ns != ns1)
        .cloned()
        .collect();

    ip(&["link", "set", fleet.net.link(1), "up"]);
    let back_at = Instant::now();
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        !gone(h1.child.id() as i32),
        "the cut host's daemon exited: {}",
        h1.log()
    );
    let after = copies(&apps_log);
    // Nothing that moved was restarted; h1 started nothing again.
    assert_eq!(
        after["single"].len(),
        2,
        "the singleton was started again: {after:#?}\nh1: {}\nh2: {}\nh3: {}",
        h1.log(),
        others[0].log(),
        others[1].log()
    );
    assert!(!gone(moved_single.pid), "the moved singleton was stopped");
    for copy in &moved_avail {
        assert!(
            !gone(copy.pid),
            "the moved keep app was stopped: {copy:?}\nh1: {}\nh2: {}\nh3: {}",
            h1.log(),
            others[0].log(),
            others[1].log()
        );
    }
    assert!(
        after["avail"].iter().filter(|c| c.ns == ns1).count() == 1,
        "{after:#?}"
    );
    if !moved_avail.is_empty() {
        // It was taken over during the cut: the stale copy on h1 ends once h1 learns it.
        assert!(
            gone(avail1.pid),
            "two copies of the keep app after the rejoin"
        );
    }
    for name in ["shop.single", "shop.avail"] {
        let status = app_status(sandbox, name, |s| s["healthy"] == true);
        eprintln!("{name} after the rejoin: on {}", status["host"]);
    }

    // The run: ended on h1 before the take-back, retried elsewhere once, completes.
    let deadline = Instant::now() + Duration::from_secs(60);
    while the_run(sandbox, "shop.work")["state"] != "complete" {
        assert!(
            Instant::now() < deadline,
            "{:#}",
            the_run(sandbox, "shop.work")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let run = the_run(sandbox, "shop.work");
    assert_eq!(run["attempt"], 1, "the lost try spent no attempt: {run:#}");
    let tries = intervals(&runs_log);
    let tries = tries.values().next().unwrap();
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert!(
        // (The retry may run anywhere, h1 too once it is back.)
        job_gone_at < tries[1].start && tries[1].end.is_some(),
        "{tries:?}"
    );
    eprintln!(
        "scenario 2: link down at 0 s; the singleton stopped on h1 at {single_after:?} and \
         started on {} {:.1} s later; h1's run ended at {job_after:?}, its retry started \
         {:.1} s later; the keep app served on h1 throughout{}; link up at 20 s, checked {:?} \
         later",
        moved_single.ns,
        moved_single.start - single_gone_at,
        tries[1].start - job_gone_at,
        if moved_avail.is_empty() {
            String::new()
        } else {
            format!(
                " (and a second copy on {} from the lease's end)",
                moved_avail[0].ns
            )
        },
        back_at.elapsed()
    );
    drop(others);
    drop(h1);
}

/// Scenario 3: stop the store (FerretDB killed, started again on the same address and data
/// after 15 s) under load — a job every second, an enqueue every 0.7 s, an app. No daemon
/// exits; every acknowledged enqueue runs to completion exactly once; the schedule's missed
/// instants are caught up (`catchup: all`), none fired twice; the app is not restarted;
/// each daemon logs the outage once when it starts and once when it ends.
#[test]
fn a_store_outage_loses_nothing_and_doubles_nothing() {
    let Some(mut fleet) = Fleet::new(3) else {
        return;
    };
    let runs_log = fleet.sandbox.dir.path().join("runs.log");
    let ticks_log = fleet.sandbox.dir.path().join("ticks.log");
    let apps_log = fleet.sandbox.dir.path().join("apps.log");
    fleet.sandbox.project(
        "shop",
        &format!(
            "jobs:\n  tick:\n    schedule: '* * * * * *'\n    catchup: all\n    concurrency: allow\n    attempts: 1\n    \
             command: [sh, -c, 'echo $COCO_RUN_ID $(ip netns identify $$) >> {ticks}']\n  \
             work:\n    command: [sh, -c, '{work}', '{{{{args.i}}}}']\n    \
             args: {{i: 0}}\n    attempts: 1\n    max_parallel: 6\n\
             apps:\n  web:\n    command: [sh, -c, 'echo web $(ip netns identify $$) \
             $(date +%s.%N) $$ >> {apps}; exec python3 -m http.server 8080 --bind 127.0.0.1']\n    \
             port: 8080\n    health: {{http: /, interval: 1s}}\n",
            ticks = ticks_log.display(),
            work = logged_work(&runs_log, 2),
            apps = apps_log.display()
        ),
    );
    fleet.sandbox.apply();
    let daemons: Vec<Background> = (1..=3)
        .map(|i| fleet.daemon(i, &["--slots", "2"]))
        .collect();
    app_status(&fleet.sandbox, "shop.web", |s| s["healthy"] == true);

    // A stream of enqueues, each remembered with whether it was acknowledged.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let enqueuer = {
        let stop = std::sync::Arc::clone(&stop);
        let coco = env!("CARGO_BIN_EXE_coco").to_string();
        let home = fleet.sandbox.dir.path().to_path_buf();
        let store = fleet.sandbox.store_args.clone();
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            let mut refused = 0;
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                #[allow(clippy::disallowed_methods)] // enqueues as an operator would
                let out = Command::new(&coco)
                    .args(["enqueue", "shop.work", "--arg", &format!("i={i}")])
                    .args(&store)
                    .env("HOME", &home)
                    .current_dir(&home)
                    .output()
                    .unwrap();
                if out.status.success() {
                    acknowledged.push(i);
                } else {
                    refused += 1;
                }
                std::thread::sleep(Duration::from_millis(700));
            }
            (acknowledged, refused)
        })
    };
    std::thread::sleep(Duration::from_secs(5));
    fleet.store.stop();
    let outage = Instant::now();
    std::thread::sleep(Duration::from_secs(15));
    fleet.store.start_again();
    let outage = outage.elapsed();
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, Ordering::SeqCst);
    let (acknowledged, refused) = enqueuer.join().unwrap();
    let load_ended = epoch_now() as i64;

    // Every run of `work` completes; every acknowledged enqueue is one of them.
    let sandbox = &fleet.sandbox;
    let deadline = Instant::now() + Duration::from_secs(90);
    let work = loop {
        let work = sandbox.list_json(&["--job", "shop.work"]);
        if work.iter().all(|run| run["state"] == "complete") {
            break work;
        }
        assert!(Instant::now() < deadline, "{work:#?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let enqueued: std::collections::BTreeSet<i64> = work
        .iter()
        .map(|run| run["args"]["i"].as_i64().unwrap())
        .collect();
    for i in &acknowledged {
        assert!(
            enqueued.contains(i),
            "enqueue {i} was acknowledged and lost"
        );
    }
    // Each ran once: one try per run, on one host.
    let tries = intervals(&runs_log);
    for run in &work {
        let id = run["id"].as_str().unwrap();
        let of = tries.get(id).map_or(0, Vec::len);
        assert_eq!(of, 1, "run {id} executed {of} times: {:?}", tries.get(id));
        assert_eq!(run["attempt"], 1, "{run:#}");
    }
    // The schedule: every second from the first tick to the end of the load fired exactly
    // once, the outage's seconds caught up (the catch-up runs may still be waiting for a
    // slot: wait for them).
    let seconds = |ticks: &str| {
        let mut seconds: BTreeMap<i64, usize> = BTreeMap::new();
        for line in ticks.lines() {
            let id = line.split_whitespace().next().unwrap();
            let ms = ulid::Ulid::from_string(id).unwrap().timestamp_ms() as i64;
            *seconds.entry(ms / 1000).or_default() += 1;
        }
        seconds
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let seconds = loop {
        let seen = seconds(&std::fs::read_to_string(&ticks_log).unwrap_or_default());
        let first = *seen.keys().next().expect("no tick ran");
        if (first..load_ended).all(|second| seen.contains_key(&second)) {
            break seen;
        }
        assert!(Instant::now() < deadline, "instants missing: {seen:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let first = *seconds.keys().next().unwrap();
    assert!(load_ended - first >= 25, "{seconds:?}");
    for second in first..load_ended {
        assert_eq!(
            seconds.get(&second),
            Some(&1),
            "the instant {second} ({} s after the first) fired {:?} times: {:?}",
            second - first,
            seconds.get(&second),
            seconds.keys().map(|s| s - first).collect::<Vec<_>>()
        );
    }
    assert!(seconds.values().all(|&n| n == 1), "{seconds:?}");
    // No daemon exited; the app was never started again.
    for (i, daemon) in daemons.iter().enumerate() {
        assert!(
            !gone(daemon.child.id() as i32),
            "h{} exited: {}",
            i + 1,
            daemon.log()
        );
    }
    let apps = copies(&apps_log);
    assert_eq!(
        apps["web"].len(),
        1,
        "the app was restarted: {apps:#?}\n{}",
        daemons
            .iter()
            .map(|d| d.log())
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    assert!(!gone(apps["web"][0].pid));
    // The outage in each daemon's log: once as it began, once as it ended.
    for (i, daemon) in daemons.iter().enumerate() {
        let log = daemon.log();
        let began = log.matches("the store does not answer").count();
        let ended = log.matches("the store answers again").count();
        assert_eq!(
            (began, ended),
            (1, 1),
            "h{}'s log of the outage:\n{log}",
            i + 1
        );
    }
    eprintln!(
        "scenario 3: store down {outage:?}; {} enqueues acknowledged, {refused} refused while \
         it was down, {} runs complete, each once; {} schedule instants, each fired once",
        acknowledged.len(),
        work.len(),
        seconds.len()
    );
    drop(daemons);
}

/// Scenario 4: a rolling restart of all three hosts, one by one (SIGTERM, then start again):
/// the app is handed over as its owner stops, so it never waits for a lease to expire —
/// each stretch without a healthy copy is shorter than `daemon.app_stale_after` (10 s) — and
/// it is healthy at the end.
#[test]
fn a_rolling_restart_keeps_the_app_up() {
    let Some(fleet) = Fleet::new(3) else { return };
    let sandbox = &fleet.sandbox;
    sandbox.project(
        "shop",
        "apps:\n  web:\n    command: [python3, -m, http.server, '8080', --bind, 0.0.0.0]\n    \
         port: 8080\n    health: {http: /}\n",
    );
    sandbox.apply();
    let mut daemons: Vec<Background> = (1..=3).map(|i| fleet.daemon(i, &["--no-worker"])).collect();
    app_status(sandbox, "shop.web", |s| s["healthy"] == true);

    // Sample the app's health from the store while the hosts restart.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = std::sync::Arc::clone(&stop);
        let coco = env!("CARGO_BIN_EXE_coco").to_string();
        let home = sandbox.dir.path().to_path_buf();
        let store = sandbox.store_args.clone();
        std::thread::spawn(move || {
            let mut samples: Vec<(Instant, Option<String>)> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                #[allow(clippy::disallowed_methods)] // reads the store as an operator would
                let out = Command::new(&coco)
                    .args(["apps", "--json"])
                    .args(&store)
                    .env("HOME", &home)
                    .current_dir(&home)
                    .output()
                    .unwrap();
                let apps: Vec<serde_json::Value> =
                    serde_json::from_slice(&out.stdout).unwrap_or_default();
                let healthy = apps
                    .iter()
                    .find(|line| line["app"] == "shop.web")
                    .map(|line| line["status"].clone())
                    .filter(|s| s["healthy"] == true && s["pid"].is_u64())
                    .and_then(|s| s["host"].as_str().map(str::to_string));
                samples.push((Instant::now(), healthy));
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        })
    };
    // The owner first, then the others: each stopped, the app healthy again (elsewhere, for
    // the owner), then started again.
    let owner: usize = app_status(sandbox, "shop.web", |s| s["healthy"] == true)["host"]
        .as_str()
        .unwrap()[1..]
        .parse()
        .unwrap();
    let order: Vec<usize> = std::iter::once(owner)
        .chain((1..=3).filter(|&h| h != owner))
        .collect();
    for host in order {
        let old = &mut daemons[host - 1];
        // SAFETY: kill(2) of the daemon this test started and has not reaped.
        unsafe { libc::kill(old.child.id() as i32, libc::SIGTERM) };
        let _ = old.child.wait();
        let name = format!("h{host}");
        app_status(sandbox, "shop.web", |s| {
            s["healthy"] == true && s["pid"].is_u64() && s["host"] != name.as_str()
        });
        daemons[host - 1] = fleet.daemon(host, &["--no-worker"]);
        std::thread::sleep(Duration::from_secs(1));
    }
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.join().unwrap();

    // The stretches without a healthy copy, and who held it.
    let mut gaps = Vec::new();
    let mut since: Option<Instant> = None;
    for (at, healthy) in &samples {
        match (healthy, since) {
            (None, None) => since = Some(*at),
            (Some(_), Some(start)) => {
                gaps.push(*at - start);
                since = None;
            }
            _ => {}
        }
    }
    let owners: Vec<&String> = samples.iter().filter_map(|(_, h)| h.as_ref()).collect();
    let mut changes = owners.clone();
    changes.dedup();
    eprintln!("rolling restart: owners {changes:?}, stretches without a healthy copy {gaps:?}");
    assert!(since.is_none(), "unhealthy at the end");
    assert!(
        changes.len() >= 2,
        "the app moved off its stopped owner: {changes:?}"
    );
    assert!(samples.len() > 20, "{} samples", samples.len());
    for gap in &gaps {
        assert!(
            *gap < Duration::from_secs(10),
            "the app waited for a lease: {gaps:?}"
        );
    }
    drop(daemons);
}

/// The fleet benchmarks (`bench/fleet.sh`, figures in docs/benchmarks.md): ignored by the test
/// command, run with `--ignored`. They print their figures; they assert nothing about speed.
mod bench {
    use super::*;
    use coco::store::{Catalog as _, Queue as _, RunFilter};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn median(mut values: Vec<f64>) -> f64 {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }

    /// Failover: the owner of an app killed → the app healthy on the other host, 5 times.
    #[test]
    #[ignore = "a benchmark: bench/fleet.sh"]
    fn failover_time() {
        let Some(fleet) = Fleet::new(2) else { return };
        let sandbox = &fleet.sandbox;
        sandbox.project(
            "shop",
            "apps:\n  web:\n    command: [python3, -m, http.server, '8080', --bind, 0.0.0.0]\n    \
             port: 8080\n    health: {http: /, interval: 1s}\n",
        );
        sandbox.apply();
        let mut daemons: Vec<Option<Background>> = vec![
            Some(fleet.daemon(1, &["--no-worker"])),
            Some(fleet.daemon(2, &["--no-worker"])),
        ];
        let mut times = Vec::new();
        for round in 0..5 {
            let status = app_status(sandbox, "shop.web", |s| s["healthy"] == true);
            let owner: usize = status["host"].as_str().unwrap()[1..].parse().unwrap();
            std::thread::sleep(Duration::from_secs(2));
            let killed = Instant::now();
            let mut victim = daemons[owner - 1].take().unwrap();
            let _ = victim.child.kill();
            let _ = victim.child.wait();
            let name = format!("h{owner}");
            app_status(sandbox, "shop.web", |s| {
                s["healthy"] == true && s["host"] != name.as_str()
            });
            let took = killed.elapsed().as_secs_f64();
            eprintln!("failover {}: {took:.2} s (from h{owner})", round + 1);
            times.push(took);
            daemons[owner - 1] = Some(fleet.daemon(owner, &["--no-worker"]));
        }
        println!(
            "failover (SIGKILL of the owner → healthy elsewhere, lease 10 s, 5 times): median \
             {:.2} s, all {times:.2?}",
            median(times.clone())
        );
    }

    /// Commands by name, and the time the server took to answer them (a connection carries
    /// one command at a time: from a request forwarded to its answer).
    #[derive(Debug, Default)]
    struct Counted {
        commands: BTreeMap<String, usize>,
        answering: Duration,
    }

    type Counts = Arc<Mutex<Counted>>;

    const MONITORING: [&str; 4] = ["hello", "ismaster", "isMaster", "ping"];

    /// One length-prefixed wire frame from `from`, if any.
    async fn frame(from: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
        let mut length = [0u8; 4];
        from.read_exact(&mut length).await.ok()?;
        let total = i32::from_le_bytes(length).max(16) as usize;
        let mut frame = length.to_vec();
        frame.resize(total, 0);
        from.read_exact(&mut frame[4..]).await.ok()?;
        Some(frame)
    }

    /// A proxy on `listen` to `target` counting each client command by name (the first key
    /// of an `OP_MSG`'s section 0) and timing the server's answers.
    async fn proxy(listen: &str, target: String, counts: Counts) -> String {
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (target, counts) = (target.clone(), Arc::clone(&counts));
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = server.into_split();
                    let sent: Arc<Mutex<Option<(Instant, bool)>>> = Arc::default();
                    let upstream = async {
                        while let Some(frame) = frame(&mut from_client).await {
                            let name = frame
                                .get(26..)
                                .and_then(|rest| {
                                    let end = rest.iter().position(|&b| b == 0)?;
                                    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
                                })
                                .unwrap_or_else(|| "?".into());
                            let monitoring = MONITORING.contains(&name.as_str());
                            *counts.lock().unwrap().commands.entry(name).or_default() += 1;
                            if to_server.write_all(&frame).await.is_err() {
                                break;
                            }
                            *sent.lock().unwrap() = Some((Instant::now(), monitoring));
                        }
                    };
                    let downstream = async {
                        while let Some(frame) = frame(&mut from_server).await {
                            let asked = sent.lock().unwrap().take();
                            if let Some((at, false)) = asked {
                                counts.lock().unwrap().answering += at.elapsed();
                            }
                            if to_client.write_all(&frame).await.is_err() {
                                break;
                            }
                        }
                    };
                    tokio::select! {
                        () = upstream => {}
                        () = downstream => {}
                    }
                });
            }
        });
        address
    }

    /// Fleet throughput: runs/s of `true` with 1, 2 and 3 hosts (2 slots each) on one
    /// FerretDB, the store commands per run (through a counting proxy), and the share of a
    /// run's time its round trips take at the server's measured latency.
    #[test]
    #[ignore = "a benchmark: bench/fleet.sh"]
    fn fleet_throughput() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let runs = std::env::var("COCO_BENCH_RUNS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(300usize);
        println!(
            "| hosts × slots | runs | runs/s | store commands per run | cheapest round trip | \
             mean command | slot time per run | store share |\n|---|---|---|---|---|---|---|---|"
        );
        for hosts in 1..=3 {
            let Some(mut fleet) = Fleet::new(hosts) else {
                return;
            };
            let counts: Counts = Arc::default();
            let target = fleet
                .store
                .url
                .trim_start_matches("mongodb://")
                .trim_end_matches('/')
                .to_string();
            let ip = fleet.net.store_ip();
            let proxied = runtime.block_on(proxy(&format!("{ip}:0"), target, Arc::clone(&counts)));
            let direct_url = fleet.store.url.clone();
            fleet.sandbox.store_args[1] = format!("mongodb://{proxied}/");
            let sandbox = &fleet.sandbox;
            sandbox.project(
                "bench",
                "jobs:\n  noop:\n    command: ['true']\n    max_parallel: 64\n",
            );
            sandbox.apply();
            let store = runtime
                .block_on(coco::store::mongo::MongoStore::connect(
                    &direct_url,
                    "fleet",
                ))
                .unwrap();
            // The server's cheapest round trip, from this (root) namespace.
            let latency = runtime.block_on(async {
                let began = Instant::now();
                for _ in 0..200 {
                    store.get_project("bench").await.unwrap();
                }
                began.elapsed().as_secs_f64() / 200.0
            });
            let job: coco::manifest::Job = serde_json::from_value(
                runtime
                    .block_on(store.get_job("bench.noop"))
                    .unwrap()
                    .unwrap()
                    .definition,
            )
            .unwrap();
            let now = chrono::Utc::now();
            let records: Vec<_> = (0..runs)
                .map(|i| {
                    coco::queue::new_run(
                        &job,
                        coco::queue::NewRun::new(
                            "bench.noop",
                            "bench",
                            serde_json::json!({ "i": i }),
                            now,
                        ),
                    )
                })
                .collect();
            runtime.block_on(store.enqueue_all(&records)).unwrap();
            *counts.lock().unwrap() = Counted::default();
            let daemons: Vec<Background> = (1..=hosts)
                .map(|h| fleet.daemon(h, &["--slots", "2", "--no-apps", "--no-scheduler"]))
                .collect();
            let complete = RunFilter {
                state: Some(coco::queue::state::RunState::Complete),
                ..RunFilter::default()
            };
            let deadline = Instant::now() + Duration::from_secs(600);
            while runtime.block_on(store.count_runs(&complete)).unwrap() < runs as u64 {
                assert!(Instant::now() < deadline, "the runs did not complete");
                std::thread::sleep(Duration::from_millis(200));
            }
            let (commands, answering) = {
                let counted = counts.lock().unwrap();
                let commands: usize = counted
                    .commands
                    .iter()
                    .filter(|(name, _)| !MONITORING.contains(&name.as_str()))
                    .map(|(_, n)| n)
                    .sum();
                (commands, counted.answering)
            };
            drop(daemons);
            let done = runtime
                .block_on(store.list_runs(&RunFilter {
                    job: Some("bench.noop".into()),
                    ..RunFilter::default()
                }))
                .unwrap();
            let first = done.iter().filter_map(|r| r.started).min().unwrap();
            let last = done.iter().filter_map(|r| r.finished).max().unwrap();
            let seconds = (last - first).num_milliseconds() as f64 / 1000.0;
            let per_second = runs as f64 / seconds;
            // A run's time in the store: what the server took to answer the daemons'
            // commands (all of them, heartbeats included), against the slots' time.
            let per_run_commands = commands as f64 / runs as f64;
            let store_ms = answering.as_secs_f64() * 1000.0 / runs as f64;
            let slot_ms = (2 * hosts) as f64 * seconds * 1000.0 / runs as f64;
            println!(
                "| {hosts} × 2 | {runs} | {per_second:.1} | {per_run_commands:.1} | {:.2} ms | \
                 {:.1} ms | {slot_ms:.0} ms | {:.0} % |",
                latency * 1000.0,
                store_ms / per_run_commands.max(1.0),
                100.0 * (store_ms / slot_ms).min(1.0)
            );
        }
    }
}
