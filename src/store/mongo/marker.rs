//! The `_id`s of the documents in `locks`: each one-time step is won by the insert of a
//! marker with a unique `_id` (see `queue.rs`). One type names them all, so that every
//! place that writes, deletes or recovers a marker builds the same text.

use std::fmt;
use std::str::FromStr;

/// The `_id` of a document in `locks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LockId {
    /// `dedupe:{key}`: the run holding a dedupe key ([`crate::queue::dedupe_key`]).
    Dedupe { key: String },
    /// `slot:{job}:{k}`: slot `k` of a job's `max_parallel`.
    Slot { job: String, slot: u32 },
    /// `claim:{run}:{seq}`: the claim (or the kill or removal) of a waiting run read at `seq`.
    Claim { run: String, seq: i64 },
    /// `end:{run}:{seq}`: the end of a running try read at `seq`.
    End { run: String, seq: i64 },
    /// `orphan:{run}:{seq}`: the recovery of a claim whose claimer died.
    Orphan { run: String, seq: i64 },
    /// `fire:{fire}:{generation}`: the take-over of an unsettled fire (`fires` `_id`) seen
    /// recorded at `generation` (milliseconds).
    Fire { fire: String, generation: i64 },
    /// `live:{run}`: a running run's heartbeat, pid and progress (not a one-time marker).
    Live { run: String },
    /// `takeover:{app}:{token}`: the take-over of an app held (stale) under `token`.
    TakeOver { app: String, token: i64 },
}

impl LockId {
    pub(super) fn dedupe(key: &str) -> Self {
        LockId::Dedupe {
            key: key.to_owned(),
        }
    }

    pub(super) fn slot(job: &str, slot: u32) -> Self {
        LockId::Slot {
            job: job.to_owned(),
            slot,
        }
    }

    pub(super) fn claim(run: &str, seq: i64) -> Self {
        LockId::Claim {
            run: run.to_owned(),
            seq,
        }
    }

    pub(super) fn end(run: &str, seq: i64) -> Self {
        LockId::End {
            run: run.to_owned(),
            seq,
        }
    }

    pub(super) fn orphan(run: &str, seq: i64) -> Self {
        LockId::Orphan {
            run: run.to_owned(),
            seq,
        }
    }

    pub(super) fn fire(fire: &str, generation: i64) -> Self {
        LockId::Fire {
            fire: fire.to_owned(),
            generation,
        }
    }

    pub(super) fn live(run: &str) -> Self {
        LockId::Live {
            run: run.to_owned(),
        }
    }

    pub(super) fn take_over(app: &str, token: i64) -> Self {
        LockId::TakeOver {
            app: app.to_owned(),
            token,
        }
    }
}

/// The `kind` of a job slot marker (queries select slots by it).
pub(super) const SLOT_KIND: &str = "slot";
/// The `kind` of a fire take-over marker (pruning selects them by it).
pub(super) const FIRE_KIND: &str = "fire";

impl LockId {
    /// The marker's kind, stored beside it as `kind` (and the prefix of its `_id`).
    pub(super) fn kind(&self) -> &'static str {
        match self {
            LockId::Dedupe { .. } => "dedupe",
            LockId::Slot { .. } => SLOT_KIND,
            LockId::Claim { .. } => "claim",
            LockId::End { .. } => "end",
            LockId::Orphan { .. } => "orphan",
            LockId::Fire { .. } => FIRE_KIND,
            LockId::Live { .. } => "live",
            LockId::TakeOver { .. } => "takeover",
        }
    }
}

/// The kinds of the markers a dead worker can leave behind, which
/// [`super::MongoStore::recover_stale_locks`] looks at.
pub(super) const RECOVERABLE_KINDS: [&str; 4] = [SLOT_KIND, "claim", "end", "orphan"];

impl fmt::Display for LockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockId::Dedupe { key } => write!(f, "dedupe:{key}"),
            LockId::Slot { job, slot } => write!(f, "slot:{job}:{slot}"),
            LockId::Claim { run, seq } => write!(f, "claim:{run}:{seq}"),
            LockId::End { run, seq } => write!(f, "end:{run}:{seq}"),
            LockId::Orphan { run, seq } => write!(f, "orphan:{run}:{seq}"),
            LockId::Fire { fire, generation } => write!(f, "fire:{fire}:{generation}"),
            LockId::Live { run } => write!(f, "live:{run}"),
            LockId::TakeOver { app, token } => write!(f, "takeover:{app}:{token}"),
        }
    }
}

/// A `locks` `_id` that is none of [`LockId`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown lock id {0:?}")]
pub(super) struct UnknownLock(String);

impl FromStr for LockId {
    type Err = UnknownLock;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownLock(text.to_owned());
        let (kind, rest) = text.split_once(':').ok_or_else(unknown)?;
        // Job ids, run ids (ULIDs), dedupe keys (hex) and fire ids (`{job}@{ms}`) hold no
        // `:`; the number after the last one is a slot, a sequence or a generation.
        let numbered = || -> Result<(String, i64), UnknownLock> {
            let (name, number) = rest.rsplit_once(':').ok_or_else(unknown)?;
            let number = number.parse().map_err(|_| unknown())?;
            Ok((name.to_owned(), number))
        };
        let id = match kind {
            "dedupe" => LockId::Dedupe {
                key: rest.to_owned(),
            },
            "live" => LockId::Live {
                run: rest.to_owned(),
            },
            "slot" => {
                let (job, slot) = numbered()?;
                LockId::Slot {
                    job,
                    slot: u32::try_from(slot).map_err(|_| unknown())?,
                }
            }
            "claim" | "end" | "orphan" => {
                let (run, seq) = numbered()?;
                match kind {
                    "claim" => LockId::Claim { run, seq },
                    "end" => LockId::End { run, seq },
                    _ => LockId::Orphan { run, seq },
                }
            }
            "fire" => {
                let (fire, generation) = numbered()?;
                LockId::Fire { fire, generation }
            }
            "takeover" => {
                let (app, token) = numbered()?;
                LockId::TakeOver { app, token }
            }
            _ => return Err(unknown()),
        };
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_ids_round_trip_as_their_old_text() {
        let run = "01JD0000000000000000000000";
        let old = [
            (
                format!("dedupe:{}", "ab".repeat(32)),
                LockId::dedupe(&"ab".repeat(32)),
            ),
            (
                "slot:shop.report:2".to_owned(),
                LockId::slot("shop.report", 2),
            ),
            (format!("claim:{run}:0"), LockId::claim(run, 0)),
            (format!("end:{run}:17"), LockId::end(run, 17)),
            (format!("orphan:{run}:3"), LockId::orphan(run, 3)),
            (
                "fire:shop.report@1700000060000:1700000061234".to_owned(),
                LockId::fire("shop.report@1700000060000", 1_700_000_061_234),
            ),
            (format!("live:{run}"), LockId::live(run)),
            (
                "takeover:shop.web:7".to_owned(),
                LockId::take_over("shop.web", 7),
            ),
        ];
        for (text, id) in old {
            assert_eq!(id.to_string(), text);
            assert!(text.starts_with(&format!("{}:", id.kind())), "{text}");
            assert_eq!(text.parse::<LockId>(), Ok(id), "{text}");
        }
        for bad in [
            "",
            "slot",
            "slot:job",
            "claim:run:x",
            "slot:job:-1",
            "key:x",
        ] {
            assert!(bad.parse::<LockId>().is_err(), "{bad}");
        }
    }
}
