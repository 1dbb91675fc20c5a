//! The subreaper: where cgroups cannot be used, each run (or app process) runs under a small
//! `coco __contain` process that holds its whole tree.
//!
//! How: [`serve`] makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`), so every
//! process its job starts stays its descendant however it detaches — a double fork hands the
//! orphan to the subreaper, not to init, and `setsid` or a cleared environment changes
//! nothing about parentage. It starts the job (same group, stdin null, the worker's pipes as
//! stdout and stderr) and then, in one `poll` loop woken by a self-pipe from its signal
//! handlers:
//!
//! - reaps every child (the job and adopted orphans); when the job ends and nothing of its
//!   tree is left, exits as the job did (its code, or killed by the same signal), else sends
//!   the job's end to the worker over its stdin, a UNIX socket, as one [`Report`] (5 bytes)
//!   and goes on holding the rest;
//! - forwards each signal it receives (SIGTERM, SIGINT, SIGHUP, …) to every descendant;
//! - on a byte from the worker, or end of file (the worker died, SIGKILL included), SIGKILLs
//!   every descendant, pass after pass until none is left;
//! - exits once the job has ended and no descendant is left.
//!
//! The worker side is [`Link`]: it never signals the subreaper's group itself (a SIGKILL to
//! the subreaper would hand the tree to init), it asks.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use super::Exit;

/// The hidden verb that runs [`serve`].
pub const VERB: &str = "__contain";

/// The byte that asks the subreaper to SIGKILL the tree.
const KILL: u8 = b'k';

/// Signals forwarded to the tree.
const FORWARDED: [i32; 7] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCONT,
];

/// While killing, how often the tree is swept again.
const KILL_PASS: Duration = Duration::from_millis(10);

/// The write end of the self-pipe the signal handlers wake the loop with.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// The job's end, as sent to the worker: a tag byte (`c` exit code, `s` signal) and an i32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report(pub Exit);

impl Report {
    pub const LEN: usize = 5;

    pub fn encode(self) -> [u8; Report::LEN] {
        let (tag, value) = match (self.0.code, self.0.signal) {
            (Some(code), _) => (b'c', code),
            (None, Some(signal)) => (b's', signal),
            (None, None) => (b'c', -1),
        };
        let mut bytes = [tag, 0, 0, 0, 0];
        bytes[1..].copy_from_slice(&value.to_le_bytes());
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Option<Report> {
        let value = i32::from_le_bytes(bytes.get(1..Report::LEN)?.try_into().ok()?);
        match bytes.first()? {
            b'c' => Some(Report(Exit {
                code: Some(value),
                signal: None,
            })),
            b's' => Some(Report(Exit {
                code: None,
                signal: Some(value),
            })),
            _ => None,
        }
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; the fd is our own non-blocking pipe.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Why the subreaper could not hold a job (its message goes to the job's stderr, so the
/// run's output says it; the worker is told exit code 127).
#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    #[error("coco __contain: cannot become a child subreaper: {0}")]
    Subreaper(io::Error),
    #[error("coco __contain: cannot make its signal pipe: {0}")]
    Pipe(io::Error),
    #[error("coco __contain: cannot start {program:?}: {source}")]
    Start {
        program: OsString,
        source: io::Error,
    },
}

/// The exit code reported for a job that could not be started.
const NOT_STARTED: i32 = 127;

/// The subreaper's body (blocking): `args` are the resolved program, its `argv[0]`, its
/// arguments; stdin is the socket to the worker. Returns the exit code for the subreaper.
pub fn serve(args: &[OsString]) -> Result<i32, ReaperError> {
    // SAFETY: fd 0 is the socket the worker gave as stdin; we own it from here on.
    let mut link = UnixStream::from(unsafe { OwnedFd::from_raw_fd(0) });
    let not_started = |link: &mut UnixStream| {
        let exit = Exit {
            code: Some(NOT_STARTED),
            signal: None,
        };
        let _ = link.write_all(&Report(exit).encode());
    };
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        not_started(&mut link);
        return Err(ReaperError::Subreaper(io::Error::last_os_error()));
    }
    let (wake_read, wake_write) = match pipe() {
        Ok(pair) => pair,
        Err(error) => {
            not_started(&mut link);
            return Err(ReaperError::Pipe(error));
        }
    };
    WAKE_FD.store(wake_write.as_raw_fd(), Ordering::Relaxed);
    for signal in FORWARDED.into_iter().chain([libc::SIGCHLD]) {
        // SAFETY: the handler only calls write(2) on a pipe; SA_RESTART is not set, so the
        // poll below wakes up either way.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_NOCLDSTOP;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }

    let leader = match start(args) {
        Ok(pid) => pid,
        Err(source) => {
            not_started(&mut link);
            return Err(ReaperError::Start {
                program: args.first().cloned().unwrap_or_default(),
                source,
            });
        }
    };
    let own = std::process::id();
    let mut leader_exit: Option<Exit> = None;
    let mut killing = false;
    let mut reported = false;
    let exit = loop {
        reap(leader, &mut leader_exit);
        let tree = descendants(own);
        if killing {
            for &pid in &tree {
                signal(pid, libc::SIGKILL);
            }
        }
        if let Some(exit) = leader_exit {
            if tree.is_empty() {
                break exit;
            }
            if !reported {
                // The worker may be gone: then nobody is waiting for this.
                let _ = link.write_all(&Report(exit).encode());
                reported = true;
            }
        }
        let timeout = if killing {
            KILL_PASS.as_millis() as i32
        } else {
            -1
        };
        // The wake pipe first: while killing, the link (hung up, perhaps) is not watched.
        let mut fds = [
            libc::pollfd {
                fd: wake_read.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: link.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let watched = if killing { 1 } else { 2 };
        // SAFETY: `watched` valid pollfd entries.
        unsafe { libc::poll(fds.as_mut_ptr(), watched, timeout) };
        if fds[0].revents & libc::POLLIN != 0 {
            let mut signals = [0u8; 64];
            // SAFETY: reading into a buffer of its length from our own pipe.
            let read =
                unsafe { libc::read(wake_read.as_raw_fd(), signals.as_mut_ptr().cast(), 64) };
            for &raw in &signals[..usize::try_from(read).unwrap_or(0)] {
                let raw = i32::from(raw);
                if raw != libc::SIGCHLD {
                    for &pid in &descendants(own) {
                        signal(pid, raw);
                    }
                }
            }
        }
        if !killing && fds[1].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            // A kill request ([`KILL`]) or the worker's end: either way, the tree goes.
            let mut byte = [0u8; 1];
            let _ = link.read(&mut byte);
            killing = true;
        }
    };
    match (reported, exit.signal) {
        // Nothing was left: end as the job ended, so the worker reads it from this exit.
        (false, Some(signal)) => Ok(die_by(signal)),
        _ => Ok(exit.code.unwrap_or(NOT_STARTED)),
    }
}

/// End this process by `signal` as the job was ended by it (default action restored); if
/// that signal does not end a process, the shell's `128 + signal`.
fn die_by(signal: i32) -> i32 {
    // SAFETY: restoring a default disposition and signalling ourselves.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
    128 + signal
}

/// Start the job: program, `argv[0]`, arguments; inherited cwd, environment and output.
#[allow(clippy::disallowed_methods)] // the subreaper is part of the process module
fn start(args: &[OsString]) -> io::Result<u32> {
    let [program, arg0, rest @ ..] = args else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "expected PROGRAM ARGV0 [ARG...]",
        ));
    };
    let child = std::process::Command::new(program)
        .arg0(arg0)
        .args(rest)
        .stdin(std::process::Stdio::null())
        .spawn()?;
    Ok(child.id())
}

/// Reap every child that has ended, noting the leader's end.
fn reap(leader: u32, leader_exit: &mut Option<Exit>) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        if pid as u32 == leader && leader_exit.is_none() {
            *leader_exit = Some(Exit::from(std::process::ExitStatus::from_raw(status)));
        }
    }
}

