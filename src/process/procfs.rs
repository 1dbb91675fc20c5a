//! Reading Linux's `/proc`: the processes of this host and their `stat` lines. Elsewhere
//! (or without `/proc`) there is nothing to read.

/// The pids of this host's processes (the numeric entries of `/proc`); `None` when `/proc`
/// cannot be read.
pub fn pids() -> Option<impl Iterator<Item = u32>> {
    let entries = std::fs::read_dir("/proc").ok()?;
    Some(
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok()),
    )
}

/// The line of `/proc/PID/stat`.
pub struct Stat(String);

impl Stat {
    pub fn read(pid: u32) -> Option<Stat> {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .map(Stat)
    }

    /// The fields after the command name: state, ppid, pgrp, … (field 3 of proc(5) is
    /// index 0 here). The name may hold anything, so they start after its last `)`.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        after_name(&self.0).split_whitespace()
    }

    /// The `index`th of [`Stat::fields`], parsed.
    pub fn field<T: std::str::FromStr>(&self, index: usize) -> Option<T> {
        self.fields().nth(index)?.parse().ok()
    }
}

/// What follows the command name of a `stat` line (pure); nothing if it has none.
fn after_name(stat: &str) -> &str {
    stat.rfind(')').map_or("", |end| &stat[end + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_spaces_and_parentheses_is_skipped() {
        let stat = Stat("42 (my (odd) name) S 1 42 42 0 -1".to_string());
        assert_eq!(stat.fields().take(3).collect::<Vec<_>>(), ["S", "1", "42"]);
        assert_eq!(stat.field::<u32>(2), Some(42));
        assert_eq!(Stat("garbage".into()).fields().count(), 0);
    }

    #[test]
    fn this_process_is_listed_with_its_parent() {
        let own = std::process::id();
        assert!(pids().unwrap().any(|pid| pid == own));
        let stat = Stat::read(own).unwrap();
        let state = stat.fields().next().unwrap();
        assert!(matches!(state, "R" | "S"), "running or sleeping: {state}");
        assert_eq!(stat.field(1), Some(std::os::unix::process::parent_id()));
    }
}
