//! A small Vault-API client for the CLI: address and token resolution, requests, and turning
//! `{"errors": [...]}` answers into messages.

use std::time::Duration;

use anyhow::{Context, anyhow};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// An answer from the server that was not a success: the CLI prints it and exits 1.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ServerSaidNo {
    pub status: StatusCode,
    pub message: String,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    address: String,
    token: Option<String>,
}

impl Client {
    /// Address: `--address`, then `IAMLEASE_ADDR`, then `VAULT_ADDR`, then the dev default.
    /// Token: `--token`, then `IAMLEASE_TOKEN`, then `VAULT_TOKEN`, then what `iamlease login`
    /// stored in `~/.iamlease-token`.
    pub fn new(address: Option<String>, token: Option<String>) -> anyhow::Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let address = address
            .or_else(|| env("IAMLEASE_ADDR"))
            .or_else(|| env("VAULT_ADDR"))
            .unwrap_or_else(|| "http://127.0.0.1:8200".into());
        let token = token
            .or_else(|| env("IAMLEASE_TOKEN"))
            .or_else(|| env("VAULT_TOKEN"))
            .or_else(super::stored_token);
        check_transport(&address, env("IAMLEASE_INSECURE_HTTP").as_deref())?;
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(120));
        // Trust this CA (PEM) in addition to the system's, as the vault CLI does with VAULT_CACERT.
        if let Some(path) = env("IAMLEASE_CACERT").or_else(|| env("VAULT_CACERT")) {
            let pem = std::fs::read(&path)
                .with_context(|| format!("reading the CA certificate {path} (IAMLEASE_CACERT)"))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{path} is not a PEM certificate"))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().context("building the HTTP client")?;
        Ok(Client {
            http,
            address: address.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The server's address, without a trailing `/`.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Sends a request to `/v1/{path}`; returns the JSON body (`Value::Null` for 204).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let token = self.token.as_deref().ok_or_else(|| {
            anyhow!("no token: run `iamlease login`, set IAMLEASE_TOKEN (or VAULT_TOKEN) or pass --token")
        })?;
        self.send(method, path, body, Some(token)).await
    }

    /// A login: a POST that needs no token.
    pub async fn login(
        &self,
        path: &str,
        body: serde_json::Map<String, Value>,
    ) -> anyhow::Result<Value> {
        self.public("POST", path, Some(Value::Object(body))).await
    }

    /// A request that needs no token (logins, the OIDC sign-in).
    pub async fn public(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.send(method, path, body, None).await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> anyhow::Result<Value> {
        let method = Method::from_bytes(method.as_bytes()).expect("valid method");
        let url = format!("{}/v1/{}", self.address, path.trim_start_matches('/'));
        let mut req = self.http.request(method, &url);
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the iamlease server at {}; is it running? (set IAMLEASE_ADDR or --address)", self.address))?;
        let status = resp.status();
        let bytes = resp.bytes().await.context("reading the server's answer")?;
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_success() {
            return Ok(json);
        }
        let message = match json.get("errors").and_then(Value::as_array) {
            Some(errors) if !errors.is_empty() => errors
                .iter()
                .map(|e| {
                    e.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| e.to_string())
                })
                .collect::<Vec<_>>()
                .join("; "),
            Some(_) if status == StatusCode::NOT_FOUND => "nothing found".into(),
            _ => json.to_string(),
        };
        Err(ServerSaidNo { status, message }.into())
    }
}

/// Tokens and credentials must not cross a network in clear: plain `http://` is allowed only to
/// a loopback address unless `IAMLEASE_INSECURE_HTTP=true` says the operator means it.
fn check_transport(address: &str, insecure: Option<&str>) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(address).with_context(|| {
        format!("server address {address:?} is not a URL like https://host:8200")
    })?;
    if url.scheme() != "http" || matches!(insecure, Some("1" | "true" | "yes")) {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(super::UsageError(format!(
            "refusing plain http:// to {address}: tokens and credentials would cross the network unencrypted; \
             use https:// (with IAMLEASE_CACERT for a private CA), or set IAMLEASE_INSECURE_HTTP=true"
        ))
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::check_transport;

    #[test]
    fn plain_http_only_to_loopback_unless_told() {
        for ok in [
            "http://127.0.0.1:8200",
            "http://localhost:8200",
            "http://[::1]:8200",
            "https://vault.example.com",
        ] {
            assert!(check_transport(ok, None).is_ok(), "{ok}");
        }
        let e = check_transport("http://10.0.0.5:8200", None).unwrap_err();
        assert!(e.to_string().contains("refusing plain http://"), "{e}");
        assert!(check_transport("http://10.0.0.5:8200", Some("true")).is_ok());
    }
}
