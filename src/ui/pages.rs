//! The console's pages: each handler checks the session (and the CSRF token on a POST), calls
//! the API in-process with the session's token, and renders a template. API errors are shown
//! next to the field they name, or at the top of the page; nothing fails silently.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::session::{
    COOKIE, Flash, LIFETIME_SECS, LOGIN_CSRF_COOKIE, SessionView, Sessions, cookie, new_login_csrf,
    same, set_cookie,
};
use crate::api::AppState;
use crate::api::internal::{ApiFailure, call};

type Fields = HashMap<String, String>;

// ---- shared pieces ------------------------------------------------------------------------

/// What the layout needs: who is signed in, the CSRF token for its forms, the section.
pub struct Nav {
    pub csrf: String,
    pub display_name: String,
    pub section: &'static str,
    pub flash: Option<Flash>,
}

fn nav(sessions: &Sessions, s: &SessionView, section: &'static str) -> Nav {
    Nav {
        csrf: s.csrf.clone(),
        display_name: s.display_name.clone(),
        section,
        flash: sessions.take_flash(&s.id),
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
}

/// Puts the API's message next to the field it names (the earliest field name in the
/// message wins); a message naming none goes to the top of the form.
fn place_error(message: String, fields: &[&str]) -> (FieldErrors, Option<String>) {
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

fn render(t: impl Template) -> Response {
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

fn to_login() -> Response {
    Redirect::to("/ui/login").into_response()
}

/// The session, or a redirect to sign in.
// The Err is the response the handler returns at once; boxing it would only add noise.
#[allow(clippy::result_large_err)]
fn session(sessions: &Sessions, headers: &HeaderMap) -> Result<SessionView, Response> {
    sessions.get(headers).ok_or_else(to_login)
}

/// The session, with the form's CSRF token checked.
#[allow(clippy::result_large_err)]
fn posted(
    sessions: &Sessions,
    headers: &HeaderMap,
    form: &Fields,
) -> Result<SessionView, Response> {
    let s = session(sessions, headers)?;
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
    sessions: Arc<Sessions>,
    s: SessionView,
    form: Fields,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Posted {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        use axum::extract::FromRequestParts;
        let (mut parts, body) = req.into_parts();
        let Extension(sessions) = Extension::<Arc<Sessions>>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let req = axum::extract::Request::from_parts(parts, body);
        let Form(form) = Form::<Fields>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let s = posted(&sessions, &headers, &form)?;
        Ok(Posted { sessions, s, form })
    }
}

fn field(form: &Fields, k: &str) -> String {
    form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default()
}

fn non_empty(form: &Fields, k: &str) -> Option<String> {
    Some(field(form, k)).filter(|v| !v.is_empty())
}

fn list_lines(v: &str) -> Vec<String> {
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
fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

async fn list_keys(state: &AppState, token: &str, path: &str) -> Result<Vec<String>, ApiFailure> {
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

fn text_of(v: &Value) -> String {
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

// ---- sign-in ------------------------------------------------------------------------------

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

fn login_page(error: Option<String>, status: StatusCode) -> Response {
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

pub async fn login_form() -> Response {
    login_page(None, StatusCode::OK)
}

pub async fn login(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if !same(&field(&form, "csrf"), &expected) {
        return login_page(
            Some("the sign-in form expired; please try again".into()),
            StatusCode::FORBIDDEN,
        );
    }
    let token = field(&form, "token");
    if token.is_empty() {
        return login_page(Some("enter a token".into()), StatusCode::BAD_REQUEST);
    }
    match call(&state, &token, "GET", "auth/token/lookup-self", None).await {
        Ok(v) => {
            let name = v["data"]["display_name"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("token")
                .to_owned();
            let id = sessions.create(&token, name);
            let mut res = Redirect::to("/ui/mounts").into_response();
            let h = res.headers_mut();
            for c in [
                set_cookie(
                    COOKIE,
                    &id,
                    Some(std::time::Duration::from_secs(LIFETIME_SECS)),
                ),
                set_cookie(LOGIN_CSRF_COOKIE, "", Some(std::time::Duration::ZERO)),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.append(header::SET_COOKIE, v);
                }
            }
            res
        }
        Err(e) => login_page(Some(e.message()), StatusCode::FORBIDDEN),
    }
}

pub async fn logout(Posted { sessions, s, .. }: Posted) -> Response {
    sessions.remove(&s.id);
    let mut res = to_login();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(COOKIE, "", Some(std::time::Duration::ZERO))) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

// ---- mounts -------------------------------------------------------------------------------

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
    sessions: &Sessions,
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
        nav: nav(sessions, s, "mounts"),
        mounts,
        error: error.or(load_error),
        new_path,
    })
}

pub async fn mounts(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
) -> Response {
    match session(&sessions, &headers) {
        Ok(s) => mounts_page(&state, &sessions, &s, None, String::new()).await,
        Err(r) => r,
    }
}

pub async fn enable_mount(
    State(state): State<AppState>,
    Posted { sessions, s, form }: Posted,
) -> Response {
    let path = field(&form, "path").trim_matches('/').to_owned();
    if path.is_empty() {
        return mounts_page(
            &state,
            &sessions,
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
            sessions.flash(
                &s.id,
                true,
                format!("{path}/ is mounted; now connect it to AWS."),
            );
            Redirect::to(&format!("/ui/mounts/{}", enc(&path))).into_response()
        }
        Err(e) => mounts_page(&state, &sessions, &s, Some(e.message()), path).await,
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
    sessions: &Sessions,
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
        nav: nav(sessions, s, "mounts"),
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
    })
}

pub async fn mount(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path(mount): Path<String>,
) -> Response {
    match session(&sessions, &headers) {
        Ok(s) => {
            mount_page(
                &state,
                &sessions,
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
    Posted { sessions, s, form }: Posted,
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
            &sessions,
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
            sessions.flash(
                &s.id,
                true,
                "Connection saved. Use Test connection to check it.",
            );
            Redirect::to(&format!("/ui/mounts/{}", enc(&mount))).into_response()
        }
        Err(e) => {
            let (errors, error) = place_error(e.message(), CONNECTION_FIELDS);
            mount_page(
                &state,
                &sessions,
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
    Posted { sessions, s, form }: Posted,
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
        &sessions,
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

// ---- roles --------------------------------------------------------------------------------

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
    let status = if errors.0.is_empty() && error.is_none() {
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
    Posted { sessions, s, .. }: Posted,
) -> Response {
    match call(
        &state,
        &s.token,
        "DELETE",
        &format!("{}/roles/{}", enc(&mount), enc(&role)),
        None,
    )
    .await
    {
        Ok(_) => sessions.flash(
            &s.id,
            true,
            format!("Role {role} deleted; its leases still expire and are revoked."),
        ),
        Err(e) => sessions.flash(&s.id, false, e.message()),
    }
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

// ---- leases -------------------------------------------------------------------------------

pub struct LeaseRow {
    pub id: String,
    pub mount: String,
    pub role: String,
    pub state: String,
    pub expires_unix: i64,
    pub expire_time: String,
    pub renewable: bool,
    pub last_error: String,
}

#[derive(Template)]
#[template(path = "leases.html")]
struct LeasesPage {
    nav: Nav,
    mounts: Vec<String>,
    f_mount: String,
    f_role: String,
    f_state: String,
    rows: Vec<LeaseRow>,
    error: Option<String>,
    truncated: bool,
}

/// At most this many leases are looked up for one page.
const LEASE_PAGE_LIMIT: usize = 300;

pub async fn leases(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Query(q): Query<Fields>,
) -> Response {
    let s = match session(&sessions, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let f_mount = field(&q, "mount");
    let f_role = field(&q, "role");
    let f_state = field(&q, "state");
    let mut error = None;
    let all_mounts: Vec<String> = match call(&state, &s.token, "GET", "sys/mounts", None).await {
        Ok(v) => v["data"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| v["type"] == "aws")
                    .map(|(k, _)| k.trim_end_matches('/').to_owned())
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) => {
            error = Some(e.message());
            Vec::new()
        }
    };
    let state_q = if f_state.is_empty() {
        String::new()
    } else {
        format!("?state={}", enc(&f_state))
    };
    let mut rows = Vec::new();
    let mut truncated = false;
    'outer: for m in all_mounts
        .iter()
        .filter(|m| f_mount.is_empty() || **m == f_mount)
    {
        let roles = if f_role.is_empty() {
            match list_keys(
                &state,
                &s.token,
                &format!("sys/leases/lookup/{m}/creds/{state_q}"),
            )
            .await
            {
                Ok(k) => k
                    .into_iter()
                    .map(|r| r.trim_end_matches('/').to_owned())
                    .collect(),
                Err(e) => {
                    error.get_or_insert(e.message());
                    Vec::new()
                }
            }
        } else {
            vec![f_role.clone()]
        };
        for r in roles {
            let prefix = format!("{m}/creds/{r}/");
            let keys = match list_keys(
                &state,
                &s.token,
                &format!("sys/leases/lookup/{prefix}{state_q}"),
            )
            .await
            {
                Ok(k) => k,
                Err(e) => {
                    error.get_or_insert(e.message());
                    continue;
                }
            };
            for k in keys {
                if rows.len() >= LEASE_PAGE_LIMIT {
                    truncated = true;
                    break 'outer;
                }
                let id = format!("{prefix}{k}");
                match call(
                    &state,
                    &s.token,
                    "PUT",
                    "sys/leases/lookup",
                    Some(&json!({"lease_id": id})),
                )
                .await
                {
                    Ok(v) => {
                        let d = &v["data"];
                        let expire_time = text_of(&d["expire_time"]);
                        rows.push(LeaseRow {
                            expires_unix: OffsetDateTime::parse(&expire_time, &Rfc3339)
                                .map(|t| t.unix_timestamp())
                                .unwrap_or_default(),
                            expire_time,
                            id,
                            mount: m.clone(),
                            role: r.clone(),
                            state: text_of(&d["state"]),
                            renewable: d["renewable"].as_bool().unwrap_or(false),
                            last_error: text_of(&d["last_error"]),
                        });
                    }
                    Err(e) if e.status == StatusCode::NOT_FOUND => {}
                    Err(e) => {
                        error.get_or_insert(e.message());
                    }
                }
            }
        }
    }
    // Failed revocations first: they are what an operator must look at.
    rows.sort_by_key(|r| (r.state != "failed", r.expires_unix));
    render(LeasesPage {
        nav: nav(&sessions, &s, "leases"),
        mounts: all_mounts,
        f_mount,
        f_role,
        f_state,
        rows,
        error,
        truncated,
    })
}

fn back_to_leases(form: &Fields) -> Response {
    let mut q = Vec::new();
    for k in ["mount", "role", "state"] {
        let v = field(form, &format!("f_{k}"));
        if !v.is_empty() {
            q.push(format!("{k}={}", enc(&v)));
        }
    }
    let to = if q.is_empty() {
        "/ui/leases".to_owned()
    } else {
        format!("/ui/leases?{}", q.join("&"))
    };
    Redirect::to(&to).into_response()
}

pub async fn renew_lease(
    State(state): State<AppState>,
    Posted { sessions, s, form }: Posted,
) -> Response {
    let id = field(&form, "lease_id");
    let mut body = json!({"lease_id": id});
    if let Some(inc) = non_empty(&form, "increment") {
        body["increment"] = json!(inc);
    }
    match call(&state, &s.token, "PUT", "sys/leases/renew", Some(&body)).await {
        Ok(v) => sessions.flash(
            &s.id,
            true,
            format!(
                "Renewed {id}: {}s left.",
                v["lease_duration"].as_i64().unwrap_or_default()
            ),
        ),
        Err(e) => sessions.flash(
            &s.id,
            false,
            format!("Could not renew {id}: {}", e.message()),
        ),
    }
    back_to_leases(&form)
}

pub async fn revoke_lease(
    State(state): State<AppState>,
    Posted { sessions, s, form }: Posted,
) -> Response {
    let id = field(&form, "lease_id");
    match call(
        &state,
        &s.token,
        "PUT",
        "sys/leases/revoke",
        Some(&json!({"lease_id": id})),
    )
    .await
    {
        Ok(_) => sessions.flash(
            &s.id,
            true,
            format!("Revoked {id}; everything was deleted in AWS."),
        ),
        Err(e) => sessions.flash(
            &s.id,
            false,
            format!("Could not revoke {id}: {}", e.message()),
        ),
    }
    back_to_leases(&form)
}

pub async fn revoke_role(
    State(state): State<AppState>,
    Posted { sessions, s, form }: Posted,
) -> Response {
    let (m, r) = (field(&form, "mount"), field(&form, "role"));
    if m.is_empty() || r.is_empty() {
        sessions.flash(
            &s.id,
            false,
            "choose a mount and a role to revoke all of its leases",
        );
        return back_to_leases(&form);
    }
    let prefix = format!("{m}/creds/{r}/");
    match call(
        &state,
        &s.token,
        "PUT",
        &format!("sys/leases/revoke-prefix/{prefix}"),
        None,
    )
    .await
    {
        Ok(_) => sessions.flash(&s.id, true, format!("Revoked every lease under {prefix}.")),
        Err(e) => sessions.flash(
            &s.id,
            false,
            format!("Could not revoke {prefix}: {}", e.message()),
        ),
    }
    back_to_leases(&form)
}
