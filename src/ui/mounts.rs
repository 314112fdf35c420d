//! The secrets-engine pages: the list of mounts (and mounting a new one), and one mount's page
//! with its AWS connection (assumed role or access keys), the connection check, the guided
//! setup documents, its roles and its static roles (with their last and next rotation).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::page::{
    FieldErrors, Fields, Nav, Posted, enc, field, flash, list_keys, nav, non_empty, place_error,
    render, session, text_of,
};
use super::session::SessionView;
use crate::api::AppState;
use crate::api::internal::call;

pub struct MountRow {
    pub path: String,
    pub default_ttl: String,
    pub max_ttl: String,
}

#[derive(Template)]
#[template(path = "mounts.html")]
struct MountsPage {
    nav: Nav,
    mounts: Vec<MountRow>,
    error: Option<String>,
    new_path: String,
}

async fn mounts_page(
    state: &AppState,
    s: &SessionView,
    error: Option<String>,
    new_path: String,
) -> Response {
    let (mounts, load_error) = match call(state, &s.token, "GET", "sys/mounts", None).await {
        Ok(v) => {
            let rows = v["data"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(_, v)| v["type"] == "aws")
                        .map(|(k, v)| MountRow {
                            path: k.trim_end_matches('/').to_owned(),
                            default_ttl: text_of(&v["config"]["default_lease_ttl"]),
                            max_ttl: text_of(&v["config"]["max_lease_ttl"]),
                        })
                        .collect()
                })
                .unwrap_or_default();
            (rows, None)
        }
        Err(e) => (Vec::new(), Some(e.message())),
    };
    render(MountsPage {
        nav: nav(state, s, "mounts").await,
        mounts,
        error: error.or(load_error),
        new_path,
    })
}

pub async fn mounts(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session(&state, &headers).await {
        Ok(s) => mounts_page(&state, &s, None, String::new()).await,
        Err(r) => r,
    }
}

pub async fn enable_mount(State(state): State<AppState>, Posted { s, form }: Posted) -> Response {
    let path = field(&form, "path").trim_matches('/').to_owned();
    if path.is_empty() {
        return mounts_page(
            &state,
            &s,
            Some("path: enter a mount path, e.g. aws-prod".into()),
            path,
        )
        .await;
    }
    match call(
        &state,
        &s.token,
        "POST",
        &format!("sys/mounts/{}", enc(&path)),
        Some(&json!({"type": "aws"})),
    )
    .await
    {
        Ok(_) => {
            flash(
                &state,
                &s,
                true,
                format!("{path}/ is mounted; now connect it to AWS."),
            )
            .await;
            Redirect::to(&format!("/ui/mounts/{}", enc(&path))).into_response()
        }
        Err(e) => mounts_page(&state, &s, Some(e.message()), path).await,
    }
}

// ---- a mount: its AWS connection and roles -------------------------------------------------

#[derive(Default)]
pub struct Connection {
    pub configured: bool,
    pub access_key: String,
    pub region: String,
    pub role_arn: String,
    pub external_id: String,
    pub iam_endpoint: String,
    pub sts_endpoint: String,
}

pub struct CheckResult {
    pub ok: bool,
    pub text: String,
}

#[derive(Template)]
#[template(path = "mount.html")]
struct MountPage {
    nav: Nav,
    mount: String,
    conn: Connection,
    tab: String,
    errors: FieldErrors,
    error: Option<String>,
    check: Option<CheckResult>,
    principal: String,
    trust_policy: String,
    policy: String,
    setup_notes: Vec<String>,
    roles: Vec<String>,
    static_roles: Vec<StaticRoleRow>,
    /// The account's IAM users against their quota, as `iam_user` issues are checked.
    quota: String,
}

/// A static role on the mount page: whose key, when it was and will next be rotated, and the
/// last error while rotations fail.
pub struct StaticRoleRow {
    pub name: String,
    pub username: String,
    pub last_rotation: String,
    pub next_rotation: String,
    pub last_error: String,
}

const CONNECTION_FIELDS: &[&str] = &[
    "access_key",
    "secret_key",
    "region",
    "role_arn",
    "external_id",
    "iam_endpoint",
    "sts_endpoint",
];

struct MountExtras {
    tab: Option<String>,
    errors: FieldErrors,
    error: Option<String>,
    check: Option<CheckResult>,
    form: Option<Fields>,
}

