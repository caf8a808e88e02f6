//! `geoward-sim`: parses the command line and hands it to the library.

use std::process::ExitCode;

use clap::Parser;
use geoward_simulator::cli::{self, Cli};

fn main() -> ExitCode {
    match cli::main(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
