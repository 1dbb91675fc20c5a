//! The cgroup path's spawn, without a fork of the worker (Linux).
//!
//! A run's child must be in its cgroup before it runs anything of its own ([`super::cgroup`]),
//! so something must run between its birth and its `exec`. std's `Command` runs such code only
//! after a full `fork`: the worker's page tables are copied and every page it then writes
//! faults (copy-on-write), with TLB shoot-downs on every thread of a multi-threaded worker — on
//! a 2-CPU host that cost more than the rest of a trivial run. [`spawn_in`] starts the child as
//! glibc's `posix_spawn` does instead: `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`. The child
//! borrows the worker's memory on a small stack of its own, the spawning thread is suspended
//! until the child has exec'd (or failed and exited), and nothing is copied.
//!
//! Theory of operation: everything the child needs (C strings, pointer arrays, file
//! descriptors) is prepared before the clone ([`Plan`]), every signal is blocked in the
//! spawning thread around it, and the child makes only async-signal-safe system calls on that
//! data: signal handlers back to the default (none may run on borrowed memory: `clone3`'s
//! `CLONE_CLEAR_SIGHAND` has the kernel do it at birth, the fallback resets them one by one;
//! `SIGPIPE` default as std gives its children, other ignored signals stay ignored), the
//! death signal if asked, its own process group,
//! `0` written to its cgroup's `cgroup.procs` (it is in the cgroup before it runs anything of
//! the job's), stdin/stdout/stderr, the working directory, an empty signal mask, `execve`. A
//! failing step writes its errno into the parent's memory and exits 127; the parent reaps that
//! child and returns the error, so a failed spawn leaves nothing behind. The pidfd, taken at
//! birth, is what the worker waits on ([`Born`]): readable once the child has exited.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString, c_char, c_int, c_void};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use tokio::io::unix::AsyncFd;

/// The child's stack: it only makes system calls before `execve`.
const STACK_BYTES: usize = 32 * 1024;

/// One past the highest signal number (Linux).
const SIGNALS_END: c_int = 65;

/// What the child is to become, prepared before the clone (no allocation happens after it).
#[derive(Debug)]
pub struct Plan {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    /// The cgroup's folder (`CLONE_INTO_CGROUP`) and its `cgroup.procs` (where `clone3` is
    /// refused: the child writes `0` there).
    cgroup: CString,
    procs: CString,
    /// `Some(parent pid)`: set `PR_SET_PDEATHSIG = SIGKILL` and check the parent is still it.
    death_signal: Option<libc::pid_t>,
}

impl Plan {
    /// Exec `program` with `argv` (`argv[0]` included) and exactly `env`, in `cwd`, inside the
    /// cgroup (v2) folder `cgroup`; with the death signal if `death_signal`.
    pub fn new<'a>(
        program: &Path,
        argv: impl IntoIterator<Item = &'a OsStr>,
        env: &BTreeMap<OsString, OsString>,
        cwd: &Path,
        cgroup: &Path,
        death_signal: bool,
    ) -> io::Result<Plan> {
        let c_string = |bytes: &[u8]| {
            CString::new(bytes)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in an argument"))
        };
        Ok(Plan {
            program: c_string(program.as_os_str().as_bytes())?,
            argv: argv
                .into_iter()
                .map(|arg| c_string(arg.as_bytes()))
                .collect::<io::Result<_>>()?,
            envp: env
                .iter()
                .map(|(key, value)| c_string(&[key.as_bytes(), b"=", value.as_bytes()].concat()))
                .collect::<io::Result<_>>()?,
            cwd: c_string(cwd.as_os_str().as_bytes())?,
            cgroup: c_string(cgroup.as_os_str().as_bytes())?,
            procs: c_string(cgroup.join("cgroup.procs").as_os_str().as_bytes())?,
            death_signal: death_signal.then(|| std::process::id() as libc::pid_t),
        })
    }
}

