//! The client commands: each parses its arguments into a request, sends it to the server over
//! the Vault-compatible API, and prints the answer for a person or a script.

mod audit;
mod cache;
mod client;
mod exec;
mod issue;
mod setup;
mod sweep;

pub use audit::{AuditCommand, audit};
pub use client::{Client, ServerSaidNo};
pub use exec::{CommandExited, ExecArgs, exec};
pub use setup::{SetupCommand, setup};
pub use sweep::{SweepArgs, sweep};

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;

/// A mistake in how the command was called, found after parsing: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReadFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredsFormat {
    Table,
    Json,
    Env,
    CredentialProcess,
}

#[derive(Debug, Args)]
pub struct CredsArgs {
    /// The role to issue a credential for.
    pub name: String,
    #[arg(long, default_value = "aws")]
    pub mount: String,
    /// Lease TTL, e.g. 15m (capped by the role's max_ttl; STS types: 15m to 12h or 36h).
    #[arg(long)]
    pub ttl: Option<String>,
    /// assumed_role: which of the role's role_arns to assume (needed when it has several).
    #[arg(long)]
    pub role_arn: Option<String>,
    /// assumed_role: the session name, instead of one made from the role's template.
    #[arg(long)]
    pub role_session_name: Option<String>,
    /// session_token: the current code of the role's MFA device.
    #[arg(long)]
    pub mfa_code: Option<String>,
    #[arg(long, value_enum, default_value_t = CredsFormat::Table)]
    pub format: CredsFormat,
    /// Answer only once AWS accepts the new key (iam_user roles). On by default for
    /// `--format credential-process`.
    #[arg(long, conflicts_with = "no_wait")]
    pub wait: bool,
    /// Do not wait for AWS to accept the new key, even for `--format credential-process`.
    #[arg(long)]
    pub no_wait: bool,
    /// `--format credential-process`: issue a new credential instead of reusing a cached one.
    #[arg(long)]
    pub no_cache: bool,
}

fn compact(map: Map<String, Value>) -> Value {
    Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
}

pub async fn mount(client: &Client, cmd: MountCommand) -> anyhow::Result<()> {
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
            println!("Success! Enabled the {engine} secrets engine at: {path}/");
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
            print_rows(&rows);
        }
        MountCommand::Disable { path } => {
            client
                .request("DELETE", &format!("sys/mounts/{path}"), None)
                .await?;
            println!("Success! Disabled the secrets engine (if it existed) at: {path}/");
        }
    }
    Ok(())
}

pub async fn config(client: &Client, cmd: ConfigCommand) -> anyhow::Result<()> {
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
            println!("Success! Data written to: {mount}/config/root");
        }
        ConfigCommand::RotateRoot { mount } => {
            let resp = client
                .request("POST", &format!("{mount}/config/rotate-root"), None)
                .await?;
            print_warnings(&resp);
            println!(
                "Success! Rotated the root access key of {mount}/: now {}",
                text(&resp["data"]["access_key"])
            );
        }
        ConfigCommand::ReadRoot { mount } => {
            let resp = client
                .request("GET", &format!("{mount}/config/root"), None)
                .await?;
            print_table(&resp["data"]);
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
                print_table(&resp["data"]);
            } else {
                let body = compact(Map::from_iter([
                    ("lease".into(), json!(lease)),
                    ("lease_max".into(), json!(lease_max)),
                ]));
                client
                    .request("POST", &format!("{mount}/config/lease"), Some(body))
                    .await?;
                println!("Success! Data written to: {mount}/config/lease");
            }
        }
    }
    Ok(())
}

pub async fn role(client: &Client, cmd: RoleCommand) -> anyhow::Result<()> {
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
            println!("Success! Data written to: {}/roles/{}", w.mount, w.name);
        }
        RoleCommand::Read {
            name,
            mount,
            format,
        } => {
            let resp = client
                .request("GET", &format!("{mount}/roles/{name}"), None)
                .await?;
            match format {
                ReadFormat::Json => println!("{}", serde_json::to_string_pretty(&resp)?),
                ReadFormat::Table => print_table(&resp["data"]),
            }
        }
        RoleCommand::List { mount } => {
            print_keys(
                client
                    .request("LIST", &format!("{mount}/roles"), None)
                    .await,
            )?;
        }
        RoleCommand::Delete { name, mount } => {
            client
                .request("DELETE", &format!("{mount}/roles/{name}"), None)
                .await?;
            println!("Success! Data deleted (if it existed) at: {mount}/roles/{name}");
        }
    }
    Ok(())
}

