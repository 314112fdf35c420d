//! The access-key page: who held a key (`GET {mount}/access-keys/{id}`), searched by its id
//! from the leases page or reached from a lease's row. Without a mount, every `aws` mount the
//! token can see is asked, as the id alone does not say which issued it.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::page::{Fields, Nav, aws_mounts, enc, field, nav, render, session, text_of};
use crate::api::AppState;
use crate::api::internal::call;

pub struct KeyView {
    pub access_key_id: String,
    pub lease_id: String,
    pub mount: String,
    pub role: String,
    pub credential_type: String,
    pub username: String,
    pub requester: String,
    pub token_accessor: String,
    pub meta: Vec<(String, String)>,
    pub issue_time: String,
    pub expire_time: String,
    pub revoke_time: String,
    pub state: String,
}

impl KeyView {
    fn from_data(d: &Value) -> KeyView {
        KeyView {
            access_key_id: text_of(&d["access_key_id"]),
            lease_id: text_of(&d["lease_id"]),
            mount: text_of(&d["mount"]),
            role: text_of(&d["role"]),
            credential_type: text_of(&d["credential_type"]),
            username: text_of(&d["username"]),
            requester: text_of(&d["requester"]),
            token_accessor: text_of(&d["token_accessor"]),
            meta: d["meta"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), text_of(v))).collect())
                .unwrap_or_default(),
            issue_time: text_of(&d["issue_time"]),
            expire_time: text_of(&d["expire_time"]),
            revoke_time: text_of(&d["revoke_time"]),
            state: text_of(&d["state"]),
        }
    }
}

#[derive(Template)]
#[template(path = "key.html")]
struct KeyPage {
    nav: Nav,
    query: String,
    key: Option<KeyView>,
    error: Option<String>,
}

pub async fn key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Fields>,
) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let query = field(&q, "id").trim().to_owned();
    let mounts = match field(&q, "mount") {
        m if !m.is_empty() => Ok(vec![m]),
        _ => aws_mounts(&state, &s.token).await,
    };
    let (key, error) = match (query.is_empty(), mounts) {
        (true, _) => (
            None,
            Some("Enter an access key id (AKIA… or ASIA…).".to_owned()),
        ),
        (false, Err(e)) => (None, Some(e.message())),
        (false, Ok(mounts)) => find(&state, &s.token, &query, &mounts).await,
    };
    render(KeyPage {
        nav: nav(&state, &s, "leases").await,
        query,
        key,
        error,
    })
}

/// Asks each mount in turn; the first that knows the key answers. A malformed id is said at
/// once; mounts that refuse the token are named when no other knows the key.
async fn find(
    state: &AppState,
    token: &str,
    id: &str,
    mounts: &[String],
) -> (Option<KeyView>, Option<String>) {
    let mut refused = Vec::new();
    for m in mounts {
        let path = format!("{m}/access-keys/{}", enc(id));
        match call(state, token, "GET", &path, None).await {
            Ok(v) => return (Some(KeyView::from_data(&v["data"])), None),
            Err(e) if e.status == StatusCode::NOT_FOUND => {}
            Err(e) if e.status == StatusCode::FORBIDDEN => refused.push(format!("{m}/")),
            Err(e) => return (None, Some(e.message())),
        }
    }
    let mut message = format!(
        "No mount has a record of {id}: it was not issued here, or its lease ended longer ago than key_history_retention."
    );
    if !refused.is_empty() {
        message.push_str(&format!(
            " You may not read access-keys/ on {}.",
            refused.join(", ")
        ));
    }
    (None, Some(message))
}
