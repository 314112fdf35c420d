//! The client commands: each parses its arguments into a request, sends it to the server over
//! the Vault-compatible API, and prints the answer for a person or a script. One module per
//! command; `issue` is what `creds` and `exec` share, `client` the HTTP client.

mod audit;
mod cache;
mod client;
mod config;
mod creds;
mod exec;
mod issue;
mod lease;
mod mount;
mod policy;
mod role;
mod setup;
mod sweep;
mod token;

pub use audit::{AuditCommand, audit};
pub use client::{Client, ServerSaidNo};
pub use config::{ConfigCommand, config};
pub use creds::{CredsArgs, creds};
pub use exec::{CommandExited, ExecArgs, exec};
pub use lease::{LeaseCommand, lease};
pub use mount::{MountCommand, mount};
pub use policy::{PolicyCommand, policy};
pub use role::{RoleCommand, role};
pub use setup::{SetupCommand, setup};
pub use sweep::{SweepArgs, sweep};
pub use token::{TokenCommand, token};

use std::io::Write;

use clap::ValueEnum;
use serde_json::{Map, Value};

/// A mistake in how the command was called, found after parsing: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReadFormat {
    Table,
    Json,
}

fn compact(map: Map<String, Value>) -> Value {
    Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
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