/// A child [`spawn_in`] started: its pid, its pidfd, the read ends of its stdout and stderr.
#[derive(Debug)]
pub struct Started {
    pub pid: u32,
    pub pidfd: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// What the child reads (raw pointers into a [`Plan`] and the parent's fds) and where it
/// reports a failed step.
struct ChildArgs {
    program: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    /// Null: the child was born in its cgroup (`CLONE_INTO_CGROUP`).
    procs: *const c_char,
    /// The kernel gave the child default handlers already (`CLONE_CLEAR_SIGHAND`, with
    /// `clone3`): only `SIGPIPE` is left to reset.
    handlers_cleared: bool,
    death_signal: Option<libc::pid_t>,
    stdio: [c_int; 3],
    /// The errno of the failed step (`-1`: none failed).
    failed: AtomicI32,
}

/// Start the child `plan` describes: stdin `/dev/null`, stdout and stderr pipes, a process
/// group of its own, inside its cgroup before `execve`; `folder`: the plan's cgroup folder if
/// it is open already (a reused one), else it is opened here.
pub fn spawn_in(plan: &Plan, folder: Option<BorrowedFd<'_>>) -> io::Result<Started> {
    spawn_with(plan, !NO_CLONE3.load(Ordering::Relaxed), folder)
}

/// [`spawn_in`], trying `clone3` first if `clone3`, else the fallback at once.
#[cfg(test)]
fn spawn_as(plan: &Plan, clone3: bool) -> io::Result<Started> {
    spawn_with(plan, clone3, None)
}

/// [`spawn_as`] with the cgroup's folder `folder` if it is open already.
fn spawn_with(plan: &Plan, clone3: bool, folder: Option<BorrowedFd<'_>>) -> io::Result<Started> {
    let stdin = dev_null()?;
    let (stdout, stdout_child) = pipe()?;
    let (stderr, stderr_child) = pipe()?;
    let opened;
    let cgroup = match folder {
        Some(fd) => fd.as_raw_fd(),
        None => {
            opened = open_folder(&plan.cgroup)?;
            opened.as_raw_fd()
        }
    };
    let argv = null_terminated(&plan.argv);
    let envp = null_terminated(&plan.envp);
    let mut args = ChildArgs {
        program: plan.program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: plan.cwd.as_ptr(),
        procs: ptr::null(),
        handlers_cleared: true,
        death_signal: plan.death_signal,
        stdio: [
            stdin.as_raw_fd(),
            stdout_child.as_raw_fd(),
            stderr_child.as_raw_fd(),
        ],
        failed: AtomicI32::new(-1),
    };
    // On the spawning thread's own stack (suspended while the child uses it): no allocation.
    let mut stack = [MaybeUninit::<u8>::uninit(); STACK_BYTES];
    let mut pidfd: c_int = -1;
    // SAFETY: the child runs `child_main` on its own stack with the parent's memory while the
    // parent thread is suspended (CLONE_VFORK), so `args`, `argv`, `envp` and `plan` stay
    // alive and unchanged; it makes only async-signal-safe system calls (see the module
    // documentation). Every signal is blocked meanwhile, so no handler runs in the child
    // before it has reset them all.
    let pid = unsafe {
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigfillset(all.as_mut_ptr());
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr());
        let mut pid = Err(io::Error::from_raw_os_error(libc::ENOSYS));
        if clone3 {
            pid = clone_into(&args, cgroup, &mut stack, &mut pidfd);
        }
        if let Err(error) = &pid {
            // No clone3 here (an old kernel, a seccomp filter): born outside its cgroup, the
            // child moves itself in before it runs anything (a slower step: see the docs).
            if error.raw_os_error() == Some(libc::ENOSYS) {
                NO_CLONE3.store(true, Ordering::Relaxed);
            }
            args.procs = plan.procs.as_ptr();
            args.handlers_cleared = false;
            pid = clone_then_enter(&args, &mut stack, &mut pidfd);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), ptr::null_mut());
        pid?
    };
    // SAFETY: CLONE_PIDFD stored a new pidfd, ours alone.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let failed = args.failed.load(Ordering::Acquire);
    if failed >= 0 {
        // The child has exited (127): reap it, so a failed spawn leaves no zombie.
        let mut status = 0;
        // SAFETY: waitpid on our own child, which has exited.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(match failed {
            0 => io::Error::other("the child could not be started"),
            errno => io::Error::from_raw_os_error(errno),
        });
    }
    Ok(Started {
        pid: pid as u32,
        pidfd,
        stdout,
        stderr,
    })
}

