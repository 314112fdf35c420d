//! What every console page shares: the session check (and the CSRF check of a posted form),
//! the layout's `Nav`, rendering, API messages placed next to the field they name, the
//! call-then-flash step of a form that ends in a redirect, and small form and path helpers.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::Form;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::Value;

use super::session::{Flash, SessionView, current, same};
use crate::api::AppState;
use crate::api::internal::{ApiFailure, call, set_flash, take_flash};

pub(super) type Fields = HashMap<String, String>;

/// What the layout needs: who is signed in, the CSRF token for its forms, the section.
pub struct Nav {
    pub csrf: String,
    pub display_name: String,
    pub section: &'static str,
    pub flash: Option<Flash>,
}

pub(super) async fn nav(state: &AppState, s: &SessionView, section: &'static str) -> Nav {
    let flash = take_flash(state, &s.id).await.unwrap_or_else(|e| {
        // The page is still worth showing; only the last form's message is lost.
        tracing::warn!(error = %e.message(), "reading a console session's message");
        None
    });
    Nav {
        csrf: s.csrf.clone(),
        display_name: s.display_name.clone(),
        section,
        flash,
    }
}

/// Leaves `text` for the session's next page (a form's outcome, shown after its redirect).
pub(super) async fn flash(state: &AppState, s: &SessionView, ok: bool, text: impl Into<String>) {
    let flash = Flash {
        ok,
        text: text.into(),
    };
    if let Err(e) = set_flash(state, &s.id, &flash).await {
        tracing::warn!(error = %e.message(), "keeping a console session's message");
    }
}

/// Field name → the API's message about it.
#[derive(Default)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn get(&self, field: &str) -> String {
        self.0.get(field).cloned().unwrap_or_default()
    }
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Puts the API's message next to the field it names (the earliest field name in the
/// message wins); a message naming none goes to the top of the form.
pub(super) fn place_error(message: String, fields: &[&str]) -> (FieldErrors, Option<String>) {
    let hit = fields
        .iter()
        .filter_map(|f| {
            message
                .match_indices(f)
                .find(|(i, _)| {
                    let before = message[..*i].chars().next_back();
                    let after = message[i + f.len()..].chars().next();
                    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                    !word(before) && !word(after)
                })
                .map(|(i, _)| (i, *f))
        })
        .min();
    match hit {
        Some((_, f)) => {
            let mut e = FieldErrors::default();
            e.0.insert(f.to_owned(), message);
            (e, None)
        }
        None => (FieldErrors::default(), Some(message)),
    }
}

pub(super) fn render(t: impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

pub(super) fn to_login() -> Response {
    Redirect::to("/ui/login").into_response()
}

/// The session, or a redirect to sign in (or, when the store cannot be read, a page that says
/// so rather than one that pretends the session is gone).
// The Err is the response the handler returns at once; boxing it would only add noise.
#[allow(clippy::result_large_err)]
pub(super) async fn session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<SessionView, Response> {
    match current(state, headers).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(to_login()),
        Err(e) => {
            tracing::warn!(error = %e.message(), "reading a console session");
            Err((
                e.status,
                Html("<p>The console cannot read its sessions right now. <a href=\"/ui\">Try again</a>.</p>"),
            )
                .into_response())
        }
    }
}

/// The session, with the form's CSRF token checked.
#[allow(clippy::result_large_err)]
async fn posted(
    state: &AppState,
    headers: &HeaderMap,
    form: &Fields,
) -> Result<SessionView, Response> {
    let s = session(state, headers).await?;
    let sent = form.get("csrf").map(String::as_str).unwrap_or_default();
    if same(sent, &s.csrf) {
        Ok(s)
    } else {
        Err((
            StatusCode::FORBIDDEN,
            Html("<p>This form has expired or did not come from this console. <a href=\"/ui\">Reload</a> and try again.</p>"),
        )
            .into_response())
    }
}

/// A form posted from a signed-in page, its CSRF token checked: what every state-changing
/// console handler takes (it must be the handler's last argument, as it reads the body).
pub struct Posted {
    pub s: SessionView,
    pub form: Fields,
}

impl axum::extract::FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let Form(form) = Form::<Fields>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let s = posted(state, &headers, &form).await?;
        Ok(Posted { s, form })
    }
}

impl Posted {
    /// The step of a form that ends in a redirect: one API call with the session's token, its
    /// outcome the next page's flash (`done` words a success from the answer, `failed` a
    /// refusal from the API's message).
    pub(super) async fn call_and_flash(
        &self,
        state: &AppState,
        method: &str,
        path: &str,
        body: Option<&Value>,
        done: impl FnOnce(&Value) -> String,
        failed: impl FnOnce(String) -> String,
    ) {
        match call(state, &self.s.token, method, path, body).await {
            Ok(v) => flash(state, &self.s, true, done(&v)).await,
            Err(e) => flash(state, &self.s, false, failed(e.message())).await,
        }
    }
}

pub(super) fn field(form: &Fields, k: &str) -> String {
    form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default()
}

pub(super) fn non_empty(form: &Fields, k: &str) -> Option<String> {
    Some(field(form, k)).filter(|v| !v.is_empty())
}

pub(super) fn list_lines(v: &str) -> Vec<String> {
    v.split(['\n', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Everything but RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes one path segment or query value.
pub(super) fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

pub(super) async fn list_keys(
    state: &AppState,
    token: &str,
    path: &str,
) -> Result<Vec<String>, ApiFailure> {
    let sep = if path.contains('?') { '&' } else { '?' };
    match call(state, token, "GET", &format!("{path}{sep}list=true"), None).await {
        Ok(v) => Ok(v["data"]["keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()),
        Err(e) if e.status == StatusCode::NOT_FOUND && e.errors.is_empty() => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The paths of the `aws` secrets engines the token can see, without their slash.
pub(super) async fn aws_mounts(state: &AppState, token: &str) -> Result<Vec<String>, ApiFailure> {
    let v = call(state, token, "GET", "sys/mounts", None).await?;
    Ok(v["data"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v["type"] == "aws")
                .map(|(k, _)| k.trim_end_matches('/').to_owned())
                .collect()
        })
        .unwrap_or_default())
}

pub(super) fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.as_i64() == Some(0) => String::new(),
        Value::Array(a) => a.iter().map(text_of).collect::<Vec<_>>().join("\n"),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", text_of(v)))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}
