//! The dashboard end to end, in Debian's headless Chromium driven over WebDriver
//! (chromedriver, fantoccini): log in through `coco dashboard`'s one-time link, enqueue a job
//! from the page's form, watch its progress bar move and the run complete; restart a failed
//! run, pause and resume, remove a waiting run and kill a running one (each asking "sure?"
//! first), restart the app, each seen in the store; break the manifest and see its located
//! error. Saves `docs/dashboard.png` (1280×800) and
//! `docs/dashboard-narrow.png` (390×844) on the way, for the README.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`: `tests/browser.sh` installs them
//! (`tests/run.sh` calls it). Without them this test fails saying so; it never passes by
//! testing nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::support::{Background, Sandbox, free_port, stderr, stdout};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Reports 10 %, 20 %, … 100 % over about five seconds, with a message and a line of output
/// each step.
const SLOW: &str = r#"import sys, time
steps = int(sys.argv[1])
for i in range(1, steps + 1):
    time.sleep(0.45)
    print(f"::progress:: {i / steps:.2f} step {i} of {steps}", flush=True)
    print(f"part {i} done", flush=True)
"#;

fn manifest(port: u16) -> String {
    format!(
        r#"description: the dashboard's test project
jobs:
  slow:
    command: [python3, slow.py, '{{{{args.steps}}}}']
    args: {{steps: 10}}
  hello:
    command: [sh, -c, 'echo hello {{{{args.who}}}}']
    args: {{who: world}}
  flaky:
    command: [sh, -c, 'echo no luck >&2; exit 3']
    attempts: 1
  nightly:
    command: [echo, nightly]
    schedule: "30 2 * * *"
    timezone: Europe/Berlin
apps:
  web:
    command: [python3, -m, http.server, '{port}', --bind, 127.0.0.1]
    port: {port}
    health: {{http: /}}
"#
    )
}

/// chromedriver, in a process group of its own with the browsers it starts: the whole group
/// is killed when this drops, a failed test included.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    #[allow(clippy::disallowed_methods)] // the test starts the browser's driver itself
    fn start() -> Driver {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"));
        let driver = Driver { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process group we made; its leader is our unreaped child.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn browser_there() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard's browser test needs {missing:?}: run tests/browser.sh (it installs \
         Debian's chromium and chromium-driver)"
    );
}

#[test]
fn the_dashboard_in_a_browser() {
    browser_there();
    let sandbox = Sandbox::new();
    sandbox.project("demo", &manifest(free_port()));
    sandbox.file("demo/slow.py", SLOW, false);
    sandbox.apply();
    // A few finished runs, so the page has history to show.
    let hello = sandbox.enqueue(&["demo.hello", "--arg", "who=Ada"]);
    sandbox.enqueue(&["demo.hello", "--arg", "who=Grace"]);
    let flaky = sandbox.enqueue(&["demo.flaky"]);

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = sandbox.spawn(&["daemon", "--api-listen", &listen]);
    daemon.wait_for_log(&format!("daemon: API on http://{listen}"));
    sandbox.wait_for_state(&hello, "complete");
    sandbox.wait_for_state(&flaky, "error");

    let printed = sandbox.coco(&["dashboard", "--api-listen", &listen]);
    assert_eq!(printed.status.code(), Some(0), "{}", stderr(&printed));
    let link = stdout(&printed);
    let link = link
        .lines()
        .find(|line| line.contains("/login?code="))
        .unwrap_or_else(|| panic!("no login link in {link:?}"))
        .trim()
        .to_string();

    let tmp = tempfile::tempdir().unwrap();
    let driver = Driver::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let browser = browser(&driver, tmp.path()).await;
        drive(&browser, &sandbox, &daemon, &link, &flaky).await;
        let _ = browser.close().await;
    });
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1280,800",
    ];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session with headless Chromium")
}

