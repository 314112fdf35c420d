//! `iamlease policy write|read|list|delete`: ACL policies (Vault syntax).

use anyhow::Context;
use std::io::Write;

use clap::Subcommand;
use serde_json::json;

use super::Client;
use super::output::{Out, print_keys, text};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Write an ACL policy from a file (HCL or JSON; `-` reads standard input).
    #[command(
        after_help = "Examples:\n  iamlease policy write dev dev.hcl\n  echo 'path \"aws/creds/dev\" { capabilities = [\"read\"] }' | iamlease policy write dev -"
    )]
    Write { name: String, file: String },
    #[command(after_help = "Example:\n  iamlease policy read dev")]
    Read { name: String },
    #[command(after_help = "Example:\n  iamlease policy list")]
    List,
    #[command(after_help = "Example:\n  iamlease policy delete dev")]
    Delete { name: String },
}

pub async fn policy(client: &Client, cmd: PolicyCommand, out: &mut Out) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Write { name, file } => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin())
                    .context("reading the policy from standard input")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading the policy file {file}"))?
            };
            client
                .request(
                    "PUT",
                    &format!("sys/policies/acl/{name}"),
                    Some(json!({"policy": text})),
                )
                .await?;
            writeln!(out, "Success! Uploaded policy: {name}")?;
        }
        PolicyCommand::Read { name } => {
            let resp = client
                .request("GET", &format!("sys/policies/acl/{name}"), None)
                .await?;
            writeln!(out, "{}", text(&resp["data"]["policy"]))?;
        }
        PolicyCommand::List => {
            print_keys(out, client.request("LIST", "sys/policies/acl", None).await)?
        }
        PolicyCommand::Delete { name } => {
            client
                .request("DELETE", &format!("sys/policies/acl/{name}"), None)
                .await?;
            writeln!(out, "Success! Deleted policy: {name}")?;
        }
    }
    Ok(())
}
