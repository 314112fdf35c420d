//! The leases page: every lease the token may see (filtered by mount, role and state; failed
//! revocations first) with its access key and requester, and renewing, revoking one, or
//! revoking all of a role's.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::page::{
    Fields, Nav, Posted, aws_mounts, enc, field, flash, list_keys, nav, non_empty, render, session,
    text_of,
};
use crate::api::AppState;
use crate::api::internal::call;

pub struct LeaseRow {
    pub id: String,
    pub mount: String,
    pub role: String,
    pub state: String,
    pub expires_unix: i64,
    pub expire_time: String,
    pub renewable: bool,
    pub last_error: String,
    /// The key it handed out and who asked for it (empty while `pending`).
    pub access_key_id: String,
    pub requester: String,
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
    headers: HeaderMap,
    Query(q): Query<Fields>,
) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let f_mount = field(&q, "mount");
    let f_role = field(&q, "role");
    let f_state = field(&q, "state");
    let mut error = None;
    let all_mounts: Vec<String> = match aws_mounts(&state, &s.token).await {
        Ok(m) => m,
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
        // Leases live under the path that issued them: `creds/` and `sts/`.
        for path in ["creds", "sts"] {
            let roles = if f_role.is_empty() {
                match list_keys(
                    &state,
                    &s.token,
                    &format!("sys/leases/lookup/{m}/{path}/{state_q}"),
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
                let prefix = format!("{m}/{path}/{r}/");
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
                                access_key_id: text_of(&d["access_key_id"]),
                                requester: text_of(&d["requester"]),
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
    }
    // Failed revocations first: they are what an operator must look at.
    rows.sort_by_key(|r| (r.state != "failed", r.expires_unix));
    render(LeasesPage {
        nav: nav(&state, &s, "leases").await,
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

pub async fn renew_lease(State(state): State<AppState>, posted: Posted) -> Response {
    let id = field(&posted.form, "lease_id");
    let mut body = json!({"lease_id": id});
    if let Some(inc) = non_empty(&posted.form, "increment") {
        body["increment"] = json!(inc);
    }
    posted
        .call_and_flash(
            &state,
            "PUT",
            "sys/leases/renew",
            Some(&body),
            |v| {
                format!(
                    "Renewed {id}: {}s left.",
                    v["lease_duration"].as_i64().unwrap_or_default()
                )
            },
            |message| format!("Could not renew {id}: {message}"),
        )
        .await;
    back_to_leases(&posted.form)
}

pub async fn revoke_lease(State(state): State<AppState>, posted: Posted) -> Response {
    let id = field(&posted.form, "lease_id");
    posted
        .call_and_flash(
            &state,
            "PUT",
            "sys/leases/revoke",
            Some(&json!({"lease_id": id})),
            |_| format!("Revoked {id}; everything was deleted in AWS."),
            |message| format!("Could not revoke {id}: {message}"),
        )
        .await;
    back_to_leases(&posted.form)
}

pub async fn revoke_role(State(state): State<AppState>, posted: Posted) -> Response {
    let (m, r) = (field(&posted.form, "mount"), field(&posted.form, "role"));
    if m.is_empty() || r.is_empty() {
        flash(
            &state,
            &posted.s,
            false,
            "choose a mount and a role to revoke all of its leases",
        )
        .await;
        return back_to_leases(&posted.form);
    }
    // A role's leases live under `creds/` and, for STS roles issued through `sts/`, `sts/`:
    // both prefixes are revoked, and the flash tells how it went.
    let mut failure = None;
    for path in ["creds", "sts"] {
        let prefix = format!("{m}/{path}/{r}/");
        let revoke = format!("sys/leases/revoke-prefix/{prefix}");
        if let Err(e) = call(&state, &posted.s.token, "PUT", &revoke, None).await {
            failure.get_or_insert(format!("Could not revoke {prefix}: {}", e.message()));
        }
    }
    match failure {
        None => {
            flash(
                &state,
                &posted.s,
                true,
                format!("Revoked every lease of {m}/ role {r}."),
            )
            .await
        }
        Some(message) => flash(&state, &posted.s, false, message).await,
    }
    back_to_leases(&posted.form)
}