async fn mount_page(
    state: &AppState,
    s: &SessionView,
    mount: &str,
    extras: MountExtras,
) -> Response {
    let m = enc(mount);
    let mut error = extras.error;
    let mut conn = match call(state, &s.token, "GET", &format!("{m}/config/root"), None).await {
        Ok(v) => {
            let d = &v["data"];
            Connection {
                configured: true,
                access_key: text_of(&d["access_key"]),
                region: text_of(&d["region"]),
                role_arn: text_of(&d["role_arn"]),
                external_id: text_of(&d["external_id"]),
                iam_endpoint: text_of(&d["iam_endpoint"]),
                sts_endpoint: text_of(&d["sts_endpoint"]),
            }
        }
        Err(e) if e.status == StatusCode::NOT_FOUND || e.status == StatusCode::BAD_REQUEST => {
            Connection::default()
        }
        Err(e) => {
            error.get_or_insert(e.message());
            Connection::default()
        }
    };
    if let Some(form) = &extras.form {
        // Show what the person typed (never the secret) after a refused save.
        conn.access_key = field(form, "access_key");
        conn.region = field(form, "region");
        conn.role_arn = field(form, "role_arn");
        conn.external_id = field(form, "external_id");
        conn.iam_endpoint = field(form, "iam_endpoint");
        conn.sts_endpoint = field(form, "sts_endpoint");
    }
    let plan_query = if conn.external_id.is_empty() {
        String::new()
    } else {
        format!("?external_id={}", enc(&conn.external_id))
    };
    let (principal, trust_policy, policy, setup_notes, generated_id) = match call(
        state,
        &s.token,
        "GET",
        &format!("{m}/setup{plan_query}"),
        None,
    )
    .await
    {
        Ok(v) => {
            let d = &v["data"];
            (
                text_of(&d["principal_arn"]),
                serde_json::to_string_pretty(&d["trust_policy"]).unwrap_or_default(),
                serde_json::to_string_pretty(&d["policy"]).unwrap_or_default(),
                d["notes"]
                    .as_array()
                    .map(|a| a.iter().map(text_of).collect())
                    .unwrap_or_default(),
                text_of(&d["external_id"]),
            )
        }
        Err(e) => (
            String::new(),
            String::new(),
            String::new(),
            vec![e.message()],
            String::new(),
        ),
    };
    if conn.external_id.is_empty() {
        conn.external_id = generated_id;
    }
    let roles = match list_keys(state, &s.token, &format!("{m}/roles")).await {
        Ok(r) => r,
        Err(e) => {
            error.get_or_insert(e.message());
            Vec::new()
        }
    };
    let mut static_roles = Vec::new();
    match list_keys(state, &s.token, &format!("{m}/static-roles")).await {
        Ok(names) => {
            for name in names {
                let path = format!("{m}/static-roles/{}", enc(&name));
                match call(state, &s.token, "GET", &path, None).await {
                    Ok(v) => {
                        let d = &v["data"];
                        static_roles.push(StaticRoleRow {
                            name,
                            username: text_of(&d["username"]),
                            last_rotation: text_of(&d["last_rotation"]),
                            next_rotation: text_of(&d["next_rotation"]),
                            last_error: text_of(&d["last_error"]),
                        });
                    }
                    Err(e) => {
                        error.get_or_insert(e.message());
                    }
                }
            }
        }
        // A token that may list roles but not static roles still sees the rest of the page.
        Err(e) if e.status == StatusCode::FORBIDDEN => {}
        Err(e) => {
            error.get_or_insert(e.message());
        }
    }
    let quota = quota_line(state, &s.token, &m).await;
    let tab = extras.tab.unwrap_or_else(|| {
        if !conn.access_key.is_empty() && conn.role_arn.is_empty() {
            "keys".into()
        } else {
            "role".into()
        }
    });
    if conn.region.is_empty() {
        conn.region = "us-east-1".into();
    }
    render(MountPage {
        nav: nav(state, s, "mounts").await,
        mount: mount.to_owned(),
        conn,
        tab,
        errors: extras.errors,
        error,
        check: extras.check,
        principal,
        trust_policy,
        policy,
        setup_notes,
        roles,
        static_roles,
        quota,
    })
}

