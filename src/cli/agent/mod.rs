//! `iamlease agent ROLE`: credentials that refresh themselves. Issues a credential, serves it
//! on loopback as the AWS container-credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI`
//! with `AWS_CONTAINER_AUTHORIZATION_TOKEN`, which every AWS SDK and the AWS CLI read), keeps it
//! working (`keeper.rs`: renew, then replace before it expires), and revokes what it holds on
//! SIGTERM or SIGINT. `exec --agent` runs the same agent for the life of a command.

mod endpoint;
mod keeper;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use time::OffsetDateTime;
use tokio::sync::watch;

use super::creds::shell_quote;
use super::issue::{IssueArgs, issue, revoke};
use super::output::{Out, note};
use super::{Client, UsageError};

/// The variables that make an SDK use the agent.
pub const URI_VAR: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
pub const TOKEN_VAR: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";

/// Variables that would make an SDK take other credentials before the agent's (static keys
/// and profiles come first in every SDK's chain; a relative URI or token file win over ours).
pub const SHADOWING: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AgentFormat {
    /// `NAME=value` lines.
    Text,
    /// `export NAME=value` lines (and `unset` of variables that would take precedence), for `eval`.
    Env,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub issue: IssueArgs,
    /// Where to serve the credentials: a loopback address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    #[arg(long, value_enum, default_value_t = AgentFormat::Text)]
    pub format: AgentFormat,
}

/// The credential being served. Its `Debug` leaves the secrets out.
#[derive(Clone)]
pub struct Credential {
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
    expires: OffsetDateTime,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access_key", &self.access_key)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// A running agent: the endpoint and the task that keeps its credential fresh.
pub struct Agent {
    uri: String,
    token: String,
    region: Option<String>,
    client: Client,
    stop: watch::Sender<bool>,
    keeper: tokio::task::JoinHandle<Vec<String>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Agent {
    /// Binds `listen` (loopback only), issues the first credential (waiting until AWS accepts
    /// it) and starts serving it.
    pub async fn start(
        client: &Client,
        args: &IssueArgs,
        listen: SocketAddr,
    ) -> anyhow::Result<Agent> {
        if !listen.ip().is_loopback() {
            return Err(UsageError(format!(
                "--listen {listen}: the agent serves credentials on a loopback address only (127.0.0.1 or [::1])"
            ))
            .into());
        }
        let token = random_token()?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let local = listener.local_addr().context("the listener's address")?;
        let asked_at = OffsetDateTime::now_utc();
        let first = issue(client, args, true).await?;
        let (serving, current) = watch::channel(Arc::new(Credential::from(&first)));
        let (stop, stopped) = watch::channel(false);
        let mut server_stop = stopped.clone();
        let server = tokio::spawn(endpoint::serve(
            listener,
            token.clone(),
            current,
            async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            },
        ));
        let keeper = keeper::Keeper::new(client.clone(), args.clone(), &first, asked_at, serving);
        let keeper = tokio::spawn(keeper.run(stopped));
        note!(
            "iamlease agent: serving lease {} on {local}; it is renewed, and replaced before it expires",
            first.lease_id
        );
        Ok(Agent {
            uri: format!("http://{local}{}", endpoint::PATH),
            token,
            region: first.region.clone(),
            client: client.clone(),
            stop,
            keeper,
            server,
        })
    }

    /// The two variables an SDK needs, in the order they are printed.
    pub fn variables(&self) -> [(&'static str, &str); 2] {
        [(URI_VAR, &self.uri), (TOKEN_VAR, &self.token)]
    }

    /// The mount's region, as the first credential's answer gave it.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// Stops serving and revokes every lease the agent still holds.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let held = self
            .keeper
            .await
            .context("the agent's renewal task failed")?;
        let _ = self.server.await;
        let mut failed = None;
        for lease_id in held {
            if let Err(e) = revoke(&self.client, &lease_id).await {
                note!("Error: {e:#}");
                failed = Some(e);
            }
        }
        match failed {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// `iamlease agent`: start, print the variables, serve until SIGTERM or SIGINT, revoke.
pub async fn agent(client: &Client, args: AgentArgs, out: &mut Out) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Listening before anything is issued, so a signal during the issue still ends in a revoke.
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let agent = Agent::start(client, &args.issue, args.listen).await?;
    let mut text = Vec::new();
    if args.format == AgentFormat::Env {
        writeln!(text, "unset {}", SHADOWING.join(" "))?;
    }
    for (name, value) in agent.variables() {
        match args.format {
            AgentFormat::Text => writeln!(text, "{name}={value}")?,
            AgentFormat::Env => writeln!(text, "export {name}={}", shell_quote(value))?,
        }
    }
    if args.format == AgentFormat::Env {
        writeln!(text, "export IAMLEASE_AGENT_PID={}", std::process::id())?;
    }
    // Then standard output is let go, so `eval "$(iamlease agent dev --format env &)"` has
    // its variables while the agent runs on.
    let shown = out
        .write_all(&text)
        .and_then(|()| out.let_go())
        .context("printing the agent's variables");
    if let Err(e) = shown {
        agent.stop().await?;
        return Err(e);
    }
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    note!("iamlease agent: stopping; revoking its leases");
    agent.stop().await
}

/// 32 bytes from the system's CSPRNG, hex: the value SDKs send as `Authorization`.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system's random number generator failed"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_differ() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn the_credential_debug_hides_the_secrets() {
        let c = Credential {
            access_key: "AKIAEXAMPLE".into(),
            secret_key: "very-secret".into(),
            session_token: Some("session-secret".into()),
            expires: OffsetDateTime::UNIX_EPOCH,
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
