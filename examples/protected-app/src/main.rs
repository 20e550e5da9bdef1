//! `protected-app serve` (and `migrate`, `secret`, ...): magiclink's command line, serving
//! [`protected_app::app`].

use std::process::ExitCode;

use clap::Parser as _;
use xtask::cli::{main_embedding, Cli, Program};

fn main() -> ExitCode {
    let cli = Cli::parse();
    main_embedding(cli.global, cli.command, Program::Magiclink, protected_app::app)
}