/// Set once `clone3` answered ENOSYS: every later spawn takes the fallback at once.
static NO_CLONE3: AtomicBool = AtomicBool::new(false);

/// `struct clone_args` of `clone3(2)` (up to `cgroup`, Linux 5.7).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The child's handled signals start at their default (ignored ones stay ignored), as the
/// loop of [`become_the_program`] would leave them, without its 64 `sigaction` calls while
/// the worker's thread waits (Linux 5.5; `CLONE_INTO_CGROUP` needs 5.7).
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// `clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_INTO_CGROUP | CLONE_CLEAR_SIGHAND)`:
/// the child is born in the cgroup of folder fd `cgroup` with default signal handlers, runs
/// [`child_main`] on `stack`; its pid, or the error.
///
/// # Safety
/// As [`spawn_in`] calls it: signals blocked, `args` and what it points to alive.
unsafe fn clone_into(
    args: &ChildArgs,
    cgroup: c_int,
    stack: &mut [MaybeUninit<u8>],
    pidfd: &mut c_int,
) -> io::Result<libc::pid_t> {
    let clone_args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64
            | CLONE_INTO_CGROUP
            | CLONE_CLEAR_SIGHAND,
        pidfd: ptr::from_mut(pidfd) as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.as_mut_ptr() as u64,
        stack_size: stack.len() as u64,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup as u64,
    };
    // SAFETY: as the caller promises.
    let pid = unsafe { clone3(&clone_args, ptr::from_ref(args).cast_mut().cast()) };
    if pid < 0 {
        return Err(io::Error::from_raw_os_error(-pid as i32));
    }
    Ok(pid as libc::pid_t)
}

