//! `iamlease setup aws`: prints the least-privilege policy, the trust policy (with the caller's
//! principal and an External ID: the mount's own for this role on a re-run, else a fresh one) and the commands that create them; `--apply`
//! creates them with the caller's own credentials and points the mount at the new role.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use iamlease::aws::AdminSession;
use iamlease::setup::{self, SetupOptions};
use serde_json::{Value, json};

use super::output::{Out, note};
use super::{Client, UsageError};

#[derive(Debug, Subcommand)]
pub enum SetupCommand {
    /// The IAM policy and role the server needs: `iamlease setup aws --path-prefix /iamlease/ [--apply]`
    #[command(
        after_help = "Examples:\n  iamlease setup aws --boundary-arn arn:aws:iam::123456789012:policy/boundary\n  iamlease setup aws --mount aws --apply"
    )]
    Aws(SetupAws),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SetupFormat {
    /// The documents and commands, ready to paste.
    Text,
    /// One JSON object: principal_arn, external_id, policy, trust_policy, commands.
    Json,
}

#[derive(Debug, Args)]
pub struct SetupAws {
    #[arg(long, default_value = "aws")]
    mount: String,
    /// IAM path prefix of the users the server may manage (roles' `user_path` must be under it).
    #[arg(long, default_value = "/iamlease/")]
    path_prefix: String,
    /// Allow CreateUser only with this permissions boundary attached.
    #[arg(long)]
    boundary_arn: Option<String>,
    /// A role the server may assume for `assumed_role` credentials; repeat for several.
    #[arg(long = "sts-role-arn")]
    sts_role_arns: Vec<String>,
    /// External ID for the trust policy (default: the one the mount's config/root already uses
    /// for this role, else 32 random characters).
    #[arg(long)]
    external_id: Option<String>,
    /// Name of the role to create (default: iamlease-MOUNT).
    #[arg(long)]
    role_name: Option<String>,
    /// Name of the managed policy to create (default: iamlease-MOUNT).
    #[arg(long)]
    policy_name: Option<String>,
    /// Who may assume the role (default: the caller, from sts:GetCallerIdentity).
    #[arg(long)]
    principal_arn: Option<String>,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Create the policy and role in AWS with your credentials (the default chain) and write
    /// the mount's config/root on the server.
    #[arg(long)]
    apply: bool,
    /// With --apply: print each AWS call and server request it would make, and make none.
    #[arg(long, requires = "apply")]
    dry_run: bool,
    /// Written to config/root with --apply (for emulators and private endpoints).
    #[arg(long)]
    iam_endpoint: Option<String>,
    #[arg(long)]
    sts_endpoint: Option<String>,
    #[arg(long, value_enum, default_value_t = SetupFormat::Text)]
    format: SetupFormat,
}

