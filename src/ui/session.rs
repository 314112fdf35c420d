//! Console sessions, in server memory: an opaque id in the cookie maps to the token, a CSRF
//! token and a one-shot message. Nothing secret ever reaches the browser or the store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header;
use axum_extra::extract::cookie::{Cookie, SameSite};
use subtle::ConstantTimeEq;

use crate::seal::{ALNUM, Secret, random_string};

pub const COOKIE: &str = "iamlease_session";
/// Before sign-in there is no session; the login form's CSRF token is a double-submit cookie.
pub const LOGIN_CSRF_COOKIE: &str = "iamlease_login_csrf";
/// An SSO sign-in in progress: the mount and the client nonce only this browser holds, which
/// the callback must present (so a code and state sent to another browser are worthless).
pub const SSO_COOKIE: &str = "iamlease_sso";
/// A session ends after this long, whatever the token's own TTL (which the API also enforces).
const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Bounds memory: the oldest sessions are dropped first.
const MAX_SESSIONS: usize = 10_000;

pub struct Session {
    pub token: Secret,
    pub csrf: String,
    pub display_name: String,
    pub flash: Option<Flash>,
    created: Instant,
}

#[derive(Clone)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

/// What a page needs from the session (the token itself stays here).
#[derive(Clone)]
pub struct SessionView {
    pub id: String,
    pub token: String,
    pub csrf: String,
    pub display_name: String,
}

#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn create(&self, token: &str, display_name: String) -> String {
        let id = random_string(43, ALNUM);
        let mut map = self.by_id.lock().expect("sessions lock");
        map.retain(|_, s| s.created.elapsed() < LIFETIME);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                token: Secret::new(token.to_owned()),
                csrf: random_string(32, ALNUM),
                display_name,
                flash: None,
                created: Instant::now(),
            },
        );
        id
    }

    pub fn get(&self, headers: &HeaderMap) -> Option<SessionView> {
        let id = cookie(headers, COOKIE)?;
        let map = self.by_id.lock().expect("sessions lock");
        let s = map.get(&id).filter(|s| s.created.elapsed() < LIFETIME)?;
        Some(SessionView {
            token: s.token.expose().to_owned(),
            csrf: s.csrf.clone(),
            display_name: s.display_name.clone(),
            id,
        })
    }

    pub fn remove(&self, id: &str) {
        self.by_id.lock().expect("sessions lock").remove(id);
    }

    pub fn flash(&self, id: &str, ok: bool, text: impl Into<String>) {
        if let Some(s) = self.by_id.lock().expect("sessions lock").get_mut(id) {
            s.flash = Some(Flash {
                ok,
                text: text.into(),
            });
        }
    }

    pub fn take_flash(&self, id: &str) -> Option<Flash> {
        self.by_id
            .lock()
            .expect("sessions lock")
            .get_mut(id)
            .and_then(|s| s.flash.take())
    }
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

pub const LIFETIME_SECS: u64 = LIFETIME.as_secs();