/// The raw `clone3` system call; in the child (on the new stack), `child_main(arg)` and then
/// `exit` with what it returned: the child never returns into Rust code of the parent's stack.
///
/// # Safety
/// `args` must describe a fresh stack (CLONE_VM: the child shares the parent's memory).
#[cfg(target_arch = "x86_64")]
unsafe fn clone3(args: &CloneArgs, arg: *mut c_void) -> libc::c_long {
    let ret: libc::c_long;
    // SAFETY: the parent's path only makes the system call (rcx and r11 are clobbered, every
    // other register kept); the child's path runs on its own stack and ends in `exit`.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "and rsp, -16",
            "mov rdi, r8",
            "call r9",
            "mov edi, eax",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            "2:",
            exit = const libc::SYS_exit,
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") ptr::from_ref(args),
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r8") arg,
            in("r9") child_main as extern "C" fn(*mut c_void) -> c_int as usize,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Elsewhere, no `clone3` trampoline: [`spawn_in`] takes the fallback.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone3(_args: &CloneArgs, _arg: *mut c_void) -> libc::c_long {
    -(libc::ENOSYS as libc::c_long)
}

/// glibc's `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`; the child writes `0` to its
/// cgroup's `cgroup.procs` (`args.procs`) before it runs anything.
///
/// # Safety
/// As [`spawn_in`] calls it: signals blocked, `args` and what it points to alive.
unsafe fn clone_then_enter(
    args: &ChildArgs,
    stack: &mut [MaybeUninit<u8>],
    pidfd: &mut c_int,
) -> io::Result<libc::pid_t> {
    // The stack grows down from its end, aligned to 16 bytes.
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    // SAFETY: as the caller promises.
    let pid = unsafe {
        libc::clone(
            child_main,
            top as *mut c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
            ptr::from_ref(args).cast_mut().cast(),
            ptr::from_mut(pidfd),
        )
    };
    if pid == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

/// The child's body: returns (to `_exit`, glibc's `clone` calls it) only when a step failed.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` of `spawn`, alive while the parent is suspended.
    let args = unsafe { &*(arg as *const ChildArgs) };
    // SAFETY: see `become_the_program`.
    let errno = unsafe { become_the_program(args) };
    args.failed.store(errno, Ordering::Release);
    127
}

/// The steps between birth and `execve`; returns the errno of the step that failed.
///
/// # Safety
/// Only in the child of [`spawn_in`]: async-signal-safe calls on `args`' data, nothing else.
unsafe fn become_the_program(args: &ChildArgs) -> c_int {
    let errno = || unsafe { *libc::__errno_location() };
    unsafe {
        let mut default = MaybeUninit::<libc::sigaction>::zeroed();
        (*default.as_mut_ptr()).sa_sigaction = libc::SIG_DFL;
        if args.handlers_cleared {
            libc::sigaction(libc::SIGPIPE, default.as_ptr(), ptr::null_mut());
        } else {
            reset_handlers_one_by_one(default.as_ptr());
        }
        if let Some(parent) = args.death_signal {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == -1 {
                return errno();
            }
            // The worker died between the clone and prctl: the death signal will never come.
            if libc::getppid() != parent {
                return libc::ESRCH;
            }
        }
        if libc::setpgid(0, 0) != 0 {
            return errno();
        }
        if !args.procs.is_null() {
            let procs = libc::open(args.procs, libc::O_WRONLY | libc::O_CLOEXEC);
            if procs < 0 {
                return errno();
            }
            let written = libc::write(procs, b"0".as_ptr().cast(), 1);
            let write_errno = errno();
            libc::close(procs);
            if written != 1 {
                return write_errno;
            }
        }
        for (target, &fd) in args.stdio.iter().enumerate() {
            if libc::dup2(fd, target as c_int) < 0 {
                return errno();
            }
        }
        if libc::chdir(args.cwd) != 0 {
            return errno();
        }
        let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(empty.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, empty.as_ptr(), ptr::null_mut());
        libc::execve(args.program, args.argv, args.envp);
        errno()
    }
}

/// Every handled signal, and `SIGPIPE`, back to its default (what `CLONE_CLEAR_SIGHAND` does
/// at birth, plus `SIGPIPE`), for a child born without it.
///
/// # Safety
/// Only in the child of [`spawn_in`], `default` a `SIG_DFL` action.
unsafe fn reset_handlers_one_by_one(default: *const libc::sigaction) {
    for signal in 1..SIGNALS_END {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: sigaction(2) reading one disposition into `old`, then setting `default`.
        unsafe {
            if libc::sigaction(signal, ptr::null(), old.as_mut_ptr()) != 0 {
                continue;
            }
            let handler = old.assume_init().sa_sigaction;
            if signal == libc::SIGPIPE || (handler != libc::SIG_DFL && handler != libc::SIG_IGN) {
                libc::sigaction(signal, default, ptr::null_mut());
            }
        }
    }
}

/// Pointers to `strings` and a null at the end, as `execve` takes them.
fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|string| string.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

/// The cgroup's folder, for `CLONE_INTO_CGROUP`.
fn open_folder(path: &CString) -> io::Result<OwnedFd> {
    // SAFETY: open(2) of a C string; the fd is ours.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `/dev/null`, opened once per process and shared by every child's stdin (reading it
/// gives end of file whatever its offset).
fn dev_null() -> io::Result<BorrowedFd<'static>> {
    static DEV_NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = DEV_NULL.get() {
        return Ok(fd.as_fd());
    }
    // SAFETY: open(2) of a constant path; the fd is ours.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd, ours alone.
    let fd = above_stdio(unsafe { OwnedFd::from_raw_fd(fd) })?;
    Ok(DEV_NULL.get_or_init(|| fd).as_fd())
}

/// A pipe (close-on-exec both ends): (read end, write end), each above stdio's numbers.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2(2) with a valid array of two.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two new fds, ours alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(read)?, above_stdio(write)?))
}

