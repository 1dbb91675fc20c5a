//! Log records into the store's `log` collection (`logging.mongodb`), for `coco log`.
//!
//! [`StoreLayer`] is a tracing layer installed with the others by [`super::init`]; until a
//! long-running verb calls [`ship_to_store`] it drops what it sees. Once shipping, each
//! event at or above the level becomes a [`LogRecord`] — message, other fields as
//! `key=value`, and `project`, `job`, `run` and `app` from the event or its spans — and goes
//! through a bounded channel to a task that writes batches (at most [`BATCH`] records, at
//! most [`BATCH_DELAY`] after the first). While a batch waits, the task sleeps: records
//! queue in the channel without waking it, and the layer (a full batch) or [`flush`] pokes it
//! through a [`Notify`] to write early. Logging never waits for the store: when the channel
//! is full the record is dropped and counted, and the count is logged once there is room.
//! The shipper's own complaints use target [`SELF_TARGET`], which the layer skips, so a
//! failing store cannot feed its errors back into itself.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber, span};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::redact::redact;
use crate::store::Journal;
use crate::store::LogRecord;

/// At most this many records per write.
pub const BATCH: usize = 256;
/// A record waits at most this long for its batch to fill.
pub const BATCH_DELAY: Duration = Duration::from_millis(200);
/// Records waiting for the store beyond this are dropped (and counted).
const CAPACITY: usize = 10_000;
/// The target of the shipper's own events, which are never shipped.
pub const SELF_TARGET: &str = "coco::logging";

/// What the layer sends the shipper.
enum Message {
    Record(Box<LogRecord>),
    /// Write everything received so far, then answer.
    Flush(oneshot::Sender<()>),
}

/// Where records go once [`ship_to_store`] was called in this process.
struct Sink {
    sender: mpsc::Sender<Message>,
    /// Poked when the shipper should write before its batch is due (full, or a flush).
    urgent: Arc<Notify>,
    host: String,
    source: String,
}

static SINK: OnceLock<Sink> = OnceLock::new();
/// Record ids: ULIDs, increasing within a millisecond too, so one process's records keep
/// their order in `coco log`.
static IDS: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Start writing this process's records to `store`, as `source` (a daemon's or worker's
/// name) on `host`. Called once per process; later calls change nothing. Needs a tokio
/// runtime.
pub fn ship_to_store(store: Arc<dyn Journal>, source: &str, host: &str) {
    let (sender, receiver) = mpsc::channel(CAPACITY);
    let urgent = Arc::new(Notify::new());
    let sink = Sink {
        sender,
        urgent: Arc::clone(&urgent),
        host: host.to_owned(),
        source: source.to_owned(),
    };
    if SINK.set(sink).is_ok() {
        tokio::spawn(ship(store, receiver, urgent));
    }
}

/// Write what was logged so far (before a process exits). Returns at once when nothing is
/// shipped; waits at most two seconds.
pub async fn flush() {
    let Some(sink) = SINK.get() else { return };
    let (done, written) = oneshot::channel();
    if sink.sender.send(Message::Flush(done)).await.is_ok() {
        sink.urgent.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(2), written).await;
    }
}

