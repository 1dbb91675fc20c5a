//! `GET /api/v1/events`: one Server-Sent Events stream of everything the dashboard shows,
//! built from the store — so it shows what every host does, not only this daemon.
//!
//! While any stream is open, one poller per daemon reads the store every [`POLL`] (or, when
//! a round takes longer than that, waits as long as the round took): the
//! active runs (pending, running, failed, deferred: at most [`WATCHED`] of each) and the newest
//! [`WATCHED`], and the status (`GET status`: counts, members, apps, schedules with their
//! fires, manifest problems, switches) after a run changed and at least every
//! [`STATUS_EVERY`]. What differs from its previous read becomes an event:
//!
//! - `run`: a run (the shape of `GET runs`'s items) that is new or whose state, progress,
//!   message or heartbeat changed; a stream sees only the runs of projects its token sees;
//! - `status`: the whole `GET status` document — for a token limited to projects `null`
//!   instead, which says "read `GET status` again" (its view is its own);
//! - `resync`: `{}`, when the stream fell behind or asked to resume from an event this
//!   daemon no longer keeps (or never sent): the client reads everything again instead of
//!   living with a silent gap.
//!
//! A new stream answers once the poller has made its first read (see [`PRIME_WITHIN`]), so
//! a client that opens it and then reads the lists misses no change between the two.
//!
//! Every event has an id, `EPOCH-SEQ` (the epoch is this daemon's, random at start). The last
//! [`KEPT`] events are kept, so a client that reconnects with `Last-Event-ID` (as
//! `EventSource` does by itself) gets what it missed. A token holds at most
//! [`MAX_STREAMS_PER_TOKEN`] streams at once (a 429 beyond); a comment every 15 s keeps
//! proxies from closing an idle stream. With no stream open, nothing is read.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;

use super::auth::Caller;
use super::error::ErrorBody;
use super::{Api, ApiError};
use crate::access::{Holder, Role};
use crate::queue::run::RunRecord;
use crate::queue::state::RunState;
use crate::store::{RunFilter, Store, StoreResult};

/// How often the poller reads the store's runs.
pub const POLL: Duration = Duration::from_millis(250);

/// The status is read at least this often (and after every change of a run).
pub const STATUS_EVERY: Duration = Duration::from_secs(1);

/// How many runs of each watched kind a poll reads.
pub const WATCHED: usize = 200;

/// How many events are kept for clients that resume.
pub const KEPT: usize = 2048;

/// How long a new stream waits for the poller's first read before it answers: a stream
/// answers only once every change from then on becomes an event, so a client that reads
/// the lists after it opened misses nothing. A store that does not answer by then gets the
/// stream opened anyway, its first event a `resync` sent after that first read.
pub const PRIME_WITHIN: Duration = Duration::from_secs(5);

/// The most streams one token may hold open.
pub const MAX_STREAMS_PER_TOKEN: usize = 16;

/// Events a stream may fall behind by before it is told to resync.
const BEHIND: usize = 512;

/// One event as the poller made it.
#[derive(Debug, Clone)]
pub struct Change {
    pub seq: u64,
    pub kind: ChangeKind,
    /// The project it is about (`None`: none in particular).
    pub project: Option<String>,
    /// Its data, JSON.
    pub data: Arc<str>,
}

/// What a [`Change`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Run,
    Status,
}

impl ChangeKind {
    fn name(self) -> &'static str {
        match self {
            ChangeKind::Run => "run",
            ChangeKind::Status => "status",
        }
    }
}