/// `fd` moved above 2 if it is 0, 1 or 2 (coco started with a closed stdio), so the child's
/// `dup2` onto 0–2 never overwrites another of its fds.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: fcntl(2) duplicating an fd we own.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// A child [`spawn_in`] started, waited for through its pidfd (nothing else in coco reaps it).
#[derive(Debug)]
pub struct Born {
    pid: libc::pid_t,
    /// `None` once moved into the reaping task of a drop.
    pidfd: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
}

impl Born {
    /// Watch `pidfd` of child `pid` (needs a tokio runtime).
    pub fn new(pid: u32, pidfd: OwnedFd) -> io::Result<Born> {
        Ok(Born {
            pid: pid as libc::pid_t,
            // SAFETY: the pidfd is owned by the AsyncFd, closed only when it is dropped.
            pidfd: Some(unsafe {
                AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)?
            }),
            status: None,
        })
    }

    /// Its exit status if it has exited (reaps it).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = reap(self.pid, libc::WNOHANG)?;
        }
        Ok(self.status)
    }

    /// Wait for it to exit (cancel-safe).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            let Some(pidfd) = &self.pidfd else {
                return Err(io::Error::other("the child is being reaped elsewhere"));
            };
            let mut ready = pidfd.readable().await?;
            self.status = reap(self.pid, libc::WNOHANG)?;
            if self.status.is_none() {
                ready.clear_ready();
            }
        }
    }
}

impl Drop for Born {
    /// An unreaped child is reaped once it exits (by a task, or a thread outside a runtime),
    /// as tokio does for its own children: no zombie is left behind.
    fn drop(&mut self) {
        if matches!(self.try_wait(), Ok(Some(_)) | Err(_)) {
            return;
        }
        let (pid, pidfd) = (self.pid, self.pidfd.take());
        match (tokio::runtime::Handle::try_current(), pidfd) {
            (Ok(runtime), Some(pidfd)) => {
                runtime.spawn(async move {
                    while let Ok(mut ready) = pidfd.readable().await {
                        if !matches!(reap(pid, libc::WNOHANG), Ok(None)) {
                            break;
                        }
                        ready.clear_ready();
                    }
                });
            }
            _ => {
                std::thread::spawn(move || reap(pid, 0));
            }
        }
    }
}