/// "N of M IAM users…" for the mount page; bounded, since AWS may be slow or unreachable.
async fn quota_line(state: &AppState, token: &str, m: &str) -> String {
    let path = format!("{m}/iam-quota");
    let read = call(state, token, "GET", &path, None);
    match tokio::time::timeout(std::time::Duration::from_secs(3), read).await {
        Ok(Ok(v)) => {
            let d = &v["data"];
            match (d["users"].as_i64(), d["users_quota"].as_i64()) {
                (Some(users), Some(quota)) => format!(
                    "{users} of {quota} IAM users in the account; {}% kept free, so {} more before iam_user issues are refused (STS roles are not affected)",
                    d["reserve_percent"].as_f64().unwrap_or_default(),
                    d["available"]
                ),
                _ => format!("unknown: {}", text_of(&d["error"])),
            }
        }
        Ok(Err(e)) => format!("unknown: {}", e.message()),
        Err(_) => "unknown: AWS did not answer in time".into(),
    }
}

pub async fn mount(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(mount): Path<String>,
) -> Response {
    match session(&state, &headers).await {
        Ok(s) => {
            mount_page(
                &state,
                &s,
                &mount,
                MountExtras {
                    tab: None,
                    errors: FieldErrors::default(),
                    error: None,
                    check: None,
                    form: None,
                },
            )
            .await
        }
        Err(r) => r,
    }
}

pub async fn save_connection(
    State(state): State<AppState>,
    Path(mount): Path<String>,
    Posted { s, form }: Posted,
) -> Response {
    let mode = field(&form, "mode");
    let mut body = json!({
        "region": non_empty(&form, "region"),
        "iam_endpoint": field(&form, "iam_endpoint"),
        "sts_endpoint": field(&form, "sts_endpoint"),
    });
    let missing = if mode == "keys" {
        body["access_key"] = json!(field(&form, "access_key"));
        // Write-only: an empty secret keeps the stored one.
        if let Some(secret) = non_empty(&form, "secret_key") {
            body["secret_key"] = json!(secret);
        }
        body["role_arn"] = json!("");
        body["external_id"] = json!("");
        field(&form, "access_key")
            .is_empty()
            .then_some("access_key is required for the Access Keys connection")
    } else {
        body["role_arn"] = json!(field(&form, "role_arn"));
        body["external_id"] = json!(field(&form, "external_id"));
        field(&form, "role_arn").is_empty().then_some(
            "role_arn is required: the ARN of the role created from the trust policy below",
        )
    };
    if let Some(message) = missing {
        let (errors, _) = place_error(message.into(), CONNECTION_FIELDS);
        return mount_page(
            &state,
            &s,
            &mount,
            MountExtras {
                tab: Some(mode),
                errors,
                error: None,
                check: None,
                form: Some(form),
            },
        )
        .await;
    }
    match call(
        &state,
        &s.token,
        "POST",
        &format!("{}/config/root", enc(&mount)),
        Some(&body),
    )
    .await
    {
        Ok(_) => {
            flash(
                &state,
                &s,
                true,
                "Connection saved. Use Test connection to check it.",
            )
            .await;
            Redirect::to(&format!("/ui/mounts/{}", enc(&mount))).into_response()
        }
        Err(e) => {
            let (errors, error) = place_error(e.message(), CONNECTION_FIELDS);
            mount_page(
                &state,
                &s,
                &mount,
                MountExtras {
                    tab: Some(mode),
                    errors,
                    error,
                    check: None,
                    form: Some(form),
                },
            )
            .await
        }
    }
}

pub async fn check_connection(
    State(state): State<AppState>,
    Path(mount): Path<String>,
    Posted { s, form }: Posted,
) -> Response {
    let check = match call(
        &state,
        &s.token,
        "POST",
        &format!("{}/config/check", enc(&mount)),
        None,
    )
    .await
    {
        Ok(v) => CheckResult {
            ok: true,
            text: format!("Connected as {}", text_of(&v["data"]["arn"])),
        },
        Err(e) => CheckResult {
            ok: false,
            text: e.message(),
        },
    };
    mount_page(
        &state,
        &s,
        &mount,
        MountExtras {
            tab: non_empty(&form, "tab"),
            errors: FieldErrors::default(),
            error: None,
            check: Some(check),
            form: None,
        },
    )
    .await
}
