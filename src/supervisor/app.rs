//! One supervised app: a task that owns the app's process from start to stop.
//!
//! Theory of operation: the task starts the process ([`Plan::spec`], in its project's
//! environment), captures its output into a tail stored as `app:<id>` (`coco logs APP`),
//! checks its health every `interval` (every [`STARTING_CHECK`] until it first passes), and
//! writes its [`AppStatus`] every `status_every` — which also renews the daemon's hold on the
//! app ([`Fleet::claim_app`](crate::store::Fleet::claim_app)); a refused write means another daemon took the app over, and the
//! process is stopped. A process that ends is started again as the restart policy says, after
//! the [`backoff`] delay; [`UNHEALTHY_RESTART`] failed checks in a row after it was healthy
//! restart it too. A new [`Plan`] (definition or project environment changed) replaces the
//! process: without a port, the new one is started first and the old one stopped once the new
//! one runs; with a port (which two processes cannot share) the old one is stopped first.
//! The task runs in the supervisor's `app{app=ID}` span, so its records name the app.
//! [`Order::Stop`] stops the process (SIGTERM, grace, SIGKILL to its group) and releases the
//! app in the store. Every restart is counted in the status and in the process's metrics
//! (`coco_app_restarts_total`, [`crate::metrics::app_restarted`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{backoff, health};
use crate::manifest::App;
use crate::process::{self, Child, Event, LineKind, Stream, TailBuffer, guard};
use crate::store::{AppState, AppStatus, Store};

/// Health checks this often until the first one passes.
pub const STARTING_CHECK: Duration = Duration::from_millis(20);

/// Failed checks in a row that restart an app that was healthy.
pub const UNHEALTHY_RESTART: u32 = 3;

/// What to run for an app, and the hash that says when it changed.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `project.app`.
    pub id: String,
    pub app: App,
    pub spec: process::Spec,
    /// Of the definition and the project environment.
    pub hash: String,
}

/// What the supervisor tells an app's task.
#[derive(Debug)]
pub enum Order {
    /// Run this plan (replacing the process if the hash differs).
    Run(Box<Plan>),
    /// Stop the process and release the app.
    Stop,
}

/// Who supervises, and how.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The daemon's name, host and pid (the app's owner in the store).
    pub owner: String,
    pub host: String,
    pub owner_pid: u32,
    /// How often the status is written (and the hold renewed).
    pub status_every: Duration,
    /// A holder silent for this long may be taken over.
    pub stale_after: Duration,
    /// After SIGTERM, how long the group has before SIGKILL.
    pub grace: Duration,
    /// How often captured output is stored.
    pub output_every: Duration,
    pub tail_bytes: usize,
    pub guard: Option<guard::Handle>,
}

/// The running process of an app.
struct Running {
    child: Child,
    _capture: process::Capture,
    started: DateTime<Utc>,
    since: Instant,
}

/// The app's task state.
struct Supervised {
    store: Arc<dyn Store>,
    settings: Arc<Settings>,
    plan: Plan,
    running: Option<Running>,
    state: AppState,
    restarts: u32,
    in_a_row: u32,
    restart_at: Option<Instant>,
    /// When the latest process was started (or tried to start).
    last_start: DateTime<Utc>,
    health: Option<String>,
    healthy: Option<bool>,
    checked: Option<DateTime<Utc>>,
    ever_healthy: bool,
    failed_checks: u32,
    tail: TailBuffer,
    output_dirty: bool,
    events: mpsc::Sender<Event>,
    /// The fencing token of this daemon's hold on the app (every write is conditional on it).
    token: u64,
    /// When the latest write that renewed the hold started: the hold lasts `stale_after`
    /// from then.
    renewed: Instant,
    /// Stopped because the hold could not be renewed (`on_store_loss: stop`); started again
    /// once a renewal succeeds.
    fenced: bool,
    /// What the latest status write found.
    hold: Hold,
}

