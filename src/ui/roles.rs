//! The role pages: the form that creates or edits a role (API messages next to their field),
//! deleting a role, and a role's page with Generate, which shows a new credential once.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use super::page::{
    FieldErrors, Fields, Nav, Posted, enc, field, list_lines, nav, place_error, render, session,
    text_of,
};
use super::session::{SessionView, Sessions};
use crate::api::AppState;
use crate::api::internal::call;

const ROLE_FIELDS: &[&str] = &[
    "name",
    "credential_type",
    "policy_arns",
    "policy_document",
    "iam_groups",
    "iam_tags",
    "user_path",
    "permissions_boundary_arn",
    "username_template",
    "default_ttl",
    "max_ttl",
    "role_arns",
    "default_sts_ttl",
    "max_sts_ttl",
    "session_tags",
    "external_id",
    "mfa_serial_number",
];
const LIST_FIELDS: &[&str] = &[
    "policy_arns",
    "iam_groups",
    "iam_tags",
    "role_arns",
    "session_tags",
];

#[derive(Template)]
#[template(path = "role_form.html")]
struct RoleFormPage {
    nav: Nav,
    mount: String,
    is_new: bool,
    v: BTreeMap<String, String>,
    errors: FieldErrors,
    error: Option<String>,
}

impl RoleFormPage {
    fn val(&self, k: &str) -> String {
        self.v.get(k).cloned().unwrap_or_default()
    }
    fn is_type(&self, t: &str) -> bool {
        let cur = self.val("credential_type");
        cur == t || (cur.is_empty() && t == "iam_user")
    }
}

fn role_body(form: &Fields, is_new: bool) -> Value {
    let mut body = serde_json::Map::new();
    for &f in ROLE_FIELDS.iter().filter(|f| **f != "name") {
        let v = field(form, f);
        let value = if v.is_empty() {
            Value::Null
        } else if LIST_FIELDS.contains(&f) {
            json!(list_lines(&v))
        } else {
            json!(v)
        };
        if !(is_new && value.is_null()) {
            body.insert(f.to_owned(), value);
        }
    }
    Value::Object(body)
}

fn role_form(
    sessions: &Sessions,
    s: &SessionView,
    mount: &str,
    is_new: bool,
    v: BTreeMap<String, String>,
    failure: Option<String>,
) -> Response {
    let (errors, error) = match failure {
        Some(m) => place_error(m, ROLE_FIELDS),
        None => (FieldErrors::default(), None),
    };
    let status = if errors.is_empty() && error.is_none() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut res = render(RoleFormPage {
        nav: nav(sessions, s, "mounts"),
        mount: mount.to_owned(),
        is_new,
        v,
        errors,
        error,
    });
    *res.status_mut() = status;
    res
}

fn form_values(form: &Fields) -> BTreeMap<String, String> {
    ROLE_FIELDS
        .iter()
        .map(|f| ((*f).to_owned(), form.get(*f).cloned().unwrap_or_default()))
        .collect()
}

pub async fn new_role(
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path(mount): Path<String>,
) -> Response {
    match session(&sessions, &headers) {
        Ok(s) => role_form(&sessions, &s, &mount, true, BTreeMap::new(), None),
        Err(r) => r,
    }
}

