//! `iamlease role write|read|list|delete`: roles, the recipes credentials are issued from.

use std::collections::BTreeMap;

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::output::{Out, print_keys, print_table, print_warnings};
use super::{Client, ReadFormat, UsageError, compact};

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create or update a role: `iamlease role write dev --credential-type iam_user --policy-arn arn:aws:iam::aws:policy/ReadOnlyAccess`
    #[command(
        after_help = "Examples:\n  iamlease role write dev --credential-type iam_user --policy-arn arn:aws:iam::aws:policy/ReadOnlyAccess --default-ttl 1h --max-ttl 8h\n  iamlease role write tf --credential-type iam_user --policy-document @policy.json --key-map access_key=TF_VAR_aws_key"
    )]
    Write(Box<RoleWrite>),
    /// Show a role.
    #[command(after_help = "Example:\n  iamlease role read dev --format json")]
    Read {
        name: String,
        #[arg(long, default_value = "aws")]
        mount: String,
        #[arg(long, value_enum, default_value_t = ReadFormat::Table)]
        format: ReadFormat,
    },
    /// List roles.
    #[command(after_help = "Example:\n  iamlease role list --mount aws")]
    List {
        #[arg(long, default_value = "aws")]
        mount: String,
    },
    /// Delete a role (its leases still expire and are revoked as usual).
    #[command(after_help = "Example:\n  iamlease role delete dev")]
    Delete {
        name: String,
        #[arg(long, default_value = "aws")]
        mount: String,
    },
}

#[derive(Debug, Args)]
pub struct RoleWrite {
    name: String,
    #[arg(long, default_value = "aws")]
    mount: String,
    #[arg(long)]
    credential_type: Option<String>,
    /// A managed policy ARN; repeat for several.
    #[arg(long = "policy-arn")]
    policy_arns: Vec<String>,
    /// An inline policy: JSON, or @FILE to read it from a file.
    #[arg(long)]
    policy_document: Option<String>,
    /// An IAM group; repeat for several.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// A tag KEY=VALUE for the IAM user; repeat for several.
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[arg(long)]
    user_path: Option<String>,
    #[arg(long)]
    permissions_boundary_arn: Option<String>,
    #[arg(long)]
    username_template: Option<String>,
    #[arg(long)]
    default_ttl: Option<String>,
    #[arg(long)]
    max_ttl: Option<String>,
    /// assumed_role: an IAM role ARN the role may assume; repeat for several.
    #[arg(long = "role-arn")]
    role_arns: Vec<String>,
    /// STS types: default and maximum duration of the credentials (900s to 12h or 36h).
    #[arg(long)]
    default_sts_ttl: Option<String>,
    #[arg(long)]
    max_sts_ttl: Option<String>,
    /// assumed_role: a session tag KEY=VALUE; repeat for several.
    #[arg(long = "session-tag")]
    session_tags: Vec<String>,
    /// assumed_role: the External ID the role's trust policy asks for.
    #[arg(long)]
    external_id: Option<String>,
    /// session_token: the MFA device whose code `creds --mfa-code` passes.
    #[arg(long)]
    mfa_serial_number: Option<String>,
    /// FIELD=NAME: the name a credential field takes in `--format env` and `exec`, e.g.
    /// access_key=TF_VAR_aws_key (fields: access_key, secret_key, security_token, region, expiration).
    #[arg(long = "key-map")]
    key_map: Vec<String>,
    /// At most this many leases of the role at once (0: no cap).
    #[arg(long)]
    max_leases: Option<u32>,
}

pub async fn role(client: &Client, cmd: RoleCommand, out: &mut Out) -> anyhow::Result<()> {
    match cmd {
        RoleCommand::Write(w) => {
            let policy_document = match w.policy_document {
                Some(doc) if doc.starts_with('@') => Some(
                    std::fs::read_to_string(&doc[1..])
                        .with_context(|| format!("reading the policy document {}", &doc[1..]))?,
                ),
                other => other,
            };
            let tags = key_values("--tag", &w.tags)?;
            let session_tags = key_values("--session-tag", &w.session_tags)?;
            let key_map = key_values("--key-map", &w.key_map)?;
            let nonempty = |v: Vec<String>| if v.is_empty() { Value::Null } else { json!(v) };
            let nonempty_map = |m: BTreeMap<String, String>| {
                if m.is_empty() { Value::Null } else { json!(m) }
            };
            let body = compact(Map::from_iter([
                ("credential_type".into(), json!(w.credential_type)),
                ("policy_arns".into(), nonempty(w.policy_arns)),
                ("policy_document".into(), json!(policy_document)),
                ("iam_groups".into(), nonempty(w.groups)),
                ("iam_tags".into(), nonempty_map(tags)),
                ("user_path".into(), json!(w.user_path)),
                (
                    "permissions_boundary_arn".into(),
                    json!(w.permissions_boundary_arn),
                ),
                ("username_template".into(), json!(w.username_template)),
                ("default_ttl".into(), json!(w.default_ttl)),
                ("max_ttl".into(), json!(w.max_ttl)),
                ("role_arns".into(), nonempty(w.role_arns)),
                ("default_sts_ttl".into(), json!(w.default_sts_ttl)),
                ("max_sts_ttl".into(), json!(w.max_sts_ttl)),
                ("session_tags".into(), nonempty_map(session_tags)),
                ("external_id".into(), json!(w.external_id)),
                ("mfa_serial_number".into(), json!(w.mfa_serial_number)),
                ("key_map".into(), nonempty_map(key_map)),
                ("max_leases".into(), json!(w.max_leases)),
            ]));
            let resp = client
                .request("POST", &format!("{}/roles/{}", w.mount, w.name), Some(body))
                .await?;
            print_warnings(&resp);
            writeln!(
                out,
                "Success! Data written to: {}/roles/{}",
                w.mount, w.name
            )?;
        }
        RoleCommand::Read {
            name,
            mount,
            format,
        } => read_at(client, out, &format!("{mount}/roles/{name}"), format).await?,
        RoleCommand::List { mount } => {
            print_keys(
                out,
                client
                    .request("LIST", &format!("{mount}/roles"), None)
                    .await,
            )?;
        }
        RoleCommand::Delete { name, mount } => {
            delete_at(client, out, &format!("{mount}/roles/{name}")).await?;
        }
    }
    Ok(())
}

/// `KEY=VALUE` arguments of a repeated flag as a map.
/// `role read` and `static-role read`: the object at `path`, as a table or as JSON.
pub(super) async fn read_at(
    client: &Client,
    out: &mut Out,
    path: &str,
    format: ReadFormat,
) -> anyhow::Result<()> {
    let resp = client.request("GET", path, None).await?;
    match format {
        ReadFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&resp)?)?,
        ReadFormat::Table => print_table(out, &resp["data"])?,
    }
    Ok(())
}

/// `role delete` and `static-role delete`: Vault's wording, as a delete of nothing succeeds too.
pub(super) async fn delete_at(client: &Client, out: &mut Out, path: &str) -> anyhow::Result<()> {
    client.request("DELETE", path, None).await?;
    writeln!(out, "Success! Data deleted (if it existed) at: {path}")?;
    Ok(())
}

fn key_values(flag: &str, items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for t in items {
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| UsageError(format!("{flag} {t:?} must have the form KEY=VALUE")))?;
        map.insert(k.to_owned(), v.to_owned());
    }
    Ok(map)
}