/// What a status write found out about the hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Renewed.
    Held,
    /// Another daemon took the app (or it was released): stop here.
    Lost,
    /// The store did not answer in time: unknown.
    Unknown,
}

/// Before the hold can have expired, the margin a `stop` app's process is stopped by (on top
/// of its grace): what signals and the kernel take.
pub const STOP_MARGIN: Duration = Duration::from_secs(1);

/// Supervise `plan` until [`Order::Stop`], the orders' sender is dropped, or another daemon
/// takes the app over.
pub async fn supervise(
    store: Arc<dyn Store>,
    settings: Arc<Settings>,
    plan: Plan,
    token: u64,
    mut orders: mpsc::Receiver<Order>,
) {
    let (events, mut output) = mpsc::channel::<Event>(256);
    let tail = TailBuffer::new(settings.tail_bytes);
    let mut app = Supervised {
        store,
        settings: Arc::clone(&settings),
        plan,
        running: None,
        state: AppState::Starting,
        restarts: 0,
        in_a_row: 0,
        restart_at: None,
        last_start: Utc::now(),
        health: None,
        healthy: None,
        checked: None,
        ever_healthy: false,
        failed_checks: 0,
        tail,
        output_dirty: false,
        events,
        token,
        renewed: Instant::now(),
        fenced: false,
        hold: Hold::Held,
    };
    app.start().await;
    let mut status_tick = tokio::time::interval(settings.status_every);
    let mut output_tick = tokio::time::interval(settings.output_every);
    let mut next_check = Instant::now() + STARTING_CHECK;
    loop {
        let restart_at = app.restart_at;
        let checking = app.running.is_some() && app.health_check().is_some();
        let stop_at = app.stop_deadline();
        tokio::select! {
            order = orders.recv() => match order {
                Some(Order::Run(plan)) => {
                    if plan.hash != app.plan.hash {
                        app.replace(*plan).await;
                        next_check = Instant::now() + STARTING_CHECK;
                    }
                }
                Some(Order::Stop) | None => {
                    app.stop().await;
                    break;
                }
            },
            exit = async { app.running.as_mut().expect("checked").child.wait().await }, if app.running.is_some() => {
                app.ended(exit.ok()).await;
            }
            () = async { tokio::time::sleep_until(restart_at.expect("checked")).await }, if restart_at.is_some() => {
                app.restart_at = None;
                app.restarted();
                app.start().await;
                next_check = Instant::now() + STARTING_CHECK;
            }
            () = tokio::time::sleep_until(next_check), if checking => {
                let before = app.state;
                if app.check().await {
                    // A failing app that was healthy is restarted.
                    app.restart_unhealthy().await;
                } else if app.state != before {
                    // `coco apps` and `coco logs` follow a change of state at once, not at
                    // their next tick.
                    app.store_output().await;
                    app.report().await;
                }
                next_check = Instant::now() + app.check_interval();
            }
            Some(event) = output.recv() => app.output(event),
            _ = output_tick.tick() => app.store_output().await,
            () = async { tokio::time::sleep_until(stop_at.expect("checked")).await }, if stop_at.is_some() => {
                app.fence().await;
            }
            _ = status_tick.tick() => {
                if !app.report().await {
                    tracing::warn!("another daemon took the app over: stopping it here");
                    app.terminate().await;
                    break;
                }
                if app.fenced && app.hold == Hold::Held {
                    tracing::warn!(
                        "the store answers again and the app is still this daemon's: starting it again"
                    );
                    app.fenced = false;
                    app.start().await;
                    next_check = Instant::now() + STARTING_CHECK;
                }
                if app.restart_asked().await {
                    app.restart_asked_for().await;
                    next_check = Instant::now() + STARTING_CHECK;
                }
            }
        }
    }
    app.store_output().await;
}

/// How often a healthy app is checked: as configured, but never more often than a manifest
/// may say today (a definition stored before that bound existed may hold `0s`). Pure.
fn steady_interval(configured: Duration) -> Duration {
    configured.max(crate::manifest::limits::HEALTH_INTERVAL.min)
}

