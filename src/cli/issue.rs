//! Issuing one credential for `creds` and `exec`: the request (with `wait_ready` and a spinner
//! on a terminal while the server waits for AWS), the answer in typed form, and the environment
//! variables it becomes under the role's `key_map`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;

use clap::Args;
use iamlease::key_map;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Client, ServerSaidNo, compact};

/// What to ask the server for: the flags `creds` and `exec` share (flattened into both).
#[derive(Debug, Clone, Args)]
pub struct IssueArgs {
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
}

/// An issued credential as the CLI uses it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub lease_id: String,
    pub lease_duration: i64,
    pub access_key: String,
    pub secret_key: String,
    pub security_token: Option<String>,
    pub region: Option<String>,
    pub key_map: BTreeMap<String, String>,
    pub expiration: OffsetDateTime,
    /// The whole answer, for `--format json`.
    pub response: Value,
}

impl Issued {
    fn from_response(response: Value) -> anyhow::Result<Issued> {
        let data = &response["data"];
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let lease_duration = response["lease_duration"].as_i64().unwrap_or(0);
        Ok(Issued {
            lease_id: text(&response["lease_id"]).unwrap_or_default(),
            lease_duration,
            access_key: text(&data["access_key"])
                .ok_or_else(|| anyhow::anyhow!("the server's answer has no access_key"))?,
            secret_key: text(&data["secret_key"])
                .ok_or_else(|| anyhow::anyhow!("the server's answer has no secret_key"))?,
            security_token: text(&data["security_token"]),
            region: text(&data["region"]),
            key_map: data["key_map"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default(),
            expiration: OffsetDateTime::now_utc() + time::Duration::seconds(lease_duration),
            response,
        })
    }

    /// The name the expiration takes in the environment.
    pub fn expiration_var(&self) -> String {
        key_map::resolve(&self.key_map)
            .into_iter()
            .find(|(field, _)| field == "expiration")
            .map(|(_, name)| name)
            .unwrap_or_default()
    }

    /// The credential as environment variables, named by the role's `key_map` (standard AWS
    /// names otherwise). `region` overrides the mount's region; fields without a value are left
    /// out (no session token for an IAM user).
    pub fn env_vars(&self, region: Option<&str>) -> anyhow::Result<Vec<(String, String)>> {
        let expiration = self.expiration.format(&Rfc3339)?;
        let mut vars = Vec::new();
        for (field, name) in key_map::resolve(&self.key_map) {
            let value = match field.as_str() {
                "access_key" => Some(self.access_key.clone()),
                "secret_key" => Some(self.secret_key.clone()),
                "security_token" => self.security_token.clone(),
                "region" => region.map(str::to_owned).or_else(|| self.region.clone()),
                "expiration" => Some(expiration.clone()),
                _ => None,
            };
            if let Some(v) = value {
                vars.push((name, v));
            }
        }
        Ok(vars)
    }
}

/// Issues a credential. With `wait`, the server answers only once AWS accepts the new key;
/// meanwhile a spinner shows the elapsed time, on a terminal only (nothing on a pipe or in a
/// credential_process).
pub async fn issue(client: &Client, args: &IssueArgs, wait: bool) -> anyhow::Result<Issued> {
    let body = compact(Map::from_iter([
        ("ttl".into(), json!(args.ttl)),
        ("role_arn".into(), json!(args.role_arn)),
        ("role_session_name".into(), json!(args.role_session_name)),
        ("mfa_code".into(), json!(args.mfa_code)),
        ("wait_ready".into(), json!(wait.then_some(true))),
    ]));
    let path = format!("{}/creds/{}", args.mount, args.name);
    let spinner = (wait && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} issuing {msg} and waiting until AWS accepts the new key… {elapsed}",
            )
            .expect("valid template"),
        );
        bar.set_message(path.clone());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    let answer = client.request("POST", &path, Some(body)).await;
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    Issued::from_response(answer?)
}

/// Revokes the lease (the server answers once AWS has deleted the user).
pub async fn revoke(client: &Client, lease_id: &str) -> anyhow::Result<()> {
    match client
        .request(
            "PUT",
            "sys/leases/revoke",
            Some(json!({"lease_id": lease_id})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let status = e
                .downcast_ref::<ServerSaidNo>()
                .map(|no| format!(" (HTTP {})", no.status.as_u16()))
                .unwrap_or_default();
            Err(e).with_context(|| {
                format!(
                    "revoking lease {lease_id} failed{status}; it still expires at its TTL, or run `iamlease lease revoke {lease_id}`"
                )
            })
        }
    }
}
