//! `cargo xtask`: the developer's entry point. See <https://github.com/matklad/cargo-xtask/>.
//!
//! It runs the same commands as the shipped `magiclink` binary, from the workspace root, so that
//! `config/` and the default `data/` folder resolve the same wherever `cargo xtask` is typed.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
    if let Err(error) = std::env::set_current_dir(root) {
        eprintln!("error: cannot enter the workspace root {}: {error}", root.display());
        return ExitCode::FAILURE;
    }
    xtask::cli::main_with(xtask::cli::Cli::parse_from(
        std::iter::once("cargo xtask".to_owned()).chain(std::env::args().skip(1)),
    ))
}