impl Supervised {
    fn health_check(&self) -> Option<(&crate::manifest::Health, u16)> {
        Some((self.plan.app.health.as_ref()?, self.plan.app.port?))
    }

    /// Count a restart: in the status (`coco apps`) and in the process's metrics.
    fn restarted(&mut self) {
        self.restarts += 1;
        crate::metrics::app_restarted(&self.plan.id);
    }

    fn check_interval(&self) -> Duration {
        match self.health_check() {
            Some((health, _)) if self.healthy == Some(true) => steady_interval(health.interval.0),
            _ => STARTING_CHECK,
        }
    }

    /// Start the plan's process; on failure, retry after the backoff. A `stop` app whose
    /// hold is past its stop deadline (not renewed in time: the guard may just have ended
    /// it) is not started but fenced: it starts again only once a renewal succeeds.
    async fn start(&mut self) {
        if !self.plan.app.on_store_loss.is_keep()
            && Instant::now() >= self.renewed + self.stop_ahead()
        {
            self.restart_at = None;
            self.state = AppState::Stopped;
            if !self.fenced {
                tracing::warn!(
                    "the hold on the app was not renewed in time: not starting it here \
                     (on_store_loss: stop)"
                );
                self.fenced = true;
            }
            return;
        }
        self.last_start = Utc::now();
        let mut spec = self.plan.spec.clone();
        if let Some(guard) = &self.settings.guard {
            guard.hold(&mut spec, &format!("app-{}", self.plan.id));
        }
        match process::spawn(&spec) {
            Ok(mut child) => {
                let capture = child.capture(self.events.clone());
                tracing::info!(pid = child.pid(), "app started");
                self.running = Some(Running {
                    child,
                    _capture: capture,
                    started: self.last_start,
                    since: Instant::now(),
                });
                self.state = if self.health_check().is_some() {
                    AppState::Starting
                } else {
                    AppState::Running
                };
                self.healthy = None;
                self.failed_checks = 0;
                self.ever_healthy = false;
            }
            Err(error) => {
                tracing::error!("cannot start: {error}");
                self.push_line("log", &format!("ERROR cannot start: {error}"));
                self.schedule_restart(Duration::ZERO, false);
            }
        }
        self.report().await;
    }

    /// The process ended by itself.
    async fn ended(&mut self, exit: Option<process::Exit>) {
        let Some(running) = self.running.take() else {
            return;
        };
        let uptime = running.since.elapsed();
        let success = exit.is_some_and(|exit| exit.success());
        let text = exit.map_or("ended".to_owned(), |exit| exit.to_string());
        tracing::warn!(uptime = %crate::fields::duration(uptime), "app exited: {text}");
        self.push_line("log", &format!("WARNING exited: {text}"));
        self.schedule_restart(uptime, success);
        self.report().await;
    }

    /// Restart as the policy says (after the backoff), or mark the app exited.
    fn schedule_restart(&mut self, uptime: Duration, success: bool) {
        if backoff::restarts(self.plan.app.restart, success) {
            self.in_a_row = backoff::in_a_row(self.in_a_row, uptime);
            let delay = backoff::delay(self.in_a_row);
            self.restart_at = Some(Instant::now() + delay);
            self.state = AppState::Backoff;
        } else {
            self.restart_at = None;
            self.state = AppState::Exited;
        }
    }

    /// One health check; true if the app should be restarted for failing.
    async fn check(&mut self) -> bool {
        let Some((health, port)) = self.health_check() else {
            return false;
        };
        let (check, timeout) = (health.check.clone(), health.timeout.0);
        let result = health::check(&check, port, timeout).await;
        self.checked = Some(Utc::now());
        match result {
            Ok(text) => {
                if self.healthy != Some(true) {
                    tracing::info!("app healthy: {text}");
                }
                self.health = Some(text);
                self.healthy = Some(true);
                self.ever_healthy = true;
                self.failed_checks = 0;
                self.state = AppState::Healthy;
                false
            }
            Err(text) => {
                self.health = Some(text);
                self.healthy = Some(false);
                if self.ever_healthy {
                    self.failed_checks += 1;
                    self.state = AppState::Unhealthy;
                }
                self.failed_checks >= UNHEALTHY_RESTART
            }
        }
    }

