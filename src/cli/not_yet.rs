//! Verbs that later issues implement: they exist as names and say so.

use clap::Args;

use super::output;

/// Arguments accepted (and ignored) by a verb that is not implemented yet.
#[derive(Debug, Args)]
pub struct Rest {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<String>,
}

/// Say that `what` is not built yet and which issue covers it; exit status 3.
pub fn run(what: &str, issue: u32) -> anyhow::Result<i32> {
    output::error(&format!(
        "not yet: {what} is not implemented in this version of coco (tracked in issue {issue})"
    ));
    Ok(3)
}