/// The events this daemon serves: the kept ones, the live channel, the streams open per
/// token, and whether the poller runs.
pub struct Hub {
    epoch: String,
    kept: Mutex<Kept>,
    live: broadcast::Sender<Change>,
    streams: Mutex<HashMap<String, usize>>,
    polling: AtomicBool,
    /// True once the running poller has made its first read: from then on every change
    /// becomes an event (false while none runs, or before its first read).
    primed: tokio::sync::watch::Sender<bool>,
    /// True once the daemon stops serving: every stream ends.
    closing: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Kept {
    changes: VecDeque<Change>,
    /// The seq of the last change made.
    last: u64,
    /// The seq before the first change of the current poller's run: what a client saw
    /// before it may have missed changes no poller watched.
    since: u64,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        let epoch = crate::access::new_secret()
            .map(|s| s[crate::access::PREFIX.len()..crate::access::PREFIX.len() + 8].to_string())
            .unwrap_or_else(|_| format!("{:08x}", std::process::id()));
        let (live, _) = broadcast::channel(BEHIND);
        Arc::new(Hub {
            epoch,
            kept: Mutex::new(Kept::default()),
            live,
            streams: Mutex::new(HashMap::new()),
            polling: AtomicBool::new(false),
            primed: tokio::sync::watch::Sender::new(false),
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    /// End every stream (the daemon stops serving; a graceful shutdown waits for them).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Record and send a change.
    fn publish(&self, kind: ChangeKind, project: Option<String>, data: String) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.last += 1;
        let change = Change {
            seq: kept.last,
            kind,
            project,
            data: data.into(),
        };
        if kept.changes.len() == KEPT {
            kept.changes.pop_front();
        }
        kept.changes.push_back(change.clone());
        // Sent while the lock is held, so a subscriber's replay and its live events meet
        // without a gap or a repeat.
        let _ = self.live.send(change);
    }

    /// Subscribe from `last_seen` (the seq of a `Last-Event-ID` of this epoch): the kept
    /// changes after it (`None`: resync, they are not all kept), and the live ones.
    fn subscribe(
        &self,
        last_seen: Option<u64>,
    ) -> (Option<Vec<Change>>, broadcast::Receiver<Change>) {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let receiver = self.live.subscribe();
        let replay = match last_seen {
            None => Some(Vec::new()),
            Some(seen) => replay_after(&kept, seen),
        };
        (replay, receiver)
    }
}

/// The kept changes after `seen`, or `None` when some of them are not kept (pure).
fn replay_after(kept: &Kept, seen: u64) -> Option<Vec<Change>> {
    if seen > kept.last || seen <= kept.since {
        return None;
    }
    let first = kept.changes.front().map_or(kept.last + 1, |c| c.seq);
    if seen + 1 < first {
        return None;
    }
    Some(
        kept.changes
            .iter()
            .filter(|c| c.seq > seen)
            .cloned()
            .collect(),
    )
}

/// The seq of a `Last-Event-ID` header if this daemon's epoch made it (pure); `Err` for an id
/// that is not ours (another daemon's, an earlier run's, nonsense).
fn last_seen(headers: &HeaderMap, epoch: &str) -> Result<Option<u64>, ()> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ())?;
    let (of, seq) = text.split_once('-').ok_or(())?;
    if of != epoch {
        return Err(());
    }
    seq.parse().map(Some).map_err(|_| ())
}

/// A stream's hold on one of its token's places; given back when the stream ends.
struct Place {
    hub: Arc<Hub>,
    token: String,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut streams = self.hub.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = streams.get_mut(&self.token) {
            *open -= 1;
            if *open == 0 {
                streams.remove(&self.token);
            }
        }
    }
}