    async fn restart_unhealthy(&mut self) {
        tracing::warn!(
            "{} health checks failed in a row: restarting",
            UNHEALTHY_RESTART
        );
        self.push_line("log", "WARNING unhealthy: restarting");
        self.terminate().await;
        self.schedule_restart(Duration::ZERO, false);
        self.report().await;
    }

    /// Replace the process with one of `plan`.
    async fn replace(&mut self, plan: Plan) {
        tracing::info!("definition changed: restarting the app");
        let shares_port = plan.app.port.is_some() || self.plan.app.port.is_some();
        self.plan = plan;
        self.renew(shares_port).await;
    }

    /// Has an operator asked for a restart (`POST apps/{id}/restart`) since the process (or
    /// its latest try to start) started? A switch that cannot be read asks for nothing.
    async fn restart_asked(&self) -> bool {
        match self.store.control().await {
            Ok(control) => control.restarts_app(&self.plan.id, self.last_start),
            Err(error) => {
                tracing::debug!("cannot read the switches: {error}");
                false
            }
        }
    }

    /// Restart because an operator asked: as a change of definition does.
    async fn restart_asked_for(&mut self) {
        tracing::info!("a restart was asked for: restarting the app");
        self.push_line("log", "INFO restart asked for");
        self.renew(self.plan.app.port.is_some()).await;
    }

    /// A new process for the plan: the old one stopped first if the two would share a port,
    /// else stopped once the new one started (a rolling restart).
    async fn renew(&mut self, shares_port: bool) {
        self.restart_at = None;
        self.in_a_row = 0;
        if shares_port {
            self.terminate().await;
            self.restarted();
            self.start().await;
        } else {
            let old = self.running.take();
            self.restarted();
            self.start().await;
            if let Some(mut old) = old {
                let _ = old.child.terminate_group(self.settings.grace).await;
            }
        }
    }

    /// Stop the process, if any (SIGTERM, grace, SIGKILL).
    async fn terminate(&mut self) {
        if let Some(mut running) = self.running.take() {
            match running.child.terminate_group(self.settings.grace).await {
                Ok(done) => {
                    tracing::info!(forced = done.forced, "app stopped")
                }
                Err(error) => tracing::warn!("stopping: {error}"),
            }
        }
    }

    /// Stop for good and release the app.
    async fn stop(&mut self) {
        self.terminate().await;
        self.tell_guard();
        self.state = AppState::Stopped;
        if let Err(error) = self
            .store
            .release_app(&self.plan.id, &self.settings.owner, self.token)
            .await
        {
            tracing::warn!("cannot release: {error}");
        }
    }

    fn output(&mut self, event: Event) {
        let (tag, text) = match event.kind {
            LineKind::Output(line) => (
                match event.stream {
                    Stream::Stdout => "out",
                    Stream::Stderr => "err",
                },
                line,
            ),
            LineKind::Log { level, message } => ("log", format!("{level} {message}")),
            LineKind::Progress { fraction, message } => (
                "log",
                format!("progress {fraction} {}", message.unwrap_or_default()),
            ),
        };
        self.tail.push(&crate::tail::line(event.at, tag, &text));
        self.output_dirty = true;
    }

    fn push_line(&mut self, tag: &str, text: &str) {
        self.tail.push(&crate::tail::line(Utc::now(), tag, text));
        self.output_dirty = true;
    }

