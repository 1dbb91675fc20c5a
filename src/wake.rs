//! Same-host wake-up: an enqueue pokes the idle workers instead of waiting for their poll.
//!
//! Each worker binds a UNIX datagram socket `<state_dir>/wake/<name>-<pid>.sock`
//! ([`Listener`]); [`poke`] (called through [`crate::queue::wake`]) sends one byte to every
//! socket in that folder, without blocking, and removes sockets nobody listens on any more.
//! The byte says what changed ([`Poke`]): the queue (claim now), or the operator switches
//! (`kill`, `pause`, `halt`: read them and heartbeat now). A wake-up is only a hint: a lost
//! datagram costs at most one poll (or heartbeat) interval.
//!
//! It sits below both sides: `queue` pokes, `worker` listens, and neither imports the other.

use std::io;
use std::path::{Path, PathBuf};

use tokio::net::UnixDatagram;

/// The folder of wake-up sockets under a state folder.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("wake")
}

/// What a wake-up is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poke {
    /// Runs were enqueued: claim.
    Queue,
    /// A run was killed, or pauses or a halt changed: read the switches and heartbeat.
    Control,
}

impl Poke {
    fn byte(self) -> u8 {
        match self {
            Poke::Queue => 1,
            Poke::Control => 2,
        }
    }
}

/// What the datagrams drained by one [`Listener::recv`] asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Woken {
    pub queue: bool,
    pub control: bool,
}

/// A worker's wake-up socket; [`Listener::remove`] deletes it.
#[derive(Debug)]
pub struct Listener {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Listener {
    /// Bind a socket for `worker` in `dir` (created if needed). `None` (logged) when that is
    /// impossible: the worker then relies on polling alone.
    pub fn bind(dir: &Path, worker: &str) -> Option<Listener> {
        let safe: String = worker
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        let path = dir.join(format!("{safe}-{}.sock", std::process::id()));
        let bound = std::fs::create_dir_all(dir).and_then(|()| {
            let _ = std::fs::remove_file(&path);
            UnixDatagram::bind(&path)
        });
        match bound {
            Ok(socket) => Some(Listener { socket, path }),
            Err(error) => {
                tracing::warn!(path = %path.display(), "no wake-up socket, polling only: {error}");
                None
            }
        }
    }

    /// Wait for a wake-up, draining every datagram already queued.
    pub async fn recv(&self) -> Woken {
        let mut buf = [0u8; 16];
        let mut woken = Woken::default();
        let mut note = |bytes: &[u8]| {
            for &byte in bytes {
                if byte == Poke::Control.byte() {
                    woken.control = true;
                } else {
                    woken.queue = true;
                }
            }
        };
        match self.socket.recv(&mut buf).await {
            Ok(n) => note(&buf[..n]),
            // Never spin on a broken socket.
            Err(_) => std::future::pending::<()>().await,
        }
        while let Ok(n) = self.socket.try_recv(&mut buf) {
            note(&buf[..n]);
        }
        woken
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Delete the socket file.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Wait for a wake-up on `listener`, or forever without one.
pub async fn woken(listener: &mut Option<Listener>) -> Woken {
    match listener {
        Some(listener) => listener.recv().await,
        None => std::future::pending().await,
    }
}

/// Poke every worker listening under `state_dir` about `what`; returns how many were
/// reached.
pub fn poke(state_dir: &Path, what: Poke) -> usize {
    poke_dir(&dir(state_dir), what)
}

/// Poke every worker listening in the wake-up folder `wake_dir` (see [`dir`]).
pub fn poke_dir(wake_dir: &Path, what: Poke) -> usize {
    let Ok(entries) = std::fs::read_dir(wake_dir) else {
        return 0;
    };
    let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() else {
        return 0;
    };
    let _ = socket.set_nonblocking(true);
    let mut reached = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "sock") {
            continue;
        }
        match socket.send_to(&[what.byte()], &path) {
            Ok(_) => reached += 1,
            // A full queue means a wake-up is already pending.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => reached += 1,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                let _ = std::fs::remove_file(&path);
            }
            Err(_) => {}
        }
    }
    reached
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_poke_wakes_a_listener_and_stale_sockets_are_removed() {
        let state = tempfile::TempDir::new().unwrap();
        let listener = Listener::bind(&dir(state.path()), "w 1").unwrap();
        let stale = {
            let other = Listener::bind(&dir(state.path()), "gone").unwrap();
            let path = other.path().to_path_buf();
            drop(other);
            path
        };
        // "gone" has the same pid, so it has a different name only by its worker name.
        assert!(stale.exists());
        assert_eq!(poke(state.path(), Poke::Queue), 1);
        assert!(!stale.exists(), "nobody listens there any more");
        let second = std::time::Duration::from_secs(1);
        let woken = tokio::time::timeout(second, listener.recv()).await;
        assert_eq!(
            woken.expect("woken"),
            Woken {
                queue: true,
                control: false
            }
        );
        assert_eq!(poke(state.path(), Poke::Control), 1);
        assert_eq!(poke(state.path(), Poke::Queue), 1);
        let woken = tokio::time::timeout(second, listener.recv()).await;
        assert_eq!(
            woken.expect("woken"),
            Woken {
                queue: true,
                control: true
            },
            "drained together"
        );
        listener.remove();
        assert_eq!(poke(state.path(), Poke::Queue), 0);
        assert_eq!(poke(&state.path().join("missing"), Poke::Queue), 0);
    }
}
