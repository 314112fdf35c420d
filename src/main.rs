//! The `iamlease` binary: `iamlease server` runs the server; every other command is a client of
//! it over HTTP. Exit codes: 0 success (also when the reader of standard output went away after
//! the command began answering, as with `| head`), 1 the server (or the system) said no, 2 usage
//! error.

// Output goes through `cli::Out` and `cli::note!`: `println!` panics on a closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cli;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use iamlease::config::{DevSettings, KmsSettings, LogFormat, Settings};
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
    #[command(
        after_help = "Examples:\n  iamlease server --dev --dev-root-token root\n  iamlease server --config /etc/iamlease.toml --root-token-file /run/iamlease/root-token"
    )]
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
    #[command(
        after_help = "Examples:\n  iamlease mount enable aws --path aws-prod\n  iamlease mount list"
    )]
    Mount(cli::MountCommand),
    /// Configure a mount's AWS connection or lease defaults.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  iamlease config root --access-key AKIA… --region us-east-1\n  iamlease config lease --lease 1h --lease-max 24h"
    )]
    Config(cli::ConfigCommand),
    /// Write, read, list or delete roles.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  iamlease role write dev --credential-type iam_user --policy-arn arn:aws:iam::aws:policy/ReadOnlyAccess\n  iamlease role read dev"
    )]
    Role(cli::RoleCommand),
    /// Write, read, list, delete or rotate static roles (existing IAM users' rotated keys).
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  iamlease static-role write legacy-app --username legacy-app --rotation-period 24h --overlap 1h\n  iamlease static-role read legacy-app"
    )]
    StaticRole(cli::StaticRoleCommand),
    /// Print a static role's current key: `iamlease static-creds legacy-app --format env`
    #[command(
        after_help = "Examples:\n  iamlease static-creds legacy-app --format env\n  iamlease static-creds legacy-app --format credential-process   # in ~/.aws/config: credential_process = iamlease static-creds legacy-app --format credential-process"
    )]
    StaticCreds(cli::StaticCredsArgs),
    /// Issue a credential: `iamlease creds dev --ttl 15m --format env`
    #[command(
        after_help = "Examples:\n  iamlease creds dev --ttl 15m --format env\n  iamlease creds dev --format credential-process   # in ~/.aws/config: credential_process = iamlease creds dev --format credential-process"
    )]
    Creds(cli::CredsArgs),
    /// Run a command with a fresh credential in its environment; revoke it when the command ends.
    #[command(
        after_help = "Examples:\n  iamlease exec dev --ttl 1h -- aws sts get-caller-identity\n  iamlease exec --agent dev -- ./nightly-job.sh   # runs past max_ttl: credentials from an agent\n\n\
        COMMAND gets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (STS roles), AWS_REGION \
        and AWS_CREDENTIAL_EXPIRATION (or the names in the role's key_map). Signals are passed on; \
        the lease is revoked when COMMAND exits or is killed, and exec exits with its status \
        (128+N for signal N). If exec itself is killed with SIGKILL, the lease still expires on the \
        server at its TTL. With --agent, COMMAND gets AWS_CONTAINER_CREDENTIALS_FULL_URI and \
        AWS_CONTAINER_AUTHORIZATION_TOKEN instead (and no AWS_ACCESS_KEY_ID, AWS_PROFILE, …): an agent \
        (see `iamlease agent`) renews and replaces its credentials while it runs, and revokes its \
        leases when it ends."
    )]
    Exec(cli::ExecArgs),
    /// Serve a self-refreshing credential to AWS SDKs on loopback (the container-credentials endpoint).
    #[command(
        after_help = "Examples:\n  iamlease agent dev --ttl 1h\n  eval \"$(iamlease agent dev --format env &)\"   # then: aws sts get-caller-identity; kill $IAMLEASE_AGENT_PID\n\n\
        Prints AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN: with them in \
        its environment, any AWS SDK or the AWS CLI fetches credentials from the agent and refreshes them \
        on its own. The agent renews the lease while it can and, before the credential expires (the \
        role's max_ttl, or an STS credential's end), issues a new one, serves it once AWS accepts it, and \
        revokes the old lease when the old credential expires. Requests need the token, and only \
        loopback clients are served. SIGTERM or SIGINT revokes every lease it holds, then it exits 0. \
        Static keys and profiles in the environment or ~/.aws come first in the SDKs' chain: unset them \
        (`--format env` does so for the variables)."
    )]
    Agent(cli::AgentArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  iamlease completions bash > /etc/bash_completion.d/iamlease\n  \
        iamlease completions zsh > \"${fpath[1]}/_iamlease\"\n  \
        iamlease completions fish > ~/.config/fish/completions/iamlease.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// List, look up, renew or revoke leases.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  iamlease lease list aws/creds/dev/\n  iamlease lease revoke aws/creds/dev/<id>"
    )]
    Lease(cli::LeaseCommand),
    /// Who held an access key: lease, role, requester, token metadata, issue/expire/revoke times.
    Whois(cli::WhoisArgs),
    /// Create, look up or revoke tokens.
    #[command(subcommand)]
    #[command(
        after_help = "Example:\n  iamlease token create --policy dev --ttl 8h --display-name ci"
    )]
    Token(cli::TokenCommand),
    /// Write, read, list or delete ACL policies (Vault syntax).
    #[command(subcommand)]
    #[command(after_help = "Example:\n  iamlease policy write dev dev.hcl")]
    Policy(cli::PolicyCommand),
    /// Find IAM users with iamlease tags but no live lease, and delete them (`--dry-run` lists).
    Sweep(cli::SweepArgs),
    /// Guided AWS setup: the least-privilege policy and role the server needs (`--apply` creates them).
    #[command(
        subcommand,
        after_help = "Example:\n  iamlease setup aws --path-prefix /iamlease/ --apply"
    )]
    Setup(cli::SetupCommand),
    /// Audit-log helpers: `iamlease audit hash VALUE` finds a secret's hash in the log.
    #[command(
        subcommand,
        after_help = "Example:\n  iamlease audit hash \"$AWS_SECRET_ACCESS_KEY\""
    )]
    Audit(cli::AuditCommand),
    /// Log in with an auth method and keep the token in ~/.iamlease-token (mode 0600).
    #[command(
        after_help = "Examples:\n  iamlease login --method approle role_id=$ROLE_ID secret_id=@secret-id.txt\n  iamlease login --method jwt role=ci jwt=@$ACTIONS_ID_TOKEN_FILE\n  iamlease login <token>"
    )]
    Login(cli::LoginArgs),
    /// Operator tasks run on the store itself (every server stopped): `operator rekey`.
    #[command(
        subcommand,
        after_help = "Examples:\n  iamlease operator rekey --config /etc/iamlease.toml --to-kms-key-id alias/iamlease\n  iamlease operator rekey --config /etc/iamlease.toml --to-master-key-file /var/lib/iamlease/master.key.new"
    )]
    Operator(Operator),
    /// Print the OpenAPI 3 document of the HTTP API (also served at /v1/sys/openapi.json).
    #[command(after_help = "Example:\n  iamlease openapi > docs/openapi.json")]
    Openapi,
}

