//! `iamlease whois AKIA…`: who held an access key — the lease, the role, the requester and
//! their token's metadata, and when the key was issued, expires and was revoked. Without
//! `--mount` every `aws` mount is asked, as the id alone does not say which issued it.

use std::io::Write;

use anyhow::bail;
use clap::Args;
use reqwest::StatusCode;
use serde_json::Value;

use super::output::{Out, print_rows, text};
use super::{Client, ReadFormat, ServerSaidNo, UsageError};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  iamlease whois AKIAIOSFODNN7EXAMPLE\n  iamlease whois ASIAIOSFODNN7EXAMPLE --mount aws-prod --format json"
)]
pub struct WhoisArgs {
    /// The access key id, as CloudTrail shows it (`AKIA…` for IAM users, `ASIA…` for STS).
    pub access_key_id: String,
    /// Ask only this mount (default: every `aws` mount the token can list).
    #[arg(long)]
    pub mount: Option<String>,
    #[arg(long, value_enum, default_value_t = ReadFormat::Table)]
    pub format: ReadFormat,
}

/// The fields in the order a person reads them: who, what, when.
const FIELDS: &[&str] = &[
    "access_key_id",
    "state",
    "requester",
    "meta",
    "mount",
    "role",
    "credential_type",
    "lease_id",
    "username",
    "token_accessor",
    "issue_time",
    "expire_time",
    "revoke_time",
];

pub async fn whois(client: &Client, args: WhoisArgs, out: &mut Out) -> anyhow::Result<()> {
    let key = args.access_key_id.trim();
    if key.is_empty() {
        bail!(UsageError(
            "give the access key id to look up, e.g. iamlease whois AKIAIOSFODNN7EXAMPLE".into()
        ));
    }
    let mounts = match &args.mount {
        Some(m) => vec![m.trim_matches('/').to_owned()],
        None => aws_mounts(client).await?,
    };
    let mut refused = Vec::new();
    for mount in &mounts {
        match client
            .request("GET", &format!("{mount}/access-keys/{key}"), None)
            .await
        {
            Ok(resp) => return print(out, &resp["data"], args.format),
            Err(e) => match e.downcast_ref::<ServerSaidNo>() {
                // Not this mount's key: ask the next one, unless a mount was named.
                Some(no) if no.status == StatusCode::NOT_FOUND && args.mount.is_none() => {}
                Some(no) if no.status == StatusCode::FORBIDDEN && args.mount.is_none() => {
                    refused.push(format!("{mount}/"));
                }
                _ => return Err(e),
            },
        }
    }
    let asked = mounts
        .iter()
        .map(|m| format!("{m}/"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut message = format!(
        "no mount has a record of access key {key} (asked {}): it was not issued by this server, or it ended more than key_history_retention ago; for a mount since disabled, name it with --mount",
        if asked.is_empty() {
            "none: no aws mount is visible"
        } else {
            &asked
        }
    );
    if !refused.is_empty() {
        message.push_str(&format!(
            "; this token may not read access-keys/ on {}",
            refused.join(", ")
        ));
    }
    Err(ServerSaidNo {
        status: StatusCode::NOT_FOUND,
        message,
    }
    .into())
}

/// Every mount of type `aws`, in path order.
async fn aws_mounts(client: &Client) -> anyhow::Result<Vec<String>> {
    let resp = client.request("GET", "sys/mounts", None).await?;
    let mounts = resp["data"].as_object().cloned().unwrap_or_default();
    Ok(mounts
        .iter()
        .filter(|(_, v)| v["type"] == "aws")
        .map(|(k, _)| k.trim_end_matches('/').to_owned())
        .collect())
}

fn print(out: &mut Out, data: &Value, format: ReadFormat) -> anyhow::Result<()> {
    if format == ReadFormat::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(data)?)?;
        return Ok(());
    }
    let mut rows = vec![vec!["Key".to_owned(), "Value".to_owned()]];
    for field in FIELDS {
        let value = match (&data[*field], *field) {
            (Value::Object(meta), "meta") if meta.is_empty() => "none".to_owned(),
            (Value::Object(meta), "meta") => meta
                .iter()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect::<Vec<_>>()
                .join(" "),
            (v, _) => text(v),
        };
        rows.push(vec![(*field).to_owned(), value]);
    }
    print_rows(out, &rows)?;
    Ok(())
}
