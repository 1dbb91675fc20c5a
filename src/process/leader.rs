//! What a [`super::Child`] holds of its leader process and of its output pipes, however it was
//! started: by std's `Command` (through tokio), or born by [`super::vfork`] (a pidfd to wait
//! on, raw pipes).

use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::process::ExitStatus;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::unix::pipe;
use tokio::process::{ChildStderr, ChildStdout};

use super::vfork::Born;

/// The leader process.
#[derive(Debug)]
pub enum Leader {
    Command(tokio::process::Child),
    Born(Born),
}

impl Leader {
    /// Wait for it to exit (cancel-safe).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        match self {
            Leader::Command(child) => child.wait().await,
            Leader::Born(born) => born.wait().await,
        }
    }

    /// Its exit status if it has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        match self {
            Leader::Command(child) => child.try_wait(),
            Leader::Born(born) => born.try_wait(),
        }
    }
}

/// The read end of a child's stdout or stderr.
#[derive(Debug)]
pub enum Pipe {
    Stdout(ChildStdout),
    Stderr(ChildStderr),
    Raw(pipe::Receiver),
}

impl Pipe {
    /// A pipe's read end (made non-blocking; needs a tokio runtime).
    pub fn from_fd(fd: OwnedFd) -> io::Result<Pipe> {
        pipe::Receiver::from_owned_fd(fd).map(Pipe::Raw)
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Pipe::Stdout(pipe) => Pin::new(pipe).poll_read(cx, buf),
            Pipe::Stderr(pipe) => Pin::new(pipe).poll_read(cx, buf),
            Pipe::Raw(pipe) => Pin::new(pipe).poll_read(cx, buf),
        }
    }
}
