//! The `iamlease` binary: `iamlease server` runs the server; every other command is a client of
//! it over HTTP. Exit codes: 0 success, 1 the server (or the system) said no, 2 usage error.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use iamlease::config::{DevSettings, LogFormat, Settings};
use iamlease::server::Application;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "iamlease",
    version,
    about = "Dynamic, short-lived AWS credentials behind a Vault-compatible API"
)]
struct Cli {
    /// Server address [env: IAMLEASE_ADDR, then VAULT_ADDR; default http://127.0.0.1:8200]
    #[arg(long, global = true)]
    address: Option<String>,
    /// Token [env: IAMLEASE_TOKEN, then VAULT_TOKEN]
    #[arg(long, global = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: `iamlease server --dev` to try it, `--config iamlease.toml` in production.
    Server {
        /// Ready-to-use server: temporary store, `aws/` mounted, root token printed.
        #[arg(long)]
        dev: bool,
        /// Root token to use in dev mode instead of a random one.
        #[arg(long, requires = "dev")]
        dev_root_token: Option<String>,
        /// TOML settings file; IAMLEASE_* variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write the first root token here (mode 0600) instead of printing it.
        #[arg(long)]
        root_token_file: Option<PathBuf>,
    },
    /// Enable, list or disable secrets-engine mounts.
    #[command(subcommand)]
    Mount(cli::MountCommand),
    /// Configure a mount's AWS connection or lease defaults.
    #[command(subcommand)]
    Config(cli::ConfigCommand),
    /// Write, read, list or delete roles.
    #[command(subcommand)]
    Role(cli::RoleCommand),
    /// Issue a credential: `iamlease creds dev --ttl 15m --format env`
    Creds(cli::CredsArgs),
    /// List, look up, renew or revoke leases.
    #[command(subcommand)]
    Lease(cli::LeaseCommand),
    /// Create, look up or revoke tokens.
    #[command(subcommand)]
    Token(cli::TokenCommand),
    /// Write, read, list or delete ACL policies (Vault syntax).
    #[command(subcommand)]
    Policy(cli::PolicyCommand),
    /// Audit-log helpers: `iamlease audit hash VALUE` finds a secret's hash in the log.
    #[command(subcommand)]
    Audit(cli::AuditCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // exits 2 on a usage error
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(no) = e.downcast_ref::<cli::ServerSaidNo>() {
                eprintln!("Error: {} (HTTP {})", no.message, no.status.as_u16());
                ExitCode::from(1)
            } else if let Some(usage) = e.downcast_ref::<cli::UsageError>() {
                eprintln!("Error: {usage}");
                ExitCode::from(2)
            } else {
                eprintln!("Error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = || cli::Client::new(cli.address.clone(), cli.token.clone());
    match cli.command {
        Command::Server {
            dev,
            dev_root_token,
            config,
            root_token_file,
        } => {
            let dev = dev.then_some(DevSettings {
                root_token: dev_root_token,
            });
            let settings = Settings::load(config.as_deref(), dev, root_token_file, |k| {
                std::env::var(k).ok()
            })
            .map_err(|e| cli::UsageError(e.to_string()))?;
            serve(settings).await
        }
        Command::Mount(cmd) => cli::mount(&client()?, cmd).await,
        Command::Config(cmd) => cli::config(&client()?, cmd).await,
        Command::Role(cmd) => cli::role(&client()?, cmd).await,
        Command::Creds(args) => cli::creds(&client()?, args).await,
        Command::Lease(cmd) => cli::lease(&client()?, cmd).await,
        Command::Token(cmd) => cli::token(&client()?, cmd).await,
        Command::Policy(cmd) => cli::policy(&client()?, cmd).await,
        Command::Audit(cmd) => cli::audit(&client()?, cmd).await,
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&settings.log_level)
        .with_context(|| format!("log level {:?}", settings.log_level))?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.log_format {
        // JSON lines carry the request span (with its request_id) on every event.
        LogFormat::Json => logs.json().with_current_span(true).init(),
        LogFormat::Pretty => logs.init(),
    }
    let app = Application::build(&settings)
        .await
        .context("starting the server")?;
    let addr = app.local_addr();
    let address = format!("{}://{addr}", app.scheme());
    match (
        &app.initial_root_token,
        &settings.dev,
        &settings.root_token_file,
    ) {
        (Some(token), Some(_), _) => println!(
            "iamlease dev server is running. Do not use it in production: its data lives in a temporary directory.\n\n\
             \x20   export IAMLEASE_ADDR='{address}'\n\
             \x20   export IAMLEASE_TOKEN='{token}'\n\n\
             Root Token: {token}\n\
             The aws/ secrets engine is mounted. Next: iamlease config root --access-key … --secret-key …\n"
        ),
        (Some(_), None, Some(path)) => println!("Root token written to {}", path.display()),
        (Some(token), None, None) => println!(
            "First start: a root token was created. It is shown only this once; store it safely.\n\nRoot Token: {token}\n"
        ),
        (None, _, _) => {}
    }
    tracing::info!(%addr, "listening");
    app.run_until_stopped(shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = match tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::terminate(),
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = interrupt.await;
            return;
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Seconds as the vault CLI shows them: `1h`, `15m`, `45s`.
fn duration_text(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}
