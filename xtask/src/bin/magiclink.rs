//! `magiclink`: the shipped binary. `magiclink serve`, `magiclink migrate`, `magiclink secret`.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    xtask::cli::main_with(xtask::cli::Cli::parse())
}