/// Every descendant of `root` (from `/proc`'s parent links).
pub fn descendants(root: u32) -> Vec<u32> {
    let Some(pids) = super::procfs::pids() else {
        return Vec::new();
    };
    let table: Vec<(u32, u32)> = pids
        .filter_map(|pid| Some((pid, super::procfs::Stat::read(pid)?.field(1)?)))
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &table {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

fn signal(pid: u32, signal: i32) {
    if let Ok(raw) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) on a descendant of this subreaper.
        unsafe { libc::kill(raw, signal) };
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The worker's end of a subreaper's socket.
#[derive(Debug)]
pub struct Link {
    stream: tokio::net::UnixStream,
    received: Vec<u8>,
    /// The subreaper closed its end without a report.
    closed: bool,
}

impl Link {
    /// A connected pair: the worker's [`Link`] and the subreaper's end (its stdin). Must be
    /// called inside a tokio runtime.
    pub fn pair() -> io::Result<(Link, OwnedFd)> {
        let (ours, theirs) = UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        let link = Link {
            stream: tokio::net::UnixStream::from_std(ours)?,
            received: Vec::with_capacity(Report::LEN),
            closed: false,
        };
        Ok((link, OwnedFd::from(theirs)))
    }

    /// Wait for the job's end (cancel-safe); `None`: the subreaper is gone without sending it.
    pub async fn report(&mut self) -> Option<Exit> {
        loop {
            if let Some(exit) = self.decoded() {
                return Some(exit);
            }
            if self.closed || self.stream.readable().await.is_err() {
                return None;
            }
            self.read_available();
        }
    }

    /// The job's end if it has been sent already.
    pub fn try_report(&mut self) -> Option<Exit> {
        self.read_available();
        self.decoded()
    }

    /// Ask the subreaper to SIGKILL the whole tree.
    pub fn kill(&self) {
        let _ = self.stream.try_write(&[KILL]);
    }

    fn decoded(&self) -> Option<Exit> {
        Report::decode(&self.received).map(|report| report.0)
    }

    fn read_available(&mut self) {
        let mut buf = [0u8; Report::LEN];
        while self.received.len() < Report::LEN && !self.closed {
            match self
                .stream
                .try_read(&mut buf[..Report::LEN - self.received.len()])
            {
                Ok(0) => self.closed = true,
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => self.closed = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        for exit in [
            Exit {
                code: Some(3),
                signal: None,
            },
            Exit {
                code: None,
                signal: Some(9),
            },
        ] {
            assert_eq!(Report::decode(&Report(exit).encode()), Some(Report(exit)));
        }
        assert_eq!(Report::decode(b"x\0\0\0\0"), None);
        assert_eq!(Report::decode(b"c\0"), None);
    }
}
