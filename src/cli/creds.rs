//! `iamlease creds ROLE`: issues one credential and prints it as a table, JSON, shell `export`
//! lines, or the AWS `credential_process` document (reusing a cached one).

use std::io::Write;

use clap::{Args, ValueEnum};
use serde_json::{Map, json};
use time::format_description::well_known::Rfc3339;

use super::issue::{IssueArgs, Issued, issue, revoke};
use super::output::{self, Out, print_rows};
use super::{Client, cache};

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

pub async fn creds(client: &Client, args: CredsArgs, out: &mut Out) -> anyhow::Result<()> {
    let for_process = args.format == CredsFormat::CredentialProcess;
    let wait = args.wait || (for_process && !args.no_wait);
    if for_process {
        // A credential from the cache, or put into it, is not lost if it cannot be written:
        // the next call hands it out. Only one issued for this call alone is.
        let (entry, only_here) = if args.no_cache {
            let issued = issue(client, &args.issue, wait).await?;
            (cache::entry_from(client, &issued), true)
        } else {
            (
                cache::cached_or_issue(client, &args.issue, wait).await?,
                false,
            )
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
        let text = format!("{}\n", serde_json::to_string(&doc)?);
        return deliver(client, out, &text, &entry.lease_id, only_here).await;
    }
    let issued = issue(client, &args.issue, wait).await?;
    let text = match render(args.format, &issued) {
        Ok(text) => text,
        Err(e) => {
            revoke(client, &issued.lease_id).await?;
            return Err(e.context(format!(
                "the credential could not be shown, so lease {} was revoked",
                issued.lease_id
            )));
        }
    };
    deliver(client, out, &text, &issued.lease_id, true).await
}

/// The credential in `format` (not `credential-process`, which comes from the cache).
fn render(format: CredsFormat, issued: &Issued) -> anyhow::Result<String> {
    let resp = &issued.response;
    let data = &resp["data"];
    let mut text = Vec::new();
    match format {
        CredsFormat::Json => writeln!(text, "{}", serde_json::to_string_pretty(resp)?)?,
        CredsFormat::Table => {
            let mut rows = vec![
                vec!["Key".to_owned(), "Value".to_owned()],
                vec!["lease_id".to_owned(), output::text(&resp["lease_id"])],
                vec![
                    "lease_duration".to_owned(),
                    crate::duration_text(issued.lease_duration),
                ],
                vec![
                    "lease_renewable".to_owned(),
                    output::text(&resp["renewable"]),
                ],
            ];
            for key in [
                "access_key",
                "secret_key",
                "security_token",
                "arn",
                "username",
            ] {
                if !data[key].is_null() {
                    rows.push(vec![key.to_owned(), output::text(&data[key])]);
                }
            }
            print_rows(&mut text, &rows)?;
        }
        CredsFormat::Env => {
            for (name, value) in issued.env_vars(None)? {
                writeln!(text, "export {name}={}", shell_quote(&value))?;
            }
            writeln!(text, "# lease: {}", issued.lease_id)?;
        }
        CredsFormat::CredentialProcess => unreachable!("credential-process is written by creds"),
    }
    Ok(String::from_utf8(text)?)
}

/// Writes the credential out, all of it, before `creds` reports success. If not one byte of
/// it reached a reader (a closed pipe, a full disk), nobody has the credential: a lease issued
/// for this call alone (`revoke_if_lost`) is revoked at once rather than left to its TTL.
async fn deliver(
    client: &Client,
    out: &mut Out,
    text: &str,
    lease_id: &str,
    revoke_if_lost: bool,
) -> anyhow::Result<()> {
    let before = out.delivered();
    let written = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    if out.delivered() > before {
        // Handed over, some or all (the kernel took it): the reader has what it asked for, as
        // after `| head -1`; what we cannot know is whether it ever looks.
        return Ok(written?);
    }
    let why = match &written {
        Err(e) => e.to_string(),
        Ok(()) => "standard output was closed before the credential was written".to_owned(),
    };
    if !revoke_if_lost {
        anyhow::bail!("{why}; the credential stays in the cache for the next call");
    }
    revoke(client, lease_id).await?;
    anyhow::bail!("{why}, so lease {lease_id} was revoked (nobody received it)")
}

/// Single-quotes a value for POSIX shells.
pub(super) fn shell_quote(s: &str) -> String {
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
