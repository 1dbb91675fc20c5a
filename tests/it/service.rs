//! `coco service install | uninstall` through the binary: the unit `--print` shows is one
//! `systemd-analyze verify` accepts (system and user), it carries the relative `--config`
//! typed made absolute and the sandbox's HOME, a user unit is written, left alone when
//! unchanged, refused removal while enabled and removed; a `--mongo-url` (a password in a
//! world-readable file) and an unknown `--run-as` user are refused with nothing written.

use std::path::Path;
use std::process::Command;

use crate::support::{Sandbox, stderr, stdout};

const ANALYZE: &str = "/usr/bin/systemd-analyze";

/// `systemd-analyze verify` of `text` saved as `dir/coco.service`: accepted, and without a
/// word of complaint (it exits 0 on a directive it ignores, saying so on stderr).
#[allow(clippy::disallowed_methods)] // the test runs systemd's own checker
fn verified(dir: &Path, text: &str) {
    if !Path::new(ANALYZE).exists() {
        eprintln!("systemd is not installed here ({ANALYZE} missing): the unit is not verified");
        return;
    }
    let path = dir.join("coco.service");
    std::fs::write(&path, text).unwrap();
    let checked = Command::new(ANALYZE)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&checked.stderr).into_owned()
        + &String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success() && !said.contains("coco.service"),
        "systemd-analyze verify: {said}\n{text}"
    );
}

#[test]
fn the_unit_printed_is_one_systemd_accepts() {
    let sandbox = Sandbox::new();
    let conf = sandbox.dir.path().join("my conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("local.yaml"),
        "folder:\n  home: home\n  state: state\ndaemon:\n  app_grace: 20s\n",
    )
    .unwrap();
    let home = sandbox.dir.path().to_str().unwrap().to_string();
    let exe = env!("CARGO_BIN_EXE_coco");

    // The README way: a relative --config, typed from the folder above it.
    let printed = sandbox.coco(&[
        "--config",
        "my conf/local.yaml",
        "service",
        "install",
        "--print",
    ]);
    assert_eq!(printed.status.code(), Some(0), "{}", stderr(&printed));
    let system = stdout(&printed);
    let config = format!("{home}/my conf/local.yaml");
    for line in [
        format!("ExecStart={exe} --config \"{config}\" daemon"),
        format!("Environment=HOME={home}"),
        "Restart=on-failure".to_string(),
        "KillMode=mixed".to_string(),
        // 10 s shutdown grace + 5 s job grace + the configured app grace + 10 s.
        "TimeoutStopSec=45s".to_string(),
        "Delegate=yes".to_string(),
        "WantedBy=multi-user.target".to_string(),
    ] {
        assert!(system.lines().any(|l| l == line), "{line} in:\n{system}");
    }
    assert!(system.lines().any(|l| l.starts_with("User=")), "{system}");
    verified(sandbox.dir.path(), &system);

    let user = stdout(&sandbox.coco(&["service", "install", "--user", "--print"]));
    assert!(!user.contains("User="), "{user}");
    assert!(user.contains("WantedBy=default.target"), "{user}");
    assert!(user.contains(&format!("ExecStart={exe} daemon")), "{user}");
    verified(sandbox.dir.path(), &user);
    // Nothing written by --print.
    assert!(!sandbox.dir.path().join(".config").exists());
}

#[test]
fn a_user_unit_is_written_kept_and_removed() {
    let sandbox = Sandbox::new();
    let xdg = sandbox.dir.path().join("xdg");
    let env = [("XDG_CONFIG_HOME", xdg.to_str().unwrap())];
    let unit = xdg.join("systemd/user/coco.service");
    let printed = stdout(&sandbox.coco_env(&["service", "install", "--user", "--print"], &env));

    let installed = sandbox.coco_env(&["service", "install", "--user"], &env);
    assert_eq!(installed.status.code(), Some(0), "{}", stderr(&installed));
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), printed);
    assert_eq!(
        stdout(&installed).trim(),
        "systemctl --user daemon-reload && systemctl --user enable --now coco.service"
    );
    assert!(
        stderr(&installed).contains("wrote "),
        "{}",
        stderr(&installed)
    );
    assert!(stderr(&installed).contains("loginctl enable-linger"));
    let again = sandbox.coco_env(&["service", "install", "--user"], &env);
    assert!(
        stderr(&again).contains("is already this unit"),
        "{}",
        stderr(&again)
    );

    // Enabled (as `systemctl --user enable` leaves it): not removed.
    let wants = xdg.join("systemd/user/default.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(&unit, wants.join("coco.service")).unwrap();
    let refused = sandbox.coco_env(&["service", "uninstall", "--user"], &env);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("first `systemctl --user disable --now coco.service`"),
        "{}",
        stderr(&refused)
    );
    assert!(unit.exists());
    std::fs::remove_file(wants.join("coco.service")).unwrap();

    let removed = sandbox.coco_env(&["service", "uninstall", "--user"], &env);
    assert_eq!(removed.status.code(), Some(0), "{}", stderr(&removed));
    assert_eq!(stdout(&removed).trim(), "systemctl --user daemon-reload");
    assert!(!unit.exists());
    let nothing = sandbox.coco_env(&["service", "uninstall", "--user"], &env);
    assert_eq!(nothing.status.code(), Some(0));
    assert!(stderr(&nothing).contains("nothing to remove"));
}

#[test]
fn a_password_or_an_unknown_user_is_refused_with_nothing_written() {
    let sandbox = Sandbox::new();
    let xdg = sandbox.dir.path().join("xdg");
    let env = [("XDG_CONFIG_HOME", xdg.to_str().unwrap())];
    let secret = "s3cret-pass";
    let url = format!("mongodb://coco:{secret}@db.example:27017/");
    let refused = sandbox.coco_env(&["--mongo-url", &url, "service", "install", "--user"], &env);
    assert_eq!(refused.status.code(), Some(1));
    let said = stdout(&refused) + &stderr(&refused);
    assert!(
        said.contains("--mongo-url is not put into a unit"),
        "{said}"
    );
    assert!(!said.contains(secret), "{said}");
    assert!(!xdg.exists(), "nothing written");

    let unknown = sandbox.coco(&[
        "service",
        "install",
        "--print",
        "--run-as",
        "no-such-user-x",
    ]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no user `no-such-user-x` on this host"),
        "{}",
        stderr(&unknown)
    );
    assert!(stdout(&unknown).is_empty());
}
