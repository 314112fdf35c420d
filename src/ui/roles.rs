//! The role pages: the form that creates or edits a role (API messages next to their field),
//! deleting a role, and a role's page with Generate, which shows a new credential once.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use super::page::{
    FieldErrors, Fields, Nav, Posted, enc, field, flash, list_lines, nav, place_error, render,
    session, text_of,
};
use super::session::SessionView;
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

async fn role_form(
    state: &AppState,
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
        nav: nav(state, s, "mounts").await,
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
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(mount): Path<String>,
) -> Response {
    match session(&state, &headers).await {
        Ok(s) => role_form(&state, &s, &mount, true, BTreeMap::new(), None).await,
        Err(r) => r,
    }
}

pub async fn edit_role(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((mount, role)): Path<(String, String)>,
) -> Response {
    let s = match session(&state, &headers).await {
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
            role_form(&state, &s, &mount, false, values, None).await
        }
        Err(e) => {
            flash(&state, &s, false, e.message()).await;
            Redirect::to(&format!("/ui/mounts/{}", enc(&mount))).into_response()
        }
    }
}

async fn write_role(
    state: &AppState,
    s: &SessionView,
    mount: &str,
    role: &str,
    form: &Fields,
    is_new: bool,
) -> Response {
    if role.is_empty() {
        return role_form(
            state,
            s,
            mount,
            is_new,
            form_values(form),
            Some("name is required, e.g. dev".into()),
        )
        .await;
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
            flash(state, s, true, text).await;
            Redirect::to(&format!("/ui/mounts/{}/roles/{}", enc(mount), enc(role))).into_response()
        }
        Err(e) => {
            role_form(
                state,
                s,
                mount,
                is_new,
                form_values(form),
                Some(e.message()),
            )
            .await
        }
    }
}

pub async fn save_new_role(
    State(state): State<AppState>,
    Path(mount): Path<String>,
    Posted { s, form }: Posted,
) -> Response {
    let role = field(&form, "name");
    write_role(&state, &s, &mount, &role, &form, true).await
}

pub async fn save_role(
    State(state): State<AppState>,
    Path((mount, role)): Path<(String, String)>,
    Posted { s, form }: Posted,
) -> Response {
    write_role(&state, &s, &mount, &role, &form, false).await
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
    /// The TTLs Generate offers: only those the role allows.
    ttl_choices: Vec<(String, String)>,
    /// The role does not exist: the page says so and offers nothing to act on.
    missing: bool,
}

/// What Generate offers, in seconds and as the TTL it sends.
const TTL_CHOICES: &[(i64, &str, &str)] = &[
    (900, "15m", "15 minutes"),
    (3600, "1h", "1 hour"),
    (4 * 3600, "4h", "4 hours"),
    (8 * 3600, "8h", "8 hours"),
    (12 * 3600, "12h", "12 hours"),
    (24 * 3600, "24h", "24 hours"),
    (36 * 3600, "36h", "36 hours"),
];

/// The choices up to the role's ceiling: `max_ttl` for IAM users (else the mount's
/// `lease_max`, else 24 h); `max_sts_ttl` for STS types, else AWS's own limit.
fn ttl_choices(role: &Value, mount_max: Option<i64>) -> Vec<(String, String)> {
    let secs = |k: &str| role[k].as_i64().filter(|s| *s > 0);
    let ceiling = match role["credential_type"].as_str() {
        Some("iam_user") | None => secs("max_ttl").or(mount_max).unwrap_or(24 * 3600),
        Some("assumed_role") => secs("max_sts_ttl").unwrap_or(12 * 3600),
        Some(_) => secs("max_sts_ttl").unwrap_or(36 * 3600),
    };
    TTL_CHOICES
        .iter()
        .filter(|(s, _, _)| *s <= ceiling)
        .map(|(_, v, label)| ((*v).to_owned(), (*label).to_owned()))
        .collect()
}

// The page's parts after a Generate (credentials, error, chosen TTL) are all optional.
#[allow(clippy::too_many_arguments)]
async fn role_page(
    state: &AppState,
    s: &SessionView,
    mount: &str,
    role: &str,
    creds: Option<Creds>,
    mut error: Option<String>,
    ttl: String,
) -> Response {
    let mut missing = false;
    let definition = match call(
        state,
        &s.token,
        "GET",
        &format!("{}/roles/{}", enc(mount), enc(role)),
        None,
    )
    .await
    {
        Ok(v) => v["data"].clone(),
        Err(e) => {
            missing = e.status == StatusCode::NOT_FOUND;
            if !missing {
                error.get_or_insert(e.message());
            }
            Value::Null
        }
    };
    let summary = definition
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), text_of(v)))
                .filter(|(_, v)| !v.is_empty())
                .collect()
        })
        .unwrap_or_default();
    // The mount's ceiling matters only to an IAM-user role without its own max_ttl.
    let mount_max = match definition["max_ttl"].as_i64() {
        Some(0) if definition["credential_type"] == "iam_user" => call(
            state,
            &s.token,
            "GET",
            &format!("{}/config/lease", enc(mount)),
            None,
        )
        .await
        .ok()
        .and_then(|v| v["data"]["lease_max"].as_str().map(str::to_owned))
        .and_then(|t| crate::duration::Ttl::parse(&t).ok())
        .map(|t| t.as_secs() as i64),
        _ => None,
    };
    let ttl_choices = ttl_choices(&definition, mount_max);
    let mut res = render(RolePage {
        nav: nav(state, s, "mounts").await,
        mount: mount.to_owned(),
        role: role.to_owned(),
        summary,
        creds,
        error,
        ttl,
        ttl_choices,
        missing,
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
    headers: HeaderMap,
    Path((mount, role)): Path<(String, String)>,
) -> Response {
    match session(&state, &headers).await {
        Ok(s) => role_page(&state, &s, &mount, &role, None, None, String::new()).await,
        Err(r) => r,
    }
}

pub async fn generate(
    State(state): State<AppState>,
    Path((mount, role)): Path<(String, String)>,
    Posted { s, form }: Posted,
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
            role_page(&state, &s, &mount, &role, Some(creds), None, ttl).await
        }
        Err(e) => role_page(&state, &s, &mount, &role, None, Some(e.message()), ttl).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(role: Value, mount_max: Option<i64>) -> Vec<String> {
        ttl_choices(&role, mount_max)
            .into_iter()
            .map(|(v, _)| v)
            .collect()
    }

    #[test]
    fn generate_offers_only_ttls_the_role_allows() {
        let user = |max: i64| json!({"credential_type": "iam_user", "max_ttl": max});
        assert_eq!(offered(user(8 * 3600), None), ["15m", "1h", "4h", "8h"]);
        assert_eq!(offered(user(0), Some(3600)), ["15m", "1h"]);
        assert_eq!(offered(user(0), None).last().unwrap(), "24h");
        let sts = json!({"credential_type": "assumed_role", "max_sts_ttl": 0});
        assert_eq!(offered(sts, None).last().unwrap(), "12h");
        let fed = json!({"credential_type": "federation_token", "max_sts_ttl": 0});
        assert_eq!(offered(fed, None).last().unwrap(), "36h");
    }
}
