//! The `coco` binary: parse the command line (core4's `--verb` spellings become verbs), run
//! the verb, map errors to exit codes.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = coco::cli::Cli::parse_from(coco::cli::args::core4_aliases(std::env::args_os()));
    match coco::cli::run(cli).await {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(error) => {
            coco::cli::output::error(&coco::redact::redact(&format!("{error:#}")));
            std::process::ExitCode::from(1)
        }
    }
}