#[derive(Debug, Subcommand)]
enum Operator {
    /// Move the store to a new master key (under AWS KMS, or in a file), re-sealing every secret
    /// it keeps in one transaction. Stop every server on the store first; then start them with
    /// the new setting (kms_key_id, or master_key_file).
    #[command(
        after_help = "Examples:\n  iamlease operator rekey --config /etc/iamlease.toml --to-kms-key-id alias/iamlease\n  IAMLEASE_KMS_KEY_ID=alias/iamlease iamlease operator rekey --to-master-key-file ./master.key.new"
    )]
    Rekey {
        /// TOML settings file (storage and the current master key); IAMLEASE_* variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The KMS key to put the new master key under (id, ARN or alias).
        #[arg(
            long,
            conflicts_with = "to_master_key_file",
            required_unless_present = "to_master_key_file"
        )]
        to_kms_key_id: Option<String>,
        /// KMS endpoint for the new key (emulators, private endpoints).
        #[arg(long, requires = "to_kms_key_id")]
        to_kms_endpoint: Option<String>,
        /// KMS region for the new key (default: the AWS default chain's).
        #[arg(long, requires = "to_kms_key_id")]
        to_kms_region: Option<String>,
        /// A file for the new master key (made with mode 0600; must not hold the current key).
        #[arg(long)]
        to_master_key_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // exits 2 on a usage error
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            cli::note!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(no) = e.downcast_ref::<cli::ServerSaidNo>() {
                cli::note!("Error: {} (HTTP {})", no.message, no.status.as_u16());
                ExitCode::from(1)
            } else if let Some(exited) = e.downcast_ref::<cli::CommandExited>() {
                // exec: COMMAND's own status, which already said what went wrong.
                ExitCode::from(exited.0)
            } else if let Some(usage) = e.downcast_ref::<cli::UsageError>() {
                cli::note!("Error: {usage}");
                ExitCode::from(2)
            } else {
                cli::note!("Error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = || cli::Client::new(cli.address.clone(), cli.token.clone());
    let mut out = cli::Out::stdout();
    let out = &mut out;
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
            return serve(settings, out).await;
        }
        Command::Operator(Operator::Rekey {
            config,
            to_kms_key_id,
            to_kms_endpoint,
            to_kms_region,
            to_master_key_file,
        }) => {
            let settings = Settings::load(config.as_deref(), None, None, |k| std::env::var(k).ok())
                .map_err(|e| cli::UsageError(e.to_string()))?;
            let target = match (to_kms_key_id, to_master_key_file) {
                (Some(key_id), _) => iamlease::server::RekeyTarget::Kms(KmsSettings {
                    key_id,
                    endpoint: to_kms_endpoint,
                    region: to_kms_region,
                }),
                (None, Some(path)) => iamlease::server::RekeyTarget::File(path),
                (None, None) => unreachable!("clap requires one"),
            };
            let count = iamlease::server::rekey(&settings, &target)
                .await
                .context("rekey")?;
            let next = match &target {
                iamlease::server::RekeyTarget::Kms(k) => format!(
                    "start the servers with kms_key_id = {:?} (IAMLEASE_KMS_KEY_ID) and without master_key_file / IAMLEASE_MASTER_KEY; the old key file no longer opens anything: delete it",
                    k.key_id
                ),
                iamlease::server::RekeyTarget::File(p) => format!(
                    "start the servers with master_key_file = {:?} (and without kms_key_id)",
                    p.display().to_string()
                ),
            };
            writeln!(
                out,
                "Success! Re-sealed {count} secrets under the new master key. Next: {next}."
            )?;
        }
        Command::Mount(cmd) => cli::mount(&client()?, cmd, out).await?,
        Command::Config(cmd) => cli::config(&client()?, cmd, out).await?,
        Command::Role(cmd) => cli::role(&client()?, cmd, out).await?,
        Command::Creds(args) => cli::creds(&client()?, args, out).await?,
        Command::StaticRole(cmd) => cli::static_role(&client()?, cmd, out).await?,
        Command::StaticCreds(args) => cli::static_creds(&client()?, args, out).await?,
        Command::Exec(args) => cli::exec(&client()?, args).await?,
        Command::Agent(args) => cli::agent(&client()?, args, out).await?,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            // Rendered first: clap_complete panics on a write error (a full disk).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "iamlease", &mut script);
            out.write_all(&script)?;
        }
        Command::Lease(cmd) => cli::lease(&client()?, cmd, out).await?,
        Command::Login(args) => cli::login(cli.address.clone(), args, out).await?,
        Command::Whois(args) => cli::whois(&client()?, args, out).await?,
        Command::Token(cmd) => cli::token(&client()?, cmd, out).await?,
        Command::Policy(cmd) => cli::policy(&client()?, cmd, out).await?,
        Command::Sweep(args) => cli::sweep(&client()?, args, out).await?,
        Command::Setup(cmd) => cli::setup(client(), cmd, out).await?,
        Command::Audit(cmd) => cli::audit(&client()?, cmd, out).await?,
        Command::Openapi => out.write_all(iamlease::api::openapi_json().as_bytes())?,
    }
    // What is still buffered; a reader gone by now ends the output quietly, as in `Out`.
    out.flush()?;
    Ok(())
}

