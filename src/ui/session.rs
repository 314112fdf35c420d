//! The console's side of sessions: the cookies (the session's holds only an opaque id; the
//! sessions themselves are in the store, through `api::internal`, so any replica serves any
//! session) and what a page sees of its session.

use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header;
use axum_extra::extract::cookie::{Cookie, SameSite};
use subtle::ConstantTimeEq;

use crate::api::AppState;
use crate::api::internal::{ApiFailure, find_session};
use crate::seal::{ALNUM, random_string};

pub use crate::api::internal::Flash;

pub const COOKIE: &str = "iamlease_session";
/// Before sign-in there is no session; the login form's CSRF token is a double-submit cookie.
pub const LOGIN_CSRF_COOKIE: &str = "iamlease_login_csrf";
/// An SSO sign-in in progress: the mount and the client nonce only this browser holds, which
/// the callback must present (so a code and state sent to another browser are worthless).
pub const SSO_COOKIE: &str = "iamlease_sso";

/// What a page needs from the session: the token for this request's API calls (never sent to
/// the browser), the CSRF token its forms carry, who is signed in.
#[derive(Clone)]
pub struct SessionView {
    pub id: String,
    pub token: String,
    pub csrf: String,
    pub display_name: String,
}

/// The session the request's cookie names, if it is live (wherever it was made).
pub async fn current(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<SessionView>, ApiFailure> {
    let Some(id) = cookie(headers, COOKIE) else {
        return Ok(None);
    };
    Ok(find_session(state, &id).await?.map(|s| SessionView {
        token: s.token.expose().to_owned(),
        csrf: s.csrf,
        display_name: s.display_name,
        id,
    }))
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()))
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, scoped to the console.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>) -> String {
    build_cookie(name, value, max_age, SameSite::Strict)
}

/// A cookie sent on a top-level navigation from another site too: the SSO cookie, which must
/// come back with the provider's redirect to the callback.
pub fn set_lax_cookie(name: &str, value: &str, max_age: Duration) -> String {
    build_cookie(name, value, Some(max_age), SameSite::Lax)
}

fn build_cookie(name: &str, value: &str, max_age: Option<Duration>, same_site: SameSite) -> String {
    let mut c = Cookie::build((name.to_owned(), value.to_owned()))
        .http_only(true)
        .same_site(same_site)
        .path("/ui");
    if let Some(age) = max_age {
        c = c.max_age(cookie_duration(age));
    }
    c.build().to_string()
}

fn cookie_duration(d: Duration) -> time::Duration {
    time::Duration::seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub fn new_login_csrf() -> String {
    random_string(32, ALNUM)
}