pub async fn creds(client: &Client, args: CredsArgs) -> anyhow::Result<()> {
    let for_process = args.format == CredsFormat::CredentialProcess;
    let params = issue::IssueParams {
        mount: args.mount,
        role: args.name,
        ttl: args.ttl,
        role_arn: args.role_arn,
        role_session_name: args.role_session_name,
        mfa_code: args.mfa_code,
        wait: args.wait || (for_process && !args.no_wait),
    };
    if for_process {
        let entry = if args.no_cache {
            cache::entry_from(client, &issue::issue(client, &params).await?)
        } else {
            cache::cached_or_issue(client, &params).await?
        };
        // The AWS `credential_process` format; Expiration tells the SDK when to ask again.
        let mut doc = Map::new();
        doc.insert("Version".into(), json!(1));
        doc.insert("AccessKeyId".into(), json!(entry.access_key));
        doc.insert("SecretAccessKey".into(), json!(entry.secret_key));
        if let Some(token) = &entry.security_token {
            doc.insert("SessionToken".into(), json!(token));
        }
        doc.insert(
            "Expiration".into(),
            json!(entry.expiration().format(&Rfc3339)?),
        );
        println!("{}", serde_json::to_string(&doc)?);
        return Ok(());
    }
    let issued = issue::issue(client, &params).await?;
    let resp = &issued.response;
    let data = &resp["data"];
    let mut out = std::io::stdout().lock();
    match args.format {
        CredsFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(resp)?)?,
        CredsFormat::Table => {
            let mut rows = vec![
                vec!["Key".to_owned(), "Value".to_owned()],
                vec!["lease_id".to_owned(), text(&resp["lease_id"])],
                vec![
                    "lease_duration".to_owned(),
                    crate::duration_text(issued.lease_duration),
                ],
                vec!["lease_renewable".to_owned(), text(&resp["renewable"])],
            ];
            for key in [
                "access_key",
                "secret_key",
                "security_token",
                "arn",
                "username",
            ] {
                if !data[key].is_null() {
                    rows.push(vec![key.to_owned(), text(&data[key])]);
                }
            }
            drop(out);
            print_rows(&rows);
        }
        CredsFormat::Env => {
            for (name, value) in issued.env_vars(None)? {
                writeln!(out, "export {name}={}", shell_quote(&value))?;
            }
            writeln!(out, "# lease: {}", issued.lease_id)?;
        }
        CredsFormat::CredentialProcess => unreachable!("handled above"),
    }
    Ok(())
}

pub async fn lease(client: &Client, cmd: LeaseCommand) -> anyhow::Result<()> {
    match cmd {
        LeaseCommand::List { prefix, state } => {
            let path = match &state {
                Some(s) => format!("sys/leases/lookup/{prefix}?state={s}"),
                None => format!("sys/leases/lookup/{prefix}"),
            };
            print_keys(client.request("LIST", &path, None).await)?;
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
                ReadFormat::Json => println!("{}", serde_json::to_string_pretty(&resp)?),
                ReadFormat::Table => print_table(&resp["data"]),
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
            print_rows(&[
                vec!["Key".to_owned(), "Value".to_owned()],
                vec!["lease_id".to_owned(), text(&resp["lease_id"])],
                vec![
                    "lease_duration".to_owned(),
                    crate::duration_text(resp["lease_duration"].as_i64().unwrap_or(0)),
                ],
                vec!["lease_renewable".to_owned(), text(&resp["renewable"])],
            ]);
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
            println!("Success! Revoked lease: {lease_id}");
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
            println!("Success! Revoked every lease under: {prefix}");
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
            println!(
                "Success! Forgot every lease under: {prefix}. Run `iamlease sweep` once AWS is reachable to delete any user left behind."
            );
        }
    }
    Ok(())
}

pub async fn token(client: &Client, cmd: TokenCommand) -> anyhow::Result<()> {
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
                ReadFormat::Json => println!("{}", serde_json::to_string_pretty(&resp)?),
                ReadFormat::Table => {
                    let a = &resp["auth"];
                    print_rows(&[
                        vec!["Key".to_owned(), "Value".to_owned()],
                        vec!["token".to_owned(), text(&a["client_token"])],
                        vec!["token_accessor".to_owned(), text(&a["accessor"])],
                        vec![
                            "token_duration".to_owned(),
                            crate::duration_text(a["lease_duration"].as_i64().unwrap_or(0)),
                        ],
                        vec!["token_policies".to_owned(), text(&a["policies"])],
                    ]);
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
            print_table(&resp["data"]);
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
            println!("Success! Revoked token (if it existed)");
        }
    }
    Ok(())
}

pub async fn policy(client: &Client, cmd: PolicyCommand) -> anyhow::Result<()> {
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
            println!("Success! Uploaded policy: {name}");
        }
        PolicyCommand::Read { name } => {
            let resp = client
                .request("GET", &format!("sys/policies/acl/{name}"), None)
                .await?;
            println!("{}", text(&resp["data"]["policy"]));
        }
        PolicyCommand::List => print_keys(client.request("LIST", "sys/policies/acl", None).await)?,
        PolicyCommand::Delete { name } => {
            client
                .request("DELETE", &format!("sys/policies/acl/{name}"), None)
                .await?;
            println!("Success! Deleted policy: {name}");
        }
    }
    Ok(())
}

/// `KEY=VALUE` arguments of a repeated flag as a map.
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

fn print_keys(resp: anyhow::Result<Value>) -> anyhow::Result<()> {
    match resp {
        Ok(v) => {
            for k in v["data"]["keys"].as_array().into_iter().flatten() {
                println!("{}", text(k));
            }
            Ok(())
        }
        // An empty LIST is a 404 with no errors in Vault's API: nothing to show, not a failure.
        Err(e)
            if e.downcast_ref::<ServerSaidNo>().is_some_and(|s| {
                s.status == reqwest::StatusCode::NOT_FOUND && s.message == "nothing found"
            }) =>
        {
            eprintln!("No entries found");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn print_warnings(resp: &Value) {
    for w in resp["warnings"].as_array().into_iter().flatten() {
        eprintln!("WARNING! {}", text(w));
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "n/a".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(text).collect::<Vec<_>>().join(" "))
        }
        other => other.to_string(),
    }
}

fn print_table(data: &Value) {
    let mut rows = vec![vec!["Key".to_owned(), "Value".to_owned()]];
    if let Some(map) = data.as_object() {
        for (k, v) in map {
            rows.push(vec![k.clone(), text(v)]);
        }
    }
    print_rows(&rows);
}

/// Aligned columns with a dashed rule under the header, like the vault CLI.
fn print_rows(rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = std::io::stdout().lock();
    for (n, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("    ").trim_end());
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            let _ = writeln!(out, "{}", rule.join("    "));
        }
    }
}

/// Single-quotes a value for POSIX shells.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=._-:".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("AKIA123"), "AKIA123");
        assert_eq!(shell_quote("a/b+c="), "a/b+c=");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