async fn drive(browser: &Client, sandbox: &Sandbox, daemon: &Background, link: &str, flaky: &str) {
    let page = Page { browser, daemon };
    viewport(browser, 1280, 800).await;

    // Not logged in yet: the page says how to.
    let origin = link.split("/login").next().unwrap();
    browser.goto(&format!("{origin}/")).await.unwrap();
    page.until(
        "the not-logged-in screen",
        "return !document.getElementById('login-screen').hidden || null",
    )
    .await;

    // The one-time link logs in and lands on the board; a second use is refused.
    browser.goto(link).await.unwrap();
    page.until(
        "the board",
        "return document.getElementById('app').dataset.ready || null",
    )
    .await;
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.path(), "/", "the login link redirects to the page");
    page.until(
        "the jobs with their schedule",
        "const j = document.querySelector('[data-job=\"demo.nightly\"]'); \
         return j && j.textContent.includes('30 2 * * *') && j.textContent.includes('Europe/Berlin') || null",
    )
    .await;
    page.until(
        "the finished runs",
        "return document.querySelectorAll('#recent tr[data-state=complete]').length >= 2 \
         && document.querySelector('#recent tr[data-state=error]') || null",
    )
    .await;
    page.until(
        "the daemon with its heartbeat",
        "return document.querySelector('#members [data-kind=daemon]') || null",
    )
    .await;

    // Enqueue through the page's button and form, with arguments.
    browser
        .find(Locator::Css(
            "[data-job=\"demo.slow\"] button[data-action=enqueue]",
        ))
        .await
        .expect("an enqueue button for an operator")
        .click()
        .await
        .unwrap();
    let args = browser.find(Locator::Css("#enqueue-args")).await.unwrap();
    args.clear().await.unwrap();
    args.send_keys("{\"steps\": oops").await.unwrap();
    page.until(
        "the form refusing arguments that are not JSON",
        "return document.getElementById('enqueue-submit').disabled \
         && !document.getElementById('enqueue-error').hidden || null",
    )
    .await;
    args.clear().await.unwrap();
    args.send_keys("{\"steps\": 12}").await.unwrap();
    browser
        .find(Locator::Css("#enqueue-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Its progress bar moves (two different values seen), while the page is photographed.
    let bar = "#running [data-run-id] .bar";
    let run = page
        .until(
            "the run in the running section",
            &format!("const b = document.querySelector('{bar}'); return b && b.dataset.progress !== '' && b.closest('[data-run-id]').dataset.runId || null"),
        )
        .await;
    let run = run.as_str().unwrap().to_string();
    let progress = |min: f64| {
        format!(
            "const b = document.querySelector('#running [data-run-id=\"{run}\"] .bar'); \
             const p = b && parseFloat(b.dataset.progress); return p >= {min} ? p : null"
        )
    };
    let first = page
        .until("some progress", &progress(0.0))
        .await
        .as_f64()
        .unwrap();
    let later = page
        .until("more progress", &progress(first + 0.05))
        .await
        .as_f64()
        .unwrap();
    assert!(later > first, "{first} then {later}");
    page.until("the job half done", &progress(0.4)).await;
    // The "Enqueued" note is dismissed first, as a person would.
    page.click("the enqueue note's close button", ".toast .toast-close")
        .await;
    page.until(
        "no note left",
        "return document.querySelector('.toast') ? null : true",
    )
    .await;
    shoot(browser, 1280, 800, "docs/dashboard.png").await;
    shoot(browser, 390, 844, "docs/dashboard-narrow.png").await;
    viewport(browser, 1280, 800).await;

    // … and it completes.
    page.until(
        "the run complete",
        &format!("return document.querySelector('#recent tr[data-run-id=\"{run}\"][data-state=complete]') || null"),
    )
    .await;
    assert_eq!(sandbox.run_json(&run)["args"]["steps"], 12);

    operate(&page, sandbox, flaky).await;

    // A broken manifest: its error appears with the file, line and column.
    let broken = manifest(free_port()).replace("\"30 2 * * *\"", "\"61 2 * * *\"");
    std::fs::write(sandbox.home().join("demo/coco.yaml"), &broken).unwrap();
    let validate = sandbox.coco(&["validate"]);
    let said = stdout(&validate) + &stderr(&validate);
    let place = said
        .split_whitespace()
        .find_map(|word| {
            let at = word.find("coco.yaml:")?;
            Some(word[at..].trim_end_matches(':').to_string())
        })
        .unwrap_or_else(|| panic!("coco validate names no place: {said}"));
    let place_js = serde_json::to_string(&place).unwrap();
    page.until(
        "the manifest problem",
        &format!(
            "const p = document.getElementById('problems'); \
             return !p.hidden && p.textContent.includes({place_js}) || null"
        ),
    )
    .await;
}

/// The operator's buttons, each seen to take effect in the store: restart the failed run,
/// pause everything (a new run then waits) and remove the waiting run, resume, kill a
/// running run (its button asks "sure?" first), restart the app.
async fn operate(page: &Page<'_>, sandbox: &Sandbox, flaky: &str) {
    let row = |id: &str| format!("#recent tr[data-run-id=\"{id}\"]");

    page.click(
        "the failed run's Restart",
        &format!("{} button[data-action=restart]", row(flaky)),
    )
    .await;
    let again = page
        .until(
            "the restarted run",
            &format!(
                "const rows = [...document.querySelectorAll('#recent tr[data-run-id]')]\
                 .filter(r => r.textContent.includes('demo.flaky') && r.dataset.runId !== '{flaky}'); \
                 return rows.length ? rows[0].dataset.runId : null"
            ),
        )
        .await;
    let again = again.as_str().unwrap().to_string();
    assert_eq!(sandbox.run_json(&again)["job"], "demo.flaky");

    page.click("Pause", "#pause-toggle[data-action=pause]")
        .await;
    page.until(
        "the switch offering Resume",
        "return document.getElementById('pause-toggle').dataset.action === 'resume' || null",
    )
    .await;
    let status = |sandbox: &Sandbox| stdout(&sandbox.coco(&["status", "--json"]));
    assert!(
        status(sandbox).contains("mode: paused"),
        "{}",
        status(sandbox)
    );
    let waiting = sandbox.enqueue(&["demo.hello", "--arg", "who=Pat"]);
    let remove = format!("{} button[data-action=remove]", row(&waiting));
    page.click("the waiting run's Remove", &remove).await;
    page.until(
        "Remove asking to be sure",
        &format!("return document.querySelector('{remove}.armed') || null"),
    )
    .await;
    assert_eq!(sandbox.run_json(&waiting)["state"], "pending", "not yet");
    page.click("Remove it?", &remove).await;
    sandbox.wait_for_state(&waiting, "removed");
    page.click("Resume", "#pause-toggle[data-action=resume]")
        .await;
    page.until(
        "the switch offering Pause",
        "return document.getElementById('pause-toggle').dataset.action === 'pause' || null",
    )
    .await;
    assert!(
        status(sandbox).contains("mode: running"),
        "{}",
        status(sandbox)
    );

    let long = sandbox.enqueue(&["demo.slow", "--arg", "steps=200"]);
    let kill = format!("#running [data-run-id=\"{long}\"] button[data-action=kill]");
    page.click("the running run's Kill", &kill).await;
    page.click("Kill it?", &format!("{kill}.armed")).await;
    sandbox.wait_for_state(&long, "killed");
    page.until(
        "the killed run",
        &format!(
            "return document.querySelector('{}[data-state=killed]') || null",
            row(&long)
        ),
    )
    .await;

    page.click(
        "the app's Restart",
        "button[data-action=app-restart][data-app=\"demo.web\"]",
    )
    .await;
    page.until(
        "the app restarted once",
        "return document.getElementById('apps').textContent.includes('1 restart') || null",
    )
    .await;
}

/// The page in the browser, and the daemon whose log a failure shows.
struct Page<'a> {
    browser: &'a Client,
    daemon: &'a Background,
}

