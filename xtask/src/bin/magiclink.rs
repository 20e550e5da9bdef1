//! `magiclink`: the shipped binary. `magiclink serve`, `magiclink migrate`, `magiclink outbox`,
//! `magiclink secret`.

use std::process::ExitCode;

use clap::Parser as _;
use xtask::cli::{main_with, Cli, Program};

fn main() -> ExitCode {
    let cli = Cli::parse();
    main_with(cli.global, cli.command, Program::Magiclink)
}
