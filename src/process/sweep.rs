//! Orphans of a lost worker: processes of this host still carrying a run's `COCO_RUN_ID`, and
//! the run's cgroups ([`super::cgroup::kill_run_units`]: what cleared its environment too).
//!
//! `PR_SET_PDEATHSIG` kills a job's own process when its worker dies, but not what that
//! process started (`sh -c 'a; b'`): those live on in the job's process group with nobody to
//! end them. The worker that takes a zombie run back sweeps them before it claims anything: every
//! process whose environment holds exactly `COCO_RUN_ID=<id>` gets SIGKILL. A ULID never
//! repeats, so nothing else can match; on another host, nothing matches. Linux only (reads
//! `/proc`); elsewhere it finds nothing.

/// SIGKILL every process of this host (that we may signal) whose environment has
/// `COCO_RUN_ID=run_id`, and everything in the run's cgroups under coco's own cgroup (what a
/// lost worker's run left, however it detached: [`super::cgroup::kill_run_units`]); returns
/// how many were signalled (a cgroup counts once).
pub fn kill_run_orphans(run_id: &str) -> usize {
    super::cgroup::kill_run_units(run_id) + kill_carrying(&format!("COCO_RUN_ID={run_id}"))
}

/// SIGKILL every other process of this host (that we may signal) whose environment has the
/// entry `needle` (`KEY=value`), its descendants first (they may have cleared their
/// environment: a run's subreaper holds such ones); returns how many carriers were signalled.
/// A process that has exited but is not yet reaped has no environment left, so it is not
/// counted twice.
pub fn kill_carrying(needle: &str) -> usize {
    signal_carrying(&[needle], libc::SIGKILL)
}

/// Send `signal` to every other process of this host (that we may signal) whose environment
/// holds every one of `needles` — an entry `KEY=value`, or any value of `KEY=` when the
/// needle ends in `=` — and, with SIGKILL, to their descendants first; returns how many
/// carriers were signalled. The guard's fence (a worker that stopped renewing its runs).
pub fn signal_carrying(needles: &[&str], signal: i32) -> usize {
    let Some(pids) = super::procfs::pids() else {
        return 0;
    };
    let own = std::process::id();
    let mut signalled = 0;
    for pid in pids {
        let carries = pid != own
            && std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                needles
                    .iter()
                    .all(|needle| has_entry_like(&environ, needle))
            });
        if !carries {
            continue;
        }
        if signal == libc::SIGKILL {
            for descendant in super::reaper::descendants(pid) {
                send(descendant, libc::SIGKILL);
            }
        }
        if send(pid, signal) {
            signalled += 1;
        }
    }
    signalled
}

/// [`has_entry`], or with `needle` ending in `=`, an entry of that key with any value (pure).
pub fn has_entry_like(environ: &[u8], needle: &str) -> bool {
    if needle.ends_with('=') {
        environ
            .split(|&b| b == 0)
            .any(|entry| entry.starts_with(needle.as_bytes()))
    } else {
        has_entry(environ, needle)
    }
}

/// Send `signal` to `pid`: it carries a run id or a guard marker, or descends from one that
/// does, so it is ours to end; whether the signal was sent.
fn send(pid: u32, signal: i32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) only sends a signal, to a pid read from /proc just now.
    unsafe { libc::kill(raw, signal) == 0 }
}

/// Is `needle` one of the NUL-separated entries of `environ` (pure)?
pub fn has_entry(environ: &[u8], needle: &str) -> bool {
    environ
        .split(|&b| b == 0)
        .any(|entry| entry == needle.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::{has_entry, has_entry_like};

    #[test]
    fn a_key_needle_matches_any_value_of_that_key_only() {
        let environ = b"PATH=/bin\0COCO_RUN_ID=01ABC\0HOME=/h\0";
        assert!(has_entry_like(environ, "COCO_RUN_ID="));
        assert!(has_entry_like(environ, "HOME=/h"));
        assert!(!has_entry_like(environ, "COCO_APP="));
        assert!(!has_entry_like(b"XCOCO_RUN_ID=1\0", "COCO_RUN_ID="));
    }

    #[test]
    fn only_whole_entries_match() {
        let environ = b"PATH=/bin\0COCO_RUN_ID=01ABC\0HOME=/h\0";
        assert!(has_entry(environ, "COCO_RUN_ID=01ABC"));
        assert!(!has_entry(environ, "COCO_RUN_ID=01AB"));
        assert!(!has_entry(b"XCOCO_RUN_ID=01ABC\0", "COCO_RUN_ID=01ABC"));
        assert!(!has_entry(b"", "COCO_RUN_ID=01ABC"));
    }
}