impl Page<'_> {
    /// Click the element `css` finds (waiting up to 20 s for it to be there), as a person
    /// would: a real click through WebDriver, not a script's.
    async fn click(&self, what: &str, css: &str) {
        let css_js = serde_json::to_string(css).unwrap();
        self.until(
            what,
            &format!("return document.querySelector({css_js}) ? true : null"),
        )
        .await;
        // An event may redraw the element between finding and clicking it (a person's click
        // lands on whatever is there): then find it again.
        for _ in 0..20 {
            let found = self.browser.find(Locator::Css(css)).await;
            let found = found.unwrap_or_else(|e| panic!("{what}: {e}"));
            match found.click().await {
                Ok(()) => return,
                Err(e) if e.to_string().contains("stale element") => continue,
                Err(e) => panic!("{what}: the click failed: {e}"),
            }
        }
        panic!("{what}: redrawn under every click");
    }

    /// Run `script` until it returns something other than null (up to 20 s); that value.
    async fn until(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.browser.execute(script, Vec::new()).await {
                Ok(Value::Null) => {}
                Ok(value) => return value,
                Err(error) => panic!("{what}: the script failed: {error}\n{script}"),
            }
            if Instant::now() > deadline {
                let body = self
                    .browser
                    .execute("return document.body.innerText", Vec::new())
                    .await
                    .unwrap_or_default();
                panic!(
                    "{what}: not seen within 20 s.\nThe page says:\n{}\nThe daemon's log:\n{}",
                    body.as_str().unwrap_or_default(),
                    self.daemon.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Size the window so the page's viewport is `width` × `height`.
async fn viewport(browser: &Client, width: u32, height: u32) {
    browser.set_window_size(width, height).await.unwrap();
    let inner = browser
        .execute("return [innerWidth, innerHeight]", Vec::new())
        .await
        .unwrap();
    let (w, h) = (
        inner[0].as_u64().unwrap() as u32,
        inner[1].as_u64().unwrap() as u32,
    );
    if (w, h) != (width, height) {
        browser
            .set_window_size(
                width + width.saturating_sub(w),
                height + height.saturating_sub(h),
            )
            .await
            .unwrap();
    }
}

/// A screenshot at `width` × `height` into `path` (under the crate).
async fn shoot(browser: &Client, width: u32, height: u32, path: &str) {
    viewport(browser, width, height).await;
    // Let the layout settle and the bars' transitions finish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let png = browser.screenshot().await.unwrap();
    assert_eq!(&png[1..4], b"PNG", "a PNG");
    let size = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!(size, (width, height), "the screenshot of {path}");
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
