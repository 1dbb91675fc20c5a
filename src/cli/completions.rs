//! `coco completions SHELL` and `coco man`: the shell completion script (clap_complete) and
//! the manual page in roff (clap_mangen), both generated from the same clap definition as
//! the command line itself, so they never fall behind it. Both go to stdout, to be saved
//! where the shell or `man` looks (the README says where). Hidden verbs (`coco __guard`)
//! are left out of both: clap_mangen drops them itself, clap_complete does not, so the
//! completions are made from the command line without them.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _};
use clap_complete::Shell;

use super::{Cli, output};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_name = "SHELL", value_enum)]
    pub shell: Shell,
}

/// Print the completion script for `args.shell`.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<i32> {
    let mut script = Vec::new();
    clap_complete::generate(
        args.shell,
        &mut visible(Cli::command()),
        "coco",
        &mut script,
    );
    output::text(&String::from_utf8(script)?);
    Ok(0)
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write coco.1 and a page per verb (coco-init.1, …) into this folder instead of
    /// printing coco.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Print the manual page coco(1) in roff, or write every page into `args.dir`.
pub fn man(args: &ManArgs) -> anyhow::Result<i32> {
    let Some(dir) = &args.dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command()).render(&mut page)?;
        output::text(&String::from_utf8(page)?);
        return Ok(0);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing the manual pages into {}", dir.display()))?;
    output::text(&format!(
        "wrote coco.1 and a page per verb into {} (read one: man coco-init)",
        dir.display()
    ));
    Ok(0)
}

/// `full` without its hidden subcommands (clap has no `remove_subcommand`: the root is made
/// again from `full`'s own arguments and visible subcommands, so nothing is restated here).
fn visible(full: clap::Command) -> clap::Command {
    clap::Command::new("coco")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn completions_offer_every_visible_verb_and_no_hidden_one() {
        let full = super::Cli::command();
        let visible = super::visible(super::Cli::command());
        let names = |c: &clap::Command| -> Vec<String> {
            c.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(|s| s.get_name().to_owned())
                .collect()
        };
        assert_eq!(names(&visible), names(&full));
        assert!(visible.get_subcommands().all(|s| !s.is_hide_set()));
        assert!(full.get_subcommands().any(|s| s.get_name() == "__guard"));
        assert_eq!(
            visible.get_arguments().count(),
            full.get_arguments().count()
        );
        visible.debug_assert();
    }
}
