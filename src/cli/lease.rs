//! `iamlease lease list|lookup|renew|revoke|revoke-prefix|revoke-force`.

use std::io::Write;

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Map, json};

use super::output::{Out, print_keys, print_rows, print_table, print_warnings, text};
use super::{Client, ReadFormat, ServerSaidNo, UsageError, cache, compact};

#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// List leases under a prefix, one level at a time as Vault does, each as its whole id (ready
    /// for `lookup`, `renew`, `revoke`): `iamlease lease list aws/creds/dev/`
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
            // Whole ids, not Vault's relative keys: what is printed can be pasted into
            // `lease lookup|renew|revoke` as it is.
            let dir = match prefix.trim_matches('/') {
                "" => String::new(),
                p => format!("{p}/"),
            };
            let resp = client.request("LIST", &path, None).await.map(|mut v| {
                if let Some(keys) = v["data"]["keys"].as_array_mut() {
                    for k in keys.iter_mut() {
                        *k = json!(format!("{dir}{}", text(k)));
                    }
                }
                v
            });
            print_keys(out, resp)?;
        }
        LeaseCommand::Lookup { lease_id, format } => {
            let resp = client
                .request(
                    "PUT",
                    "sys/leases/lookup",
                    Some(json!({"lease_id": lease_id})),
                )
                .await
                .map_err(|e| bare_id_hint(e, &lease_id))?;
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
                .await
                .map_err(|e| bare_id_hint(e, &lease_id))?;
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
            // The API answers 204 for an unknown lease, as Vault does; a person is told.
            // Another refusal of the lookup (e.g. no `lookup` right) leaves it to revoke.
            if let Err(e) = client
                .request(
                    "PUT",
                    "sys/leases/lookup",
                    Some(json!({"lease_id": lease_id})),
                )
                .await
                && not_found(&e)
            {
                cache::forget(client.address(), &lease_id, false);
                let hint = bare_id_hint(e, &lease_id).to_string();
                writeln!(out, "Nothing to revoke: {hint}")?;
                return Ok(());
            }
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

fn not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ServerSaidNo>()
        .is_some_and(|no| no.status == reqwest::StatusCode::NOT_FOUND)
}

/// A 404 for a lease: says it may be revoked already, and, for an id without its path (the
/// last segment alone), what a whole id looks like.
fn bare_id_hint(e: anyhow::Error, lease_id: &str) -> anyhow::Error {
    if !not_found(&e) {
        return e;
    }
    let message = if lease_id.trim_matches('/').contains('/') {
        format!("lease {lease_id} does not exist: already revoked, expired, or never existed")
    } else {
        format!(
            "lease {lease_id} does not exist: a lease id is its whole path, such as aws/creds/dev/{lease_id}; `iamlease lease list aws/creds/dev/` prints whole ids"
        )
    };
    ServerSaidNo {
        status: reqwest::StatusCode::NOT_FOUND,
        message,
    }
    .into()
}