/// The shipper task: batches records and appends them to the store. While a batch waits for
/// [`BATCH_DELAY`] it sleeps (records queue in `receiver` meanwhile, waking nobody) unless
/// `urgent` is poked: a full batch, or a flush.
async fn ship(store: Arc<dyn Journal>, mut receiver: mpsc::Receiver<Message>, urgent: Arc<Notify>) {
    let mut batch: Vec<LogRecord> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    // When the batch's first record has waited long enough.
    let mut due = tokio::time::Instant::now();
    let mut open = true;
    while open {
        if batch.is_empty() && waiting.is_empty() {
            match receiver.recv().await {
                Some(message) => take(message, &mut batch, &mut waiting),
                None => break,
            }
            due = tokio::time::Instant::now() + BATCH_DELAY;
        } else {
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = urgent.notified() => {}
            }
        }
        // Take what is already queued without waiting, then write if the batch is full, is
        // due, or someone waits for it.
        while batch.len() < BATCH {
            match receiver.try_recv() {
                Ok(message) => take(message, &mut batch, &mut waiting),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if batch.len() >= BATCH || !waiting.is_empty() || tokio::time::Instant::now() >= due {
            write(store.as_ref(), &mut batch).await;
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
        }
    }
    write(store.as_ref(), &mut batch).await;
}

/// Add a message to the batch, or a flush to those waiting for it.
fn take(message: Message, batch: &mut Vec<LogRecord>, waiting: &mut Vec<oneshot::Sender<()>>) {
    match message {
        Message::Record(record) => batch.push(*record),
        Message::Flush(done) => waiting.push(done),
    }
}

/// How long a batch is kept for a store that does not answer before it is given up.
const HOLD_FOR_OUTAGE: Duration = Duration::from_secs(300);

/// Append `batch`, then empty it. While the store does not answer (an outage) the batch is
/// kept and retried with capped, jittered back-off — new records wait in the bounded channel
/// meanwhile (beyond [`CAPACITY`] they are dropped and counted) — for at most
/// [`HOLD_FOR_OUTAGE`]; another failure is retried once. Memory stays bounded either way.
async fn write(store: &dyn Journal, batch: &mut Vec<LogRecord>) {
    if batch.is_empty() {
        return;
    }
    let dropped = DROPPED.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        tracing::warn!(target: SELF_TARGET, "{dropped} log records were dropped: the store could not keep up");
    }
    let began = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(250);
    let mut tried_again = false;
    loop {
        let error = match store.append_log(batch).await {
            Ok(()) => break,
            Err(error) => error,
        };
        let keep = if error.is_unreachable() {
            began.elapsed() < HOLD_FOR_OUTAGE
        } else {
            !std::mem::replace(&mut tried_again, true)
        };
        if !keep {
            tracing::warn!(
                target: SELF_TARGET,
                "{} log records not stored: {error}",
                batch.len()
            );
            break;
        }
        tokio::time::sleep(wait).await;
        wait = crate::store::outage::retry_after(wait, crate::store::outage::jitter());
    }
    batch.clear();
}

/// The tracing layer; add it with the level filter of `logging.mongodb`.
pub struct StoreLayer;

impl<S> Layer<S> for StoreLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut fields = ContextFields::default();
        attrs.record(&mut fields);
        if fields.is_empty() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(sink) = SINK.get() else { return };
        let metadata = event.metadata();
        if metadata.target() == SELF_TARGET {
            return;
        }
        let Some((level, levelno)) = level_name(*metadata.level()) else {
            return;
        };
        let mut visitor = EventFields::default();
        event.record(&mut visitor);
        let mut context = visitor.context;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(fields) = span.extensions().get::<ContextFields>() {
                    context.fill_from(fields);
                }
            }
        }
        context.derive_project();
        let record = LogRecord {
            id: next_id(),
            at: Utc::now(),
            level: level.into(),
            levelno,
            message: redact(&visitor.message),
            host: sink.host.clone(),
            source: sink.source.clone(),
            project: context.project,
            job: context.job,
            run: context.run,
            app: context.app,
        };
        if sink
            .sender
            .try_send(Message::Record(Box::new(record)))
            .is_err()
        {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        // A full batch is written at once, not when it is due.
        if sink.sender.max_capacity() - sink.sender.capacity() >= BATCH {
            sink.urgent.notify_one();
        }
    }
}

fn next_id() -> String {
    let mut ids = IDS.lock().unwrap_or_else(PoisonError::into_inner);
    // On overflow (2^80 ids in one millisecond) fall back to a fresh random one.
    ids.generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

/// core4's level name and Python's number for a tracing level; TRACE is not stored.
pub fn level_name(level: Level) -> Option<(&'static str, u8)> {
    match level {
        Level::ERROR => Some(("ERROR", 40)),
        Level::WARN => Some(("WARNING", 30)),
        Level::INFO => Some(("INFO", 20)),
        Level::DEBUG => Some(("DEBUG", 10)),
        _ => None,
    }
}

/// The fields that say what a record is about.
#[derive(Debug, Default, Clone, PartialEq)]
struct ContextFields {
    project: Option<String>,
    job: Option<String>,
    run: Option<String>,
    app: Option<String>,
}

impl ContextFields {
    fn is_empty(&self) -> bool {
        *self == ContextFields::default()
    }

    /// Take what the event did not say itself from an enclosing span.
    fn fill_from(&mut self, outer: &ContextFields) {
        for (mine, theirs) in [
            (&mut self.project, &outer.project),
            (&mut self.job, &outer.job),
            (&mut self.run, &outer.run),
            (&mut self.app, &outer.app),
        ] {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        }
    }

    /// `project.job` and `project.app` name their project.
    fn derive_project(&mut self) {
        if self.project.is_none() {
            self.project = [&self.job, &self.app]
                .into_iter()
                .flatten()
                .find_map(|id| id.split_once('.').map(|(project, _)| project.to_owned()));
        }
    }

    /// Keep `value` if `field` is one of the context fields; else hand it back.
    fn take(&mut self, field: &Field, value: String) -> Result<(), String> {
        let slot = match field.name() {
            "project" => &mut self.project,
            "job" => &mut self.job,
            "run" => &mut self.run,
            "app" => &mut self.app,
            _ => return Err(value),
        };
        *slot = Some(value);
        Ok(())
    }
}

impl Visit for ContextFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = self.take(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = self.take(field, format!("{value:?}"));
    }
}

