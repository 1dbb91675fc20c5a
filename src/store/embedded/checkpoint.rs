//! The WAL copied into the database file beside a busy worker, not in its way.
//!
//! SQLite checkpoints a WAL file that has grown to
//! [`WAL_CHECKPOINT_PAGES`](super::WAL_CHECKPOINT_PAGES) pages in the
//! connection that committed last: the worker's, on its path from one run to the next. That
//! checkpoint copies every page written since the last one and `fsync`s both files while the
//! connection, and so every slot of the worker, waits: about 27 ms every ~900 runs on the
//! benchmark host, 5 % of the slots' time (docs/benchmarks.md). A [`Checkpointer`] runs
//! `PRAGMA wal_checkpoint(PASSIVE)` on a thread and a connection of its own after every
//! [`CHECKPOINT_EVERY`] hot calls: a passive checkpoint never blocks a writer, so the worker
//! goes on meanwhile, and the checkpoint its own connection still makes at the threshold
//! (the one that lets the WAL start over from its beginning) finds nearly everything copied.
//!
//! Theory of operation: [`Checkpointer::note_hot_call`] counts; every [`CHECKPOINT_EVERY`]th
//! call wakes the thread (started then, so a process that never makes hot calls never has
//! one) through a channel of one slot (a wake-up while a checkpoint runs is kept, more are
//! dropped). The thread ends when the store's last handle is dropped (the channel closes). A
//! checkpoint that fails is logged at debug level and tried again at the next wake-up: the
//! connection's own checkpoint still bounds the WAL.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OpenFlags};

/// Hot calls between two checkpoints (a busy worker makes ~2 per run and writes ~10 pages
/// per run: about 1,300 pages each).
pub(super) const CHECKPOINT_EVERY: u64 = 256;

/// The background checkpoints of one store file.
#[derive(Debug)]
pub(super) struct Checkpointer {
    path: PathBuf,
    hot_calls: AtomicU64,
    /// The thread's wake-up, once it is started.
    wake: Mutex<Option<SyncSender<()>>>,
    /// Checkpoints done (for tests and the curious).
    done: Arc<AtomicU64>,
}

impl Checkpointer {
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            hot_calls: AtomicU64::new(0),
            wake: Mutex::new(None),
            done: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Count a hot call; every [`CHECKPOINT_EVERY`]th wakes the checkpoint thread.
    pub(super) fn note_hot_call(&self) {
        let calls = self.hot_calls.fetch_add(1, Ordering::Relaxed) + 1;
        if !calls.is_multiple_of(CHECKPOINT_EVERY) {
            return;
        }
        let mut wake = self.wake.lock().unwrap_or_else(PoisonError::into_inner);
        if wake.is_none() {
            let (sender, receiver) = sync_channel(1);
            let (path, done) = (self.path.clone(), Arc::clone(&self.done));
            let started = std::thread::Builder::new()
                .name("coco-checkpoint".into())
                .spawn(move || checkpoint_on_wake(&path, &receiver, &done));
            match started {
                Ok(_) => *wake = Some(sender),
                Err(error) => {
                    tracing::debug!(store = %self.path.display(), "no checkpoint thread: {error}");
                    return;
                }
            }
        }
        if let Some(sender) = wake.as_ref()
            && let Err(TrySendError::Disconnected(())) = sender.try_send(())
        {
            // The thread ended (its connection could not be opened): the connection's own
            // checkpoints go on as before.
            *wake = None;
        }
    }

    /// How many background checkpoints have been done.
    pub(super) fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

/// The thread: a passive checkpoint of `path` per wake-up, until the channel closes.
fn checkpoint_on_wake(path: &PathBuf, wake: &Receiver<()>, done: &AtomicU64) {
    let conn = match Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(conn) => conn,
        Err(error) => {
            tracing::debug!(store = %path.display(), "no checkpoint connection: {error}");
            return;
        }
    };
    while wake.recv().is_ok() {
        let checkpoint = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(0)
        });
        match checkpoint {
            Ok(_) => {
                done.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::debug!(store = %path.display(), "background checkpoint: {error}");
            }
        }
    }
}
