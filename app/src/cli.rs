//! Start-up plumbing shared by both binaries: parse the command line, and turn any bad or
//! missing setting into one line on stderr and exit code 2 (help and version print as usual).

use clap::{Parser, error::ErrorKind};

use crate::config::{ConfigError, EXIT_CONFIG};

/// Parses the command line and environment into `C`, or exits.
pub fn parse<C: Parser>(program: &str) -> C {
    match C::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                let rendered = e.to_string();
                let first = rendered.lines().next().unwrap_or("invalid command line");
                let first = first.strip_prefix("error: ").unwrap_or(first);
                eprintln!("{program}: {first} (see --help)");
                std::process::exit(EXIT_CONFIG)
            }
        },
    }
}

/// Reports a configuration error in one line and exits with code 2.
pub fn exit_config(program: &str, error: &ConfigError) -> ! {
    eprintln!("{program}: configuration error: {error}");
    std::process::exit(EXIT_CONFIG)
}

/// Unwraps a configuration result, or reports it and exits with code 2.
pub fn require<T>(program: &str, result: Result<T, ConfigError>) -> T {
    result.unwrap_or_else(|e| exit_config(program, &e))
}
