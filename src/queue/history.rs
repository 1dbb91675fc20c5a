//! A run's state history, bounded (pure).
//!
//! A run may change state without end in sight — a job deferring for an hour, one retried
//! a thousand times — and its history lives in its record, read by every `coco list` and
//! `coco detail`. So the history keeps its first [`HEAD`] entries (how the run began) and
//! its latest ones, [`MAX`] in all; the entries in between are folded away and counted
//! ([`super::run::RunRecord::history_folded`]).

use super::run::StateChange;

/// Entries kept at most.
pub const MAX: usize = 50;
/// Of those, the oldest kept.
pub const HEAD: usize = 5;

/// Append `change` to `history`; if that makes it longer than [`MAX`], fold the oldest
/// entries after the first [`HEAD`] away and count them in `folded`.
pub fn push(history: &mut Vec<StateChange>, folded: &mut u64, change: StateChange) {
    history.push(change);
    let excess = history.len().saturating_sub(MAX);
    if excess > 0 {
        history.drain(HEAD..HEAD + excess);
        *folded = folded.saturating_add(u64::try_from(excess).unwrap_or(u64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::queue::state::RunState;

    fn change(n: i64) -> StateChange {
        StateChange {
            state: RunState::Running,
            at: DateTime::from_timestamp_millis(n).unwrap(),
            note: Some(n.to_string()),
        }
    }

    #[test]
    fn keeps_the_first_and_the_latest_entries_and_counts_the_rest() {
        let (mut history, mut folded) = (Vec::new(), 0);
        for n in 0..MAX as i64 {
            push(&mut history, &mut folded, change(n));
        }
        assert_eq!(
            (history.len(), folded),
            (MAX, 0),
            "nothing folded up to MAX"
        );
        for n in MAX as i64..1000 {
            push(&mut history, &mut folded, change(n));
        }
        assert_eq!((history.len(), folded), (MAX, 1000 - MAX as u64));
        let notes: Vec<i64> = history
            .iter()
            .map(|c| c.note.as_deref().unwrap().parse().unwrap())
            .collect();
        let latest = 1000 - (MAX - HEAD) as i64;
        let expected: Vec<i64> = (0..HEAD as i64).chain(latest..1000).collect();
        assert_eq!(notes, expected);
    }

    #[test]
    fn a_history_stored_longer_is_cut_down_at_its_next_change() {
        let mut history: Vec<StateChange> = (0..80).map(change).collect();
        let mut folded = 7;
        push(&mut history, &mut folded, change(80));
        assert_eq!((history.len(), folded), (MAX, 7 + 31));
        assert_eq!(history.last().unwrap().note.as_deref(), Some("80"));
    }
}
