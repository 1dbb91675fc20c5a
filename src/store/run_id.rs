//! Run ids as the operator types them: any case, and any unique prefix of at least
//! [`MIN_PREFIX`] characters (as git and docker take short ids). [`resolve`] asks the store
//! for the ids starting with the prefix and [`decide`] (pure) says what they mean.

use std::fmt;

use super::{Queue, StoreResult};

/// The shortest prefix taken: shorter ones match too much to be meant.
pub const MIN_PREFIX: usize = 4;
/// The length of a whole run id (a ULID).
pub const ID_LEN: usize = 26;
/// How many candidates an ambiguous prefix lists.
const SHOWN: usize = 10;

/// Why a typed id names no single run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunIdProblem {
    /// Holds a character no run id has (they are ULIDs: digits and letters).
    Malformed {
        typed: String,
        bad: char,
    },
    TooShort {
        typed: String,
    },
    Unknown {
        typed: String,
    },
    /// Several runs start with it: the first of them (sorted), and whether there are more.
    Ambiguous {
        typed: String,
        candidates: Vec<String>,
        more: bool,
    },
}

impl fmt::Display for RunIdProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunIdProblem::Malformed { typed, bad } => write!(
                f,
                "`{typed}` is not a run id: run ids hold only digits and letters, not {bad:?}"
            ),
            RunIdProblem::TooShort { typed } => write!(
                f,
                "run id `{typed}` is too short: give at least {MIN_PREFIX} characters"
            ),
            RunIdProblem::Unknown { typed } => write!(f, "no run with id `{typed}`"),
            RunIdProblem::Ambiguous {
                typed,
                candidates,
                more,
            } => {
                write!(
                    f,
                    "run id `{typed}` is ambiguous: {}{} start with it; give more characters",
                    candidates.join(", "),
                    if *more { " and more" } else { "" }
                )
            }
        }
    }
}

/// What the operator typed, normalized: trimmed and upper-cased (pure).
pub fn normalize(typed: &str) -> String {
    typed.trim().to_ascii_uppercase()
}

/// Whether `normalized` can be (a piece of) a run id at all; the problem if not (pure).
pub fn check(typed: &str, normalized: &str) -> Result<(), RunIdProblem> {
    let bad = normalized.chars().find(|c| !c.is_ascii_alphanumeric());
    if let Some(bad) = bad {
        return Err(RunIdProblem::Malformed {
            typed: typed.to_string(),
            bad,
        });
    }
    if normalized.chars().count() < MIN_PREFIX {
        return Err(RunIdProblem::TooShort {
            typed: typed.to_string(),
        });
    }
    Ok(())
}

/// The run meant by `typed`, given the ids found starting with it (sorted; at most
/// [`SHOWN`] + 1 of them) (pure).
pub fn decide(typed: &str, mut found: Vec<String>) -> Result<String, RunIdProblem> {
    match found.len() {
        0 => Err(RunIdProblem::Unknown {
            typed: typed.to_string(),
        }),
        1 => Ok(found.remove(0)),
        n => {
            found.truncate(SHOWN);
            Err(RunIdProblem::Ambiguous {
                typed: typed.to_string(),
                candidates: found,
                more: n > SHOWN,
            })
        }
    }
}

/// The whole id of the one run `typed` names (a whole id or a unique prefix, any case).
pub async fn resolve(store: &dyn Queue, typed: &str) -> StoreResult<Result<String, RunIdProblem>> {
    let normalized = normalize(typed);
    if let Err(problem) = check(typed, &normalized) {
        return Ok(Err(problem));
    }
    let found = if normalized.len() >= ID_LEN {
        // A whole id: no need to look further than itself.
        store
            .get_run(&normalized)
            .await?
            .map(|run| run.id)
            .into_iter()
            .collect()
    } else {
        store.run_ids_starting_with(&normalized, SHOWN + 1).await?
    };
    Ok(decide(typed, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("01JD6W{i:020}")).collect()
    }

    #[test]
    fn a_unique_prefix_names_its_run() {
        assert_eq!(decide("01jd", ids(1)), Ok(ids(1)[0].clone()));
    }

    #[test]
    fn no_match_is_unknown_and_several_are_listed() {
        assert_eq!(
            decide("01JD", vec![]),
            Err(RunIdProblem::Unknown {
                typed: "01JD".into()
            })
        );
        let two = decide("01JD6W", ids(2)).unwrap_err();
        assert_eq!(
            two.to_string(),
            format!(
                "run id `01JD6W` is ambiguous: {}, {} start with it; give more characters",
                ids(2)[0],
                ids(2)[1]
            )
        );
        match decide("01JD6W", ids(11)) {
            Err(RunIdProblem::Ambiguous {
                candidates, more, ..
            }) => {
                assert_eq!(candidates, ids(10));
                assert!(more);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_and_malformed_ids_are_refused_before_any_lookup() {
        assert_eq!(normalize(" 01jd6w "), "01JD6W");
        assert!(check("01jd", "01JD").is_ok());
        assert_eq!(
            check("01j", "01J"),
            Err(RunIdProblem::TooShort {
                typed: "01j".into()
            })
        );
        assert!(matches!(
            check("01JD-6", "01JD-6"),
            Err(RunIdProblem::Malformed { bad: '-', .. })
        ));
        assert!(matches!(
            check("shop.export", "SHOP.EXPORT"),
            Err(RunIdProblem::Malformed { bad: '.', .. })
        ));
        assert!(matches!(
            check("01JD%", "01JD%"),
            Err(RunIdProblem::Malformed { bad: '%', .. })
        ));
    }
}
