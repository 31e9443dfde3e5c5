//! chat-bench: load and correctness benchmarks for chatd over its real protocol.
//!
//! `chat-bench <scenario> [options]`; `chat-bench --help` lists scenarios and options.

mod args;
mod checks;
mod client;
mod coord;
mod db;
mod driver;
mod http;
mod plan;
mod plot;
mod proc;
mod provision;
mod report;
mod roles;
mod run;
mod scenarios;
mod sockets;
mod stats;
mod storm;
mod track;
mod util;
mod ws;

use std::process::ExitCode;

fn usage() -> String {
    let mut s = String::from(
        "chat-bench <scenario> [options]\n\nScenarios (chat-bench <scenario> --help for its knobs):\n",
    );
    for n in scenarios::NAMES {
        let help = scenarios::help(n).unwrap_or_default();
        s += &format!("  {}\n", help.lines().next().unwrap_or(n));
    }
    s += "\n";
    s += run::COMMON_HELP;
    s
}

fn main() -> ExitCode {
    let mut argv = std::env::args_os().skip(1).peekable();
    if argv.peek().is_some_and(|a| a == "--child") {
        return ExitCode::from(coord::child_main() as u8);
    }
    let a = match args::Args::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chat-bench: {e}\n\n{}", usage());
            return ExitCode::from(3);
        }
    };
    if a.scenario.is_empty() || (a.flag("help") && scenarios::help(&a.scenario).is_none()) {
        println!("{}", usage());
        return ExitCode::from(if a.flag("help") { 0 } else { 3 });
    }
    if a.flag("help") {
        println!(
            "{}\n\n{}",
            scenarios::help(&a.scenario).unwrap_or_default(),
            run::COMMON_HELP
        );
        return ExitCode::SUCCESS;
    }
    match run::run(&a) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("chat-bench: {e}");
            ExitCode::from(3)
        }
    }
}
