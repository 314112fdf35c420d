//! `iamlease lease list|lookup|renew|revoke|revoke-prefix|revoke-force`.

use std::io::Write;

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Map, json};

use super::output::{Out, print_keys, print_rows, print_table, print_warnings, text};
use super::{Client, ReadFormat, UsageError, cache, compact};

#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// List leases under a prefix, one level at a time as Vault does: `iamlease lease list aws/creds/dev/`
    #[command(
        after_help = "Examples:\n  iamlease lease list aws/creds/dev/\n  iamlease lease list aws/creds/dev/ --state failed"
    )]
    List {
        #[arg(default_value = "")]
        prefix: String,
        /// Only leases in this state (e.g. `failed`).
        #[arg(long)]
        state: Option<String>,
    },
    /// Show a lease: expiry, state, last revocation error.
    #[command(after_help = "Example:\n  iamlease lease lookup aws/creds/dev/<id>")]
    Lookup {
        lease_id: String,
        #[arg(long, value_enum, default_value_t = ReadFormat::Table)]
        format: ReadFormat,
    },
    /// Extend a lease (up to its maximum): `iamlease lease renew ID --increment 1h`
    #[command(after_help = "Example:\n  iamlease lease renew aws/creds/dev/<id> --increment 1h")]
    Renew {
        lease_id: String,
        #[arg(long)]
        increment: Option<String>,
    },
    /// Revoke a lease now; returns when AWS has deleted everything.
    #[command(after_help = "Example:\n  iamlease lease revoke aws/creds/dev/<id>")]
    Revoke { lease_id: String },
    /// Revoke every lease whose id starts with PREFIX: `iamlease lease revoke-prefix aws/creds/dev/`
    #[command(after_help = "Example:\n  iamlease lease revoke-prefix aws/creds/dev/")]
    RevokePrefix { prefix: String },
    /// Forget every lease under PREFIX, even when AWS cannot be cleaned up (needs sudo). Each
    /// user gets one best-effort delete first; `iamlease sweep` finds any left behind.
    #[command(after_help = "Example:\n  iamlease lease revoke-force aws/creds/dev/")]
    RevokeForce { prefix: String },
}

pub async fn lease(client: &Client, cmd: LeaseCommand, out: &mut Out) -> anyhow::Result<()> {
    match cmd {
        LeaseCommand::List { prefix, state } => {
            let path = match &state {
                Some(s) => format!("sys/leases/lookup/{prefix}?state={s}"),
                None => format!("sys/leases/lookup/{prefix}"),
            };
            print_keys(out, client.request("LIST", &path, None).await)?;
        }
        LeaseCommand::Lookup { lease_id, format } => {
            let resp = client
                .request(
                    "PUT",
                    "sys/leases/lookup",
                    Some(json!({"lease_id": lease_id})),
                )
                .await?;
            match format {
                ReadFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&resp)?)?,
                ReadFormat::Table => print_table(out, &resp["data"])?,
            }
        }
        LeaseCommand::Renew {
            lease_id,
            increment,
        } => {
            let body = compact(Map::from_iter([
                ("lease_id".into(), json!(lease_id)),
                ("increment".into(), json!(increment)),
            ]));
            let resp = client
                .request("PUT", "sys/leases/renew", Some(body))
                .await?;
            print_warnings(&resp);
            print_rows(
                out,
                &[
                    vec!["Key".to_owned(), "Value".to_owned()],
                    vec!["lease_id".to_owned(), text(&resp["lease_id"])],
                    vec![
                        "lease_duration".to_owned(),
                        crate::duration_text(resp["lease_duration"].as_i64().unwrap_or(0)),
                    ],
                    vec!["lease_renewable".to_owned(), text(&resp["renewable"])],
                ],
            )?;
        }
        LeaseCommand::Revoke { lease_id } => {
            client
                .request(
                    "PUT",
                    "sys/leases/revoke",
                    Some(json!({"lease_id": lease_id})),
                )
                .await?;
            cache::forget(client.address(), &lease_id, false);
            writeln!(out, "Success! Revoked lease: {lease_id}")?;
        }
        LeaseCommand::RevokePrefix { prefix } => {
            if prefix.trim().is_empty() {
                bail!(UsageError(
                    "revoke-prefix needs a non-empty prefix such as aws/creds/dev/".into()
                ));
            }
            client
                .request("PUT", &format!("sys/leases/revoke-prefix/{prefix}"), None)
                .await?;
            cache::forget(client.address(), &prefix, true);
            writeln!(out, "Success! Revoked every lease under: {prefix}")?;
        }
        LeaseCommand::RevokeForce { prefix } => {
            if prefix.trim().is_empty() {
                bail!(UsageError(
                    "revoke-force needs a non-empty prefix such as aws/creds/dev/".into()
                ));
            }
            client
                .request("PUT", &format!("sys/leases/revoke-force/{prefix}"), None)
                .await?;
            writeln!(
                out,
                "Success! Forgot every lease under: {prefix}. Run `iamlease sweep` once AWS is reachable to delete any user left behind."
            )?;
        }
    }
    Ok(())
}
