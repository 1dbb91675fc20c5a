//! A `coco daemon` process a benchmark started (`daemon_bench`, `api_bench`): its stderr
//! kept in a file, waited for, stopped with SIGTERM, SIGKILLed on drop if still running.
//! Included by each with `#[path = "../bench_common/daemon.rs"] mod daemon_process;`.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

use crate::common::signal;

/// A running `coco daemon`; SIGKILLed on drop if still running.
pub struct DaemonProcess {
    child: Option<Child>,
    log: PathBuf,
}

impl DaemonProcess {
    /// `child`, whose stderr goes to the file `log`.
    pub fn new(child: Child, log: PathBuf) -> DaemonProcess {
        DaemonProcess {
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of its stderr, for error messages.
    pub fn log_tail(&self) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// Wait until a line of its stderr contains `needle`, checking every 2 ms; when it
    /// appeared (to within that), or an error if the daemon exited or `within` passed.
    pub async fn wait_for_log(
        &mut self,
        needle: &str,
        within: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + within;
        loop {
            if self.log().contains(needle) {
                return Ok(Instant::now());
            }
            self.check_running()?;
            if Instant::now() > deadline {
                bail!(
                    "the daemon logged no {needle:?} within {within:?}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// An error if the daemon has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            bail!("the daemon exited ({status}):\n{}", self.log_tail());
        }
        Ok(())
    }

    /// SIGTERM (the daemon stops its apps and hands runs back), then wait for the exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if child.try_wait()?.is_some() {
                self.child = None;
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the daemon did not exit within 30 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A TCP port of 127.0.0.1 free right now (bound, then released): a daemon's API, an app.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