/// An event's message, its other fields appended as `key=value`, and its context fields.
#[derive(Debug, Default)]
struct EventFields {
    message: String,
    extra: String,
    context: ContextFields,
}

impl EventFields {
    fn keep(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = if self.extra.is_empty() {
                value
            } else {
                format!("{value}{}", self.extra)
            };
            self.extra.clear();
            return;
        }
        if let Err(value) = self.context.take(field, value) {
            let target = if self.message.is_empty() {
                &mut self.extra
            } else {
                &mut self.message
            };
            let _ = write!(target, " {}={value}", field.name());
        }
    }
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.keep(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.keep(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_or_app_names_its_project() {
        let mut fields = ContextFields {
            job: Some("shop.export".into()),
            ..ContextFields::default()
        };
        fields.derive_project();
        assert_eq!(fields.project.as_deref(), Some("shop"));
        let mut fields = ContextFields {
            app: Some("shop.web".into()),
            project: Some("given".into()),
            ..ContextFields::default()
        };
        fields.derive_project();
        assert_eq!(fields.project.as_deref(), Some("given"));
    }

    #[test]
    fn an_event_says_what_it_knows_and_spans_add_the_rest() {
        let mut event = ContextFields {
            run: Some("r1".into()),
            ..ContextFields::default()
        };
        let span = ContextFields {
            run: Some("outer".into()),
            job: Some("p.j".into()),
            ..ContextFields::default()
        };
        event.fill_from(&span);
        assert_eq!(event.run.as_deref(), Some("r1"));
        assert_eq!(event.job.as_deref(), Some("p.j"));
    }

    /// A steady trickle of records is written every [`BATCH_DELAY`] or so, not held back
    /// until a batch is full; a flush writes the rest at once.
    #[tokio::test]
    async fn a_trickle_of_records_is_written_as_it_comes() {
        use crate::store::embedded::EmbeddedStore;
        use crate::store::{LogFilter, Store};
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("coco.db"))
            .await
            .unwrap();
        store.ensure_schema().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        let (sender, receiver) = mpsc::channel(CAPACITY);
        let urgent = Arc::new(Notify::new());
        let shipper = tokio::spawn(ship(store.clone(), receiver, Arc::clone(&urgent)));
        let record = |n: u32| LogRecord {
            id: next_id(),
            at: Utc::now(),
            level: "INFO".into(),
            levelno: 20,
            message: format!("record {n}"),
            host: "h".into(),
            source: "test".into(),
            project: None,
            job: None,
            run: None,
            app: None,
        };
        // 30 records over 1.5 s: far fewer than a batch.
        for n in 0..30 {
            sender
                .send(Message::Record(Box::new(record(n))))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stored = store.list_log(&LogFilter::default()).await.unwrap().len();
        assert!(stored >= 10, "only {stored} of 30 written while they came");
        let (done, written) = oneshot::channel();
        sender.send(Message::Flush(done)).await.unwrap();
        urgent.notify_one();
        written.await.unwrap();
        assert_eq!(
            store.list_log(&LogFilter::default()).await.unwrap().len(),
            30
        );
        drop(sender);
        shipper.await.unwrap();
    }

    #[test]
    fn levels_use_core4_names_and_python_numbers() {
        assert_eq!(level_name(Level::WARN), Some(("WARNING", 30)));
        assert_eq!(level_name(Level::ERROR), Some(("ERROR", 40)));
        assert_eq!(level_name(Level::TRACE), None);
    }
}