pub async fn edit_role(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path((mount, role)): Path<(String, String)>,
) -> Response {
    let s = match session(&sessions, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match call(
        &state,
        &s.token,
        "GET",
        &format!("{}/roles/{}", enc(&mount), enc(&role)),
        None,
    )
    .await
    {
        Ok(v) => {
            let mut values: BTreeMap<String, String> = ROLE_FIELDS
                .iter()
                .map(|f| ((*f).to_owned(), text_of(&v["data"][*f])))
                .collect();
            values.insert("name".into(), role);
            role_form(&sessions, &s, &mount, false, values, None)
        }
        Err(e) => {
            sessions.flash(&s.id, false, e.message());
            Redirect::to(&format!("/ui/mounts/{}", enc(&mount))).into_response()
        }
    }
}

async fn write_role(
    state: &AppState,
    sessions: &Sessions,
    s: &SessionView,
    mount: &str,
    role: &str,
    form: &Fields,
    is_new: bool,
) -> Response {
    if role.is_empty() {
        return role_form(
            sessions,
            s,
            mount,
            is_new,
            form_values(form),
            Some("name is required, e.g. dev".into()),
        );
    }
    match call(
        state,
        &s.token,
        "POST",
        &format!("{}/roles/{}", enc(mount), enc(role)),
        Some(&role_body(form, is_new)),
    )
    .await
    {
        Ok(v) => {
            let warnings = v["warnings"]
                .as_array()
                .map(|a| a.iter().map(text_of).collect::<Vec<_>>().join("; "))
                .unwrap_or_default();
            let text = if warnings.is_empty() {
                format!("Role {role} saved.")
            } else {
                format!("Role {role} saved. Warnings: {warnings}")
            };
            sessions.flash(&s.id, true, text);
            Redirect::to(&format!("/ui/mounts/{}/roles/{}", enc(mount), enc(role))).into_response()
        }
        Err(e) => role_form(
            sessions,
            s,
            mount,
            is_new,
            form_values(form),
            Some(e.message()),
        ),
    }
}

pub async fn save_new_role(
    State(state): State<AppState>,
    Path(mount): Path<String>,
    Posted { sessions, s, form }: Posted,
) -> Response {
    let role = field(&form, "name");
    write_role(&state, &sessions, &s, &mount, &role, &form, true).await
}

pub async fn save_role(
    State(state): State<AppState>,
    Path((mount, role)): Path<(String, String)>,
    Posted { sessions, s, form }: Posted,
) -> Response {
    write_role(&state, &sessions, &s, &mount, &role, &form, false).await
}

pub async fn delete_role(
    State(state): State<AppState>,
    Path((mount, role)): Path<(String, String)>,
    posted: Posted,
) -> Response {
    posted
        .call_and_flash(
            &state,
            "DELETE",
            &format!("{}/roles/{}", enc(&mount), enc(&role)),
            None,
            |_| format!("Role {role} deleted; its leases still expire and are revoked."),
            |message| message,
        )
        .await;
    Redirect::to(&format!("/ui/mounts/{}", enc(&mount))).into_response()
}

/// Credentials shown once, right after Generate; never stored, never rendered again.
pub struct Creds {
    pub lease_id: String,
    pub lease_duration: i64,
    pub access_key: String,
    pub secret_key: String,
    pub security_token: String,
    pub username: String,
    pub arn: String,
}

#[derive(Template)]
#[template(path = "role.html")]
struct RolePage {
    nav: Nav,
    mount: String,
    role: String,
    summary: Vec<(String, String)>,
    creds: Option<Creds>,
    error: Option<String>,
    ttl: String,
}

// The page's parts after a Generate (credentials, error, chosen TTL) are all optional.
#[allow(clippy::too_many_arguments)]
async fn role_page(
    state: &AppState,
    sessions: &Sessions,
    s: &SessionView,
    mount: &str,
    role: &str,
    creds: Option<Creds>,
    mut error: Option<String>,
    ttl: String,
) -> Response {
    let summary = match call(
        state,
        &s.token,
        "GET",
        &format!("{}/roles/{}", enc(mount), enc(role)),
        None,
    )
    .await
    {
        Ok(v) => v["data"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), text_of(v)))
                    .filter(|(_, v)| !v.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) => {
            error.get_or_insert(e.message());
            Vec::new()
        }
    };
    let mut res = render(RolePage {
        nav: nav(sessions, s, "mounts"),
        mount: mount.to_owned(),
        role: role.to_owned(),
        summary,
        creds,
        error,
        ttl,
    });
    // Belt and braces for the one-time display: nothing may be cached or restored from history.
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, max-age=0"),
    );
    res
}

pub async fn role(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path((mount, role)): Path<(String, String)>,
) -> Response {
    match session(&sessions, &headers) {
        Ok(s) => {
            role_page(
                &state,
                &sessions,
                &s,
                &mount,
                &role,
                None,
                None,
                String::new(),
            )
            .await
        }
        Err(r) => r,
    }
}

pub async fn generate(
    State(state): State<AppState>,
    Path((mount, role)): Path<(String, String)>,
    Posted { sessions, s, form }: Posted,
) -> Response {
    let ttl = field(&form, "ttl");
    let body = if ttl.is_empty() {
        json!({})
    } else {
        json!({"ttl": ttl})
    };
    match call(
        &state,
        &s.token,
        "POST",
        &format!("{}/creds/{}", enc(&mount), enc(&role)),
        Some(&body),
    )
    .await
    {
        Ok(v) => {
            let d = &v["data"];
            let creds = Creds {
                lease_id: text_of(&v["lease_id"]),
                lease_duration: v["lease_duration"].as_i64().unwrap_or_default(),
                access_key: text_of(&d["access_key"]),
                secret_key: text_of(&d["secret_key"]),
                security_token: text_of(&d["security_token"]),
                username: text_of(&d["username"]),
                arn: text_of(&d["arn"]),
            };
            role_page(&state, &sessions, &s, &mount, &role, Some(creds), None, ttl).await
        }
        Err(e) => {
            role_page(
                &state,
                &sessions,
                &s,
                &mount,
                &role,
                None,
                Some(e.message()),
                ttl,
            )
            .await
        }
    }
}