pub async fn setup(
    client: anyhow::Result<Client>,
    cmd: SetupCommand,
    out: &mut Out,
) -> anyhow::Result<()> {
    let SetupCommand::Aws(args) = cmd;
    let admin = AdminSession::from_default_chain(&args.region).await;
    let principal = match &args.principal_arn {
        Some(p) => p.clone(),
        None => match admin.caller_arn().await {
            Ok(arn) => setup::principal_for(&arn),
            Err(e) if args.apply => {
                return Err(anyhow::anyhow!(
                    "cannot find out who you are in AWS ({e}); --apply needs your AWS credentials (environment, profile or SSO)"
                ));
            }
            Err(e) => {
                note!(
                    "note: cannot find out who you are in AWS ({e}); pass --principal-arn or edit the trust policy"
                );
                "arn:aws:iam::ACCOUNT_ID:user/IAMLEASE_SERVER".into()
            }
        },
    };
    let role_name = args
        .role_name
        .clone()
        .unwrap_or_else(|| format!("iamlease-{}", args.mount));
    // A re-run keeps the External ID the mount already uses for this role: a new one would
    // rotate a secret the caller did not ask to rotate.
    let external_id = match &args.external_id {
        Some(id) => id.clone(),
        None => match current_external_id(client.as_ref().ok(), &args.mount, &role_name).await {
            Some(id) => {
                note!(
                    "keeping the External ID {}/config/root already uses for role {role_name} (--external-id to change it)",
                    args.mount
                );
                id
            }
            None => setup::generate_external_id(),
        },
    };
    let options = SetupOptions {
        path_prefix: args.path_prefix.clone(),
        boundary_arn: args.boundary_arn.clone(),
        sts_role_arns: args.sts_role_arns.clone(),
        external_id,
        role_name,
        policy_name: args
            .policy_name
            .clone()
            .unwrap_or_else(|| format!("iamlease-{}", args.mount)),
        principal_arn: principal.clone(),
    };
    options.validate().map_err(|e| UsageError(e.0))?;
    let policy = setup::server_policy(&options);
    let trust = setup::trust_policy(&options);
    let account = setup::account_of(&principal)
        .unwrap_or("ACCOUNT_ID")
        .to_owned();
    // Every endpoint flag counts in every mode: the printed commands carry them too.
    let commands: Vec<String> = setup::commands(&options, &args.mount, &account)
        .into_iter()
        .map(|c| {
            if c.starts_with("aws iam ") {
                match &args.iam_endpoint {
                    Some(url) => format!("{c} --endpoint-url {url}"),
                    None => c,
                }
            } else if c.starts_with("iamlease config root ") {
                let mut c = format!("{c} --region {}", args.region);
                for (flag, url) in [
                    ("--iam-endpoint", &args.iam_endpoint),
                    ("--sts-endpoint", &args.sts_endpoint),
                ] {
                    if let Some(url) = url {
                        c.push_str(&format!(" {flag} {url}"));
                    }
                }
                c
            } else {
                c
            }
        })
        .collect();

    if !args.apply {
        match args.format {
            SetupFormat::Json => writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&json!({
                    "principal_arn": principal,
                    "external_id": options.external_id,
                    "policy": policy,
                    "trust_policy": trust,
                    "commands": commands,
                }))?
            )?,
            SetupFormat::Text => {
                // A shell script as a whole: paste it, or save it and run it.
                writeln!(
                    out,
                    "# 1. The permissions policy: what the server may do (IAM users under {} only)",
                    options.path_prefix
                )?;
                writeln!(
                    out,
                    "cat > iamlease-policy.json <<'EOF'\n{}\nEOF\n",
                    serde_json::to_string_pretty(&policy)?
                )?;
                writeln!(
                    out,
                    "# 2. The trust policy: only {principal} may assume the role, and only with the External ID"
                )?;
                writeln!(
                    out,
                    "cat > iamlease-trust.json <<'EOF'\n{}\nEOF\n",
                    serde_json::to_string_pretty(&trust)?
                )?;
                writeln!(
                    out,
                    "# 3. Create them (or run this command again with --apply):"
                )?;
                for c in &commands {
                    writeln!(out, "{c}")?;
                }
            }
        }
        return Ok(());
    }

    if args.dry_run {
        let mut root = format!(
            "role_arn=arn:aws:iam::{account}:role/{} external_id={} region={}",
            options.role_name, options.external_id, args.region
        );
        for (k, url) in [
            ("iam_endpoint", &args.iam_endpoint),
            ("sts_endpoint", &args.sts_endpoint),
        ] {
            if let Some(url) = url {
                root.push_str(&format!(" {k}={url}"));
            }
        }
        let calls = [
            "sts:GetCallerIdentity (who you are: the account the policy and role go in)".to_owned(),
            format!(
                "iam:CreatePolicy {} (if it exists: iam:ListPolicyVersions, iam:DeletePolicyVersion of the oldest when five exist, iam:CreatePolicyVersion as default)",
                options.policy_name
            ),
            format!(
                "iam:CreateRole {} with the trust policy (if it exists: iam:UpdateAssumeRolePolicy, iam:GetRole)",
                options.role_name
            ),
            format!(
                "iam:AttachRolePolicy {} {}",
                options.role_name, options.policy_name
            ),
            format!("POST /v1/{}/config/root {root}", args.mount),
            format!(
                "POST /v1/{}/config/check until the server acts as the role (60 s at most)",
                args.mount
            ),
        ];
        writeln!(
            out,
            "# --dry-run: nothing was created or written. --apply would make these calls, in order:"
        )?;
        for (n, c) in calls.iter().enumerate() {
            writeln!(out, "{}. {c}", n + 1)?;
        }
        return Ok(());
    }
    let client = client?;
    // The policy and role live in the caller's account, whoever may assume the role.
    let caller = admin.caller_arn().await.map_err(|e| {
        anyhow::anyhow!("{e}; --apply creates the policy and role with your own AWS credentials")
    })?;
    let caller_account = setup::account_of(&caller).unwrap_or(&account).to_owned();
    let applied = admin
        .apply_role_with_policy(
            &caller_account,
            &options.policy_name,
            &policy.to_string(),
            &options.role_name,
            &trust.to_string(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let verb = |created: bool| if created { "created" } else { "updated" };
    note!(
        "{} policy {}",
        verb(applied.policy_created),
        applied.policy_arn
    );
    note!("{} role   {}", verb(applied.role_created), applied.role_arn);
    if let Some(url) = args
        .iam_endpoint
        .as_deref()
        .filter(|u| !u.contains(".amazonaws.com"))
    {
        note!(
            "note: {url} is not AWS. An emulator may not evaluate the policy's scoped resources as IAM does (moto evaluates only \"Resource\": \"*\"); iamlease checked the document itself"
        );
    }
    let mut root = json!({
        "role_arn": applied.role_arn,
        "external_id": options.external_id,
        "region": args.region,
    });
    if let Some(url) = &args.iam_endpoint {
        root["iam_endpoint"] = json!(url);
    }
    if let Some(url) = &args.sts_endpoint {
        root["sts_endpoint"] = json!(url);
    }
    client
        .request("POST", &format!("{}/config/root", args.mount), Some(root))
        .await?;
    note!("wrote {}/config/root", args.mount);
    // IAM is eventually consistent: a new role can take seconds before it may be assumed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let identity: Value = loop {
        match client
            .request("POST", &format!("{}/config/check", args.mount), None)
            .await
        {
            Ok(v) => break v,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => {
                return Err(e.context(
                    "the role was created but the server cannot assume it yet; check the trust policy's principal",
                ));
            }
        }
    };
    let arn = identity["data"]["arn"].as_str().unwrap_or_default();
    match args.format {
        SetupFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({
                "policy_arn": applied.policy_arn,
                "role_arn": applied.role_arn,
                "external_id": options.external_id,
                "acting_as": arn,
            }))?
        )?,
        SetupFormat::Text => writeln!(
            out,
            "{}/ now acts as {arn} (role {}, External ID {})",
            args.mount, applied.role_arn, options.external_id
        )?,
    }
    Ok(())
}

/// The External ID of the mount's config/root when it already acts as `role_name` (any
/// account): `None` when there is no server to ask, no root config, or another role.
async fn current_external_id(
    client: Option<&Client>,
    mount: &str,
    role_name: &str,
) -> Option<String> {
    let root = client?
        .request("GET", &format!("{mount}/config/root"), None)
        .await
        .ok()?;
    let data = &root["data"];
    let same_role = data["role_arn"]
        .as_str()
        .is_some_and(|arn| arn.ends_with(&format!(":role/{role_name}")));
    let id = data["external_id"].as_str().filter(|id| !id.is_empty())?;
    same_role.then(|| id.to_owned())
}
