//! The client commands: each parses its arguments into a request, sends it to the server over
//! the Vault-compatible API, and prints the answer for a person or a script. One module per
//! command; `issue` is what `creds`, `exec` and `agent` share, `client` the HTTP client.

mod agent;
mod audit;
mod cache;
mod client;
mod config;
mod creds;
mod exec;
mod issue;
mod lease;
mod login;
mod mount;
mod oidc;
mod output;
mod policy;
mod role;
mod setup;
mod static_role;
mod sweep;
mod token;
mod whois;

pub use agent::{AgentArgs, agent};
pub use audit::{AuditCommand, audit};
pub use client::{Client, ServerSaidNo};
pub use config::{ConfigCommand, config};
pub use creds::{CredsArgs, creds};
pub use exec::{CommandExited, ExecArgs, exec};
pub use lease::{LeaseCommand, lease};
pub use login::{LoginArgs, login, stored_token};
pub use mount::{MountCommand, mount};
pub(crate) use output::note;
pub use output::{Out, write_note};
pub use policy::{PolicyCommand, policy};
pub use role::{RoleCommand, role};
pub use setup::{SetupCommand, setup};
pub use static_role::{StaticCredsArgs, StaticRoleCommand, static_creds, static_role};
pub use sweep::{SweepArgs, sweep};
pub use token::{TokenCommand, token};
pub use whois::{WhoisArgs, whois};

use clap::ValueEnum;
use serde_json::{Map, Value};

/// A mistake in how the command was called, found after parsing: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReadFormat {
    Table,
    Json,
}

fn compact(map: Map<String, Value>) -> Value {
    Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
}
