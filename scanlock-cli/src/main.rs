//! `scanlock`: the operator's command line for scanlock locks. See `scanlock --help`
//! and README-section.md.

mod clean;
mod cli;
mod duration;
mod error;
mod format;
mod run;
mod signals;
mod status;
mod store;
mod watch;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::CliError;
use crate::store::Location;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with code 2 (error::code::ERROR).
    let cli = Cli::parse();
    let result = Location::resolve(&cli.store).and_then(|location| match &cli.command {
        Command::Status(args) => status::run(&location, args),
        Command::Run(args) => run::run(&location, args),
        Command::Watch(args) => watch::run(&location, args),
        Command::Clean(args) => clean::run(&location, args),
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            e.print();
            ExitCode::from(e.code)
        }
    }
}

/// Writes to stdout and flushes (frames of `watch` must show up at once even in a
/// pipe). `Ok(false)` when the reader has gone (`scanlock status | head`), which is not
/// an error worth a message.
pub fn write_stdout(bytes: &[u8]) -> Result<bool, CliError> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(CliError::new(
            format!("cannot write the output: {e}"),
            "check where stdout goes (a full disk?)",
        )),
    }
}
