//! The `coco` binary: parse the command line (core4's `--verb` spellings become verbs), run
//! the verb, map errors to exit codes. A run's subreaper (`coco __contain`, one per run) is
//! served before any of that: it starts no runtime and parses no command line.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|verb| verb == coco::process::reaper::VERB)
    {
        return exit_code(coco::cli::contain(&args[2..]));
    }
    keep_freed_memory();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            coco::cli::output::error(&format!("cannot start the async runtime: {error}"));
            return std::process::ExitCode::from(1);
        }
    };
    let cli = coco::cli::Cli::parse_from(coco::cli::args::core4_aliases(args));
    match runtime.block_on(coco::cli::run(cli)) {
        Ok(code) => exit_code(code),
        Err(error) => {
            coco::cli::output::error(&coco::redact::redact(&format!("{error:#}")));
            std::process::ExitCode::from(1)
        }
    }
}

/// A busy worker frees and allocates much the same memory on every run; glibc's default hands
/// the top of a heap back to the kernel once 128 KiB of it is free (`madvise`), so the next
/// run faults those pages in again. Keep up to 8 MiB free per heap instead (setting it stops
/// glibc's own tuning of both thresholds, so blocks up to 4 MiB stay on the heap as well).
fn keep_freed_memory() {
    // SAFETY: mallopt only sets a tuning parameter of glibc's allocator; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

fn exit_code(code: i32) -> std::process::ExitCode {
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
