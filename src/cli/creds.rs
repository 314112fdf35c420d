//! `iamlease creds ROLE`: issues one credential and prints it as a table, JSON, shell `export`
//! lines, or the AWS `credential_process` document (reusing a cached one).

use std::io::Write;

use clap::{Args, ValueEnum};
use serde_json::{Map, json};
use time::format_description::well_known::Rfc3339;

use super::issue::{IssueArgs, issue};
use super::{Client, cache, print_rows, text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredsFormat {
    Table,
    Json,
    Env,
    CredentialProcess,
}

#[derive(Debug, Args)]
pub struct CredsArgs {
    #[command(flatten)]
    pub issue: IssueArgs,
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

pub async fn creds(client: &Client, args: CredsArgs) -> anyhow::Result<()> {
    let for_process = args.format == CredsFormat::CredentialProcess;
    let wait = args.wait || (for_process && !args.no_wait);
    if for_process {
        let entry = if args.no_cache {
            cache::entry_from(client, &issue(client, &args.issue, wait).await?)
        } else {
            cache::cached_or_issue(client, &args.issue, wait).await?
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
    let issued = issue(client, &args.issue, wait).await?;
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
