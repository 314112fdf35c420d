//! `iamlease login --method oidc`: a person signs in through their provider in the browser, as
//! `vault login -method=oidc` does. The CLI listens on a loopback port for the provider's
//! redirect, asks the server for the auth URL (with a client nonce only this process knows),
//! opens the browser (or prints the URL), and hands the code and state it gets back to the
//! server's callback.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context, anyhow};
use axum::extract::{Query, State};
use axum::response::Html;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::{Client, UsageError};

/// How long the CLI waits for the browser to come back.
const WAIT: Duration = Duration::from_secs(300);

/// The `key=value` options of the method, Vault's names.
pub struct OidcOptions {
    pub role: Option<String>,
    pub port: u16,
    pub listen_address: String,
    pub callback_host: String,
    pub skip_browser: bool,
}

impl OidcOptions {
    pub fn from_fields(mut fields: Map<String, Value>) -> anyhow::Result<Self> {
        let mut take = |k: &str| fields.remove(k).and_then(|v| v.as_str().map(str::to_owned));
        let port = match take("port") {
            None => 8250,
            Some(p) => p
                .parse()
                .map_err(|_| UsageError(format!("port={p:?} is not a port number")))?,
        };
        let skip_browser = match take("skip_browser").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(
                    UsageError(format!("skip_browser={other:?}: use true or false")).into(),
                );
            }
        };
        let options = OidcOptions {
            role: take("role"),
            port,
            listen_address: take("listenaddress").unwrap_or_else(|| "localhost".into()),
            callback_host: take("callbackhost").unwrap_or_else(|| "localhost".into()),
            skip_browser,
        };
        if let Some(unknown) = fields.keys().next() {
            return Err(UsageError(format!(
                "{unknown:?} is not an option of the oidc method (role, port, listenaddress, callbackhost, skip_browser)"
            ))
            .into());
        }
        Ok(options)
    }
}

/// Signs in and returns the server's login answer (with `auth`).
pub async fn sign_in(client: &Client, mount: &str, options: OidcOptions) -> anyhow::Result<Value> {
    let listener = tokio::net::TcpListener::bind((options.listen_address.as_str(), options.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{} for the browser's redirect (choose another with port=…)",
                options.listen_address, options.port
            )
        })?;
    let port = listener.local_addr()?.port();
    let redirect_uri = format!("http://{}:{port}/oidc/callback", options.callback_host);
    let client_nonce = uuid::Uuid::new_v4().simple().to_string();
    let answer = client
        .public(
            "POST",
            &format!("auth/{mount}/oidc/auth_url"),
            Some(json!({
                "role": options.role,
                "redirect_uri": redirect_uri,
                "client_nonce": client_nonce,
            })),
        )
        .await?;
    let auth_url = answer["data"]["auth_url"]
        .as_str()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| anyhow!("the server gave no auth_url; check the role's allowed_redirect_uris holds {redirect_uri}"))?
        .to_owned();

    let (tx, mut rx) = mpsc::channel::<HashMap<String, String>>(1);
    let app = axum::Router::new()
        .route("/oidc/callback", axum::routing::get(redirected))
        .with_state(tx);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut err = std::io::stderr();
    writeln!(
        err,
        "Complete the login via your OIDC provider. Launching browser to:\n\n    {auth_url}\n"
    )?;
    if options.skip_browser || !open_browser(&auth_url) {
        writeln!(
            err,
            "Open the URL above in a browser to continue; waiting for its redirect to {redirect_uri}."
        )?;
    }
    let params = tokio::time::timeout(WAIT, rx.recv()).await;
    server.abort();
    let params = params
        .map_err(|_| {
            anyhow!(
                "no redirect from the browser within {} minutes",
                WAIT.as_secs() / 60
            )
        })?
        .ok_or_else(|| anyhow!("the redirect listener stopped"))?;
    if let Some(error) = params.get("error") {
        let detail = params
            .get("error_description")
            .map(String::as_str)
            .unwrap_or("");
        return Err(anyhow!(
            "the provider refused the sign-in: {error} {detail}"
        ));
    }
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "state",
            params.get("state").map(String::as_str).unwrap_or(""),
        )
        .append_pair("code", params.get("code").map(String::as_str).unwrap_or(""))
        .append_pair("client_nonce", &client_nonce)
        .finish();
    client
        .public("GET", &format!("auth/{mount}/oidc/callback?{query}"), None)
        .await
}

async fn redirected(
    State(tx): State<mpsc::Sender<HashMap<String, String>>>,
    Query(params): Query<HashMap<String, String>>,
) -> Html<&'static str> {
    let _ = tx.try_send(params);
    Html(
        "<!doctype html><title>iamlease</title><p>Signed in to iamlease. You can close this window and return to the terminal.</p>",
    )
}

/// Opens `url` in the desktop's browser; false when there is none to open.
fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
