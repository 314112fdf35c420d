//! `iamlease exec ROLE -- COMMAND…`: issues a credential, runs COMMAND with it in the
//! environment, forwards signals to it, optionally renews the lease while it runs, and revokes
//! the lease when it ends, however it ends. With `--agent`, COMMAND gets an agent's endpoint
//! instead of keys (`agent/`), so its credentials renew and are replaced while it runs, and the
//! agent's leases are revoked when it ends. Exits with COMMAND's status (128+N if a signal N
//! killed it). If exec itself is killed with SIGKILL the lease is not revoked here, but it
//! still expires on the server at its TTL.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH};
use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::low_level::siginfo::Cause;

use super::Client;
use super::agent::{Agent, SHADOWING};
use super::issue::{IssueArgs, Issued, issue, revoke};
use super::output::note;

/// Signals passed on to COMMAND.
const FORWARDED: &[i32] = &[SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH];

/// Credential variables a parent shell may hold that must not reach COMMAND alongside ours (a
/// stale session token would spoil an IAM user's key).
const STALE: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
];

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub issue: IssueArgs,
    /// Renew the lease while COMMAND runs (up to the role's max_ttl).
    #[arg(long)]
    pub renew: bool,
    /// Serve COMMAND's credentials from an agent (AWS_CONTAINER_CREDENTIALS_FULL_URI and
    /// AWS_CONTAINER_AUTHORIZATION_TOKEN instead of keys): renewed and replaced while it runs,
    /// past the role's max_ttl.
    #[arg(long, conflicts_with_all = ["renew", "no_wait"])]
    pub agent: bool,
    /// Do not wait for AWS to accept a new IAM user's key before starting COMMAND.
    #[arg(long)]
    pub no_wait: bool,
    /// AWS_REGION for COMMAND [default: AWS_REGION from the environment, else the mount's region]
    #[arg(long)]
    pub region: Option<String>,
    /// The command to run, after `--`.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// COMMAND ended with a status other than success: `main` exits with it, printing nothing.
#[derive(Debug, thiserror::Error)]
#[error("the command exited with status {0}")]
pub struct CommandExited(pub u8);

pub async fn exec(client: &Client, args: ExecArgs) -> anyhow::Result<()> {
    // Signals are ours from here on, so an interrupt while the credential is being issued
    // cannot kill us before we can revoke it.
    let mut signals = SignalsInfo::<WithOrigin>::new(FORWARDED)
        .context("cannot listen for signals to forward")?;
    let signal_handle = signals.handle();
    let (sig_tx, mut sig_rx) = tokio::sync::mpsc::unbounded_channel();
    let listener = std::thread::spawn(move || {
        for origin in signals.forever() {
            if sig_tx.send(origin).is_err() {
                break;
            }
        }
    });

    let source = if args.agent {
        let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        Agent::start(client, &args.issue, loopback)
            .await
            .map(Source::Agent)
    } else {
        issue(client, &args.issue, !args.no_wait)
            .await
            .map(Source::Keys)
    };
    let outcome = match source {
        Ok(source) => run_and_revoke(client, &args, source, &mut sig_rx).await,
        Err(e) => Err(e),
    };
    signal_handle.close();
    let _ = listener.join();
    outcome
}

/// Where COMMAND's credentials come from.
enum Source {
    /// One credential, in the environment.
    Keys(Issued),
    /// An agent's endpoint, in the environment.
    Agent(Agent),
}

impl Source {
    /// Revokes the lease, or every lease the agent holds.
    async fn end(self, client: &Client) -> anyhow::Result<()> {
        match self {
            Source::Keys(issued) => revoke(client, &issued.lease_id).await,
            Source::Agent(agent) => agent.stop().await,
        }
    }
}

async fn run_and_revoke(
    client: &Client,
    args: &ExecArgs,
    source: Source,
    signals: &mut tokio::sync::mpsc::UnboundedReceiver<
        signal_hook::iterator::exfiltrator::origin::Origin,
    >,
) -> anyhow::Result<()> {
    // Interrupted while the server was issuing: do not start COMMAND at all. (A terminal
    // resize is no reason to stop.)
    while let Ok(origin) = signals.try_recv() {
        if origin.signal != SIGWINCH {
            source.end(client).await?;
            return Err(CommandExited(128u8.saturating_add(origin.signal as u8)).into());
        }
    }
    let status = run(client, args, &source, signals).await;
    let revoked = source.end(client).await;
    let status = status?;
    match revoked {
        Ok(()) if status == 0 => Ok(()),
        Ok(()) => Err(CommandExited(status).into()),
        Err(e) => {
            note!("Error: {e:#}");
            Err(CommandExited(if status == 0 { 1 } else { status }).into())
        }
    }
}

