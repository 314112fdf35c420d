//! Signing in and out of the console: the sign-in form (with its own CSRF cookie, as there is
//! no session yet), checking the token with `lookup-self`, the session cookie, signing out.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::page::{Fields, Posted, field, render, to_login};
use super::session::{
    COOKIE, LIFETIME_SECS, LOGIN_CSRF_COOKIE, SSO_COOKIE, Sessions, cookie, new_login_csrf, same,
    set_cookie,
};
use crate::api::AppState;
use crate::api::internal::call;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    error: Option<String>,
}

pub async fn home(Extension(sessions): Extension<Arc<Sessions>>, headers: HeaderMap) -> Response {
    match sessions.get(&headers) {
        Some(_) => Redirect::to("/ui/mounts").into_response(),
        None => to_login(),
    }
}

pub(super) fn login_page(error: Option<String>, status: StatusCode) -> Response {
    let csrf = new_login_csrf();
    let mut res = render(LoginPage {
        csrf: csrf.clone(),
        error,
    });
    *res.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(&set_cookie(LOGIN_CSRF_COOKIE, &csrf, None)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// The sign-in forms' CSRF check (a double-submit cookie, as there is no session yet): the
/// page to answer when it fails.
pub(super) fn expired_form(headers: &HeaderMap, form: &Fields) -> Option<Response> {
    let expected = cookie(headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    (!same(&field(form, "csrf"), &expected)).then(|| {
        login_page(
            Some("the sign-in form expired; please try again".into()),
            StatusCode::FORBIDDEN,
        )
    })
}

pub async fn login_form() -> Response {
    login_page(None, StatusCode::OK)
}

pub async fn login(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    if let Some(expired) = expired_form(&headers, &form) {
        return expired;
    }
    let token = field(&form, "token");
    if token.is_empty() {
        return login_page(Some("enter a token".into()), StatusCode::BAD_REQUEST);
    }
    match call(&state, &token, "GET", "auth/token/lookup-self", None).await {
        Ok(v) => signed_in(
            &sessions,
            &token,
            &v,
            Redirect::to("/ui/mounts").into_response(),
        ),
        Err(e) => login_page(Some(e.message()), StatusCode::FORBIDDEN),
    }
}

/// Starts a session for `token` (whose `lookup-self` answer is `me`) on `res`: the session
/// cookie set, the sign-in cookies cleared.
pub(super) fn signed_in(
    sessions: &Sessions,
    token: &str,
    me: &serde_json::Value,
    mut res: Response,
) -> Response {
    let name = me["data"]["display_name"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("token")
        .to_owned();
    let id = sessions.create(token, name);
    let h = res.headers_mut();
    for c in [
        set_cookie(
            COOKIE,
            &id,
            Some(std::time::Duration::from_secs(LIFETIME_SECS)),
        ),
        set_cookie(LOGIN_CSRF_COOKIE, "", Some(std::time::Duration::ZERO)),
        set_cookie(SSO_COOKIE, "", Some(std::time::Duration::ZERO)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    res
}

pub async fn logout(Posted { sessions, s, .. }: Posted) -> Response {
    sessions.remove(&s.id);
    let mut res = to_login();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(COOKIE, "", Some(std::time::Duration::ZERO))) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}
