//! `iamlease audit hash VALUE`: the audit log's hash of a value, from the server (which holds
//! the audit key), to look a credential or token up in the audit log.

use std::io::Write;

use clap::Subcommand;
use serde_json::json;

use super::{Client, Out};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print `hmac-sha256:<hex>` of VALUE as the audit log writes it (`-` reads standard input).
    #[command(
        after_help = "Example:\n  iamlease audit hash - <<<\"$AWS_SECRET_ACCESS_KEY\" | xargs -I{} grep -c {} audit.jsonl"
    )]
    Hash { value: String },
}

pub async fn audit(client: &Client, cmd: AuditCommand, out: &mut Out) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Hash { value } => {
            let value = if value == "-" {
                std::io::read_to_string(std::io::stdin())?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned()
            } else {
                value
            };
            let resp = client
                .request("POST", "sys/audit-hash", Some(json!({"input": value})))
                .await?;
            writeln!(out, "{}", resp["data"]["hash"].as_str().unwrap_or_default())?;
        }
    }
    Ok(())
}
