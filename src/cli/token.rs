//! `iamlease token create|lookup|revoke`.

use std::io::Write;

use clap::Subcommand;
use serde_json::{Map, json};

use super::output::{Out, print_rows, print_table, text};
use super::{Client, ReadFormat, compact};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token: `iamlease token create --policy dev --ttl 8h --display-name ci`
    #[command(
        after_help = "Example:\n  iamlease token create --policy dev --ttl 8h --display-name ci"
    )]
    Create {
        /// A policy for the token; repeat for several.
        #[arg(long = "policy")]
        policies: Vec<String>,
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long, value_enum, default_value_t = ReadFormat::Table)]
        format: ReadFormat,
    },
    /// Look up the current token, or another by its accessor.
    #[command(
        after_help = "Examples:\n  iamlease token lookup\n  iamlease token lookup --accessor <accessor>"
    )]
    Lookup {
        #[arg(long)]
        accessor: Option<String>,
    },
    /// Revoke the current token, or another by its accessor.
    #[command(after_help = "Example:\n  iamlease token revoke --accessor <accessor>")]
    Revoke {
        #[arg(long)]
        accessor: Option<String>,
    },
}

pub async fn token(client: &Client, cmd: TokenCommand, out: &mut Out) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            policies,
            ttl,
            display_name,
            format,
        } => {
            let body = compact(Map::from_iter([
                ("policies".into(), json!(policies)),
                ("ttl".into(), json!(ttl)),
                ("display_name".into(), json!(display_name)),
            ]));
            let resp = client
                .request("POST", "auth/token/create", Some(body))
                .await?;
            match format {
                ReadFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&resp)?)?,
                ReadFormat::Table => {
                    let a = &resp["auth"];
                    print_rows(
                        out,
                        &[
                            vec!["Key".to_owned(), "Value".to_owned()],
                            vec!["token".to_owned(), text(&a["client_token"])],
                            vec!["token_accessor".to_owned(), text(&a["accessor"])],
                            vec![
                                "token_duration".to_owned(),
                                crate::duration_text(a["lease_duration"].as_i64().unwrap_or(0)),
                            ],
                            vec!["token_policies".to_owned(), text(&a["policies"])],
                        ],
                    )?;
                }
            }
        }
        TokenCommand::Lookup { accessor } => {
            let resp = match accessor {
                Some(a) => {
                    client
                        .request(
                            "POST",
                            "auth/token/lookup-accessor",
                            Some(json!({"accessor": a})),
                        )
                        .await?
                }
                None => {
                    client
                        .request("GET", "auth/token/lookup-self", None)
                        .await?
                }
            };
            print_table(out, &resp["data"])?;
        }
        TokenCommand::Revoke { accessor } => {
            match accessor {
                Some(a) => {
                    client
                        .request(
                            "POST",
                            "auth/token/revoke-accessor",
                            Some(json!({"accessor": a})),
                        )
                        .await?
                }
                None => {
                    client
                        .request("POST", "auth/token/revoke-self", None)
                        .await?
                }
            };
            writeln!(out, "Success! Revoked token (if it existed)")?;
        }
    }
    Ok(())
}