    async fn store_output(&mut self) {
        if !self.output_dirty {
            return;
        }
        self.output_dirty = false;
        let key = format!("app:{}", self.plan.id);
        match self
            .store
            .put_output(&key, self.token, &self.tail.text())
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::info!("not keeping the output: another daemon took the app"),
            Err(error) => tracing::warn!("cannot store output: {error}"),
        }
    }

    /// When a `stop` app's process must be stopped unless the hold is renewed before: the
    /// hold expires `stale_after` after the latest renewal, and the process has `grace` (and
    /// [`STOP_MARGIN`]) to end. `None` for a `keep` app, or with no process.
    fn stop_deadline(&self) -> Option<Instant> {
        if self.plan.app.on_store_loss.is_keep() || self.running.is_none() {
            return None;
        }
        Some(self.renewed + self.stop_ahead())
    }

    /// How long after a renewal a `stop` app's process may run unrenewed.
    fn stop_ahead(&self) -> Duration {
        self.settings
            .stale_after
            .saturating_sub(self.settings.grace + STOP_MARGIN)
    }

    /// A `stop` app's process must end by its deadline even if this daemon stalls: tell the
    /// process guard the deadline of each renewal (and that there is none without a process).
    fn tell_guard(&self) {
        let Some(guard) = &self.settings.guard else {
            return;
        };
        if self.plan.app.on_store_loss.is_keep() {
            return;
        }
        let key = crate::process::guard::FenceKey::App(self.plan.id.clone());
        match self.stop_deadline() {
            Some(deadline) => guard.renewed(
                key,
                deadline.saturating_duration_since(Instant::now()),
                self.settings.grace,
            ),
            None => guard.clear(key),
        }
    }

    /// The hold could not be renewed in time (`on_store_loss: stop`): stop the process before
    /// another daemon may take the app over; it starts again here if the next renewal works.
    async fn fence(&mut self) {
        tracing::warn!(
            silent = %crate::fields::duration(self.renewed.elapsed()),
            "cannot renew the hold on the app in the store: stopping it before the hold \
             expires (on_store_loss: stop)"
        );
        self.push_line(
            "log",
            "WARNING store out of reach: stopped (on_store_loss: stop)",
        );
        self.terminate().await;
        self.tell_guard();
        self.restart_at = None;
        self.state = AppState::Stopped;
        self.fenced = true;
        self.report().await;
    }

    /// Write the status (renewing the hold); false if another daemon holds the app. A write
    /// the store does not answer in time (before a `stop` app's deadline, else within half
    /// the hold) leaves the hold as it was: kept, not renewed.
    async fn report(&mut self) -> bool {
        let now = Utc::now();
        let began = Instant::now();
        let status = AppStatus {
            id: self.plan.id.clone(),
            owner: self.settings.owner.clone(),
            host: self.settings.host.clone(),
            owner_pid: self.settings.owner_pid,
            state: self.state,
            hash: self.plan.hash.clone(),
            pid: self.running.as_ref().map(|r| r.child.pid()),
            started: self.running.as_ref().map(|r| r.started),
            restarts: self.restarts,
            health: self.health.clone(),
            healthy: self.healthy,
            checked: self.checked,
            heartbeat: now,
            token: self.token,
        };
        let bound = match self.stop_deadline() {
            Some(deadline) => deadline.saturating_duration_since(began),
            None => self.settings.stale_after / 2,
        }
        .max(Duration::from_millis(100));
        self.hold = match tokio::time::timeout(bound, self.store.renew_app(&status)).await {
            Ok(Ok(true)) => {
                self.renewed = began;
                self.tell_guard();
                Hold::Held
            }
            Ok(Ok(false)) => Hold::Lost,
            Ok(Err(error)) => {
                // The store is away: keep the hold as it is, try again at the next tick.
                tracing::debug!("cannot record the app's status: {error}");
                Hold::Unknown
            }
            Err(_) => {
                tracing::debug!("recording the app's status took too long");
                Hold::Unknown
            }
        };
        self.hold != Hold::Lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_interval_under_the_minimum_is_raised_to_it() {
        assert_eq!(steady_interval(Duration::ZERO), Duration::from_millis(100));
        assert_eq!(
            steady_interval(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }
}
