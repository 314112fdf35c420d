//! `iamlease mount enable|list|disable`: secrets-engine mounts (`sys/mounts`).

use std::io::Write;

use clap::Subcommand;
use serde_json::{Map, Value, json};

use super::output::{Out, print_rows, text};
use super::{Client, compact};

#[derive(Debug, Subcommand)]
pub enum MountCommand {
    /// Mount the AWS secrets engine: `iamlease mount enable aws --path aws-prod`
    #[command(
        after_help = "Example:\n  iamlease mount enable aws --path aws-prod --default-lease-ttl 1h"
    )]
    Enable {
        /// Engine type; only `aws` exists.
        #[arg(value_parser = ["aws"])]
        engine: String,
        #[arg(long, default_value = "aws")]
        path: String,
        #[arg(long)]
        default_lease_ttl: Option<String>,
        #[arg(long)]
        max_lease_ttl: Option<String>,
    },
    /// List mounts.
    #[command(after_help = "Example:\n  iamlease mount list")]
    List,
    /// Revoke every lease of a mount, then remove it.
    #[command(after_help = "Example:\n  iamlease mount disable aws-old")]
    Disable { path: String },
}

pub async fn mount(client: &Client, cmd: MountCommand, out: &mut Out) -> anyhow::Result<()> {
    match cmd {
        MountCommand::Enable {
            engine,
            path,
            default_lease_ttl,
            max_lease_ttl,
        } => {
            let config = compact(Map::from_iter([
                ("default_lease_ttl".into(), json!(default_lease_ttl)),
                ("max_lease_ttl".into(), json!(max_lease_ttl)),
            ]));
            client
                .request(
                    "POST",
                    &format!("sys/mounts/{path}"),
                    Some(json!({"type": engine, "config": config})),
                )
                .await?;
            writeln!(
                out,
                "Success! Enabled the {engine} secrets engine at: {path}/"
            )?;
        }
        MountCommand::List => {
            let resp = client.request("GET", "sys/mounts", None).await?;
            let mut rows = vec![vec![
                "Path".to_owned(),
                "Type".to_owned(),
                "Description".to_owned(),
            ]];
            if let Some(data) = resp.get("data").and_then(Value::as_object) {
                for (path, m) in data {
                    rows.push(vec![
                        path.clone(),
                        text(&m["type"]),
                        text(&m["description"]),
                    ]);
                }
            }
            print_rows(out, &rows)?;
        }
        MountCommand::Disable { path } => {
            client
                .request("DELETE", &format!("sys/mounts/{path}"), None)
                .await?;
            writeln!(
                out,
                "Success! Disabled the secrets engine (if it existed) at: {path}/"
            )?;
        }
    }
    Ok(())
}
