//! `iamlease static-role write|read|list|delete|rotate` and `iamlease static-creds NAME`: the
//! keys of existing IAM users, rotated by the server on a schedule.

use std::io::Write;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, json};

use super::output::{Out, print_keys, print_rows, print_table, print_warnings};
use super::{Client, ReadFormat, compact};

#[derive(Debug, Subcommand)]
pub enum StaticRoleCommand {
    /// Create or update a static role; creating it rotates the user's key at once.
    #[command(
        after_help = "Examples:\n  iamlease static-role write legacy-app --username legacy-app --rotation-period 24h --overlap 1h\n  iamlease static-role write partner --username svc --rotation-period 7d --assume-role-arn arn:aws:iam::210987654321:role/iamlease-rotator --external-id abc123"
    )]
    Write(StaticRoleWrite),
    /// Show a static role, with its last and next rotation and its last error.
    #[command(after_help = "Example:\n  iamlease static-role read legacy-app --format json")]
    Read {
        name: String,
        #[arg(long, default_value = "aws")]
        mount: String,
        #[arg(long, value_enum, default_value_t = ReadFormat::Table)]
        format: ReadFormat,
    },
    /// List static roles.
    #[command(after_help = "Example:\n  iamlease static-role list --mount aws")]
    List {
        #[arg(long, default_value = "aws")]
        mount: String,
    },
    /// Delete a static role and the access keys it created.
    #[command(after_help = "Example:\n  iamlease static-role delete legacy-app")]
    Delete {
        name: String,
        #[arg(long, default_value = "aws")]
        mount: String,
    },
    /// Rotate now (a previous key still in its overlap is deleted first).
    #[command(after_help = "Example:\n  iamlease static-role rotate legacy-app")]
    Rotate {
        name: String,
        #[arg(long, default_value = "aws")]
        mount: String,
    },
}

#[derive(Debug, Args)]
pub struct StaticRoleWrite {
    name: String,
    #[arg(long, default_value = "aws")]
    mount: String,
    /// The existing IAM user whose key is rotated (it may hold at most one key).
    #[arg(long)]
    username: Option<String>,
    /// How often to rotate: at least 1m (seconds or a duration such as 24h).
    #[arg(long)]
    rotation_period: Option<String>,
    /// How long the previous key keeps working after a rotation (at most half the period).
    #[arg(long)]
    overlap: Option<String>,
    /// For a user in another account: rotate as this role.
    #[arg(long)]
    assume_role_arn: Option<String>,
    #[arg(long)]
    assume_role_session_name: Option<String>,
    #[arg(long)]
    external_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StaticCredsFormat {
    Table,
    Json,
    Env,
    CredentialProcess,
}

#[derive(Debug, Args)]
pub struct StaticCredsArgs {
    /// The static role.
    name: String,
    #[arg(long, default_value = "aws")]
    mount: String,
    #[arg(long, value_enum, default_value_t = StaticCredsFormat::Table)]
    format: StaticCredsFormat,
}

pub async fn static_role(
    client: &Client,
    cmd: StaticRoleCommand,
    out: &mut Out,
) -> anyhow::Result<()> {
    match cmd {
        StaticRoleCommand::Write(w) => {
            let body = compact(Map::from_iter([
                ("username".into(), json!(w.username)),
                ("rotation_period".into(), json!(w.rotation_period)),
                ("overlap".into(), json!(w.overlap)),
                ("assume_role_arn".into(), json!(w.assume_role_arn)),
                (
                    "assume_role_session_name".into(),
                    json!(w.assume_role_session_name),
                ),
                ("external_id".into(), json!(w.external_id)),
            ]));
            let path = format!("{}/static-roles/{}", w.mount, w.name);
            let resp = client.request("POST", &path, Some(body)).await?;
            print_warnings(&resp);
            writeln!(out, "Success! Data written to: {path}")?;
        }
        StaticRoleCommand::Read {
            name,
            mount,
            format,
        } => {
            super::role::read_at(client, out, &format!("{mount}/static-roles/{name}"), format)
                .await?
        }
        StaticRoleCommand::List { mount } => {
            print_keys(
                out,
                client
                    .request("LIST", &format!("{mount}/static-roles"), None)
                    .await,
            )?;
        }
        StaticRoleCommand::Delete { name, mount } => {
            super::role::delete_at(client, out, &format!("{mount}/static-roles/{name}")).await?;
        }
        StaticRoleCommand::Rotate { name, mount } => {
            let resp = client
                .request("POST", &format!("{mount}/static-roles/{name}/rotate"), None)
                .await?;
            print_table(out, &resp["data"])?;
        }
    }
    Ok(())
}

pub async fn static_creds(
    client: &Client,
    args: StaticCredsArgs,
    out: &mut Out,
) -> anyhow::Result<()> {
    let resp = client
        .request(
            "GET",
            &format!("{}/static-creds/{}", args.mount, args.name),
            None,
        )
        .await?;
    let data = &resp["data"];
    let field = |k: &str| data[k].as_str().unwrap_or_default().to_owned();
    let (key, secret, expiration) = (
        field("access_key"),
        field("secret_key"),
        field("expiration"),
    );
    match args.format {
        StaticCredsFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&resp)?)?,
        StaticCredsFormat::Table => print_rows(
            out,
            &[
                vec!["Key".to_owned(), "Value".to_owned()],
                vec!["access_key".to_owned(), key],
                vec!["secret_key".to_owned(), secret],
                vec!["expiration".to_owned(), expiration],
            ],
        )?,
        StaticCredsFormat::Env => {
            use super::creds::shell_quote;
            writeln!(out, "export AWS_ACCESS_KEY_ID={}", shell_quote(&key))?;
            writeln!(out, "export AWS_SECRET_ACCESS_KEY={}", shell_quote(&secret))?;
            // A parent shell's session token would spoil an IAM user's key.
            writeln!(out, "unset AWS_SESSION_TOKEN AWS_SECURITY_TOKEN")?;
        }
        // The AWS `credential_process` document; Expiration (the next rotation) tells the SDK
        // when to ask again.
        StaticCredsFormat::CredentialProcess => writeln!(
            out,
            "{}",
            serde_json::to_string(&json!({
                "Version": 1,
                "AccessKeyId": key,
                "SecretAccessKey": secret,
                "Expiration": expiration,
            }))?
        )?,
    }
    Ok(())
}