async fn serve(settings: Settings, out: &mut cli::Out) -> anyhow::Result<()> {
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
    let banner = match (
        &app.initial_root_token,
        &settings.dev,
        &settings.root_token_file,
    ) {
        (Some(token), Some(_), _) => Some(format!(
            "iamlease dev server is running. Do not use it in production: its data lives in a temporary directory.\n\n\
             \x20   export IAMLEASE_ADDR='{address}'\n\
             \x20   export IAMLEASE_TOKEN='{token}'\n\n\
             Root Token: {token}\n\
             The aws/ secrets engine is mounted. Next, connect it to AWS (the secret from the environment, not the command line):\n\n\
             \x20   IAMLEASE_ROOT_SECRET_KEY=… iamlease config root --access-key AKIA… --region us-east-1\n\n\
             or `iamlease setup aws` for a least-privilege role to assume instead of stored keys.\n"
        )),
        (Some(_), None, Some(path)) => Some(format!("Root token written to {}", path.display())),
        (Some(token), None, None) => Some(format!(
            "First start: a root token was created. It is shown only this once; store it safely.\n\nRoot Token: {token}\n"
        )),
        (None, _, _) if app.awaiting_init => Some(
            "Not initialised yet: the first PUT /v1/sys/init (`vault operator init`) creates the root token and answers it once.".to_owned(),
        ),
        (None, _, _) => None,
    };
    if let Some(banner) = banner {
        // The server runs whether or not anyone reads this, but a root token shown nowhere is
        // worth a warning.
        match writeln!(out, "{banner}").and_then(|()| out.flush()) {
            Err(e) => tracing::warn!(error = %e, "cannot print the start-up message"),
            Ok(()) if out.closed() => {
                tracing::warn!("the start-up message was not shown: standard output is closed")
            }
            Ok(()) => {}
        }
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--help` shows an example on every command, so nobody has to guess the syntax.
    #[test]
    fn every_command_has_an_example_in_its_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                let help = sub
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if !help.starts_with("Example") {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "iamlease", &mut missing);
        assert!(missing.is_empty(), "no example in --help: {missing:?}");
    }
}