#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    params(("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses(
        (status = 200, description = "Server-Sent Events: `run` (a run), `status` (`GET status`, or `null`: read it again), `resync` (read everything again)", body = String, content_type = "text/event-stream"),
        (status = 429, description = "The token holds 16 streams already", body = ErrorBody),
    ),
)]
pub async fn events(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let hub = Arc::clone(&api.hub);
    let place = {
        let mut streams = hub.streams.lock().unwrap_or_else(|e| e.into_inner());
        let open = streams.entry(caller.0.name.clone()).or_default();
        if *open >= MAX_STREAMS_PER_TOKEN {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("a token holds at most {MAX_STREAMS_PER_TOKEN} event streams at once"),
            ));
        }
        *open += 1;
        Place {
            hub: Arc::clone(&hub),
            token: caller.0.name.clone(),
        }
    };
    start_polling(&api);
    let (replay, receiver) = match last_seen(&headers, &hub.epoch) {
        Ok(seen) => hub.subscribe(seen),
        Err(()) => (None, hub.live.subscribe()),
    };
    let mut primed = hub.primed.subscribe();
    let in_time = tokio::time::timeout(PRIME_WITHIN, primed.wait_for(|primed| *primed))
        .await
        .is_ok_and(|waited| waited.is_ok());
    // Too late: what the kept changes say may have a gap before the first read.
    let replay = replay.filter(|_| in_time);
    let sees_all = caller.0.role == Role::Admin || caller.0.projects.is_empty();
    let closing = hub.closing.subscribe();
    if *closing.borrow() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is stopping",
        ));
    }
    let stream = Stream {
        closing,
        primed,
        place,
        caller,
        sees_all,
        pending: match replay {
            Some(changes) => changes.into_iter().map(Item::Change).collect(),
            None => VecDeque::from([Item::Resync]),
        },
        receiver,
    };
    let events = futures_util::stream::unfold(stream, |mut stream| async move {
        let event = stream.next().await?;
        Some((Ok::<_, Infallible>(event), stream))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

enum Item {
    Change(Change),
    Resync,
}

/// One client's stream.
struct Stream {
    closing: tokio::sync::watch::Receiver<bool>,
    primed: tokio::sync::watch::Receiver<bool>,
    place: Place,
    caller: Caller,
    sees_all: bool,
    pending: VecDeque<Item>,
    receiver: broadcast::Receiver<Change>,
}

impl Stream {
    /// The next event for this client; `None` when the daemon stops serving.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            let item = match self.pending.pop_front() {
                Some(item) => item,
                None => tokio::select! {
                    received = self.receiver.recv() => match received {
                        Ok(change) => Item::Change(change),
                        Err(broadcast::error::RecvError::Lagged(_)) => Item::Resync,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = self.closing.wait_for(|closing| *closing) => return None,
                },
            };
            match item {
                Item::Resync => {
                    // Read everything again only once what changes after it becomes events.
                    tokio::select! {
                        waited = self.primed.wait_for(|primed| *primed) => waited.ok()?,
                        _ = self.closing.wait_for(|closing| *closing) => return None,
                    };
                    let last = self.place.hub.kept.lock().map_or(0, |k| k.last);
                    return Some(
                        SseEvent::default()
                            .event("resync")
                            .id(format!("{}-{last}", self.place.hub.epoch))
                            .data("{}"),
                    );
                }
                Item::Change(change) => {
                    if let Some(event) = self.shown(&change) {
                        return Some(event);
                    }
                }
            }
        }
    }

    /// `change` as this client sees it, if it sees it.
    fn shown(&self, change: &Change) -> Option<SseEvent> {
        let holder: Holder<'_> = self.caller.0.holder();
        if let Some(project) = &change.project
            && !holder.sees(project)
        {
            return None;
        }
        let data: &str = match change.kind {
            ChangeKind::Status if !self.sees_all => "null",
            _ => &change.data,
        };
        Some(
            SseEvent::default()
                .event(change.kind.name())
                .id(format!("{}-{}", self.place.hub.epoch, change.seq))
                .data(data),
        )
    }
}

/// How long the poller waits after a round that took `round` (pure): [`POLL`], or as long
/// as the round took if that is longer — a slow store is read at most half of the time,
/// never round after round.
fn pause_after(round: Duration) -> Duration {
    round.max(POLL)
}

/// Start the poller unless it runs.
fn start_polling(api: &Api) {
    if api.hub.polling.swap(true, Ordering::SeqCst) {
        return;
    }
    {
        // Set before any stream subscribes to this poller's run.
        let mut kept = api.hub.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.since = kept.last;
        api.hub.primed.send_replace(false);
    }
    let hub = Arc::clone(&api.hub);
    let store = Arc::clone(&api.store);
    let home = api.home.clone();
    tokio::spawn(async move {
        let mut poller = Poller::default();
        loop {
            let started = Instant::now();
            if let Err(error) = poller.poll(store.as_ref(), home.as_deref(), &hub).await {
                tracing::debug!("api: events: reading the store: {error}");
            }
            if poller.primed && !*hub.primed.borrow() {
                hub.primed.send_replace(true);
            }
            tokio::time::sleep(pause_after(started.elapsed())).await;
            if hub.live.receiver_count() == 0 {
                hub.polling.store(false, Ordering::SeqCst);
                // A stream that subscribed between the count and the flag restarts it.
                if hub.live.receiver_count() == 0 || hub.polling.swap(true, Ordering::SeqCst) {
                    return;
                }
            }
        }
    });
}

/// What the poller saw at its previous read.
#[derive(Default)]
struct Poller {
    /// Each watched run's JSON, by id.
    runs: HashMap<String, String>,
    status: Option<String>,
    status_read: Option<Instant>,
    /// The first read only learns what is there.
    primed: bool,
}

