//! The `rollcall` binary: parse the command line and hand over. Everything
//! else lives in the library crates and `commands/`.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

// glibc malloc spent a third of a large sync in its own bookkeeping (many
// small strings from JSON); mimalloc does the same work in a fraction.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
