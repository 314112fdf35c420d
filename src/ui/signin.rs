//! Signing in and out of the console: the sign-in form (with its own CSRF cookie, as there is
//! no session yet), checking the token with `lookup-self`, the session cookie, signing out
//! (this session, or every session of the token).

use askama::Template;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::page::{Fields, Posted, field, render, session, to_login};
use super::session::{
    COOKIE, LOGIN_CSRF_COOKIE, SSO_COOKIE, cookie, new_login_csrf, same, set_cookie,
};
use crate::api::AppState;
use crate::api::internal::{call, end_session, end_sessions_of_token, open_session};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    error: Option<String>,
}

pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session(&state, &headers).await {
        Ok(_) => Redirect::to("/ui/mounts").into_response(),
        Err(to_login_or_failure) => to_login_or_failure,
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
        Ok(_) => signed_in(&state, &token, Redirect::to("/ui/mounts").into_response()).await,
        Err(e) => login_page(Some(e.message()), StatusCode::FORBIDDEN),
    }
}

/// Starts a session for `token` (which `lookup-self` accepted) on `res`: the session cookie
/// set, the sign-in cookies cleared.
pub(super) async fn signed_in(state: &AppState, token: &str, mut res: Response) -> Response {
    let session = match open_session(state, token).await {
        Ok(s) => s,
        Err(e) => return login_page(Some(e.message()), e.status),
    };
    let max_age = std::time::Duration::from_secs(session.lifetime_secs);
    let h = res.headers_mut();
    for c in [
        set_cookie(COOKIE, session.id.expose(), Some(max_age)),
        set_cookie(LOGIN_CSRF_COOKIE, "", Some(std::time::Duration::ZERO)),
        set_cookie(SSO_COOKIE, "", Some(std::time::Duration::ZERO)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    res
}

/// `POST /ui/logout`: ends this session, or with `everywhere`, every console session of the
/// token (other browsers included), on every replica.
pub async fn logout(State(state): State<AppState>, Posted { s, form }: Posted) -> Response {
    let ended = if field(&form, "everywhere").is_empty() {
        end_session(&state, &s.id).await
    } else {
        end_sessions_of_token(&state, &s.id).await.map(|_| ())
    };
    if let Err(e) = ended {
        // Not signed out: saying otherwise would leave a session the user believes is gone.
        tracing::warn!(error = %e.message(), "ending a console session");
        return (
            e.status,
            axum::response::Html(
                "<p>Signing out failed; the session is still open. <a href=\"/ui\">Try again</a>.</p>",
            ),
        )
            .into_response();
    }
    let mut res = to_login();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(COOKIE, "", Some(std::time::Duration::ZERO))) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}