/// The runs the poller watches, as one round reads them: the newest [`WATCHED`], and the
/// [`WATCHED`] newest running, pending, failed and deferred (a run may come twice).
pub async fn watched_runs(store: &dyn Store) -> StoreResult<Vec<RunRecord>> {
    let mut runs = store
        .list_runs(&RunFilter {
            limit: Some(WATCHED),
            ..RunFilter::default()
        })
        .await?;
    for state in [
        RunState::Running,
        RunState::Pending,
        RunState::Failed,
        RunState::Deferred,
    ] {
        runs.extend(
            store
                .list_runs(&RunFilter {
                    state: Some(state),
                    limit: Some(WATCHED),
                    ..RunFilter::default()
                })
                .await?,
        );
    }
    Ok(runs)
}

impl Poller {
    async fn poll(
        &mut self,
        store: &dyn Store,
        home: Option<&std::path::Path>,
        hub: &Hub,
    ) -> StoreResult<()> {
        let mut seen = HashMap::new();
        let runs = watched_runs(store).await?;
        let mut changed = false;
        for run in runs {
            if seen.contains_key(&run.id) {
                continue;
            }
            let Ok(json) = serde_json::to_string(&run) else {
                continue;
            };
            if self.runs.get(&run.id) != Some(&json) {
                changed = true;
                if self.primed {
                    hub.publish(ChangeKind::Run, Some(run.project.clone()), json.clone());
                }
            }
            seen.insert(run.id, json);
        }
        // A run that left the watched ones (finished long ago, pruned) is simply forgotten.
        self.runs = seen;
        let due = self
            .status_read
            .is_none_or(|at| at.elapsed() >= STATUS_EVERY);
        if changed || due {
            self.status_read = Some(Instant::now());
            let status = crate::views::status::status(store, home).await?;
            if let Ok(json) = serde_json::to_string(&status)
                && self.status.as_ref() != Some(&json)
            {
                if self.primed {
                    hub.publish(ChangeKind::Status, None, json.clone());
                }
                self.status = Some(json);
            }
        }
        self.primed = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_round_is_followed_by_as_long_a_pause() {
        assert_eq!(pause_after(Duration::from_millis(5)), POLL);
        assert_eq!(pause_after(POLL), POLL);
        let slow = Duration::from_millis(2600);
        assert_eq!(pause_after(slow), slow);
    }

    fn kept(seqs: std::ops::RangeInclusive<u64>, since: u64) -> Kept {
        Kept {
            changes: seqs
                .clone()
                .map(|seq| Change {
                    seq,
                    kind: ChangeKind::Run,
                    project: None,
                    data: "{}".into(),
                })
                .collect(),
            last: *seqs.end(),
            since,
        }
    }

    #[test]
    fn a_resume_replays_what_was_missed_or_asks_for_a_resync() {
        let kept = kept(5..=9, 0);
        let seqs =
            |seen| replay_after(&kept, seen).map(|c| c.iter().map(|c| c.seq).collect::<Vec<_>>());
        assert_eq!(seqs(7), Some(vec![8, 9]));
        assert_eq!(seqs(9), Some(vec![]));
        assert_eq!(
            seqs(4),
            Some(vec![5, 6, 7, 8, 9]),
            "the first missed is kept"
        );
        assert_eq!(seqs(3), None, "seq 4 is no longer kept");
        assert_eq!(seqs(10), None, "never sent");
        let restarted = Kept { since: 8, ..kept };
        assert_eq!(
            replay_after(&restarted, 8).map(|c| c.len()),
            None,
            "nobody watched"
        );
        assert_eq!(replay_after(&restarted, 9).map(|c| c.len()), Some(0));
    }

    #[test]
    fn only_this_daemons_ids_resume() {
        let mut headers = HeaderMap::new();
        assert_eq!(last_seen(&headers, "ab12cd34"), Ok(None));
        headers.insert("last-event-id", "ab12cd34-17".parse().unwrap());
        assert_eq!(last_seen(&headers, "ab12cd34"), Ok(Some(17)));
        assert_eq!(last_seen(&headers, "ffffffff"), Err(()));
        headers.insert("last-event-id", "nonsense".parse().unwrap());
        assert_eq!(last_seen(&headers, "ab12cd34"), Err(()));
    }
}
