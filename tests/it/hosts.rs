//! Hosts by name (issue 14): `coco daemon --host NAME` and `fleet.host` in local.yaml name the
//! host in the store — members, app owners, `hosts:` eligibility — as hosts sharing one
//! hostname (network namespaces, containers) must; a bad name is refused where it was typed.

use std::time::{Duration, Instant};

use crate::support::{Sandbox, app_status, ok, stderr};

/// The hosts `coco alive --json` lists for each member kind.
fn member_hosts(sandbox: &Sandbox) -> Vec<(String, String)> {
    let members: Vec<serde_json::Value> =
        serde_json::from_str(&ok(sandbox, &["alive", "--json"], 0)).unwrap();
    let mut hosts: Vec<(String, String)> = members
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_string(),
                m["host"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    hosts.sort();
    hosts
}

/// The host `coco apps --json` says runs `app`, once one does.
fn app_host(sandbox: &Sandbox, app: &str) -> String {
    app_status(sandbox, app, |status| status["pid"].is_u64())["host"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn daemons_go_by_the_host_names_given() {
    let sandbox = Sandbox::new();
    sandbox.project(
        "shop",
        "apps:\n  web:\n    command: [sleep, '600']\n    hosts: [h2]\n",
    );
    sandbox.apply();
    let first = sandbox.spawn(&["daemon", "--host", "h1", "--no-worker"]);
    let second = sandbox.spawn(&["daemon", "--host", "h2", "--slots", "1"]);
    // Only h2 may run the app: it does, whichever daemon started first.
    assert_eq!(app_host(&sandbox, "shop.web"), "h2");
    let deadline = Instant::now() + Duration::from_secs(20);
    let want = [
        ("daemon".to_string(), "h1".to_string()),
        ("daemon".to_string(), "h2".to_string()),
    ];
    loop {
        let hosts = member_hosts(&sandbox);
        if want.iter().all(|w| hosts.contains(w)) {
            break;
        }
        assert!(Instant::now() < deadline, "{hosts:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(second);
    drop(first);
}

#[test]
fn fleet_host_in_local_yaml_names_the_host() {
    let sandbox = Sandbox::new();
    let local = sandbox.dir.path().join(".coco/local.yaml");
    let text = std::fs::read_to_string(&local).unwrap();
    std::fs::write(&local, format!("{text}fleet:\n  host: edge-7\n")).unwrap();
    let shown = ok(&sandbox, &["config"], 0);
    let line = shown
        .lines()
        .find(|line| line.contains("fleet.host"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        line.contains("edge-7") && line.contains("local.yaml"),
        "{line}"
    );
    sandbox.project("shop", "apps:\n  web:\n    command: [sleep, '600']\n");
    sandbox.apply();
    let daemon = sandbox.spawn(&["daemon", "--no-worker"]);
    assert_eq!(app_host(&sandbox, "shop.web"), "edge-7");
    drop(daemon);
    // The flag wins over the file.
    let flagged = sandbox.spawn(&["daemon", "--host", "flagged", "--no-worker", "--no-apps"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !member_hosts(&sandbox).contains(&("daemon".to_string(), "flagged".to_string())) {
        assert!(Instant::now() < deadline, "{:?}", member_hosts(&sandbox));
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(flagged);
}

#[test]
fn a_bad_host_name_is_refused_where_it_was_typed() {
    let sandbox = Sandbox::new();
    let flag = sandbox.coco(&["daemon", "--host", "web 1"]);
    assert_eq!(flag.status.code(), Some(2));
    assert!(
        stderr(&flag).contains("--host") && stderr(&flag).contains("not ' '"),
        "{}",
        stderr(&flag)
    );
    let local = sandbox.dir.path().join(".coco/local.yaml");
    std::fs::write(
        &local,
        "folder:\n  home: ~/home\n  state: ~/state\nfleet:\n  host: a/b\n",
    )
    .unwrap();
    // (`coco config` reads it as the daemon does, and would not hang if it took it.)
    let file = sandbox.coco(&["config"]);
    assert_eq!(file.status.code(), Some(1), "{}", stderr(&file));
    let said = stderr(&file);
    assert!(
        said.contains("local.yaml:5:9") && said.contains("not '/'"),
        "{said}"
    );
    let env = sandbox.coco_env(&["config"], &[("COCO_FLEET__HOST", "-x")]);
    assert_ne!(env.status.code(), Some(0));
    assert!(
        stderr(&env).contains("COCO_FLEET__HOST"),
        "{}",
        stderr(&env)
    );
}

#[test]
fn the_lease_is_read_from_local_yaml_and_refused_out_of_bounds() {
    let sandbox = Sandbox::new();
    let local = sandbox.dir.path().join(".coco/local.yaml");
    let base = "folder:\n  home: ~/home\n  state: ~/state\n";
    std::fs::write(
        &local,
        format!("{base}fleet:\n  renew_every: 1s\n  lease: 6s\n"),
    )
    .unwrap();
    let shown = ok(&sandbox, &["config"], 0);
    for (key, value) in [("fleet.renew_every", "1s"), ("fleet.lease", "6s")] {
        let line = shown
            .lines()
            .find(|line| line.contains(key))
            .unwrap_or_else(|| panic!("{shown}"));
        assert!(
            line.contains(value) && line.contains("local.yaml"),
            "{line}"
        );
    }
    // A daemon records the lease it renews: `coco alive` judges it by it.
    let daemon = sandbox.spawn(&["daemon", "--no-apps"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let members: Vec<serde_json::Value> =
            serde_json::from_str(&ok(&sandbox, &["alive", "--json"], 0)).unwrap();
        if members.iter().any(|m| m["lease_ms"] == 6_000) {
            break;
        }
        assert!(Instant::now() < deadline, "{members:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(daemon);
    for (text, at, says) in [
        (
            "fleet:\n  lease: 2s\n",
            "local.yaml:5:10",
            "at least three renewals (6s)",
        ),
        (
            "fleet:\n  renew_every: 10ms\n",
            "local.yaml:5:16",
            "must be at least 100ms (every host writes the store this often)",
        ),
        (
            "fleet:\n  lease: 2h\n",
            "local.yaml:5:10",
            "must be at most 1h",
        ),
        ("fleet:\n  lease: soon\n", "local.yaml:5:10", "soon"),
    ] {
        std::fs::write(&local, format!("{base}{text}")).unwrap();
        let refused = sandbox.coco(&["config"]);
        assert_eq!(
            refused.status.code(),
            Some(1),
            "{text}: {}",
            stderr(&refused)
        );
        let said = stderr(&refused);
        assert!(said.contains(at) && said.contains(says), "{text}: {said}");
    }
}
