//! Log records (tracing) to stderr and stdout at the levels `logging.stderr` and
//! `logging.stdout` of local.yaml, with every URL password shown as `***`, and — for the
//! long-running verbs — into the store at `logging.mongodb` ([`store`]).
//!
//! [`init`] installs the subscriber once per process; later calls do nothing. The records of
//! the file watcher's crate (`notify`, its internal bookkeeping) show only at DEBUG. Each record is
//! formatted in full and redacted before it is written, so no layer can leak a credential.

pub mod store;

use std::io::Write;
use std::sync::OnceLock;

use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{Level, Logging};
use crate::redact::redact;

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Install logging per `logging` (stderr, stdout and store levels; `None` = off); records
/// reach the store only after [`store::ship_to_store`]. Idempotent.
pub fn init(logging: &Logging) {
    INSTALLED.get_or_init(|| {
        let filter = |level: Option<Level>| {
            let level = match level {
                Some(level) => LevelFilter::from_level(level.to_tracing()),
                None => LevelFilter::OFF,
            };
            // The file watcher's own bookkeeping (notify logs a deleted folder's watch it
            // drops twice as a warning): shown only when a destination logs DEBUG.
            let notify = if level >= LevelFilter::DEBUG {
                level
            } else {
                LevelFilter::OFF
            };
            Targets::new()
                .with_default(level)
                .with_target("notify", notify)
        };
        let stderr = tracing_subscriber::fmt::layer()
            .with_writer(Redacting(std::io::stderr))
            .with_ansi(false)
            .with_target(false)
            .with_filter(filter(logging.stderr));
        let stdout = tracing_subscriber::fmt::layer()
            .with_writer(Redacting(std::io::stdout))
            .with_ansi(false)
            .with_target(false)
            .with_filter(filter(logging.stdout));
        let to_store = store::StoreLayer.with_filter(filter(logging.mongodb));
        let _ = tracing_subscriber::registry()
            .with(stderr)
            .with(stdout)
            .with(to_store)
            .try_init();
    });
}

/// A writer factory whose writers redact what they are given.
struct Redacting<F>(F);

impl<'a, F, W> MakeWriter<'a> for Redacting<F>
where
    F: Fn() -> W + 'static,
    W: Write,
{
    type Writer = RedactingWriter<W>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            inner: (self.0)(),
            buffer: Vec::new(),
        }
    }
}

/// Collects one formatted record and writes it redacted when dropped (tracing-subscriber
/// makes one writer per record).
pub struct RedactingWriter<W: Write> {
    inner: W,
    buffer: Vec<u8>,
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let text = redact(&String::from_utf8_lossy(&self.buffer));
        self.buffer.clear();
        self.inner.write_all(text.as_bytes())?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_written_redacted() {
        let mut out = Vec::new();
        {
            let mut writer = RedactingWriter {
                inner: &mut out,
                buffer: Vec::new(),
            };
            write!(writer, "connecting to mongodb://core:").unwrap();
            writeln!(writer, "654321@localhost:27017").unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "connecting to mongodb://core:***@localhost:27017\n"
        );
    }
}
