//! "Sign in with SSO": the console's side of the OIDC sign-in. It asks the API for the
//! provider's auth URL (redirecting back to `/ui/oidc/callback`) with a client nonce kept in a
//! cookie of this browser, and on the way back trades state, code and nonce for a token, which
//! becomes the session's, as a pasted token would.

use std::time::Duration;

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::json;

use super::page::{Fields, field, render};
use super::session::{SSO_COOKIE, cookie, set_lax_cookie};
use super::signin::{expired_form, login_page, signed_in};
use crate::api::AppState;
use crate::api::internal::call;
use crate::seal::{ALNUM, random_string};

/// As long as the server keeps the sign-in's state.
const SIGN_IN_TTL: Duration = Duration::from_secs(600);

/// Where the provider sends the browser back: this console, as the browser reached it.
fn callback_uri(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    if host.is_empty() || host.contains(['/', '\\', '@', ' ']) {
        return None;
    }
    let scheme = if state.https { "https" } else { "http" };
    Some(format!("{scheme}://{host}/ui/oidc/callback"))
}

/// A page that sends the browser on to `url`. A page rather than a redirect: the console's
/// CSP allows forms to post only to itself, and a redirect answering a form counts as the form.
#[derive(Template)]
#[template(path = "continue.html")]
struct Continue<'a> {
    url: &'a str,
}

fn go_to(url: &str) -> Response {
    render(Continue { url })
}

/// `POST /ui/sso`: `mount` (default `oidc`) and an optional `role`.
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    if let Some(expired) = expired_form(&headers, &form) {
        return expired;
    }
    let mount = match field(&form, "mount").trim().trim_matches('/') {
        "" => "oidc".to_owned(),
        m => m.to_owned(),
    };
    if !mount
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return login_page(
            Some(format!("{mount:?} is not an auth mount path")),
            StatusCode::BAD_REQUEST,
        );
    }
    let Some(redirect_uri) = callback_uri(&state, &headers) else {
        return login_page(
            Some("the request has no usable Host header".into()),
            StatusCode::BAD_REQUEST,
        );
    };
    let role = field(&form, "role");
    let nonce = random_string(32, ALNUM);
    let body = json!({
        "role": (!role.trim().is_empty()).then(|| role.trim().to_owned()),
        "redirect_uri": redirect_uri,
        "client_nonce": nonce,
    });
    let answer = match call(
        &state,
        "",
        "POST",
        &format!("auth/{mount}/oidc/auth_url"),
        Some(&body),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return login_page(Some(e.message()), StatusCode::BAD_REQUEST),
    };
    let Some(url) = answer["data"]["auth_url"]
        .as_str()
        .filter(|u| !u.is_empty())
    else {
        return login_page(
            Some("the server gave no sign-in URL".into()),
            StatusCode::BAD_GATEWAY,
        );
    };
    let mut res = go_to(url);
    if let Ok(v) = HeaderValue::from_str(&set_lax_cookie(
        SSO_COOKIE,
        &format!("{mount}.{nonce}"),
        SIGN_IN_TTL,
    )) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// `GET /ui/oidc/callback`: the provider's redirect, with `state` and `code` (or `error`).
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<Fields>,
) -> Response {
    if let Some(error) = params.get("error") {
        let detail = params
            .get("error_description")
            .map(String::as_str)
            .unwrap_or("");
        return login_page(
            Some(format!(
                "the provider refused the sign-in: {error} {detail}"
            )),
            StatusCode::BAD_REQUEST,
        );
    }
    let Some((mount, nonce)) = cookie(&headers, SSO_COOKIE)
        .and_then(|c| c.split_once('.').map(|(m, n)| (m.to_owned(), n.to_owned())))
    else {
        return login_page(
            Some(
                "this sign-in was not started in this browser, or took too long; start it again"
                    .into(),
            ),
            StatusCode::BAD_REQUEST,
        );
    };
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("state", &field(&params, "state"))
        .append_pair("code", &field(&params, "code"))
        .append_pair("client_nonce", &nonce)
        .finish();
    let answer = match call(
        &state,
        "",
        "GET",
        &format!("auth/{mount}/oidc/callback?{query}"),
        None,
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return login_page(Some(e.message()), StatusCode::FORBIDDEN),
    };
    let Some(token) = answer["auth"]["client_token"].as_str() else {
        return login_page(
            Some("the server's answer has no token".into()),
            StatusCode::BAD_GATEWAY,
        );
    };
    if let Err(e) = call(&state, token, "GET", "auth/token/lookup-self", None).await {
        return login_page(Some(e.message()), StatusCode::FORBIDDEN);
    }
    // A page, not a redirect: the session cookie is SameSite=Strict, and a navigation that
    // began at the provider would not carry it.
    signed_in(&state, token, go_to("/ui/mounts")).await
}
