//! The `chatd` command: serve (default), migrate, check-config.

use chatd::config::{Config, ProcessEnv};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const HELP: &str = "\
chatd - real-time chat server on PostgreSQL

USAGE:
    chatd [--config PATH] [COMMAND]

COMMANDS:
    serve          Run the server (default). Migrations are applied at start-up.
    migrate        Apply pending database migrations and exit.
    check-config   Print the effective configuration (secrets masked) and exit;
                   exits 2 with a message naming the bad key when it is invalid.

OPTIONS:
    -c, --config PATH   TOML config file (default: $CHATD_CONFIG, else built-in defaults;
                        see chat.toml for every key).
    -h, --help          Print this help.
    -V, --version       Print the version.

ENVIRONMENT (overrides the file):
    DATABASE_URL        PostgreSQL URL (the database is created when missing)
    PORT                Listening port
    JWT_ACCESS_SECRET   HS256 secret for access tokens
    JWT_REFRESH_SECRET  Secret for refresh tokens
    CHATD_CONFIG        Config file path when --config is not given
    CHATD_NODE_ID       Node name in presence rows
    DATABASE_READ_URL   Hot standby URLs for reads that may lag (comma-separated)
    RUST_LOG            Log level (error, warn, info, debug, trace)

SIGNALS:
    SIGTERM, SIGINT     Graceful shutdown: stop accepting, commit and acknowledge queued
                        messages, close WebSockets with 1001, exit 0.
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut config: Option<PathBuf> = None;
    let mut command: Option<String> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("chatd {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "-c" | "--config" => match args.next() {
                Some(p) => config = Some(p.into()),
                None => return usage("--config needs a path"),
            },
            s if s.starts_with("--config=") => config = Some(s["--config=".len()..].into()),
            "serve" | "migrate" | "check-config" if command.is_none() => command = Some(a),
            other => return usage(&format!("unexpected argument `{other}`")),
        }
    }
    let cfg = match Config::load(config.as_deref(), &ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chatd: {e}");
            return ExitCode::from(2);
        }
    };
    match command.as_deref().unwrap_or("serve") {
        "check-config" => {
            print!("{}", cfg.masked_toml());
            if cfg.secrets_missing() {
                eprintln!(
                    "note: no JWT secrets set: the server would run in development mode with random secrets"
                );
            }
            ExitCode::SUCCESS
        }
        "migrate" => {
            chatd::logger::init(&cfg.log_level);
            match chatd::migrate(&cfg) {
                Ok(n) => {
                    println!("applied {n} migration(s); database is up to date");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("chatd: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => serve(cfg),
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("chatd: {msg}\n\n{HELP}");
    ExitCode::from(2)
}

fn serve(cfg: Config) -> ExitCode {
    chatd::logger::init(&cfg.log_level);
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chatd: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A signal during start-up (waiting for the database) stops it at once.
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let flag = stop.clone();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            flag.store(true, Ordering::Release);
            let _ = tx.send(sig);
        }
    });
    let mut handle = match chatd::run_until(cfg, &stop) {
        Ok(h) => h,
        Err(chatd::StartError::Stopped) => {
            log::info!("stopped during start-up");
            return ExitCode::SUCCESS;
        }
        // A configuration the cluster cannot take: as for a bad configuration.
        Err(e @ chatd::StartError::Mismatch(_)) => {
            eprintln!("chatd: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("chatd: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Ok(sig) = rx.recv() {
        log::info!("signal {sig}: shutting down");
    }
    handle.shutdown();
    ExitCode::SUCCESS
}
