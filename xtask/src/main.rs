//! `cargo xtask`: the developer's entry point. See <https://github.com/matklad/cargo-xtask/>.
//!
//! It runs the product's commands (the same as the shipped `magiclink` binary) from the
//! workspace root, so that `config/` and the default `data/` folder resolve the same wherever
//! `cargo xtask` is typed, plus the developer tasks in [`xtask::tasks`] (`test`, `bench`,
//! `openapi`).

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::cli::{main_with, Command, GlobalArgs, Program};

/// `cargo xtask`'s command line: the product's commands and the developer tasks.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    about = "magiclink's developer tasks: the product's commands run from this checkout, and `test`."
)]
struct Tasks {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Check what the tests need (Chromium, chromedriver, an SMTP server, ...), say what is
    /// missing and how to install it, run the whole test suite, and list what was skipped.
    Test {
        /// Passed on to `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the end-to-end benchmark on a release build (session checks, sign-ins, against a
    /// baseline read measured in the same run); `--micro` runs the criterion benchmarks instead.
    Bench {
        /// `--quick`, `--at-scale`, `--database postgres`, `--seconds N`; or `--micro` and
        /// criterion's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Rewrite `docs/openapi.json` from the code (the test suite fails while the two differ).
    Openapi,
    #[command(flatten)]
    Product(Command),
}

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
    if let Err(error) = std::env::set_current_dir(root) {
        eprintln!("error: cannot enter the workspace root {}: {error}", root.display());
        return ExitCode::FAILURE;
    }
    let tasks = Tasks::parse_from(std::iter::once("cargo xtask".to_owned()).chain(std::env::args().skip(1)));
    match tasks.task {
        Task::Test { args } => xtask::tasks::test(root, &args),
        Task::Bench { args } => xtask::tasks::bench(root, &args),
        Task::Openapi => xtask::tasks::write_openapi(root),
        Task::Product(command) => main_with(tasks.global, command, Program::CargoXtask),
    }
}
