//! `iamlease sweep`: asks the server to find (and delete) IAM users that carry our tags but
//! have no live lease, and prints what it found.

use std::io::Write;

use clap::Args;
use serde_json::{Value, json};

use super::output::{Out, note};
use super::{Client, ReadFormat};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  iamlease sweep --dry-run\n  iamlease sweep --mount aws-prod")]
pub struct SweepArgs {
    /// The mount whose path prefix is swept.
    #[arg(long, default_value = "aws")]
    pub mount: String,
    /// Only list what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value_t = ReadFormat::Table)]
    pub format: ReadFormat,
}

pub async fn sweep(client: &Client, args: SweepArgs, out: &mut Out) -> anyhow::Result<()> {
    let mount = args.mount.trim_matches('/');
    let answer = client
        .request(
            "POST",
            &format!("{mount}/sweep"),
            Some(json!({ "dry_run": args.dry_run })),
        )
        .await?;
    let data = &answer["data"];
    if args.format == ReadFormat::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(data)?)?;
        return Ok(());
    }
    let orphans = data["orphans"].as_array().cloned().unwrap_or_default();
    let prefixes: Vec<&str> = data["path_prefixes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    writeln!(
        out,
        "Swept {mount}/ ({}): {} IAM user(s) with our tags, {} without a live lease.",
        prefixes.join(", "),
        data["tagged_users"].as_u64().unwrap_or(0),
        orphans.len()
    )?;
    for o in &orphans {
        writeln!(
            out,
            "  {}{}  lease {}  expired-at {}",
            o["path"].as_str().unwrap_or(""),
            o["username"].as_str().unwrap_or(""),
            o["lease_id"].as_str().unwrap_or("-"),
            o["expires_at"].as_str().unwrap_or("-"),
        )?;
    }
    if args.dry_run {
        if !orphans.is_empty() {
            writeln!(
                out,
                "Dry run: nothing deleted. Run again without --dry-run to delete them."
            )?;
        }
        return Ok(());
    }
    let deleted = data["deleted"].as_array().map_or(0, Vec::len);
    writeln!(out, "Deleted {deleted} user(s).")?;
    if let Some(failed) = data["failed"].as_array().filter(|f| !f.is_empty()) {
        for f in failed {
            note!("  could not delete {}: {}", f[0], f[1]);
        }
        anyhow::bail!(
            "{} orphaned user(s) could not be deleted; see above",
            failed.len()
        );
    }
    Ok(())
}