/// Runs COMMAND to its end; its exit status as a shell reports it.
async fn run(
    client: &Client,
    args: &ExecArgs,
    source: &Source,
    signals: &mut tokio::sync::mpsc::UnboundedReceiver<
        signal_hook::iterator::exfiltrator::origin::Origin,
    >,
) -> anyhow::Result<u8> {
    let program = &args.command[0];
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&args.command[1..]);
    for name in STALE {
        cmd.env_remove(name);
    }
    let region_from_env = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    let region = args.region.clone().or(region_from_env);
    match source {
        Source::Keys(issued) => {
            for (name, value) in issued.env_vars(region.as_deref())? {
                // The AWS CLI v1 and boto3 read only AWS_DEFAULT_REGION.
                if name == "AWS_REGION" {
                    cmd.env("AWS_DEFAULT_REGION", &value);
                }
                // With --renew the expiry moves, and SDKs that read this variable would stop
                // using the credential at the first one.
                if args.renew && name == issued.expiration_var() {
                    continue;
                }
                cmd.env(name, value);
            }
        }
        Source::Agent(agent) => {
            // Anything that would come before the container provider in an SDK's chain goes.
            for name in SHADOWING {
                cmd.env_remove(name);
            }
            for (name, value) in agent.variables() {
                cmd.env(name, value);
            }
            if let Some(region) = region.as_deref().or(agent.region()) {
                cmd.env("AWS_REGION", region);
                cmd.env("AWS_DEFAULT_REGION", region);
            }
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let (code, why) = match e.kind() {
                std::io::ErrorKind::NotFound => (127, "not found (is it on PATH?)".to_owned()),
                std::io::ErrorKind::PermissionDenied => (126, "permission denied".to_owned()),
                _ => (126, e.to_string()),
            };
            note!("Error: cannot run {program:?}: {why}");
            return Ok(code);
        }
    };
    let pid = child
        .id()
        .map(|id| Pid::from_raw(id as i32))
        .context("the command has no process id")?;

    let mut renewal = match source {
        Source::Keys(issued) if args.renew => {
            Some(tokio::spawn(keep_renewing(client.clone(), issued.clone())))
        }
        _ => None,
    };
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.context("waiting for the command")?,
            Some(origin) = signals.recv() => {
                // A terminal's Ctrl-C (or Ctrl-\, a resize) comes from the kernel to the whole
                // foreground process group, COMMAND included; passing it on again would make a
                // program like terraform see two interrupts and stop without cleaning up.
                if origin.cause != Cause::Kernel
                    && let Ok(sig) = Signal::try_from(origin.signal)
                {
                    let _ = kill(pid, sig);
                }
            }
        }
    };
    if let Some(task) = renewal.take() {
        task.abort();
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.saturating_add(sig as u8),
        _ => 1,
    })
}

/// `--renew`: renews the lease when half of what is left has passed, until its
/// maximum is reached; then says when the credential will stop working.
async fn keep_renewing(client: Client, issued: Issued) {
    let mut left = issued.lease_duration.max(1);
    loop {
        tokio::time::sleep(Duration::from_millis((left * 500).max(500) as u64)).await;
        let answer = client
            .request(
                "PUT",
                "sys/leases/renew",
                Some(json!({"lease_id": issued.lease_id, "increment": issued.lease_duration})),
            )
            .await;
        match answer {
            Ok(resp) => {
                let new_left = resp["lease_duration"].as_i64().unwrap_or(0);
                let capped = resp["warnings"].as_array().is_some_and(|w| !w.is_empty());
                if capped || new_left <= left / 2 {
                    note!(
                        "iamlease: lease {} reached its max TTL; the credential stops working in {new_left}s",
                        issued.lease_id
                    );
                    return;
                }
                left = new_left;
            }
            Err(e) => {
                note!(
                    "iamlease: renewing lease {} failed: {e:#}; it expires in about {}s",
                    issued.lease_id,
                    left / 2
                );
                return;
            }
        }
    }
}