/// `waitpid(pid, options)`: `Some(status)` once it has exited and is reaped.
fn reap(pid: libc::pid_t, options: c_int) -> io::Result<Option<ExitStatus>> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child with a valid status pointer.
        match unsafe { libc::waitpid(pid, &mut status, options) } {
            0 => return Ok(None),
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            -1 => return Err(io::Error::last_os_error()),
            _ => return Ok(Some(ExitStatus::from_raw(status))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::process::cgroup::WorkerGroup;

    /// A unit of a worker folder of this test's own, or `None` where this host makes no
    /// cgroup for coco (not root, no cgroup v2): then there is nothing to test.
    fn unit(name: &str) -> Option<(WorkerGroup, crate::process::cgroup::Unit)> {
        let group =
            WorkerGroup::create(&format!("vfork-test-{}-{name}", std::process::id())).ok()?;
        let unit = group.unit(name).ok()?;
        Some((group, unit))
    }

    fn read_all(fd: OwnedFd) -> String {
        let mut text = String::new();
        std::fs::File::from(fd).read_to_string(&mut text).unwrap();
        text
    }

    async fn born_in_its_cgroup(clone3: bool) {
        let Some((group, unit)) = unit(if clone3 { "clone3" } else { "fallback" }) else {
            return;
        };
        let env = BTreeMap::from([("X".into(), "a b".into())]);
        let argv = [
            "sh",
            "-c",
            "echo \"$X\" $0; cat /proc/self/cgroup; pwd; exit 3",
        ];
        let plan = Plan::new(
            Path::new("/bin/sh"),
            argv.iter().map(OsStr::new),
            &env,
            Path::new("/tmp"),
            unit.dir(),
            false,
        )
        .unwrap();
        let started = spawn_as(&plan, clone3).unwrap();
        let mut born = Born::new(started.pid, started.pidfd).unwrap();
        let out = read_all(started.stdout);
        let status = born.wait().await.unwrap();
        assert_eq!(status.code(), Some(3), "{out}");
        let unit_path = unit.dir().to_string_lossy().into_owned();
        let line = out.lines().find(|l| l.starts_with("0::")).unwrap();
        assert!(unit_path.ends_with(&line[3..]), "{line} not {unit_path}");
        assert_eq!(out.lines().next(), Some("a b sh"));
        assert_eq!(out.lines().last(), Some("/tmp"));
        assert!(born.try_wait().unwrap().is_some());
        unit.remove();
        let _ = std::fs::remove_dir(group.dir());
    }

    #[tokio::test]
    async fn a_child_is_born_in_its_cgroup_by_clone3() {
        born_in_its_cgroup(true).await;
    }

    #[tokio::test]
    async fn a_child_enters_its_cgroup_before_exec_without_clone3() {
        born_in_its_cgroup(false).await;
    }

    /// A bit of a `Sig…:` mask line of `/proc/<pid>/status` (hexadecimal, bit `n - 1` for
    /// signal `n`).
    fn has_signal(status: &str, line: &str, signal: c_int) -> bool {
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
            .unwrap();
        mask & (1 << (signal - 1)) != 0
    }

    #[tokio::test]
    async fn the_program_starts_with_no_signal_blocked_and_only_the_workers_ignored_ones_ignored() {
        let Some((group, unit)) = unit("signals") else {
            return;
        };
        // The worker ignores SIGPIPE (Rust does) and here SIGURG (ignored by default anyway),
        // and handles SIGUSR1.
        extern "C" fn on_usr1(_: c_int) {}
        // SAFETY: setting dispositions of signals nothing else in this test process uses.
        unsafe {
            libc::signal(libc::SIGURG, libc::SIG_IGN);
            libc::signal(libc::SIGUSR1, on_usr1 as *const () as libc::sighandler_t);
        }
        for clone3 in [true, false] {
            let plan = Plan::new(
                Path::new("/bin/cat"),
                ["cat", "/proc/self/status"].map(OsStr::new),
                &BTreeMap::new(),
                Path::new("/"),
                unit.dir(),
                false,
            )
            .unwrap();
            let started = spawn_as(&plan, clone3).unwrap();
            let mut born = Born::new(started.pid, started.pidfd).unwrap();
            let status = read_all(started.stdout);
            assert!(born.wait().await.unwrap().success(), "{status}");
            for signal in [libc::SIGPIPE, libc::SIGUSR1, libc::SIGTERM, libc::SIGURG] {
                assert!(!has_signal(&status, "SigBlk:", signal), "{status}");
                assert!(!has_signal(&status, "SigCgt:", signal), "{status}");
            }
            assert!(has_signal(&status, "SigIgn:", libc::SIGURG), "{status}");
            assert!(!has_signal(&status, "SigIgn:", libc::SIGPIPE), "{status}");
            assert!(!has_signal(&status, "SigIgn:", libc::SIGUSR1), "{status}");
        }
        unit.remove();
        let _ = std::fs::remove_dir(group.dir());
    }

    #[tokio::test]
    async fn a_failed_step_is_the_spawns_error() {
        let Some((group, unit)) = unit("fails") else {
            return;
        };
        for clone3 in [true, false] {
            let plan = Plan::new(
                Path::new("/bin/true"),
                [OsStr::new("true")],
                &BTreeMap::new(),
                Path::new("/nonexistent/folder"),
                unit.dir(),
                false,
            )
            .unwrap();
            let error = spawn_as(&plan, clone3).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
        }
        assert!(!unit.populated());
        unit.remove();
        let _ = std::fs::remove_dir(group.dir());
    }
}
