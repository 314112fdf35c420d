//! `iamlease login`: trades what an auth method takes (AppRole's `role_id` and `secret_id`, a
//! JWT, a browser sign-in, or an existing token) for a token, and keeps it in `~/.iamlease-token` (mode 0600), where
//! the other commands find it, as `vault login` does with `~/.vault-token`.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args;
use serde_json::{Map, Value};

use super::output::Out;
use super::{Client, UsageError};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The auth method: `approle`, `jwt`, `oidc` (sign in through the browser) or `token`
    /// (check a token and store it).
    #[arg(long, default_value = "token")]
    pub method: String,
    /// Where the method is mounted (`auth/<path>/`); defaults to the method's name.
    #[arg(long)]
    pub path: Option<String>,
    /// Do not store the token; print it only.
    #[arg(long)]
    pub no_store: bool,
    /// The method's fields as `key=value` (`role_id=… secret_id=…`, `role=… jwt=@token.jwt`;
    /// for `oidc`: `role=…`, `port=8250`, `listenaddress=…`, `callbackhost=…`,
    /// `skip_browser=true`); a value `@FILE` is read from the file, `-` from standard input.
    /// For `token`: the token.
    pub fields: Vec<String>,
}

/// Where the CLI keeps the token of the last `login`.
pub fn token_file() -> Option<PathBuf> {
    dirs::home_dir().map(|h| h.join(".iamlease-token"))
}

/// The token `login` stored, if any (read when no `--token` or `IAMLEASE_TOKEN` is given).
pub fn stored_token() -> Option<String> {
    let text = std::fs::read_to_string(token_file()?).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

fn value_of(raw: &str) -> anyhow::Result<String> {
    if raw == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        return Ok(s.trim().to_owned());
    }
    match raw.strip_prefix('@') {
        Some(path) => Ok(std::fs::read_to_string(path)
            .with_context(|| format!("reading {path}"))?
            .trim()
            .to_owned()),
        None => Ok(raw.to_owned()),
    }
}

fn fields(raw: &[String]) -> anyhow::Result<Map<String, Value>> {
    raw.iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                UsageError(format!("{kv:?} is not key=value (for example role_id=…)"))
            })?;
            Ok((k.trim().to_owned(), Value::String(value_of(v)?)))
        })
        .collect()
}

fn store(token: &str) -> anyhow::Result<PathBuf> {
    let path = token_file().ok_or_else(|| anyhow!("no home directory to keep the token in"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        // An existing file keeps its mode on open: make sure it is private.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(token.as_bytes())?;
    Ok(path)
}

pub async fn login(address: Option<String>, args: LoginArgs, out: &mut Out) -> anyhow::Result<()> {
    let (token, auth) = if args.method == "token" {
        let token = match args.fields.as_slice() {
            [one] if !one.contains('=') => value_of(one)?,
            [] => return Err(UsageError("give the token: iamlease login <token>".into()).into()),
            _ => fields(&args.fields)?
                .remove("token")
                .and_then(|v| v.as_str().map(str::to_owned))
                .ok_or_else(|| UsageError("give the token: iamlease login token=<token>".into()))?,
        };
        let client = Client::new(address, Some(token.clone()))?;
        let me = client
            .request("GET", "auth/token/lookup-self", None)
            .await?;
        (token, me["data"].clone())
    } else {
        let path = args.path.clone().unwrap_or_else(|| args.method.clone());
        let path = path.trim_matches('/');
        let client = Client::new(address, None)?;
        let answer = if args.method == "oidc" {
            let options = super::oidc::OidcOptions::from_fields(fields(&args.fields)?)?;
            super::oidc::sign_in(&client, path, options).await?
        } else {
            client
                .login(&format!("auth/{path}/login"), fields(&args.fields)?)
                .await?
        };
        let token = answer["auth"]["client_token"]
            .as_str()
            .ok_or_else(|| anyhow!("the server's answer has no auth.client_token"))?
            .to_owned();
        (token, answer["auth"].clone())
    };
    let policies: Vec<&str> = auth["policies"]
        .as_array()
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if args.no_store {
        writeln!(out, "{token}")?;
        return Ok(());
    }
    let path = store(&token)?;
    writeln!(
        out,
        "Success! You are now authenticated; the token is in {} (mode 0600).\npolicies: {}\naccessor: {}",
        path.display(),
        policies.join(", "),
        auth["accessor"].as_str().unwrap_or("")
    )?;
    Ok(())
}
