//! `iamlease config root|check|rotate-root|read-root|lease`: how a mount reaches AWS (checked
//! against AWS before it says so), and its lease defaults.

use std::io::Write;

use anyhow::anyhow;
use clap::Subcommand;
use serde_json::{Map, json};

use super::output::{Out, print_table, print_warnings, text};
use super::{Client, ServerSaidNo, compact};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// How the mount reaches AWS: `iamlease config root --access-key AKIA… --secret-key … --region us-east-1`
    #[command(
        after_help = "Examples:\n  IAMLEASE_ROOT_SECRET_KEY=… iamlease config root --access-key AKIA… --region us-east-1\n  iamlease config root --region us-east-1 --role-arn arn:aws:iam::123456789012:role/iamlease --external-id 7f3a"
    )]
    Root {
        #[arg(long, default_value = "aws")]
        mount: String,
        #[arg(long)]
        access_key: Option<String>,
        /// Prefer the IAMLEASE_ROOT_SECRET_KEY variable: arguments are visible to other users.
        #[arg(long, env = "IAMLEASE_ROOT_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        iam_endpoint: Option<String>,
        #[arg(long)]
        sts_endpoint: Option<String>,
        #[arg(long)]
        max_retries: Option<i64>,
        /// `standard` or `adaptive` (also slows down while AWS throttles).
        #[arg(long)]
        retry_mode: Option<String>,
        #[arg(long)]
        role_arn: Option<String>,
        #[arg(long)]
        external_id: Option<String>,
        /// Do not check the connection with AWS after writing (GetCallerIdentity).
        #[arg(long)]
        no_verify: bool,
    },
    /// Check that the mount's root config reaches AWS, and as whom (GetCallerIdentity).
    #[command(after_help = "Example:
  iamlease config check --mount aws")]
    Check {
        #[arg(long, default_value = "aws")]
        mount: String,
    },
    /// Replace the root config's access key with a new one and delete the old one in AWS:
    /// `iamlease config rotate-root --mount aws`
    #[command(after_help = "Example:\n  iamlease config rotate-root --mount aws")]
    RotateRoot {
        #[arg(long, default_value = "aws")]
        mount: String,
    },
    /// Show the mount's root config (never the secret key).
    #[command(after_help = "Example:\n  iamlease config read-root --mount aws")]
    ReadRoot {
        #[arg(long, default_value = "aws")]
        mount: String,
    },
    /// Default and maximum lease TTLs for the mount: `iamlease config lease --lease 1h --lease-max 24h`
    #[command(
        after_help = "Examples:\n  iamlease config lease --lease 1h --lease-max 24h\n  iamlease config lease            # show them"
    )]
    Lease {
        #[arg(long, default_value = "aws")]
        mount: String,
        #[arg(long)]
        lease: Option<String>,
        #[arg(long)]
        lease_max: Option<String>,
    },
}

pub async fn config(client: &Client, cmd: ConfigCommand, out: &mut Out) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Root {
            mount,
            access_key,
            secret_key,
            region,
            iam_endpoint,
            sts_endpoint,
            max_retries,
            retry_mode,
            role_arn,
            external_id,
            no_verify,
        } => {
            let body = compact(Map::from_iter([
                ("access_key".into(), json!(access_key)),
                ("secret_key".into(), json!(secret_key)),
                ("region".into(), json!(region)),
                ("iam_endpoint".into(), json!(iam_endpoint)),
                ("sts_endpoint".into(), json!(sts_endpoint)),
                ("max_retries".into(), json!(max_retries)),
                ("retry_mode".into(), json!(retry_mode)),
                ("role_arn".into(), json!(role_arn)),
                ("external_id".into(), json!(external_id)),
            ]));
            let resp = client
                .request("POST", &format!("{mount}/config/root"), Some(body))
                .await?;
            print_warnings(&resp);
            if no_verify {
                writeln!(
                    out,
                    "Success! Data written to: {mount}/config/root (not checked with AWS)"
                )?;
                return Ok(());
            }
            match client
                .request("POST", &format!("{mount}/config/check"), None)
                .await
            {
                Ok(identity) => writeln!(
                    out,
                    "Success! Data written to: {mount}/config/root; AWS accepts it as {} (account {})",
                    text(&identity["data"]["arn"]),
                    text(&identity["data"]["account"])
                )?,
                Err(e) => {
                    let why = match e.downcast_ref::<ServerSaidNo>() {
                        Some(no) => no.message.trim_end_matches('.').to_owned(),
                        None => format!("{e:#}"),
                    };
                    return Err(anyhow!(
                        "{mount}/config/root was written, but AWS does not accept it: {why}. Correct the keys (or region, endpoints, role_arn) and write it again; `iamlease config check --mount {mount}` tries again, --no-verify skips the check"
                    ));
                }
            }
        }
        ConfigCommand::Check { mount } => {
            let identity = client
                .request("POST", &format!("{mount}/config/check"), None)
                .await?;
            writeln!(
                out,
                "Success! {mount}/ reaches AWS as {} (account {})",
                text(&identity["data"]["arn"]),
                text(&identity["data"]["account"])
            )?;
        }
        ConfigCommand::RotateRoot { mount } => {
            let resp = client
                .request("POST", &format!("{mount}/config/rotate-root"), None)
                .await?;
            print_warnings(&resp);
            writeln!(
                out,
                "Success! Rotated the root access key of {mount}/: now {}",
                text(&resp["data"]["access_key"])
            )?;
        }
        ConfigCommand::ReadRoot { mount } => {
            let resp = client
                .request("GET", &format!("{mount}/config/root"), None)
                .await?;
            print_table(out, &resp["data"])?;
        }
        ConfigCommand::Lease {
            mount,
            lease,
            lease_max,
        } => {
            if lease.is_none() && lease_max.is_none() {
                let resp = client
                    .request("GET", &format!("{mount}/config/lease"), None)
                    .await?;
                print_table(out, &resp["data"])?;
            } else {
                let body = compact(Map::from_iter([
                    ("lease".into(), json!(lease)),
                    ("lease_max".into(), json!(lease_max)),
                ]));
                client
                    .request("POST", &format!("{mount}/config/lease"), Some(body))
                    .await?;
                writeln!(out, "Success! Data written to: {mount}/config/lease")?;
            }
        }
    }
    Ok(())
}
